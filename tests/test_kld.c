/* test_kld.c — the base-vs-quantized statistics of libquant/lq_kld.h: KL of
 * identical distributions is exactly 0, hand-computed small cases, shift
 * invariance, llama.cpp's uncertainty formulas and percentile interpolation.
 * Run: make test (or build/tests/test_kld). */
#include "lq_test.h"

#include "../libquant/lq_kld.h"

static void test_kld_identical_is_zero(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    float l[512];
    lq_test_fill(&rng, l, 512, -8, 8);
    lq_kld_token t;
    lq_kld_token_ref(l, l, 512, 17, &t);
    assert_true(t.kld == 0.0);
    assert_true(t.dp == 0.0);
    assert_true(t.nll_base == t.nll_q);
    assert_int_equal(t.top_base, t.top_q);
}

static void test_kld_two_token_by_hand(void **state) {
    (void)state;
    /* P = (1/2, 1/2), Q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3) */
    float b[2] = {0.0f, 0.0f}, q[2] = {(float)log(3.0), 0.0f};
    lq_kld_token t;
    lq_kld_token_ref(b, q, 2, 0, &t);
    assert_true(fabs(t.kld - 0.5 * log(4.0 / 3.0)) < 1e-7);
    assert_true(fabs(t.nll_base - log(2.0)) < 1e-12);
    assert_true(fabs(t.nll_q - log(4.0 / 3.0)) < 1e-7);
    assert_true(fabs(t.dp - 0.25) < 1e-7);
    assert_int_equal(t.top_base, 0); /* tie -> lowest id */
    assert_int_equal(t.top_q, 0);
    lq_kld_token_ref(b, q, 2, 1, &t);
    assert_true(fabs(t.dp + 0.25) < 1e-7);
    /* three tokens, a disagreement on top-1: P = softmax(0, ln2, 0) = (1/4, 1/2, 1/4),
     * Q = softmax(ln2, 0, 0) = (1/2, 1/4, 1/4): KL = 1/4 ln(1/2) + 1/2 ln 2 + 0 = 1/4 ln 2 */
    float b3[3] = {0.0f, (float)log(2.0), 0.0f}, q3[3] = {(float)log(2.0), 0.0f, 0.0f};
    lq_kld_token_ref(b3, q3, 3, 2, &t);
    assert_true(fabs(t.kld - 0.25 * log(2.0)) < 1e-7);
    assert_int_equal(t.top_base, 1);
    assert_int_equal(t.top_q, 0);
    assert_true(fabs(t.dp) < 1e-7);
}

static void test_kld_shift_invariant_and_positive(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    float b[300], q[300], q2[300];
    for (int rep = 0; rep < 20; rep++) {
        lq_test_fill(&rng, b, 300, -10, 10);
        for (int i = 0; i < 300; i++) {
            q[i] = b[i] + lq_test_uniform(&rng, -0.5f, 0.5f);
            q2[i] = q[i] + 37.0f;
        }
        lq_kld_token t1, t2;
        lq_kld_token_ref(b, q, 300, rep, &t1);
        lq_kld_token_ref(b, q2, 300, rep, &t2);
        assert_true(t1.kld > 0);
        assert_true(fabs(t1.kld - t2.kld) < 1e-5 * (1 + t1.kld));
        assert_true(fabs(t1.dp - t2.dp) < 1e-6);
    }
}

static void test_kld_summary_formulas(void **state) {
    (void)state;
    lq_kld_acc a;
    lq_kld_acc_init(&a);
    const int n = 40;
    double snq = 0, snq2 = 0, snb = 0, snb2 = 0, sqb = 0, sk = 0, sk2 = 0, sd2 = 0, sd4 = 0;
    int same = 0;
    for (int i = 0; i < n; i++) {
        lq_kld_token t = {1.0 + 0.01 * i, 1.1 + 0.013 * i + 0.002 * (i % 3), 0.001 * i, (i % 5 - 2) * 0.01, i % 4, 0};
        same += t.top_base == t.top_q;
        snq += t.nll_q, snq2 += t.nll_q * t.nll_q, snb += t.nll_base, snb2 += t.nll_base * t.nll_base;
        sqb += t.nll_q * t.nll_base, sk += t.kld, sk2 += t.kld * t.kld, sd2 += t.dp * t.dp;
        sd4 += t.dp * t.dp * t.dp * t.dp;
        assert_int_equal(lq_kld_acc_add(&a, &t), LQ_OK);
    }
    lq_kld_summary s;
    assert_int_equal(lq_kld_summarize(&a, &s), LQ_OK);
    double mq = snq / n, mb = snb / n, uq = sqrt((snq2 / n - mq * mq) / (n - 1)), ub = sqrt((snb2 / n - mb * mb) / (n - 1));
    double cov = (sqb / n - mq * mb) / (n - 1);
    assert_true(fabs(s.ppl_q - exp(mq)) < 1e-12);
    assert_true(fabs(s.ppl_q_unc - exp(mq) * uq) < 1e-12);
    assert_true(fabs(s.ln_ppl_ratio - (mq - mb)) < 1e-12);
    assert_true(fabs(s.ln_ppl_ratio_unc - sqrt(uq * uq + ub * ub - 2 * cov)) < 1e-12);
    assert_true(fabs(s.kld_mean - sk / n) < 1e-15);
    assert_true(fabs(s.kld_mean_unc - sqrt((sk2 / n - (sk / n) * (sk / n)) / (n - 1))) < 1e-15);
    double mse = sd2 / n;
    assert_true(fabs(s.dp_rms - sqrt(mse)) < 1e-15);
    assert_true(fabs(s.dp_rms_unc - 0.5 / sqrt(mse) * sqrt((sd4 / n - mse * mse) / (n - 1))) < 1e-12);
    assert_true(fabs(s.same_top - (double)same / n) < 1e-15);
    assert_true(fabs(s.same_top_unc - sqrt(s.same_top * (1 - s.same_top) / (n - 1))) < 1e-15);
    /* KLD values 0, 0.001, ..., 0.039: percentile at f is f * 0.039 (interpolated) */
    assert_true(fabs(s.kld_max - 0.039) < 1e-7);
    assert_true(fabs(s.kld_p90 - 0.9 * 0.039) < 1e-7);
    assert_true(fabs(s.kld_p99 - 0.99 * 0.039) < 1e-7);
    assert_true(fabs(s.kld_median - 0.0195) < 1e-7);
    lq_kld_acc_free(&a);
    lq_kld_acc_free(NULL);
}

static void test_kld_rows_and_errors(void **state) {
    (void)state;
    uint64_t rng = lq_test_seed();
    const int T = 9, V = 50;
    float b[9 * 50], q[9 * 50];
    int32_t tg[9];
    lq_test_fill(&rng, b, T * V, -3, 3);
    lq_test_fill(&rng, q, T * V, -3, 3);
    for (int t = 0; t < T; t++) tg[t] = (int32_t)(lq_test_next(&rng) % V);
    lq_kld_acc a;
    lq_kld_acc_init(&a);
    assert_int_equal(lq_kld_acc_add_rows(&a, b, q, T, V, tg), LQ_OK);
    assert_int_equal(a.count, T);
    double sum = 0;
    for (int t = 0; t < T; t++) {
        lq_kld_token k;
        lq_kld_token_ref(b + t * V, q + t * V, V, tg[t], &k);
        sum += k.kld;
    }
    assert_true(fabs(sum - a.sum_kld) < 1e-12);
    q[3 * V + 7] = NAN;
    assert_int_equal(lq_kld_acc_add_rows(&a, b, q, T, V, tg), LQ_ERR_NUMERIC);
    assert_non_null(strstr(lq_last_error(), "row 3"));
    tg[0] = V;
    assert_int_equal(lq_kld_acc_add_rows(&a, b, q, T, V, tg), LQ_ERR_ARG);
    lq_kld_acc_free(&a);
    lq_kld_summary s;
    lq_kld_acc_init(&a);
    assert_int_equal(lq_kld_summarize(&a, &s), LQ_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kld_identical_is_zero),
        cmocka_unit_test(test_kld_two_token_by_hand),
        cmocka_unit_test(test_kld_shift_invariant_and_positive),
        cmocka_unit_test(test_kld_summary_formulas),
        cmocka_unit_test(test_kld_rows_and_errors),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
