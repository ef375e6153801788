/* test_kernels.c — every CUDA kernel of kernels/lq_kernels.h against its CPU
 * reference (lq_<op>_ref, libquant/ops.c) on fresh random inputs (the seed is
 * printed; LQ_TEST_SEED replays it), with a tolerance per dtype, the max abs /
 * rel error reported for every case, and outputs poisoned with NaN before
 * each launch so that an unwritten element fails. Edge cases: sizes not
 * divisible by tiles or blocks, head_dim 8 (stories260K), 64, 128, 256, GQA
 * ratios 1/2/4/8/16, sliding windows, long contexts for the split decode,
 * empty splits, chunked prefill (pos0 > 0), per-sequence decode positions,
 * the small-M GEMV for m = 1..8 with its cuBLAS fallbacks.
 *
 * 16-bit cases round the inputs to the dtype first, so the reference sees
 * exactly the values the kernel reads; what remains is accumulation order and
 * the rounding of 16-bit outputs.
 *
 * Without a GPU every test prints "skipped: no CUDA device" (make test);
 * with LQ_REQUIRE_GPU=1 (make test-gpu) a missing GPU fails instead.
 * Run: make test-gpu, or build/tests/test_kernels. */
#include "lq_test.h"

#include "../kernels/lq_cuda.h"
#include "../libquant/lq_dtype.h"
#include "../libquant/lq_eval.h"
#include "../libquant/lq_ops.h"

#ifdef LQ_HAVE_CUDA
#include "../kernels/lq_kernels.h"

#include "lq_test_gpu.h"

static const lq_dtype DTS[3] = {LQ_F32, LQ_F16, LQ_BF16};

/* Tolerances for outputs stored in dtype dt (values of order 1): fp32 ~1e-5
 * relative; fp16 rounds at 2^-11 ~ 4.9e-4; bf16 at 2^-8 ~ 3.9e-3. */
static void tol_for(lq_dtype dt, double *atol, double *rtol) {
    if (dt == LQ_F32) *atol = 1e-5, *rtol = 1e-5;
    else if (dt == LQ_F16) *atol = 2e-3, *rtol = 2e-3;
    else *atol = 1e-2, *rtol = 1e-2;
}

/* Report the errors of one case (always) and assert no mismatches. */
static void check(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    double ma, mr;
    lq_test_errors(got, want, n, &ma, &mr);
    print_message("  %-58s max abs %.3g  max rel %.3g\n", what, ma, mr);
    assert_int_equal(lq_test_compare(what, got, want, n, atol, rtol), 0);
}

/* ---------------- embedding ---------------- */

static void test_kernels_embedding(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int64_t dims[] = {8, 64, 1000, 4096}, ns[] = {1, 37};
    const int vocab = 300;
    for (int di = 0; di < 4; di++)
        for (int ni = 0; ni < 2; ni++)
            for (int ti = 0; ti < 3; ti++) {
                int64_t dim = dims[di], n = ns[ni];
                lq_dtype dt = DTS[ti];
                float *table = hrand(&f->seed, (size_t)vocab * dim, -2, 2), *want = malloc(sizeof(float) * n * dim),
                      *got = malloc(sizeof(float) * n * dim);
                round_to(dt, table, (size_t)vocab * dim);
                int32_t *ids = malloc(sizeof(int32_t) * n);
                for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lq_test_next(&f->seed) % vocab);
                ids[0] = vocab - 1; /* the last row */
                void *dt_table = upload_as(dt, table, (size_t)vocab * dim);
                int32_t *d_ids = dmalloc(sizeof(int32_t) * n);
                float *d_out = dmalloc(sizeof(float) * n * dim);
                assert_int_equal(lq_cuda_upload(d_ids, ids, sizeof(int32_t) * n), LQ_OK);
                poison(d_out, sizeof(float) * n * dim);
                assert_int_equal(lq_embedding_cuda(d_out, dt_table, dt, d_ids, n, dim, f->stream), LQ_OK);
                assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
                assert_int_equal(lq_cuda_download(got, d_out, sizeof(float) * n * dim), LQ_OK);
                lq_embedding_ref(want, table, ids, n, dim);
                char what[96];
                snprintf(what, sizeof what, "embedding %s n=%lld dim=%lld", lq_dtype_name(dt), (long long)n,
                         (long long)dim);
                check(what, got, want, (size_t)(n * dim), 0, 0); /* a conversion: exact */
                lq_cuda_free(dt_table);
                lq_cuda_free(d_ids);
                lq_cuda_free(d_out);
                free(table);
                free(want);
                free(got);
                free(ids);
            }
}

/* ---------------- RMSNorm + residual ---------------- */

static void test_kernels_rmsnorm_residual(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* dims % 4 == 0 take the vectorized kernel (one to four float4 per thread), 1001 the scalar one */
    const int64_t dims[] = {8, 64, 100, 1001, 4096, 5000, 16384}, ns[] = {1, 7, 65};
    for (int di = 0; di < 7; di++)
        for (int ni = 0; ni < 3; ni++)
            for (int ti = 0; ti < 3; ti++)
                for (int with_delta = 0; with_delta < 2; with_delta++) {
                    int64_t dim = dims[di], n = ns[ni];
                    size_t ne = (size_t)(n * dim);
                    lq_dtype dt = DTS[ti];
                    float *x = hrand(&f->seed, ne, -3, 3), *delta = hrand(&f->seed, ne, -1, 1),
                          *w = hrand(&f->seed, (size_t)dim, 0.5f, 1.5f), *want = malloc(sizeof(float) * ne),
                          *got = malloc(sizeof(float) * ne), *gotx = malloc(sizeof(float) * ne);
                    float eps = 1e-5f;
                    float *d_x = upload_as(LQ_F32, x, ne), *d_delta = upload_as(LQ_F32, delta, ne),
                          *d_w = upload_as(LQ_F32, w, (size_t)dim);
                    void *d_out = dmalloc(ne * lq_dtype_size(dt));
                    poison(d_out, ne * lq_dtype_size(dt));
                    assert_int_equal(lq_rmsnorm_cuda(d_out, dt, d_x, with_delta ? d_delta : NULL, d_w, n, dim, eps,
                                                     f->stream),
                                     LQ_OK);
                    assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
                    download_as(dt, d_out, ne, got);
                    assert_int_equal(lq_cuda_download(gotx, d_x, sizeof(float) * ne), LQ_OK);
                    if (with_delta)
                        for (size_t i = 0; i < ne; i++) x[i] += delta[i];
                    lq_rmsnorm_ref(want, x, w, n, dim, eps);
                    double atol, rtol;
                    tol_for(dt, &atol, &rtol);
                    char what[96];
                    snprintf(what, sizeof what, "rmsnorm%s %s n=%lld dim=%lld", with_delta ? "+residual" : "",
                             lq_dtype_name(dt), (long long)n, (long long)dim);
                    check(what, got, want, ne, atol, rtol);
                    /* the residual stream itself: x + delta, exactly */
                    assert_int_equal(lq_test_compare("rmsnorm residual x", gotx, x, ne, 0, 0), 0);
                    lq_cuda_free(d_x);
                    lq_cuda_free(d_delta);
                    lq_cuda_free(d_w);
                    lq_cuda_free(d_out);
                    free(x);
                    free(delta);
                    free(w);
                    free(want);
                    free(got);
                    free(gotx);
                }
}

/* ---------------- RoPE ---------------- */

static void test_kernels_rope(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int hds[] = {8, 64, 128}, heads[] = {1, 8, 32};
    const int64_t ns[] = {1, 33};
    const int max_pos = 4096;
    lq_rope_params rp = {10000.0, 0, 0, 0, 0, 0};
    for (int hi = 0; hi < 3; hi++)
        for (int ni = 0; ni < 2; ni++)
            for (int nh = 0; nh < 3; nh++) {
                int hd = hds[hi], H = heads[nh];
                int64_t n = ns[ni];
                /* rows ld apart (a fused q|k|v row holds more than these heads) for the multi-row cases */
                int64_t ld = ni ? (int64_t)H * hd + 24 : 0, row = ld ? ld : (int64_t)H * hd;
                size_t ne = (size_t)n * row, tab = (size_t)max_pos * hd / 2;
                float *cs = malloc(sizeof(float) * tab), *sn = malloc(sizeof(float) * tab);
                if (hi == 2) rp.theta = 500000.0; /* Llama-3 */
                lq_rope_tables(&rp, hd, max_pos, cs, sn);
                float *x = hrand(&f->seed, ne, -2, 2), *got = malloc(sizeof(float) * ne);
                int32_t *pos = malloc(sizeof(int32_t) * n);
                for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(lq_test_next(&f->seed) % max_pos);
                pos[n - 1] = max_pos - 1;
                float *d_x = upload_as(LQ_F32, x, ne), *d_c = upload_as(LQ_F32, cs, tab),
                      *d_s = upload_as(LQ_F32, sn, tab);
                int32_t *d_pos = dmalloc(sizeof(int32_t) * n);
                assert_int_equal(lq_cuda_upload(d_pos, pos, sizeof(int32_t) * n), LQ_OK);
                assert_int_equal(lq_rope_cuda(d_x, ld, d_pos, n, H, hd, d_c, d_s, f->stream), LQ_OK);
                assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
                assert_int_equal(lq_cuda_download(got, d_x, sizeof(float) * ne), LQ_OK);
                for (int64_t i = 0; i < n; i++) lq_rope_ref(x + i * row, pos + i, 1, H, hd, cs, sn);
                char what[96];
                snprintf(what, sizeof what, "rope n=%lld heads=%d hd=%d ld=%lld", (long long)n, H, hd, (long long)ld);
                check(what, got, x, ne, 1e-6, 1e-6); /* unfused products: the reference's rounding */
                lq_cuda_free(d_x);
                lq_cuda_free(d_c);
                lq_cuda_free(d_s);
                lq_cuda_free(d_pos);
                free(cs);
                free(sn);
                free(x);
                free(got);
                free(pos);
            }
}

/* ---------------- SwiGLU ---------------- */

static void test_kernels_swiglu(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* (rows, cols): flat vectors, and gate|up rows of a fused GEMM output (ld = 2 cols) */
    const int64_t shapes[][2] = {{1, 1}, {1, 1000}, {1, 100003}, {7, 172}, {33, 1001}};
    for (int si = 0; si < 5; si++)
        for (int ti = 0; ti < 3; ti++) {
            int64_t rows = shapes[si][0], cols = shapes[si][1], n = rows * cols, ld = rows > 1 ? 2 * cols : 0;
            lq_dtype dt = DTS[ti];
            size_t nin = (size_t)(rows * 2 * cols);
            float *gu = hrand(&f->seed, nin, -10, 10), *g = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n),
                  *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < cols; j++) {
                    if (ld) {
                        g[r * cols + j] = gu[r * 2 * cols + j];
                        u[r * cols + j] = gu[r * 2 * cols + cols + j];
                    } else {
                        g[r * cols + j] = gu[r * cols + j];
                        u[r * cols + j] = gu[n + r * cols + j];
                    }
                }
            float *d_gu = upload_as(LQ_F32, gu, nin);
            const float *d_g = d_gu, *d_u = ld ? d_gu + cols : d_gu + n;
            void *d_o = dmalloc((size_t)n * lq_dtype_size(dt));
            poison(d_o, (size_t)n * lq_dtype_size(dt));
            assert_int_equal(lq_swiglu_cuda(d_o, dt, d_g, d_u, rows, cols, ld, f->stream), LQ_OK);
            assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
            download_as(dt, d_o, (size_t)n, got);
            lq_swiglu_ref(want, g, u, n);
            double atol, rtol;
            tol_for(dt, &atol, &rtol);
            char what[96];
            snprintf(what, sizeof what, "swiglu %s %lld x %lld ld=%lld", lq_dtype_name(dt), (long long)rows,
                     (long long)cols, (long long)ld);
            check(what, got, want, (size_t)n, atol, rtol);
            lq_cuda_free(d_gu);
            lq_cuda_free(d_o);
            free(gu);
            free(g);
            free(u);
            free(want);
            free(got);
        }
}

/* ---------------- matmul ---------------- */

static void test_kernels_matmul(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* (m, n, k, bias, row gap): stories260K shapes, odd sizes, a gathered-rows case */
    const int64_t shapes[][5] = {{1, 512, 64, 0, 0},   {7, 172, 64, 0, 0},   {33, 1000, 333, 1, 0},
                                 {64, 4096, 512, 0, 0}, {3, 640, 256, 1, 3}, {1, 4096, 4096, 0, 0}};
    for (int si = 0; si < 6; si++)
        for (int ti = 0; ti < 3; ti++) {
            int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], gap = shapes[si][4];
            int with_b = (int)shapes[si][3];
            int64_t ldx = k * (gap + 1); /* gap > 0: use every (gap+1)-th row of a larger x */
            lq_dtype dt = DTS[ti];
            size_t nx = (size_t)(m * ldx), nw = (size_t)(n * k);
            float *x = hrand(&f->seed, nx, -1, 1), *w = hrand(&f->seed, nw, -1, 1), *b = hrand(&f->seed, (size_t)n, -1, 1),
                  *xc = malloc(sizeof(float) * m * k), *want = malloc(sizeof(float) * m * n),
                  *got = malloc(sizeof(float) * m * n);
            round_to(dt, x, nx);
            round_to(dt, w, nw);
            for (int64_t i = 0; i < m; i++) memcpy(xc + i * k, x + i * ldx, sizeof(float) * k);
            void *d_x = upload_as(dt, x, nx), *d_w = upload_as(dt, w, nw);
            float *d_b = upload_as(LQ_F32, b, (size_t)n), *d_y = dmalloc(sizeof(float) * m * n);
            poison(d_y, sizeof(float) * m * n);
            assert_int_equal(lq_matmul_cuda(f->blas, d_y, d_x, d_w, dt, with_b ? d_b : NULL, m, n, k, ldx, f->stream),
                             LQ_OK);
            assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
            assert_int_equal(lq_cuda_download(got, d_y, sizeof(float) * m * n), LQ_OK);
            lq_matmul_ref(want, xc, w, with_b ? b : NULL, m, n, k);
            /* fp32 accumulation of k products of magnitude <= 1 (inputs already
             * in dtype): errors grow like sqrt(k) ulps of the partial sums */
            double atol = 2e-6 * sqrt((double)k) * 4, rtol = 1e-5;
            char what[96];
            snprintf(what, sizeof what, "matmul %s m=%lld n=%lld k=%lld%s%s", lq_dtype_name(dt), (long long)m,
                     (long long)n, (long long)k, with_b ? " +bias" : "", gap ? " strided-x" : "");
            check(what, got, want, (size_t)(m * n), atol, rtol);
            lq_cuda_free(d_x);
            lq_cuda_free(d_w);
            lq_cuda_free(d_b);
            lq_cuda_free(d_y);
            free(x);
            free(w);
            free(b);
            free(xc);
            free(want);
            free(got);
        }
}

/* fp32 x against 16-bit W (the fp32-compute engine): W widened through a
 * scratch of a few rows, so that several chunks (and a ragged last one) write
 * their columns of y; x is full fp32 (not rounded). The reference multiplies
 * the same widened W in fp32. A mis-offset chunk or a TF32 product (10-bit
 * mantissa: errors ~1e-3 relative) would fail the fp32 tolerance. */
static void test_kernels_matmul_w16_f32(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* (m, n, k, bias, scratch rows, row gap) */
    const int64_t shapes[][6] = {{1, 512, 64, 0, 100, 0}, {7, 172, 64, 1, 64, 0}, {33, 1000, 333, 1, 7, 2},
                                 {2, 4096, 512, 0, 4096, 0}, {130, 300, 96, 1, 1, 0}};
    const lq_dtype wdts[2] = {LQ_F16, LQ_BF16};
    for (int si = 0; si < 5; si++)
        for (int ti = 0; ti < 2; ti++) {
            int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], gap = shapes[si][5];
            int with_b = (int)shapes[si][3];
            size_t scratch = (size_t)(shapes[si][4] * k);
            int64_t ldx = k * (gap + 1);
            lq_dtype wdt = wdts[ti];
            size_t nx = (size_t)(m * ldx), nw = (size_t)(n * k);
            float *x = hrand(&f->seed, nx, -1, 1), *w = hrand(&f->seed, nw, -1, 1), *b = hrand(&f->seed, (size_t)n, -1, 1),
                  *xc = malloc(sizeof(float) * m * k), *want = malloc(sizeof(float) * m * n),
                  *got = malloc(sizeof(float) * m * n);
            round_to(wdt, w, nw); /* the weights are 16-bit; x stays fp32 */
            for (int64_t i = 0; i < m; i++) memcpy(xc + i * k, x + i * ldx, sizeof(float) * k);
            void *d_x = upload_as(LQ_F32, x, nx), *d_w = upload_as(wdt, w, nw);
            float *d_b = upload_as(LQ_F32, b, (size_t)n), *d_y = dmalloc(sizeof(float) * m * n),
                  *d_s = dmalloc(sizeof(float) * scratch);
            poison(d_y, sizeof(float) * m * n);
            assert_int_equal(lq_matmul_w16_f32_cuda(f->blas, d_y, d_x, d_w, wdt, with_b ? d_b : NULL, m, n, k, ldx, d_s,
                                                    scratch, f->stream),
                             LQ_OK);
            assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
            assert_int_equal(lq_cuda_download(got, d_y, sizeof(float) * m * n), LQ_OK);
            lq_matmul_ref(want, xc, w, with_b ? b : NULL, m, n, k);
            double atol = 2e-6 * sqrt((double)k) * 4, rtol = 1e-5;
            char what[112];
            snprintf(what, sizeof what, "matmul fp32 x %s W m=%lld n=%lld k=%lld, %lld-row chunks%s%s",
                     lq_dtype_name(wdt), (long long)m, (long long)n, (long long)k, (long long)shapes[si][4],
                     with_b ? " +bias" : "", gap ? " strided-x" : "");
            check(what, got, want, (size_t)(m * n), atol, rtol);
            lq_cuda_free(d_x);
            lq_cuda_free(d_w);
            lq_cuda_free(d_b);
            lq_cuda_free(d_y);
            lq_cuda_free(d_s);
            free(x);
            free(w);
            free(b);
            free(xc);
            free(want);
            free(got);
        }
    /* a scratch shorter than one row, and an fp32 W, are refused with a message */
    float *d_s = dmalloc(sizeof(float) * 16);
    assert_int_equal(lq_matmul_w16_f32_cuda(f->blas, d_s, d_s, d_s, LQ_F16, NULL, 1, 1, 64, 0, d_s, 16, f->stream),
                     LQ_ERR_ARG);
    assert_non_null(strstr(lq_last_error(), "scratch"));
    assert_int_equal(lq_matmul_w16_f32_cuda(f->blas, d_s, d_s, d_s, LQ_F32, NULL, 1, 1, 4, 0, d_s, 16, f->stream),
                     LQ_ERR_UNSUPPORTED);
    lq_cuda_free(d_s);
}

/* ---------------- small-M GEMV (lq_gemv_cuda, and its fallback) ---------------- */

/* Error bound of an fp32-accumulated dot product of fp16/bf16 values: each
 * product is exact in fp32 (11x11 or 8x8 significant bits), and each of the
 * at most L sequential additions rounds once, so |err| <= L * 2^-24 * S with
 * S = sum_k |x_k w_k| + |b| (first order). The GEMV's longest chain is K/32
 * fmas per lane, 5 shuffle levels, 3 levels across warps, the bias: L = K/32 +
 * 16 covers it (and the double reference's final rounding). A cuBLAS fallback
 * may add sequentially: L = K + 16. A single missing or misplaced product
 * shows up as ~|x_k w_k| / S ~ 1/K, far above these bounds. */
static void check_gemv(const char *what, const float *got, const float *want, const float *S, size_t n, double L) {
    const double u = 1.0 / 16777216.0;
    double worst = 0, ma = 0;
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]), e = d / ((double)S[i] + 1e-30);
        if (!(d <= L * u * S[i] + 1e-30)) {
            if (bad < 5)
                print_message("%s: mismatch at %zu: got %.9g want %.9g (abs %.3g, %.3g x sum|xw|)\n", what, i, got[i],
                              want[i], d, e);
            bad++;
        }
        if (isnan(d)) d = e = INFINITY;
        if (e > worst) worst = e;
        if (d > ma) ma = d;
    }
    print_message("  %-58s max abs %.3g  max err/sum|xw| %.3g (bound %.2g)\n", what, ma, worst, L * u);
    if (bad) print_message("%s: %ld/%zu mismatches\n", what, bad, n);
    assert_int_equal(bad, 0);
}

static void test_kernels_gemv(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* n, k, bias, ldx - k, x misaligned by one element, all m = 1..8 (else 1, 3, 8) */
    const struct {
        int64_t n, k;
        int bias;
        int64_t gap;
        int misalign, all_m;
    } cases[] = {
        {64, 64, 0, 0, 0, 1},       /* one block */
        {6144, 4096, 0, 0, 0, 0},   /* Llama-3-8B qkv */
        {131, 200, 1, 0, 0, 1},     /* odd n, 25 vectors per row */
        {131, 203, 1, 0, 0, 1},     /* k not a multiple of 8: cuBLAS fallback */
        {1000, 336, 1, 24, 0, 1},   /* bias, ldx > k, row tail inside one load batch */
        {4096, 14336, 0, 0, 0, 0},  /* down: long rows, rows split over 2 warps, predicated tail */
        {128256, 64, 0, 8, 0, 0},   /* lm_head-sized n, ldx = k + 8 */
        {77, 8, 1, 0, 0, 1},        /* one vector per row */
        {3, 8200, 1, 0, 0, 1},      /* n smaller than a block's rows: 8 warps per row, tail */
        {257, 2056, 1, 8, 0, 1},    /* 257 vectors per row, rows split over warps */
        {300, 512, 0, 0, 1, 0},     /* x not 16-byte aligned: cuBLAS fallback */
    };
    const lq_dtype dts[2] = {LQ_F16, LQ_BF16};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 0; ti < 2; ti++) {
            const int64_t n = cases[ci].n, k = cases[ci].k, ldx = k + cases[ci].gap;
            const lq_dtype dt = dts[ti];
            const size_t es = lq_dtype_size(dt), nw = (size_t)(n * k), pad = 64; /* pad: guard floats after y */
            float *w = hrand(&f->seed, nw, -1, 1), *b = hrand(&f->seed, (size_t)n, -1, 1);
            round_to(dt, w, nw);
            float *wa = malloc(sizeof(float) * nw), *ba = malloc(sizeof(float) * n);
            for (size_t i = 0; i < nw; i++) wa[i] = fabsf(w[i]);
            for (int64_t i = 0; i < n; i++) ba[i] = fabsf(b[i]);
            void *d_w = upload_as(dt, w, nw);
            float *d_b = upload_as(LQ_F32, b, (size_t)n);
            const int ms_few[3] = {1, 3, 8};
            for (int mi = 0; mi < (cases[ci].all_m ? 8 : 3); mi++) {
                const int64_t m = cases[ci].all_m ? mi + 1 : ms_few[mi];
                const int off = cases[ci].misalign; /* elements before x in its buffer */
                size_t nx = (size_t)(m * ldx), ny = (size_t)(m * n);
                float *x = hrand(&f->seed, nx + off, -1, 1), *xc = malloc(sizeof(float) * m * k),
                      *xa = malloc(sizeof(float) * m * k), *want = malloc(sizeof(float) * ny),
                      *S = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * (ny + pad)),
                      *got2 = malloc(sizeof(float) * ny);
                round_to(dt, x, nx + off);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < k; j++) {
                        xc[i * k + j] = x[off + i * ldx + j];
                        xa[i * k + j] = fabsf(xc[i * k + j]);
                    }
                char *d_xb = upload_as(dt, x, nx + off);
                const void *d_x = d_xb + (size_t)off * es;
                float *d_y = dmalloc(sizeof(float) * (ny + pad));
                const float *bias = cases[ci].bias ? d_b : NULL;
                const int ok = lq_gemv_supported(dt, m, n, k, ldx, d_x, d_w);
                assert_int_equal(ok, k % 8 == 0 && !off); /* the fallback cases are refused, the rest taken */
                poison(d_y, sizeof(float) * (ny + pad));
                if (ok) {
                    assert_int_equal(lq_gemv_cuda(d_y, d_x, d_w, dt, bias, m, n, k, ldx, f->stream), LQ_OK);
                } else {
                    assert_int_equal(lq_gemv_cuda(d_y, d_x, d_w, dt, bias, m, n, k, ldx, f->stream),
                                     LQ_ERR_UNSUPPORTED);
                    assert_int_equal(lq_matmul_cuda(f->blas, d_y, d_x, d_w, dt, bias, m, n, k, ldx, f->stream), LQ_OK);
                }
                assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
                assert_int_equal(lq_cuda_download(got, d_y, sizeof(float) * (ny + pad)), LQ_OK);
                for (size_t i = ny; i < ny + pad; i++) assert_true(isnan(got[i])); /* nothing written past y */
                lq_matmul_ref(want, xc, w, cases[ci].bias ? b : NULL, m, n, k);
                lq_matmul_ref(S, xa, wa, cases[ci].bias ? ba : NULL, m, n, k);
                char what[128];
                snprintf(what, sizeof what, "gemv %s m=%lld n=%lld k=%lld%s%s%s", lq_dtype_name(dt), (long long)m,
                         (long long)n, (long long)k, cases[ci].bias ? " +bias" : "", cases[ci].gap ? " ldx>k" : "",
                         ok ? "" : " (cuBLAS fallback)");
                check_gemv(what, got, want, S, ny, ok ? (double)k / 32 + 16 : (double)k + 16);
                if (ok) { /* through lq_matmul_cuda: the same bits when it dispatches here (m <= LQ_GEMV_DISPATCH_M) */
                    poison(d_y, sizeof(float) * ny);
                    assert_int_equal(lq_matmul_cuda(f->blas, d_y, d_x, d_w, dt, bias, m, n, k, ldx, f->stream), LQ_OK);
                    assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
                    assert_int_equal(lq_cuda_download(got2, d_y, sizeof(float) * ny), LQ_OK);
                    int same = memcmp(got, got2, sizeof(float) * ny) == 0;
                    print_message("    lq_matmul_cuda: %s\n", same ? "bit-identical (dispatched to the GEMV)" : "cuBLAS");
                    check_gemv("  lq_matmul_cuda", got2, want, S, ny, (double)k + 16);
                }
                lq_cuda_free(d_xb);
                lq_cuda_free(d_y);
                free(x);
                free(xc);
                free(xa);
                free(want);
                free(S);
                free(got);
                free(got2);
            }
            lq_cuda_free(d_w);
            lq_cuda_free(d_b);
            free(w);
            free(b);
            free(wa);
            free(ba);
        }
    /* what is refused: F32, m > LQ_GEMV_MAX_M, misaligned W, ldx not a multiple of 8 */
    assert_false(lq_gemv_supported(LQ_F32, 1, 64, 64, 0, NULL, NULL));
    assert_false(lq_gemv_supported(LQ_F16, LQ_GEMV_MAX_M + 1, 64, 64, 0, NULL, NULL));
    assert_false(lq_gemv_supported(LQ_F16, 1, 64, 64, 0, NULL, (const void *)(uintptr_t)8));
    assert_false(lq_gemv_supported(LQ_BF16, 2, 64, 64, 68, NULL, NULL));
    assert_true(lq_gemv_supported(LQ_BF16, 2, 64, 64, 72, NULL, NULL));
}

/* ---------------- KV store ---------------- */

static void test_kernels_kv_store(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int B = 3, T = 5, kvd = 40, ctx = 16, pos0 = 9;
    for (int ti = 0; ti < 3; ti++) {
        lq_dtype dt = DTS[ti];
        /* k and v inside q|k|v rows (ld = 3 kvd) for the 16-bit cases, contiguous for fp32 */
        const int ld = dt == LQ_F32 ? 0 : 3 * kvd, row = ld ? ld : kvd;
        size_t nk = (size_t)B * T * row, nc = (size_t)B * ctx * kvd, es = lq_dtype_size(dt);
        float *k = hrand(&f->seed, nk, -1, 1), *v = hrand(&f->seed, nk, -1, 1), *kc = malloc(sizeof(float) * nc),
              *vc = malloc(sizeof(float) * nc);
        int32_t pos[3 * 5];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) pos[b * T + t] = pos0 - 2 * b + t;
        float *d_k = upload_as(LQ_F32, k, nk), *d_v = upload_as(LQ_F32, v, nk);
        int32_t *d_pos = dmalloc(sizeof pos);
        assert_int_equal(lq_cuda_upload(d_pos, pos, sizeof pos), LQ_OK);
        void *d_kc = dmalloc(nc * es), *d_vc = dmalloc(nc * es);
        poison(d_kc, nc * es);
        poison(d_vc, nc * es);
        assert_int_equal(
            lq_kv_store_cuda(d_kc, d_vc, dt, d_k, d_v, ld, d_pos, B, T, kvd, (int64_t)ctx * kvd, f->stream), LQ_OK);
        assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
        download_as(dt, d_kc, nc, kc);
        download_as(dt, d_vc, nc, vc);
        round_to(dt, k, nk);
        round_to(dt, v, nk);
        long bad = 0;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < ctx; p++) {
                int t = p - (pos0 - 2 * b);
                for (int j = 0; j < kvd; j++) {
                    size_t ci = ((size_t)b * ctx + p) * kvd + j;
                    if (t >= 0 && t < T) {
                        size_t si = ((size_t)b * T + t) * row + j;
                        bad += kc[ci] != k[si] || vc[ci] != v[si];
                    } else {
                        bad += !isnan(kc[ci]) || !isnan(vc[ci]); /* untouched */
                    }
                }
            }
        print_message("  kv_store %s: %ld wrong elements\n", lq_dtype_name(dt), bad);
        assert_int_equal(bad, 0);
        lq_cuda_free(d_k);
        lq_cuda_free(d_v);
        lq_cuda_free(d_pos);
        lq_cuda_free(d_kc);
        lq_cuda_free(d_vc);
        free(k);
        free(v);
        free(kc);
        free(vc);
    }
}

/* lq_rope_kv_store_cuda (the engine's fused step) against lq_rope_cuda + lq_kv_store_cuda on
 * the same q|k|v rows: q columns and both caches bit-identical, the k/v columns left as they were. */
static void test_kernels_rope_kv_store(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int B = 2, T = 3, nq = 8, nkv = 2, hd = 64, ctx = 12, max_pos = 64;
    const int qd = nq * hd, kvd = nkv * hd, ld = qd + 2 * kvd;
    lq_rope_params rp = {500000.0, 0, 0, 0, 0, 0};
    size_t tab = (size_t)max_pos * hd / 2, nx = (size_t)B * T * ld, nc = (size_t)B * ctx * kvd;
    float *cs = malloc(sizeof(float) * tab), *sn = malloc(sizeof(float) * tab);
    lq_rope_tables(&rp, hd, max_pos, cs, sn);
    float *d_c = upload_as(LQ_F32, cs, tab), *d_s = upload_as(LQ_F32, sn, tab);
    int32_t pos[2 * 3] = {4, 5, 6, 9, 10, 11};
    int32_t *d_pos = dmalloc(sizeof pos);
    assert_int_equal(lq_cuda_upload(d_pos, pos, sizeof pos), LQ_OK);
    for (int ti = 0; ti < 3; ti++) {
        lq_dtype dt = DTS[ti];
        size_t es = lq_dtype_size(dt);
        float *x = hrand(&f->seed, nx, -2, 2), *got = malloc(sizeof(float) * nx), *want = malloc(sizeof(float) * nx);
        float *d_x1 = upload_as(LQ_F32, x, nx), *d_x2 = upload_as(LQ_F32, x, nx);
        void *kc1 = dmalloc(nc * es), *vc1 = dmalloc(nc * es), *kc2 = dmalloc(nc * es), *vc2 = dmalloc(nc * es);
        poison(kc1, nc * es);
        poison(vc1, nc * es);
        poison(kc2, nc * es);
        poison(vc2, nc * es);
        assert_int_equal(lq_rope_kv_store_cuda(d_x1, ld, d_pos, B, T, nq, nkv, hd, d_c, d_s, kc1, vc1, dt,
                                               (int64_t)ctx * kvd, f->stream),
                         LQ_OK);
        assert_int_equal(lq_rope_cuda(d_x2, ld, d_pos, (int64_t)B * T, nq + nkv, hd, d_c, d_s, f->stream), LQ_OK);
        assert_int_equal(lq_kv_store_cuda(kc2, vc2, dt, d_x2 + qd, d_x2 + qd + kvd, ld, d_pos, B, T, kvd,
                                          (int64_t)ctx * kvd, f->stream),
                         LQ_OK);
        assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
        assert_int_equal(lq_cuda_download(got, d_x1, sizeof(float) * nx), LQ_OK);
        assert_int_equal(lq_cuda_download(want, d_x2, sizeof(float) * nx), LQ_OK);
        long bad = 0;
        for (size_t r = 0; r < (size_t)B * T; r++)
            for (int j = 0; j < ld; j++) {
                float g = got[r * ld + j], w = j < qd ? want[r * ld + j] : x[r * ld + j];
                bad += memcmp(&g, &w, sizeof g) != 0;
            }
        unsigned char *h1 = malloc(nc * es), *h2 = malloc(nc * es);
        assert_int_equal(lq_cuda_download(h1, kc1, nc * es), LQ_OK);
        assert_int_equal(lq_cuda_download(h2, kc2, nc * es), LQ_OK);
        bad += memcmp(h1, h2, nc * es) != 0;
        assert_int_equal(lq_cuda_download(h1, vc1, nc * es), LQ_OK);
        assert_int_equal(lq_cuda_download(h2, vc2, nc * es), LQ_OK);
        bad += memcmp(h1, h2, nc * es) != 0;
        print_message("  rope_kv_store %s: %ld differences\n", lq_dtype_name(dt), bad);
        assert_int_equal(bad, 0);
        lq_cuda_free(d_x1);
        lq_cuda_free(d_x2);
        lq_cuda_free(kc1);
        lq_cuda_free(vc1);
        lq_cuda_free(kc2);
        lq_cuda_free(vc2);
        free(x);
        free(got);
        free(want);
        free(h1);
        free(h2);
    }
    lq_cuda_free(d_c);
    lq_cuda_free(d_s);
    lq_cuda_free(d_pos);
    free(cs);
    free(sn);
}

/* ---------------- attention ---------------- */

typedef struct {
    int B, T, pos0, nh, nkv, hd, window;
} attn_case;

/* Cache (B, ctx, kvd) with random K/V (rounded to dt) at positions < filled,
 * NaN beyond: a kernel that reads past the causal limit produces NaN. */
static void make_cache(uint64_t *s, lq_dtype dt, int B, int ctx, int kvd, int filled, float **hk, float **hv) {
    size_t nc = (size_t)B * ctx * kvd;
    *hk = hrand(s, nc, -1, 1);
    *hv = hrand(s, nc, -1, 1);
    round_to(dt, *hk, nc);
    round_to(dt, *hv, nc);
    for (int b = 0; b < B; b++)
        for (int p = filled; p < ctx; p++)
            for (int j = 0; j < kvd; j++) {
                (*hk)[((size_t)b * ctx + p) * kvd + j] = NAN;
                (*hv)[((size_t)b * ctx + p) * kvd + j] = NAN;
            }
}

static void test_kernels_attention_prefill(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const attn_case cases[] = {
        {1, 37, 0, 8, 4, 8, 0},     /* stories260K: hd 8, GQA 2, T not a multiple of 32 */
        {2, 100, 0, 8, 8, 64, 0},   /* GQA 1, two sequences */
        {1, 65, 30, 16, 2, 64, 0},  /* GQA 8, chunked prefill (pos0 > 0) */
        {2, 33, 0, 8, 2, 128, 0},   /* GQA 4, hd 128 */
        {1, 70, 10, 4, 2, 128, 17}, /* sliding window */
        {1, 1, 0, 4, 1, 64, 0},     /* a single query */
        {1, 40, 0, 4, 1, 256, 0},   /* hd 256 (dynamic shared memory > 48 KB) */
        {1, 300, 0, 4, 4, 16, 0},   /* many tiles */
        {1, 50, 5, 4, 4, 32, 0},
        {1, 300, 0, 8, 2, 128, 0},  /* several 64-query tiles (tensor-core path for 16-bit caches) */
        {2, 130, 70, 4, 1, 64, 50}, /* GQA 4, chunk at pos0 70, window across tile borders */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 0; ti < 3; ti++) {
            attn_case c = cases[ci];
            lq_dtype dt = DTS[ti];
            int ctx = c.pos0 + c.T + 3, kvd = c.nkv * c.hd, qd = c.nh * c.hd;
            /* odd cases read q from q|k|v rows (ldq = qd + 2 kvd) */
            int64_t ldq = ci % 2 ? qd + 2 * kvd : 0, qrow = ldq ? ldq : qd;
            size_t nq = (size_t)c.B * c.T * qd, nqi = (size_t)c.B * c.T * qrow, nc = (size_t)c.B * ctx * kvd,
                   es = lq_dtype_size(dt);
            float *hk, *hv;
            make_cache(&f->seed, dt, c.B, ctx, kvd, c.pos0 + c.T, &hk, &hv);
            float *qi = hrand(&f->seed, nqi, -2, 2), *q = malloc(sizeof(float) * nq), *want = malloc(sizeof(float) * nq),
                  *got = malloc(sizeof(float) * nq);
            for (size_t r = 0; r < (size_t)c.B * c.T; r++) memcpy(q + r * qd, qi + r * qrow, sizeof(float) * qd);
            float *d_q = upload_as(LQ_F32, qi, nqi);
            void *d_k = upload_as(dt, hk, nc), *d_v = upload_as(dt, hv, nc), *d_o = dmalloc(nq * es);
            poison(d_o, nq * es);
            assert_int_equal(lq_attention_cuda(d_o, d_q, ldq, d_k, d_v, dt, (int64_t)ctx * kvd, c.B, c.T, c.pos0, c.nh,
                                               c.nkv, c.hd, c.window, f->stream),
                             LQ_OK);
            assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
            download_as(dt, d_o, nq, got);
            for (int b = 0; b < c.B; b++)
                lq_attention_ref(want + (size_t)b * c.T * qd, q + (size_t)b * c.T * qd, hk + (size_t)b * ctx * kvd,
                                 hv + (size_t)b * ctx * kvd, c.T, c.pos0, c.nh, c.nkv, c.hd, c.window);
            double atol, rtol;
            tol_for(dt, &atol, &rtol);
            if (dt == LQ_F32) atol = 2e-5, rtol = 1e-4; /* fp32 softmax/accumulation vs double */
            char what[128];
            snprintf(what, sizeof what, "attention %s B=%d T=%d pos0=%d heads=%d/%d hd=%d window=%d%s", lq_dtype_name(dt),
                     c.B, c.T, c.pos0, c.nh, c.nkv, c.hd, c.window, ldq ? " ldq" : "");
            check(what, got, want, nq, atol, rtol);
            lq_cuda_free(d_q);
            lq_cuda_free(d_k);
            lq_cuda_free(d_v);
            lq_cuda_free(d_o);
            free(hk);
            free(hv);
            free(qi);
            free(q);
            free(want);
            free(got);
        }
}

/* The fp32-unit decode kernel (v2) on any cache dtype: not in the public
 * header (kernels/attention_cuda.cu), run here on 16-bit caches too. */
lq_status lq_attention_decode_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                        const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B,
                                        const int32_t *pos, int n_heads, int n_kv, int hd, int window, int n_splits,
                                        void *workspace, void *stream);

typedef struct {
    int B, pos, nh, nkv, hd, window, splits; /* pos: sequence 0's (others sit 7 earlier each); splits 0 = automatic */
} decode_case;

/* One decode case against lq_attention_ref: NaN in the cache past every
 * sequence's position, a poisoned workspace and output; simt = 1 runs the
 * fp32-unit kernel instead of the automatic choice. If got_out is given,
 * the download is copied there (same bits twice: determinism). */
static void run_decode(fixture *f, decode_case c, lq_dtype dt, int use_ldq, int simt, float *got_out) {
    int B = c.B, P = c.pos, nh = c.nh, nkv = c.nkv, hd = c.hd, win = c.window;
    int ctx = P + 1 + 5, kvd = nkv * hd, qd = nh * hd;
    int ns = c.splits ? c.splits : lq_attention_decode_splits(B, nh, nkv, ctx, f->sm);
    size_t nq = (size_t)B * qd, nc = (size_t)B * ctx * kvd, es = lq_dtype_size(dt);
    int32_t pos[16];
    assert_true(B <= 16);
    for (int b = 0; b < B; b++) pos[b] = P - 7 * b > 0 ? P - 7 * b : 0;
    float *hk, *hv;
    make_cache(&f->seed, dt, B, ctx, kvd, ctx, &hk, &hv);
    for (int b = 0; b < B; b++) /* NaN past each sequence's own position */
        for (size_t i = ((size_t)b * ctx + pos[b] + 1) * kvd; i < (size_t)(b + 1) * ctx * kvd; i++) hk[i] = hv[i] = NAN;
    int64_t ldq = use_ldq ? qd + 2 * kvd : 0, qrow = ldq ? ldq : qd; /* q inside q|k|v rows */
    float *qi = hrand(&f->seed, (size_t)B * qrow, -2, 2), *q = malloc(sizeof(float) * nq),
          *want = malloc(sizeof(float) * nq), *got = malloc(sizeof(float) * nq);
    for (int b = 0; b < B; b++) memcpy(q + (size_t)b * qd, qi + (size_t)b * qrow, sizeof(float) * qd);
    float *d_q = upload_as(LQ_F32, qi, (size_t)B * qrow);
    void *d_k = upload_as(dt, hk, nc), *d_v = upload_as(dt, hv, nc), *d_o = dmalloc(nq * es);
    int32_t *d_pos = dmalloc(sizeof(int32_t) * B);
    assert_int_equal(lq_cuda_upload(d_pos, pos, sizeof(int32_t) * B), LQ_OK);
    size_t wsb = lq_attention_decode_workspace(B, nh, hd, ns);
    void *d_ws = dmalloc(wsb);
    poison(d_ws, wsb);
    poison(d_o, nq * es);
    if (simt)
        assert_int_equal(lq_attention_decode_simt_cuda(d_o, d_q, ldq, d_k, d_v, dt, (int64_t)ctx * kvd, B, d_pos, nh,
                                                       nkv, hd, win, ns, d_ws, f->stream),
                         LQ_OK);
    else
        assert_int_equal(lq_attention_decode_cuda(d_o, d_q, ldq, d_k, d_v, dt, (int64_t)ctx * kvd, B, d_pos, nh, nkv, hd,
                                                  win, ns, d_ws, f->stream),
                         LQ_OK);
    assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
    download_as(dt, d_o, nq, got);
    for (int b = 0; b < B; b++)
        lq_attention_ref(want + (size_t)b * qd, q + (size_t)b * qd, hk + (size_t)b * ctx * kvd, hv + (size_t)b * ctx * kvd,
                         1, pos[b], nh, nkv, hd, win);
    double atol, rtol;
    tol_for(dt, &atol, &rtol);
    if (dt == LQ_F32) atol = 2e-5, rtol = 1e-4;
    char what[160];
    snprintf(what, sizeof what, "decode%s %s B=%d pos=%d heads=%d/%d hd=%d window=%d splits=%d%s", simt ? " simt" : "",
             lq_dtype_name(dt), B, P, nh, nkv, hd, win, ns, ldq ? " ldq" : "");
    check(what, got, want, nq, atol, rtol);
    if (got_out) memcpy(got_out, got, sizeof(float) * nq);
    lq_cuda_free(d_q);
    lq_cuda_free(d_k);
    lq_cuda_free(d_v);
    lq_cuda_free(d_o);
    lq_cuda_free(d_pos);
    lq_cuda_free(d_ws);
    free(hk);
    free(hv);
    free(qi);
    free(q);
    free(want);
    free(got);
}

static void test_kernels_attention_decode(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    /* The 16-bit caches run the tensor-core kernel: per head_dim, KW keys per
     * warp tile (hd 16: 64, 32/64: 32, 128/256: 16), 4 warps, 3 stages (hd 256: 2),
     * splits of at least 4 KW keys. Visible keys n = pos + 1 (or the window). */
    const decode_case cases[] = {
        {1, 36, 8, 4, 8, 0, 0}, /* stories260K (hd 8: the fp32-unit kernel for every dtype) */
        {1, 255, 8, 4, 8, 0, 3},
        {3, 1000, 8, 4, 64, 0, 0},   /* GQA 2, per-sequence positions */
        {1, 4095, 32, 8, 128, 0, 0}, /* Llama-3-8B heads, long context, many splits */
        {2, 16383, 32, 8, 128, 0, 0},
        {1, 2047, 16, 2, 64, 0, 0},   /* GQA 8 */
        {1, 700, 32, 2, 64, 0, 0},    /* GQA 16: two head groups per KV head */
        {2, 3000, 8, 8, 128, 0, 0},   /* GQA 1 */
        {1, 5000, 8, 2, 128, 300, 0}, /* sliding window */
        {1, 10, 4, 1, 256, 0, 8},     /* hd 256, more splits than keys: empty splits */
        {1, 130, 4, 4, 16, 0, 1},     /* one split */
        {2, 77, 4, 2, 32, 0, 64},
        {1, 32767, 32, 8, 128, 0, 0},   /* batch 1, 32k context: the automatic split count for 8 KV heads */
        {1, 32767, 32, 8, 128, 0, 256}, /* the most splits lq_attention_decode_splits chooses (merge over 256) */
        {16, 8191, 32, 8, 128, 0, 0},   /* batch 16, 8k context, per-sequence positions */
        {1, 9000, 8, 8, 64, 0, 1000},   /* merge over more splits than its threads */
        /* tile and stage boundaries of the tensor-core kernel, hd 128 (KW 16, 64 keys per block round) */
        {1, 0, 8, 2, 128, 0, 1},     /* a single key */
        {1, 15, 8, 2, 128, 0, 1},    /* exactly one warp tile */
        {1, 16, 8, 2, 128, 0, 1},    /* one tile and one key */
        {1, 63, 8, 2, 128, 0, 1},    /* one tile per warp */
        {1, 127, 8, 2, 128, 0, 1},   /* two per warp */
        {1, 191, 8, 2, 128, 0, 1},   /* three per warp = the stage count */
        {1, 255, 8, 2, 128, 0, 1},   /* four: the ring wraps */
        {1, 300, 8, 2, 128, 0, 1},   /* uneven tiles across the warps, a partial last tile */
        {1, 1000, 8, 2, 128, 0, 7},  /* splits not a multiple of the tile */
        {1, 200, 8, 2, 128, 0, 200}, /* far more splits launched than used (4 of 200) */
        {4, 70, 12, 4, 128, 0, 2},   /* GQA 3 (not a power of two), B 4: sequence 3 at position 49 (one split) */
        {1, 2000, 48, 3, 128, 0, 0}, /* GQA 16 with 3 KV heads */
        /* other head dims on the tensor cores */
        {1, 600, 8, 2, 16, 0, 3},    /* hd 16 (KW 64) */
        {2, 333, 8, 4, 32, 0, 5},    /* hd 32 */
        {1, 4100, 8, 1, 64, 0, 0},   /* hd 64, GQA 8, automatic splits */
        {1, 150, 4, 1, 256, 0, 1},   /* hd 256 (2 stages): 10 tiles over 4 warps */
        {2, 3000, 8, 2, 256, 0, 0},  /* hd 256, automatic splits */
        {1, 3000, 8, 2, 128, 64, 0}, /* window of 64 keys: one split although many were launched */
        {1, 3000, 8, 2, 128, 100, 3},/* window not tile-aligned, splits inside it */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 0; ti < 3; ti++) run_decode(f, cases[ci], DTS[ti], (int)(ci % 2), 0, NULL);
    /* the fp32-unit kernel on 16-bit caches (it is the bench's comparison) */
    const decode_case simt[] = {{1, 4095, 32, 8, 128, 0, 0}, {2, 300, 8, 2, 64, 37, 5}};
    for (size_t ci = 0; ci < sizeof simt / sizeof simt[0]; ci++)
        for (int ti = 1; ti < 3; ti++) run_decode(f, simt[ci], DTS[ti], 0, 1, NULL);
}

/* The register-stage instantiation (hd 128, 8 warps; automatic for caches of >= 12288 positions): forced on
 * (LQ_DECODE_REGTILE=2) and off (=0) on the same inputs, both against the reference and to the same bits (only
 * where a tile comes from differs). Warps with fewer than S + 2 tiles, or with row p in one of the two
 * register tiles, take the ring alone: pos 300 (2-3 tiles a warp), 600 (p in warp 5's fifth tile). */
static void test_kernels_attention_decode_regtile(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const decode_case cases[] = {
        {1, 16383, 32, 8, 128, 0, 0}, {1, 300, 8, 2, 128, 0, 1},  {1, 600, 8, 2, 128, 0, 1},
        {1, 700, 8, 2, 128, 0, 1},    {1, 1000, 8, 2, 128, 0, 1}, {2, 5000, 32, 8, 128, 0, 3},
        {1, 5000, 8, 2, 128, 300, 0}, {1, 9000, 8, 8, 128, 0, 16}, {3, 2000, 12, 4, 128, 0, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 1; ti < 3; ti++) {
            const decode_case c = cases[ci];
            const size_t nq = (size_t)c.B * c.nh * c.hd;
            float *r0 = malloc(sizeof(float) * nq), *r2 = malloc(sizeof(float) * nq);
            const uint64_t seed = f->seed;
            setenv("LQ_DECODE_REGTILE", "0", 1);
            run_decode(f, c, DTS[ti], (int)(ci % 2), 0, r0);
            f->seed = seed;
            setenv("LQ_DECODE_REGTILE", "2", 1);
            run_decode(f, c, DTS[ti], (int)(ci % 2), 0, r2);
            unsetenv("LQ_DECODE_REGTILE");
            assert_memory_equal(r0, r2, sizeof(float) * nq);
            free(r0);
            free(r2);
        }
}

/* One workspace across calls, as the engine's captured graph replays it: the
 * split counters must come back to rest after every call (a workspace is
 * poisoned only once, then reused with other positions, batch sizes and
 * split counts), and the same inputs give the same bits every time. */
static void test_kernels_attention_decode_reuse(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int nh = 32, nkv = 8, hd = 128, ctx = 5000, kvd = nkv * hd, qd = nh * hd, Bmax = 4;
    const lq_dtype dt = LQ_F16;
    size_t nc = (size_t)Bmax * ctx * kvd, nq = (size_t)Bmax * qd;
    float *hk, *hv;
    make_cache(&f->seed, dt, Bmax, ctx, kvd, ctx, &hk, &hv);
    float *q = hrand(&f->seed, nq, -2, 2), *want = malloc(sizeof(float) * nq), *got = malloc(sizeof(float) * nq),
          *first = malloc(sizeof(float) * nq);
    float *d_q = upload_as(LQ_F32, q, nq);
    void *d_k = upload_as(dt, hk, nc), *d_v = upload_as(dt, hv, nc), *d_o = dmalloc(nq * 2);
    int32_t *d_pos = dmalloc(sizeof(int32_t) * Bmax);
    size_t wsb = lq_attention_decode_workspace(Bmax, nh, hd, 256);
    void *d_ws = dmalloc(wsb);
    poison(d_ws, wsb);
    /* (B, positions of sequences 0..3, splits); the first call is repeated last */
    const struct {
        int B, pos[4], ns;
    } steps[] = {
        {1, {4999, 0, 0, 0}, 33}, {1, {100, 0, 0, 0}, 33}, {4, {4000, 17, 999, 64}, 9}, {2, {3000, 2500, 0, 0}, 256},
        {1, {4999, 0, 0, 0}, 256}, {1, {4999, 0, 0, 0}, 33},
    };
    const int nsteps = (int)(sizeof steps / sizeof steps[0]);
    for (int si = 0; si < nsteps; si++) {
        int B = steps[si].B;
        assert_int_equal(lq_cuda_upload(d_pos, steps[si].pos, sizeof(int32_t) * B), LQ_OK);
        poison(d_o, nq * 2);
        assert_int_equal(lq_attention_decode_cuda(d_o, d_q, 0, d_k, d_v, dt, (int64_t)ctx * kvd, B, d_pos, nh, nkv, hd, 0,
                                                  steps[si].ns, d_ws, f->stream),
                         LQ_OK);
        assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
        download_as(dt, d_o, (size_t)B * qd, got);
        for (int b = 0; b < B; b++)
            lq_attention_ref(want + (size_t)b * qd, q + (size_t)b * qd, hk + (size_t)b * ctx * kvd,
                             hv + (size_t)b * ctx * kvd, 1, steps[si].pos[b], nh, nkv, hd, 0);
        double atol, rtol;
        tol_for(dt, &atol, &rtol);
        char what[128];
        snprintf(what, sizeof what, "decode reuse step %d B=%d splits=%d", si, B, steps[si].ns);
        check(what, got, want, (size_t)B * qd, atol, rtol);
        if (si == 0) memcpy(first, got, sizeof(float) * qd);
    }
    assert_memory_equal(first, got, sizeof(float) * qd); /* the last step repeats the first: same bits */
    lq_cuda_free(d_q);
    lq_cuda_free(d_k);
    lq_cuda_free(d_v);
    lq_cuda_free(d_o);
    lq_cuda_free(d_pos);
    lq_cuda_free(d_ws);
    free(hk);
    free(hv);
    free(q);
    free(want);
    free(got);
    free(first);
}

/* ---------------- NLL ---------------- */

static void test_kernels_nll(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int64_t Vs[] = {512, 32000, 128256}, Ts[] = {1, 17};
    for (int vi = 0; vi < 3; vi++)
        for (int tj = 0; tj < 2; tj++) {
            int64_t V = Vs[vi], T = Ts[tj];
            size_t n = (size_t)(T * V);
            float *l = hrand(&f->seed, n, -20, 20);
            l[lq_test_next(&f->seed) % n] = 80.0f; /* a dominant logit: max subtraction matters */
            int32_t *tg = malloc(sizeof(int32_t) * T);
            for (int64_t t = 0; t < T; t++) tg[t] = (int32_t)(lq_test_next(&f->seed) % V);
            if (T > 2) tg[T - 1] = -1; /* no target: 0 */
            double *want = malloc(sizeof(double) * T), *got = malloc(sizeof(double) * T);
            float *d_l = upload_as(LQ_F32, l, n);
            int32_t *d_t = dmalloc(sizeof(int32_t) * T);
            double *d_n = dmalloc(sizeof(double) * T);
            assert_int_equal(lq_cuda_upload(d_t, tg, sizeof(int32_t) * T), LQ_OK);
            poison(d_n, sizeof(double) * T);
            assert_int_equal(lq_nll_cuda(d_n, d_l, d_t, T, V, f->stream), LQ_OK);
            assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
            assert_int_equal(lq_cuda_download(got, d_n, sizeof(double) * T), LQ_OK);
            double mx = 0;
            for (int64_t t = 0; t < T; t++) {
                if (tg[t] < 0) want[t] = 0;
                else lq_nll_ref(&want[t], l + t * V, &tg[t], 1, V);
                double d = fabs(got[t] - want[t]);
                if (isnan(d)) d = INFINITY;
                if (d > mx) mx = d;
            }
            print_message("  nll T=%lld V=%lld: max abs %.3g\n", (long long)T, (long long)V, mx);
            assert_true(mx <= 1e-9);
            lq_cuda_free(d_l);
            lq_cuda_free(d_t);
            lq_cuda_free(d_n);
            free(l);
            free(tg);
            free(want);
            free(got);
        }
}

/* ---------------- argmax ---------------- */

static void test_kernels_argmax(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int64_t Vs[] = {8, 512, 1000, 128256};
    const int64_t T = 9;
    for (int vi = 0; vi < 4; vi++) {
        int64_t V = Vs[vi];
        float *l = hrand(&f->seed, (size_t)(T * V), -5, 5);
        for (int64_t t = 0; t < T; t++) {
            float *r = l + t * V;
            if (t % 3 == 1) { /* planted tie: the lower id wins */
                int64_t a = (int64_t)(lq_test_next(&f->seed) % V), b = (int64_t)(lq_test_next(&f->seed) % V);
                r[a] = r[b] = 9.0f;
            }
            if (t % 3 == 2) r[V - 1] = 10.0f; /* the last id */
            if (t == 0) r[0] = 11.0f;         /* the first id */
        }
        int32_t got[9];
        float *d_l = upload_as(LQ_F32, l, (size_t)(T * V));
        int32_t *d_o = dmalloc(sizeof got);
        poison(d_o, sizeof got);
        assert_int_equal(lq_argmax_cuda(d_o, d_l, T, V, f->stream), LQ_OK);
        assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
        assert_int_equal(lq_cuda_download(got, d_o, sizeof got), LQ_OK);
        lq_sampler greedy = {0, 1, 0};
        for (int64_t t = 0; t < T; t++) assert_int_equal(got[t], lq_sample(&greedy, l + t * V, (int)V));
        print_message("  argmax V=%lld: %lld rows equal to the host's greedy choice\n", (long long)V, (long long)T);
        lq_cuda_free(d_l);
        lq_cuda_free(d_o);
        free(l);
    }
}

/* ---------------- KLD statistics ---------------- */

/* lq_kld_token_cuda against lq_kld_token_ref: a quantized-like perturbation
 * of random logits, a row equal in both models (KLD 0), planted ties for the
 * argmax, a dominant logit, odd vocabulary sizes. */
static void test_kernels_kld_token(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const int64_t Vs[] = {7, 1000, 49157, 128256}, T = 13;
    for (int vi = 0; vi < 4; vi++) {
        int64_t V = Vs[vi];
        size_t n = (size_t)(T * V);
        float *lb = hrand(&f->seed, n, -12, 12), *lq = hrand(&f->seed, n, -1, 1);
        for (size_t i = 0; i < n; i++) lq[i] = lb[i] + lq[i]; /* q = base + noise */
        memcpy(lq + 2 * V, lb + 2 * V, sizeof(float) * (size_t)V); /* row 2: identical, KLD 0 */
        lb[3 * V + V / 2] = 70.0f;                                   /* row 3: a dominant logit */
        if (V > 2) { /* row 4: a tie at the maximum in both models: the lower id */
            lb[4 * V + 1] = lb[4 * V + V - 1] = 40.0f;
            lq[4 * V + 1] = lq[4 * V + V - 1] = 41.0f;
        }
        int32_t tg[13];
        for (int64_t t = 0; t < T; t++) tg[t] = (int32_t)(lq_test_next(&f->seed) % V);
        tg[3] = (int32_t)(V / 2);
        float *d_b = upload_as(LQ_F32, lb, n), *d_q = upload_as(LQ_F32, lq, n);
        int32_t *d_t = dmalloc(sizeof tg);
        lq_kld_token *d_o = dmalloc(sizeof(lq_kld_token) * T), got[13];
        assert_int_equal(lq_cuda_upload(d_t, tg, sizeof tg), LQ_OK);
        poison(d_o, sizeof(lq_kld_token) * T);
        assert_int_equal(lq_kld_token_cuda(d_o, d_b, d_q, d_t, T, V, f->stream), LQ_OK);
        assert_int_equal(lq_cuda_sync(f->stream), LQ_OK);
        assert_int_equal(lq_cuda_download(got, d_o, sizeof got), LQ_OK);
        double mx = 0;
        for (int64_t t = 0; t < T; t++) {
            lq_kld_token w;
            lq_kld_token_ref(lb + t * V, lq + t * V, V, tg[t], &w);
            const double a[4] = {got[t].nll_base, got[t].nll_q, got[t].kld, got[t].dp},
                         b[4] = {w.nll_base, w.nll_q, w.kld, w.dp};
            for (int k = 0; k < 4; k++) {
                double d = fabs(a[k] - b[k]) / (1e-9 + fabs(b[k]));
                if (!(d <= 1e-9) && fabs(a[k] - b[k]) > 1e-12)
                    fail_msg("kld V=%lld row %lld field %d: GPU %.17g CPU %.17g", (long long)V, (long long)t, k, a[k],
                             b[k]);
                if (fabs(a[k] - b[k]) > mx) mx = fabs(a[k] - b[k]);
            }
            assert_int_equal(got[t].top_base, w.top_base);
            assert_int_equal(got[t].top_q, w.top_q);
        }
        if (V > 2) assert_int_equal(got[4].top_base, 1);
        assert_true(fabs(got[2].kld) < 1e-12);
        print_message("  kld V=%lld: %lld rows, max abs diff %.3g\n", (long long)V, (long long)T, mx);
        lq_cuda_free(d_b);
        lq_cuda_free(d_q);
        lq_cuda_free(d_t);
        lq_cuda_free(d_o);
        free(lb);
        free(lq);
    }
}

/* ---------------- the bench's read ceiling (lq_cuda_read_xor) ---------------- */

/* The streaming-read kernel lq bench times as the ceiling of memory-bound kernels must really read every
 * byte: its XOR of all 16-byte words equals the host's, for sizes below one pass of the grid, with ragged
 * tails after the unrolled loop, and over several MB; a misaligned pointer is refused. */
static void test_kernels_bench_read(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    const size_t sizes[5] = {0, 16, 4096 + 48, ((size_t)1 << 20) + 16 * 37, (size_t)24 << 20};
    for (int si = 0; si < 5; si++) {
        const size_t n = sizes[si], words = n / 4;
        uint32_t *h = malloc(n + 16), want[4] = {0, 0, 0, 0}, got[4] = {1, 1, 1, 1};
        assert_non_null(h);
        for (size_t i = 0; i < words; i++) h[i] = (uint32_t)lq_test_next(&f->seed);
        for (size_t i = 0; i < words; i++) want[i % 4] ^= h[i];
        void *d = dmalloc(n + 16);
        if (n) assert_int_equal(lq_cuda_upload(d, h, n), LQ_OK);
        assert_int_equal(lq_cuda_read_xor(d, n, got), LQ_OK);
        print_message("read xor of %zu bytes: %08x %08x %08x %08x (host %08x %08x %08x %08x)\n", n, got[0], got[1],
                      got[2], got[3], want[0], want[1], want[2], want[3]);
        assert_memory_equal(got, want, sizeof want);
        lq_cuda_free(d);
        free(h);
    }
    void *d = dmalloc(64);
    uint32_t out[4];
    assert_int_equal(lq_cuda_read_xor((char *)d + 4, 32, out), LQ_ERR_ARG);
    assert_int_equal(lq_cuda_read_xor(d, 40, out), LQ_ERR_ARG);
    lq_cuda_free(d);
}

/* ---------------- errors ---------------- */

static void test_kernels_errors(void **state) {
    fixture *f = *state;
    NEED_GPU(f);
    void *p = NULL;
    /* out of memory: LQ_ERR_CUDA naming the bytes asked for and free */
    assert_int_equal(lq_cuda_malloc(&p, (size_t)1 << 50, "a petabyte"), LQ_ERR_CUDA);
    assert_null(p);
    print_message("  %s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "a petabyte"));
    assert_non_null(strstr(lq_last_error(), "free"));
    /* the failure is not sticky */
    p = dmalloc(64);
    lq_cuda_free(p);
    /* unsupported head_dim and dtype are refused before any launch */
    assert_int_equal(lq_attention_cuda(NULL, NULL, 0, NULL, NULL, LQ_F16, 0, 1, 4, 0, 4, 4, 96, 0, f->stream),
                     LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "head_dim 96"));
    assert_int_equal(lq_swiglu_cuda(NULL, LQ_I8, NULL, NULL, 1, 4, 0, f->stream), LQ_ERR_UNSUPPORTED);
    assert_int_equal(lq_attention_decode_cuda(NULL, NULL, 0, NULL, NULL, LQ_F16, 0, 1, NULL, 6, 4, 64, 0, 1, NULL,
                                              f->stream),
                     LQ_ERR_ARG);
    lq_cuda_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_embedding),         cmocka_unit_test(test_kernels_rmsnorm_residual),
        cmocka_unit_test(test_kernels_rope),              cmocka_unit_test(test_kernels_swiglu),
        cmocka_unit_test(test_kernels_matmul),            cmocka_unit_test(test_kernels_gemv),
        cmocka_unit_test(test_kernels_matmul_w16_f32),
        cmocka_unit_test(test_kernels_kv_store),          cmocka_unit_test(test_kernels_rope_kv_store),
        cmocka_unit_test(test_kernels_attention_prefill), cmocka_unit_test(test_kernels_attention_decode),
        cmocka_unit_test(test_kernels_attention_decode_reuse), cmocka_unit_test(test_kernels_attention_decode_regtile),
        cmocka_unit_test(test_kernels_nll),               cmocka_unit_test(test_kernels_kld_token),               cmocka_unit_test(test_kernels_argmax),
        cmocka_unit_test(test_kernels_bench_read),
        cmocka_unit_test(test_kernels_errors),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else /* built without CUDA: nothing to run, but make test-gpu must not pass silently */

static void test_kernels_built_without_cuda(void **state) {
    (void)state;
    LQ_SKIP_IF_NO_GPU(lq_cuda_device_count());
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels_built_without_cuda)};
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
