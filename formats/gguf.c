/* gguf.c — GGUF (llama.cpp) reader: validating parser, ggml dequantizers, and
 * the mapping of llama / qwen2 GGUF files to an HF-layout lq_checkpoint.
 * The file format is documented in lq_gguf.h.
 *
 * Why it is this strict: a GGUF's counts, lengths and offsets all come from the
 * file, so each is checked against the bytes actually present (with
 * overflow-checked arithmetic) before anything is allocated or read; the
 * parser is fuzzed by tests/fuzz/fuzz_gguf.c. Errors name the file, the field
 * (key or tensor name) and the offending value.
 * Tested by tests/test_gguf.c: make BUILD=build-gguf build-gguf/tests/test_gguf */
#include "lq_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libquant/lq_tokenizer.h"
#include "lq_formats.h"

/* Deeper nesting serves no real file and would let a small input drive deep
 * recursion. */
#define LQ_GGUF_MAX_DEPTH 8
/* Sizes of the smallest possible records, to bound counts by the bytes left. */
#define MIN_KV_BYTES 13     /* u64 key length + u32 type + 1-byte value */
#define MIN_TENSOR_BYTES 24 /* u64 name length + u32 n_dims + u32 type + u64 offset */
/* file offsets (u64) are used as size_t */
static_assert(SIZE_MAX >= UINT64_MAX, "lq's GGUF reader needs a 64-bit size_t");

/* ------------------------------------------------------------------------ */
/* type tables                                                              */

static const lq_ggml_traits k_traits[LQ_GGML_TYPE_COUNT] = {
    [LQ_GGML_F32] = {"F32", 1, 4, lq_dequant_f32_ref},
    [LQ_GGML_F16] = {"F16", 1, 2, lq_dequant_f16_ref},
    [LQ_GGML_Q4_0] = {"Q4_0", LQ_QK4_0, sizeof(lq_block_q4_0), lq_dequant_q4_0_ref},
    [LQ_GGML_Q4_1] = {"Q4_1", LQ_QK4_1, sizeof(lq_block_q4_1), lq_dequant_q4_1_ref},
    [LQ_GGML_Q5_0] = {"Q5_0", LQ_QK5_0, sizeof(lq_block_q5_0), lq_dequant_q5_0_ref},
    [LQ_GGML_Q5_1] = {"Q5_1", LQ_QK5_1, sizeof(lq_block_q5_1), lq_dequant_q5_1_ref},
    [LQ_GGML_Q8_0] = {"Q8_0", LQ_QK8_0, sizeof(lq_block_q8_0), lq_dequant_q8_0_ref},
    [LQ_GGML_Q8_1] = {"Q8_1", 32, 36, NULL},
    [LQ_GGML_Q2_K] = {"Q2_K", LQ_QK_K, sizeof(lq_block_q2_K), lq_dequant_q2_K_ref},
    [LQ_GGML_Q3_K] = {"Q3_K", LQ_QK_K, sizeof(lq_block_q3_K), lq_dequant_q3_K_ref},
    [LQ_GGML_Q4_K] = {"Q4_K", LQ_QK_K, sizeof(lq_block_q4_K), lq_dequant_q4_K_ref},
    [LQ_GGML_Q5_K] = {"Q5_K", LQ_QK_K, sizeof(lq_block_q5_K), lq_dequant_q5_K_ref},
    [LQ_GGML_Q6_K] = {"Q6_K", LQ_QK_K, sizeof(lq_block_q6_K), lq_dequant_q6_K_ref},
    [LQ_GGML_Q8_K] = {"Q8_K", LQ_QK_K, sizeof(lq_block_q8_K), lq_dequant_q8_K_ref},
    /* sizes known (so files holding them still validate), no dequantizer */
    [LQ_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66, NULL},
    [LQ_GGML_IQ2_XS] = {"IQ2_XS", 256, 74, NULL},
    [LQ_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98, NULL},
    [LQ_GGML_IQ1_S] = {"IQ1_S", 256, 50, NULL},
    [LQ_GGML_IQ4_NL] = {"IQ4_NL", 32, 18, NULL},
    [LQ_GGML_IQ3_S] = {"IQ3_S", 256, 110, NULL},
    [LQ_GGML_IQ2_S] = {"IQ2_S", 256, 82, NULL},
    [LQ_GGML_IQ4_XS] = {"IQ4_XS", 256, 136, NULL},
    [LQ_GGML_I8] = {"I8", 1, 1, NULL},
    [LQ_GGML_I16] = {"I16", 1, 2, NULL},
    [LQ_GGML_I32] = {"I32", 1, 4, NULL},
    [LQ_GGML_I64] = {"I64", 1, 8, NULL},
    [LQ_GGML_F64] = {"F64", 1, 8, lq_dequant_f64_ref},
    [LQ_GGML_IQ1_M] = {"IQ1_M", 256, 56, NULL},
    [LQ_GGML_BF16] = {"BF16", 1, 2, lq_dequant_bf16_ref},
    [LQ_GGML_TQ1_0] = {"TQ1_0", 256, 54, NULL},
    [LQ_GGML_TQ2_0] = {"TQ2_0", 256, 66, NULL},
    [LQ_GGML_MXFP4] = {"MXFP4", 32, 17, NULL},
};

const lq_ggml_traits *lq_ggml_type_traits(uint32_t type) {
    if (type >= LQ_GGML_TYPE_COUNT || k_traits[type].name == NULL) return NULL;
    return &k_traits[type];
}

const char *lq_ggml_type_name(uint32_t type) {
    const lq_ggml_traits *t = lq_ggml_type_traits(type);
    return t ? t->name : "?";
}

static const char *const k_vtype_names[LQ_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
/* bytes of a fixed-size value; 0 for string and array */
static const uint8_t k_vtype_size[LQ_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lq_gguf_vtype_name(uint32_t t) { return t < LQ_GGUF_VTYPE_COUNT ? k_vtype_names[t] : "?"; }

/* ------------------------------------------------------------------------ */
/* little-endian loads (any alignment, any host)                            */

static inline uint64_t le_load(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)le_load(p, 2); }
static inline uint32_t le32(const uint8_t *p) { return (uint32_t)le_load(p, 4); }
static inline uint64_t le64(const uint8_t *p) { return le_load(p, 8); }
static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline double f64_from_bits(uint64_t u) {
    double f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ------------------------------------------------------------------------ */
/* dequantizers: ggml's arithmetic, one block copied out at a time          */

void lq_dequant_f32_ref(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void lq_dequant_f16_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lq_f16_to_f32(le16(p + 2 * i));
}

void lq_dequant_bf16_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lq_bf16_to_f32(le16(p + 2 * i));
}

void lq_dequant_f64_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)f64_from_bits(le64(p + 8 * i));
}

void lq_dequant_q4_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK4_0 == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK4_0; b++, dst += LQ_QK4_0) {
        lq_block_q4_0 x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d);
        for (int j = 0; j < LQ_QK4_0 / 2; j++) {
            dst[j] = ((x.qs[j] & 0x0F) - 8) * d;
            dst[j + LQ_QK4_0 / 2] = ((x.qs[j] >> 4) - 8) * d;
        }
    }
}

void lq_dequant_q4_1_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK4_1 == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK4_1; b++, dst += LQ_QK4_1) {
        lq_block_q4_1 x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d), m = lq_f16_to_f32(x.m);
        for (int j = 0; j < LQ_QK4_1 / 2; j++) {
            dst[j] = (x.qs[j] & 0x0F) * d + m;
            dst[j + LQ_QK4_1 / 2] = (x.qs[j] >> 4) * d + m;
        }
    }
}

void lq_dequant_q5_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK5_0 == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK5_0; b++, dst += LQ_QK5_0) {
        lq_block_q5_0 x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d);
        const uint32_t qh = le32(x.qh);
        for (int j = 0; j < LQ_QK5_0 / 2; j++) {
            const int x0 = ((x.qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((x.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            dst[j] = x0 * d;
            dst[j + LQ_QK5_0 / 2] = x1 * d;
        }
    }
}

void lq_dequant_q5_1_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK5_1 == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK5_1; b++, dst += LQ_QK5_1) {
        lq_block_q5_1 x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d), m = lq_f16_to_f32(x.m);
        const uint32_t qh = le32(x.qh);
        for (int j = 0; j < LQ_QK5_1 / 2; j++) {
            const int x0 = (x.qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            dst[j] = x0 * d + m;
            dst[j + LQ_QK5_1 / 2] = x1 * d + m;
        }
    }
}

void lq_dequant_q8_0_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK8_0 == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK8_0; b++, dst += LQ_QK8_0) {
        lq_block_q8_0 x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d);
        for (int j = 0; j < LQ_QK8_0; j++) dst[j] = x.qs[j] * d;
    }
}

void lq_dequant_q2_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++) {
        lq_block_q2_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d), dmin = lq_f16_to_f32(x.dmin);
        const uint8_t *q = x.qs;
        int is = 0;
        /* two halves of 128; in each, 4 bit-planes (shift) x 2 sub-blocks of 16 */
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int s = 0; s < 2; s++) {
                    const uint8_t sc = x.scales[is++];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *dst++ = dl * ((q[l + 16 * s] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void lq_dequant_q3_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++) {
        lq_block_q3_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d_all = lq_f16_to_f32(x.d);
        /* 16 six-bit scales: low 4 bits in bytes 0..7 (low then high nibbles),
         * high 2 bits in bytes 8..11; stored biased by 32 */
        int8_t scales[16];
        for (int is = 0; is < 16; is++) {
            int lo = is < 8 ? (x.scales[is] & 0xF) : (x.scales[is - 8] >> 4);
            int hi = (x.scales[8 + is % 4] >> (2 * (is / 4))) & 3;
            scales[is] = (int8_t)((lo | (hi << 4)) - 32);
        }
        const uint8_t *q = x.qs;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int s = 0; s < 2; s++) {
                    const float dl = d_all * scales[is++];
                    for (int l = 16 * s; l < 16 * s + 16; l++)
                        *dst++ = dl * (((q[l] >> shift) & 3) - ((x.hmask[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K block, ggml's packing */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

void lq_dequant_q4_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++) {
        lq_block_q4_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d), dmin = lq_f16_to_f32(x.dmin);
        const uint8_t *q = x.qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            scale_min_k4(is, x.scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, x.scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void lq_dequant_q5_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++) {
        lq_block_q5_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d), dmin = lq_f16_to_f32(x.dmin);
        const uint8_t *ql = x.qs;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            scale_min_k4(is, x.scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, x.scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * ((ql[l] & 0xF) + (x.qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * ((ql[l] >> 4) + (x.qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void lq_dequant_q6_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++) {
        lq_block_q6_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        const float d = lq_f16_to_f32(x.d);
        const uint8_t *ql = x.ql, *qh = x.qh;
        const int8_t *sc = x.scales;
        for (int half = 0; half < 2; half++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * sc[is + 0] * q1;
                dst[l + 32] = d * sc[is + 2] * q2;
                dst[l + 64] = d * sc[is + 4] * q3;
                dst[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void lq_dequant_q8_K_ref(const void *src, float *dst, int64_t n) {
    assert(n % LQ_QK_K == 0);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LQ_QK_K; b++, dst += LQ_QK_K) {
        lq_block_q8_K x;
        memcpy(&x, p + (size_t)b * sizeof x, sizeof x);
        for (int j = 0; j < LQ_QK_K; j++) dst[j] = x.d * x.qs[j];
    }
}

/* ------------------------------------------------------------------------ */
/* parser                                                                   */

typedef struct {
    const uint8_t *p;
    size_t n, off;
    const char *path;
    char field[192]; /* what is being read, for messages */
} reader;

#define FIELD(r, ...) snprintf((r)->field, sizeof (r)->field, __VA_ARGS__)

static lq_status need(reader *r, uint64_t k, const char *what) {
    if (k > r->n - r->off)
        return lq_error(LQ_ERR_FORMAT,
                        "%s: %s: truncated: %s needs %llu bytes at offset %zu but only %zu remain",
                        r->path, r->field, what, (unsigned long long)k, r->off, r->n - r->off);
    return LQ_OK;
}

static lq_status rd_u32(reader *r, uint32_t *v, const char *what) {
    LQ_FORWARD(need(r, 4, what));
    *v = le32(r->p + r->off);
    r->off += 4;
    return LQ_OK;
}

static lq_status rd_u64(reader *r, uint64_t *v, const char *what) {
    LQ_FORWARD(need(r, 8, what));
    *v = le64(r->p + r->off);
    r->off += 8;
    return LQ_OK;
}

static lq_status rd_str(reader *r, lq_gguf_str *s, const char *what) {
    uint64_t len;
    LQ_FORWARD(rd_u64(r, &len, what));
    if (len > r->n - r->off)
        return lq_error(LQ_ERR_FORMAT,
                        "%s: %s: %s length %llu runs past the end of the file (offset %zu, %zu "
                        "bytes left)",
                        r->path, r->field, what, (unsigned long long)len, r->off, r->n - r->off);
    s->ptr = (const char *)r->p + r->off;
    s->len = len;
    r->off += (size_t)len;
    return LQ_OK;
}

/* NUL-terminated copy of a file string; strings with NUL bytes are refused
 * because every consumer (keys, names, tokens) treats them as C strings. */
static lq_status str_dup(const lq_gguf_str *s, const char *path, const char *field, char **out) {
    if (memchr(s->ptr, 0, (size_t)s->len))
        return lq_error(LQ_ERR_FORMAT, "%s: %s: string contains a NUL byte", path, field);
    char *c;
    LQ_FORWARD(lq_malloc((void **)&c, (size_t)s->len + 1, field));
    memcpy(c, s->ptr, (size_t)s->len);
    c[s->len] = 0;
    *out = c;
    return LQ_OK;
}

static void value_free(lq_gguf_value *v) {
    if (v->items) {
        for (uint64_t i = 0; i < v->n; i++) value_free(&v->items[i]);
        free(v->items);
    }
    free(v->strs);
    v->items = NULL;
    v->strs = NULL;
}

static lq_status parse_value(reader *r, uint32_t type, lq_gguf_value *v, int depth) {
    if (type >= LQ_GGUF_VTYPE_COUNT)
        return lq_error(LQ_ERR_FORMAT, "%s: %s: unknown value type %u", r->path, r->field, type);
    v->type = (lq_gguf_vtype)type;
    if (type == LQ_GGUF_STRING) return rd_str(r, &v->str, "string");
    if (type != LQ_GGUF_ARRAY) {
        int sz = k_vtype_size[type];
        LQ_FORWARD(need(r, (uint64_t)sz, lq_gguf_vtype_name(type)));
        uint64_t u = le_load(r->p + r->off, sz);
        r->off += (size_t)sz;
        switch (type) {
        case LQ_GGUF_I8: v->i = (int8_t)u; break;
        case LQ_GGUF_I16: v->i = (int16_t)u; break;
        case LQ_GGUF_I32: v->i = (int32_t)u; break;
        case LQ_GGUF_I64: v->i = (int64_t)u; break;
        case LQ_GGUF_F32: v->f = f32_from_bits((uint32_t)u); break;
        case LQ_GGUF_F64: v->f = f64_from_bits(u); break;
        case LQ_GGUF_BOOL:
            if (u > 1)
                return lq_error(LQ_ERR_FORMAT, "%s: %s: bool value %llu is neither 0 nor 1", r->path,
                                r->field, (unsigned long long)u);
            v->u = u;
            break;
        default: v->u = u; break;
        }
        return LQ_OK;
    }
    /* array */
    if (depth >= LQ_GGUF_MAX_DEPTH)
        return lq_error(LQ_ERR_FORMAT, "%s: %s: arrays nested deeper than %d", r->path, r->field,
                        LQ_GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    LQ_FORWARD(rd_u32(r, &et, "array element type"));
    if (et >= LQ_GGUF_VTYPE_COUNT)
        return lq_error(LQ_ERR_FORMAT, "%s: %s: unknown array element type %u", r->path, r->field,
                        et);
    LQ_FORWARD(rd_u64(r, &n, "array length"));
    /* every element takes at least min_sz bytes: bound n before allocating */
    uint64_t min_sz = et == LQ_GGUF_STRING ? 8 : et == LQ_GGUF_ARRAY ? 12 : k_vtype_size[et];
    if (n > (r->n - r->off) / min_sz)
        return lq_error(LQ_ERR_FORMAT,
                        "%s: %s: array of %llu %s elements cannot fit in the %zu bytes left",
                        r->path, r->field, (unsigned long long)n, lq_gguf_vtype_name(et),
                        r->n - r->off);
    v->elem_type = (lq_gguf_vtype)et;
    v->n = n;
    if (et == LQ_GGUF_STRING) {
        if (n) LQ_FORWARD(lq_calloc((void **)&v->strs, (size_t)n, sizeof *v->strs, r->field));
        for (uint64_t i = 0; i < n; i++) LQ_FORWARD(rd_str(r, &v->strs[i], "array string"));
    } else if (et == LQ_GGUF_ARRAY) {
        if (n) LQ_FORWARD(lq_calloc((void **)&v->items, (size_t)n, sizeof *v->items, r->field));
        for (uint64_t i = 0; i < n; i++)
            LQ_FORWARD(parse_value(r, LQ_GGUF_ARRAY, &v->items[i], depth + 1));
    } else {
        v->raw = r->p + r->off;
        if (et == LQ_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (v->raw[i] > 1)
                    return lq_error(LQ_ERR_FORMAT, "%s: %s: bool element %llu has value %u",
                                    r->path, r->field, (unsigned long long)i, v->raw[i]);
        r->off += (size_t)(n * min_sz); /* n * min_sz <= bytes left: no overflow */
    }
    return LQ_OK;
}

static int cmp_cstr_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort a copy of the names and compare neighbours: O(n log n), so a file with
 * millions of keys cannot make the check quadratic. Sets *dup to a duplicate
 * or NULL. */
static lq_status find_duplicate(const char **names, int64_t n, const char **dup) {
    *dup = NULL;
    if (n < 2) return LQ_OK;
    const char **s;
    LQ_FORWARD(lq_malloc((void **)&s, (size_t)n * sizeof *s, "name table"));
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_cstr_ptr);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(s[i - 1], s[i]) == 0) {
            *dup = s[i];
            break;
        }
    free(s);
    return LQ_OK;
}

/* Sort tensor indices by offset: a small merge sort (qsort would need a
 * global to reach the table). */
static void sort_by_offset(const lq_gguf_tensor *t, int64_t *idx, int64_t *tmp, int64_t n) {
    if (n < 2) return;
    int64_t h = n / 2;
    sort_by_offset(t, idx, tmp, h);
    sort_by_offset(t, idx + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = t[idx[j]].offset < t[idx[i]].offset ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

static lq_status parse_tensor_info(reader *r, int64_t i, lq_gguf_tensor *t) {
    lq_gguf_str name;
    FIELD(r, "tensor info #%lld name", (long long)i);
    LQ_FORWARD(rd_str(r, &name, "tensor name"));
    LQ_FORWARD(str_dup(&name, r->path, r->field, &t->name));
    FIELD(r, "tensor '%.96s'", t->name);
    LQ_FORWARD(rd_u32(r, &t->n_dims, "n_dims"));
    if (t->n_dims > 4)
        return lq_error(LQ_ERR_FORMAT, "%s: %s: n_dims %u exceeds 4", r->path, r->field, t->n_dims);
    int64_t n_elems = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        LQ_FORWARD(rd_u64(r, &ne, "dimension"));
        if (ne > (uint64_t)INT64_MAX)
            return lq_error(LQ_ERR_FORMAT, "%s: %s: dimension %u is %llu (negative as int64)",
                            r->path, r->field, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (__builtin_mul_overflow(n_elems, t->ne[d], &n_elems))
            return lq_error(LQ_ERR_FORMAT, "%s: %s: element count overflows at dimension %u (%lld)",
                            r->path, r->field, d, (long long)t->ne[d]);
    }
    t->n_elems = n_elems;
    LQ_FORWARD(rd_u32(r, &t->type, "type"));
    const lq_ggml_traits *tr = lq_ggml_type_traits(t->type);
    if (!tr)
        return lq_error(LQ_ERR_UNSUPPORTED, "%s: %s: unknown ggml tensor type %u", r->path,
                        r->field, t->type);
    if (t->ne[0] % tr->blck_size != 0)
        return lq_error(LQ_ERR_FORMAT,
                        "%s: %s: ne[0] = %lld is not a multiple of the %s block size %lld", r->path,
                        r->field, (long long)t->ne[0], tr->name, (long long)tr->blck_size);
    size_t nb;
    if (lq_mul_overflow((size_t)(n_elems / tr->blck_size), tr->type_size, &nb))
        return lq_error(LQ_ERR_FORMAT, "%s: %s: byte size overflows (%lld elements of %s)",
                        r->path, r->field, (long long)n_elems, tr->name);
    t->n_bytes = nb;
    LQ_FORWARD(rd_u64(r, &t->offset, "offset"));
    return LQ_OK;
}

lq_status lq_gguf_parse(const void *buf, size_t n, const char *path, lq_gguf **out) {
    lq_status st = LQ_OK;
    lq_gguf *g = NULL;
    int64_t *idx = NULL;
    const char **names = NULL;
    *out = NULL;
    if (!path) path = "<gguf>";
    reader r = {.p = buf, .n = buf ? n : 0, .off = 0, .path = path};
    LQ_FAIL_IF(!(g = calloc(1, sizeof *g)) || !(g->path = strdup(path)), LQ_ERR_NOMEM,
               "%s: out of memory", path);

    FIELD(&r, "header");
    LQ_FAIL_IF(r.n < 4 || memcmp(r.p, "GGUF", 4) != 0, LQ_ERR_FORMAT,
               "%s: header: bad magic (expected \"GGUF\")", path);
    r.off = 4;
    LQ_TRY(rd_u32(&r, &g->version, "version"));
    LQ_FAIL_IF(g->version == 1, LQ_ERR_UNSUPPORTED,
               "%s: header: GGUF version 1 is not supported (only versions 2 and 3)", path);
    LQ_FAIL_IF(g->version == 0x02000000u || g->version == 0x03000000u, LQ_ERR_UNSUPPORTED,
               "%s: header: version 0x%08x: a big-endian GGUF, which lq does not read", path,
               g->version);
    LQ_FAIL_IF(g->version != 2 && g->version != 3, LQ_ERR_UNSUPPORTED,
               "%s: header: unknown GGUF version %u (lq reads 2 and 3)", path, g->version);
    uint64_t n_tensors, n_kv;
    LQ_TRY(rd_u64(&r, &n_tensors, "tensor count"));
    LQ_TRY(rd_u64(&r, &n_kv, "key-value count"));
    LQ_FAIL_IF(n_kv > (r.n - r.off) / MIN_KV_BYTES, LQ_ERR_FORMAT,
               "%s: header: key-value count %llu cannot fit in a %zu-byte file", path,
               (unsigned long long)n_kv, r.n);
    LQ_FAIL_IF(n_tensors > (r.n - r.off) / MIN_TENSOR_BYTES, LQ_ERR_FORMAT,
               "%s: header: tensor count %llu cannot fit in a %zu-byte file", path,
               (unsigned long long)n_tensors, r.n);

    /* key-value pairs */
    if (n_kv) LQ_TRY(lq_calloc((void **)&g->kv, (size_t)n_kv, sizeof *g->kv, "GGUF metadata"));
    for (uint64_t i = 0; i < n_kv; i++) {
        lq_gguf_kv *kv = &g->kv[i];
        lq_gguf_str key;
        uint32_t type;
        FIELD(&r, "key #%llu", (unsigned long long)i);
        LQ_TRY(rd_str(&r, &key, "key"));
        LQ_TRY(str_dup(&key, path, r.field, &kv->key));
        g->n_kv++;
        FIELD(&r, "key '%.96s'", kv->key);
        LQ_TRY(rd_u32(&r, &type, "value type"));
        LQ_TRY(parse_value(&r, type, &kv->v, 0));
    }
    if (g->n_kv > 1) {
        const char *dup;
        LQ_TRY(lq_malloc((void **)&names, (size_t)g->n_kv * sizeof *names, "key table"));
        for (int64_t i = 0; i < g->n_kv; i++) names[i] = g->kv[i].key;
        LQ_TRY(find_duplicate(names, g->n_kv, &dup));
        LQ_FAIL_IF(dup, LQ_ERR_FORMAT, "%s: key '%.96s' appears more than once", path, dup);
        free(names);
        names = NULL;
    }

    /* alignment */
    g->alignment = 32;
    const lq_gguf_value *av = lq_gguf_get(g, "general.alignment");
    if (av) {
        int64_t a;
        LQ_TRY(lq_gguf_get_i64(g, "general.alignment", &a));
        LQ_FAIL_IF(a <= 0 || a > (1 << 30) || (a & (a - 1)) != 0, LQ_ERR_FORMAT,
                   "%s: key 'general.alignment': value %lld is not a power of two in [1, 2^30]",
                   path, (long long)a);
        g->alignment = (uint32_t)a;
    }

    /* tensor infos */
    if (n_tensors)
        LQ_TRY(lq_calloc((void **)&g->tensors, (size_t)n_tensors, sizeof *g->tensors,
                         "GGUF tensor table"));
    for (uint64_t i = 0; i < n_tensors; i++) {
        lq_gguf_tensor *t = &g->tensors[i];
        st = parse_tensor_info(&r, (int64_t)i, t);
        if (t->name) g->n_tensors++;
        if (st != LQ_OK) goto fail;
    }
    if (g->n_tensors > 1) {
        const char *dup;
        LQ_TRY(lq_malloc((void **)&names, (size_t)g->n_tensors * sizeof *names, "name table"));
        for (int64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
        LQ_TRY(find_duplicate(names, g->n_tensors, &dup));
        LQ_FAIL_IF(dup, LQ_ERR_FORMAT, "%s: tensor '%.96s' appears more than once", path, dup);
    }

    /* data section: starts at the next multiple of the alignment */
    size_t data_off;
    LQ_FAIL_IF(lq_add_overflow(r.off, g->alignment - 1, &data_off), LQ_ERR_FORMAT,
               "%s: data section offset overflows", path);
    data_off &= ~(size_t)(g->alignment - 1);
    g->data_offset = data_off;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lq_gguf_tensor *t = &g->tensors[i];
        LQ_FAIL_IF(t->offset % g->alignment != 0, LQ_ERR_FORMAT,
                   "%s: tensor '%.96s': offset %llu is not a multiple of the alignment %u", path,
                   t->name, (unsigned long long)t->offset, g->alignment);
        size_t start, end;
        LQ_FAIL_IF(lq_add_overflow(data_off, (size_t)t->offset, &start) ||
                       lq_add_overflow(start, t->n_bytes, &end) || end > r.n,
                   LQ_ERR_FORMAT,
                   "%s: tensor '%.96s': data at offset %llu (+%zu bytes, data section at %zu) "
                   "lies outside the %zu-byte file",
                   path, t->name, (unsigned long long)t->offset, t->n_bytes, data_off, r.n);
        t->data = r.p + start;
    }
    if (g->n_tensors > 1) {
        int64_t nt = g->n_tensors;
        LQ_TRY(lq_malloc((void **)&idx, (size_t)nt * 2 * sizeof *idx, "tensor order"));
        for (int64_t i = 0; i < nt; i++) idx[i] = i;
        sort_by_offset(g->tensors, idx, idx + nt, nt);
        const lq_gguf_tensor *prev = NULL;
        for (int64_t k = 0; k < nt; k++) {
            const lq_gguf_tensor *t = &g->tensors[idx[k]];
            if (t->n_bytes == 0) continue; /* empty tensors occupy nothing */
            LQ_FAIL_IF(prev && prev->offset + prev->n_bytes > t->offset, LQ_ERR_FORMAT,
                       "%s: tensors '%.96s' [%llu, +%zu) and '%.96s' [%llu, +%zu) overlap", path,
                       prev->name, (unsigned long long)prev->offset, prev->n_bytes, t->name,
                       (unsigned long long)t->offset, t->n_bytes);
            prev = t;
        }
    }
    free(idx);
    free(names);
    *out = g;
    return LQ_OK;
fail:
    free(idx);
    free(names);
    lq_gguf_free(g);
    return st;
}

lq_status lq_gguf_open(const char *path, lq_gguf **out) {
    lq_mmap m;
    *out = NULL;
    LQ_FORWARD(lq_mmap_open(path, &m));
    lq_status st = lq_gguf_parse(m.data, m.n_bytes, path, out);
    if (st != LQ_OK) {
        lq_mmap_close(&m);
        return st;
    }
    (*out)->map = m;
    return LQ_OK;
}

void lq_gguf_free(lq_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        value_free(&g->kv[i].v);
    }
    free(g->kv);
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->map.data) lq_mmap_close(&g->map);
    free(g->path);
    free(g);
}

/* ------------------------------------------------------------------------ */
/* metadata accessors                                                       */

const lq_gguf_value *lq_gguf_get(const lq_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i].v;
    return NULL;
}

static lq_status get_typed(const lq_gguf *g, const char *key, const lq_gguf_value **v) {
    *v = lq_gguf_get(g, key);
    LQ_RETURN_IF(!*v, LQ_ERR_NOTFOUND, "%s: key '%s' is missing", g->path, key);
    return LQ_OK;
}

static int vtype_is_int(uint32_t t) {
    return t <= LQ_GGUF_I32 || t == LQ_GGUF_BOOL || t == LQ_GGUF_U64 || t == LQ_GGUF_I64;
}
static int vtype_is_signed(uint32_t t) {
    return t == LQ_GGUF_I8 || t == LQ_GGUF_I16 || t == LQ_GGUF_I32 || t == LQ_GGUF_I64;
}

lq_status lq_gguf_get_i64(const lq_gguf *g, const char *key, int64_t *out) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_typed(g, key, &v));
    LQ_RETURN_IF(!vtype_is_int(v->type) || v->type == LQ_GGUF_F32, LQ_ERR_FORMAT,
                 "%s: key '%s' has type %s, expected an integer", g->path, key,
                 lq_gguf_vtype_name(v->type));
    if (vtype_is_signed(v->type)) {
        *out = v->i;
    } else {
        LQ_RETURN_IF(v->u > (uint64_t)INT64_MAX, LQ_ERR_FORMAT, "%s: key '%s': value %llu is too large",
                     g->path, key, (unsigned long long)v->u);
        *out = (int64_t)v->u;
    }
    return LQ_OK;
}

lq_status lq_gguf_get_f64(const lq_gguf *g, const char *key, double *out) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_typed(g, key, &v));
    if (v->type == LQ_GGUF_F32 || v->type == LQ_GGUF_F64) {
        *out = v->f;
    } else if (vtype_is_int(v->type) && v->type != LQ_GGUF_BOOL) {
        *out = vtype_is_signed(v->type) ? (double)v->i : (double)v->u;
    } else {
        return lq_error(LQ_ERR_FORMAT, "%s: key '%s' has type %s, expected a number", g->path, key,
                        lq_gguf_vtype_name(v->type));
    }
    return LQ_OK;
}

lq_status lq_gguf_get_bool(const lq_gguf *g, const char *key, int *out) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_typed(g, key, &v));
    LQ_RETURN_IF(v->type != LQ_GGUF_BOOL, LQ_ERR_FORMAT, "%s: key '%s' has type %s, expected bool",
                 g->path, key, lq_gguf_vtype_name(v->type));
    *out = v->u != 0;
    return LQ_OK;
}

lq_status lq_gguf_get_str(const lq_gguf *g, const char *key, char **out) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_typed(g, key, &v));
    LQ_RETURN_IF(v->type != LQ_GGUF_STRING, LQ_ERR_FORMAT,
                 "%s: key '%s' has type %s, expected string", g->path, key,
                 lq_gguf_vtype_name(v->type));
    char field[160];
    snprintf(field, sizeof field, "key '%s'", key);
    return str_dup(&v->str, g->path, field, out);
}

static lq_status get_array(const lq_gguf *g, const char *key, const lq_gguf_value **v) {
    LQ_FORWARD(get_typed(g, key, v));
    LQ_RETURN_IF((*v)->type != LQ_GGUF_ARRAY, LQ_ERR_FORMAT,
                 "%s: key '%s' has type %s, expected an array", g->path, key,
                 lq_gguf_vtype_name((*v)->type));
    return LQ_OK;
}

lq_status lq_gguf_get_str_array(const lq_gguf *g, const char *key, char ***out, size_t *n) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_array(g, key, &v));
    LQ_RETURN_IF(v->elem_type != LQ_GGUF_STRING, LQ_ERR_FORMAT,
                 "%s: key '%s' is an array of %s, expected strings", g->path, key,
                 lq_gguf_vtype_name(v->elem_type));
    /* one allocation: n pointers, then the NUL-terminated strings */
    size_t total, chars = 0;
    LQ_RETURN_IF(lq_mul_overflow((size_t)v->n, sizeof(char *), &total), LQ_ERR_FORMAT,
                 "%s: key '%s': array too large", g->path, key);
    for (uint64_t i = 0; i < v->n; i++) {
        LQ_RETURN_IF(memchr(v->strs[i].ptr, 0, (size_t)v->strs[i].len) != NULL, LQ_ERR_FORMAT,
                     "%s: key '%s': element %llu contains a NUL byte", g->path, key,
                     (unsigned long long)i);
        LQ_RETURN_IF(lq_add_overflow(chars, (size_t)v->strs[i].len + 1, &chars), LQ_ERR_FORMAT,
                     "%s: key '%s': strings too large", g->path, key);
    }
    LQ_RETURN_IF(lq_add_overflow(total, chars, &total), LQ_ERR_FORMAT,
                 "%s: key '%s': strings too large", g->path, key);
    char **arr;
    LQ_FORWARD(lq_malloc((void **)&arr, total ? total : 1, key));
    char *c = (char *)(arr + v->n);
    for (uint64_t i = 0; i < v->n; i++) {
        arr[i] = c;
        memcpy(c, v->strs[i].ptr, (size_t)v->strs[i].len);
        c += v->strs[i].len;
        *c++ = 0;
    }
    *out = arr;
    *n = (size_t)v->n;
    return LQ_OK;
}

/* element i of a fixed-size numeric array as double, checking it is integral
 * when `integral` is set */
static double num_elem(const lq_gguf_value *v, uint64_t i) {
    int sz = k_vtype_size[v->elem_type];
    uint64_t u = le_load(v->raw + i * (uint64_t)sz, sz);
    switch (v->elem_type) {
    case LQ_GGUF_I8: return (int8_t)u;
    case LQ_GGUF_I16: return (int16_t)u;
    case LQ_GGUF_I32: return (int32_t)u;
    case LQ_GGUF_I64: return (double)(int64_t)u;
    case LQ_GGUF_F32: return f32_from_bits((uint32_t)u);
    case LQ_GGUF_F64: return f64_from_bits(u);
    default: return (double)u;
    }
}

static lq_status get_num_array(const lq_gguf *g, const char *key, const lq_gguf_value **v) {
    LQ_FORWARD(get_array(g, key, v));
    uint32_t et = (*v)->elem_type;
    LQ_RETURN_IF(et == LQ_GGUF_STRING || et == LQ_GGUF_ARRAY || et == LQ_GGUF_BOOL, LQ_ERR_FORMAT,
                 "%s: key '%s' is an array of %s, expected numbers", g->path, key,
                 lq_gguf_vtype_name(et));
    return LQ_OK;
}

lq_status lq_gguf_get_f32_array(const lq_gguf *g, const char *key, float **out, size_t *n) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_num_array(g, key, &v));
    float *a;
    LQ_FORWARD(lq_calloc((void **)&a, v->n ? (size_t)v->n : 1, sizeof *a, key));
    for (uint64_t i = 0; i < v->n; i++) a[i] = (float)num_elem(v, i);
    *out = a;
    *n = (size_t)v->n;
    return LQ_OK;
}

lq_status lq_gguf_get_i32_array(const lq_gguf *g, const char *key, int32_t **out, size_t *n) {
    const lq_gguf_value *v;
    LQ_FORWARD(get_num_array(g, key, &v));
    LQ_RETURN_IF(v->elem_type == LQ_GGUF_F32 || v->elem_type == LQ_GGUF_F64, LQ_ERR_FORMAT,
                 "%s: key '%s' is an array of %s, expected integers", g->path, key,
                 lq_gguf_vtype_name(v->elem_type));
    int32_t *a;
    LQ_FORWARD(lq_calloc((void **)&a, v->n ? (size_t)v->n : 1, sizeof *a, key));
    for (uint64_t i = 0; i < v->n; i++) {
        double d = num_elem(v, i);
        if (d < INT32_MIN || d > INT32_MAX) {
            free(a);
            return lq_error(LQ_ERR_FORMAT, "%s: key '%s': element %llu (%.0f) does not fit in int32",
                            g->path, key, (unsigned long long)i, d);
        }
        a[i] = (int32_t)d;
    }
    *out = a;
    *n = (size_t)v->n;
    return LQ_OK;
}

const lq_gguf_tensor *lq_gguf_find_tensor(const lq_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

lq_status lq_gguf_tensor_to_f32(const lq_gguf *g, const lq_gguf_tensor *t, float *dst) {
    const lq_ggml_traits *tr = lq_ggml_type_traits(t->type);
    LQ_RETURN_IF(!tr || !tr->to_f32, LQ_ERR_UNSUPPORTED,
                 "%s: tensor '%s' has type %s (%u), which lq cannot dequantize", g->path, t->name,
                 lq_ggml_type_name(t->type), t->type);
    /* chunks of whole blocks across threads: each element is written once, so
     * the result does not depend on the thread count */
    const int64_t n_blocks = t->n_elems / tr->blck_size, chunk = 4096;
    const int64_t n_chunks = (n_blocks + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n_chunks > 1)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t b0 = c * chunk, nb = n_blocks - b0 < chunk ? n_blocks - b0 : chunk;
        tr->to_f32(t->data + (size_t)b0 * tr->type_size, dst + b0 * tr->blck_size,
                   nb * tr->blck_size);
    }
    return LQ_OK;
}

/* ------------------------------------------------------------------------ */
/* GGUF -> Hugging Face                                                     */

/* What a tensor is, so that its shape can be checked against the config. */
typedef enum {
    R_EMBED, R_OUT_NORM, R_LM_HEAD,
    R_ATTN_NORM, R_FFN_NORM, R_Q, R_K, R_V, R_O, R_GATE, R_UP, R_DOWN
} tensor_role;

static const struct {
    const char *gguf, *hf;
    tensor_role role;
} k_blk_names[] = {
    {"attn_norm", "input_layernorm", R_ATTN_NORM},
    {"ffn_norm", "post_attention_layernorm", R_FFN_NORM},
    {"attn_q", "self_attn.q_proj", R_Q},
    {"attn_k", "self_attn.k_proj", R_K},
    {"attn_v", "self_attn.v_proj", R_V},
    {"attn_output", "self_attn.o_proj", R_O},
    {"ffn_gate", "mlp.gate_proj", R_GATE},
    {"ffn_up", "mlp.up_proj", R_UP},
    {"ffn_down", "mlp.down_proj", R_DOWN},
};

/* GGUF name -> HF name, role, layer (-1 outside blocks), bias flag */
static lq_status map_name(const char *name, char *out, size_t out_size, tensor_role *role,
                          long *layer_out, int *is_bias) {
    static const struct {
        const char *gguf, *hf;
        tensor_role role;
    } top[] = {{"token_embd.weight", "model.embed_tokens.weight", R_EMBED},
               {"output_norm.weight", "model.norm.weight", R_OUT_NORM},
               {"output.weight", "lm_head.weight", R_LM_HEAD}};
    int n = -1;
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        if (strcmp(name, top[i].gguf) == 0) {
            n = snprintf(out, out_size, "%s", top[i].hf);
            *role = top[i].role, *layer_out = -1, *is_bias = 0;
        }
    /* blk.<layer>.<part>.<weight|bias>, layer plain decimal */
    if (n < 0 && strncmp(name, "blk.", 4) == 0) {
        const char *p = name + 4;
        long layer = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 7) layer = layer * 10 + (*p++ - '0'), digits++;
        const char *dot = *p == '.' ? strrchr(p + 1, '.') : NULL;
        if (digits > 0 && (digits == 1 || name[4] != '0') && dot &&
            (strcmp(dot, ".weight") == 0 || strcmp(dot, ".bias") == 0)) {
            p++;
            size_t plen = (size_t)(dot - p);
            for (size_t i = 0; i < sizeof k_blk_names / sizeof *k_blk_names; i++)
                if (strlen(k_blk_names[i].gguf) == plen && strncmp(p, k_blk_names[i].gguf, plen) == 0) {
                    n = snprintf(out, out_size, "model.layers.%ld.%s%s", layer, k_blk_names[i].hf, dot);
                    *role = k_blk_names[i].role, *layer_out = layer, *is_bias = dot[1] == 'b';
                    break;
                }
        }
    }
    if (n < 0) return lq_error(LQ_ERR_UNSUPPORTED, "tensor '%.96s' has no Hugging Face counterpart", name);
    LQ_RETURN_IF((size_t)n >= out_size, LQ_ERR_ARG, "tensor '%.96s': name buffer too small", name);
    return LQ_OK;
}

lq_status lq_gguf_hf_name(const char *name, char *out, size_t out_size) {
    tensor_role role;
    long layer;
    int is_bias;
    return map_name(name, out, out_size, &role, &layer, &is_bias);
}

typedef struct {
    int is_llama;               /* llama arch: q/k rows were permuted by the converter */
    int64_t n_layers, hidden, ffn, n_heads, n_kv_heads, head_dim, vocab, ctx;
    double eps, rope_theta;
} hparams;

/* optional key: keeps *out when absent */
static lq_status opt_i64(const lq_gguf *g, const char *key, int64_t *out) {
    if (!lq_gguf_get(g, key)) return LQ_OK;
    return lq_gguf_get_i64(g, key, out);
}
static lq_status opt_f64(const lq_gguf *g, const char *key, double *out) {
    if (!lq_gguf_get(g, key)) return LQ_OK;
    return lq_gguf_get_f64(g, key, out);
}
static lq_status opt_bool(const lq_gguf *g, const char *key, int *out) {
    if (!lq_gguf_get(g, key)) return LQ_OK;
    return lq_gguf_get_bool(g, key, out);
}

#define KEY(buf, arch, suffix) (snprintf(buf, sizeof buf, "%s." suffix, arch), buf)

static lq_status check_range(const lq_gguf *g, const char *key, int64_t v, int64_t lo, int64_t hi) {
    LQ_RETURN_IF(v < lo || v > hi, LQ_ERR_FORMAT, "%s: key '%s': value %lld outside [%lld, %lld]",
                 g->path, key, (long long)v, (long long)lo, (long long)hi);
    return LQ_OK;
}

static lq_status read_hparams(const lq_gguf *g, const char *arch, hparams *h) {
    char k[128];
    /* bounds keep later products (heads * head_dim * hidden, ...) far from overflow */
    const int64_t big = (int64_t)1 << 24;
    LQ_FORWARD(lq_gguf_get_i64(g, KEY(k, arch, "block_count"), &h->n_layers));
    LQ_FORWARD(check_range(g, k, h->n_layers, 1, 100000));
    LQ_FORWARD(lq_gguf_get_i64(g, KEY(k, arch, "embedding_length"), &h->hidden));
    LQ_FORWARD(check_range(g, k, h->hidden, 1, big));
    LQ_FORWARD(lq_gguf_get_i64(g, KEY(k, arch, "feed_forward_length"), &h->ffn));
    LQ_FORWARD(check_range(g, k, h->ffn, 1, big));
    LQ_FORWARD(lq_gguf_get_i64(g, KEY(k, arch, "attention.head_count"), &h->n_heads));
    LQ_FORWARD(check_range(g, k, h->n_heads, 1, 65536));
    h->n_kv_heads = h->n_heads;
    LQ_FORWARD(opt_i64(g, KEY(k, arch, "attention.head_count_kv"), &h->n_kv_heads));
    LQ_FORWARD(check_range(g, k, h->n_kv_heads, 1, h->n_heads));
    LQ_RETURN_IF(h->n_heads % h->n_kv_heads != 0, LQ_ERR_FORMAT,
                 "%s: key '%s': %lld KV heads do not divide %lld attention heads", g->path, k,
                 (long long)h->n_kv_heads, (long long)h->n_heads);
    h->head_dim = 0;
    LQ_FORWARD(opt_i64(g, KEY(k, arch, "attention.key_length"), &h->head_dim));
    if (h->head_dim == 0) {
        LQ_RETURN_IF(h->hidden % h->n_heads != 0, LQ_ERR_FORMAT,
                     "%s: key '%s.embedding_length': %lld is not a multiple of %lld heads", g->path,
                     arch, (long long)h->hidden, (long long)h->n_heads);
        h->head_dim = h->hidden / h->n_heads;
    }
    LQ_FORWARD(check_range(g, k, h->head_dim, 2, 65536));
    LQ_RETURN_IF(h->head_dim % 2 != 0, LQ_ERR_FORMAT,
                 "%s: head_dim %lld is odd (RoPE rotates pairs)", g->path, (long long)h->head_dim);
    /* HF Llama/Qwen2 rotate all of head_dim; partial rotary has no place there */
    int64_t n_rot = h->head_dim;
    LQ_FORWARD(opt_i64(g, KEY(k, arch, "rope.dimension_count"), &n_rot));
    LQ_RETURN_IF(n_rot != h->head_dim, LQ_ERR_UNSUPPORTED,
                 "%s: key '%s': %lld rotary dimensions of head_dim %lld (partial RoPE) is not "
                 "supported",
                 g->path, k, (long long)n_rot, (long long)h->head_dim);
    LQ_FORWARD(lq_gguf_get_i64(g, KEY(k, arch, "context_length"), &h->ctx));
    LQ_FORWARD(check_range(g, k, h->ctx, 1, INT32_MAX));
    LQ_FORWARD(lq_gguf_get_f64(g, KEY(k, arch, "attention.layer_norm_rms_epsilon"), &h->eps));
    LQ_RETURN_IF(!(h->eps > 0 && h->eps < 1), LQ_ERR_FORMAT, "%s: key '%s': value %g is not in (0, 1)",
                 g->path, k, h->eps);
    h->rope_theta = 10000.0; /* llama.cpp's default when the key is absent */
    LQ_FORWARD(opt_f64(g, KEY(k, arch, "rope.freq_base"), &h->rope_theta));
    LQ_RETURN_IF(!(h->rope_theta > 0 && isfinite(h->rope_theta)), LQ_ERR_FORMAT,
                 "%s: key '%s': value %g is not a positive number", g->path, k, h->rope_theta);
    const lq_gguf_tensor *emb = lq_gguf_find_tensor(g, "token_embd.weight");
    LQ_RETURN_IF(!emb, LQ_ERR_NOTFOUND, "%s: tensor 'token_embd.weight' is missing", g->path);
    LQ_RETURN_IF(emb->n_dims != 2 || emb->ne[0] != h->hidden, LQ_ERR_SHAPE,
                 "%s: tensor 'token_embd.weight': dims [%lld, %lld] (n_dims %u), expected [%lld, "
                 "vocab]",
                 g->path, (long long)emb->ne[0], (long long)emb->ne[1], emb->n_dims,
                 (long long)h->hidden);
    h->vocab = emb->ne[1];
    LQ_FORWARD(opt_i64(g, KEY(k, arch, "vocab_size"), &h->vocab));
    LQ_RETURN_IF(h->vocab != emb->ne[1], LQ_ERR_SHAPE,
                 "%s: key '%s' = %lld but tensor 'token_embd.weight' has %lld rows", g->path, k,
                 (long long)h->vocab, (long long)emb->ne[1]);
    LQ_FORWARD(check_range(g, k, h->vocab, 1, INT32_MAX));
    return LQ_OK;
}

/* Llama 3.x ships its RoPE scaling as a per-frequency factor tensor
 * (rope_freqs.weight) rather than parameters. llama.cpp's converter computes it
 * from (factor, low_freq_factor 1, high_freq_factor 4, original context 8192);
 * recompute it with those and the largest factor, and accept only an exact
 * reproduction, so that the rope_scaling we write means what the file meant. */
static lq_status llama3_rope_scaling(const lq_gguf *g, const lq_gguf_tensor *t, const hparams *h,
                                     json_t *cfg) {
    lq_status st = LQ_OK;
    float *f = NULL;
    int64_t n = t->n_elems;
    LQ_FAIL_IF(t->n_dims != 1 || n < 1 || n > h->head_dim / 2, LQ_ERR_SHAPE,
               "%s: tensor 'rope_freqs.weight': %lld elements, expected at most head_dim/2 = %lld",
               g->path, (long long)n, (long long)(h->head_dim / 2));
    LQ_TRY(lq_malloc((void **)&f, (size_t)n * sizeof *f, "rope_freqs"));
    LQ_TRY(lq_gguf_tensor_to_f32(g, t, f));
    double factor = 1;
    for (int64_t i = 0; i < n; i++) factor = f[i] > factor ? f[i] : factor;
    const double lo = 1, hi = 4, old_ctx = 8192, dim = (double)(2 * n);
    for (int64_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(h->rope_theta, (double)(2 * i) / dim);
        double wavelen = 2 * M_PI / freq, want;
        if (wavelen < old_ctx / hi) want = 1;
        else if (wavelen > old_ctx / lo) want = factor;
        else {
            double smooth = (old_ctx / wavelen - lo) / (hi - lo);
            want = 1 / ((1 - smooth) / factor + smooth);
        }
        LQ_FAIL_IF(!(fabs(f[i] - want) <= 1e-3 * want), LQ_ERR_UNSUPPORTED,
                   "%s: tensor 'rope_freqs.weight': element %lld = %g is not Llama-3 scaling with "
                   "factor %g (expected %g); lq cannot recover these RoPE scaling parameters",
                   g->path, (long long)i, f[i], factor, want);
    }
    json_t *rs = json_pack("{s:s, s:f, s:f, s:f, s:I}", "rope_type", "llama3", "factor", factor,
                           "low_freq_factor", lo, "high_freq_factor", hi,
                           "original_max_position_embeddings", (json_int_t)old_ctx);
    LQ_FAIL_IF(!rs || json_object_set_new(cfg, "rope_scaling", rs) != 0, LQ_ERR_NOMEM,
               "out of memory");
fail:
    free(f);
    return st;
}

/* rope_scaling from <arch>.rope.scaling.* (linear, yarn) or rope_freqs.weight */
static lq_status rope_scaling(const lq_gguf *g, const char *arch, const hparams *h, json_t *cfg) {
    char k[128];
    char *type = NULL;
    double factor = 0;
    lq_status st = LQ_OK;
    LQ_FORWARD(opt_f64(g, KEY(k, arch, "rope.scale_linear"), &factor)); /* older files */
    if (lq_gguf_get(g, KEY(k, arch, "rope.scaling.type"))) LQ_FORWARD(lq_gguf_get_str(g, k, &type));
    else if (factor > 0 && factor != 1) type = strdup("linear");
    LQ_TRY(opt_f64(g, KEY(k, arch, "rope.scaling.factor"), &factor));
    const lq_gguf_tensor *rf = lq_gguf_find_tensor(g, "rope_freqs.weight");
    if (rf) {
        LQ_FAIL_IF(type && strcmp(type, "none") != 0, LQ_ERR_UNSUPPORTED,
                   "%s: both rope_freqs.weight and rope.scaling.type '%s'", g->path, type);
        LQ_TRY(llama3_rope_scaling(g, rf, h, cfg));
    } else if (type && strcmp(type, "none") != 0) {
        LQ_FAIL_IF(!(factor > 0 && isfinite(factor)), LQ_ERR_FORMAT,
                   "%s: key '%s.rope.scaling.factor': %g is not a positive number", g->path, arch,
                   factor);
        json_t *rs = NULL;
        if (strcmp(type, "linear") == 0) {
            rs = json_pack("{s:s, s:f}", "rope_type", "linear", "factor", factor);
        } else if (strcmp(type, "yarn") == 0) {
            int64_t orig = h->ctx;
            LQ_TRY(opt_i64(g, KEY(k, arch, "rope.scaling.original_context_length"), &orig));
            rs = json_pack("{s:s, s:f, s:I}", "rope_type", "yarn", "factor", factor,
                           "original_max_position_embeddings", (json_int_t)orig);
        } else {
            LQ_FAIL_IF(1, LQ_ERR_UNSUPPORTED, "%s: key '%s.rope.scaling.type': '%s' is not supported",
                       g->path, arch, type);
        }
        LQ_FAIL_IF(!rs || json_object_set_new(cfg, "rope_scaling", rs) != 0, LQ_ERR_NOMEM,
                   "out of memory");
    }
fail:
    free(type);
    return st;
}

static lq_status set_int(json_t *o, const char *k, int64_t v) {
    LQ_RETURN_IF(json_object_set_new(o, k, json_integer((json_int_t)v)) != 0, LQ_ERR_NOMEM,
                 "out of memory");
    return LQ_OK;
}

static lq_status build_config(const lq_gguf *g, const char *arch, const hparams *h, json_t **out) {
    lq_status st = LQ_OK;
    json_t *c = json_object();
    LQ_FAIL_IF(!c, LQ_ERR_NOMEM, "out of memory");
    const char *hf_arch = h->is_llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
    int tied = lq_gguf_find_tensor(g, "output.weight") == NULL;
    int attn_bias = lq_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    LQ_FAIL_IF(json_object_set_new(c, "architectures", json_pack("[s]", hf_arch)) != 0 ||
                   json_object_set_new(c, "model_type", json_string(h->is_llama ? "llama" : "qwen2")) != 0 ||
                   json_object_set_new(c, "hidden_act", json_string("silu")) != 0 ||
                   json_object_set_new(c, "torch_dtype", json_string("float32")) != 0 ||
                   json_object_set_new(c, "tie_word_embeddings", json_boolean(tied)) != 0 ||
                   json_object_set_new(c, "rms_norm_eps", json_real(h->eps)) != 0 ||
                   json_object_set_new(c, "rope_theta", json_real(h->rope_theta)) != 0,
               LQ_ERR_NOMEM, "out of memory");
    if (h->is_llama)
        LQ_FAIL_IF(json_object_set_new(c, "attention_bias", json_boolean(attn_bias)) != 0 ||
                       json_object_set_new(c, "mlp_bias", json_false()) != 0,
                   LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(set_int(c, "hidden_size", h->hidden));
    LQ_TRY(set_int(c, "intermediate_size", h->ffn));
    LQ_TRY(set_int(c, "num_hidden_layers", h->n_layers));
    LQ_TRY(set_int(c, "num_attention_heads", h->n_heads));
    LQ_TRY(set_int(c, "num_key_value_heads", h->n_kv_heads));
    LQ_TRY(set_int(c, "head_dim", h->head_dim));
    LQ_TRY(set_int(c, "vocab_size", h->vocab));
    LQ_TRY(set_int(c, "max_position_embeddings", h->ctx));
    int64_t id;
    if (lq_gguf_get(g, "tokenizer.ggml.bos_token_id")) {
        LQ_TRY(lq_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &id));
        LQ_TRY(set_int(c, "bos_token_id", id));
    }
    if (lq_gguf_get(g, "tokenizer.ggml.eos_token_id")) {
        LQ_TRY(lq_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &id));
        LQ_TRY(set_int(c, "eos_token_id", id));
    }
    LQ_TRY(rope_scaling(g, arch, h, c));
    *out = c;
    return LQ_OK;
fail:
    json_decref(c);
    return st;
}

/* tokenizer.ggml.* -> tokenizer.json via lq_tokjson_build; *out stays NULL when
 * the file has no tokenizer */
static lq_status build_tokenizer(const lq_gguf *g, json_t **out) {
    lq_status st = LQ_OK;
    char *model = NULL, *pre = NULL, **tokens = NULL, **merges = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    size_t n_tok = 0, n_merges = 0, n_scores = 0, n_types = 0;
    *out = NULL;
    if (!lq_gguf_get(g, "tokenizer.ggml.model")) return LQ_OK;
    LQ_TRY(lq_gguf_get_str(g, "tokenizer.ggml.model", &model));
    if (lq_gguf_get(g, "tokenizer.ggml.pre")) LQ_TRY(lq_gguf_get_str(g, "tokenizer.ggml.pre", &pre));
    LQ_TRY(lq_gguf_get_str_array(g, "tokenizer.ggml.tokens", &tokens, &n_tok));
    LQ_FAIL_IF(n_tok == 0 || n_tok > INT32_MAX, LQ_ERR_FORMAT,
               "%s: key 'tokenizer.ggml.tokens': %zu tokens", g->path, n_tok);
    if (lq_gguf_get(g, "tokenizer.ggml.scores")) {
        LQ_TRY(lq_gguf_get_f32_array(g, "tokenizer.ggml.scores", &scores, &n_scores));
        LQ_FAIL_IF(n_scores != n_tok, LQ_ERR_FORMAT,
                   "%s: key 'tokenizer.ggml.scores': %zu scores for %zu tokens", g->path, n_scores,
                   n_tok);
    }
    if (lq_gguf_get(g, "tokenizer.ggml.token_type")) {
        LQ_TRY(lq_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &types, &n_types));
        LQ_FAIL_IF(n_types != n_tok, LQ_ERR_FORMAT,
                   "%s: key 'tokenizer.ggml.token_type': %zu types for %zu tokens", g->path,
                   n_types, n_tok);
    }
    if (lq_gguf_get(g, "tokenizer.ggml.merges"))
        LQ_TRY(lq_gguf_get_str_array(g, "tokenizer.ggml.merges", &merges, &n_merges));
    int is_spm = strcmp(model, "llama") == 0;
    lq_tokjson_spec spec = {
        .model = model, .pre = pre, .n_vocab = n_tok, .tokens = (const char *const *)tokens,
        .scores = scores, .types = types, .n_merges = n_merges,
        .merges = (const char *const *)merges, .bos_id = -1, .eos_id = -1, .unk_id = -1,
        /* llama.cpp's defaults: SentencePiece adds BOS and the dummy prefix */
        .add_bos = is_spm, .add_eos = 0, .add_space_prefix = is_spm,
    };
    static const char *const id_keys[3] = {"tokenizer.ggml.bos_token_id",
                                           "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id"};
    int32_t *ids[3] = {&spec.bos_id, &spec.eos_id, &spec.unk_id};
    for (int i = 0; i < 3; i++) {
        int64_t id = -1;
        LQ_TRY(opt_i64(g, id_keys[i], &id));
        LQ_FAIL_IF(id < -1 || id >= (int64_t)n_tok, LQ_ERR_FORMAT,
                   "%s: key '%s': token id %lld outside the %zu-token vocabulary", g->path,
                   id_keys[i], (long long)id, n_tok);
        *ids[i] = (int32_t)id;
    }
    LQ_TRY(opt_bool(g, "tokenizer.ggml.add_bos_token", &spec.add_bos));
    LQ_TRY(opt_bool(g, "tokenizer.ggml.add_eos_token", &spec.add_eos));
    LQ_TRY(opt_bool(g, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));
    st = lq_tokjson_build(&spec, out);
    if (st != LQ_OK) lq_error_prefix(st, "%s: tokenizer", g->path);
fail:
    free(model);
    free(pre);
    free(tokens);
    free(merges);
    free(scores);
    free(types);
    return st;
}

/* The tensor's HF shape must be what the config says: a bad file then fails
 * here, naming the GGUF tensor, rather than deep inside a model loader. */
static lq_status check_shape(const lq_gguf *g, const lq_gguf_tensor *t, const hparams *h,
                             tensor_role role, long layer, int is_bias) {
    int64_t q_dim = h->n_heads * h->head_dim, kv_dim = h->n_kv_heads * h->head_dim;
    int64_t rows = 0, cols = 0; /* HF [rows, cols]; cols 0: a vector */
    switch (role) {
    case R_EMBED: case R_LM_HEAD: rows = h->vocab, cols = h->hidden; break;
    case R_OUT_NORM: case R_ATTN_NORM: case R_FFN_NORM: rows = h->hidden; break;
    case R_Q: rows = q_dim, cols = h->hidden; break;
    case R_K: case R_V: rows = kv_dim, cols = h->hidden; break;
    case R_O: rows = h->hidden, cols = q_dim; break;
    case R_GATE: case R_UP: rows = h->ffn, cols = h->hidden; break;
    case R_DOWN: rows = h->hidden, cols = h->ffn; break;
    }
    LQ_RETURN_IF(is_bias && role != R_Q && role != R_K && role != R_V && role != R_O,
                 LQ_ERR_UNSUPPORTED, "%s: tensor '%s': biases are only supported on q/k/v/o",
                 g->path, t->name);
    if (is_bias) cols = 0;
    LQ_RETURN_IF(layer >= h->n_layers, LQ_ERR_FORMAT,
                 "%s: tensor '%s': layer %ld but block_count is %lld", g->path, t->name, layer,
                 (long long)h->n_layers);
    /* GGUF dims are innermost first: HF [rows, cols] is ne = [cols, rows] */
    int ok = cols ? t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows
                  : t->n_dims == 1 && t->ne[0] == rows;
    if (!ok) {
        char want[64];
        if (cols) snprintf(want, sizeof want, "[%lld, %lld]", (long long)cols, (long long)rows);
        else snprintf(want, sizeof want, "[%lld]", (long long)rows);
        return lq_error(LQ_ERR_SHAPE,
                        "%s: tensor '%s': GGUF dims [%lld, %lld] (n_dims %u), expected %s from the "
                        "config",
                        g->path, t->name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, want);
    }
    return LQ_OK;
}

lq_status lq_gguf_to_checkpoint(const lq_gguf *g, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    char *arch = NULL;
    *out = NULL;
    LQ_TRY(lq_gguf_get_str(g, "general.architecture", &arch));
    hparams h = {0};
    if (strcmp(arch, "llama") == 0) h.is_llama = 1; /* Mistral GGUFs are "llama" too */
    else if (strcmp(arch, "qwen2") == 0) h.is_llama = 0;
    else
        LQ_FAIL_IF(1, LQ_ERR_UNSUPPORTED,
                   "%s: key 'general.architecture': '%.64s' is not supported (llama, qwen2)",
                   g->path, arch);
    LQ_TRY(read_hparams(g, arch, &h));
    LQ_TRY(lq_checkpoint_new(&ck, g->path, "gguf"));
    LQ_TRY(build_config(g, arch, &h, &ck->config));
    LQ_TRY(build_tokenizer(g, &ck->tokenizer));

    for (int64_t i = 0; i < g->n_tensors; i++) {
        const lq_gguf_tensor *t = &g->tensors[i];
        if (strcmp(t->name, "rope_freqs.weight") == 0) continue; /* folded into rope_scaling */
        char hf[160];
        tensor_role role;
        long layer;
        int is_bias;
        st = map_name(t->name, hf, sizeof hf, &role, &layer, &is_bias);
        if (st != LQ_OK) {
            lq_error_prefix(st, "%s", g->path);
            goto fail;
        }
        const lq_ggml_traits *tr = lq_ggml_type_traits(t->type);
        LQ_FAIL_IF(!tr->to_f32, LQ_ERR_UNSUPPORTED,
                   "%s: tensor '%s' has type %s (%u), which lq cannot dequantize", g->path, t->name,
                   tr->name, t->type);
        LQ_TRY(check_shape(g, t, &h, role, layer, is_bias));
        size_t n_bytes;
        LQ_FAIL_IF(lq_mul_overflow((size_t)t->n_elems, sizeof(float), &n_bytes), LQ_ERR_SHAPE,
                   "%s: tensor '%s': %lld elements overflow as f32", g->path, t->name,
                   (long long)t->n_elems);
        float *w;
        LQ_TRY(lq_checkpoint_alloc(ck, n_bytes ? n_bytes : 1, (void **)&w));
        LQ_TRY(lq_gguf_tensor_to_f32(g, t, w));
        if (h.is_llama && (role == R_Q || role == R_K)) {
            /* llama.cpp's converter permuted these rows to Meta's interleaved
             * RoPE order (per KV head for k); undo it. A bias is one column. */
            int64_t heads = role == R_Q ? h.n_heads : h.n_kv_heads;
            st = lq_permute_qk_to_hf(w, (int)heads, (int)h.head_dim, is_bias ? 1 : t->ne[0]);
            if (st != LQ_OK) {
                lq_error_prefix(st, "%s: tensor '%s'", g->path, t->name);
                goto fail;
            }
        }
        int64_t shape[LQ_MAX_DIMS];
        for (uint32_t d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d];
        LQ_TRY(lq_checkpoint_add_tensor(ck, hf, LQ_F32, (int)t->n_dims, shape, w, n_bytes));
    }
    free(arch);
    *out = ck;
    return LQ_OK;
fail:
    free(arch);
    lq_checkpoint_free(ck);
    return st;
}

lq_status lq_gguf_load(const char *path, lq_checkpoint **out) {
    lq_gguf *g = NULL;
    *out = NULL;
    LQ_FORWARD(lq_gguf_open(path, &g));
    lq_status st = lq_gguf_to_checkpoint(g, out);
    lq_gguf_free(g);
    return st;
}
