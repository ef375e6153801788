/* test_quant.c — the quantization rule of libquant/lq_quant.h: RTN against
 * a brute-force reference bit for bit (scales found by searching the fp16
 * table, codes by searching every candidate integer with explicit
 * ties-to-even), partial groups (K = 172), all-zero groups, huge and tiny
 * scales, NaN refusal, the packed layout and the dequantizer.
 * Run: make test (or build/tests/test_quant). */
#include "lq_test.h"

#include "../libquant/lq_dtype.h"
#include "../libquant/lq_quant.h"

/* ---- brute-force reference ---- */

/* All finite non-negative halves in increasing order (bit patterns 0..0x7bff). */
static float half_table[0x7c00];
static void init_half_table(void) {
    static int done = 0;
    if (done) return;
    for (uint32_t h = 0; h < 0x7c00; h++) half_table[h] = lq_f16_to_f32((uint16_t)h);
    done = 1;
}

/* Nearest half to x >= 0 (ties to the even bit pattern), saturating at 65504. */
static uint16_t bf_f16(float x) {
    init_half_table();
    if (!(x < 65504.0f)) return 0x7bff;
    uint32_t lo = 0, hi = 0x7bff; /* half_table[lo] <= x < half_table[hi] */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (half_table[mid] <= x) lo = mid;
        else hi = mid;
    }
    double dl = (double)x - half_table[lo], dh = (double)half_table[hi] - x;
    if (dl < dh) return (uint16_t)lo;
    if (dh < dl) return (uint16_t)hi;
    return (uint16_t)((lo & 1) ? hi : lo);
}

/* The integer nearest to x among [lo, hi], ties to even (x exact in double). */
static int bf_nearest(double x, int lo, int hi) {
    int best = lo;
    double bd = fabs(x - lo);
    for (int c = lo + 1; c <= hi; c++) {
        double d = fabs(x - c);
        if (d < bd || (d == bd && (c % 2 == 0))) {
            best = c;
            bd = d;
        }
    }
    return best;
}

/* One group by the written definition. */
static void bf_group(const float *w, int64_t n, int bits, int sym, uint16_t *sh, int *z, uint8_t *codes) {
    const int qmax = (1 << bits) - 1;
    float lo = 0, hi = 0, amax = 0;
    for (int64_t i = 0; i < n; i++) {
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
        amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
    }
    float scale = sym ? amax / (float)((1 << (bits - 1)) - 1) : (hi - lo) / (float)qmax;
    *sh = bf_f16(scale);
    float s = lq_f16_to_f32(*sh);
    if (sym) *z = 1 << (bits - 1);
    else *z = s == 0 ? 0 : bf_nearest((double)(-lo / s), 0, qmax);
    for (int64_t i = 0; i < n; i++) {
        if (s == 0) {
            codes[i] = (uint8_t)*z;
            continue;
        }
        float x = w[i] / s; /* the rule's fp32 quotient */
        /* nearest integer to x, ties to even, then shift by z and clamp: search
         * every code c, comparing x with c - z (ties: c - z even) */
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c <= qmax; c++) {
            double d = fabs((double)x - (double)(c - *z));
            if (d < bd || (d == bd && ((c - *z) % 2 == 0))) {
                best = c;
                bd = d;
            }
        }
        codes[i] = (uint8_t)best;
    }
}

static void fill_weights(uint64_t *rng, float *w, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        float mag = powf(10.0f, lq_test_uniform(rng, -3.0f, 2.0f)); /* rows of very different size */
        for (int64_t c = 0; c < cols; c++) {
            float u = lq_test_uniform(rng, -1.0f, 1.0f);
            w[r * cols + c] = mag * u * u * u; /* heavy-ish tails */
        }
        if (r % 7 == 3) /* exact grid points and half-way values exercise the ties */
            for (int64_t c = 0; c < cols; c++) w[r * cols + c] = (float)((int)(c % 17) - 8) * 0.5f;
    }
}

static void check_rtn_vs_bruteforce(uint64_t *rng, int64_t rows, int64_t cols, int bits, int group, int sym) {
    lq_quant_params p = {bits, group, sym};
    int64_t G = lq_quant_group_size(&p, cols), ng = lq_quant_n_groups(&p, cols);
    float *w = malloc(sizeof(float) * rows * cols);
    uint8_t *codes = malloc(rows * cols), *bc = malloc(rows * cols), *zeros = malloc(rows * ng);
    uint16_t *scales = malloc(2 * rows * ng);
    fill_weights(rng, w, rows, cols);
    assert_int_equal(lq_rtn_quantize_ref(w, rows, cols, &p, codes, scales, zeros), LQ_OK);
    long bad = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            int64_t c0 = g * G, c1 = c0 + G < cols ? c0 + G : cols;
            uint16_t sh;
            int z;
            bf_group(w + r * cols + c0, c1 - c0, bits, sym, &sh, &z, bc + r * cols + c0);
            if (sh != scales[r * ng + g] || z != zeros[r * ng + g]) {
                if (bad++ < 5)
                    print_message("b%d g%d %s [%lld,%lld] row %lld group %lld: scale %04x/%04x zero %d/%d\n", bits,
                                  group, sym ? "sym" : "asym", (long long)rows, (long long)cols, (long long)r,
                                  (long long)g, scales[r * ng + g], sh, zeros[r * ng + g], z);
            }
            for (int64_t c = c0; c < c1; c++)
                if (bc[r * cols + c] != codes[r * cols + c] && bad++ < 5)
                    print_message("b%d g%d %s row %lld col %lld: w %.9g code %d, brute force %d\n", bits, group,
                                  sym ? "sym" : "asym", (long long)r, (long long)c, w[r * cols + c],
                                  codes[r * cols + c], bc[r * cols + c]);
        }
    assert_int_equal(bad, 0);
    free(w);
    free(codes);
    free(bc);
    free(zeros);
    free(scales);
}

static void test_quant_rtn_matches_bruteforce(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    static const int bits[] = {2, 3, 4, 5, 8};
    static const int groups[] = {0, 32, 64, 128};
    static const int64_t Ks[] = {64, 172, 7, 200};
    for (size_t b = 0; b < sizeof bits / sizeof *bits; b++)
        for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
            for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
                for (int sym = 0; sym < 2; sym++) check_rtn_vs_bruteforce(&rng, 9, Ks[k], bits[b], groups[g], sym);
}

static void test_quant_rtn_partial_group(void **state) {
    (void)state;
    /* stories260K's down_proj: K = 172, G = 64 -> groups of 64, 64, 44 */
    const int64_t K = 172;
    float w[172];
    for (int k = 0; k < K; k++) w[k] = 0.01f * (float)((k % 5) - 2);
    w[150] = 3.5f; /* only the partial last group sees this amax */
    lq_quant_params p = {4, 64, 1};
    assert_int_equal(lq_quant_n_groups(&p, K), 3);
    uint8_t codes[172], zeros[3];
    uint16_t scales[3];
    assert_int_equal(lq_rtn_quantize_ref(w, 1, K, &p, codes, scales, zeros), LQ_OK);
    assert_true(lq_f16_to_f32(scales[2]) == 0.5f); /* 3.5 / 7 */
    assert_true(lq_f16_to_f32(scales[0]) == lq_f16_to_f32(lq_f32_to_f16(0.02f / 7.0f)));
    assert_int_equal(codes[150], 15);
    /* group >= K is per channel */
    lq_quant_params pc = {4, 128, 1};
    assert_int_equal(lq_quant_n_groups(&pc, 64), 1);
    assert_int_equal(lq_quant_group_size(&pc, 64), 64);
    lq_quant_params p0 = {4, 0, 1};
    assert_int_equal(lq_quant_group_size(&p0, 172), 172);
}

static void test_quant_rtn_all_zero_group(void **state) {
    (void)state;
    float w[96] = {0};
    for (int k = 64; k < 96; k++) w[k] = (float)(k - 80) * 0.1f;
    for (int sym = 0; sym < 2; sym++)
        for (int bits = 2; bits <= 8; bits++) {
            lq_quant_params p = {bits, 32, sym};
            uint8_t codes[96], zeros[3];
            uint16_t scales[3];
            assert_int_equal(lq_rtn_quantize_ref(w, 1, 96, &p, codes, scales, zeros), LQ_OK);
            assert_int_equal(scales[0], 0);
            assert_int_equal(scales[1], 0);
            assert_int_equal(zeros[0], sym ? 1 << (bits - 1) : 0);
            lq_qweight q;
            assert_int_equal(lq_rtn_quantize_packed(w, 1, 96, &p, &q), LQ_OK);
            float out[96];
            lq_dequant_ref(&q, out);
            for (int k = 0; k < 64; k++) assert_true(out[k] == 0.0f);
            for (int k = 64; k < 96; k++) assert_true(isfinite(out[k]));
            lq_qweight_free(&q);
        }
}

static void test_quant_rtn_huge_and_tiny_scales(void **state) {
    (void)state;
    /* huge: amax / 7 overflows fp16 -> saturates at 65504, codes clip */
    float w[4] = {1e30f, -1e30f, 1e5f, 0.0f};
    lq_quant_params p = {4, 0, 1};
    uint8_t codes[4], z[1];
    uint16_t s[1];
    assert_int_equal(lq_rtn_quantize_ref(w, 1, 4, &p, codes, s, z), LQ_OK);
    assert_int_equal(s[0], 0x7bff);
    assert_int_equal(codes[0], 15);
    assert_int_equal(codes[1], 0);
    assert_int_equal(codes[3], 8);
    lq_quant_params pa = {4, 0, 0}; /* asymmetric: hi - lo overflows fp32 to Inf, still saturates */
    float w2[3] = {3e38f, -3e38f, 1.0f};
    assert_int_equal(lq_rtn_quantize_ref(w2, 1, 3, &pa, codes, s, z), LQ_OK);
    assert_int_equal(s[0], 0x7bff);
    /* tiny: scale underflows fp16 -> every code is the zero point, dequantizes to 0 */
    float t[3] = {1e-10f, -3e-11f, 0.0f};
    assert_int_equal(lq_rtn_quantize_ref(t, 1, 3, &p, codes, s, z), LQ_OK);
    assert_int_equal(s[0], 0);
    assert_int_equal(codes[0], 8);
    assert_int_equal(codes[1], 8);
    assert_int_equal(lq_rtn_quantize_ref(t, 1, 3, &pa, codes, s, z), LQ_OK);
    assert_int_equal(s[0], 0);
    assert_int_equal(z[0], 0);
    assert_int_equal(codes[0], 0);
    /* subnormal fp16 scale: still exact to the definition, error <= s/2 */
    float sub[3] = {7e-6f, -3e-6f, 1e-6f};
    assert_int_equal(lq_rtn_quantize_ref(sub, 1, 3, &p, codes, s, z), LQ_OK);
    assert_true(s[0] > 0 && s[0] < 0x0400);
    float sf = lq_f16_to_f32(s[0]);
    for (int i = 0; i < 3; i++) assert_true(fabsf(sub[i] - (float)(codes[i] - 8) * sf) <= sf * 0.5f * 1.0001f);
}

static void test_quant_rtn_refuses_nan(void **state) {
    (void)state;
    float w[8] = {1, 2, 3, NAN, 5, 6, 7, 8};
    lq_quant_params p = {4, 4, 1};
    uint8_t codes[8], z[2];
    uint16_t s[2];
    assert_int_equal(lq_rtn_quantize_ref(w, 1, 8, &p, codes, s, z), LQ_ERR_NUMERIC);
    assert_non_null(strstr(lq_last_error(), "row 0"));
    w[3] = INFINITY;
    assert_int_equal(lq_rtn_quantize_ref(w, 1, 8, &p, codes, s, z), LQ_ERR_NUMERIC);
    lq_quant_params bad = {9, 4, 1};
    assert_int_equal(lq_rtn_quantize_ref(w, 1, 8, &bad, codes, s, z), LQ_ERR_ARG);
}

static void test_quant_rounding_half_to_even(void **state) {
    (void)state;
    /* s = 1, zero 8 (4-bit symmetric): rint(0.5) = 0, rint(1.5) = 2, rint(2.5) = 2, rint(-0.5) = -0, rint(-1.5) = -2 */
    assert_int_equal(lq_quant_code(0.5f, 1.0f, 8, 15), 8);
    assert_int_equal(lq_quant_code(1.5f, 1.0f, 8, 15), 10);
    assert_int_equal(lq_quant_code(2.5f, 1.0f, 8, 15), 10);
    assert_int_equal(lq_quant_code(-0.5f, 1.0f, 8, 15), 8);
    assert_int_equal(lq_quant_code(-1.5f, 1.0f, 8, 15), 6);
    assert_int_equal(lq_quant_code(7.6f, 1.0f, 8, 15), 15);  /* 16 clipped to qmax */
    assert_int_equal(lq_quant_code(-9.0f, 1.0f, 8, 15), 0);  /* clipped to 0 */
    assert_int_equal(lq_quant_code(3.0f, 0.0f, 5, 15), 5);   /* s == 0: the zero point, no division */
}

static void test_quant_pack_round_trip(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    static const int64_t cols[] = {1, 7, 8, 31, 32, 33, 64, 172};
    for (int bits = 2; bits <= 8; bits++)
        for (size_t ci = 0; ci < sizeof cols / sizeof *cols; ci++) {
            int64_t R = 5, C = cols[ci], W = lq_packed_words(C, bits);
            assert_int_equal(W, (C * bits + 31) / 32);
            uint8_t *codes = malloc(R * C), *back = malloc(R * C);
            uint32_t *packed = malloc(4 * R * W);
            for (int64_t i = 0; i < R * C; i++) codes[i] = (uint8_t)(lq_test_next(&rng) & ((1u << bits) - 1));
            lq_pack_codes_ref(codes, R, C, bits, packed);
            lq_unpack_codes_ref(packed, R, C, bits, back);
            assert_memory_equal(codes, back, R * C);
            for (int64_t r = 0; r < R; r++) {
                for (int64_t k = 0; k < C; k++)
                    assert_int_equal(lq_packed_get(packed + r * W, k, bits), codes[r * C + k]);
                /* padding bits past the last code are zero */
                int64_t used = C * bits;
                if (used % 32) assert_int_equal(packed[r * W + W - 1] >> (used % 32), 0);
            }
            if (bits == 4) /* the documented int4 layout: code k in bits 4*(k%8) of word k/8 */
                for (int64_t k = 0; k < C; k++)
                    assert_int_equal((packed[k / 8] >> (4 * (k % 8))) & 15, codes[k]);
            free(codes);
            free(back);
            free(packed);
        }
}

static void test_quant_dequant_matches_definition(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    const int64_t R = 13, C = 172;
    float *w = malloc(sizeof(float) * R * C), *d1 = malloc(sizeof(float) * R * C), *d2 = malloc(sizeof(float) * R * C);
    fill_weights(&rng, w, R, C);
    for (int sym = 0; sym < 2; sym++)
        for (int bits = 2; bits <= 8; bits++) {
            lq_quant_params p = {bits, 64, sym};
            int64_t ng = lq_quant_n_groups(&p, C);
            uint8_t *codes = malloc(R * C), *zeros = malloc(R * ng);
            uint16_t *scales = malloc(2 * R * ng);
            assert_int_equal(lq_rtn_quantize_ref(w, R, C, &p, codes, scales, zeros), LQ_OK);
            lq_qweight q;
            assert_int_equal(lq_qweight_alloc(&q, R, C, &p, 1), LQ_OK);
            lq_qweight_pack(&q, codes, scales, zeros);
            assert_int_equal(lq_qweight_validate(&q, "test"), LQ_OK);
            lq_dequant_ref(&q, d1);
            lq_dequant_cpu(&q, d2);
            assert_memory_equal(d1, d2, sizeof(float) * R * C);
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < C; k++) {
                    int64_t g = k / 64;
                    float s = lq_f16_to_f32(scales[r * ng + g]);
                    float want = (float)((int)codes[r * C + k] - (int)zeros[r * ng + g]) * s;
                    assert_true(d1[r * C + k] == want);
                    /* unclipped values are within half a step */
                    if (codes[r * C + k] > 0 && codes[r * C + k] < (1 << bits) - 1)
                        assert_true(fabsf(w[r * C + k] - want) <= 0.5f * s * 1.0001f);
                }
            lq_qweight_free(&q);
            free(codes);
            free(zeros);
            free(scales);
        }
    free(w);
    free(d1);
    free(d2);
}

static void test_quant_validate_rejects_bad_g_idx(void **state) {
    (void)state;
    lq_quant_params p = {4, 32, 1};
    lq_qweight q;
    assert_int_equal(lq_qweight_alloc(&q, 2, 64, &p, 1), LQ_OK);
    for (int k = 0; k < 64; k++) assert_int_equal(q.g_idx[k], k / 32);
    q.g_idx[10] = 2;
    assert_int_equal(lq_qweight_validate(&q, "w"), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "g_idx[10]"));
    lq_qweight_free(&q);
    lq_qweight_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_rtn_matches_bruteforce),
        cmocka_unit_test(test_quant_rtn_partial_group),
        cmocka_unit_test(test_quant_rtn_all_zero_group),
        cmocka_unit_test(test_quant_rtn_huge_and_tiny_scales),
        cmocka_unit_test(test_quant_rtn_refuses_nan),
        cmocka_unit_test(test_quant_rounding_half_to_even),
        cmocka_unit_test(test_quant_pack_round_trip),
        cmocka_unit_test(test_quant_dequant_matches_definition),
        cmocka_unit_test(test_quant_validate_rejects_bad_g_idx),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
