/* test_gptq.c — calibration and GPTQ (calib/lq_calib.h): Hessian ref vs
 * OpenBLAS twin, the relative output error through H, the inverse Cholesky
 * factor, GPTQ beating RTN on correlated inputs (plain, per-channel, 3-bit,
 * act-order with static groups: g_idx monotone), the lazy-block update vs the
 * unblocked reference, dead inputs, damping escalation when Cholesky fails
 * (reported), NaN refusal, SHA-256 vectors, calibration sampling, and
 * stories260K quantize -> .lqq -> load -> perplexity end to end.
 * Run: make test (or build/tests/test_gptq). */
#include "lq_test.h"

#include <zlib.h>

#include "../calib/lq_calib.h"
#include "../formats/lq_checkpoint.h"
#include "../formats/lq_formats.h"
#include "../formats/lq_lqq.h"
#include "../libquant/lq_eval.h"

static float gauss(uint64_t *s) {
    float u1 = lq_test_uniform(s, 1e-7f, 1.0f), u2 = lq_test_uniform(s, 0.0f, 1.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* X (n, K): correlated inputs with a few outlier channels, the shape real
 * layer inputs have (a low-rank common part plus per-channel scales). */
static void correlated_inputs(uint64_t *s, float *X, int64_t n, int64_t K) {
    const int r = 8;
    float *A = malloc(sizeof(float) * r * K), *sc = malloc(sizeof(float) * K);
    for (int64_t i = 0; i < r * K; i++) A[i] = gauss(s);
    for (int64_t k = 0; k < K; k++) sc[k] = expf(0.7f * gauss(s)) * (k % 29 == 3 ? 8.0f : 1.0f);
    for (int64_t t = 0; t < n; t++) {
        float z[8];
        for (int j = 0; j < r; j++) z[j] = gauss(s);
        for (int64_t k = 0; k < K; k++) {
            float v = 0.3f * gauss(s);
            for (int j = 0; j < r; j++) v += z[j] * A[j * K + k];
            X[t * K + k] = sc[k] * v;
        }
    }
    free(A);
    free(sc);
}

static void random_weights(uint64_t *s, float *W, int64_t n) {
    for (int64_t i = 0; i < n; i++) W[i] = 0.05f * gauss(s);
}

/* ||(W - Ŵ) X^T|| / ||W X^T|| directly */
static double direct_rel_err(const float *W, const float *Wh, const float *X, int64_t N, int64_t K, int64_t n) {
    double num = 0, den = 0;
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < N; r++) {
            double a = 0, b = 0;
            for (int64_t k = 0; k < K; k++) {
                a += (double)W[r * K + k] * X[t * K + k];
                b += ((double)W[r * K + k] - Wh[r * K + k]) * X[t * K + k];
            }
            den += a * a;
            num += b * b;
        }
    return sqrt(num / den);
}

static void test_gptq_hessian_ref_matches_cpu(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t K = 37, n = 1500; /* more rows than one dsyrk chunk */
    float *X = malloc(sizeof(float) * n * K);
    correlated_inputs(&s, X, n, K);
    lq_hessian a, b;
    assert_int_equal(lq_hessian_init(&a, K), LQ_OK);
    assert_int_equal(lq_hessian_init(&b, K), LQ_OK);
    lq_hessian_accum_ref(&a, X, 700);
    lq_hessian_accum_ref(&a, X + 700 * K, n - 700);
    assert_int_equal(lq_hessian_accum_cpu(&b, X, n), LQ_OK);
    assert_int_equal(a.n, n);
    assert_int_equal(b.n, n);
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = r; c < K; c++)
            assert_true(fabs(a.S[r * K + c] - b.S[r * K + c]) <= 1e-9 * (fabs(a.S[r * K + c]) + 1));
    double *H = malloc(sizeof(double) * K * K);
    lq_hessian_finalize(&a, H);
    assert_true(H[3 * K + 5] == H[5 * K + 3]);
    assert_true(fabs(H[3 * K + 5] - 2.0 * a.S[3 * K + 5] / n) < 1e-12 * fabs(H[3 * K + 5]) + 1e-300);
    free(H);
    lq_hessian_free(&a);
    lq_hessian_free(&b);
    free(X);
}

static void test_gptq_rel_err_matches_direct(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t N = 9, K = 24, n = 200;
    float *X = malloc(sizeof(float) * n * K), W[9 * 24], Wh[9 * 24];
    correlated_inputs(&s, X, n, K);
    random_weights(&s, W, N * K);
    for (int i = 0; i < N * K; i++) Wh[i] = W[i] + 0.01f * gauss(&s);
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, K), LQ_OK);
    assert_int_equal(lq_hessian_accum_cpu(&h, X, n), LQ_OK);
    double rel;
    assert_int_equal(lq_hessian_rel_err(&h, W, Wh, N, &rel), LQ_OK);
    double want = direct_rel_err(W, Wh, X, N, K, n);
    assert_true(fabs(rel - want) < 1e-9 * want);
    assert_int_equal(lq_hessian_rel_err(&h, W, W, N, &rel), LQ_OK);
    assert_true(rel == 0.0);
    lq_hessian_free(&h);
    free(X);
}

static void test_gptq_hinv_is_inverse_cholesky(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t K = 40, n = 300;
    float *X = malloc(sizeof(float) * n * K), *U = malloc(sizeof(float) * K * K);
    double *H = malloc(sizeof(double) * K * K);
    correlated_inputs(&s, X, n, K);
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, K), LQ_OK);
    lq_hessian_accum_ref(&h, X, n);
    lq_hessian_finalize(&h, H);
    lq_gptq_report rep = {0};
    assert_int_equal(lq_gptq_hinv_cpu(H, K, 0.01, 4, U, &rep), LQ_OK);
    assert_int_equal(rep.escalations, 0);
    double md = 0;
    for (int64_t i = 0; i < K; i++) md += H[i * K + i];
    assert_true(fabs(rep.damp_used - 0.01 * md / K) < 1e-12 * md);
    /* U upper; (U^T U) (H + damp I) = I */
    double worst = 0;
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = 0; c < K; c++) {
            if (c < r) assert_true(U[r * K + c] == 0.0f);
            double acc = 0;
            for (int64_t m = 0; m < K; m++) {
                double hinv_rm = 0; /* (U^T U)[r, m] */
                for (int64_t j = 0; j <= (r < m ? r : m); j++) hinv_rm += (double)U[j * K + r] * U[j * K + m];
                acc += hinv_rm * (H[m * K + c] + (m == c ? rep.damp_used : 0));
            }
            double e = fabs(acc - (r == c));
            if (e > worst) worst = e;
        }
    print_message("max |(U^T U)(H + dI) - I| = %.3g\n", worst);
    assert_true(worst < 1e-3);
    lq_hessian_free(&h);
    free(X);
    free(U);
    free(H);
}

typedef struct {
    double rtn, gptq;
} errs;

static errs run_case(uint64_t *s, int64_t N, int64_t K, int64_t n, lq_quant_params qp, int act_order, lq_qweight *keep) {
    float *X = malloc(sizeof(float) * n * K), *W = malloc(sizeof(float) * N * K), *Wr = malloc(sizeof(float) * N * K),
          *Wg = malloc(sizeof(float) * N * K), *Wd = malloc(sizeof(float) * N * K);
    correlated_inputs(s, X, n, K);
    random_weights(s, W, N * K);
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, K), LQ_OK);
    assert_int_equal(lq_hessian_accum_cpu(&h, X, n), LQ_OK);
    lq_qweight qr, qg;
    assert_int_equal(lq_rtn_quantize_packed(W, N, K, &qp, &qr), LQ_OK);
    lq_dequant_ref(&qr, Wr);
    lq_gptq_opts o = lq_gptq_opts_default();
    o.q = qp;
    o.act_order = act_order;
    lq_gptq_report rep;
    assert_int_equal(lq_gptq_quantize(W, N, K, &h, &o, &qg, Wg, &rep), LQ_OK);
    lq_dequant_ref(&qg, Wd);
    assert_memory_equal(Wd, Wg, sizeof(float) * N * K); /* What is the stored weight */
    errs e;
    assert_int_equal(lq_hessian_rel_err(&h, W, Wr, N, &e.rtn), LQ_OK);
    assert_int_equal(lq_hessian_rel_err(&h, W, Wg, N, &e.gptq), LQ_OK);
    assert_true(fabs(e.gptq - direct_rel_err(W, Wg, X, N, K, n)) < 1e-6);
    lq_qweight_free(&qr);
    if (keep) *keep = qg;
    else lq_qweight_free(&qg);
    lq_hessian_free(&h);
    free(X);
    free(W);
    free(Wr);
    free(Wg);
    free(Wd);
    return e;
}

static void test_gptq_beats_rtn_on_correlated_inputs(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    struct {
        lq_quant_params q;
        const char *what;
    } cases[] = {{{4, 32, 1}, "4-bit g32 sym"}, {{4, 0, 0}, "4-bit per-channel asym"}, {{3, 64, 1}, "3-bit g64 sym"},
                 {{4, 48, 0}, "4-bit g48 asym (K not a multiple)"}, {{8, 128, 1}, "8-bit g128 sym"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        errs e = run_case(&s, 32, 136, 512, cases[i].q, 0, NULL);
        print_message("%-36s rel. output error RTN %.5f  GPTQ %.5f\n", cases[i].what, e.rtn, e.gptq);
        assert_true(e.gptq < 0.9 * e.rtn);
    }
}

static void test_gptq_act_order_static_groups(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    lq_quant_params qp = {4, 32, 1};
    uint64_t s2 = s;
    errs plain = run_case(&s, 32, 136, 512, qp, 0, NULL);
    lq_qweight q;
    errs act = run_case(&s2, 32, 136, 512, qp, 1, &q); /* same data */
    print_message("4-bit g32: RTN %.5f  GPTQ %.5f  GPTQ act-order %.5f\n", plain.rtn, plain.gptq, act.gptq);
    assert_true(act.rtn == plain.rtn);
    assert_true(act.gptq < 0.9 * act.rtn);
    assert_non_null(q.g_idx);
    for (int64_t k = 0; k < q.cols; k++) {
        assert_int_equal(q.g_idx[k], k / 32);
        if (k) assert_true(q.g_idx[k] >= q.g_idx[k - 1]);
    }
    assert_int_equal(lq_qweight_validate(&q, "act-order"), LQ_OK);
    lq_qweight_free(&q);
}

static void test_gptq_update_cpu_matches_ref(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t N = 16, K = 100, n = 400;
    float *X = malloc(sizeof(float) * n * K), *W = malloc(sizeof(float) * N * K), *U = malloc(sizeof(float) * K * K),
          *Wa = malloc(sizeof(float) * N * K), *Wb = malloc(sizeof(float) * N * K);
    double *H = malloc(sizeof(double) * K * K);
    correlated_inputs(&s, X, n, K);
    random_weights(&s, W, N * K);
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, K), LQ_OK);
    lq_hessian_accum_cpu(&h, X, n);
    lq_hessian_finalize(&h, H);
    lq_gptq_report rep;
    assert_int_equal(lq_gptq_hinv_cpu(H, K, 0.01, 4, U, &rep), LQ_OK);
    const int64_t G = 32, ng = 4;
    int32_t cg[100];
    for (int64_t j = 0; j < K; j++) cg[j] = (int32_t)(j / G);
    lq_quant_params qp = {4, 32, 0};
    uint8_t ca[16 * 100], cb[16 * 100], za[16 * 4], zb[16 * 4];
    uint16_t sa[16 * 4], sb[16 * 4];
    const int blocks[] = {128, 48, 20, 1};
    for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++) {
        memcpy(Wa, W, sizeof(float) * N * K);
        memcpy(Wb, W, sizeof(float) * N * K);
        assert_int_equal(lq_gptq_update_ref(Wa, N, K, U, &qp, G, cg, 0, sa, za, ca), LQ_OK);
        assert_int_equal(lq_gptq_update_cpu(Wb, N, K, U, &qp, G, cg, 0, sb, zb, cb, blocks[bi]), LQ_OK);
        int diff = 0, sdiff = 0;
        for (int64_t i = 0; i < N * K; i++) diff += ca[i] != cb[i];
        for (int64_t i = 0; i < N * ng; i++) sdiff += sa[i] != sb[i] || za[i] != zb[i];
        print_message("block %d: %d of %lld codes and %d of %lld group params differ (float summation order)\n",
                      blocks[bi], diff, (long long)(N * K), sdiff, (long long)(N * ng));
        assert_true(diff <= N * K / 100);
        assert_true(sdiff <= N * ng / 20);
    }
    /* a permutation with static params is accepted by both; dynamic params with a permutation are refused */
    int32_t cgp[100];
    for (int64_t j = 0; j < K; j++) cgp[j] = (int32_t)(((j * 37) % K) / G);
    assert_int_equal(lq_gptq_update_cpu(Wb, N, K, U, &qp, G, cgp, 0, sb, zb, cb, 128), LQ_ERR_ARG);
    lq_hessian_free(&h);
    free(X);
    free(W);
    free(U);
    free(Wa);
    free(Wb);
    free(H);
}

static void test_gptq_dead_inputs(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t N = 8, K = 40, n = 100;
    float *X = malloc(sizeof(float) * n * K), W[8 * 40], Wg[8 * 40];
    correlated_inputs(&s, X, n, K);
    for (int64_t t = 0; t < n; t++) X[t * K + 5] = X[t * K + 17] = 0.0f;
    random_weights(&s, W, N * K);
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, K), LQ_OK);
    lq_hessian_accum_cpu(&h, X, n);
    for (int act = 0; act < 2; act++) {
        lq_gptq_opts o = lq_gptq_opts_default();
        o.q = (lq_quant_params){4, 16, act};
        o.act_order = act;
        lq_qweight q;
        lq_gptq_report rep;
        assert_int_equal(lq_gptq_quantize(W, N, K, &h, &o, &q, Wg, &rep), LQ_OK);
        assert_int_equal(rep.n_dead, 2);
        for (int64_t r = 0; r < N; r++) {
            assert_true(Wg[r * K + 5] == 0.0f);
            assert_true(Wg[r * K + 17] == 0.0f);
        }
        for (int64_t i = 0; i < N * K; i++) assert_true(isfinite(Wg[i]));
        lq_qweight_free(&q);
    }
    lq_hessian_free(&h);
    free(X);
}

static void test_gptq_cholesky_failure_escalates_damping(void **state) {
    (void)state;
    /* H = [[1, 1.05], [1.05, 1]] has eigenvalues 2.05 and -0.05: damping 0.01
     * leaves it indefinite, 0.1 x mean(diag) = 0.1 makes it positive definite. */
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, 2), LQ_OK);
    h.S[0] = 1.0, h.S[1] = 1.05, h.S[3] = 1.0, h.n = 2; /* H = 2 S / n = S */
    float W[6] = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.25f}, Wg[6];
    lq_gptq_opts o = lq_gptq_opts_default();
    lq_qweight q;
    lq_gptq_report rep;
    assert_int_equal(lq_gptq_quantize(W, 3, 2, &h, &o, &q, Wg, &rep), LQ_OK);
    print_message("escalations %d, damping %g x mean(diag H) = %g\n", rep.escalations, rep.percdamp_used,
                  rep.damp_used);
    assert_int_equal(rep.escalations, 1);
    assert_true(fabs(rep.percdamp_used - 0.1) < 1e-12);
    assert_true(fabs(rep.damp_used - 0.1) < 1e-12);
    lq_qweight_free(&q);
    /* no escalation allowed: a clear LQ_ERR_NUMERIC naming the damping, no crash */
    double H[4] = {1.0, 1.05, 1.05, 1.0};
    float U[4];
    assert_int_equal(lq_gptq_hinv_cpu(H, 2, 0.01, 0, U, &rep), LQ_ERR_NUMERIC);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "damping"));
    /* hopeless (negative diagonal): every escalation fails, still an error */
    double Hn[4] = {-1.0, 0.0, 0.0, -1.0};
    assert_int_equal(lq_gptq_hinv_cpu(Hn, 2, 0.01, 4, U, &rep), LQ_ERR_NUMERIC);
    lq_hessian_free(&h);
}

static void test_gptq_nan_hessian_refused(void **state) {
    (void)state;
    lq_hessian h;
    assert_int_equal(lq_hessian_init(&h, 3), LQ_OK);
    h.S[0] = 1, h.S[4] = NAN, h.S[8] = 1, h.n = 5;
    float W[6] = {1, 2, 3, 4, 5, 6}, Wg[6];
    lq_gptq_opts o = lq_gptq_opts_default();
    lq_qweight q;
    lq_gptq_report rep;
    assert_int_equal(lq_gptq_quantize(W, 2, 3, &h, &o, &q, Wg, &rep), LQ_ERR_NUMERIC);
    assert_non_null(strstr(lq_last_error(), "non-finite"));
    assert_null(q.mem);
    h.n = 0;
    assert_int_equal(lq_gptq_quantize(W, 2, 3, &h, &o, &q, Wg, &rep), LQ_ERR_ARG);
    lq_hessian_free(&h);
}

static void test_gptq_sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    lq_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    lq_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: two padding blocks */
    lq_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char a[1000];
    memset(a, 'a', sizeof a);
    lq_sha256_hex(a, 64, hex); /* exactly one block of data */
    assert_string_equal(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_gptq_calib_data_sampling(void **state) {
    (void)state;
    char tp[1024];
    LQ_SKIP_IF_NO_SHARED(tp, "models/stories260K/tokenizer.json");
    lq_tokenizer *tok = NULL;
    assert_int_equal(lq_tokenizer_load(tp, &tok), LQ_OK);
    char txt[256], jl[256];
    snprintf(txt, sizeof txt, "/tmp/lq_test_calib.%ld.txt", (long)getpid());
    snprintf(jl, sizeof jl, "/tmp/lq_test_calib.%ld.jsonl.gz", (long)getpid());
    FILE *fp = fopen(txt, "w");
    for (int i = 0; i < 40; i++) fprintf(fp, "Once upon a time there was a little cat named Tom number %d. ", i);
    fclose(fp);
    gzFile g = gzopen(jl, "wb");
    gzprintf(g, "{\"text\": \"Hi.\"}\n\n");
    for (int i = 0; i < 10; i++)
        gzprintf(g, "{\"text\": \"The dog ran to the park and played with a big red ball all day, story %d.\", \"url\": \"x\"}\n", i);
    gzclose(g);
    lq_calib_data a, b, c;
    assert_int_equal(lq_calib_data_load(txt, tok, 6, 16, 7, &a), LQ_OK);
    assert_int_equal(lq_calib_data_load(txt, tok, 6, 16, 7, &b), LQ_OK);
    assert_int_equal(lq_calib_data_load(txt, tok, 6, 16, 8, &c), LQ_OK);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int32_t) * 6 * 16);
    assert_memory_not_equal(a.tokens, c.tokens, sizeof(int32_t) * 6 * 16);
    assert_string_equal(a.kind, "text");
    /* every sample is a window of the tokenized file */
    char *text;
    size_t tn, nid;
    int32_t *ids;
    assert_int_equal(lq_read_file(txt, &text, &tn), LQ_OK);
    assert_int_equal(lq_tokenizer_encode(tok, text, tn, 1, &ids, &nid), LQ_OK);
    for (int sI = 0; sI < 6; sI++) {
        int found = 0;
        for (size_t off = 0; off + 16 <= nid && !found; off++)
            found = !memcmp(ids + off, a.tokens + sI * 16, sizeof(int32_t) * 16);
        assert_true(found);
    }
    char hex[65];
    lq_sha256_hex(text, tn, hex);
    json_t *pv = lq_calib_data_provenance(&a);
    assert_string_equal(json_string_value(json_object_get(pv, "sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(pv, "seed")), 7);
    json_decref(pv);
    free(text);
    free(ids);
    lq_calib_data_free(&a);
    lq_calib_data_free(&b);
    lq_calib_data_free(&c);
    /* JSONL.gz: short documents are skipped, blank lines ignored */
    assert_int_equal(lq_calib_data_load(jl, tok, 5, 12, 1, &a), LQ_OK);
    assert_string_equal(a.kind, "jsonl");
    assert_int_equal(a.n_docs, 11);
    lq_calib_data_free(&a);
    assert_int_equal(lq_calib_data_load(jl, tok, 2, 500, 1, &a), LQ_ERR_ARG); /* no document that long */
    lq_calib_data_free(NULL);
    unlink(txt);
    unlink(jl);
    lq_tokenizer_free(tok);
}

static void test_gptq_rtn_parallel_same_bytes(void **state) {
    (void)state;
    uint64_t s = lq_test_seed();
    const int64_t N = 300, K = 4000; /* above the parallel threshold, rows not a multiple of the block */
    float *W = malloc(sizeof(float) * N * K);
    random_weights(&s, W, N * K);
    const lq_quant_params ps[] = {{4, 128, 1}, {3, 0, 0}, {5, 96, 0}, {8, 32, 1}, {2, 1000, 0}};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        lq_qweight a, b;
        assert_int_equal(lq_rtn_quantize_packed(W, N, K, &ps[i], &a), LQ_OK);
        assert_int_equal(lq_rtn_quantize_packed_cpu(W, N, K, &ps[i], &b), LQ_OK);
        assert_memory_equal(a.qweight, b.qweight, lq_qweight_qweight_bytes(N, K, ps[i].bits));
        assert_memory_equal(a.scales, b.scales, lq_qweight_scales_bytes(N, a.n_groups));
        if (!ps[i].sym) assert_memory_equal(a.qzeros, b.qzeros, lq_qweight_qzeros_bytes(N, a.n_groups, ps[i].bits));
        lq_qweight_free(&a);
        lq_qweight_free(&b);
    }
    W[77 * K + 5] = NAN;
    lq_qweight q;
    assert_int_equal(lq_rtn_quantize_packed_cpu(W, N, K, &ps[0], &q), LQ_ERR_NUMERIC);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "row 77"));
    assert_null(q.mem);
    free(W);
}

static void test_gptq_calib_random(void **state) {
    (void)state;
    lq_calib_data a, b;
    assert_int_equal(lq_calib_data_random(97, 3, 50, 11, &a), LQ_OK);
    assert_int_equal(lq_calib_data_random(97, 3, 50, 11, &b), LQ_OK);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int32_t) * 150);
    int seen[97] = {0};
    for (int i = 0; i < 150; i++) {
        assert_true(a.tokens[i] >= 0 && a.tokens[i] < 97);
        seen[a.tokens[i]] = 1;
    }
    int distinct = 0;
    for (int i = 0; i < 97; i++) distinct += seen[i];
    assert_true(distinct > 50);
    json_t *pv = lq_calib_data_provenance(&a);
    assert_string_equal(json_string_value(json_object_get(pv, "kind")), "random");
    json_decref(pv);
    lq_calib_data_free(&a);
    lq_calib_data_free(&b);
    assert_int_equal(lq_calib_data_random(0, 3, 50, 11, &a), LQ_ERR_ARG);
}

/* ---- stories260K end to end ---- */

static double ppl_of(lq_model *m, const int32_t *ids, size_t n) {
    lq_engine *e = NULL;
    assert_int_equal(lq_engine_cpu_new(m, 4, 128, &e), LQ_OK);
    lq_ppl_opts o = {128, 0, 4, NULL, NULL};
    lq_ppl_result r;
    assert_int_equal(lq_ppl_eval(e, ids, n, &o, &r), LQ_OK);
    lq_engine_free(e);
    return r.ppl;
}

static void test_gptq_stories_end_to_end(void **state) {
    (void)state;
    char mp[1024], gp[1024];
    LQ_SKIP_IF_NO_SHARED(mp, "models/stories260K/config.json");
    LQ_SKIP_IF_NO_SHARED(gp, "golden/stories260K/golden.safetensors");
    lq_test_shared_path(mp, sizeof mp, "models/stories260K");
    lq_checkpoint *golden = NULL, *ck = NULL;
    assert_int_equal(lq_safetensors_open(gp, &golden), LQ_OK);
    int32_t ids[2000];
    size_t n = 0;
    for (int sI = 0; sI < 5; sI++) {
        char name[32];
        snprintf(name, sizeof name, "tokens.%d", sI);
        const lq_tensor_info *t = lq_checkpoint_find(golden, name);
        memcpy(ids + n, t->data, t->n_bytes);
        n += (size_t)t->shape[0];
    }
    /* calibration: 24 windows of 64 tokens at fixed offsets */
    int32_t calib[24 * 64];
    for (int sI = 0; sI < 24; sI++) memcpy(calib + sI * 64, ids + (sI * 71) % (n - 64), sizeof(int32_t) * 64);
    assert_int_equal(lq_checkpoint_open(mp, &ck), LQ_OK);
    lq_model *base = NULL;
    assert_int_equal(lq_model_from_checkpoint(ck, &base), LQ_OK);
    double p_base = ppl_of(base, ids, n);
    struct {
        lq_qmethod method;
        lq_quant_params q;
        int act;
        double ppl;
    } runs[] = {{LQ_QMETHOD_RTN, {8, 128, 1}, 0, 0}, {LQ_QMETHOD_RTN, {4, 128, 1}, 0, 0},
                {LQ_QMETHOD_GPTQ, {4, 128, 1}, 0, 0}, {LQ_QMETHOD_GPTQ, {4, 32, 0}, 1, 0}};
    char out[256];
    snprintf(out, sizeof out, "/tmp/lq_test_gptq.%ld.lqq", (long)getpid());
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        lq_model *m = NULL;
        assert_int_equal(lq_model_from_checkpoint(ck, &m), LQ_OK);
        lq_quantize_opts o = {0};
        o.method = runs[i].method;
        o.gptq = lq_gptq_opts_default();
        o.gptq.q = runs[i].q;
        o.gptq.act_order = runs[i].act;
        lq_quant_result *res = NULL;
        int nr = 0;
        assert_int_equal(lq_quantize_model(m, runs[i].method == LQ_QMETHOD_GPTQ ? calib : NULL, 24, 64, &o, &res, &nr),
                         LQ_OK);
        assert_int_equal(nr, 35);
        /* write: quantized weights + everything else from the checkpoint */
        lq_lqq_writer *w;
        assert_int_equal(lq_lqq_writer_new(&w), LQ_OK);
        json_t *qt = json_object();
        for (int t = 0; t < ck->n_tensors; t++) {
            const lq_tensor_info *ti = &ck->tensors[t];
            int qi = -1;
            for (int j = 0; j < nr; j++)
                if (!strcmp(res[j].name, ti->name)) qi = j;
            if (qi >= 0) {
                json_t *rec;
                assert_int_equal(lq_lqq_writer_add_qweight(w, ti->name, &res[qi].q, &rec), LQ_OK);
                json_object_set_new(qt, ti->name, rec);
            } else {
                assert_int_equal(lq_lqq_writer_add(w, ti->name, (lq_lqq_dtype)lq_lqq_dtype_from_lq(ti->dtype), ti->ndim,
                                                   ti->shape, ti->data, ti->n_bytes),
                                 LQ_OK);
            }
        }
        json_t *meta = json_pack("{s:O, s:O, s:{s:o}}", "config", ck->config, "tokenizer", ck->tokenizer,
                                 "quantization", "tensors", qt);
        assert_int_equal(lq_lqq_write(w, meta, out, NULL, NULL), LQ_OK);
        json_decref(meta);
        lq_lqq_writer_free(w);
        /* load back through lq_checkpoint_open: equals the in-memory quantized model */
        lq_model *back = NULL;
        assert_int_equal(lq_model_load(out, &back), LQ_OK);
        assert_non_null(back->tok);
        assert_memory_equal(back->w.mem, m->w.mem, sizeof(float) * m->w.n_floats);
        /* the packed views (what the GPU engine runs) sit under the right names:
         * each dequantizes to the fp32 weight of its linear */
        assert_non_null(back->qw);
        for (int l = 0; l < back->cfg.n_layers; l++) {
            const lq_layer_weights *lw = &back->w.layers[l];
            const float *fw[LQ_N_LINEARS] = {lw->wq, lw->wk, lw->wv, lw->wo, lw->w_gate, lw->w_up, lw->w_down};
            for (int j = 0; j < LQ_N_LINEARS; j++) {
                const lq_qweight *q = back->qw[l * LQ_N_LINEARS + j];
                assert_non_null(q);
                assert_null(q->mem); /* a view into the file */
                float *dq = malloc(sizeof(float) * (size_t)(q->rows * q->cols));
                lq_dequant_ref(q, dq);
                assert_memory_equal(dq, fw[j], sizeof(float) * (size_t)(q->rows * q->cols));
                free(dq);
            }
        }
        /* packed-only (what a GPU run loads): no fp32 linears, the same packed weights and other tensors,
         * the same parameter count; the CPU engine refuses it */
        {
            lq_model *po = NULL;
            assert_int_equal(lq_model_load_ex(out, LQ_LOAD_PACKED_ONLY, &po), LQ_OK);
            assert_true(po->packed_only);
            assert_int_equal(lq_model_n_params(po), lq_model_n_params(back));
            assert_true(po->w.n_floats < back->w.n_floats);
            const int64_t D = po->cfg.dim, V = po->cfg.vocab_size;
            assert_memory_equal(po->w.embed, back->w.embed, sizeof(float) * (size_t)(V * D));
            assert_memory_equal(po->w.final_norm, back->w.final_norm, sizeof(float) * (size_t)D);
            for (int l = 0; l < po->cfg.n_layers; l++) {
                const lq_layer_weights *lp = &po->w.layers[l], *lb = &back->w.layers[l];
                assert_memory_equal(lp->attn_norm, lb->attn_norm, sizeof(float) * (size_t)D);
                assert_memory_equal(lp->ffn_norm, lb->ffn_norm, sizeof(float) * (size_t)D);
                const float *fw[LQ_N_LINEARS] = {lp->wq, lp->wk, lp->wv, lp->wo, lp->w_gate, lp->w_up, lp->w_down};
                for (int j = 0; j < LQ_N_LINEARS; j++) {
                    assert_null(fw[j]);
                    const lq_qweight *a = po->qw[l * LQ_N_LINEARS + j], *b = back->qw[l * LQ_N_LINEARS + j];
                    assert_non_null(a);
                    assert_int_equal(a->rows, b->rows);
                    assert_int_equal(a->cols, b->cols);
                    assert_int_equal(a->n_groups, b->n_groups);
                    assert_memory_equal(a->qweight, b->qweight, lq_qweight_qweight_bytes(a->rows, a->cols, a->p.bits));
                    assert_memory_equal(a->scales, b->scales, lq_qweight_scales_bytes(a->rows, a->n_groups));
                }
            }
            lq_engine *e = (lq_engine *)1;
            assert_int_equal(lq_engine_cpu_new(po, 1, 16, &e), LQ_ERR_ARG);
            assert_null(e);
            lq_model_free(po);
        }
        runs[i].ppl = ppl_of(back, ids, n);
        print_message("%s %d-bit g%d %s%s: ppl %.4f (base %.4f)\n", runs[i].method ? "GPTQ" : "RTN", runs[i].q.bits,
                      runs[i].q.group_size, runs[i].q.sym ? "sym" : "asym", runs[i].act ? " act-order" : "",
                      runs[i].ppl, p_base);
        assert_true(isfinite(runs[i].ppl));
        lq_model_free(back);
        lq_model_free(m);
        lq_quantize_results_free(res, nr);
    }
    unlink(out);
    assert_true(fabs(runs[0].ppl / p_base - 1) < 0.005); /* 8-bit RTN within 0.5% */
    assert_true(runs[2].ppl < runs[1].ppl);               /* GPTQ 4-bit beats RTN 4-bit */
    lq_model_free(base);
    lq_checkpoint_free(ck);
    lq_checkpoint_free(golden);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_hessian_ref_matches_cpu),
        cmocka_unit_test(test_gptq_rel_err_matches_direct),
        cmocka_unit_test(test_gptq_hinv_is_inverse_cholesky),
        cmocka_unit_test(test_gptq_beats_rtn_on_correlated_inputs),
        cmocka_unit_test(test_gptq_act_order_static_groups),
        cmocka_unit_test(test_gptq_update_cpu_matches_ref),
        cmocka_unit_test(test_gptq_dead_inputs),
        cmocka_unit_test(test_gptq_cholesky_failure_escalates_damping),
        cmocka_unit_test(test_gptq_nan_hessian_refused),
        cmocka_unit_test(test_gptq_sha256_vectors),
        cmocka_unit_test(test_gptq_calib_data_sampling),
        cmocka_unit_test(test_gptq_rtn_parallel_same_bytes),
        cmocka_unit_test(test_gptq_calib_random),
        cmocka_unit_test(test_gptq_stories_end_to_end),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
