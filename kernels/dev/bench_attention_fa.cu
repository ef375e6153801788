/* bench_attention_fa.cu — times the FlashAttention-2 style prefill
 * (lq_attention_fa_cuda, kernels/attention_fa_cuda.cu) against the fp32-unit
 * prefill (lq_attention_simt_cuda; lq_attention_cuda takes the FA kernel since
 * 2026-12-01, and the WMMA kernel it replaced is kernels/dev/
 * attention_prefill_wmma.cuh — 826 us per layer at T = 2048 under ncu, against
 * 161 us for FA) on the llama3-8b shapes: 32 query /
 * 8 KV heads, head_dim 128, fp16 cache, causal, B = 1, T = 512 / 2048 / 8192,
 * plus a 512-token chunk after a 1536-token prefix and B = 4 at T = 2048.
 * Prints us and TFLOP/s (causal FLOPs ~ 4 * T^2/2 * hd * heads * B for a
 * fresh prefill, 4 * T * (pos0 + T/2) * hd * heads * B for a chunk) and the
 * largest |difference| between the two outputs (both fp16; expect <= ~2e-3).
 * Method: CUDA events, 3 warm-up runs, median of 20, random (never zero)
 * data; K/V (8 MB at T = 2048) stay in L2 across the query tiles anyway, as
 * in a real layer, so caches are not rotated.
 * Build and run (not part of `make`):
 *   make && nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_attention_fa.cu \
 *        build/liblq.a -lcublas -lcublasLt -lcusolver -lopenblas -lgomp -Xcompiler -fopenmp \
 *        -o build/bench_attention_fa && build/bench_attention_fa */
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


typedef lq_status (*attn_fn)(void *, const float *, int64_t, const void *, const void *, lq_dtype, int64_t, int, int,
                             int, int, int, int, int, void *);

/* median of 20 runs (us) */
static double time_it(attn_fn fn, void *out, const float *q, const __half *k, const __half *v, int64_t stride, int B,
                      int T, int pos0, int nh, int nkv, int hd, cudaStream_t s) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[20];
    for (int r = -3; r < 20; r++) {
        CK(cudaEventRecord(e0, s));
        LQ(fn(out, q, 0, k, v, LQ_F16, stride, B, T, pos0, nh, nkv, hd, 0, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    qsort(ms, 20, sizeof(float), cmpf);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return ms[10] * 1e3;
}

int main(void) {
    lq_cuda_ctx *ctx = NULL;
    LQ(lq_cuda_ctx_new(0, &ctx));
    cudaStream_t s = (cudaStream_t)lq_cuda_ctx_stream(ctx);
    char desc[512];
    LQ(lq_cuda_device_describe(0, desc, sizeof desc));
    printf("# %s\n", desc);
    const int nh = 32, nkv = 8, hd = 128, kvd = nkv * hd;
    printf("# prefill attention (causal), fp16 cache, %d q / %d kv heads, hd %d (median of 20)\n", nh, nkv, hd);
    printf("%3s %6s %6s %10s %9s %10s %9s %8s %10s\n", "B", "T", "pos0", "simt us", "TFLOP/s", "fa us", "TFLOP/s",
           "speedup", "max|diff|");
    const int Bs[] = {1, 1, 1, 1, 4}, Ts[] = {512, 2048, 8192, 512, 2048}, P0[] = {0, 0, 0, 1536, 0};
    for (int ci = 0; ci < 5; ci++) {
        int B = Bs[ci], T = Ts[ci], pos0 = P0[ci], ctxl = pos0 + T;
        size_t ce = (size_t)B * ctxl * kvd, qe = (size_t)B * T * nh * hd;
        __half *kv = NULL, *o1 = NULL, *o2 = NULL;
        float *q = NULL;
        LQ(lq_cuda_malloc((void **)&kv, ce * 2 * 2, "kv"));
        LQ(lq_cuda_malloc((void **)&q, sizeof(float) * qe, "q"));
        LQ(lq_cuda_malloc((void **)&o1, 2 * qe, "out tc"));
        LQ(lq_cuda_malloc((void **)&o2, 2 * qe, "out fa"));
        fill_half<<<1024, 256, 0, s>>>(kv, ce * 2, 3);
        fill_float<<<1024, 256, 0, s>>>(q, qe, 4, 2.0f);
        CK(cudaGetLastError());
        const __half *k = kv, *v = kv + ce;
        int64_t stride = (int64_t)ctxl * kvd;
        double flops = 4.0 * hd * nh * B * (double)T * (pos0 + T / 2.0);
        double t_tc = time_it(lq_attention_simt_cuda, o1, q, k, v, stride, B, T, pos0, nh, nkv, hd, s);
        double t_fa = time_it(lq_attention_fa_cuda, o2, q, k, v, stride, B, T, pos0, nh, nkv, hd, s);
        __half *h1 = (__half *)malloc(2 * qe), *h2 = (__half *)malloc(2 * qe);
        LQ(lq_cuda_download(h1, o1, 2 * qe));
        LQ(lq_cuda_download(h2, o2, 2 * qe));
        double md = 0;
        for (size_t i = 0; i < qe; i++) {
            double d = fabs((double)__half2float(h1[i]) - (double)__half2float(h2[i]));
            if (!(d <= md)) md = d; /* NaN sticks */
        }
        printf("%3d %6d %6d %10.1f %9.1f %10.1f %9.1f %7.2fx %10.3g\n", B, T, pos0, t_tc, flops / (t_tc * 1e-6) / 1e12,
               t_fa, flops / (t_fa * 1e-6) / 1e12, t_tc / t_fa, md);
        free(h1);
        free(h2);
        lq_cuda_free(kv);
        lq_cuda_free(q);
        lq_cuda_free(o1);
        lq_cuda_free(o2);
    }
    lq_cuda_ctx_free(ctx);
    return 0;
}
