/* lq_model.h — the Llama-family model of the CPU reference runtime, in the
 * spirit of llama2.c's four structs: lq_config (from config.json),
 * lq_weights (one fp32 allocation, pointers into it), lq_runstate
 * (activations + KV cache for a batch), and lq_model (config + weights +
 * tokenizer). build/free come in pairs; *_free(NULL) is a no-op.
 *
 * Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q/k/v
 * bias); GQA; tied or separate head; rope_theta; rms_norm_eps; head_dim;
 * rope_scaling llama3/linear; Mistral sliding_window.
 * Tested by tests/test_model.c (golden logits / perplexity of stories260K). */
#ifndef LQ_MODEL_H
#define LQ_MODEL_H

#include <jansson.h>

#include "../formats/lq_checkpoint.h"
#include "lq_common.h"
#include "lq_ops.h"
#include "lq_quant.h"
#include "lq_tokenizer.h"

typedef enum { LQ_ARCH_LLAMA = 0, LQ_ARCH_MISTRAL, LQ_ARCH_QWEN2 } lq_arch;

typedef struct {
    lq_arch arch;
    char arch_name[64];   /* "LlamaForCausalLM", ... */
    int dim;              /* hidden_size */
    int hidden_dim;       /* intermediate_size */
    int n_layers;
    int n_heads, n_kv_heads, head_dim;
    int vocab_size;
    int max_seq_len;      /* max_position_embeddings */
    float rms_eps;
    lq_rope_params rope;
    int tie_embeddings;
    int attn_bias;        /* q/k/v biases (Qwen2) */
    int sliding_window;   /* 0 = none */
    int bos_id, eos_id;   /* -1 when absent */
} lq_config;

/* Parse and validate an HF config.json; `source` names it in errors. */
lq_status lq_config_from_json(const json_t *cfg, const char *source, lq_config *c);

typedef struct {
    float *attn_norm;            /* (dim) */
    float *wq, *wk, *wv, *wo;    /* (n_heads*hd, dim) (kv_dim, dim) (kv_dim, dim) (dim, n_heads*hd) */
    float *bq, *bk, *bv;         /* (n_heads*hd) (kv_dim) (kv_dim), NULL without bias */
    float *ffn_norm;             /* (dim) */
    float *w_gate, *w_up, *w_down; /* (hidden, dim) (hidden, dim) (dim, hidden) */
} lq_layer_weights;

typedef struct {
    float *embed;        /* (vocab, dim) */
    float *final_norm;   /* (dim) */
    float *lm_head;      /* (vocab, dim); == embed when tied; NULL when packed_only and packed */
    lq_layer_weights *layers; /* (n_layers) */
    float *mem;          /* the one allocation everything points into */
    size_t n_floats;
    float *head_mem;     /* (vocab, dim): lm_head's own storage once a tied head was untied
                            (lq_model_untie_head); NULL otherwise */
} lq_weights;

/* The linears of a layer, in the order of lq_model.qw. */
#define LQ_N_LINEARS 7 /* q, k, v, o, gate, up, down */
extern const char *const lq_linear_names[LQ_N_LINEARS]; /* "self_attn.q_proj", ... */

typedef struct lq_model {
    lq_config cfg;
    lq_weights w;
    lq_tokenizer *tok;   /* NULL when the checkpoint has none */
    /* Packed (integer) forms of the linears, when there are any: a .lqq file
     * (views into its mmap) or lq_model_quantize_rtn. (n_layers * LQ_N_LINEARS)
     * pointers, layer-major, NULL for a linear kept in floating point. The fp32
     * weights above hold the dequantized values too (the CPU reference runs
     * those), unless packed_only; the GPU engine runs the packed form with
     * fused kernels. */
    const lq_qweight **qw;
    lq_qweight *qw_owned;  /* storage of qw when quantized in memory */
    /* The packed lm_head (vocab, dim), or NULL (the head in floating point, the
     * default). Opt-in (lq quantize --lm-head, lq_model_quantize_head_rtn); a
     * packed head is never tied: the embedding lookup keeps its floating-point
     * table. w.lm_head holds its dequantized values, as for qw, unless
     * packed_only. */
    const lq_qweight *qhead;
    lq_qweight qhead_owned; /* storage of qhead (in memory, or loaded: a view or an unpacked copy) */
    void *qsrc;            /* the open lq_lqq file the views point into */
    /* LQ_LOAD_PACKED_ONLY: the linears held in qw have no fp32 copy (their
     * lq_layer_weights pointers are NULL). Only the CUDA engine runs such a
     * model (it dequantizes on upload what its fused kernels do not take);
     * the CPU engine refuses it. */
    int packed_only;
    int64_t n_params; /* every weight, packed or not (0: w.n_floats) */
} lq_model;

/* Build the fp32 model from any loaded checkpoint (copies/converts weights,
 * so the checkpoint may be freed afterwards). */
lq_status lq_model_from_checkpoint(const lq_checkpoint *ck, lq_model **out);
/* Open a path (anything lq_checkpoint_open takes) and build the model. */
lq_status lq_model_load(const char *path, lq_model **out);
/* flags: LQ_LOAD_PACKED_ONLY — for a .lqq file, no fp32 copies of the packed
 * linears (host memory ~ the file instead of 4 bytes per weight; for the GPU
 * engine). Other formats ignore it. */
#define LQ_LOAD_PACKED_ONLY 1u
lq_status lq_model_load_ex(const char *path, unsigned flags, lq_model **out);
void lq_model_free(lq_model *m);
/* RTN-quantize every linear of m in memory (rows in parallel), filling m->qw
 * and replacing the fp32 weights by their dequantized values, so that the CPU
 * reference and the GPU engine run the same quantized model. */
lq_status lq_model_quantize_rtn(lq_model *m, const lq_quant_params *p);
/* The same for the head alone (opt-in: the head is ~25% of a 4-bit 8B model's
 * bytes, but quantizing it costs accuracy): fills m->qhead and replaces
 * w.lm_head by its dequantized values. A tied head is untied first
 * (lq_model_untie_head), so the embeddings stay as they were. */
lq_status lq_model_quantize_head_rtn(lq_model *m, const lq_quant_params *p);
/* Give a tied head its own fp32 storage (a copy of the embeddings; w.head_mem)
 * and clear cfg.tie_embeddings, so that it can be quantized without touching
 * the embedding table. A no-op for a separate head. */
lq_status lq_model_untie_head(lq_model *m);
int64_t lq_model_n_params(const lq_model *m);

/* Activations and KV cache for up to B sequences of up to max_ctx tokens,
 * processing up to max_T tokens per sequence per call. */
typedef struct {
    int B, max_ctx, max_T;
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2; /* (B*max_T, ...) */
    float *logits;      /* (B*max_T, vocab) */
    float *k_cache, *v_cache; /* (n_layers, B, max_ctx, kv_dim) */
    float *rope_cos, *rope_sin; /* (max_ctx, hd/2) */
    int32_t *pos;       /* (B*max_T) */
    float *mem;
} lq_runstate;

lq_status lq_runstate_new(const lq_model *m, int B, int max_ctx, int max_T, lq_runstate **out);
void lq_runstate_free(lq_runstate *rs);

/* Run T tokens of each of B sequences (tokens (B, T)) at positions
 * pos .. pos+T-1 (the cache must already hold 0 .. pos-1 for each sequence).
 * Writes logits (B*T, vocab) into rs->logits; with last_only, only the last
 * position of each sequence is projected (rows b*T + T-1). */
lq_status lq_forward(const lq_model *m, lq_runstate *rs, const int32_t *tokens, int B, int T, int pos,
                     int last_only);

#endif
