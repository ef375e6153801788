/* llama2c.c — karpathy/llama2.c checkpoints (run.c's "version 0" format).
 *
 * Layout: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means the classifier is NOT
 * shared with the embedding), then fp32 tensors in this order:
 *   token_embedding (vocab, dim); rms_att (L, dim); wq (L, dim, dim);
 *   wk (L, kv_dim, dim); wv (L, kv_dim, dim); wo (L, dim, dim);
 *   rms_ffn (L, dim); w1 (L, hidden, dim); w2 (L, dim, hidden);
 *   w3 (L, hidden, dim); rms_final (dim); freq_cis_real, freq_cis_imag
 *   (seq_len, head_size/2 each, unused); wcls (vocab, dim) when not shared.
 * Every matrix is [out, in] row-major, as in HF. q/k rows are in Meta's
 * interleaved RoPE layout and are permuted to HF's rotate-half layout here,
 * so the runtime sees one layout only. Tested by tests/test_formats.c. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_formats.h"

static char *dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return NULL;
    char *s = strrchr(d, '/');
    if (s) *s = 0;
    else strcpy(d, ".");
    return d;
}

/* tokenizer.bin, else tok<vocab>.bin, beside the checkpoint. */
static char *find_tokenizer(const char *bin_path, int vocab) {
    char *dir = dir_of(bin_path);
    if (!dir) return NULL;
    size_t n = strlen(dir) + 64;
    char *p = malloc(n);
    if (p) {
        FILE *f;
        snprintf(p, n, "%s/tokenizer.bin", dir);
        if ((f = fopen(p, "rb"))) {
            fclose(f);
            free(dir);
            return p;
        }
        snprintf(p, n, "%s/tok%d.bin", dir, vocab);
        if ((f = fopen(p, "rb"))) {
            fclose(f);
            free(dir);
            return p;
        }
        free(p);
        p = NULL;
    }
    free(dir);
    return NULL;
}

typedef struct {
    const char *fmt; /* HF name pattern with %d for the layer */
    int per_layer;
    int64_t rows, cols; /* cols = 0: 1-D */
    int qk_heads;       /* >0: permute rows with this many heads */
} l2c_tensor;

lq_status lq_llama2c_load(const char *bin_path, const char *tok_path, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    lq_mmap m = {0};
    char *found_tok = NULL;
    json_t *cfg = NULL;
    *out = NULL;
    LQ_TRY(lq_mmap_open(bin_path, &m));
    LQ_FAIL_IF(m.n_bytes < 28, LQ_ERR_FORMAT, "%s: %zu bytes, too short for the 28-byte llama2.c header",
               bin_path, m.n_bytes);
    int32_t h[7];
    memcpy(h, m.data, sizeof h);
    const char *hn[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    const int32_t lim[7] = {1 << 16, 1 << 20, 1 << 10, 1 << 10, 1 << 10, 1 << 22, 1 << 24};
    for (int i = 0; i < 7; i++) {
        /* vocab_size may be negative (separate classifier): range-check |v| in
         * 64 bits, since -INT32_MIN overflows an int32 */
        int64_t v = i == 5 && h[i] < 0 ? -(int64_t)h[i] : (int64_t)h[i];
        LQ_FAIL_IF(v <= 0 || v > lim[i], LQ_ERR_FORMAT, "%s: header field %s = %d is out of range (1..%d)",
                   bin_path, hn[i], (int)h[i], (int)lim[i]);
    }
    int dim = h[0], hidden = h[1], L = h[2], nh = h[3], nkv = h[4], seq = h[6];
    int shared = h[5] > 0;
    int vocab = shared ? h[5] : -h[5];
    LQ_FAIL_IF(dim % nh != 0, LQ_ERR_FORMAT, "%s: dim %d is not divisible by n_heads %d", bin_path, dim, nh);
    LQ_FAIL_IF(nh % nkv != 0, LQ_ERR_FORMAT, "%s: n_heads %d is not divisible by n_kv_heads %d", bin_path, nh, nkv);
    int hs = dim / nh;
    LQ_FAIL_IF(hs % 2 != 0, LQ_ERR_FORMAT, "%s: head size %d is odd", bin_path, hs);
    int kv_dim = hs * nkv;

    const l2c_tensor spec[] = {
        {"model.embed_tokens.weight", 0, vocab, dim, 0},
        {"model.layers.%d.input_layernorm.weight", 1, dim, 0, 0},
        {"model.layers.%d.self_attn.q_proj.weight", 1, dim, dim, nh},
        {"model.layers.%d.self_attn.k_proj.weight", 1, kv_dim, dim, nkv},
        {"model.layers.%d.self_attn.v_proj.weight", 1, kv_dim, dim, 0},
        {"model.layers.%d.self_attn.o_proj.weight", 1, dim, dim, 0},
        {"model.layers.%d.post_attention_layernorm.weight", 1, dim, 0, 0},
        {"model.layers.%d.mlp.gate_proj.weight", 1, hidden, dim, 0},
        {"model.layers.%d.mlp.down_proj.weight", 1, dim, hidden, 0},
        {"model.layers.%d.mlp.up_proj.weight", 1, hidden, dim, 0},
        {"model.norm.weight", 0, dim, 0, 0},
        {NULL, 0, seq, hs, 0}, /* freq_cis_real + freq_cis_imag (skipped): seq x hs/2 x 2 */
        {"lm_head.weight", 0, vocab, dim, 0},
    };
    const int n_spec = (int)(sizeof spec / sizeof spec[0]);
    /* total size check before touching any data */
    size_t need = 28;
    for (int i = 0; i < n_spec; i++) {
        if (i == n_spec - 1 && shared) break;
        size_t e = (size_t)spec[i].rows * (size_t)(spec[i].cols ? spec[i].cols : 1);
        if (spec[i].per_layer) e *= (size_t)L;
        need += e * 4;
    }
    LQ_FAIL_IF(m.n_bytes < need, LQ_ERR_FORMAT,
               "%s: file is %zu bytes but the header (dim %d, hidden %d, layers %d, vocab %d, seq_len %d, %s) "
               "needs %zu (truncated?)", bin_path, m.n_bytes, dim, hidden, L, vocab, seq,
               shared ? "shared classifier" : "separate classifier", need);
    LQ_FAIL_IF(m.n_bytes > need, LQ_ERR_FORMAT,
               "%s: file is %zu bytes but the header says %zu (wrong header, or a llama2.c export version lq does not read)",
               bin_path, m.n_bytes, need);

    LQ_TRY(lq_checkpoint_new(&ck, bin_path, "llama2c"));
    const float *src = (const float *)((const char *)m.data + 28);
    for (int i = 0; i < n_spec; i++) {
        if (i == n_spec - 1 && shared) break;
        int reps = spec[i].per_layer ? L : 1;
        int64_t cols = spec[i].cols ? spec[i].cols : 1;
        size_t ne = (size_t)spec[i].rows * (size_t)cols;
        for (int l = 0; l < reps; l++) {
            if (spec[i].fmt) {
                char name[128];
                snprintf(name, sizeof name, spec[i].fmt, l);
                float *buf;
                LQ_TRY(lq_checkpoint_alloc(ck, ne * 4, (void **)&buf));
                memcpy(buf, src, ne * 4);
                if (spec[i].qk_heads) LQ_TRY(lq_permute_qk_to_hf(buf, spec[i].qk_heads, hs, cols));
                int64_t shape[2] = {spec[i].rows, cols};
                LQ_TRY(lq_checkpoint_add_tensor(ck, name, LQ_F32, spec[i].cols ? 2 : 1, shape, buf, ne * 4));
            }
            src += ne;
        }
    }

    cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:b, s:i, s:i, s:b, s:b, s:s}",
                    "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", dim,
                    "intermediate_size", hidden, "num_hidden_layers", L, "num_attention_heads", nh,
                    "num_key_value_heads", nkv, "head_dim", hs, "vocab_size", vocab,
                    "max_position_embeddings", seq, "rms_norm_eps", 1e-5, "rope_theta", 10000.0,
                    "hidden_act", "silu", "tie_word_embeddings", shared, "bos_token_id", 1,
                    "eos_token_id", 2, "attention_bias", 0, "mlp_bias", 0, "torch_dtype", "float32");
    LQ_FAIL_IF(!cfg, LQ_ERR_NOMEM, "out of memory building config");
    ck->config = cfg;
    cfg = NULL;

    if (!tok_path) tok_path = found_tok = find_tokenizer(bin_path, vocab);
    if (tok_path) LQ_TRY(lq_llama2c_tokenizer_json(tok_path, vocab, &ck->tokenizer));
    *out = ck;
    ck = NULL;
fail:
    lq_mmap_close(&m);
    lq_checkpoint_free(ck);
    if (cfg) json_decref(cfg);
    free(found_tok);
    return st;
}
