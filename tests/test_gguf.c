/* test_gguf.c — the GGUF reader (formats/gguf.c, formats/lq_gguf.h) and the
 * q/k permutation (formats/permute.c).
 *
 * GGUF files are built here by a tiny writer (gw_*), so every case is
 * self-contained: v2/v3, alignment, each dequantizable tensor type through the
 * whole loader, the dequantizers against element-wise scalar references
 * written independently of ggml's loop structure, and malformed inputs (every
 * truncation length, lying lengths and counts, bad dims/types/offsets/
 * alignment, unsupported architecture), each checking the status and that the
 * message names the file and the field. The real SmolLM2 GGUF is checked when
 * present (datasets/fetch_smollm2.sh), else skipped.
 *   make BUILD=build-gguf build-gguf/tests/test_gguf && ./build-gguf/tests/test_gguf */
#include "lq_test.h"

#include <stddef.h>

#include "../formats/lq_formats.h"
#include "../formats/lq_gguf.h"
#include "../libquant/lq_tokenizer.h"

/* ------------------------------------------------------------------------ */
/* a tiny GGUF writer                                                        */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gb_put(gbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void gb_le(gbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    gb_put(b, t, (size_t)n);
}
static void gb_u32(gbuf *b, uint32_t v) { gb_le(b, v, 4); }
static void gb_u64(gbuf *b, uint64_t v) { gb_le(b, v, 8); }
static void gb_f32(gbuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    gb_u32(b, u);
}
static void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}

typedef struct {
    uint32_t version;
    uint32_t align;         /* used to place tensor data */
    uint64_t n_kv, n_t;
    int64_t n_kv_override, n_t_override; /* >= 0: header lies */
    gbuf kv, ti, data;
} gw;

static void gw_init(gw *w, uint32_t version) {
    memset(w, 0, sizeof *w);
    w->version = version;
    w->align = 32;
    w->n_kv_override = w->n_t_override = -1;
}
static void gw_free(gw *w) {
    free(w->kv.p);
    free(w->ti.p);
    free(w->data.p);
}
static void gw_key(gw *w, const char *key, uint32_t type) {
    gb_str(&w->kv, key);
    gb_u32(&w->kv, type);
    w->n_kv++;
}
static void gw_u32(gw *w, const char *key, uint32_t v) {
    gw_key(w, key, LQ_GGUF_U32);
    gb_u32(&w->kv, v);
}
static __attribute__((unused)) void gw_i32(gw *w, const char *key, int32_t v) {
    gw_key(w, key, LQ_GGUF_I32);
    gb_u32(&w->kv, (uint32_t)v);
}
static void gw_f32(gw *w, const char *key, float v) {
    gw_key(w, key, LQ_GGUF_F32);
    gb_f32(&w->kv, v);
}
static void gw_bool(gw *w, const char *key, int v) {
    gw_key(w, key, LQ_GGUF_BOOL);
    uint8_t c = (uint8_t)v;
    gb_put(&w->kv, &c, 1);
}
static void gw_str(gw *w, const char *key, const char *v) {
    gw_key(w, key, LQ_GGUF_STRING);
    gb_str(&w->kv, v);
}
static void gw_arr_str(gw *w, const char *key, size_t n, const char *const *v) {
    gw_key(w, key, LQ_GGUF_ARRAY);
    gb_u32(&w->kv, LQ_GGUF_STRING);
    gb_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) gb_str(&w->kv, v[i]);
}
static void gw_arr_f32(gw *w, const char *key, size_t n, const float *v) {
    gw_key(w, key, LQ_GGUF_ARRAY);
    gb_u32(&w->kv, LQ_GGUF_F32);
    gb_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) gb_f32(&w->kv, v[i]);
}
static void gw_arr_i32(gw *w, const char *key, size_t n, const int32_t *v) {
    gw_key(w, key, LQ_GGUF_ARRAY);
    gb_u32(&w->kv, LQ_GGUF_I32);
    gb_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) gb_u32(&w->kv, (uint32_t)v[i]);
}
/* raw bytes of one key-value record (for malformed cases) */
static void gw_raw_kv(gw *w, const void *bytes, size_t n) {
    gb_put(&w->kv, bytes, n);
    w->n_kv++;
}
/* Tensor info with an explicit offset; data appended as given (no padding). */
static void gw_tensor_at(gw *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                         uint64_t offset) {
    gb_str(&w->ti, name);
    gb_u32(&w->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gb_u64(&w->ti, (uint64_t)ne[d]);
    gb_u32(&w->ti, type);
    gb_u64(&w->ti, offset);
    w->n_t++;
}
/* Tensor placed at the next aligned offset of the data section. */
static void gw_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                      const void *data, size_t n_bytes) {
    static const uint8_t zero[256];
    size_t pad = (w->align - w->data.n % w->align) % w->align;
    while (pad) {
        size_t k = pad < sizeof zero ? pad : sizeof zero;
        gb_put(&w->data, zero, k);
        pad -= k;
    }
    gw_tensor_at(w, name, type, n_dims, ne, w->data.n);
    gb_put(&w->data, data, n_bytes);
}
/* header + kv + tensor infos + padding + data; caller frees *out */
static void gw_finish(gw *w, uint8_t **out, size_t *n) {
    gbuf b = {0};
    gb_put(&b, "GGUF", 4);
    gb_u32(&b, w->version);
    gb_u64(&b, w->n_t_override >= 0 ? (uint64_t)w->n_t_override : w->n_t);
    gb_u64(&b, w->n_kv_override >= 0 ? (uint64_t)w->n_kv_override : w->n_kv);
    gb_put(&b, w->kv.p, w->kv.n);
    gb_put(&b, w->ti.p, w->ti.n);
    if (w->data.n) {
        static const uint8_t zero[1] = {0};
        while (b.n % w->align) gb_put(&b, zero, 1);
        gb_put(&b, w->data.p, w->data.n);
    }
    *out = b.p;
    *n = b.n;
}

static char *write_temp(const uint8_t *buf, size_t n) {
    char *path = strdup("/tmp/lq_test_gguf_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
    return path;
}

/* status and message check: the message names the file and each given field */
static void expect_err(lq_status got, lq_status want, const char *path, const char *f1, const char *f2) {
    const char *msg = lq_last_error();
    if (got != want || !strstr(msg, path) || (f1 && !strstr(msg, f1)) || (f2 && !strstr(msg, f2)))
        print_message("status %s (want %s), message: %s\n", lq_status_name(got), lq_status_name(want), msg);
    assert_int_equal(got, want);
    assert_non_null(strstr(msg, path));
    if (f1) assert_non_null(strstr(msg, f1));
    if (f2) assert_non_null(strstr(msg, f2));
}

static lq_status parse_gw(gw *w, const char *path, lq_gguf **g) {
    uint8_t *buf;
    size_t n;
    gw_finish(w, &buf, &n);
    lq_status st = lq_gguf_parse(buf, n, path, g);
    /* a successful parse points into buf: callers of this helper only look at
     * the status and message, or free g before buf */
    if (st == LQ_OK) lq_gguf_free(*g), *g = NULL;
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------ */
/* element-wise references (independent of ggml's loop structure)          */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static float h2f(const uint8_t *p) { return lq_f16_to_f32(rd16(p)); }

typedef struct {
    uint32_t type;
    int blck;
    int size;
    int d_off, m_off; /* byte offsets of the fp16 scale / min (-1 none); Q8_K: f32 d */
} qinfo;

static const qinfo k_q[] = {
    {LQ_GGML_Q4_0, 32, 18, 0, -1},   {LQ_GGML_Q4_1, 32, 20, 0, 2},    {LQ_GGML_Q5_0, 32, 22, 0, -1},
    {LQ_GGML_Q5_1, 32, 24, 0, 2},    {LQ_GGML_Q8_0, 32, 34, 0, -1},   {LQ_GGML_Q2_K, 256, 84, 80, 82},
    {LQ_GGML_Q3_K, 256, 110, 108, -1}, {LQ_GGML_Q4_K, 256, 144, 0, 2}, {LQ_GGML_Q5_K, 256, 176, 0, 2},
    {LQ_GGML_Q6_K, 256, 210, 208, -1}, {LQ_GGML_Q8_K, 256, 292, 0, -1},
};
#define N_Q (sizeof k_q / sizeof *k_q)

/* element e of one block b */
static float ref_elem(uint32_t type, const uint8_t *b, int e) {
    switch (type) {
    case LQ_GGML_Q4_0: {
        int q = e < 16 ? (b[2 + e] & 15) : (b[2 + e - 16] >> 4);
        return (float)(q - 8) * h2f(b);
    }
    case LQ_GGML_Q4_1: {
        int q = e < 16 ? (b[4 + e] & 15) : (b[4 + e - 16] >> 4);
        return (float)q * h2f(b) + h2f(b + 2);
    }
    case LQ_GGML_Q5_0: {
        int q = (e < 16 ? (b[6 + e] & 15) : (b[6 + e - 16] >> 4)) | (int)((rd32(b + 2) >> e) & 1) << 4;
        return (float)(q - 16) * h2f(b);
    }
    case LQ_GGML_Q5_1: {
        int q = (e < 16 ? (b[8 + e] & 15) : (b[8 + e - 16] >> 4)) | (int)((rd32(b + 4) >> e) & 1) << 4;
        return (float)q * h2f(b) + h2f(b + 2);
    }
    case LQ_GGML_Q8_0: return (float)(int8_t)b[2 + e] * h2f(b);
    case LQ_GGML_Q2_K: {
        /* scales[16] @0, qs[64] @16, d @80, dmin @82 */
        int half = e / 128, r = e % 128, plane = r / 32, l = r % 32;
        int sc = b[half * 8 + plane * 2 + l / 16];
        int q = (b[16 + half * 32 + l] >> (2 * plane)) & 3;
        return (h2f(b + 80) * (float)(sc & 15)) * (float)q - h2f(b + 82) * (float)(sc >> 4);
    }
    case LQ_GGML_Q3_K: {
        /* hmask[32] @0, qs[64] @32, scales[12] @96, d @108 */
        int half = e / 128, r = e % 128, plane = r / 32, l = r % 32;
        int is = half * 8 + plane * 2 + l / 16;
        const uint8_t *s = b + 96;
        int lo = is < 8 ? (s[is] & 15) : (s[is - 8] >> 4);
        int hi = (s[8 + is % 4] >> (2 * (is / 4))) & 3;
        int sc = (lo | hi << 4) - 32;
        int q = (b[32 + half * 32 + l] >> (2 * plane)) & 3;
        int hbit = (b[l] >> (half * 4 + plane)) & 1;
        return (h2f(b + 108) * (float)sc) * (float)(q - (hbit ? 0 : 4));
    }
    case LQ_GGML_Q4_K:
    case LQ_GGML_Q5_K: {
        /* d @0, dmin @2, scales[12] @4, (Q5_K: qh[32] @16,) qs[128] */
        int c = e / 64, r = e % 64, j = 2 * c + r / 32, l = r % 32;
        const uint8_t *s = b + 4;
        int sc = j < 4 ? (s[j] & 63) : ((s[j + 4] & 15) | (s[j - 4] >> 6) << 4);
        int m = j < 4 ? (s[j + 4] & 63) : ((s[j + 4] >> 4) | (s[j] >> 6) << 4);
        const uint8_t *qs = b + (type == LQ_GGML_Q4_K ? 16 : 48);
        int q = r < 32 ? (qs[c * 32 + l] & 15) : (qs[c * 32 + l] >> 4);
        if (type == LQ_GGML_Q5_K) q += ((b[16 + l] >> j) & 1) * 16;
        return (h2f(b) * (float)sc) * (float)q - h2f(b + 2) * (float)m;
    }
    case LQ_GGML_Q6_K: {
        /* ql[128] @0, qh[64] @128, scales[16] @192 (int8), d @208 */
        int half = e / 128, r = e % 128, g = r / 32, l = r % 32;
        int lbyte = b[half * 64 + l + (g & 1) * 32];
        int lo = g < 2 ? (lbyte & 15) : (lbyte >> 4);
        int hi = (b[128 + half * 32 + l] >> (2 * g)) & 3;
        int sc = (int8_t)b[192 + half * 8 + l / 16 + 2 * g];
        return (h2f(b + 208) * (float)sc) * (float)((lo | hi << 4) - 32);
    }
    case LQ_GGML_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        return d * (float)(int8_t)b[4 + e];
    }
    }
    fail_msg("no reference for type %u", type);
    return 0;
}

static const qinfo *qinfo_of(uint32_t type) {
    for (size_t i = 0; i < N_Q; i++)
        if (k_q[i].type == type) return &k_q[i];
    return NULL;
}

/* reference dequantization of n elements of any type the loader supports */
static void ref_dequant(uint32_t type, const uint8_t *src, int64_t n, float *dst) {
    const qinfo *q = qinfo_of(type);
    if (q) {
        for (int64_t i = 0; i < n; i++) dst[i] = ref_elem(type, src + (i / q->blck) * q->size, (int)(i % q->blck));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (type) {
        case LQ_GGML_F32: memcpy(&dst[i], src + 4 * i, 4); break;
        case LQ_GGML_F16: dst[i] = h2f(src + 2 * i); break;
        case LQ_GGML_BF16: {
            uint32_t u = (uint32_t)rd16(src + 2 * i) << 16;
            memcpy(&dst[i], &u, 4);
            break;
        }
        default: fail_msg("no reference for type %u", type);
        }
    }
}

/* a random finite fp16 (exponent 31 = Inf/NaN avoided), magnitude up to 2^e_max */
static uint16_t rand_f16(uint64_t *s, int e_max) {
    uint16_t h = (uint16_t)lq_test_next(s);
    int e = (h >> 10) & 31;
    if (e > 15 + e_max) e = 15 + e_max - (int)(lq_test_next(s) % 8);
    if (e < 0) e = 0;
    return (uint16_t)((h & 0x83FF) | e << 10);
}

/* n_bytes of random data for type, with finite scales; returns malloc'd */
static uint8_t *rand_data(uint64_t *s, uint32_t type, int64_t n_elems, size_t *n_bytes, int e_max) {
    const lq_ggml_traits *tr = lq_ggml_type_traits(type);
    assert_non_null(tr);
    size_t nb = (size_t)(n_elems / tr->blck_size) * tr->type_size;
    uint8_t *p = malloc(nb ? nb : 1);
    assert_non_null(p);
    for (size_t i = 0; i < nb; i++) p[i] = (uint8_t)lq_test_next(s);
    const qinfo *q = qinfo_of(type);
    for (size_t i = 0; q && i < nb / (size_t)q->size; i++) {
        uint8_t *b = p + i * (size_t)q->size;
        if (type == LQ_GGML_Q8_K) {
            float d = lq_test_uniform(s, -1, 1);
            memcpy(b, &d, 4);
            continue;
        }
        uint16_t d = rand_f16(s, e_max), m = rand_f16(s, e_max);
        b[q->d_off] = (uint8_t)d, b[q->d_off + 1] = (uint8_t)(d >> 8);
        if (q->m_off >= 0) b[q->m_off] = (uint8_t)m, b[q->m_off + 1] = (uint8_t)(m >> 8);
    }
    for (int64_t i = 0; type == LQ_GGML_F32 && i < n_elems; i++) {
        float f = lq_test_uniform(s, -2, 2);
        memcpy(p + 4 * i, &f, 4);
    }
    for (int64_t i = 0; type == LQ_GGML_F16 && i < n_elems; i++) {
        uint16_t h = rand_f16(s, e_max);
        p[2 * i] = (uint8_t)h, p[2 * i + 1] = (uint8_t)(h >> 8);
    }
    for (int64_t i = 0; type == LQ_GGML_BF16 && i < n_elems; i++)
        if ((p[2 * i + 1] & 0x7F) == 0x7F && (p[2 * i] & 0x80)) p[2 * i + 1] &= 0xBF; /* exponent != 255 */
    *n_bytes = nb;
    return p;
}

static int bits_equal(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) {
            print_message("%s: element %zu: got %.9g want %.9g\n", what, i, a[i], b[i]);
            return 0;
        }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* dequantizers                                                              */

static void test_gguf_block_layouts(void **state) {
    (void)state;
    /* the test's hard-coded offsets agree with the header's structs */
    assert_int_equal(offsetof(lq_block_q2_K, d), 80);
    assert_int_equal(offsetof(lq_block_q2_K, dmin), 82);
    assert_int_equal(offsetof(lq_block_q3_K, scales), 96);
    assert_int_equal(offsetof(lq_block_q3_K, d), 108);
    assert_int_equal(offsetof(lq_block_q5_K, qh), 16);
    assert_int_equal(offsetof(lq_block_q5_K, qs), 48);
    assert_int_equal(offsetof(lq_block_q6_K, scales), 192);
    assert_int_equal(offsetof(lq_block_q6_K, d), 208);
    assert_int_equal(offsetof(lq_block_q5_1, qs), 8);
    for (size_t i = 0; i < N_Q; i++) {
        const lq_ggml_traits *t = lq_ggml_type_traits(k_q[i].type);
        assert_non_null(t);
        assert_int_equal(t->blck_size, k_q[i].blck);
        assert_int_equal(t->type_size, (size_t)k_q[i].size);
        assert_non_null(t->to_f32);
    }
    assert_null(lq_ggml_type_traits(4));  /* removed Q4_2 */
    assert_null(lq_ggml_type_traits(99));
    assert_string_equal(lq_ggml_type_name(LQ_GGML_Q4_1), "Q4_1");
}

static void test_gguf_dequant_random_blocks(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int n_blocks = 64;
    for (size_t t = 0; t < N_Q; t++) {
        const qinfo *q = &k_q[t];
        for (int e_max = 0; e_max <= 15; e_max += 15) { /* modest and extreme (up to 65504) scales */
            size_t nb;
            int64_t n = (int64_t)n_blocks * q->blck;
            uint8_t *src = rand_data(&s, q->type, n, &nb, e_max);
            float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
            /* unaligned source: GGUF alignment can be 1 */
            uint8_t *shifted = malloc(nb + 1);
            memcpy(shifted + 1, src, nb);
            lq_ggml_type_traits(q->type)->to_f32(shifted + 1, got, n);
            ref_dequant(q->type, src, n, want);
            char what[64];
            snprintf(what, sizeof what, "%s e_max %d", lq_ggml_type_name(q->type), e_max);
            assert_true(bits_equal(got, want, (size_t)n, what));
            for (int64_t i = 0; i < n; i++) assert_true(isfinite(got[i]));
            free(src), free(got), free(want), free(shifted);
        }
    }
}

/* hand-picked scales: max/min normal, smallest subnormal, +-0, negative, all
 * quant bits 0 and all 1 */
static void test_gguf_dequant_edge_scales(void **state) {
    (void)state;
    static const uint16_t ds[] = {0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x0400, 0x0000, 0x8000, 0x3C00, 0xBC00};
    for (size_t t = 0; t < N_Q; t++) {
        const qinfo *q = &k_q[t];
        if (q->type == LQ_GGML_Q8_K) continue; /* f32 scale: covered by random blocks */
        for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
            for (int fill = 0; fill < 2; fill++) {
                uint8_t b[292];
                memset(b, fill ? 0xFF : 0x00, sizeof b);
                b[q->d_off] = (uint8_t)ds[i], b[q->d_off + 1] = (uint8_t)(ds[i] >> 8);
                if (q->m_off >= 0) {
                    uint16_t m = ds[(i + 3) % (sizeof ds / sizeof *ds)];
                    b[q->m_off] = (uint8_t)m, b[q->m_off + 1] = (uint8_t)(m >> 8);
                }
                float got[256], want[256];
                lq_ggml_type_traits(q->type)->to_f32(b, got, q->blck);
                ref_dequant(q->type, b, q->blck, want);
                assert_true(bits_equal(got, want, (size_t)q->blck, lq_ggml_type_name(q->type)));
                for (int e = 0; e < q->blck; e++) assert_false(isnan(got[e]));
            }
        }
    }
    /* spot values straight from the definitions */
    uint8_t b8[34] = {0x00, 0x3C}; /* Q8_0, d = 1 */
    b8[2] = 0x81, b8[3] = 0x7F;    /* -127, 127 */
    float y[32];
    lq_dequant_q8_0_ref(b8, y, 32);
    assert_true(y[0] == -127.0f && y[1] == 127.0f && y[2] == 0.0f);
    uint8_t b4[18] = {0x00, 0x40}; /* Q4_0, d = 2 */
    b4[2] = 0xF0;                  /* element 0: 0 -> -16, element 16: 15 -> 14 */
    lq_dequant_q4_0_ref(b4, y, 32);
    assert_true(y[0] == -16.0f && y[16] == 14.0f && y[1] == -16.0f);
    uint8_t b41[20] = {0x00, 0x3C, 0x00, 0xBC}; /* Q4_1, d = 1, m = -1 */
    b41[4] = 0x3A;                               /* elements 0 -> 10, 16 -> 3 */
    lq_dequant_q4_1_ref(b41, y, 32);
    assert_true(y[0] == 9.0f && y[16] == 2.0f && y[1] == -1.0f);
}

/* Known answers from a third party: llama.cpp's own Python package (pip
 * gguf 2.4.6, gguf.quants.dequantize), on one block per type whose byte i is
 * (i*37 + 11*type) & 0xFF, with the fp16 scale d = 0.75 (0x3A00) and the
 * min/dmin = -0.25 (0xB400) written over it. Produced once by
 *   b = np.array([(i*37 + 11*ty) & 0xFF for i in range(type_size)], np.uint8)
 *   b[d_off:d_off+2] = (0x00, 0x3A); b[m_off:m_off+2] = (0x00, 0xB4)
 *   gguf.quants.dequantize(b, GGMLQuantizationType.<T>)[[0,1,15,16,31,63,64,127,128,200,255]]
 * (the same script over 200 random blocks per type matched bit for bit). */
static void test_gguf_dequant_known_answers(void **state) {
    (void)state;
    static const struct {
        uint32_t type;
        float v[11];
    } kat[] = {
        {LQ_GGML_Q4_0, {-6.0f, -2.25f, 2.25f, -1.5f, 0.0f}},
        {LQ_GGML_Q4_1, {3.5f, 7.25f, -0.25f, 8.0f, 10.25f}},
        {LQ_GGML_Q5_0, {-12.0f, -8.25f, 8.25f, -10.5f, 3.0f}},
        {LQ_GGML_Q5_1, {15.5f, 7.25f, -0.25f, 17.0f, 7.25f}},
        {LQ_GGML_Q8_0, {-70.5f, -42.75f, -38.25f, -10.5f, 21.75f}},
        {LQ_GGML_Q2_K, {22.5f, 33.0f, 12.0f, 6.75f, 4.5f, 22.75f, 4.5f, 1.75f, 11.25f, 0.5f, 22.5f}},
        {LQ_GGML_Q3_K, {-5.25f, 10.5f, 21.0f, 10.5f, -42.0f, 54.0f, 42.75f, 30.0f, -20.25f, -21.0f, 0.0f}},
        {LQ_GGML_Q4_K, {83.0f, 173.0f, 281.0f, 83.0f, 281.0f, 187.25f, 115.5f, 80.25f, 9.0f, 248.0f, 73.0f}},
        {LQ_GGML_Q5_K, {827.5f, 118.75f, 276.25f, 827.5f, 276.25f, 193.0f, 1046.5f, 347.0f, 264.75f, 112.5f, 412.25f}},
        {LQ_GGML_Q6_K, {675.0f, 2092.5f, -742.5f, 952.5f, -1047.75f, 453.75f, 94.5f, 767.25f, -945.0f, 0.0f, 1568.25f}},
    };
    static const int idx[11] = {0, 1, 15, 16, 31, 63, 64, 127, 128, 200, 255};
    for (size_t k = 0; k < sizeof kat / sizeof *kat; k++) {
        const qinfo *q = qinfo_of(kat[k].type);
        uint8_t b[292];
        for (int i = 0; i < q->size; i++) b[i] = (uint8_t)((i * 37 + 11 * (int)q->type) & 0xFF);
        b[q->d_off] = 0x00, b[q->d_off + 1] = 0x3A;
        if (q->m_off >= 0) b[q->m_off] = 0x00, b[q->m_off + 1] = 0xB4;
        float y[256];
        lq_ggml_type_traits(q->type)->to_f32(b, y, q->blck);
        for (int i = 0; i < 11 && idx[i] < q->blck; i++)
            if (y[idx[i]] != kat[k].v[i])
                fail_msg("%s element %d: %.9g, gguf-py says %.9g", lq_ggml_type_name(q->type), idx[i], y[idx[i]],
                         kat[k].v[i]);
    }
}

static void test_gguf_dequant_plain_types(void **state) {
    (void)state;
    uint8_t h[6] = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B}; /* f16: 1, -2, 65504 */
    float y[3];
    lq_dequant_f16_ref(h, y, 3);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 65504.0f);
    uint8_t bf[4] = {0x80, 0x3F, 0x49, 0xC0}; /* bf16: 1, -3.140625 */
    lq_dequant_bf16_ref(bf, y, 2);
    assert_true(y[0] == 1.0f && y[1] == -3.140625f);
    double dd[2] = {0.5, -1e10};
    lq_dequant_f64_ref(dd, y, 2);
    assert_true(y[0] == 0.5f && y[1] == -1e10f);
}

/* ------------------------------------------------------------------------ */
/* permutation                                                               */

/* llama.cpp's LlamaModel.permute: HF rotate-half -> interleaved */
static void fwd_permute(const float *hf, float *il, int n_heads, int hd, int cols) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(il + ((size_t)h * hd + 2 * i + j) * cols, hf + ((size_t)h * hd + j * hd / 2 + i) * cols,
                       (size_t)cols * 4);
}

static void test_gguf_permute_hand_example(void **state) {
    (void)state;
    /* one head, head_dim 4, one column: interleaved rows (0,1),(2,3) are pairs
     * (i=0: HF rows 0, 2; i=1: HF rows 1, 3), so HF order is 0, 2, 1, 3 */
    float w4[4] = {0, 1, 2, 3};
    assert_int_equal(lq_permute_qk_to_hf(w4, 1, 4, 1), LQ_OK);
    assert_true(w4[0] == 0 && w4[1] == 2 && w4[2] == 1 && w4[3] == 3);
    /* head_dim 6: HF row j*3+i <- interleaved row 2i+j: 0, 2, 4, 1, 3, 5 */
    float w6[6] = {0, 1, 2, 3, 4, 5};
    assert_int_equal(lq_permute_qk_to_hf(w6, 1, 6, 1), LQ_OK);
    const float e6[6] = {0, 2, 4, 1, 3, 5};
    assert_memory_equal(w6, e6, sizeof e6);
    /* two heads of 4, two columns: rows move whole, per head */
    float w[16], e[16];
    for (int i = 0; i < 16; i++) w[i] = (float)i;
    const int rows[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int r = 0; r < 8; r++) e[2 * r] = (float)(2 * rows[r]), e[2 * r + 1] = (float)(2 * rows[r] + 1);
    assert_int_equal(lq_permute_qk_to_hf(w, 2, 4, 2), LQ_OK);
    assert_memory_equal(w, e, sizeof e);
    assert_int_equal(lq_permute_qk_to_hf(w, 1, 3, 1), LQ_ERR_SHAPE); /* odd head_dim */
    assert_int_equal(lq_permute_qk_to_hf(w, 0, 4, 1), LQ_ERR_ARG);
}

static void test_gguf_permute_inverse_identity(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int cfgs[][3] = {{1, 2, 1}, {3, 8, 5}, {9, 64, 7}, {4, 16, 33}};
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
        int nh = cfgs[c][0], hd = cfgs[c][1], cols = cfgs[c][2];
        size_t n = (size_t)nh * hd * cols;
        float *x = malloc(n * 4), *y = malloc(n * 4);
        lq_test_fill(&s, x, n, -1, 1);
        fwd_permute(x, y, nh, hd, cols);
        assert_int_equal(lq_permute_qk_to_hf(y, nh, hd, cols), LQ_OK);
        assert_memory_equal(x, y, n * 4);
        free(x), free(y);
    }
}

/* ------------------------------------------------------------------------ */
/* tiny models through the whole loader                                      */

enum { H = 256, NH = 4, NKV = 2, HD = 64, FFN = 512, VOCAB = 40, LAYERS = 2 };

typedef struct {
    const char *arch;
    uint32_t version, align, wtype;
    int tied, bias, tokenizer;
} model_opts;

typedef struct {
    char hf[96];
    int ndim;
    int64_t shape[2];
    float *want; /* HF layout */
} expect_t;

typedef struct {
    expect_t t[64];
    int n;
} expects;

static void add_tensor(gw *w, expects *ex, uint64_t *s, const char *gguf, const char *hf, uint32_t type,
                       int64_t rows, int64_t cols, int permute_heads) {
    int64_t ne[2] = {cols, rows};
    uint32_t nd = rows > 1 || cols == 0 ? 2 : 1;
    if (nd == 1) ne[0] = cols;
    int64_t n = rows * cols;
    size_t nb;
    uint8_t *data = rand_data(s, type, n, &nb, 0);
    gw_tensor(w, gguf, type, nd, ne, data, nb);
    expect_t *e = &ex->t[ex->n++];
    snprintf(e->hf, sizeof e->hf, "%s", hf);
    e->ndim = (int)nd;
    e->shape[0] = nd == 2 ? rows : cols;
    e->shape[1] = cols;
    float *il = malloc((size_t)n * 4 + 4);
    ref_dequant(type, data, n, il);
    e->want = malloc((size_t)n * 4 + 4);
    if (permute_heads) {
        /* the file holds interleaved rows: HF row h*hd + j*hd/2 + i is file row h*hd + 2i + j */
        int64_t r_all = nd == 2 ? rows : cols, c = nd == 2 ? cols : 1;
        int hd = (int)(r_all / permute_heads);
        for (int64_t r = 0; r < r_all; r++) {
            int64_t h = r / hd, j = (r % hd) / (hd / 2), i = r % (hd / 2);
            memcpy(e->want + r * c, il + (h * hd + 2 * i + j) * c, (size_t)c * 4);
        }
    } else {
        memcpy(e->want, il, (size_t)n * 4);
    }
    free(il);
    free(data);
}

static const char *const k_tokens[8] = {"<|endoftext|>", "a", "b", "c", "ab", "abc", "\xc4\xa0", ("\xc4\xa0" "a")};
static const char *const k_merges[3] = {"a b", "ab c", "\xc4\xa0 a"};

/* builds the model into a buffer; expectations in ex (caller frees wants) */
static void build_model(const model_opts *o, expects *ex, uint64_t *s, uint8_t **buf, size_t *n) {
    gw w;
    gw_init(&w, o->version);
    memset(ex, 0, sizeof *ex);
    char k[128];
    gw_str(&w, "general.architecture", o->arch);
    gw_str(&w, "general.name", "tiny test model");
    if (o->align != 32) {
        w.align = o->align;
        gw_u32(&w, "general.alignment", o->align);
    }
#define AK(suffix) (snprintf(k, sizeof k, "%s." suffix, o->arch), k)
    gw_u32(&w, AK("block_count"), LAYERS);
    gw_u32(&w, AK("context_length"), 4096);
    gw_u32(&w, AK("embedding_length"), H);
    gw_u32(&w, AK("feed_forward_length"), FFN);
    gw_u32(&w, AK("attention.head_count"), NH);
    gw_u32(&w, AK("attention.head_count_kv"), NKV);
    gw_f32(&w, AK("attention.layer_norm_rms_epsilon"), 1e-6f);
    gw_f32(&w, AK("rope.freq_base"), 500000.0f);
    if (o->tokenizer) {
        gw_str(&w, "tokenizer.ggml.model", "gpt2");
        gw_str(&w, "tokenizer.ggml.pre", "smollm");
        gw_arr_str(&w, "tokenizer.ggml.tokens", 8, k_tokens);
        int32_t types[8] = {3, 1, 1, 1, 1, 1, 1, 1};
        gw_arr_i32(&w, "tokenizer.ggml.token_type", 8, types);
        gw_arr_str(&w, "tokenizer.ggml.merges", 3, k_merges);
        gw_u32(&w, "tokenizer.ggml.bos_token_id", 0);
        gw_u32(&w, "tokenizer.ggml.eos_token_id", 0);
        gw_bool(&w, "tokenizer.ggml.add_bos_token", 0);
    }
    uint32_t wt = o->wtype;
    int llama = strcmp(o->arch, "llama") == 0;
    add_tensor(&w, ex, s, "token_embd.weight", "model.embed_tokens.weight", wt, VOCAB, H, 0);
    for (int l = 0; l < LAYERS; l++) {
        char gn[64], hn[96];
#define T(g, h, type, rows, cols, ph)                                                               \
    snprintf(gn, sizeof gn, "blk.%d." g, l), snprintf(hn, sizeof hn, "model.layers.%d." h, l),       \
        add_tensor(&w, ex, s, gn, hn, type, rows, cols, ph)
        T("attn_norm.weight", "input_layernorm.weight", LQ_GGML_F32, 1, H, 0);
        T("attn_q.weight", "self_attn.q_proj.weight", wt, NH * HD, H, llama ? NH : 0);
        T("attn_k.weight", "self_attn.k_proj.weight", wt, NKV * HD, H, llama ? NKV : 0);
        T("attn_v.weight", "self_attn.v_proj.weight", wt, NKV * HD, H, 0);
        if (o->bias) {
            T("attn_q.bias", "self_attn.q_proj.bias", LQ_GGML_F32, 1, NH * HD, llama ? NH : 0);
            T("attn_k.bias", "self_attn.k_proj.bias", LQ_GGML_F32, 1, NKV * HD, llama ? NKV : 0);
            T("attn_v.bias", "self_attn.v_proj.bias", LQ_GGML_F32, 1, NKV * HD, 0);
        }
        T("attn_output.weight", "self_attn.o_proj.weight", wt, H, NH * HD, 0);
        T("ffn_norm.weight", "post_attention_layernorm.weight", LQ_GGML_F32, 1, H, 0);
        T("ffn_gate.weight", "mlp.gate_proj.weight", wt, FFN, H, 0);
        T("ffn_up.weight", "mlp.up_proj.weight", wt, FFN, H, 0);
        T("ffn_down.weight", "mlp.down_proj.weight", wt, H, FFN, 0);
#undef T
    }
    add_tensor(&w, ex, s, "output_norm.weight", "model.norm.weight", LQ_GGML_F32, 1, H, 0);
    if (!o->tied) add_tensor(&w, ex, s, "output.weight", "lm_head.weight", wt, VOCAB, H, 0);
#undef AK
    gw_finish(&w, buf, n);
    gw_free(&w);
}

static void free_expects(expects *ex) {
    for (int i = 0; i < ex->n; i++) free(ex->t[i].want);
}

static int64_t cfg_int(const lq_checkpoint *ck, const char *k) {
    json_t *v = json_object_get(ck->config, k);
    if (!json_is_integer(v)) fail_msg("config.%s missing or not an integer", k);
    return (int64_t)json_integer_value(v);
}

static void check_model(const model_opts *o, uint64_t *seed) {
    uint64_t s = *seed;
    lq_test_next(seed);
    expects ex;
    uint8_t *buf;
    size_t n;
    build_model(o, &ex, &s, &buf, &n);
    char *path = write_temp(buf, n);
    lq_checkpoint *ck = NULL;
    lq_status st = lq_gguf_load(path, &ck);
    if (st != LQ_OK) print_message("load: %s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    int llama = strcmp(o->arch, "llama") == 0;
    json_t *arch0 = json_array_get(json_object_get(ck->config, "architectures"), 0);
    assert_string_equal(json_string_value(arch0), llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM");
    assert_string_equal(json_string_value(json_object_get(ck->config, "model_type")), o->arch);
    assert_int_equal(cfg_int(ck, "hidden_size"), H);
    assert_int_equal(cfg_int(ck, "intermediate_size"), FFN);
    assert_int_equal(cfg_int(ck, "num_hidden_layers"), LAYERS);
    assert_int_equal(cfg_int(ck, "num_attention_heads"), NH);
    assert_int_equal(cfg_int(ck, "num_key_value_heads"), NKV);
    assert_int_equal(cfg_int(ck, "head_dim"), HD);
    assert_int_equal(cfg_int(ck, "vocab_size"), VOCAB);
    assert_int_equal(cfg_int(ck, "max_position_embeddings"), 4096);
    assert_true(fabs(json_real_value(json_object_get(ck->config, "rms_norm_eps")) - 1e-6) < 1e-12);
    assert_true(json_real_value(json_object_get(ck->config, "rope_theta")) == 500000.0);
    assert_true(json_is_boolean(json_object_get(ck->config, "tie_word_embeddings")));
    assert_int_equal(json_is_true(json_object_get(ck->config, "tie_word_embeddings")), o->tied);
    assert_string_equal(json_string_value(json_object_get(ck->config, "torch_dtype")), "float32");
    assert_string_equal(ck->format, "gguf");
    assert_int_equal(ck->n_tensors, ex.n);
    for (int i = 0; i < ex.n; i++) {
        const lq_tensor_info *t = lq_checkpoint_find(ck, ex.t[i].hf);
        if (!t) fail_msg("tensor %s missing", ex.t[i].hf);
        assert_int_equal(t->dtype, LQ_F32);
        assert_int_equal(t->ndim, ex.t[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], ex.t[i].shape[d]);
        assert_true(bits_equal(t->data, ex.t[i].want, (size_t)lq_tensor_numel(t), ex.t[i].hf));
    }
    if (o->tokenizer) {
        assert_int_equal(cfg_int(ck, "bos_token_id"), 0);
        assert_non_null(ck->tokenizer);
        assert_non_null(json_object_get(ck->tokenizer, "model"));
    } else {
        assert_null(ck->tokenizer);
    }
    lq_checkpoint_free(ck);
    /* lq_checkpoint_open sniffs the magic and lands here too */
    assert_int_equal(lq_checkpoint_open(path, &ck), LQ_OK);
    assert_string_equal(ck->format, "gguf");
    lq_checkpoint_free(ck);
    unlink(path);
    free(path);
    free(buf);
    free_expects(&ex);
}

static void test_gguf_llama_f32_v3(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    model_opts o = {"llama", 3, 32, LQ_GGML_F32, 1, 0, 1};
    check_model(&o, &s);
}

static void test_gguf_llama_v2_untied_align64(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    model_opts o = {"llama", 2, 64, LQ_GGML_F16, 0, 0, 0};
    check_model(&o, &s);
}

static void test_gguf_llama_align1_bias(void **state) {
    (void)state;
    /* alignment 1 puts tensor data at odd addresses; q/k biases are permuted too */
    uint64_t s = lq_test_seed();
    model_opts o = {"llama", 3, 1, LQ_GGML_Q8_0, 0, 1, 0};
    check_model(&o, &s);
}

static void test_gguf_qwen2_bias_not_permuted(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    model_opts o = {"qwen2", 3, 32, LQ_GGML_Q4_1, 1, 1, 1};
    check_model(&o, &s);
}

static void test_gguf_each_tensor_type(void **state) {
    (void)state;
    const uint32_t types[] = {LQ_GGML_F32,  LQ_GGML_F16,  LQ_GGML_BF16, LQ_GGML_Q4_0, LQ_GGML_Q4_1,
                              LQ_GGML_Q5_0, LQ_GGML_Q5_1, LQ_GGML_Q8_0, LQ_GGML_Q2_K, LQ_GGML_Q3_K,
                              LQ_GGML_Q4_K, LQ_GGML_Q5_K, LQ_GGML_Q6_K, LQ_GGML_Q8_K};
    uint64_t s = lq_test_seed();
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        model_opts o = {"llama", 3, 32, types[i], (int)(i % 2), 0, 0};
        check_model(&o, &s);
    }
}

/* ------------------------------------------------------------------------ */
/* metadata                                                                  */

static void test_gguf_metadata_all_value_types(void **state) {
    (void)state;
    gw w;
    gw_init(&w, 3);
    uint8_t rec[64];
    gbuf b = {0};
#define SCALAR(key, type, bytes, nb)                                                                  \
    b.n = 0, gb_str(&b, key), gb_u32(&b, type), gb_put(&b, bytes, nb), gw_raw_kv(&w, b.p, b.n)
    SCALAR("v.u8", LQ_GGUF_U8, "\xFF", 1);
    SCALAR("v.i8", LQ_GGUF_I8, "\xFF", 1);
    SCALAR("v.u16", LQ_GGUF_U16, "\x34\x12", 2);
    SCALAR("v.i16", LQ_GGUF_I16, "\xFE\xFF", 2);
    SCALAR("v.u32", LQ_GGUF_U32, "\x78\x56\x34\x12", 4);
    SCALAR("v.i32", LQ_GGUF_I32, "\xFD\xFF\xFF\xFF", 4);
    SCALAR("v.f32", LQ_GGUF_F32, "\x00\x00\xC0\x3F", 4);
    SCALAR("v.bool", LQ_GGUF_BOOL, "\x01", 1);
    SCALAR("v.u64", LQ_GGUF_U64, "\x01\x00\x00\x00\x00\x00\x00\x80", 8);
    SCALAR("v.i64", LQ_GGUF_I64, "\xFC\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8);
    SCALAR("v.f64", LQ_GGUF_F64, "\x00\x00\x00\x00\x00\x00\x04\xC0", 8);
#undef SCALAR
    (void)rec;
    gw_str(&w, "v.str", "hello");
    /* array of arrays of u16: [[1, 2], [], [3]] */
    b.n = 0;
    gb_str(&b, "v.nested");
    gb_u32(&b, LQ_GGUF_ARRAY);
    gb_u32(&b, LQ_GGUF_ARRAY);
    gb_u64(&b, 3);
    gb_u32(&b, LQ_GGUF_U16), gb_u64(&b, 2), gb_le(&b, 1, 2), gb_le(&b, 2, 2);
    gb_u32(&b, LQ_GGUF_U16), gb_u64(&b, 0);
    gb_u32(&b, LQ_GGUF_U16), gb_u64(&b, 1), gb_le(&b, 3, 2);
    gw_raw_kv(&w, b.p, b.n);
    float f3[3] = {1.5f, -2, 0};
    gw_arr_f32(&w, "v.floats", 3, f3);
    const char *strs[3] = {"x", "", "yz"};
    gw_arr_str(&w, "v.strs", 3, strs);
    uint8_t *buf;
    size_t n;
    gw_finish(&w, &buf, &n);
    lq_gguf *g = NULL;
    assert_int_equal(lq_gguf_parse(buf, n, "mem.gguf", &g), LQ_OK);
    int64_t i;
    double d;
    int bl;
    assert_int_equal(lq_gguf_get_i64(g, "v.u8", &i), LQ_OK), assert_int_equal(i, 255);
    assert_int_equal(lq_gguf_get_i64(g, "v.i8", &i), LQ_OK), assert_int_equal(i, -1);
    assert_int_equal(lq_gguf_get_i64(g, "v.u16", &i), LQ_OK), assert_int_equal(i, 0x1234);
    assert_int_equal(lq_gguf_get_i64(g, "v.i16", &i), LQ_OK), assert_int_equal(i, -2);
    assert_int_equal(lq_gguf_get_i64(g, "v.u32", &i), LQ_OK), assert_int_equal(i, 0x12345678);
    assert_int_equal(lq_gguf_get_i64(g, "v.i32", &i), LQ_OK), assert_int_equal(i, -3);
    assert_int_equal(lq_gguf_get_f64(g, "v.f32", &d), LQ_OK), assert_true(d == 1.5);
    assert_int_equal(lq_gguf_get_bool(g, "v.bool", &bl), LQ_OK), assert_int_equal(bl, 1);
    expect_err(lq_gguf_get_i64(g, "v.u64", &i), LQ_ERR_FORMAT, "mem.gguf", "v.u64", NULL); /* > INT64_MAX */
    assert_int_equal(lq_gguf_get_i64(g, "v.i64", &i), LQ_OK), assert_int_equal(i, -4);
    assert_int_equal(lq_gguf_get_f64(g, "v.f64", &d), LQ_OK), assert_true(d == -2.5);
    char *str;
    assert_int_equal(lq_gguf_get_str(g, "v.str", &str), LQ_OK);
    assert_string_equal(str, "hello");
    free(str);
    const lq_gguf_value *v = lq_gguf_get(g, "v.nested");
    assert_non_null(v);
    assert_int_equal(v->type, LQ_GGUF_ARRAY);
    assert_int_equal(v->elem_type, LQ_GGUF_ARRAY);
    assert_int_equal(v->n, 3);
    assert_int_equal(v->items[0].n, 2);
    assert_int_equal(v->items[0].elem_type, LQ_GGUF_U16);
    assert_int_equal(v->items[0].raw[2], 2);
    assert_int_equal(v->items[1].n, 0);
    assert_int_equal(v->items[2].raw[0], 3);
    float *fa;
    size_t na;
    assert_int_equal(lq_gguf_get_f32_array(g, "v.floats", &fa, &na), LQ_OK);
    assert_int_equal(na, 3);
    assert_true(fa[0] == 1.5f && fa[1] == -2.0f);
    free(fa);
    char **sa;
    assert_int_equal(lq_gguf_get_str_array(g, "v.strs", &sa, &na), LQ_OK);
    assert_int_equal(na, 3);
    assert_string_equal(sa[0], "x");
    assert_string_equal(sa[1], "");
    assert_string_equal(sa[2], "yz");
    free(sa);
    /* wrong types and absent keys name the key */
    expect_err(lq_gguf_get_str(g, "v.u8", &str), LQ_ERR_FORMAT, "mem.gguf", "v.u8", "u8");
    expect_err(lq_gguf_get_i64(g, "v.absent", &i), LQ_ERR_NOTFOUND, "mem.gguf", "v.absent", NULL);
    expect_err(lq_gguf_get_str_array(g, "v.floats", &sa, &na), LQ_ERR_FORMAT, "mem.gguf", "v.floats", NULL);
    lq_gguf_free(g);
    lq_gguf_free(NULL);
    free(buf);
    free(b.p);
    gw_free(&w);
}

/* ------------------------------------------------------------------------ */
/* malformed inputs                                                          */

/* a small valid file: a few keys and two tensors */
static void small_valid(gw *w, uint32_t version) {
    gw_init(w, version);
    gw_str(w, "general.architecture", "llama");
    gw_u32(w, "general.alignment", 16);
    w->align = 16;
    const char *toks[2] = {"a", "b"};
    gw_arr_str(w, "tokenizer.ggml.tokens", 2, toks);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ne[2] = {4, 2};
    gw_tensor(w, "blk.0.attn_norm.weight", LQ_GGML_F32, 2, ne, a, sizeof a);
    uint8_t q[34] = {0x00, 0x3C, 1, 2, 3};
    int64_t ne1[1] = {32};
    gw_tensor(w, "blk.0.ffn_norm.weight", LQ_GGML_Q8_0, 1, ne1, q, sizeof q);
}

static void test_gguf_truncated_everywhere(void **state) {
    (void)state;
    for (uint32_t version = 2; version <= 3; version++) {
        gw w;
        small_valid(&w, version);
        uint8_t *buf;
        size_t n;
        gw_finish(&w, &buf, &n);
        lq_gguf *g = NULL;
        assert_int_equal(lq_gguf_parse(buf, n, "trunc.gguf", &g), LQ_OK);
        assert_int_equal(g->version, version);
        assert_int_equal(g->n_tensors, 2);
        assert_int_equal(g->alignment, 16);
        assert_int_equal(g->data_offset % 16, 0);
        float y[32];
        assert_int_equal(lq_gguf_tensor_to_f32(g, lq_gguf_find_tensor(g, "blk.0.ffn_norm.weight"), y), LQ_OK);
        assert_true(y[0] == 1.0f && y[2] == 3.0f && y[3] == 0.0f);
        lq_gguf_free(g);
        for (size_t len = 0; len < n; len++) {
            /* a fresh heap copy of exactly len bytes, so ASan sees any overread */
            uint8_t *cut = malloc(len ? len : 1);
            memcpy(cut, buf, len);
            g = NULL;
            lq_status st = lq_gguf_parse(len ? cut : NULL, len, "trunc.gguf", &g);
            if (st == LQ_OK) fail_msg("truncation to %zu of %zu bytes parsed", len, n);
            assert_null(g);
            assert_non_null(strstr(lq_last_error(), "trunc.gguf"));
            free(cut);
        }
        free(buf);
        gw_free(&w);
    }
}

static void test_gguf_bad_header(void **state) {
    (void)state;
    lq_gguf *g;
    gw w;
    gw_init(&w, 1);
    expect_err(parse_gw(&w, "v1.gguf", &g), LQ_ERR_UNSUPPORTED, "v1.gguf", "version 1", NULL);
    gw_free(&w);
    gw_init(&w, 4);
    expect_err(parse_gw(&w, "v4.gguf", &g), LQ_ERR_UNSUPPORTED, "v4.gguf", "version 4", NULL);
    gw_free(&w);
    gw_init(&w, 0x03000000u);
    expect_err(parse_gw(&w, "be.gguf", &g), LQ_ERR_UNSUPPORTED, "be.gguf", "big-endian", NULL);
    gw_free(&w);
    const uint8_t notgguf[16] = "GGML\x03";
    expect_err(lq_gguf_parse(notgguf, sizeof notgguf, "magic.gguf", &g), LQ_ERR_FORMAT, "magic.gguf", "magic", NULL);
    /* absurd counts, refused before anything is allocated */
    small_valid(&w, 3);
    w.n_kv_override = (int64_t)1 << 62;
    expect_err(parse_gw(&w, "kv.gguf", &g), LQ_ERR_FORMAT, "kv.gguf", "key-value count", "4611686018427387904");
    w.n_kv_override = -1;
    w.n_t_override = (int64_t)1 << 40;
    expect_err(parse_gw(&w, "nt.gguf", &g), LQ_ERR_FORMAT, "nt.gguf", "tensor count", "1099511627776");
    gw_free(&w);
}

static void test_gguf_lying_lengths(void **state) {
    (void)state;
    lq_gguf *g;
    gw w;
    gbuf b = {0};
    /* key length */
    gw_init(&w, 3);
    gw_str(&w, "general.architecture", "llama");
    gb_u64(&b, (uint64_t)1 << 40), gb_put(&b, "abc", 3);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "keylen.gguf", &g), LQ_ERR_FORMAT, "keylen.gguf", "key #1", "1099511627776");
    gw_free(&w);
    /* string value length */
    gw_init(&w, 3);
    b.n = 0;
    gb_str(&b, "general.name"), gb_u32(&b, LQ_GGUF_STRING), gb_u64(&b, 10000), gb_put(&b, "x", 1);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "strlen.gguf", &g), LQ_ERR_FORMAT, "strlen.gguf", "general.name", "10000");
    gw_free(&w);
    /* array count */
    gw_init(&w, 3);
    b.n = 0;
    gb_str(&b, "tokenizer.ggml.tokens"), gb_u32(&b, LQ_GGUF_ARRAY), gb_u32(&b, LQ_GGUF_STRING);
    gb_u64(&b, (uint64_t)1 << 60), gb_str(&b, "a");
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "arr.gguf", &g), LQ_ERR_FORMAT, "arr.gguf", "tokenizer.ggml.tokens", "1152921504606846976");
    gw_free(&w);
    /* a string inside an array */
    gw_init(&w, 3);
    b.n = 0;
    gb_str(&b, "tokenizer.ggml.merges"), gb_u32(&b, LQ_GGUF_ARRAY), gb_u32(&b, LQ_GGUF_STRING);
    gb_u64(&b, 2), gb_str(&b, "a b"), gb_u64(&b, 999), gb_put(&b, "c d", 3);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "arrstr.gguf", &g), LQ_ERR_FORMAT, "arrstr.gguf", "tokenizer.ggml.merges", "999");
    gw_free(&w);
    /* tensor name length */
    gw_init(&w, 3);
    gb_u64(&w.ti, 5000), gb_put(&w.ti, "blk", 3);
    w.n_t = 1;
    gb_put(&w.ti, (const uint8_t[24]){0}, 24);
    expect_err(parse_gw(&w, "tname.gguf", &g), LQ_ERR_FORMAT, "tname.gguf", "tensor info #0", "5000");
    gw_free(&w);
    free(b.p);
}

static void test_gguf_bad_values(void **state) {
    (void)state;
    lq_gguf *g;
    gw w;
    gbuf b = {0};
    /* unknown value type */
    gw_init(&w, 3);
    b.n = 0, gb_str(&b, "foo.bar"), gb_u32(&b, 13), gb_u32(&b, 0);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "vtype.gguf", &g), LQ_ERR_FORMAT, "vtype.gguf", "foo.bar", "13");
    gw_free(&w);
    /* unknown array element type */
    gw_init(&w, 3);
    b.n = 0, gb_str(&b, "foo.arr"), gb_u32(&b, LQ_GGUF_ARRAY), gb_u32(&b, 77), gb_u64(&b, 0);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "etype.gguf", &g), LQ_ERR_FORMAT, "etype.gguf", "foo.arr", "77");
    gw_free(&w);
    /* bool that is neither 0 nor 1 */
    gw_init(&w, 3);
    b.n = 0, gb_str(&b, "foo.flag"), gb_u32(&b, LQ_GGUF_BOOL), gb_put(&b, "\x02", 1);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "bool.gguf", &g), LQ_ERR_FORMAT, "bool.gguf", "foo.flag", NULL);
    gw_free(&w);
    /* arrays nested 9 deep */
    gw_init(&w, 3);
    b.n = 0, gb_str(&b, "foo.deep"), gb_u32(&b, LQ_GGUF_ARRAY);
    for (int i = 0; i < 9; i++) gb_u32(&b, LQ_GGUF_ARRAY), gb_u64(&b, 1);
    gb_u32(&b, LQ_GGUF_U8), gb_u64(&b, 0);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "deep.gguf", &g), LQ_ERR_FORMAT, "deep.gguf", "foo.deep", "nested");
    gw_free(&w);
    /* duplicate key */
    gw_init(&w, 3);
    gw_u32(&w, "a.b", 1), gw_u32(&w, "c.d", 1), gw_u32(&w, "a.b", 2);
    expect_err(parse_gw(&w, "dup.gguf", &g), LQ_ERR_FORMAT, "dup.gguf", "a.b", "more than once");
    gw_free(&w);
    /* key with a NUL byte */
    gw_init(&w, 3);
    b.n = 0, gb_u64(&b, 3), gb_put(&b, "a\0b", 3), gb_u32(&b, LQ_GGUF_U8), gb_put(&b, "\x01", 1);
    gw_raw_kv(&w, b.p, b.n);
    expect_err(parse_gw(&w, "nul.gguf", &g), LQ_ERR_FORMAT, "nul.gguf", "key #0", "NUL");
    gw_free(&w);
    /* alignment: not a power of two, zero, wrong type */
    const uint32_t bad_align[] = {48, 0, 3};
    for (int i = 0; i < 3; i++) {
        small_valid(&w, 3);
        w.n_kv = 0, w.kv.n = 0;
        gw_u32(&w, "general.alignment", bad_align[i]);
        char num[16];
        snprintf(num, sizeof num, "%u", bad_align[i]);
        expect_err(parse_gw(&w, "align.gguf", &g), LQ_ERR_FORMAT, "align.gguf", "general.alignment", num);
        gw_free(&w);
    }
    gw_init(&w, 3);
    gw_str(&w, "general.alignment", "32");
    expect_err(parse_gw(&w, "aligntype.gguf", &g), LQ_ERR_FORMAT, "aligntype.gguf", "general.alignment", "string");
    gw_free(&w);
    free(b.p);
}

static void test_gguf_bad_tensor_infos(void **state) {
    (void)state;
    lq_gguf *g;
    gw w;
    float data[64] = {0};
    /* n_dims > 4 */
    gw_init(&w, 3);
    int64_t ne5[5] = {1, 1, 1, 1, 1};
    gw_tensor(&w, "blk.0.attn_q.weight", LQ_GGML_F32, 5, ne5, data, 4);
    expect_err(parse_gw(&w, "ndims.gguf", &g), LQ_ERR_FORMAT, "ndims.gguf", "blk.0.attn_q.weight", "n_dims 5");
    gw_free(&w);
    /* unknown tensor type */
    gw_init(&w, 3);
    int64_t ne[2] = {4, 2};
    gw_tensor(&w, "blk.0.attn_k.weight", 99, 2, ne, data, 32);
    expect_err(parse_gw(&w, "ttype.gguf", &g), LQ_ERR_UNSUPPORTED, "ttype.gguf", "blk.0.attn_k.weight", "99");
    gw_free(&w);
    /* removed type number 4 (Q4_2) is unknown too */
    gw_init(&w, 3);
    gw_tensor(&w, "blk.0.attn_k.weight", 4, 2, ne, data, 32);
    expect_err(parse_gw(&w, "t4.gguf", &g), LQ_ERR_UNSUPPORTED, "t4.gguf", "blk.0.attn_k.weight", "type 4");
    gw_free(&w);
    /* ne[0] not a multiple of the block */
    gw_init(&w, 3);
    int64_t ne16[1] = {16};
    gw_tensor(&w, "blk.0.attn_v.weight", LQ_GGML_Q8_0, 1, ne16, data, 34);
    expect_err(parse_gw(&w, "blk.gguf", &g), LQ_ERR_FORMAT, "blk.gguf", "blk.0.attn_v.weight", "Q8_0");
    gw_free(&w);
    /* element count overflow */
    gw_init(&w, 3);
    int64_t big[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 2};
    gw_tensor_at(&w, "blk.0.ffn_up.weight", LQ_GGML_F32, 3, big, 0);
    expect_err(parse_gw(&w, "ovf.gguf", &g), LQ_ERR_FORMAT, "ovf.gguf", "blk.0.ffn_up.weight", "overflow");
    gw_free(&w);
    /* negative dimension (as int64) */
    gw_init(&w, 3);
    int64_t neg[1] = {-32};
    gw_tensor_at(&w, "blk.0.ffn_up.weight", LQ_GGML_F32, 1, neg, 0);
    expect_err(parse_gw(&w, "neg.gguf", &g), LQ_ERR_FORMAT, "neg.gguf", "blk.0.ffn_up.weight", "dimension 0");
    gw_free(&w);
    /* bytes overflow size_t though elements fit int64 */
    gw_init(&w, 3);
    int64_t huge[1] = {(int64_t)1 << 62};
    gw_tensor_at(&w, "blk.0.ffn_up.weight", LQ_GGML_F32, 1, huge, 0);
    expect_err(parse_gw(&w, "bytes.gguf", &g), LQ_ERR_FORMAT, "bytes.gguf", "blk.0.ffn_up.weight", "overflow");
    gw_free(&w);
    /* overlapping tensors */
    gw_init(&w, 3);
    int64_t ne8[1] = {8};
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 32);
    gw_tensor(&w, "b.weight", LQ_GGML_F32, 1, ne8, data, 32);
    gw_tensor_at(&w, "c.weight", LQ_GGML_F32, 1, ne8, 0);
    expect_err(parse_gw(&w, "overlap.gguf", &g), LQ_ERR_FORMAT, "overlap.gguf", "c.weight", "overlap");
    gw_free(&w);
    /* out of range: past the end, and an offset near 2^64 */
    gw_init(&w, 3);
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 32);
    gw_tensor_at(&w, "far.weight", LQ_GGML_F32, 1, ne8, 64);
    expect_err(parse_gw(&w, "range.gguf", &g), LQ_ERR_FORMAT, "range.gguf", "far.weight", "outside");
    gw_free(&w);
    gw_init(&w, 3);
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 32);
    gw_tensor_at(&w, "wrap.weight", LQ_GGML_F32, 1, ne8, UINT64_MAX - 31);
    expect_err(parse_gw(&w, "wrap.gguf", &g), LQ_ERR_FORMAT, "wrap.gguf", "wrap.weight", NULL);
    gw_free(&w);
    /* misaligned offset */
    gw_init(&w, 3);
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 64);
    gw_tensor_at(&w, "odd.weight", LQ_GGML_F32, 1, ne8, 4);
    expect_err(parse_gw(&w, "misal.gguf", &g), LQ_ERR_FORMAT, "misal.gguf", "odd.weight", "alignment");
    gw_free(&w);
    /* duplicate tensor name */
    gw_init(&w, 3);
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 32);
    gw_tensor(&w, "a.weight", LQ_GGML_F32, 1, ne8, data, 32);
    expect_err(parse_gw(&w, "tdup.gguf", &g), LQ_ERR_FORMAT, "tdup.gguf", "a.weight", "more than once");
    gw_free(&w);
}

/* a parseable file that the HF mapping must refuse */
static void expect_load_err(gw *w, lq_status want, const char *f1, const char *f2) {
    uint8_t *buf;
    size_t n;
    gw_finish(w, &buf, &n);
    char *path = write_temp(buf, n);
    lq_checkpoint *ck = (lq_checkpoint *)1;
    lq_status st = lq_gguf_load(path, &ck);
    expect_err(st, want, path, f1, f2);
    assert_null(ck);
    unlink(path);
    free(path);
    free(buf);
}

static void minimal_llama(gw *w, const char *arch) {
    gw_init(w, 3);
    gw_str(w, "general.architecture", arch);
    char k[128];
#define AK(suffix) (snprintf(k, sizeof k, "%s." suffix, arch), k)
    gw_u32(w, AK("block_count"), 1);
    gw_u32(w, AK("context_length"), 64);
    gw_u32(w, AK("embedding_length"), 8);
    gw_u32(w, AK("feed_forward_length"), 16);
    gw_u32(w, AK("attention.head_count"), 2);
    gw_f32(w, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef AK
    static const float emb[8 * 4];
    int64_t ne[2] = {8, 4};
    gw_tensor(w, "token_embd.weight", LQ_GGML_F32, 2, ne, emb, sizeof emb);
}

static void test_gguf_unsupported_architecture(void **state) {
    (void)state;
    gw w;
    minimal_llama(&w, "gptneox");
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "general.architecture", "gptneox");
    gw_free(&w);
    /* and the minimal llama itself loads: defaults for kv heads, head_dim,
     * rope_theta, vocab from token_embd */
    minimal_llama(&w, "llama");
    uint8_t *buf;
    size_t n;
    gw_finish(&w, &buf, &n);
    lq_gguf *g;
    assert_int_equal(lq_gguf_parse(buf, n, "min.gguf", &g), LQ_OK);
    lq_checkpoint *ck;
    assert_int_equal(lq_gguf_to_checkpoint(g, &ck), LQ_OK);
    assert_int_equal(cfg_int(ck, "num_key_value_heads"), 2);
    assert_int_equal(cfg_int(ck, "head_dim"), 4);
    assert_int_equal(cfg_int(ck, "vocab_size"), 4);
    assert_true(json_real_value(json_object_get(ck->config, "rope_theta")) == 10000.0);
    assert_null(json_object_get(ck->config, "rope_scaling"));
    lq_gguf_free(g); /* the checkpoint owns copies */
    const lq_tensor_info *t = lq_checkpoint_find(ck, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], 8);
    lq_checkpoint_free(ck);
    free(buf);
    gw_free(&w);
}

static void test_gguf_load_errors(void **state) {
    (void)state;
    gw w;
    /* missing required key */
    gw_init(&w, 3);
    gw_str(&w, "general.architecture", "llama");
    expect_load_err(&w, LQ_ERR_NOTFOUND, "llama.block_count", NULL);
    gw_free(&w);
    /* no architecture at all */
    gw_init(&w, 3);
    expect_load_err(&w, LQ_ERR_NOTFOUND, "general.architecture", NULL);
    gw_free(&w);
    /* a tensor with no HF name */
    minimal_llama(&w, "llama");
    float z[8] = {0};
    int64_t ne[1] = {8};
    gw_tensor(&w, "blk.0.mystery.weight", LQ_GGML_F32, 1, ne, z, sizeof z);
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "blk.0.mystery.weight", NULL);
    gw_free(&w);
    /* a type lq cannot dequantize (size known, so the file parses) */
    minimal_llama(&w, "llama");
    uint8_t iq[66] = {0};
    int64_t ne256[1] = {256};
    gw_tensor(&w, "blk.0.attn_norm.weight", LQ_GGML_IQ2_XXS, 1, ne256, iq, sizeof iq);
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "blk.0.attn_norm.weight", "IQ2_XXS");
    gw_free(&w);
    /* q rows that are not heads x head_dim */
    minimal_llama(&w, "llama");
    float q[8 * 6] = {0};
    int64_t neq[2] = {8, 6};
    gw_tensor(&w, "blk.0.attn_q.weight", LQ_GGML_F32, 2, neq, q, sizeof q);
    expect_load_err(&w, LQ_ERR_SHAPE, "blk.0.attn_q.weight", NULL);
    gw_free(&w);
    /* partial rotary embeddings */
    minimal_llama(&w, "llama");
    gw_u32(&w, "llama.rope.dimension_count", 2);
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "llama.rope.dimension_count", "2");
    gw_free(&w);
    /* a layer beyond block_count */
    minimal_llama(&w, "llama");
    gw_tensor(&w, "blk.5.attn_norm.weight", LQ_GGML_F32, 1, ne, z, sizeof z);
    expect_load_err(&w, LQ_ERR_FORMAT, "blk.5.attn_norm.weight", "layer 5");
    gw_free(&w);
    /* ffn_down stored transposed ([ffn, hidden] in GGUF order) */
    minimal_llama(&w, "llama");
    float dn[8 * 16] = {0};
    int64_t nedn[2] = {8, 16};
    gw_tensor(&w, "blk.0.ffn_down.weight", LQ_GGML_F32, 2, nedn, dn, sizeof dn);
    expect_load_err(&w, LQ_ERR_SHAPE, "blk.0.ffn_down.weight", "[16, 8]");
    gw_free(&w);
    /* a bias HF's Llama/Qwen2 have no place for */
    minimal_llama(&w, "llama");
    gw_tensor(&w, "blk.0.attn_norm.bias", LQ_GGML_F32, 1, ne, z, sizeof z);
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "blk.0.attn_norm.bias", NULL);
    gw_free(&w);
    /* heads not a multiple of kv heads */
    minimal_llama(&w, "llama");
    gw_u32(&w, "llama.attention.head_count_kv", 3);
    expect_load_err(&w, LQ_ERR_FORMAT, "llama.attention.head_count_kv", "3");
    gw_free(&w);
    /* vocab_size disagreeing with token_embd */
    minimal_llama(&w, "llama");
    gw_u32(&w, "llama.vocab_size", 5);
    expect_load_err(&w, LQ_ERR_SHAPE, "llama.vocab_size", "token_embd.weight");
    gw_free(&w);
    /* a token id beyond the vocabulary */
    minimal_llama(&w, "llama");
    gw_str(&w, "tokenizer.ggml.model", "gpt2");
    const char *toks[2] = {"a", "b"};
    gw_arr_str(&w, "tokenizer.ggml.tokens", 2, toks);
    gw_u32(&w, "tokenizer.ggml.eos_token_id", 7);
    expect_load_err(&w, LQ_ERR_FORMAT, "tokenizer.ggml.eos_token_id", "7");
    gw_free(&w);
    /* scores of the wrong length */
    minimal_llama(&w, "llama");
    gw_str(&w, "tokenizer.ggml.model", "llama");
    gw_arr_str(&w, "tokenizer.ggml.tokens", 2, toks);
    float sc[3] = {0};
    gw_arr_f32(&w, "tokenizer.ggml.scores", 3, sc);
    expect_load_err(&w, LQ_ERR_FORMAT, "tokenizer.ggml.scores", NULL);
    gw_free(&w);
}

static void test_gguf_rope_scaling(void **state) {
    (void)state;
    gw w;
    uint8_t *buf;
    size_t n;
    lq_gguf *g;
    lq_checkpoint *ck;
    /* linear */
    minimal_llama(&w, "llama");
    gw_str(&w, "llama.rope.scaling.type", "linear");
    gw_f32(&w, "llama.rope.scaling.factor", 4.0f);
    gw_finish(&w, &buf, &n);
    assert_int_equal(lq_gguf_parse(buf, n, "lin.gguf", &g), LQ_OK);
    assert_int_equal(lq_gguf_to_checkpoint(g, &ck), LQ_OK);
    json_t *rs = json_object_get(ck->config, "rope_scaling");
    assert_string_equal(json_string_value(json_object_get(rs, "rope_type")), "linear");
    assert_true(json_real_value(json_object_get(rs, "factor")) == 4.0);
    lq_checkpoint_free(ck), lq_gguf_free(g), free(buf), gw_free(&w);
    /* llama3: rope_freqs.weight as llama.cpp's converter computes it, for
     * head_dim 64, theta 500000, factor 32 */
    minimal_llama(&w, "llama");
    gw_u32(&w, "llama.attention.key_length", 64);
    gw_f32(&w, "llama.rope.freq_base", 500000.0f);
    float rf[32];
    for (int i = 0; i < 32; i++) {
        double freq = 1.0 / pow(500000.0, (2.0 * i) / 64.0), wl = 2 * M_PI / freq;
        double smooth = (8192.0 / wl - 1) / 3;
        rf[i] = wl < 2048 ? 1.0f : wl > 8192 ? 32.0f : (float)(1 / ((1 - smooth) / 32 + smooth));
    }
    int64_t ne32[1] = {32};
    gw_tensor(&w, "rope_freqs.weight", LQ_GGML_F32, 1, ne32, rf, sizeof rf);
    gw_finish(&w, &buf, &n);
    assert_int_equal(lq_gguf_parse(buf, n, "l3.gguf", &g), LQ_OK);
    lq_status st = lq_gguf_to_checkpoint(g, &ck);
    if (st) print_message("%s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    rs = json_object_get(ck->config, "rope_scaling");
    assert_string_equal(json_string_value(json_object_get(rs, "rope_type")), "llama3");
    assert_true(json_real_value(json_object_get(rs, "factor")) == 32.0);
    assert_int_equal(json_integer_value(json_object_get(rs, "original_max_position_embeddings")), 8192);
    assert_null(lq_checkpoint_find(ck, "rope_freqs.weight"));
    lq_checkpoint_free(ck), lq_gguf_free(g), free(buf);
    /* factors lq cannot explain */
    rf[20] = 7.0f;
    gw_free(&w);
    minimal_llama(&w, "llama");
    gw_u32(&w, "llama.attention.key_length", 64);
    gw_f32(&w, "llama.rope.freq_base", 500000.0f);
    gw_tensor(&w, "rope_freqs.weight", LQ_GGML_F32, 1, ne32, rf, sizeof rf);
    expect_load_err(&w, LQ_ERR_UNSUPPORTED, "rope_freqs.weight", NULL);
    gw_free(&w);
}

static void test_gguf_hf_names(void **state) {
    (void)state;
    char out[128];
    const char *pairs[][2] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.17.ffn_norm.weight", "model.layers.17.post_attention_layernorm.weight"},
        {"blk.3.attn_q.bias", "model.layers.3.self_attn.q_proj.bias"},
        {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        assert_int_equal(lq_gguf_hf_name(pairs[i][0], out, sizeof out), LQ_OK);
        assert_string_equal(out, pairs[i][1]);
    }
    const char *bad[] = {"blk..attn_q.weight", "blk.01.attn_q.weight", "blk.1.attn_q", "blk.1.attn_qx.weight",
                         "blk.-1.attn_q.weight", "token_embd.bias", "", "blk.99999999.attn_q.weight"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(lq_gguf_hf_name(bad[i], out, sizeof out), LQ_ERR_UNSUPPORTED);
}

/* ------------------------------------------------------------------------ */
/* the real SmolLM2-135M-Instruct Q4_1 file                                  */

/* Reference values from an independent pure-Python reader (struct-based GGUF
 * parse, Q8_0/Q4_1 dequantized in float32, llama q/k rows un-permuted per head:
 * HF row h*64 + j*32 + i <- GGUF row h*64 + 2i + j), run once as
 *   python3 smol_ref.py datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
 * (the script: read the tensor infos, data at the 32-aligned end of them;
 * Q8_0 x = f32(q*d); Q4_1 x = f32(f32(q*d) + m), q = low nibble for j < 16,
 * high nibble of byte j-16 otherwise). {HF name, row, col, value}; 1-D
 * tensors use row 0. */
static const struct {
    const char *name;
    int64_t row, col;
    float v;
} k_smol_ref[] = {
    {"model.embed_tokens.weight", 1, 0, -0.0238037109f},
    {"model.embed_tokens.weight", 49151, 575, -0.0417022705f},
    {"model.embed_tokens.weight", 1234, 77, -0.0926685333f},
    {"model.layers.0.self_attn.q_proj.weight", 1, 0, -0.159179688f},
    {"model.layers.0.self_attn.q_proj.weight", 32, 100, -0.139404297f},
    {"model.layers.0.self_attn.q_proj.weight", 575, 575, -0.255859375f},
    {"model.layers.7.self_attn.k_proj.weight", 65, 17, 0.208770752f},
    {"model.layers.7.self_attn.k_proj.weight", 191, 300, 0.01171875f},
    {"model.layers.3.self_attn.v_proj.weight", 100, 200, -0.083984375f},
    {"model.layers.29.mlp.down_proj.weight", 575, 1535, 0.056640625f},
    {"model.layers.12.mlp.gate_proj.weight", 1000, 33, 0.0944213867f},
    {"model.layers.0.input_layernorm.weight", 0, 5, -0.03515625f},
    {"model.norm.weight", 0, 575, 1.984375f},
};

static void test_gguf_smollm2_real(void **state) {
    (void)state;
    const char *path = getenv("LQ_SMOLLM2_GGUF");
    if (!path || !*path) path = "datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    struct stat sb;
    if (stat(path, &sb) != 0) {
        print_message("skipped: %s not found (run datasets/fetch_smollm2.sh or set LQ_SMOLLM2_GGUF)\n", path);
        skip();
    }
    lq_gguf *g;
    lq_status st = lq_gguf_open(path, &g);
    if (st) print_message("%s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_tensors, 272);
    assert_int_equal(g->n_kv, 33);
    assert_string_equal(lq_ggml_type_name(lq_gguf_find_tensor(g, "token_embd.weight")->type), "Q8_0");
    assert_string_equal(lq_ggml_type_name(lq_gguf_find_tensor(g, "blk.0.attn_q.weight")->type), "Q4_1");
    lq_gguf_free(g);

    lq_checkpoint *ck;
    st = lq_gguf_load(path, &ck);
    if (st) print_message("%s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    assert_int_equal(cfg_int(ck, "num_hidden_layers"), 30);
    assert_int_equal(cfg_int(ck, "hidden_size"), 576);
    assert_int_equal(cfg_int(ck, "num_attention_heads"), 9);
    assert_int_equal(cfg_int(ck, "num_key_value_heads"), 3);
    assert_int_equal(cfg_int(ck, "intermediate_size"), 1536);
    assert_int_equal(cfg_int(ck, "vocab_size"), 49152);
    assert_int_equal(cfg_int(ck, "head_dim"), 64);
    assert_int_equal(cfg_int(ck, "max_position_embeddings"), 8192);
    assert_int_equal(cfg_int(ck, "bos_token_id"), 1);
    assert_int_equal(cfg_int(ck, "eos_token_id"), 2);
    assert_true(json_is_true(json_object_get(ck->config, "tie_word_embeddings")));
    assert_true(json_real_value(json_object_get(ck->config, "rope_theta")) == 100000.0);
    assert_true(fabs(json_real_value(json_object_get(ck->config, "rms_norm_eps")) - 1e-5) < 1e-9);
    assert_int_equal(ck->n_tensors, 272);
    assert_null(lq_checkpoint_find(ck, "lm_head.weight"));
    const lq_tensor_info *q = lq_checkpoint_find(ck, "model.layers.0.self_attn.q_proj.weight");
    assert_non_null(q);
    assert_int_equal(q->shape[0], 576), assert_int_equal(q->shape[1], 576);
    const lq_tensor_info *k = lq_checkpoint_find(ck, "model.layers.0.self_attn.k_proj.weight");
    assert_int_equal(k->shape[0], 192), assert_int_equal(k->shape[1], 576);
    for (size_t i = 0; i < sizeof k_smol_ref / sizeof *k_smol_ref; i++) {
        const lq_tensor_info *t = lq_checkpoint_find(ck, k_smol_ref[i].name);
        assert_non_null(t);
        int64_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        float v = ((const float *)t->data)[k_smol_ref[i].row * cols + k_smol_ref[i].col];
        if (fabsf(v - k_smol_ref[i].v) > 1e-7f)
            fail_msg("%s[%lld][%lld] = %.9g, Python says %.9g", k_smol_ref[i].name, (long long)k_smol_ref[i].row,
                     (long long)k_smol_ref[i].col, v, k_smol_ref[i].v);
    }
    /* the tokenizer.json built from tokenizer.ggml.* works end to end: the
     * chat-template special token maps to its id, and text round-trips */
    assert_non_null(ck->tokenizer);
    lq_tokenizer *tok = NULL;
    st = lq_tokenizer_from_json(ck->tokenizer, path, &tok);
    if (st) print_message("%s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    assert_int_equal(lq_tokenizer_vocab_size(tok), 49152);
    const char *text = "<|im_start|>user\nWhat is 12345 + 678? Caf\xc3\xa9 na\xc3\xafve.<|im_end|>";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(lq_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n_ids), LQ_OK);
    assert_true(n_ids > 5);
    assert_int_equal(ids[0], 1);          /* <|im_start|>; add_bos_token is false */
    assert_int_equal(ids[n_ids - 1], 2);  /* <|im_end|> */
    char *back = NULL;
    size_t n_back = 0;
    assert_int_equal(lq_tokenizer_decode(tok, ids, n_ids, 0, &back, &n_back), LQ_OK);
    assert_string_equal(back, text);
    free(ids);
    free(back);
    lq_tokenizer_free(tok);
    lq_checkpoint_free(ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_block_layouts),
        cmocka_unit_test(test_gguf_dequant_random_blocks),
        cmocka_unit_test(test_gguf_dequant_edge_scales),
        cmocka_unit_test(test_gguf_dequant_known_answers),
        cmocka_unit_test(test_gguf_dequant_plain_types),
        cmocka_unit_test(test_gguf_permute_hand_example),
        cmocka_unit_test(test_gguf_permute_inverse_identity),
        cmocka_unit_test(test_gguf_llama_f32_v3),
        cmocka_unit_test(test_gguf_llama_v2_untied_align64),
        cmocka_unit_test(test_gguf_llama_align1_bias),
        cmocka_unit_test(test_gguf_qwen2_bias_not_permuted),
        cmocka_unit_test(test_gguf_each_tensor_type),
        cmocka_unit_test(test_gguf_metadata_all_value_types),
        cmocka_unit_test(test_gguf_truncated_everywhere),
        cmocka_unit_test(test_gguf_bad_header),
        cmocka_unit_test(test_gguf_lying_lengths),
        cmocka_unit_test(test_gguf_bad_values),
        cmocka_unit_test(test_gguf_bad_tensor_infos),
        cmocka_unit_test(test_gguf_unsupported_architecture),
        cmocka_unit_test(test_gguf_load_errors),
        cmocka_unit_test(test_gguf_rope_scaling),
        cmocka_unit_test(test_gguf_hf_names),
        cmocka_unit_test(test_gguf_smollm2_real),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
