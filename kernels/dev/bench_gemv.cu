/* bench_gemv.cu — variants of the small-M GEMV (kernels/gemv_cuda.cu) timed
 * against the mainline lq_gemv_cuda and cuBLAS (cublasGemmEx, fp16 in, fp32
 * out, what lq_matmul_cuda did before) on the ANCHORS.md Llama-3-8B shapes,
 * M = 1, 2, 4, 8, plus lm_head (128256 x 4096). Every variant's output is
 * compared with the mainline's (max |diff| / max |y|) before it is timed.
 *
 * Variant "rows R, U loads": one warp owns R rows of W (R = 2: each x vector
 * is loaded and converted once for two rows, which halves the x traffic and
 * conversions that dominate the instruction count for M >= 4), U 16-byte W
 * loads per row in flight per lane. Mainline: R 1 for M < 4 and 2 from M = 4
 * on, 8 loads per lane in all (U 8 / R), rows split across warps for small N.
 *
 * Method (ANCHORS.md): CUDA events, 5 warm-up runs, median of 50, weights
 * rotated through >= 512 MB so they never sit in L2, random fp16 data.
 * Build (not part of `make`; variants are tried here first):
 *   make && nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_gemv.cu \
 *        build/liblq.a -lcublas -lopenblas -lgomp -Xcompiler -fopenmp -o build/bench_gemv && build/bench_gemv */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "../lq_cuda.h"
#include "../lq_kernels.h"
}

#include "bench_common.cuh"

__device__ __forceinline__ void unpack8(const uint4 &u, float f[8]) {
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

/* R rows per warp, U loads per row in flight; 8 warps per block; fp16 only. */
template <int M, int R, int U>
__global__ void __launch_bounds__(256) gemv_rows_kernel(float *y, const __half *x, const __half *w, int n, int kv) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (blockIdx.x * 8 + warp) * R;
    const uint4 *xv = (const uint4 *)x;
    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    if (r0 < n) {
        for (int v = lane; v < kv; v += U * 32) {
            uint4 wv[R][U];
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int u = 0; u < U; u++) {
                    int j = v + u * 32;
                    wv[r][u] = (j < kv && r0 + r < n) ? __ldcs((const uint4 *)w + (int64_t)(r0 + r) * kv + j)
                                                      : make_uint4(0u, 0u, 0u, 0u);
                }
#pragma unroll
            for (int u = 0; u < U; u++) {
                int j = v + u * 32;
                if (j >= kv) continue;
                float wf[R][8];
#pragma unroll
                for (int r = 0; r < R; r++) unpack8(wv[r][u], wf[r]);
#pragma unroll
                for (int m = 0; m < M; m++) {
                    float xf[8];
                    unpack8(__ldg(xv + (int64_t)m * kv + j), xf);
#pragma unroll
                    for (int r = 0; r < R; r++)
#pragma unroll
                        for (int e = 0; e < 8; e++) acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
            for (int o = 16; o > 0; o >>= 1) acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], o);
    if (lane == 0)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (r0 + r < n)
#pragma unroll
                for (int m = 0; m < M; m++) y[(int64_t)m * n + r0 + r] = acc[r][m];
}

template <int M, int R, int U> static void run_rows(float *y, const __half *x, const __half *w, int n, int k) {
    int warps = (n + R - 1) / R;
    gemv_rows_kernel<M, R, U><<<(warps + 7) / 8, 256>>>(y, x, w, n, k / 8);
    CK(cudaGetLastError());
}

typedef void (*variant_fn)(float *, const __half *, const __half *, int, int);
template <int M> struct variants {
    static constexpr int N = 4;
    static const char *name(int i) {
        static const char *names[N] = {"rows 1, U 4", "rows 1, U 16", "rows 2, U 4", "rows 2, U 8"};
        return names[i];
    }
    static variant_fn fn(int i) {
        static const variant_fn fns[N] = {run_rows<M, 1, 4>, run_rows<M, 1, 16>, run_rows<M, 2, 4>, run_rows<M, 2, 8>};
        return fns[i];
    }
};

static __global__ void fill(__half *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + i * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = __float2half(((float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 0.05f);
    }
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median microseconds of `iters` runs of f(r) (r = rotation index). */
template <typename F> static double time_med(F f, int R, int iters) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double *us = (double *)malloc(sizeof(double) * iters);
    for (int i = 0; i < 5; i++) f(i % R);
    for (int i = 0; i < iters; i++) {
        CK(cudaEventRecord(e0, 0));
        f((i + 5) % R);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        us[i] = ms * 1e3;
    }
    qsort(us, iters, sizeof(double), cmpd);
    double med = us[iters / 2];
    free(us);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return med;
}

template <int M> static void bench_shape(cublasHandle_t h, const char *name, int N, int K) {
    const int iters = 50;
    size_t wbytes = (size_t)N * K * 2;
    int R = (int)(((size_t)512 << 20) / wbytes) + 2;
    __half **w = (__half **)malloc(sizeof(__half *) * R), *x;
    float *y, *y_ref;
    for (int r = 0; r < R; r++) {
        CK(cudaMalloc(&w[r], wbytes));
        fill<<<1024, 256>>>(w[r], (size_t)N * K, 100 + r);
    }
    CK(cudaMalloc(&x, (size_t)M * K * 2));
    CK(cudaMalloc(&y, (size_t)M * N * 4));
    CK(cudaMalloc(&y_ref, (size_t)M * N * 4));
    fill<<<1024, 256>>>(x, (size_t)M * K, 7);
    CK(cudaGetLastError());
    double bytes = 2.0 * N * K + 2.0 * M * K + 4.0 * M * N;
    const float alpha = 1.0f, beta = 0.0f;
    double t_cub = time_med(
        [&](int r) {
            if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w[r], CUDA_R_16F, K, x, CUDA_R_16F, K, &beta,
                             y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
                fprintf(stderr, "cublasGemmEx failed\n");
                exit(1);
            }
        },
        R, iters);
    double t_lq = time_med(
        [&](int r) {
            if (lq_gemv_cuda(y, x, w[r], LQ_F16, NULL, M, N, K, 0, NULL) != LQ_OK) {
                fprintf(stderr, "lq_gemv_cuda: %s\n", lq_last_error());
                exit(1);
            }
        },
        R, iters);
    printf("%-8s %6d %6d %2d | cuBLAS %7.1f us %5.2f TB/s | lq_gemv %7.1f us %5.2f TB/s %5.2fx", name, K, N, M, t_cub,
           bytes / t_cub * 1e-6, t_lq, bytes / t_lq * 1e-6, t_cub / t_lq);
    /* reference output: mainline on w[0] */
    if (lq_gemv_cuda(y_ref, x, w[0], LQ_F16, NULL, M, N, K, 0, NULL) != LQ_OK) exit(1);
    CK(cudaDeviceSynchronize());
    float *hr = (float *)malloc((size_t)M * N * 4), *hv = (float *)malloc((size_t)M * N * 4);
    CK(cudaMemcpy(hr, y_ref, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
    for (int vi = 0; vi < variants<M>::N; vi++) {
        variant_fn f = variants<M>::fn(vi);
        CK(cudaMemset(y, 0xFF, (size_t)M * N * 4));
        f(y, x, w[0], N, K);
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(hv, y, (size_t)M * N * 4, cudaMemcpyDeviceToHost));
        double md = 0, my = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            double d = fabs((double)hv[i] - hr[i]);
            if (!(d <= md)) md = isnan(d) ? INFINITY : d;
            if (fabs(hr[i]) > my) my = fabs(hr[i]);
        }
        double t = time_med([&](int r) { f(y, x, w[r], N, K); }, R, iters);
        printf(" | %s %7.1f us %5.2fx%s", variants<M>::name(vi), t, t_cub / t, md <= 1e-5 * my ? "" : " WRONG");
    }
    printf("\n");
    free(hr);
    free(hv);
    for (int r = 0; r < R; r++) CK(cudaFree(w[r]));
    free(w);
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(y_ref));
}

int main(void) {
    char desc[512];
    if (lq_cuda_device_count() < 1 || lq_cuda_device_describe(0, desc, sizeof desc) != LQ_OK) {
        fprintf(stderr, "no CUDA device\n");
        return 1;
    }
    printf("%s\n", desc);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    const struct {
        const char *name;
        int K, N;
    } shapes[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096},
                  {"lm_head", 4096, 128256}};
    for (int s = 0; s < 5; s++) {
        bench_shape<1>(h, shapes[s].name, shapes[s].N, shapes[s].K);
        bench_shape<2>(h, shapes[s].name, shapes[s].N, shapes[s].K);
        bench_shape<4>(h, shapes[s].name, shapes[s].N, shapes[s].K);
        bench_shape<8>(h, shapes[s].name, shapes[s].N, shapes[s].K);
    }
    cublasDestroy(h);
    return 0;
}
