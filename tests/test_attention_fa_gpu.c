/* test_attention_fa_gpu.c — the FlashAttention-2 style prefill kernel
 * (lq_attention_fa_cuda, kernels/attention_fa_cuda.cu) against the CPU
 * reference lq_attention_ref on fresh random inputs (seed printed;
 * LQ_TEST_SEED replays): fp16 and bf16 caches, head_dim 32/64/128, GQA 1, 4,
 * 8, T from 1 to 2048 (partial query tiles), chunks after a prefix
 * (pos0 > 0, not a multiple of the 64-key tile), sliding windows (64, 300,
 * across tile borders), two sequences with seq_stride > T * kv_dim, q read
 * from q|k|v rows (ldq), NaN in the cache past the valid rows and in the
 * output before the launch (a read past the causal limit or an unwritten
 * element fails), the same bits on a second run, and the silent refusals.
 *
 * Inputs: K, V uniform in [-1, 1] and rounded to the cache dtype (the
 * reference sees what the kernel reads), q uniform in [-2, 2] in fp32 (the
 * kernel rounds it, as lq_attention_cuda does). Tolerance: that of the
 * tensor-core prefill path in test_kernels.c, |got - want| <= atol + rtol
 * |want| with 2e-3 (fp16) / 1e-2 (bf16). Why it holds: an output is a convex
 * combination of V rows (|o| <= 1) whose weights are the rounded P divided by
 * the sum of the same rounded P, so rounding P perturbs each weight by at
 * most 2^-11 (fp16) / 2^-8 (bf16) relative and moves o by at most that much;
 * rounding q moves a score by ~2^-11 |q||k| / sqrt(hd) per term, averaged
 * over hd terms (~1e-4 relative on the weights); the output's own rounding
 * adds half an ulp (2.4e-4 / 2e-3 at |o| ~ 0.5). fp32 accumulation of <= 2048
 * terms adds ~1e-6.
 * Without a GPU the kernel cases skip (make test); make test-gpu requires one.
 * Run: make test-gpu, or build/tests/test_attention_fa_gpu. */
#include "lq_test.h"

#include "../kernels/lq_cuda.h"
#include "../libquant/lq_dtype.h"
#include "../libquant/lq_ops.h"

#ifdef LQ_HAVE_CUDA
#include "../kernels/lq_kernels.h"

#include "lq_test_gpu.h"

typedef struct {
    int B, T, pos0, nh, nkv, hd, window, use_ldq;
} fa_case;

static void run_case(fixture *f, fa_case c, lq_dtype dt, int twice) {
    const int ctx = c.pos0 + c.T + 3, kvd = c.nkv * c.hd, qd = c.nh * c.hd; /* 3 rows of NaN per sequence */
    const int64_t ldq = c.use_ldq ? qd + 2 * kvd : 0, qrow = ldq ? ldq : qd;
    const size_t rows = (size_t)c.B * c.T, nc = (size_t)c.B * ctx * kvd, no = rows * qd, es = lq_dtype_size(dt);
    float *k = malloc(sizeof(float) * nc), *v = malloc(sizeof(float) * nc), *qi = malloc(sizeof(float) * rows * qrow),
          *q = malloc(sizeof(float) * no), *want = malloc(sizeof(float) * no), *got = malloc(sizeof(float) * no);
    void *raw = malloc(no * es), *raw2 = malloc(no * es);
    lq_test_fill(&f->seed, k, nc, -1, 1);
    lq_test_fill(&f->seed, v, nc, -1, 1);
    round_to(dt, k, nc);
    round_to(dt, v, nc);
    for (int b = 0; b < c.B; b++)
        for (size_t i = ((size_t)b * ctx + c.pos0 + c.T) * kvd; i < (size_t)(b + 1) * ctx * kvd; i++) k[i] = v[i] = NAN;
    lq_test_fill(&f->seed, qi, rows * qrow, -2, 2);
    for (size_t r = 0; r < rows; r++) memcpy(q + r * qd, qi + r * qrow, sizeof(float) * qd);
    float *d_q = upload_as(LQ_F32, qi, rows * qrow);
    void *d_k = upload_as(dt, k, nc), *d_v = upload_as(dt, v, nc), *d_o = NULL;
    OK(lq_cuda_malloc(&d_o, no * es, "output"));
    for (int run = 0; run < (twice ? 2 : 1); run++) {
        OK(lq_cuda_memset(d_o, 0xFF, no * es)); /* NaN */
        OK(lq_attention_fa_cuda(d_o, d_q, ldq, d_k, d_v, dt, (int64_t)ctx * kvd, c.B, c.T, c.pos0, c.nh, c.nkv, c.hd,
                                c.window, f->stream));
        OK(lq_cuda_sync(f->stream));
        OK(lq_cuda_download(run ? raw2 : raw, d_o, no * es));
    }
    if (twice) assert_memory_equal(raw, raw2, no * es); /* deterministic */
    assert_int_equal(lq_convert_to_f32(dt, raw, got, no), 0);
    for (int b = 0; b < c.B; b++)
        lq_attention_ref(want + (size_t)b * c.T * qd, q + (size_t)b * c.T * qd, k + (size_t)b * ctx * kvd,
                         v + (size_t)b * ctx * kvd, c.T, c.pos0, c.nh, c.nkv, c.hd, c.window);
    double tol = dt == LQ_F16 ? 2e-3 : 1e-2, ma, mr;
    char what[160];
    snprintf(what, sizeof what, "fa %s B=%d T=%d pos0=%d heads=%d/%d hd=%d window=%d%s%s", lq_dtype_name(dt), c.B, c.T,
             c.pos0, c.nh, c.nkv, c.hd, c.window, ldq ? " ldq" : "", twice ? " x2" : "");
    lq_test_errors(got, want, no, &ma, &mr);
    print_message("  %-62s max abs %.3g  max rel %.3g\n", what, ma, mr);
    assert_int_equal(lq_test_compare(what, got, want, no, tol, tol), 0);
    lq_cuda_free(d_q);
    lq_cuda_free(d_k);
    lq_cuda_free(d_v);
    lq_cuda_free(d_o);
    free(k), free(v), free(qi), free(q), free(want), free(got), free(raw), free(raw2);
}

static void test_attention_fa_matches_ref(void **state) {
    fixture *f = *state;
    LQ_SKIP_IF_NO_GPU(f->ctx ? 1 : 0);
    const fa_case cases[] = {
        {1, 1, 0, 4, 4, 64, 0, 0},       /* a single query, GQA 1 */
        {1, 17, 0, 8, 2, 128, 0, 1},     /* GQA 4, partial tile, ldq */
        {1, 64, 0, 8, 1, 128, 0, 0},     /* GQA 8, exactly one tile */
        {2, 100, 0, 8, 2, 64, 0, 1},     /* two sequences (seq_stride > T kv_dim) */
        {1, 333, 0, 8, 8, 128, 0, 0},    /* GQA 1, 6 tiles, the last partial */
        {1, 333, 40, 16, 2, 64, 64, 1},  /* chunk after a prefix (pos0 not a tile multiple), window 64, GQA 8 */
        {2, 300, 200, 8, 2, 128, 300, 0}, /* second chunk, window 300 across tiles, B = 2 */
        {1, 100, 1900, 4, 1, 128, 0, 0}, /* short chunk after a long prefix */
        {1, 50, 5, 4, 4, 32, 0, 0},      /* head_dim 32 */
        {1, 70, 10, 4, 2, 128, 1, 0},    /* window 1: each query sees only itself */
        {1, 2048, 0, 4, 1, 128, 0, 0},   /* the llama3 prefill length (fewer heads: the reference is scalar) */
    };
    const lq_dtype dts[2] = {LQ_F16, LQ_BF16};
    const size_t nca = sizeof cases / sizeof cases[0];
    for (size_t ci = 0; ci < nca; ci++)
        for (int ti = 0; ti < 2; ti++) run_case(f, cases[ci], dts[ti], ci == nca - 1 && ti == 0);
}

/* What the kernel does not take comes back as LQ_ERR_UNSUPPORTED without a
 * message (the caller falls back); checked before any launch, so no GPU is
 * needed. */
static void test_attention_fa_refuses_silently(void **state) {
    (void)state;
    _Alignas(16) char buf[64];
    struct {
        lq_dtype dt;
        int hd;
        const void *kv;
    } bad[] = {{LQ_F32, 128, buf}, {LQ_F16, 96, buf}, {LQ_BF16, 256, buf}, {LQ_F16, 16, buf}, {LQ_F16, 64, buf + 2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lq_clear_error();
        assert_int_equal(lq_attention_fa_cuda(buf, (const float *)buf, 0, bad[i].kv, buf, bad[i].dt, 0, 1, 4, 0, 4, 4,
                                              bad[i].hd, 0, NULL),
                         LQ_ERR_UNSUPPORTED);
        assert_string_equal(lq_last_error(), "");
    }
    /* T = 0 is a no-op; bad head counts are the caller's error (with a message) */
    assert_int_equal(lq_attention_fa_cuda(NULL, NULL, 0, NULL, NULL, LQ_F16, 0, 1, 0, 0, 4, 4, 64, 0, NULL), LQ_OK);
    assert_int_equal(lq_attention_fa_cuda(buf, (const float *)buf, 0, buf, buf, LQ_F16, 0, 1, 4, 0, 6, 4, 64, 0, NULL),
                     LQ_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_fa_matches_ref),
        cmocka_unit_test(test_attention_fa_refuses_silently),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else /* built without CUDA: nothing to run, but make test-gpu must not pass silently */

static void test_attention_fa_built_without_cuda(void **state) {
    (void)state;
    LQ_SKIP_IF_NO_GPU(lq_cuda_device_count());
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_attention_fa_built_without_cuda)};
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
