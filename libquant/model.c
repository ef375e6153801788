/* model.c — config.json parsing, fp32 weights from a checkpoint, the run
 * state and the Llama-family forward pass of the CPU reference runtime.
 * See lq_model.h. Tested by tests/test_model.c. */
#include "lq_model.h"

#include "../formats/lq_lqq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- config ---------------- */

static lq_status get_int(const json_t *cfg, const char *src, const char *key, int required, int dflt,
                         int lo, int hi, int *out) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        LQ_RETURN_IF(required, LQ_ERR_FORMAT, "%s: config field '%s' is missing", src, key);
        *out = dflt;
        return LQ_OK;
    }
    LQ_RETURN_IF(!json_is_integer(v), LQ_ERR_FORMAT, "%s: config field '%s' is not an integer", src, key);
    json_int_t x = json_integer_value(v);
    LQ_RETURN_IF(x < lo || x > hi, LQ_ERR_FORMAT, "%s: config field '%s' = %lld is out of range [%d, %d]",
                 src, key, (long long)x, lo, hi);
    *out = (int)x;
    return LQ_OK;
}

static lq_status get_num(const json_t *cfg, const char *src, const char *key, double dflt, double *out) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return LQ_OK;
    }
    LQ_RETURN_IF(!json_is_number(v), LQ_ERR_FORMAT, "%s: config field '%s' is not a number", src, key);
    *out = json_number_value(v);
    LQ_RETURN_IF(!isfinite(*out), LQ_ERR_FORMAT, "%s: config field '%s' is not finite", src, key);
    return LQ_OK;
}

static int get_bool(const json_t *cfg, const char *key, int dflt) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_boolean(v)) return json_is_true(v);
    return dflt;
}

lq_status lq_config_from_json(const json_t *cfg, const char *src, lq_config *c) {
    memset(c, 0, sizeof *c);
    LQ_RETURN_IF(!json_is_object(cfg), LQ_ERR_FORMAT, "%s: config is not a JSON object", src);
    const char *arch = NULL;
    json_t *archs = json_object_get(cfg, "architectures");
    if (json_is_array(archs) && json_array_size(archs) > 0 && json_is_string(json_array_get(archs, 0)))
        arch = json_string_value(json_array_get(archs, 0));
    if (!arch) {
        const char *mt = json_string_value(json_object_get(cfg, "model_type"));
        LQ_RETURN_IF(!mt, LQ_ERR_FORMAT, "%s: config has neither 'architectures' nor 'model_type'", src);
        arch = strcmp(mt, "llama") == 0     ? "LlamaForCausalLM"
               : strcmp(mt, "mistral") == 0 ? "MistralForCausalLM"
               : strcmp(mt, "qwen2") == 0   ? "Qwen2ForCausalLM"
                                            : mt;
    }
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    if (strcmp(arch, "LlamaForCausalLM") == 0) c->arch = LQ_ARCH_LLAMA;
    else if (strcmp(arch, "MistralForCausalLM") == 0) c->arch = LQ_ARCH_MISTRAL;
    else if (strcmp(arch, "Qwen2ForCausalLM") == 0) c->arch = LQ_ARCH_QWEN2;
    else
        return lq_error(LQ_ERR_UNSUPPORTED,
                        "%s: architecture '%s' is not supported (supported: LlamaForCausalLM, "
                        "MistralForCausalLM, Qwen2ForCausalLM)", src, arch);
    LQ_FORWARD(get_int(cfg, src, "hidden_size", 1, 0, 1, 1 << 16, &c->dim));
    LQ_FORWARD(get_int(cfg, src, "intermediate_size", 1, 0, 1, 1 << 20, &c->hidden_dim));
    LQ_FORWARD(get_int(cfg, src, "num_hidden_layers", 1, 0, 1, 1024, &c->n_layers));
    LQ_FORWARD(get_int(cfg, src, "num_attention_heads", 1, 0, 1, 1024, &c->n_heads));
    LQ_FORWARD(get_int(cfg, src, "num_key_value_heads", 0, c->n_heads, 1, 1024, &c->n_kv_heads));
    LQ_RETURN_IF(c->n_heads % c->n_kv_heads != 0, LQ_ERR_FORMAT,
                 "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src, c->n_heads,
                 c->n_kv_heads);
    int dflt_hd = c->dim / c->n_heads;
    LQ_FORWARD(get_int(cfg, src, "head_dim", 0, dflt_hd, 2, 2048, &c->head_dim));
    /* the default (hidden_size / heads) is not range-checked by get_int */
    LQ_RETURN_IF(c->head_dim < 2 || c->head_dim > 2048, LQ_ERR_FORMAT,
                 "%s: head_dim %d (hidden_size %d / num_attention_heads %d unless given) is out of range [2, 2048]",
                 src, c->head_dim, c->dim, c->n_heads);
    LQ_RETURN_IF(c->head_dim % 2 != 0, LQ_ERR_FORMAT, "%s: head_dim %d is odd", src, c->head_dim);
    LQ_FORWARD(get_int(cfg, src, "vocab_size", 1, 0, 1, 1 << 22, &c->vocab_size));
    LQ_FORWARD(get_int(cfg, src, "max_position_embeddings", 0, 2048, 1, 1 << 24, &c->max_seq_len));
    double eps, theta;
    LQ_FORWARD(get_num(cfg, src, "rms_norm_eps", 1e-6, &eps));
    LQ_FORWARD(get_num(cfg, src, "rope_theta", 10000.0, &theta));
    LQ_RETURN_IF(eps < 0 || theta <= 0, LQ_ERR_FORMAT, "%s: rms_norm_eps/rope_theta out of range", src);
    c->rms_eps = (float)eps;
    c->rope.theta = theta;
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    LQ_RETURN_IF(act && strcmp(act, "silu") != 0, LQ_ERR_UNSUPPORTED,
                 "%s: hidden_act '%s' is not supported (only silu)", src, act);
    c->tie_embeddings = get_bool(cfg, "tie_word_embeddings", 0);
    if (c->arch == LQ_ARCH_QWEN2) c->attn_bias = 1;
    else LQ_RETURN_IF(get_bool(cfg, "attention_bias", 0), LQ_ERR_UNSUPPORTED,
                      "%s: attention_bias=true is not supported for %s", src, arch);
    LQ_RETURN_IF(get_bool(cfg, "mlp_bias", 0), LQ_ERR_UNSUPPORTED, "%s: mlp_bias=true is not supported", src);
    if (c->arch == LQ_ARCH_MISTRAL)
        LQ_FORWARD(get_int(cfg, src, "sliding_window", 0, 0, 0, 1 << 24, &c->sliding_window));
    if (c->arch == LQ_ARCH_QWEN2)
        LQ_RETURN_IF(get_bool(cfg, "use_sliding_window", 0), LQ_ERR_UNSUPPORTED,
                     "%s: Qwen2 use_sliding_window=true is not supported", src);
    json_t *rs = json_object_get(cfg, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        LQ_RETURN_IF(!json_is_object(rs), LQ_ERR_FORMAT, "%s: rope_scaling is not an object", src);
        const char *ty = json_string_value(json_object_get(rs, "rope_type"));
        if (!ty) ty = json_string_value(json_object_get(rs, "type"));
        LQ_RETURN_IF(!ty, LQ_ERR_FORMAT, "%s: rope_scaling has no 'rope_type'", src);
        if (strcmp(ty, "default") == 0) {
            c->rope.type = 0;
        } else if (strcmp(ty, "llama3") == 0) {
            c->rope.type = 1;
            LQ_FORWARD(get_num(rs, src, "factor", 8.0, &c->rope.factor));
            LQ_FORWARD(get_num(rs, src, "low_freq_factor", 1.0, &c->rope.low_freq_factor));
            LQ_FORWARD(get_num(rs, src, "high_freq_factor", 4.0, &c->rope.high_freq_factor));
            LQ_FORWARD(get_int(rs, src, "original_max_position_embeddings", 0, 8192, 1, 1 << 24,
                               &c->rope.original_max_pos));
            LQ_RETURN_IF(c->rope.factor <= 0 || c->rope.high_freq_factor <= c->rope.low_freq_factor,
                         LQ_ERR_FORMAT, "%s: rope_scaling llama3 factors are inconsistent", src);
        } else if (strcmp(ty, "linear") == 0) {
            c->rope.type = 2;
            LQ_FORWARD(get_num(rs, src, "factor", 1.0, &c->rope.factor));
            LQ_RETURN_IF(c->rope.factor <= 0, LQ_ERR_FORMAT, "%s: rope_scaling factor <= 0", src);
        } else {
            return lq_error(LQ_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (llama3, linear)",
                            src, ty);
        }
    }
    LQ_FORWARD(get_int(cfg, src, "bos_token_id", 0, -1, -1, 1 << 22, &c->bos_id));
    json_t *eos = json_object_get(cfg, "eos_token_id");
    if (json_is_array(eos)) eos = json_array_get(eos, 0); /* Llama-3.1 lists several */
    c->eos_id = json_is_integer(eos) ? (int)json_integer_value(eos) : -1;
    return LQ_OK;
}

/* ---------------- weights ---------------- */

typedef struct {
    float **slot;
    char name[160];
    int64_t rows, cols; /* cols 0: 1-D */
    int optional;
    int packed; /* packed-only load: no fp32 storage */
} wspec;

/* A source of tensors the checkpoint does not hold (lq_model_load: the packed
 * weights of a .lqq file). rows == 0 (dst NULL) asks whether `name` exists
 * (LQ_OK or LQ_ERR_NOTFOUND, no message); dst NULL with rows x cols takes the
 * packed weight without fp32 values (a packed-only load); otherwise it writes
 * rows x cols fp32 values. */
typedef lq_status (*missing_fn)(void *ctx, const char *name, int64_t rows, int64_t cols, float *dst);

static lq_status fill(const lq_checkpoint *ck, const wspec *s, float *dst, missing_fn miss, void *mctx) {
    const lq_tensor_info *t = lq_checkpoint_find(ck, s->name);
    if (!t && miss && miss(mctx, s->name, 0, 0, NULL) == LQ_OK)
        return miss(mctx, s->name, s->rows, s->cols ? s->cols : 1, dst);
    LQ_RETURN_IF(!dst, LQ_ERR_ARG, "%s: tensor '%s' has no packed form", ck->source, s->name);
    LQ_RETURN_IF(!t, LQ_ERR_NOTFOUND, "%s: tensor '%s' is missing", ck->source, s->name);
    int want_nd = s->cols ? 2 : 1;
    int ok = t->ndim == want_nd && t->shape[0] == s->rows && (!s->cols || t->shape[1] == s->cols);
    if (!ok) {
        char got[96] = "", *p = got;
        for (int i = 0; i < t->ndim; i++) p += snprintf(p, 16, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        if (s->cols)
            return lq_error(LQ_ERR_SHAPE, "%s: tensor '%s' has shape [%s], expected [%lld, %lld] from config",
                            ck->source, s->name, got, (long long)s->rows, (long long)s->cols);
        return lq_error(LQ_ERR_SHAPE, "%s: tensor '%s' has shape [%s], expected [%lld] from config", ck->source,
                        s->name, got, (long long)s->rows);
    }
    if (lq_convert_to_f32(t->dtype, t->data, dst, (size_t)lq_tensor_numel(t)) != 0)
        return lq_error(LQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which the runtime cannot read",
                        ck->source, s->name, lq_dtype_name(t->dtype));
    return LQ_OK;
}

/* packed_only: linears that `miss` holds packed get no fp32 storage (NULL) */
static lq_status model_build(const lq_checkpoint *ck, missing_fn miss, void *mctx, int packed_only, lq_model **out) {
    lq_status st = LQ_OK;
    lq_model *m = NULL;
    wspec *specs = NULL;
    *out = NULL;
    LQ_RETURN_IF(!ck->config, LQ_ERR_FORMAT, "%s: checkpoint has no config.json", ck->source);
    LQ_TRY(lq_calloc((void **)&m, 1, sizeof *m, "model"));
    lq_config *c = &m->cfg;
    LQ_TRY(lq_config_from_json(ck->config, ck->source, c));
    const int has_lm =
        lq_checkpoint_find(ck, "lm_head.weight") != NULL || (miss && miss(mctx, "lm_head.weight", 0, 0, NULL) == LQ_OK);
    if (!has_lm) c->tie_embeddings = 1; /* no separate head stored: HF ties it */
    /* a packed head (lq quantize --lm-head) is the head even where the config ties it:
       quantizing untied it, the embeddings stay floating point */
    if (miss && !lq_checkpoint_find(ck, "lm_head.weight") && miss(mctx, "lm_head.weight", 0, 0, NULL) == LQ_OK)
        c->tie_embeddings = 0;

    int64_t D = c->dim, H = c->hidden_dim, qd = (int64_t)c->n_heads * c->head_dim,
            kvd = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    int L = c->n_layers;
    LQ_TRY(lq_calloc((void **)&m->w.layers, (size_t)L, sizeof(lq_layer_weights), "layers"));
    int max_specs = 3 + L * 12;
    LQ_TRY(lq_calloc((void **)&specs, (size_t)max_specs, sizeof *specs, "weight specs"));
    int ns = 0;
#define SPEC(ptr, r, cc, opt, ...)                                                              \
    do {                                                                                        \
        specs[ns].slot = (ptr);                                                                 \
        specs[ns].rows = (r);                                                                   \
        specs[ns].cols = (cc);                                                                  \
        specs[ns].optional = (opt);                                                             \
        snprintf(specs[ns].name, sizeof specs[ns].name, __VA_ARGS__);                           \
        ns++;                                                                                   \
    } while (0)
    SPEC(&m->w.embed, V, D, 0, "model.embed_tokens.weight");
    SPEC(&m->w.final_norm, D, 0, 0, "model.norm.weight");
    if (!c->tie_embeddings) SPEC(&m->w.lm_head, V, D, 0, "lm_head.weight");
    for (int l = 0; l < L; l++) {
        lq_layer_weights *lw = &m->w.layers[l];
        SPEC(&lw->attn_norm, D, 0, 0, "model.layers.%d.input_layernorm.weight", l);
        SPEC(&lw->wq, qd, D, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        SPEC(&lw->wk, kvd, D, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        SPEC(&lw->wv, kvd, D, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        SPEC(&lw->wo, D, qd, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        if (c->attn_bias) {
            SPEC(&lw->bq, qd, 0, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            SPEC(&lw->bk, kvd, 0, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            SPEC(&lw->bv, kvd, 0, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        SPEC(&lw->ffn_norm, D, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        SPEC(&lw->w_gate, H, D, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        SPEC(&lw->w_up, H, D, 0, "model.layers.%d.mlp.up_proj.weight", l);
        SPEC(&lw->w_down, D, H, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
#undef SPEC
    size_t total = 0, params = 0;
    for (int i = 0; i < ns; i++) {
        const size_t n = (size_t)specs[i].rows * (size_t)(specs[i].cols ? specs[i].cols : 1);
        specs[i].packed = packed_only && specs[i].cols && miss && !lq_checkpoint_find(ck, specs[i].name) &&
                          miss(mctx, specs[i].name, 0, 0, NULL) == LQ_OK;
        params += n;
        if (!specs[i].packed) total += n;
    }
    m->w.n_floats = total;
    m->n_params = (int64_t)params;
    m->packed_only = packed_only;
    LQ_TRY(lq_malloc((void **)&m->w.mem, (total ? total : 1) * sizeof(float), "model weights (fp32)"));
    float *p = m->w.mem;
    for (int i = 0; i < ns; i++) {
        *specs[i].slot = specs[i].packed ? NULL : p;
        LQ_TRY(fill(ck, &specs[i], specs[i].packed ? NULL : p, miss, mctx));
        if (!specs[i].packed) p += (size_t)specs[i].rows * (size_t)(specs[i].cols ? specs[i].cols : 1);
    }
    if (c->tie_embeddings) m->w.lm_head = m->w.embed;
    if (ck->tokenizer) {
        LQ_TRY(lq_tokenizer_from_json(ck->tokenizer, ck->source, &m->tok));
        /* tokenizer.json has no BOS/EOS fields; config.json's ids are authoritative
         * (generation stops at eos_token_id, e.g. <|im_end|> for SmolLM2-Instruct). */
        int32_t tv = lq_tokenizer_vocab_size(m->tok);
        int32_t bos = c->bos_id >= 0 && c->bos_id < tv ? c->bos_id : lq_tokenizer_bos_id(m->tok);
        int32_t eos = c->eos_id >= 0 && c->eos_id < tv ? c->eos_id : lq_tokenizer_eos_id(m->tok);
        LQ_TRY(lq_tokenizer_set_bos_eos(m->tok, bos, eos));
        LQ_FAIL_IF(lq_tokenizer_vocab_size(m->tok) > c->vocab_size, LQ_ERR_SHAPE,
                   "%s: tokenizer has %d tokens but the model's vocab_size is %d", ck->source,
                   lq_tokenizer_vocab_size(m->tok), c->vocab_size);
    }
    *out = m;
    m = NULL;
fail:
    free(specs);
    lq_model_free(m);
    return st;
}

lq_status lq_model_from_checkpoint(const lq_checkpoint *ck, lq_model **out) {
    return model_build(ck, NULL, NULL, 0, out);
}

const char *const lq_linear_names[LQ_N_LINEARS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                    "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                    "mlp.down_proj"};

/* lq_model_load of a .lqq file: the file opened once (every CRC checked), the
 * fp32 model built from its plain tensors, each packed weight unpacked once
 * (lq_lqq_get_qweight), dequantized straight into the model's storage and
 * kept as the model's packed form (m->qw). Peak host memory: the fp32 model
 * plus one unpacked weight, where a checkpoint of dequantized tensors copied
 * into the model held two fp32 copies. */
typedef struct {
    const char *path;
    lq_lqq *f;
    lq_qweight *q; /* (n_qweights): filled as the model asks for them */
    unsigned char *got;
} lqq_src;

static int lqq_index(const lq_lqq *f, const char *name) {
    for (int i = 0; i < lq_lqq_n_qweights(f); i++)
        if (!strcmp(lq_lqq_qweight_name(f, i), name)) return i;
    return -1;
}

static lq_status lqq_missing(void *ctx, const char *name, int64_t rows, int64_t cols, float *dst) {
    lqq_src *src = ctx;
    const int i = lqq_index(src->f, name);
    if (rows == 0) return i < 0 ? LQ_ERR_NOTFOUND : LQ_OK; /* a probe */
    LQ_RETURN_IF(i < 0, LQ_ERR_NOTFOUND, "%s: tensor '%s' is missing", src->path, name);
    LQ_RETURN_IF(src->got[i], LQ_ERR_FORMAT, "%s: packed weight '%s' is used twice", src->path, name);
    lq_qweight *q = &src->q[i];
    LQ_FORWARD(lq_lqq_get_qweight(src->f, name, q));
    src->got[i] = 1;
    LQ_RETURN_IF(q->rows != rows || q->cols != cols, LQ_ERR_SHAPE,
                 "%s: packed weight '%s' is %lld x %lld, expected %lld x %lld from config", src->path, name,
                 (long long)q->rows, (long long)q->cols, (long long)rows, (long long)cols);
    if (dst) lq_dequant_cpu(q, dst);
    return LQ_OK;
}

static lq_status load_lqq(const char *path, int packed_only, lq_model **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    lq_model *m = NULL;
    lqq_src src = {path, NULL, NULL, NULL};
    int nq = 0;
    *out = NULL;
    LQ_TRY(lq_lqq_open(path, 0, &src.f));
    nq = lq_lqq_n_qweights(src.f);
    LQ_TRY(lq_calloc((void **)&src.q, (size_t)(nq > 0 ? nq : 1), sizeof *src.q, "packed weights"));
    LQ_TRY(lq_calloc((void **)&src.got, (size_t)(nq > 0 ? nq : 1), 1, "packed weights"));
    LQ_TRY(lq_lqq_plain_checkpoint(src.f, &ck));
    LQ_TRY(model_build(ck, lqq_missing, &src, packed_only, &m));
    const int L = m->cfg.n_layers;
    m->qsrc = src.f; /* the views (and the mma layout) point into its mapping */
    src.f = NULL;
    LQ_TRY(lq_calloc((void **)&m->qw, (size_t)L * LQ_N_LINEARS, sizeof *m->qw, "packed weight table"));
    LQ_TRY(lq_calloc((void **)&m->qw_owned, (size_t)L * LQ_N_LINEARS, sizeof *m->qw_owned, "packed weight views"));
    for (int l = 0; l < L; l++)
        for (int j = 0; j < LQ_N_LINEARS; j++) {
            char name[160];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lq_linear_names[j]);
            const int i = lqq_index((lq_lqq *)m->qsrc, name);
            if (i < 0 || !src.got[i]) continue;
            m->qw_owned[(size_t)l * LQ_N_LINEARS + j] = src.q[i]; /* moved: freed with the model */
            memset(&src.q[i], 0, sizeof src.q[i]);
            src.got[i] = 0;
            m->qw[(size_t)l * LQ_N_LINEARS + j] = &m->qw_owned[(size_t)l * LQ_N_LINEARS + j];
        }
    {
        const int i = lqq_index((lq_lqq *)m->qsrc, "lm_head.weight");
        if (i >= 0 && src.got[i]) { /* the packed head (model_build untied it) */
            m->qhead_owned = src.q[i];
            memset(&src.q[i], 0, sizeof src.q[i]);
            src.got[i] = 0;
            m->qhead = &m->qhead_owned;
        }
    }
    *out = m;
    m = NULL;
fail:
    for (int i = 0; i < nq && src.q; i++)
        if (src.got[i]) lq_qweight_free(&src.q[i]); /* packed weights the model did not keep */
    free(src.q);
    free(src.got);
    lq_checkpoint_free(ck);
    lq_model_free(m);
    lq_lqq_close(src.f);
    return st;
}

static int is_lqq_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char magic[4];
    int yes = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, LQ_LQQ_MAGIC, 4);
    fclose(fp);
    return yes;
}

lq_status lq_model_load(const char *path, lq_model **out) { return lq_model_load_ex(path, 0, out); }

lq_status lq_model_load_ex(const char *path, unsigned flags, lq_model **out) {
    if (is_lqq_file(path)) return load_lqq(path, (flags & LQ_LOAD_PACKED_ONLY) != 0, out);
    lq_checkpoint *ck = NULL;
    LQ_FORWARD(lq_checkpoint_open(path, &ck));
    lq_status st = lq_model_from_checkpoint(ck, out);
    lq_checkpoint_free(ck);
    return st;
}

lq_status lq_model_quantize_rtn(lq_model *m, const lq_quant_params *p) {
    const int L = m->cfg.n_layers, n = L * LQ_N_LINEARS;
    lq_status st = LQ_OK;
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(m->qw, LQ_ERR_ARG, "model is already quantized");
    LQ_TRY(lq_calloc((void **)&m->qw, (size_t)n, sizeof *m->qw, "packed weight table"));
    LQ_TRY(lq_calloc((void **)&m->qw_owned, (size_t)n, sizeof *m->qw_owned, "packed weights"));
    int bad = 0;
    lq_status first = LQ_OK;
    char msg[512] = "";
    /* one linear per iteration: each RTN is serial inside, so the tensors run in parallel */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        lq_layer_weights *lw = &m->w.layers[i / LQ_N_LINEARS];
        float *w[LQ_N_LINEARS] = {lw->wq, lw->wk, lw->wv, lw->wo, lw->w_gate, lw->w_up, lw->w_down};
        const int64_t D = m->cfg.dim, H = m->cfg.hidden_dim, qd = (int64_t)m->cfg.n_heads * m->cfg.head_dim,
                      kvd = (int64_t)m->cfg.n_kv_heads * m->cfg.head_dim;
        const int64_t rows[LQ_N_LINEARS] = {qd, kvd, kvd, D, H, H, D}, cols[LQ_N_LINEARS] = {D, D, D, qd, D, D, H};
        int j = i % LQ_N_LINEARS;
        lq_status s = lq_rtn_quantize_packed(w[j], rows[j], cols[j], p, &m->qw_owned[i]);
        if (s == LQ_OK) lq_dequant_ref(&m->qw_owned[i], w[j]);
#pragma omp critical
        {
            if (s != LQ_OK && !bad) {
                bad = 1;
                first = s;
                snprintf(msg, sizeof msg, "layer %d %s: %s", i / LQ_N_LINEARS, lq_linear_names[j], lq_last_error());
            }
        }
    }
    if (bad) {
        st = lq_error(first, "RTN quantization of the model: %s", msg);
        goto fail;
    }
    for (int i = 0; i < n; i++) m->qw[i] = &m->qw_owned[i];
    return LQ_OK;
fail:
    if (m->qw_owned)
        for (int i = 0; i < n; i++) lq_qweight_free(&m->qw_owned[i]);
    free(m->qw_owned);
    free((void *)m->qw);
    m->qw_owned = NULL;
    m->qw = NULL;
    return st;
}

lq_status lq_model_untie_head(lq_model *m) {
    if (m->w.lm_head != m->w.embed) return LQ_OK;
    const size_t n = (size_t)m->cfg.vocab_size * (size_t)m->cfg.dim;
    LQ_RETURN_IF(!m->w.embed, LQ_ERR_ARG, "untie the head: the model has no fp32 embeddings");
    LQ_FORWARD(lq_malloc((void **)&m->w.head_mem, n * sizeof(float), "lm_head (untied from the embeddings)"));
    memcpy(m->w.head_mem, m->w.embed, n * sizeof(float));
    m->w.lm_head = m->w.head_mem;
    m->cfg.tie_embeddings = 0;
    /* the head now counts as parameters of its own, as in a model stored untied */
    m->n_params = (m->n_params ? m->n_params : (int64_t)m->w.n_floats) + (int64_t)n;
    return LQ_OK;
}

lq_status lq_model_quantize_head_rtn(lq_model *m, const lq_quant_params *p) {
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(m->qhead, LQ_ERR_ARG, "the model's head is already quantized");
    LQ_RETURN_IF(m->packed_only || !m->w.lm_head, LQ_ERR_ARG, "quantize the head: the model has no fp32 head");
    LQ_FORWARD(lq_model_untie_head(m));
    lq_status st = lq_rtn_quantize_packed_cpu(m->w.lm_head, m->cfg.vocab_size, m->cfg.dim, p, &m->qhead_owned);
    if (st != LQ_OK) { /* the head stays untied: the same values, its own storage */
        lq_qweight_free(&m->qhead_owned);
        return lq_error_prefix(st, "RTN quantization of lm_head.weight");
    }
    lq_dequant_cpu(&m->qhead_owned, m->w.lm_head);
    m->qhead = &m->qhead_owned;
    return LQ_OK;
}

void lq_model_free(lq_model *m) {
    if (!m) return;
    lq_qweight_free(&m->qhead_owned); /* zeroed when there is none; views: no-op */
    free(m->w.head_mem);
    if (m->qw_owned)
        for (int i = 0; i < m->cfg.n_layers * LQ_N_LINEARS; i++) lq_qweight_free(&m->qw_owned[i]); /* views: no-op */
    free(m->qw_owned);
    free((void *)m->qw);
    lq_lqq_close((lq_lqq *)m->qsrc);
    free(m->w.mem);
    free(m->w.layers);
    lq_tokenizer_free(m->tok);
    free(m);
}

int64_t lq_model_n_params(const lq_model *m) { return m->n_params ? m->n_params : (int64_t)m->w.n_floats; }

/* ---------------- run state ---------------- */

lq_status lq_runstate_new(const lq_model *m, int B, int max_ctx, int max_T, lq_runstate **out) {
    const lq_config *c = &m->cfg;
    LQ_RETURN_IF(B < 1 || max_ctx < 1 || max_T < 1 || max_T > max_ctx, LQ_ERR_ARG,
                 "run state: bad sizes B=%d max_ctx=%d max_T=%d", B, max_ctx, max_T);
    lq_runstate *rs = calloc(1, sizeof *rs);
    LQ_RETURN_IF(!rs, LQ_ERR_NOMEM, "out of memory");
    rs->B = B;
    rs->max_ctx = max_ctx;
    rs->max_T = max_T;
    size_t rows = (size_t)B * (size_t)max_T;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = qd > (size_t)c->dim ? qd : (size_t)c->dim;
    size_t half = (size_t)c->head_dim / 2;
    size_t sizes[] = {rows * c->dim, rows * wide, rows * qd, rows * kvd, rows * kvd, rows * qd,
                      rows * c->hidden_dim, rows * c->hidden_dim, rows * c->vocab_size,
                      (size_t)c->n_layers * B * max_ctx * kvd, (size_t)c->n_layers * B * max_ctx * kvd,
                      (size_t)max_ctx * half, (size_t)max_ctx * half};
    float **slots[] = {&rs->x, &rs->xb, &rs->q, &rs->k, &rs->v, &rs->att, &rs->hb, &rs->hb2, &rs->logits,
                       &rs->k_cache, &rs->v_cache, &rs->rope_cos, &rs->rope_sin};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    lq_status st = lq_malloc((void **)&rs->mem, total * sizeof(float), "run state (activations + KV cache)");
    if (st == LQ_OK) st = lq_malloc((void **)&rs->pos, rows * sizeof(int32_t), "positions");
    if (st != LQ_OK) {
        lq_runstate_free(rs);
        return lq_error_prefix(st, "batch %d x context %d", B, max_ctx);
    }
    float *p = rs->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *slots[i] = p;
        p += sizes[i];
    }
    lq_rope_tables(&c->rope, c->head_dim, max_ctx, rs->rope_cos, rs->rope_sin);
    *out = rs;
    return LQ_OK;
}

void lq_runstate_free(lq_runstate *rs) {
    if (!rs) return;
    free(rs->mem);
    free(rs->pos);
    free(rs);
}

/* ---------------- forward ---------------- */

lq_status lq_forward(const lq_model *m, lq_runstate *rs, const int32_t *tokens, int B, int T, int pos,
                     int last_only) {
    const lq_config *c = &m->cfg;
    const lq_weights *w = &m->w;
    LQ_RETURN_IF(B < 1 || B > rs->B || T < 1 || T > rs->max_T, LQ_ERR_ARG,
                 "forward: B=%d T=%d exceed the run state (B<=%d, T<=%d)", B, T, rs->B, rs->max_T);
    LQ_RETURN_IF(pos < 0 || pos + T > rs->max_ctx, LQ_ERR_ARG,
                 "forward: positions %d..%d exceed the context of %d", pos, pos + T - 1, rs->max_ctx);
    int64_t n = (int64_t)B * T;
    for (int64_t i = 0; i < n; i++)
        LQ_RETURN_IF(tokens[i] < 0 || tokens[i] >= c->vocab_size, LQ_ERR_ARG,
                     "forward: token id %d at index %lld is outside the vocabulary (%d)", tokens[i],
                     (long long)i, c->vocab_size);
    const int D = c->dim, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, H = c->hidden_dim;
    const int qd = nh * hd, kvd = nkv * hd;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) rs->pos[b * T + t] = pos + t;

    lq_embedding_ref(rs->x, w->embed, tokens, n, D);
    for (int l = 0; l < c->n_layers; l++) {
        const lq_layer_weights *lw = &w->layers[l];
        lq_rmsnorm_ref(rs->xb, rs->x, lw->attn_norm, n, D, c->rms_eps);
        lq_matmul_cpu(rs->q, rs->xb, lw->wq, lw->bq, n, qd, D);
        lq_matmul_cpu(rs->k, rs->xb, lw->wk, lw->bk, n, kvd, D);
        lq_matmul_cpu(rs->v, rs->xb, lw->wv, lw->bv, n, kvd, D);
        lq_rope_ref(rs->q, rs->pos, n, nh, hd, rs->rope_cos, rs->rope_sin);
        lq_rope_ref(rs->k, rs->pos, n, nkv, hd, rs->rope_cos, rs->rope_sin);
        for (int b = 0; b < B; b++) {
            /* cache layout (L, B, max_ctx, kv_dim) */
            size_t base = (((size_t)l * rs->B + b) * rs->max_ctx) * kvd;
            float *kc = rs->k_cache + base, *vc = rs->v_cache + base;
            memcpy(kc + (size_t)pos * kvd, rs->k + (size_t)b * T * kvd, (size_t)T * kvd * sizeof(float));
            memcpy(vc + (size_t)pos * kvd, rs->v + (size_t)b * T * kvd, (size_t)T * kvd * sizeof(float));
            lq_attention_cpu(rs->att + (size_t)b * T * qd, rs->q + (size_t)b * T * qd, kc, vc, T, pos, nh, nkv,
                             hd, c->sliding_window);
        }
        lq_matmul_cpu(rs->xb, rs->att, lw->wo, NULL, n, D, qd);
        for (int64_t i = 0; i < n * D; i++) rs->x[i] += rs->xb[i];
        lq_rmsnorm_ref(rs->xb, rs->x, lw->ffn_norm, n, D, c->rms_eps);
        lq_matmul_cpu(rs->hb, rs->xb, lw->w_gate, NULL, n, H, D);
        lq_matmul_cpu(rs->hb2, rs->xb, lw->w_up, NULL, n, H, D);
        lq_swiglu_ref(rs->hb, rs->hb, rs->hb2, n * H);
        lq_matmul_cpu(rs->xb, rs->hb, lw->w_down, NULL, n, D, H);
        for (int64_t i = 0; i < n * D; i++) rs->x[i] += rs->xb[i];
    }
    if (last_only) {
        for (int b = 0; b < B; b++) {
            const float *xr = rs->x + ((size_t)b * T + T - 1) * D;
            lq_rmsnorm_ref(rs->xb, xr, w->final_norm, 1, D, c->rms_eps);
            lq_matmul_cpu(rs->logits + ((size_t)b * T + T - 1) * c->vocab_size, rs->xb, w->lm_head, NULL, 1,
                          c->vocab_size, D);
        }
    } else {
        lq_rmsnorm_ref(rs->xb, rs->x, w->final_norm, n, D, c->rms_eps);
        lq_matmul_cpu(rs->logits, rs->xb, w->lm_head, NULL, n, c->vocab_size, D);
    }
    return LQ_OK;
}
