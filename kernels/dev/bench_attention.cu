/* bench_attention.cu — timing harness for the attention kernels of
 * kernels/attention_cuda.cu against the ANCHORS.md decode shapes (32 query /
 * 8 KV heads, head_dim 128, fp16 cache; PyTorch SDPA on the same H100:
 * 13.0 / 27.0 / 64.9 us at batch 1 and 1k / 8k / 32k context, 36.2 / 190.2 /
 * 698.8 us at batch 16) and a prefill (causal, T = 512 / 2048); the current
 * kernels side by side with the earlier ones (decode v1: decode_v1.cuh; decode
 * v2, the fp32-unit kernel: lq_attention_decode_simt_cuda;
 * prefill on the fp32 units: lq_attention_simt_cuda), measured in the same run;
 * then a sweep of split counts at batch 1 and 16 (8k, 32k) against the
 * automatic choice (lq_attention_decode_splits).
 * Method: CUDA events, warm-up, median of 50 runs, caches rotated through
 * > 400 MB so they never sit in the 50 MB L2, random (never zero) data.
 * Build (not part of `make`; kernel variants are tried here first):
 *   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_attention.cu \
 *        build/liblq.a -lcublas -lopenblas -lgomp -Xcompiler -fopenmp -o build/bench_attention && build/bench_attention */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "../lq_cuda.h"
#include "../lq_kernels.h"
}
#include "decode_v1.cuh"

#include "bench_common.cuh"

int main(void) {
    lq_cuda_ctx *ctx = NULL;
    LQ(lq_cuda_ctx_new(0, &ctx));
    cudaStream_t s = (cudaStream_t)lq_cuda_ctx_stream(ctx);
    int sm = lq_cuda_ctx_sm_count(ctx);
    char desc[512];
    LQ(lq_cuda_device_describe(0, desc, sizeof desc));
    printf("# %s\n", desc);
    const int nh = 32, nkv = 8, hd = 128, kvd = nkv * hd, runs = 50;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[64];

    printf("# decode attention, fp16 cache, 32 q / 8 kv heads, hd 128 (median of %d, caches rotated past L2)\n", runs);
    printf("%5s %6s %6s %9s %8s %9s %8s %9s %8s %9s %8s\n", "batch", "ctx", "splits", "v3 us", "TB/s", "v1 us", "v1/v3",
           "v2 us", "v2/v3", "SDPA us", "SDPA/v3");
    const int Bs[] = {1, 1, 1, 16, 16, 16, 32}, Cs[] = {1024, 8192, 32768, 1024, 8192, 32768, 2048};
    const double sdpa[] = {13.0, 27.0, 64.9, 36.2, 190.2, 698.8, 0};
    for (int ci = 0; ci < 7; ci++) {
        int B = Bs[ci], C = Cs[ci];
        size_t cache_elems = (size_t)B * C * kvd, cache_bytes = cache_elems * 2 * 2; /* K and V */
        int copies = (int)((400u << 20) / cache_bytes) + 1;
        if (copies > 16) copies = 16;
        __half *kv = NULL;
        float *q = NULL;
        int32_t *pos = NULL;
        void *out = NULL, *ws = NULL;
        int ns = lq_attention_decode_splits(B, nh, nkv, C, sm);
        /* v1's own split rule: two blocks per SM, >= 128 keys per split */
        long blocks1 = (long)B * nkv, want1 = (2L * sm + blocks1 - 1) / blocks1, cap1 = (C + 127) / 128;
        int ns1 = (int)(want1 < cap1 ? want1 : cap1);
        if (ns1 < 1) ns1 = 1;
        /* v2 (the fp32-unit kernel, lq_attention_decode_simt_cuda) with its own rule: 4 blocks per SM, >= 64 keys */
        long want2 = (4L * sm + blocks1 - 1) / blocks1, cap2 = (C + 63) / 64;
        int ns2 = (int)(want2 < cap2 ? want2 : cap2);
        if (ns2 > 256) ns2 = 256;
        if (ns2 < 1) ns2 = 1;
        int nsmax = ns > ns1 ? ns : ns1;
        if (ns2 > nsmax) nsmax = ns2;
        LQ(lq_cuda_malloc((void **)&kv, cache_bytes * copies, "kv"));
        LQ(lq_cuda_malloc((void **)&q, sizeof(float) * B * nh * hd, "q"));
        LQ(lq_cuda_malloc(&out, 2 * (size_t)B * nh * hd, "out"));
        LQ(lq_cuda_malloc((void **)&pos, sizeof(int32_t) * B, "pos"));
        LQ(lq_cuda_malloc(&ws, lq_attention_decode_workspace(B, nh, hd, nsmax), "ws"));
        fill_half<<<1024, 256, 0, s>>>(kv, cache_elems * 2 * copies, 1);
        fill_float<<<64, 256, 0, s>>>(q, (size_t)B * nh * hd, 2, 1.0f);
        int32_t hp[64];
        for (int b = 0; b < B; b++) hp[b] = C - 1;
        LQ(lq_cuda_upload(pos, hp, sizeof(int32_t) * B));
        double us[3];
        for (int ver = 0; ver < 3; ver++) {
            for (int r = -3; r < runs; r++) {
                __half *k = kv + (size_t)((r + 3) % copies) * cache_elems * 2, *v = k + cache_elems;
                CK(cudaEventRecord(e0, s));
                if (ver == 0)
                    LQ(lq_attention_decode_cuda(out, q, 0, k, v, LQ_F16, (int64_t)C * kvd, B, pos, nh, nkv, hd, 0, ns, ws, s));
                else if (ver == 1)
                    decode_v1_launch<__half, 128>(out, q, k, v, (int64_t)C * kvd, B, pos, nh, nkv, 0, ns1, ws, s);
                else
                    LQ(lq_attention_decode_simt_cuda(out, q, 0, k, v, LQ_F16, (int64_t)C * kvd, B, pos, nh, nkv, hd, 0, ns2,
                                                     ws, s));
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
            }
            CK(cudaGetLastError());
            qsort(ms, runs, sizeof(float), cmpf);
            us[ver] = ms[runs / 2] * 1e3;
        }
        printf("%5d %6d %6d %9.1f %8.2f %9.1f %7.2fx %9.1f %7.2fx %9.1f %7.2fx\n", B, C, ns, us[0],
               cache_bytes / (us[0] * 1e-6) / 1e12, us[1], us[1] / us[0], us[2], us[2] / us[0], sdpa[ci], sdpa[ci] / us[0]);
        lq_cuda_free(kv);
        lq_cuda_free(q);
        lq_cuda_free(out);
        lq_cuda_free(pos);
        lq_cuda_free(ws);
    }

    /* split-count sweep for the current kernel: is lq_attention_decode_splits' choice the best? */
    printf("# decode split sweep (current kernel): us (KV TB/s) per split count; * = lq_attention_decode_splits\n");
    const int sB[] = {1, 1, 16, 16}, sC[] = {8192, 32768, 8192, 32768}, sns[] = {8, 16, 33, 66, 132, 256};
    for (int ci = 0; ci < 4; ci++) {
        int B = sB[ci], C = sC[ci], ns_auto = lq_attention_decode_splits(B, nh, nkv, C, sm);
        size_t cache_elems = (size_t)B * C * kvd, cache_bytes = cache_elems * 2 * 2;
        int copies = (int)((400u << 20) / cache_bytes) + 1;
        if (copies > 16) copies = 16;
        __half *kv = NULL;
        float *q = NULL;
        int32_t *pos = NULL;
        void *out = NULL, *ws = NULL;
        LQ(lq_cuda_malloc((void **)&kv, cache_bytes * copies, "kv"));
        LQ(lq_cuda_malloc((void **)&q, sizeof(float) * B * nh * hd, "q"));
        LQ(lq_cuda_malloc(&out, 2 * (size_t)B * nh * hd, "out"));
        LQ(lq_cuda_malloc((void **)&pos, sizeof(int32_t) * B, "pos"));
        LQ(lq_cuda_malloc(&ws, lq_attention_decode_workspace(B, nh, hd, 256), "ws"));
        fill_half<<<1024, 256, 0, s>>>(kv, cache_elems * 2 * copies, 1);
        fill_float<<<64, 256, 0, s>>>(q, (size_t)B * nh * hd, 2, 1.0f);
        int32_t hp[64];
        for (int b = 0; b < B; b++) hp[b] = C - 1;
        LQ(lq_cuda_upload(pos, hp, sizeof(int32_t) * B));
        printf("B=%-3d ctx %6d:", B, C);
        for (int si = 0; si < 7; si++) {
            int ns = si < 6 ? sns[si] : ns_auto;
            for (int r = -3; r < runs; r++) {
                __half *k = kv + (size_t)((r + 3) % copies) * cache_elems * 2, *v = k + cache_elems;
                CK(cudaEventRecord(e0, s));
                LQ(lq_attention_decode_cuda(out, q, 0, k, v, LQ_F16, (int64_t)C * kvd, B, pos, nh, nkv, hd, 0, ns, ws, s));
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
            }
            qsort(ms, runs, sizeof(float), cmpf);
            double us = ms[runs / 2] * 1e3;
            printf("  %s%d: %.1f (%.2f)", si < 6 ? "" : "*", ns, us, cache_bytes / (us * 1e-6) / 1e12);
        }
        printf("\n");
        lq_cuda_free(kv);
        lq_cuda_free(q);
        lq_cuda_free(out);
        lq_cuda_free(pos);
        lq_cuda_free(ws);
    }

    printf("# prefill attention (causal), fp16 cache, 32 q / 8 kv heads, hd 128, B=1 (median of 10)\n");
    printf("%6s %12s %12s %12s %12s\n", "T", "tc ms", "tc TFLOP/s", "simt ms", "simt TFLOP/s");
    const int Ts[] = {512, 2048, 8192};
    for (int ti = 0; ti < 3; ti++) {
        int T = Ts[ti];
        size_t ce = (size_t)T * kvd;
        __half *kv = NULL;
        float *q = NULL;
        void *out = NULL;
        LQ(lq_cuda_malloc((void **)&kv, ce * 2 * 2, "kv"));
        LQ(lq_cuda_malloc((void **)&q, sizeof(float) * T * nh * hd, "q"));
        LQ(lq_cuda_malloc(&out, 2 * (size_t)T * nh * hd, "out"));
        fill_half<<<1024, 256, 0, s>>>(kv, ce * 2, 3);
        fill_float<<<1024, 256, 0, s>>>(q, (size_t)T * nh * hd, 4, 1.0f);
        double t[2], flops = 4.0 * hd * nh * (double)T * (T + 1) / 2;
        for (int ver = 0; ver < 2; ver++) {
            for (int r = -2; r < 10; r++) {
                CK(cudaEventRecord(e0, s));
                if (ver == 0) LQ(lq_attention_cuda(out, q, 0, kv, kv + ce, LQ_F16, (int64_t)ce, 1, T, 0, nh, nkv, hd, 0, s));
                else LQ(lq_attention_simt_cuda(out, q, 0, kv, kv + ce, LQ_F16, (int64_t)ce, 1, T, 0, nh, nkv, hd, 0, s));
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
            }
            qsort(ms, 10, sizeof(float), cmpf);
            t[ver] = ms[5] * 1e-3;
        }
        printf("%6d %12.3f %12.2f %12.3f %12.2f\n", T, t[0] * 1e3, flops / t[0] / 1e12, t[1] * 1e3, flops / t[1] / 1e12);
        lq_cuda_free(kv);
        lq_cuda_free(q);
        lq_cuda_free(out);
    }
    lq_cuda_ctx_free(ctx);
    return 0;
}
