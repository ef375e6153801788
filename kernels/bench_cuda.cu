/* bench_cuda.cu — the measuring primitives behind `lq bench kernels`:
 * device-to-device copy bandwidth (the denominator for memory-bound kernels)
 * and the cuBLAS fp16 GEMM baseline every lq kernel is compared with in the
 * same run, and the lq kernels timed the same way (small-M GEMV). Method (../shared/ANCHORS.md): CUDA events, warm-up, median of
 * many runs, weight buffers rotated past L2, random data. */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "lq_cuda.h"
#include "lq_kernels.h"
}

#define CU(call, what)                                                                                       \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            st = lq_error(LQ_ERR_CUDA, "%s: %s", (what), cudaGetErrorString(e_));                            \
            goto fail;                                                                                       \
        }                                                                                                    \
    } while (0)

static __global__ void fill_random_half(__half *p, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; /* U(-1, 1), never all zero */
        p[i] = __float2half(u * 0.05f);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(double *us, int n, lq_bench_timing *t) {
    qsort(us, (size_t)n, sizeof(double), cmp_double);
    t->iters = n;
    t->us_min = us[0];
    t->us_median = n % 2 ? us[n / 2] : 0.5 * (us[n / 2 - 1] + us[n / 2]);
    t->us_p90 = us[(int)(0.9 * (n - 1))];
}

extern "C" lq_status lq_cuda_bench_copy(int dev, size_t n_bytes, int iters, lq_bench_timing *t, double *tbps) {
    lq_status st = LQ_OK;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double *us = (double *)calloc((size_t)iters, sizeof(double));
    if (!us) return lq_error(LQ_ERR_NOMEM, "out of memory");
    CU(cudaSetDevice(dev), "cudaSetDevice");
    CU(cudaMalloc(&a, n_bytes), "cudaMalloc (copy source)");
    CU(cudaMalloc(&b, n_bytes), "cudaMalloc (copy destination)");
    fill_random_half<<<1024, 256>>>((__half *)a, n_bytes / 2, 1);
    CU(cudaGetLastError(), "fill_random_half launch");
    CU(cudaEventCreate(&e0), "cudaEventCreate");
    CU(cudaEventCreate(&e1), "cudaEventCreate");
    for (int i = 0; i < 3; i++) CU(cudaMemcpyAsync(b, a, n_bytes, cudaMemcpyDeviceToDevice, 0), "warm-up copy");
    for (int i = 0; i < iters; i++) {
        CU(cudaEventRecord(e0, 0), "cudaEventRecord");
        CU(cudaMemcpyAsync(b, a, n_bytes, cudaMemcpyDeviceToDevice, 0), "copy");
        CU(cudaEventRecord(e1, 0), "cudaEventRecord");
        CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        us[i] = ms * 1000.0;
    }
    summarize(us, iters, t);
    *tbps = 2.0 * (double)n_bytes / (t->us_median * 1e-6) / 1e12;
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    free(us);
    return st;
}

extern "C" lq_status lq_cuda_bench_gemm_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters,
                                            lq_bench_timing *t) {
    lq_status st = LQ_OK;
    cublasHandle_t h = NULL;
    __half **w = NULL, *x = NULL, *y = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double *us = (double *)calloc((size_t)iters, sizeof(double));
    size_t wbytes = (size_t)N * K * 2;
    int R = (int)((rotate_bytes + wbytes - 1) / wbytes);
    if (R < 2) R = 2;
    if (!us) return lq_error(LQ_ERR_NOMEM, "out of memory");
    w = (__half **)calloc((size_t)R, sizeof(__half *));
    if (!w) {
        free(us);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    const float alpha = 1.0f, beta = 0.0f;
    CU(cudaSetDevice(dev), "cudaSetDevice");
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        st = lq_error(LQ_ERR_CUDA, "cublasCreate failed");
        goto fail;
    }
    for (int r = 0; r < R; r++) {
        CU(cudaMalloc(&w[r], wbytes), "cudaMalloc (weights)");
        fill_random_half<<<1024, 256>>>(w[r], (size_t)N * K, 100 + r);
        CU(cudaGetLastError(), "fill launch");
    }
    CU(cudaMalloc(&x, (size_t)M * K * 2), "cudaMalloc (x)");
    CU(cudaMalloc(&y, (size_t)M * N * 2), "cudaMalloc (y)");
    fill_random_half<<<1024, 256>>>(x, (size_t)M * K, 7);
    CU(cudaGetLastError(), "fill launch");
    CU(cudaEventCreate(&e0), "cudaEventCreate");
    CU(cudaEventCreate(&e1), "cudaEventCreate");
    /* row-major y = x W^T  <=>  column-major y^T (N x M) = W (N x K, col-major = W^T row-major)... :
     * cuBLAS sees W as K x N column-major (ld K); op T gives N x K; x as K x M (ld K). */
    for (int i = 0; i < iters + 5; i++) {
        int r = i % R;
        if (i >= 5) CU(cudaEventRecord(e0, 0), "cudaEventRecord");
        cublasStatus_t cs = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w[r], CUDA_R_16F, K, x,
                                         CUDA_R_16F, K, &beta, y, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            st = lq_error(LQ_ERR_CUDA, "cublasGemmEx (M=%d N=%d K=%d) failed with status %d", M, N, K, (int)cs);
            goto fail;
        }
        if (i >= 5) {
            CU(cudaEventRecord(e1, 0), "cudaEventRecord");
            CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
            float ms;
            CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
            us[i - 5] = ms * 1000.0;
        }
    }
    summarize(us, iters, t);
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    for (int r = 0; r < R; r++) cudaFree(w[r]);
    free(w);
    cudaFree(x);
    cudaFree(y);
    if (h) cublasDestroy(h);
    free(us);
    return st;
}

/* lq_gemv_cuda (kernels/gemv_cuda.cu) timed exactly as the cuBLAS baseline
 * above: same weights rotation, same random data, default stream; fp32 y (the
 * GEMV's output contract; M*N*4 bytes, negligible next to the weights). */
extern "C" lq_status lq_cuda_bench_gemv_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters,
                                            lq_bench_timing *t) {
    lq_status st = LQ_OK;
    __half **w = NULL, *x = NULL;
    float *y = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double *us = NULL;
    size_t wbytes = (size_t)N * K * 2;
    int R = (int)((rotate_bytes + wbytes - 1) / wbytes);
    if (R < 2) R = 2;
    us = (double *)calloc((size_t)iters, sizeof(double));
    w = (__half **)calloc((size_t)R, sizeof(__half *));
    if (!us || !w) {
        free(us);
        free(w);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    CU(cudaSetDevice(dev), "cudaSetDevice");
    for (int r = 0; r < R; r++) {
        CU(cudaMalloc(&w[r], wbytes), "cudaMalloc (weights)");
        fill_random_half<<<1024, 256>>>(w[r], (size_t)N * K, 100 + r);
        CU(cudaGetLastError(), "fill launch");
    }
    CU(cudaMalloc(&x, (size_t)M * K * 2), "cudaMalloc (x)");
    CU(cudaMalloc(&y, (size_t)M * N * 4), "cudaMalloc (y)");
    fill_random_half<<<1024, 256>>>(x, (size_t)M * K, 7);
    CU(cudaGetLastError(), "fill launch");
    CU(cudaEventCreate(&e0), "cudaEventCreate");
    CU(cudaEventCreate(&e1), "cudaEventCreate");
    if (!lq_gemv_supported(LQ_F16, M, N, K, K, x, w[0])) {
        st = lq_error(LQ_ERR_UNSUPPORTED, "lq GEMV does not take M=%d N=%d K=%d", M, N, K);
        goto fail;
    }
    for (int i = 0; i < iters + 5; i++) {
        if (i >= 5) CU(cudaEventRecord(e0, 0), "cudaEventRecord");
        if ((st = lq_gemv_cuda(y, x, w[i % R], LQ_F16, NULL, M, N, K, K, NULL)) != LQ_OK) goto fail;
        if (i >= 5) {
            CU(cudaEventRecord(e1, 0), "cudaEventRecord");
            CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
            float ms;
            CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
            us[i - 5] = ms * 1000.0;
        }
    }
    CU(cudaDeviceSynchronize(), "gemv (asynchronous error)");
    summarize(us, iters, t);
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    for (int r = 0; r < R; r++) cudaFree(w[r]);
    free(w);
    cudaFree(x);
    cudaFree(y);
    free(us);
    return st;
}

/* ---------------- W4A16 ---------------- */


static __global__ void fill_random_u32(uint32_t *p, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (uint32_t)(z ^ (z >> 31));
    }
}

/* scales: |U(-1,1)| * 0.01 + 1e-4; zeros: integers 0..15 */
static __global__ void fill_groups(__half *sc, __half *zr, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    sc[i] = __float2half((float)(z & 0xffff) * (0.01f / 65536.0f) + 1e-4f);
    if (zr) zr[i] = __float2half((float)((z >> 16) & 15));
}

extern "C" lq_status lq_cuda_bench_w4a16(int dev, int M, int N, int K, int G, int sym, int path, size_t rotate_bytes,
                                         int iters, lq_bench_timing *t) {
    lq_status st = LQ_OK;
    lq_cuda_ctx *ctx = NULL;
    lq_w4a16_shape s;
    memset(&s, 0, sizeof s);
    s.N = N;
    s.K = K;
    s.Np = (N + 31) / 32 * 32;
    s.Kp = (K + 63) / 64 * 64;
    s.G = G > 0 && G < K ? G : K;
    s.n_groups = (K + s.G - 1) / s.G;
    s.sym = sym;
    size_t wb = lq_w4a16_device_bytes(&s);
    int R = (int)((rotate_bytes + wb - 1) / wb);
    if (R < 2) R = 2;
    char **wmem = (char **)calloc((size_t)R, sizeof(char *));
    lq_w4a16_weight *w = (lq_w4a16_weight *)calloc((size_t)R, sizeof(lq_w4a16_weight));
    double *us = (double *)calloc((size_t)iters, sizeof(double));
    void *x = NULL, *y = NULL, *ws = NULL;
    size_t wsb = 0;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (!wmem || !w || !us) {
        st = lq_error(LQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    LQ_TRY(lq_cuda_ctx_new(dev, &ctx));
    for (int r = 0; r < R; r++) {
        LQ_TRY(lq_cuda_malloc((void **)&wmem[r], wb, "w4a16 bench weights"));
        size_t qb = (lq_w4a16_qw_words(&s) * 4 + 255) & ~(size_t)255;
        size_t gb = (lq_w4a16_group_elems(&s) * 2 + 255) & ~(size_t)255;
        w[r].s = s;
        w[r].qw = (const uint32_t *)wmem[r];
        w[r].scales = wmem[r] + qb;
        w[r].zeros = sym ? NULL : wmem[r] + qb + gb;
        fill_random_u32<<<1024, 256>>>((uint32_t *)wmem[r], lq_w4a16_qw_words(&s), 1000 + r);
        CU(cudaGetLastError(), "fill launch");
        size_t ng = lq_w4a16_group_elems(&s);
        fill_groups<<<(unsigned)((ng + 255) / 256), 256>>>((__half *)(wmem[r] + qb),
                                                           sym ? NULL : (__half *)(wmem[r] + qb + gb), ng, 77 + r);
        CU(cudaGetLastError(), "fill launch");
    }
    wsb = lq_w4a16_workspace_bytes(&s, M, lq_cuda_ctx_sm_count(ctx));
    if (path == 2 && wsb < (size_t)N * K * 2) wsb = (size_t)N * K * 2;
    if (path == 1 && M > LQ_W4A16_FUSED_MAX_M)
        wsb = lq_w4a16_workspace_bytes(&s, LQ_W4A16_FUSED_MAX_M, lq_cuda_ctx_sm_count(ctx)) * (size_t)((M + 63) / 64);
    LQ_TRY(lq_cuda_malloc(&ws, wsb, "w4a16 bench workspace"));
    CU(cudaMemset(ws, 0, wsb), "cudaMemset");
    LQ_TRY(lq_cuda_malloc(&x, (size_t)M * K * 2, "w4a16 bench x"));
    LQ_TRY(lq_cuda_malloc(&y, (size_t)M * N * 4, "w4a16 bench y"));
    fill_random_half<<<1024, 256>>>((__half *)x, (size_t)M * K, 7);
    CU(cudaGetLastError(), "fill launch");
    CU(cudaDeviceSynchronize(), "fill");
    CU(cudaEventCreate(&e0), "cudaEventCreate");
    CU(cudaEventCreate(&e1), "cudaEventCreate");
    for (int i = 0; i < iters + 5; i++) {
        int r = i % R;
        void *sp = lq_cuda_ctx_stream(ctx);
        if (i >= 5) CU(cudaEventRecord(e0, (cudaStream_t)sp), "cudaEventRecord");
        LQ_TRY(lq_w4a16_matmul_cuda(lq_cuda_ctx_blas(ctx), (float *)y, x, 0, &w[r], NULL, M, path,
                                    lq_cuda_ctx_sm_count(ctx), ws, wsb, sp));
        if (i >= 5) {
            CU(cudaEventRecord(e1, (cudaStream_t)sp), "cudaEventRecord");
            CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
            float ms;
            CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
            us[i - 5] = ms * 1000.0;
        }
    }
    summarize(us, iters, t);
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (wmem)
        for (int r = 0; r < R; r++) lq_cuda_free(wmem[r]);
    free(wmem);
    free(w);
    free(us);
    lq_cuda_free(x);
    lq_cuda_free(y);
    lq_cuda_free(ws);
    lq_cuda_ctx_free(ctx);
    return st;
}

/* ---------------- decode attention ---------------- */

static __global__ void fill_random_float(float *p, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        p[i] = (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
}

/* lq_attention_decode_cuda (kernels/attention_cuda.cu) as the engine calls it:
 * B sequences, each with its query at position C - 1 over a fp16 cache of C
 * positions (n_kv heads x hd), the automatic split count
 * (lq_attention_decode_splits, returned in *splits), caches rotated through
 * >= rotate_bytes so they never sit in L2, random data. The bytes that must
 * move are the K and V caches: 2 * B * C * n_kv * hd * 2. */
extern "C" lq_status lq_cuda_bench_attention_decode(int dev, int B, int C, int n_heads, int n_kv, int hd,
                                                    size_t rotate_bytes, int iters, lq_bench_timing *t, int *splits) {
    lq_status st = LQ_OK;
    const size_t kvd = (size_t)n_kv * hd, elems = (size_t)B * C * kvd, cache_bytes = elems * 2 * 2;
    int R = (int)((rotate_bytes + cache_bytes - 1) / cache_bytes);
    if (R < 2) R = 2;
    __half *kv = NULL;
    float *q = NULL;
    int32_t *pos = NULL, *hp = NULL;
    void *out = NULL, *ws = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double *us = (double *)calloc((size_t)iters, sizeof(double));
    hp = (int32_t *)calloc((size_t)B, sizeof(int32_t));
    if (!us || !hp) {
        free(us);
        free(hp);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    int sm = 0;
    CU(cudaSetDevice(dev), "cudaSetDevice");
    CU(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    {
        const int ns = lq_attention_decode_splits(B, n_heads, n_kv, C, sm);
        *splits = ns;
        CU(cudaMalloc(&kv, cache_bytes * (size_t)R), "cudaMalloc (KV caches)");
        CU(cudaMalloc(&q, sizeof(float) * (size_t)B * n_heads * hd), "cudaMalloc (q)");
        CU(cudaMalloc(&out, 2 * (size_t)B * n_heads * hd), "cudaMalloc (out)");
        CU(cudaMalloc(&pos, sizeof(int32_t) * (size_t)B), "cudaMalloc (pos)");
        CU(cudaMalloc(&ws, lq_attention_decode_workspace(B, n_heads, hd, ns)), "cudaMalloc (workspace)");
        fill_random_half<<<1024, 256>>>(kv, elems * 2 * (size_t)R, 11);
        CU(cudaGetLastError(), "fill launch");
        /* a non-trivial query (fp32, |q| < 1): softmax over random keys, never uniform */
        fill_random_float<<<64, 256>>>(q, (size_t)B * n_heads * hd, 12);
        CU(cudaGetLastError(), "fill launch");
        for (int b = 0; b < B; b++) hp[b] = C - 1;
        CU(cudaMemcpy(pos, hp, sizeof(int32_t) * (size_t)B, cudaMemcpyHostToDevice), "upload positions");
        CU(cudaEventCreate(&e0), "cudaEventCreate");
        CU(cudaEventCreate(&e1), "cudaEventCreate");
        for (int i = 0; i < iters + 5; i++) {
            __half *k = kv + (size_t)(i % R) * elems * 2, *v = k + elems;
            if (i >= 5) CU(cudaEventRecord(e0, 0), "cudaEventRecord");
            if ((st = lq_attention_decode_cuda(out, q, 0, k, v, LQ_F16, (int64_t)C * (int64_t)kvd, B, pos, n_heads,
                                               n_kv, hd, 0, ns, ws, NULL)) != LQ_OK)
                goto fail;
            if (i >= 5) {
                CU(cudaEventRecord(e1, 0), "cudaEventRecord");
                CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
                float ms;
                CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
                us[i - 5] = ms * 1000.0;
            }
        }
        CU(cudaDeviceSynchronize(), "decode attention (asynchronous error)");
        summarize(us, iters, t);
    }
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(kv);
    cudaFree(q);
    cudaFree(out);
    cudaFree(pos);
    cudaFree(ws);
    free(us);
    free(hp);
    return st;
}
