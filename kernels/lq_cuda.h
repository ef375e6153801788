/* lq_cuda.h — the public face of the CUDA side of lq (kernels/). Never
 * includes cuda_runtime.h: streams and handles stay inside kernels/.
 * When lq is built without nvcc (CUDA=0) kernels/nocuda.c provides these
 * functions: lq_cuda_device_count() returns 0 and everything else returns
 * LQ_ERR_UNSUPPORTED with "built without CUDA". */
#ifndef LQ_CUDA_H
#define LQ_CUDA_H

#include <stddef.h>

#include "../libquant/lq_engine.h"
#include "../libquant/lq_kld.h"

/* Number of usable CUDA devices; 0 without CUDA, driver or GPU (never an error). */
int lq_cuda_device_count(void);
/* Name, memory and clocks of device `dev`, as one line for reports. */
lq_status lq_cuda_device_describe(int dev, char *buf, size_t n);

typedef struct {
    int weight_dtype;  /* LQ_F16 (the default), LQ_BF16 or LQ_F32: weights, GEMM inputs and KV cache */
    int compute_dtype; /* -1 (default): weight_dtype. LQ_F32 over F16/BF16 weights: the weights stay 16-bit in
                          memory, activations and KV cache are fp32 and every product widens the weights on the
                          fly — logits with no rounding but the weights' own, several times slower */
    int device;       /* CUDA device ordinal */
    int use_graph;    /* 1 (default): decode steps (T = 1) replay a CUDA graph captured per batch size */
} lq_cuda_engine_opts;
/* {LQ_F16, compute -1, device 0, use_graph 1}; start from this and change fields. */
lq_cuda_engine_opts lq_cuda_engine_opts_default(void);

/* Upload m's weights (converted to opts->weight_dtype) and allocate the KV
 * cache and activations for max_B sequences of max_ctx tokens. Out of GPU
 * memory gives LQ_ERR_CUDA with the bytes asked for and free. The engine
 * borrows m only during creation. Implemented in kernels/engine_cuda.cu,
 * which documents the precision and the memory plan. */
lq_status lq_cuda_engine_new(const lq_model *m, const lq_cuda_engine_opts *opts, int max_B, int max_ctx,
                             lq_engine **out);

/* lq eval on the GPU: both engines' logits of B windows of T tokens stay on
 * the device and the KLD statistics of libquant/lq_kld.h are computed there
 * (lq_kld_token_cuda, lq_kld_token_ref's twin) for rows first .. T-2 of each
 * window (target: the next token); out (B, T - 1 - first) on the host, row
 * order. Two CUDA engines on one GPU; the caller checks the numbers are finite. */
lq_status lq_cuda_engines_kld(lq_engine *base, lq_engine *quant, const int32_t *tokens, int B, int T, int first,
                              lq_kld_token *out);

/* ---- benchmark primitives (kernels/bench_cuda.cu), used by `lq bench` ----
 * All timings: warm-up first, median of `iters` samples, per launch; each
 * sample is a replay of a CUDA graph of >= 10 back-to-back launches (the
 * default) or, after lq_cuda_bench_set_graphs(0), one launch between CUDA
 * events; inputs rotated through >= rotate_bytes of distinct buffers so that
 * weights never sit in L2; random (never zero) data. The copy is always timed
 * with events (one 1 GiB copy dwarfs the launch latency). */
void lq_cuda_bench_set_graphs(int on);
/* Warm-up per timed cell in ms (default 50): replays before the samples so the clocks settle to the cell's load. */
void lq_cuda_bench_set_warm_ms(double ms);
double lq_cuda_bench_warm_ms(void);
/* Programmatic dependent launch on the decode path (kernels/cuda_common.cuh): on by default on sm_90+,
 * off with LQ_PDL=0 in the environment or lq_cuda_set_pdl(0); applies to launches (and graph captures)
 * made after the call. */
void lq_cuda_set_pdl(int on);
int lq_cuda_bench_graphs(void);
typedef struct {
    double us_median, us_min, us_p90;
    int iters;
} lq_bench_timing;

/* Device-to-device copy of n_bytes: returns bytes read + written per second in *tbps (TB/s). */
lq_status lq_cuda_bench_copy(int dev, size_t n_bytes, int iters, lq_bench_timing *t, double *tbps);
/* A plain streaming read of n_bytes (random data, rotated past L2, launched like the decode path's kernels):
 * the ceiling, timed the same way, of a memory-bound kernel that must read those bytes (lq bench kernels
 * --attention puts it next to each shape); *tbps bytes read per second (TB/s). */
lq_status lq_cuda_bench_read(int dev, size_t n_bytes, size_t rotate_bytes, int iters, lq_bench_timing *t, double *tbps);
/* The XOR of the 16-byte words of n_bytes (a multiple of 16) at d (device memory, 16-byte aligned), computed
 * by the kernel lq_cuda_bench_read times; out[4] its four 32-bit lanes. For tests of that kernel. */
lq_status lq_cuda_read_xor(const void *d, size_t n_bytes, uint32_t out[4]);
/* cuBLAS y(M,N) = x(M,K) W(N,K)^T, fp16 inputs, fp32 accumulation, fp16 output. */
lq_status lq_cuda_bench_gemm_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters, lq_bench_timing *t);
/* The same with the output in fp32 when f32y (the output lq's W4A16 paths write: the like-for-like baseline). */
lq_status lq_cuda_bench_gemm_f16_out(int dev, int M, int N, int K, int f32y, size_t rotate_bytes, int iters,
                                     lq_bench_timing *t);
/* lq's small-M GEMV (lq_gemv_cuda), same method and data as the cuBLAS
 * baseline, fp32 output; LQ_ERR_UNSUPPORTED for shapes it does not take (M > 8, K % 8). */
lq_status lq_cuda_bench_gemv_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters, lq_bench_timing *t);

/* lq_w4a16_matmul_cuda, y(M,N) fp32 = x(M,K) fp16 W4(N,K)^T with random codes in the mma layout,
 * group size G (0: per channel), sym or asym; path 0 auto, 1 fused, 2 dequantize + cuBLAS, 3 small M
 * (M <= LQ_W4A16_SMALL_MAX_M), 4 wgmma (sm_90). */
lq_status lq_cuda_bench_w4a16(int dev, int M, int N, int K, int G, int sym, int path, size_t rotate_bytes, int iters,
                              lq_bench_timing *t);
/* 1 when lq_w4a16_matmul_cuda's path 4 (the wgmma kernel) runs on the current device: sm_90 (H100 / H200);
 * 0 otherwise and in a build without CUDA. */
int lq_w4a16_wgmma_device(void);

/* Decode attention (lq_attention_decode_cuda) of B sequences at context C over
 * a fp16 cache (n_heads query / n_kv KV heads, head_dim hd), the automatic
 * split count (returned in *splits); caches rotated past L2. */
lq_status lq_cuda_bench_attention_decode(int dev, int B, int C, int n_heads, int n_kv, int hd, size_t rotate_bytes,
                                         int iters, lq_bench_timing *t, int *splits);

#endif
