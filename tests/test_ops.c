/* test_ops.c — the CPU twins of the reference ops (lq_matmul_cpu,
 * lq_attention_cpu) against lq_*_ref on fresh random inputs, plus
 * properties of the references themselves (RoPE preserves norms, rmsnorm
 * output has unit RMS, llama3 rope scaling matches hand-computed values).
 * Run: make test (or build/tests/test_ops). */
#include "lq_test.h"

#include "../libquant/lq_ops.h"

static void test_ops_matmul_cpu_matches_ref(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t shapes[][3] = {{1, 7, 5}, {3, 33, 17}, {17, 64, 172}, {64, 200, 64}, {1, 512, 64}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int64_t m = shapes[c][0], n = shapes[c][1], k = shapes[c][2];
        float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *b = malloc(sizeof(float) * n);
        float *y1 = malloc(sizeof(float) * m * n), *y2 = malloc(sizeof(float) * m * n);
        lq_test_fill(&s, x, m * k, -1, 1);
        lq_test_fill(&s, w, n * k, -1, 1);
        lq_test_fill(&s, b, n, -1, 1);
        for (int with_b = 0; with_b < 2; with_b++) {
            for (int64_t i = 0; i < m * n; i++) y2[i] = NAN; /* poison: every output must be written */
            lq_matmul_ref(y1, x, w, with_b ? b : NULL, m, n, k);
            lq_matmul_cpu(y2, x, w, with_b ? b : NULL, m, n, k);
            assert_int_equal(lq_test_compare("matmul", y2, y1, (size_t)(m * n), 1e-5, 1e-5), 0);
        }
        free(x);
        free(w);
        free(b);
        free(y1);
        free(y2);
    }
}

static void test_ops_attention_cpu_matches_ref(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    /* (T, pos0, n_heads, n_kv, hd, window) */
    const int cases[][6] = {{1, 0, 8, 4, 8, 0},   {5, 0, 8, 8, 16, 0},  {1, 37, 8, 2, 64, 0},
                            {9, 20, 4, 1, 32, 0}, {12, 3, 6, 3, 8, 4},  {1, 100, 8, 1, 128, 16}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c][0], pos0 = cases[c][1], nh = cases[c][2], nkv = cases[c][3], hd = cases[c][4],
            win = cases[c][5];
        int ctx = pos0 + T;
        size_t qn = (size_t)T * nh * hd, kn = (size_t)ctx * nkv * hd;
        float *q = malloc(qn * 4), *k = malloc(kn * 4), *v = malloc(kn * 4), *o1 = malloc(qn * 4),
              *o2 = malloc(qn * 4);
        lq_test_fill(&s, q, qn, -2, 2);
        lq_test_fill(&s, k, kn, -2, 2);
        lq_test_fill(&s, v, kn, -1, 1);
        for (size_t i = 0; i < qn; i++) o2[i] = NAN;
        lq_attention_ref(o1, q, k, v, T, pos0, nh, nkv, hd, win);
        lq_attention_cpu(o2, q, k, v, T, pos0, nh, nkv, hd, win);
        assert_int_equal(lq_test_compare("attention", o2, o1, qn, 1e-5, 1e-4), 0);
        free(q);
        free(k);
        free(v);
        free(o1);
        free(o2);
    }
}

/* With one key the output is exactly that key's value; with a window of 1 too. */
static void test_ops_attention_single_key_is_value(void **state) {
    (void)state;
    float q[8] = {1, 2, 3, 4, 5, 6, 7, 8}, k[8] = {1, 0, 1, 0, 1, 0, 1, 0}, v[8] = {9, 8, 7, 6, 5, 4, 3, 2}, o[8];
    lq_attention_ref(o, q, k, v, 1, 0, 1, 1, 8, 0);
    for (int i = 0; i < 8; i++) assert_true(fabsf(o[i] - v[i]) < 1e-6f);
}

static void test_ops_rope_preserves_norm_and_position_zero(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int hd = 16, nh = 3, maxp = 64;
    lq_rope_params p = {10000.0, 0, 0, 0, 0, 0};
    float cos_t[64 * 8], sin_t[64 * 8], x[5 * 3 * 16], x0[5 * 3 * 16];
    lq_rope_tables(&p, hd, maxp, cos_t, sin_t);
    lq_test_fill(&s, x, sizeof x / 4, -1, 1);
    memcpy(x0, x, sizeof x);
    int32_t pos[5] = {0, 1, 7, 31, 63};
    lq_rope_ref(x, pos, 5, nh, hd, cos_t, sin_t);
    for (int h = 0; h < 3; h++) /* position 0 is the identity */
        for (int i = 0; i < hd; i++) assert_true(fabsf(x[h * hd + i] - x0[h * hd + i]) < 1e-6f);
    for (int r = 0; r < 5 * nh; r++) {
        double a = 0, b = 0;
        for (int i = 0; i < hd; i++) {
            a += (double)x[r * hd + i] * x[r * hd + i];
            b += (double)x0[r * hd + i] * x0[r * hd + i];
        }
        assert_true(fabs(a - b) < 1e-4 * b + 1e-6);
    }
    /* hand check: position 1, pair 0 rotates by angle 1 rad (inv_freq[0] = 1) */
    assert_true(fabs(cos_t[1 * 8 + 0] - cos(1.0)) < 1e-7 && fabs(sin_t[1 * 8 + 0] - sin(1.0)) < 1e-7);
}

static void test_ops_rope_llama3_scaling(void **state) {
    (void)state;
    /* Llama-3.1-8B: theta 500000, factor 8, low 1, high 4, original 8192, head_dim 128. */
    lq_rope_params p = {500000.0, 1, 8.0, 1.0, 4.0, 8192};
    double f[64], f0[64];
    lq_rope_inv_freq(&p, 128, f);
    lq_rope_params q = {500000.0, 0, 0, 0, 0, 0};
    lq_rope_inv_freq(&q, 128, f0);
    for (int i = 0; i < 64; i++) {
        double wl = 2 * M_PI / f0[i];
        if (wl < 8192.0 / 4) assert_true(f[i] == f0[i]);                  /* high frequency: kept */
        else if (wl > 8192.0) assert_true(fabs(f[i] - f0[i] / 8) < 1e-18); /* low frequency: / factor */
        else assert_true(f[i] < f0[i] && f[i] > f0[i] / 8);                /* blended */
    }
}

static void test_ops_rmsnorm_unit_rms(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    float x[3 * 172], w[172], o[3 * 172];
    lq_test_fill(&s, x, 3 * 172, -5, 5);
    for (int i = 0; i < 172; i++) w[i] = 1;
    lq_rmsnorm_ref(o, x, w, 3, 172, 0);
    for (int r = 0; r < 3; r++) {
        double ss = 0;
        for (int i = 0; i < 172; i++) ss += (double)o[r * 172 + i] * o[r * 172 + i];
        assert_true(fabs(ss / 172 - 1) < 1e-5);
    }
}

static void test_ops_nll_matches_closed_form(void **state) {
    (void)state;
    float logits[2 * 4] = {0, 0, 0, 0, 1000, 0, -1000, 3};
    int32_t tgt[2] = {2, 0};
    double nll[2];
    lq_nll_ref(nll, logits, tgt, 2, 4);
    assert_true(fabs(nll[0] - log(4.0)) < 1e-12); /* uniform over 4 */
    assert_true(nll[1] >= 0 && nll[1] < 1e-12);   /* huge logits stay finite */
}

static void test_ops_swiglu(void **state) {
    (void)state;
    float g[3] = {0, 1, -20}, u[3] = {5, 2, 1}, o[3];
    lq_swiglu_ref(o, g, u, 3);
    assert_true(o[0] == 0);
    assert_true(fabsf(o[1] - 2.0f / (1.0f + expf(-1.0f))) < 1e-6f);
    assert_true(fabsf(o[2]) < 1e-7f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_matmul_cpu_matches_ref),
        cmocka_unit_test(test_ops_attention_cpu_matches_ref),
        cmocka_unit_test(test_ops_attention_single_key_is_value),
        cmocka_unit_test(test_ops_rope_preserves_norm_and_position_zero),
        cmocka_unit_test(test_ops_rope_llama3_scaling),
        cmocka_unit_test(test_ops_rmsnorm_unit_rms),
        cmocka_unit_test(test_ops_nll_matches_closed_form),
        cmocka_unit_test(test_ops_swiglu),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
