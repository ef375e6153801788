/* synth.c — random-weight checkpoints with real shapes (see lq_synth.h). */
#include "lq_synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lq_dtype.h"
#include "../formats/lq_checkpoint.h"

static const lq_synth_preset presets[] = {
    /* name, arch, dim, hidden, layers, heads, kv, head_dim, vocab, max_pos, theta, tied, bias */
    {"llama3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128, 128256, 8192, 500000.0, 0, 0},
    {"llama2-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 128, 32000, 4096, 10000.0, 0, 0},
    {"qwen2-1.5b", "Qwen2ForCausalLM", 1536, 8960, 28, 12, 2, 128, 151936, 32768, 1000000.0, 1, 1},
    {"smollm2-135m", "LlamaForCausalLM", 576, 1536, 30, 9, 3, 64, 49152, 8192, 100000.0, 1, 0},
    {"tiny", "LlamaForCausalLM", 64, 172, 2, 8, 4, 8, 512, 512, 10000.0, 1, 0},
};

const lq_synth_preset *lq_synth_find(const char *name) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}

const lq_synth_preset *lq_synth_preset_at(int i) {
    return i >= 0 && (size_t)i < sizeof presets / sizeof presets[0] ? &presets[i] : NULL;
}

json_t *lq_synth_config(const lq_synth_preset *p) {
    return json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:b, s:i, s:i, s:s, s:s}",
                     "architectures", p->arch, "model_type", strcmp(p->arch, "Qwen2ForCausalLM") ? "llama" : "qwen2",
                     "hidden_size", p->dim, "intermediate_size", p->hidden, "num_hidden_layers", p->layers,
                     "num_attention_heads", p->heads, "num_key_value_heads", p->kv_heads, "head_dim", p->head_dim,
                     "vocab_size", p->vocab, "max_position_embeddings", p->max_pos, "rms_norm_eps", 1e-5, "rope_theta",
                     p->rope_theta, "hidden_act", "silu", "tie_word_embeddings", p->tied, "bos_token_id", 1,
                     "eos_token_id", 2, "torch_dtype", "float16", "lq_synthetic",
                     "random weights for speed measurements only; never use for accuracy");
}

typedef struct {
    char name[128];
    int64_t rows, cols; /* cols 0: 1-D */
    float amp;          /* 0: constant 1 (norms) */
} tdesc;

static int describe(const lq_synth_preset *p, tdesc *t) {
    int n = 0;
    int64_t qd = (int64_t)p->heads * p->head_dim, kvd = (int64_t)p->kv_heads * p->head_dim;
#define T(r, c, a, ...)                                                                                            \
    do {                                                                                                           \
        if (t) {                                                                                                   \
            snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                                    \
            t[n].rows = (r);                                                                                       \
            t[n].cols = (c);                                                                                       \
            t[n].amp = (a);                                                                                        \
        }                                                                                                          \
        n++;                                                                                                       \
    } while (0)
    /* embeddings: unit-ish rows (the first rmsnorm rescales anyway) */
    T(p->vocab, p->dim, 1.0f, "model.embed_tokens.weight");
    for (int l = 0; l < p->layers; l++) {
        float a_d = sqrtf(3.0f / p->dim), a_q = sqrtf(3.0f / (float)qd), a_h = sqrtf(3.0f / p->hidden);
        T(p->dim, 0, 0, "model.layers.%d.input_layernorm.weight", l);
        T(qd, p->dim, a_d, "model.layers.%d.self_attn.q_proj.weight", l);
        T(kvd, p->dim, a_d, "model.layers.%d.self_attn.k_proj.weight", l);
        T(kvd, p->dim, a_d, "model.layers.%d.self_attn.v_proj.weight", l);
        if (p->attn_bias) {
            T(qd, 0, 0.02f, "model.layers.%d.self_attn.q_proj.bias", l);
            T(kvd, 0, 0.02f, "model.layers.%d.self_attn.k_proj.bias", l);
            T(kvd, 0, 0.02f, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        /* residual branches scaled down so the residual stream grows slowly with depth */
        T(p->dim, qd, a_q / sqrtf(2.0f * p->layers), "model.layers.%d.self_attn.o_proj.weight", l);
        T(p->dim, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        T(p->hidden, p->dim, a_d, "model.layers.%d.mlp.gate_proj.weight", l);
        T(p->hidden, p->dim, a_d, "model.layers.%d.mlp.up_proj.weight", l);
        T(p->dim, p->hidden, a_h / sqrtf(2.0f * p->layers), "model.layers.%d.mlp.down_proj.weight", l);
    }
    T(p->dim, 0, 0, "model.norm.weight");
    if (!p->tied) T(p->vocab, p->dim, sqrtf(3.0f / p->dim), "lm_head.weight");
#undef T
    return n;
}

int64_t lq_synth_n_params(const lq_synth_preset *p) {
    int n = describe(p, NULL);
    tdesc *t = calloc((size_t)n, sizeof *t);
    if (!t) return -1;
    describe(p, t);
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += t[i].rows * (t[i].cols ? t[i].cols : 1);
    free(t);
    return s;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fill out (ne elements of dtype) with tensor i's values. */
static void gen_tensor(const tdesc *t, int i, uint64_t seed, int dtype, float *f32, void *out) {
    size_t ne = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
    float a = t->amp;
    /* each tensor (and each 4096-chunk) has its own stream: results do not depend on threading */
    uint64_t base = seed ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull);
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < (ne + 4095) / 4096; c++) {
        uint64_t s = base + c * 0x9E3779B97F4A7C15ull;
        size_t e = (c + 1) * 4096 < ne ? (c + 1) * 4096 : ne;
        for (size_t j = c * 4096; j < e; j++)
            f32[j] = a == 0 ? 1.0f : a * (2.0f * (float)((splitmix(&s) >> 40) * (1.0 / 16777216.0)) - 1.0f);
    }
    if (out != (void *)f32) lq_convert_from_f32((lq_dtype)dtype, f32, out, ne);
}

lq_status lq_synth_checkpoint(const lq_synth_preset *p, int dtype, uint64_t seed, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    tdesc *t = NULL;
    float *f32 = NULL;
    *out = NULL;
    LQ_RETURN_IF(dtype != LQ_F16 && dtype != LQ_BF16 && dtype != LQ_F32, LQ_ERR_ARG, "synth: dtype must be f16, bf16 or f32");
    int n = describe(p, NULL);
    LQ_TRY(lq_calloc((void **)&t, (size_t)n, sizeof *t, "tensor list"));
    describe(p, t);
    LQ_TRY(lq_checkpoint_new(&ck, p->name, "synthetic"));
    size_t es = lq_dtype_size((lq_dtype)dtype), max_elems = 0;
    for (int i = 0; i < n; i++) {
        size_t ne = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (ne > max_elems) max_elems = ne;
    }
    if (dtype != LQ_F32) LQ_TRY(lq_malloc((void **)&f32, max_elems * sizeof(float), "synth buffer"));
    for (int i = 0; i < n; i++) {
        size_t ne = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        void *buf;
        LQ_TRY(lq_checkpoint_alloc(ck, ne * es, &buf));
        gen_tensor(&t[i], i, seed, dtype, dtype == LQ_F32 ? buf : f32, buf);
        int64_t shape[2] = {t[i].rows, t[i].cols};
        LQ_TRY(lq_checkpoint_add_tensor(ck, t[i].name, (lq_dtype)dtype, t[i].cols ? 2 : 1, shape, buf, ne * es));
    }
    ck->config = lq_synth_config(p);
    LQ_FAIL_IF(!ck->config, LQ_ERR_NOMEM, "out of memory");
    *out = ck;
    ck = NULL;
fail:
    lq_checkpoint_free(ck);
    free(t);
    free(f32);
    return st;
}

lq_status lq_synth_write(const lq_synth_preset *p, const char *out_dir, int dtype, uint64_t seed,
                         void (*progress)(void *ud, int done, int total), void *ud) {
    lq_status st = LQ_OK;
    tdesc *t = NULL;
    json_t *hdr = NULL, *cfg = NULL;
    char *hjson = NULL, *cjson = NULL, path[4096];
    float *f32 = NULL;
    void *out = NULL;
    lq_atomic_file af = {.fd = -1}, cf = {.fd = -1};
    int opened = 0, copened = 0;
    LQ_RETURN_IF(dtype != LQ_F16 && dtype != LQ_BF16 && dtype != LQ_F32, LQ_ERR_ARG, "synth: dtype must be f16, bf16 or f32");
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return lq_error(LQ_ERR_IO, "%s: cannot create directory: %s", out_dir, strerror(errno));
    int n = describe(p, NULL);
    LQ_TRY(lq_calloc((void **)&t, (size_t)n, sizeof *t, "tensor list"));
    describe(p, t);
    size_t es = lq_dtype_size((lq_dtype)dtype), off = 0, max_elems = 0;
    hdr = json_object();
    for (int i = 0; i < n; i++) {
        size_t ne = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (ne > max_elems) max_elems = ne;
        json_t *sh = t[i].cols ? json_pack("[I,I]", (json_int_t)t[i].rows, (json_int_t)t[i].cols)
                               : json_pack("[I]", (json_int_t)t[i].rows);
        json_object_set_new(hdr, t[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", lq_dtype_name((lq_dtype)dtype), "shape", sh,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + ne * es)));
        off += ne * es;
    }
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s, s:s}", "format", "pt", "lq_synthetic", "random weights"));
    hjson = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    LQ_FAIL_IF(!hjson, LQ_ERR_NOMEM, "out of memory");
    size_t hl = strlen(hjson), padded = (hl + 7) & ~(size_t)7;
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    LQ_TRY(lq_atomic_open(&af, path));
    opened = 1;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    LQ_TRY(lq_atomic_write(&af, lenb, 8));
    LQ_TRY(lq_atomic_write(&af, hjson, hl));
    LQ_TRY(lq_atomic_write(&af, "        ", padded - hl));
    LQ_TRY(lq_malloc((void **)&f32, max_elems * sizeof(float), "synth buffer"));
    LQ_TRY(lq_malloc(&out, max_elems * es, "synth buffer"));
    for (int i = 0; i < n; i++) {
        size_t ne = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        gen_tensor(&t[i], i, seed, dtype, f32, out);
        LQ_TRY(lq_atomic_write(&af, out, ne * es));
        if (progress) progress(ud, i + 1, n);
    }
    opened = 0;
    LQ_TRY(lq_atomic_commit(&af));
    cfg = lq_synth_config(p);
    json_object_set_new(cfg, "torch_dtype",
                        json_string(dtype == LQ_F16 ? "float16" : dtype == LQ_BF16 ? "bfloat16" : "float32"));
    cjson = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    LQ_FAIL_IF(!cjson, LQ_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    LQ_TRY(lq_atomic_open(&cf, path));
    copened = 1;
    LQ_TRY(lq_atomic_write(&cf, cjson, strlen(cjson)));
    copened = 0;
    LQ_TRY(lq_atomic_commit(&cf));
fail:
    if (opened) lq_atomic_abort(&af);
    if (copened) lq_atomic_abort(&cf);
    free(t);
    free(f32);
    free(out);
    free(hjson);
    free(cjson);
    if (hdr) json_decref(hdr);
    if (cfg) json_decref(cfg);
    return st;
}
