/* bench_cuda.cu — the measuring primitives behind `lq bench kernels`:
 * device-to-device copy bandwidth (the denominator for memory-bound kernels)
 * and the cuBLAS fp16 GEMM baseline every lq kernel is compared with in the
 * same run, and the lq kernels timed the same way (small-M GEMV, W4A16,
 * decode attention). Method (../shared/ANCHORS.md): warm-up, median of many
 * runs, weight buffers rotated past L2, random data, and one timing loop for
 * all of them (bench_time):
 *   - graph replay (the default): L >= 10 back-to-back launches, each on the
 *     next rotated buffer, captured once in a CUDA graph; each replay is
 *     timed with CUDA events and divided by L. This is what a decode step
 *     (itself a graph) sees: the host launch latency (~5 us per launch with
 *     an event pair around each, which dwarfs a 10 us kernel) is gone, the
 *     gap between dependent kernels stays in.
 *   - events (lq_cuda_bench_set_graphs(0), `lq bench kernels --timing events`):
 *     one event pair around each single launch. */
#include "cuda_common.cuh" /* lq_device_limits */

#include <stdlib.h>
#include <time.h>
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

/* splitmix64 of (seed, index): the one source of the random fills below */
static __device__ __forceinline__ uint64_t bench_hash(uint64_t seed, size_t i) {
    uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* U(-1, 1) from the top 24 bits: never all zero */
static __device__ __forceinline__ float bench_uniform(uint64_t seed, size_t i) {
    return (float)(bench_hash(seed, i) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static __global__ void fill_random_half(__half *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2half(bench_uniform(seed, i) * 0.05f);
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

static int bench_graphs = 1;
extern "C" void lq_cuda_bench_set_graphs(int on) { bench_graphs = on != 0; }
extern "C" int lq_cuda_bench_graphs(void) { return bench_graphs; }
/* Warm-up of every timed cell: the launches are replayed for at least this long before the timed samples, so that
 * the clocks have settled to the cell's own load. Without it a light cell timed right after a heavy one (the
 * W4A16 M = 1 products after gate_up at M = 4096, whose run holds the card at its power cap) ran during the
 * clocks' recovery: down M = 1 11.4-14.0 us over sessions 20-22 in the same code (s22 call 5 measures both). */
static double bench_warm_ms = 50.0;
extern "C" void lq_cuda_bench_set_warm_ms(double ms) { bench_warm_ms = ms > 0.0 ? ms : 0.0; }
extern "C" double lq_cuda_bench_warm_ms(void) { return bench_warm_ms; }
static double host_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The i-th timed launch of an operation (rotated buffer i % R), on stream s. */
typedef lq_status (*bench_launch)(void *arg, int i, cudaStream_t s);

/* Warm-up (5 launches, outside any capture: first-use set-up happens here),
 * then `iters` timed samples, per launch, on stream s (not the legacy default
 * stream: it cannot be captured). */
static lq_status bench_time(bench_launch fn, void *arg, int R, int iters, cudaStream_t s, lq_bench_timing *t) {
    lq_status st = LQ_OK;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    const int L = bench_graphs ? (10 + R - 1) / R * R : 1;
    double *us = (double *)calloc((size_t)iters, sizeof(double));
    if (!us) return lq_error(LQ_ERR_NOMEM, "out of memory");
    CU(cudaEventCreate(&e0), "cudaEventCreate");
    CU(cudaEventCreate(&e1), "cudaEventCreate");
    for (int i = 0; i < 5; i++) LQ_TRY(fn(arg, i, s));
    if (bench_graphs) {
        CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        for (int i = 0; i < L && st == LQ_OK; i++) st = fn(arg, i, s);
        cudaError_t ce = cudaStreamEndCapture(s, &g);
        if (st != LQ_OK) goto fail;
        CU(ce, "cudaStreamEndCapture");
        CU(cudaGraphInstantiate(&ge, g, 0), "cudaGraphInstantiate");
        CU(cudaGraphLaunch(ge, s), "cudaGraphLaunch (warm-up)");
    }
    { /* the timed warm-up (bench_warm_ms): a few launches (graph replays) at a time, so the queue stays short */
        const double t0 = host_ms();
        for (int i = 0; host_ms() - t0 < bench_warm_ms;) {
            for (int u = 0; u < 4; u++, i++) {
                if (bench_graphs) CU(cudaGraphLaunch(ge, s), "cudaGraphLaunch (warm-up)");
                else LQ_TRY(fn(arg, i, s));
            }
            CU(cudaStreamSynchronize(s), "warm-up launches");
        }
    }
    for (int it = 0; it < iters; it++) {
        CU(cudaEventRecord(e0, s), "cudaEventRecord");
        if (bench_graphs)
            CU(cudaGraphLaunch(ge, s), "cudaGraphLaunch");
        else
            LQ_TRY(fn(arg, it, s));
        CU(cudaEventRecord(e1, s), "cudaEventRecord");
        CU(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        us[it] = ms * 1000.0 / L;
    }
    CU(cudaStreamSynchronize(s), "timed launches (asynchronous error)");
    summarize(us, iters, t);
fail:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    free(us);
    return st;
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

struct gemm_arg {
    cublasHandle_t h;
    __half **w, *x;
    void *y;
    int M, N, K, R, f32y; /* f32y: fp32 output (what lq's W4A16 paths and lq_matmul_cuda write), else fp16 */
};
static lq_status gemm_launch(void *a, int i, cudaStream_t) {
    const gemm_arg *g = (const gemm_arg *)a;
    const float alpha = 1.0f, beta = 0.0f;
    /* row-major y = x W^T  <=>  column-major y^T (N x M) = W (N x K, col-major = W^T row-major)... :
     * cuBLAS sees W as K x N column-major (ld K); op T gives N x K; x as K x M (ld K). */
    cublasStatus_t cs = cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, g->N, g->M, g->K, &alpha, g->w[i % g->R],
                                     CUDA_R_16F, g->K, g->x, CUDA_R_16F, g->K, &beta, g->y, g->f32y ? CUDA_R_32F : CUDA_R_16F, g->N,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS)
        return lq_error(LQ_ERR_CUDA, "cublasGemmEx (M=%d N=%d K=%d) failed with status %d", g->M, g->N, g->K, (int)cs);
    return LQ_OK;
}

extern "C" lq_status lq_cuda_bench_gemm_f16_out(int dev, int M, int N, int K, int f32y, size_t rotate_bytes,
                                                int iters, lq_bench_timing *t) {
    lq_status st = LQ_OK;
    gemm_arg g = {NULL, NULL, NULL, NULL, M, N, K, 0, f32y ? 1 : 0};
    cudaStream_t s = NULL;
    size_t wbytes = (size_t)N * K * 2;
    g.R = (int)((rotate_bytes + wbytes - 1) / wbytes);
    if (g.R < 2) g.R = 2;
    g.w = (__half **)calloc((size_t)g.R, sizeof(__half *));
    if (!g.w) return lq_error(LQ_ERR_NOMEM, "out of memory");
    CU(cudaSetDevice(dev), "cudaSetDevice");
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    if (cublasCreate(&g.h) != CUBLAS_STATUS_SUCCESS || cublasSetStream(g.h, s) != CUBLAS_STATUS_SUCCESS) {
        st = lq_error(LQ_ERR_CUDA, "cublasCreate failed");
        goto fail;
    }
    for (int r = 0; r < g.R; r++) {
        CU(cudaMalloc(&g.w[r], wbytes), "cudaMalloc (weights)");
        fill_random_half<<<1024, 256>>>(g.w[r], (size_t)N * K, 100 + r);
        CU(cudaGetLastError(), "fill launch");
    }
    CU(cudaMalloc(&g.x, (size_t)M * K * 2), "cudaMalloc (x)");
    CU(cudaMalloc(&g.y, (size_t)M * N * (f32y ? 4 : 2)), "cudaMalloc (y)");
    fill_random_half<<<1024, 256>>>(g.x, (size_t)M * K, 7);
    CU(cudaGetLastError(), "fill launch");
    CU(cudaDeviceSynchronize(), "fill");
    st = bench_time(gemm_launch, &g, g.R, iters, s, t);
fail:
    for (int r = 0; r < g.R; r++) cudaFree(g.w[r]);
    free(g.w);
    cudaFree(g.x);
    cudaFree(g.y);
    if (g.h) cublasDestroy(g.h);
    if (s) cudaStreamDestroy(s);
    return st;
}

extern "C" lq_status lq_cuda_bench_gemm_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters,
                                            lq_bench_timing *t) {
    return lq_cuda_bench_gemm_f16_out(dev, M, N, K, 0, rotate_bytes, iters, t);
}

/* lq_gemv_cuda (kernels/gemv_cuda.cu) timed exactly as the cuBLAS baseline
 * above: same weights rotation, same random data; fp32 y (the GEMV's output
 * contract; M*N*4 bytes, negligible next to the weights). */
struct gemv_arg {
    __half **w, *x;
    float *y;
    int M, N, K, R;
};
static lq_status gemv_launch(void *a, int i, cudaStream_t s) {
    const gemv_arg *g = (const gemv_arg *)a;
    return lq_gemv_cuda(g->y, g->x, g->w[i % g->R], LQ_F16, NULL, g->M, g->N, g->K, g->K, s);
}

extern "C" lq_status lq_cuda_bench_gemv_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters,
                                            lq_bench_timing *t) {
    lq_status st = LQ_OK;
    gemv_arg g = {NULL, NULL, NULL, M, N, K, 0};
    cudaStream_t s = NULL;
    size_t wbytes = (size_t)N * K * 2;
    g.R = (int)((rotate_bytes + wbytes - 1) / wbytes);
    if (g.R < 2) g.R = 2;
    g.w = (__half **)calloc((size_t)g.R, sizeof(__half *));
    if (!g.w) return lq_error(LQ_ERR_NOMEM, "out of memory");
    CU(cudaSetDevice(dev), "cudaSetDevice");
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    for (int r = 0; r < g.R; r++) {
        CU(cudaMalloc(&g.w[r], wbytes), "cudaMalloc (weights)");
        fill_random_half<<<1024, 256>>>(g.w[r], (size_t)N * K, 100 + r);
        CU(cudaGetLastError(), "fill launch");
    }
    CU(cudaMalloc(&g.x, (size_t)M * K * 2), "cudaMalloc (x)");
    CU(cudaMalloc(&g.y, (size_t)M * N * 4), "cudaMalloc (y)");
    fill_random_half<<<1024, 256>>>(g.x, (size_t)M * K, 7);
    CU(cudaGetLastError(), "fill launch");
    CU(cudaDeviceSynchronize(), "fill");
    if (!lq_gemv_supported(LQ_F16, M, N, K, K, g.x, g.w[0])) {
        st = lq_error(LQ_ERR_UNSUPPORTED, "lq GEMV does not take M=%d N=%d K=%d", M, N, K);
        goto fail;
    }
    st = bench_time(gemv_launch, &g, g.R, iters, s, t);
fail:
    for (int r = 0; r < g.R; r++) cudaFree(g.w[r]);
    free(g.w);
    cudaFree(g.x);
    cudaFree(g.y);
    if (s) cudaStreamDestroy(s);
    return st;
}

/* ---------------- W4A16 ---------------- */


static __global__ void fill_random_u32(uint32_t *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = (uint32_t)bench_hash(seed, i);
}

/* scales: |U(-1,1)| * 0.01 + 1e-4; zeros: integers 0..15 */
static __global__ void fill_groups(__half *sc, __half *zr, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t z = bench_hash(seed, i);
    sc[i] = __float2half((float)(z & 0xffff) * (0.01f / 65536.0f) + 1e-4f);
    if (zr) zr[i] = __float2half((float)((z >> 16) & 15));
}

struct w4_arg {
    void *blas;
    const lq_w4a16_weight *w;
    void *x, *y, *ws;
    size_t wsb;
    int M, path, sm, R;
};
static lq_status w4_launch(void *p, int i, cudaStream_t s) {
    const w4_arg *a = (const w4_arg *)p;
    return lq_w4a16_matmul_cuda(a->blas, (float *)a->y, a->x, 0, &a->w[i % a->R], NULL, a->M, a->path, a->sm, a->ws,
                                a->wsb, s);
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
    void *x = NULL, *y = NULL, *ws = NULL;
    size_t wsb = 0;
    if (!wmem || !w) {
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
    {
        w4_arg a = {lq_cuda_ctx_blas(ctx), w, x, y, ws, wsb, M, path, lq_cuda_ctx_sm_count(ctx), R};
        st = bench_time(w4_launch, &a, R, iters, (cudaStream_t)lq_cuda_ctx_stream(ctx), t);
    }
fail:
    if (wmem)
        for (int r = 0; r < R; r++) lq_cuda_free(wmem[r]);
    free(wmem);
    free(w);
    lq_cuda_free(x);
    lq_cuda_free(y);
    lq_cuda_free(ws);
    lq_cuda_ctx_free(ctx);
    return st;
}

/* ---------------- the read ceiling ---------------- */

/* XOR of the n16 16-byte words at p, 8 independent streamed loads per thread
 * in flight, one XOR per warp into sink (gridDim.x * 8 words): the plain
 * streaming read that lq_cuda_bench_read times as the ceiling of a kernel that
 * must read the same bytes. Launched with PDL like the decode path: the loads
 * of immutable data go before the wait, the sink (which the previous launch
 * wrote too) after it. */
#define READ_THREADS 256
#define READ_U 8
static __global__ void __launch_bounds__(READ_THREADS) read_xor_kernel(const uint4 *__restrict__ p, size_t n16,
                                                                       uint4 *__restrict__ sink) {
    lq_pdl_trigger();
    const size_t stride = (size_t)gridDim.x * READ_THREADS;
    size_t i = (size_t)blockIdx.x * READ_THREADS + threadIdx.x;
    uint4 acc = make_uint4(0u, 0u, 0u, 0u);
    for (; i + (READ_U - 1) * stride < n16; i += READ_U * stride) {
        uint4 v[READ_U];
#pragma unroll
        for (int u = 0; u < READ_U; u++) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < READ_U; u++) acc.x ^= v[u].x, acc.y ^= v[u].y, acc.z ^= v[u].z, acc.w ^= v[u].w;
    }
    for (; i < n16; i += stride) {
        const uint4 v = __ldcs(p + i);
        acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        acc.x ^= __shfl_xor_sync(0xffffffffu, acc.x, o);
        acc.y ^= __shfl_xor_sync(0xffffffffu, acc.y, o);
        acc.z ^= __shfl_xor_sync(0xffffffffu, acc.z, o);
        acc.w ^= __shfl_xor_sync(0xffffffffu, acc.w, o);
    }
    lq_pdl_wait();
    if ((threadIdx.x & 31) == 0) sink[blockIdx.x * (READ_THREADS / 32) + (threadIdx.x >> 5)] = acc;
}

static int read_blocks(void) { /* 2 per SM: the fastest of 1, 2, 4 in session 5's read at 1 x 8k */
    lq_device_limits lim;
    return lq_device_limits_current(&lim) == cudaSuccess && lim.sm_count > 0 ? 2 * lim.sm_count : 264;
}

static lq_status read_launch_one(const void *d, size_t n16, uint4 *sink, int blocks, cudaStream_t s) {
    LQ_CUDA_RET(lq_launch_pdl(read_xor_kernel, dim3((unsigned)blocks), dim3(READ_THREADS), 0, s, (const uint4 *)d, n16,
                              sink),
                "launch read_xor_kernel");
    return LQ_OK;
}

extern "C" lq_status lq_cuda_read_xor(const void *d, size_t n_bytes, uint32_t out[4]) {
    LQ_RETURN_IF(n_bytes % 16 || (uintptr_t)d % 16, LQ_ERR_ARG,
                 "lq_cuda_read_xor: %zu bytes at %p (a multiple of 16, 16-byte aligned)", n_bytes, d);
    lq_status st = LQ_OK;
    const int blocks = read_blocks(), words = blocks * (READ_THREADS / 32);
    uint4 *sink = NULL, *h = (uint4 *)calloc((size_t)words, sizeof(uint4));
    if (!h) return lq_error(LQ_ERR_NOMEM, "out of memory");
    CU(cudaMalloc(&sink, sizeof(uint4) * (size_t)words), "cudaMalloc (read sink)");
    LQ_TRY(read_launch_one(d, n_bytes / 16, sink, blocks, 0));
    CU(cudaMemcpy(h, sink, sizeof(uint4) * (size_t)words, cudaMemcpyDeviceToHost), "download the read sink");
    out[0] = out[1] = out[2] = out[3] = 0;
    for (int i = 0; i < words; i++) out[0] ^= h[i].x, out[1] ^= h[i].y, out[2] ^= h[i].z, out[3] ^= h[i].w;
fail:
    cudaFree(sink);
    free(h);
    return st;
}

struct read_arg {
    const char *buf;
    uint4 *sink;
    size_t n_bytes;
    int blocks, R;
};
static lq_status read_launch(void *p, int i, cudaStream_t s) {
    const read_arg *a = (const read_arg *)p;
    return read_launch_one(a->buf + (size_t)(i % a->R) * a->n_bytes, a->n_bytes / 16, a->sink, a->blocks, s);
}

extern "C" lq_status lq_cuda_bench_read(int dev, size_t n_bytes, size_t rotate_bytes, int iters, lq_bench_timing *t,
                                        double *tbps) {
    lq_status st = LQ_OK;
    n_bytes = (n_bytes + 255) & ~(size_t)255; /* every rotated buffer 256-byte aligned */
    int R = (int)((rotate_bytes + n_bytes - 1) / n_bytes);
    /* at least 4 buffers: up to 4 launches of 2 small blocks per SM run at once under PDL (8 resident blocks of
     * 256 threads), and two of them reading the same buffer would share it through L2 (session 12's first
     * runs had 2 above 256 MB and read ~5.0 TB/s, above the HBM peak) */
    if (R < 4) R = 4;
    char *buf = NULL;
    uint4 *sink = NULL;
    cudaStream_t s = NULL;
    CU(cudaSetDevice(dev), "cudaSetDevice");
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    {
        const int blocks = read_blocks();
        CU(cudaMalloc(&buf, n_bytes * (size_t)R), "cudaMalloc (read buffers)");
        CU(cudaMalloc(&sink, sizeof(uint4) * (size_t)blocks * (READ_THREADS / 32)), "cudaMalloc (read sink)");
        fill_random_half<<<1024, 256>>>((__half *)buf, n_bytes * (size_t)R / 2, 13);
        CU(cudaGetLastError(), "fill launch");
        CU(cudaDeviceSynchronize(), "fill");
        read_arg a = {buf, sink, n_bytes, blocks, R};
        st = bench_time(read_launch, &a, R, iters, s, t);
        if (st == LQ_OK) *tbps = (double)n_bytes / (t->us_median * 1e-6) / 1e12;
    }
fail:
    if (s) cudaStreamDestroy(s);
    cudaFree(buf);
    cudaFree(sink);
    return st;
}

/* ---------------- decode attention ---------------- */

static __global__ void fill_random_float(float *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = bench_uniform(seed, i);
}

/* lq_attention_decode_cuda (kernels/attention_cuda.cu) as the engine calls it:
 * B sequences, each with its query at position C - 1 over a fp16 cache of C
 * positions (n_kv heads x hd), the automatic split count
 * (lq_attention_decode_splits, returned in *splits), caches rotated through
 * >= rotate_bytes so they never sit in L2, random data. The bytes that must
 * move are the K and V caches: 2 * B * C * n_kv * hd * 2. */
struct attn_arg {
    __half *kv;
    float *q;
    int32_t *pos;
    void *out, *ws;
    size_t elems;
    int64_t seq_stride;
    int B, nh, nkv, hd, ns, R;
};
static lq_status attn_launch(void *p, int i, cudaStream_t s) {
    const attn_arg *a = (const attn_arg *)p;
    __half *k = a->kv + (size_t)(i % a->R) * a->elems * 2, *v = k + a->elems;
    return lq_attention_decode_cuda(a->out, a->q, 0, k, v, LQ_F16, a->seq_stride, a->B, a->pos, a->nh, a->nkv, a->hd,
                                    0, a->ns, a->ws, s);
}

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
    cudaStream_t s = NULL;
    hp = (int32_t *)calloc((size_t)B, sizeof(int32_t));
    if (!hp) return lq_error(LQ_ERR_NOMEM, "out of memory");
    int sm = 0;
    CU(cudaSetDevice(dev), "cudaSetDevice");
    {
        lq_device_limits lim;
        CU(lq_device_limits_current(&lim), "device limits (multiprocessors)");
        sm = lim.sm_count;
    }
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
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
        CU(cudaDeviceSynchronize(), "fill");
        attn_arg a = {kv, q, pos, out, ws, elems, (int64_t)C * (int64_t)kvd, B, n_heads, n_kv, hd, ns, R};
        st = bench_time(attn_launch, &a, R, iters, s, t);
    }
fail:
    if (s) cudaStreamDestroy(s);
    cudaFree(kv);
    cudaFree(q);
    cudaFree(out);
    cudaFree(pos);
    cudaFree(ws);
    free(hp);
    return st;
}
