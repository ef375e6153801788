/* gemv_cuda.cu — y = x W^T (+ b) for a few rows of x (decode: M = batch),
 * the CUDA twin of lq_matmul_ref (libquant/ops.c) for fp16/bf16 inputs and
 * M <= LQ_GEMV_MAX_M. lq_matmul_cuda (ops_cuda.cu) sends such calls here and
 * everything else to cuBLAS.
 *
 * Why: for M = 1..8 the product is a pure stream over W (2 N K bytes); cuBLAS
 * reaches only ~55-80% of copy bandwidth on the Llama shapes at M = 1
 * (ANCHORS.md), which caps batch-1 decode at ~72% of its bound.
 *
 * Design (memory-bound, nothing clever):
 *   - a warp owns one row of W (two from M = 4 on, sharing each x load), or
 *     1/2, 1/4, 1/8 of it when N is small, so that there are enough warps to
 *     fill the GPU: WPR warps per row, their partial sums combined through
 *     shared memory;
 *   - each lane reads W in 16-byte vectors (8 elements), the warp covering 512
 *     contiguous bytes per step; GEMV_U vectors are loaded before any is used,
 *     so every lane keeps GEMV_U * 16 bytes in flight (memory-level parallelism
 *     is the whole game); loads are predicated on the row length, so a row's
 *     tail costs no extra round trip;
 *   - W is read with __ldcs (streamed once: do not displace x from L1/L2);
 *     x is tiny and shared by every warp: read through the read-only cache
 *     (__ldg) as 16-byte vectors;
 *   - fp32 accumulation with fma: products of two fp16 (bf16) values are exact
 *     in fp32, so the only rounding is one per accumulation step — K/32 steps
 *     per lane (K/(32 WPR) with WPR warps per row), then a 5-level warp-shuffle
 *     tree and up to 3 levels across warps, then the bias.
 * Requirements (else lq_gemv_supported() says no and the caller uses cuBLAS):
 * dtype F16/BF16, 1 <= m <= LQ_GEMV_MAX_M, k a multiple of 8, ldx a multiple
 * of 8, x and W 16-byte aligned.
 *
 * Tested by tests/test_kernels.c (test_kernels_gemv, and test_kernels_matmul
 * through the dispatch); timed next to cuBLAS by `lq bench kernels`. */
#include "cuda_common.cuh"

#include <stdlib.h>

extern "C" {
#include "lq_kernels.h"
}

#define GEMV_THREADS 256
#define GEMV_WARPS (GEMV_THREADS / 32)
#define GEMV_U 8                  /* 16-byte W loads in flight per lane */
/* Split rows across warps until about this many warps (gemv_wpr). H200 sweep at M = 1 (graph replay,
 * LQ_GEMV_TARGET_WARPS 2048..32768, bench/results/2026-12-01-h200-pdl/): 32768 was the fastest on all four
 * Llama-3-8B shapes (down 36.8 -> 29.3 us, gate_up 58.3 -> 54.8 us against 8192). */
#define GEMV_TARGET_WARPS 32768L

/* 8 elements of a 16-byte vector as fp32. bf16 -> fp32 is a shift (exact);
 * fp16 -> fp32 is exact too. */
__device__ __forceinline__ void gemv_unpack(const uint4 &u, float f[8], __half) {
    const unsigned int w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 h;
        memcpy(&h, &w[i], sizeof h);
        float2 t = __half22float2(h);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void gemv_unpack(const uint4 &u, float f[8], __nv_bfloat16) {
    const unsigned int w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16); /* element 2i: the low half (little-endian) */
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* acc[r][m] += dot(W vector wv[r], x[m] vector j) for r < R, m < M: each x
 * vector is loaded and converted once for the R rows. */
template <typename T, int M, int R>
__device__ __forceinline__ void gemv_fma(float (&acc)[R][M], const uint4 (&wv)[R], const uint4 *__restrict__ xv,
                                         int64_t ldx8, int j) {
    float wf[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) gemv_unpack(wv[r], wf[r], T());
#pragma unroll
    for (int m = 0; m < M; m++) {
        float xf[8];
        gemv_unpack(__ldg(xv + m * ldx8 + j), xf, T());
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
    }
}

/* Block: GEMV_WARPS warps = GEMV_WARPS / wpr warp groups of R rows each; warp
 * `warp` works on rows row0 .. row0 + R - 1, row0 = R * (blockIdx.x *
 * (GEMV_WARPS / wpr) + warp / wpr), vectors part*32 + lane + i * 32 * wpr
 * (part = warp % wpr) of each. R = 2 halves the x loads and conversions per
 * byte of W, which dominate the instruction count for M >= 4. A lane visits
 * its vectors in the same order whatever R is, so R does not change a bit of
 * the result. x (M, ldx8 vectors per row), w (n, kv vectors per row), y (M, n), b (n) or NULL. */
template <typename T, int M, int R>
__global__ void __launch_bounds__(GEMV_THREADS)
    gemv_kernel(float *__restrict__ y, const T *__restrict__ x, int64_t ldx8, const T *__restrict__ w,
                const float *__restrict__ b, int n, int kv, int wpr) {
    constexpr int UR = GEMV_U / R; /* loads in flight per row: GEMV_U per lane in all */
    __shared__ float red[GEMV_WARPS][R * M];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * (GEMV_WARPS / wpr) + warp / wpr) * R, part = warp % wpr;
    const uint4 *xv = (const uint4 *)x;
    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    /* PDL (cuda_common.cuh): the first GEMV_U weight vectors per lane are
     * requested before waiting for the kernel that writes x — the weights are
     * never written during a step, and this first round trip is the one that
     * would otherwise sit exposed behind the launch. Every thread waits. */
    lq_pdl_trigger();
    const uint4 *wr = (const uint4 *)w + (int64_t)row0 * kv;
    const int step = 32 * wpr;
    const bool active = row0 < n;
    int v = part * 32 + lane;
    uint4 wv[UR][R];
#pragma unroll
    for (int u = 0; u < UR; u++) /* all loads first: GEMV_U in flight */
#pragma unroll
        for (int r = 0; r < R; r++) {
            int j = v + u * step;
            wv[u][r] = active && j < kv && row0 + r < n ? __ldcs(wr + (int64_t)r * kv + j) : make_uint4(0u, 0u, 0u, 0u);
        }
    lq_pdl_wait();
    if (active) {
        for (;;) {
#pragma unroll
            for (int u = 0; u < UR; u++) {
                int j = v + u * step;
                if (j < kv) gemv_fma<T, M, R>(acc, wv[u], xv, ldx8, j);
            }
            v += UR * step;
            if (v >= kv) break;
#pragma unroll
            for (int u = 0; u < UR; u++)
#pragma unroll
                for (int r = 0; r < R; r++) {
                    int j = v + u * step;
                    wv[u][r] = j < kv && row0 + r < n ? __ldcs(wr + (int64_t)r * kv + j) : make_uint4(0u, 0u, 0u, 0u);
                }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = lq_warp_sum(acc[r][m]); /* every lane holds the warp's sums */
    if (wpr > 1) {
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int m = 0; m < M; m++) red[warp][r * M + m] = acc[r][m];
        __syncthreads(); /* wpr is uniform across the block: every thread gets here */
        if (part == 0) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int m = 0; m < M; m++) {
                    float s = 0.0f;
                    for (int p = 0; p < wpr; p++) s += red[warp + p][r * M + m];
                    acc[r][m] = s;
                }
        }
    }
    /* lane r*M + m writes (m, row0 + r): no dynamic register indexing */
    const int rr = lane / M, mm = lane % M, row = row0 + rr;
    if (part == 0 && lane < R * M && row < n) {
        float out = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < M; m++)
                if (lane == r * M + m) out = acc[r][m];
        if (b) out += b[row];
        y[(int64_t)mm * n + row] = out;
    }
}

extern "C" int lq_gemv_supported(lq_dtype dtype, int64_t m, int64_t n, int64_t k, int64_t ldx, const void *x,
                                 const void *w) {
    if (dtype != LQ_F16 && dtype != LQ_BF16) return 0;
    if (m < 1 || m > LQ_GEMV_MAX_M || n < 1 || n > INT32_MAX || k < 0 || k > INT32_MAX) return 0;
    if (ldx == 0) ldx = k;
    if (k % 8 || ldx % 8 || ldx < k) return 0;
    return ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0);
}

/* Warps per row: split rows while there are fewer than GEMV_TARGET_WARPS
 * warps and each warp would still get at least GEMV_U/2 vectors per lane. */
static int gemv_wpr(int64_t n, int64_t kv) {
    /* tuning knob for sweeps on a GPU: LQ_GEMV_TARGET_WARPS overrides the target (the result does not depend
       on it: a lane's vectors and the reduction tree are the same for every wpr... except the cross-warp
       order, which is fixed per wpr) */
    static long target = -1;
    if (target < 0) {
        const char *e = getenv("LQ_GEMV_TARGET_WARPS");
        long v = e ? strtol(e, NULL, 10) : 0;
        target = v > 0 ? v : GEMV_TARGET_WARPS;
    }
    int wpr = 1;
    while (wpr < GEMV_WARPS && n * wpr < target && kv >= 32L * GEMV_U * wpr) wpr *= 2;
    return wpr;
}

/* R = 2 rows per warp from M = 4 on (x work per W byte halved); wpr depends
 * on n and kv only, so every M sums in the same order (a batch of B rows
 * gives each row the bits it gets alone). */
template <typename T, int M>
static lq_status gemv_launch(float *y, const void *x, int64_t ldx, const void *w, const float *b, int n, int kv,
                             cudaStream_t s) {
    constexpr int R = M >= 4 ? 2 : 1;
    int wpr = gemv_wpr(n, kv), rows = GEMV_WARPS / wpr * R;
    unsigned blocks = (unsigned)(((int64_t)n + rows - 1) / rows);
    LQ_CUDA_RET(lq_launch_pdl(gemv_kernel<T, M, R>, dim3(blocks), dim3(GEMV_THREADS), 0, s, y, (const T *)x, ldx / 8,
                              (const T *)w, b, n, kv, wpr),
                "launch gemv_kernel");
    return LQ_OK;
}

template <typename T>
static lq_status gemv_dispatch_m(float *y, const void *x, int64_t ldx, const void *w, const float *b, int64_t m, int n,
                                 int kv, cudaStream_t s) {
    switch (m) {
    case 1: return gemv_launch<T, 1>(y, x, ldx, w, b, n, kv, s);
    case 2: return gemv_launch<T, 2>(y, x, ldx, w, b, n, kv, s);
    case 3: return gemv_launch<T, 3>(y, x, ldx, w, b, n, kv, s);
    case 4: return gemv_launch<T, 4>(y, x, ldx, w, b, n, kv, s);
    case 5: return gemv_launch<T, 5>(y, x, ldx, w, b, n, kv, s);
    case 6: return gemv_launch<T, 6>(y, x, ldx, w, b, n, kv, s);
    case 7: return gemv_launch<T, 7>(y, x, ldx, w, b, n, kv, s);
    case 8: return gemv_launch<T, 8>(y, x, ldx, w, b, n, kv, s);
    default: return lq_error(LQ_ERR_ARG, "lq_gemv_cuda: m=%lld (1..%d)", (long long)m, LQ_GEMV_MAX_M);
    }
}

extern "C" lq_status lq_gemv_cuda(float *y, const void *x, const void *w, lq_dtype dtype, const float *b, int64_t m,
                                  int64_t n, int64_t k, int64_t ldx, void *stream) {
    if (m <= 0 || n <= 0) return LQ_OK;
    if (ldx == 0) ldx = k;
    LQ_RETURN_IF(!lq_gemv_supported(dtype, m, n, k, ldx, x, w), LQ_ERR_UNSUPPORTED,
                 "lq_gemv_cuda: %s m=%lld n=%lld k=%lld ldx=%lld (needs F16/BF16, m 1..%d, k and ldx multiples of 8, "
                 "16-byte aligned x and W)",
                 lq_dtype_name(dtype), (long long)m, (long long)n, (long long)k, (long long)ldx, LQ_GEMV_MAX_M);
    static_assert(LQ_GEMV_MAX_M == 8, "gemv_dispatch_m instantiates M = 1..8");
    cudaStream_t s = lq_stream(stream);
    if (dtype == LQ_F16) return gemv_dispatch_m<__half>(y, x, ldx, w, b, m, (int)n, (int)(k / 8), s);
    return gemv_dispatch_m<__nv_bfloat16>(y, x, ldx, w, b, m, (int)n, (int)(k / 8), s);
}
