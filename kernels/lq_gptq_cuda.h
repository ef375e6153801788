/* lq_gptq_cuda.h — the GPU twins of the GPTQ pieces of calib/lq_calib.h
 * (implementation: kernels/gptq_cuda.cu; CPU-only builds link the stubs of
 * kernels/nocuda.c, which return LQ_ERR_UNSUPPORTED):
 *   lq_hessian_accum_cpu   -> lq_hessian_accum_cuda   S += X^T X (cublasDsyrk)
 *   lq_hessian_finalize + lq_gptq_quantize's dead-input/permutation steps
 *                          -> lq_hessian_diag_cuda, lq_hessian_permute_cuda
 *   lq_hessian_rel_err     -> lq_hessian_rel_err_cuda (cublasDsymm)
 *   lq_gptq_hinv_cpu       -> lq_gptq_hinv_cuda       damping with the same
 *                             escalation, cuSOLVER potrf/potrs/potrf
 *   lq_gptq_update_cpu     -> lq_gptq_update_cuda     lazy blocks: one warp per
 *                             row for the column loop, cuBLAS sgemm for the
 *                             trailing update
 *   lq_rtn_quantize_ref    -> lq_rtn_quantize_cuda    (bit-exact)
 * and the layer-by-layer calibration forward (lq_calib_cuda_*, below).
 * Same arguments as the CPU versions plus the context; every array argument
 * is a DEVICE pointer unless noted. Functions run on the context's stream and
 * return after it has finished (they read back error flags), so faults
 * surface as LQ_ERR_CUDA from the call that caused them.
 *
 * Precision (chosen to match the CPU path, not merely come close):
 *   - Hessian: the fp32 activations are converted to double on the device and
 *     accumulated with cublasDsyrk (fp64; the H100/H200 fp64 tensor cores run
 *     it at ~60 TFLOP/s): the same sums as the CPU's dsyrk up to the order of
 *     additions (relative differences ~1e-15).
 *   - damping/Cholesky/inverse in double (cusolverDnDpotrf, Dpotrs against
 *     the identity, Dpotrf), U rounded to fp32 at the end, as on the CPU.
 *   - the GPTQ loop in fp32 with the CPU's operation order inside a row
 *     (no fused multiply-add: __fmul_rn/__fsub_rn/__fdiv_rn), the trailing
 *     update by cublasSgemm in fp32 (CUBLAS_DEFAULT_MATH: no TF32). Codes can
 *     still differ from the CPU where a compensated weight lands within a few
 *     ulps of a rounding boundary (different GEMM summation order).
 *   - codes: the one rule of libquant/lq_quant.h on the device (IEEE fp32
 *     division __fdiv_rn, rintf = round-half-to-even, the fp16-rounded scale
 *     saturated at 65504 before any code is computed): bit-exact with the CPU
 *     for the same weights.
 * Tested by tests/test_gptq_gpu.c (make test-gpu). */
#ifndef LQ_GPTQ_CUDA_H
#define LQ_GPTQ_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "../libquant/lq_common.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A device, a stream, cuBLAS and cuSOLVER handles, scratch buffers, and the
 * high-water mark of device memory in use. */
typedef struct lq_gptq_cuda lq_gptq_cuda;
/* No device (or a build without CUDA): LQ_ERR_UNSUPPORTED / LQ_ERR_CUDA with a
 * message saying so. */
lq_status lq_gptq_cuda_new(int device, lq_gptq_cuda **out);
void lq_gptq_cuda_free(lq_gptq_cuda *g); /* NULL is a no-op */
/* Largest device memory in use (cudaMemGetInfo: total - free, device-wide)
 * seen after any allocation made through this context, in bytes. */
size_t lq_gptq_cuda_peak_bytes(const lq_gptq_cuda *g);
/* "NAME, N GiB" of the context's device. */
const char *lq_gptq_cuda_device_name(const lq_gptq_cuda *g);
/* The context's cudaStream_t and cublasHandle_t (for kernels/ code). */
void *lq_gptq_cuda_stream(const lq_gptq_cuda *g);
void *lq_gptq_cuda_blas(const lq_gptq_cuda *g);

/* Device memory through the context (samples the high-water mark). */
lq_status lq_gptq_cuda_malloc(lq_gptq_cuda *g, void **p, size_t n_bytes, const char *what);
void lq_gptq_cuda_dfree(void *p); /* NULL is a no-op */
/* Synchronous copies on the context's stream (host pointers are pageable). */
lq_status lq_gptq_cuda_upload(lq_gptq_cuda *g, void *dst, const void *host_src, size_t n_bytes);
lq_status lq_gptq_cuda_download(lq_gptq_cuda *g, void *host_dst, const void *src, size_t n_bytes);
lq_status lq_gptq_cuda_memset(lq_gptq_cuda *g, void *dst, int byte, size_t n_bytes);

/* S += X^T X.  S (K, K) double, row-major, only the upper triangle (c >= r)
 * maintained (like lq_hessian.S); X (rows, K) fp32. The caller counts rows. */
lq_status lq_hessian_accum_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X, int64_t rows);
/* The same with X in HOST memory (uploaded in chunks through the context's
 * scratch buffer): for a calibration forward that runs on the CPU. */
lq_status lq_hessian_accum_host_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X_host, int64_t rows);

/* diag_host[k] = S[k, k]: S device (K, K), diag_host (K) HOST. */
lq_status lq_hessian_diag_cuda(lq_gptq_cuda *g, const double *S, int64_t K, double *diag_host);
/* H in GPTQ's processing order from the sums: Hp[a, b] = f * S[perm[a], perm[b]]
 * (read from S's upper triangle; Hp full symmetric), then a diagonal entry
 * that is exactly 0 (a dead input) becomes 1, as lq_gptq_quantize does on the
 * host (bit-identical). Hp, S (K, K) device; perm (K) HOST. */
lq_status lq_hessian_permute_cuda(lq_gptq_cuda *g, double *Hp, const double *S, int64_t K, double f,
                                  const int32_t *perm_host);

/* ||(W - Ŵ) X^T||_F / ||W X^T||_F through S (upper triangle as above):
 * sqrt(sum_r d_r S d_r^T / sum_r w_r S w_r^T), in double; 0 when either sum
 * is not positive (as lq_hessian_rel_err). W, What (N, K) fp32. */
lq_status lq_hessian_rel_err_cuda(lq_gptq_cuda *g, const double *S, int64_t K, const float *W, const float *What,
                                  int64_t N, double *rel);

/* lq_gptq_hinv_cpu on the device. H (K, K) double full symmetric (not
 * modified); U (K, K) fp32 row-major upper, zeros below the diagonal.
 * Damping damp = percdamp * mean(diag H), x10 on a failed factorisation up
 * to max_escalations times; the damping that worked in *percdamp_used,
 * *damp_used, *escalations. Non-finite H or failure after the last
 * escalation: LQ_ERR_NUMERIC naming the step and the damping tried. */
lq_status lq_gptq_hinv_cuda(lq_gptq_cuda *g, const double *H, int64_t K, double percdamp, int max_escalations,
                            float *U, double *percdamp_used, double *damp_used, int *escalations);

/* lq_gptq_update_cpu on the device: same contract (W (N, K) overwritten,
 * U (K, K), col_group (K) int32, scales/zeros (N, n_groups), codes (N, K)),
 * block_size columns per lazy block (rounded to whole groups with dynamic
 * params, as the CPU). A non-finite weight: LQ_ERR_NUMERIC naming the row. */
lq_status lq_gptq_update_cuda(lq_gptq_cuda *g, float *W, int64_t N, int64_t K, const float *U,
                              const lq_quant_params *p, int64_t G, const int32_t *col_group, int static_params,
                              uint16_t *scales, uint8_t *zeros, uint8_t *codes, int block_size);

/* lq_rtn_quantize_ref on the device, bit for bit: w (rows, cols) fp32,
 * codes (rows, cols), scales (rows, n_groups) fp16 bits, zeros (rows, n_groups).
 * Non-finite weights: LQ_ERR_NUMERIC. */
lq_status lq_rtn_quantize_cuda(lq_gptq_cuda *g, const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                               uint8_t *codes, uint16_t *scales, uint8_t *zeros);

/* ---- the calibration forward of calib/quantize_model.c on the GPU
 * (kernels/calib_cuda.cu) ----
 * The residual stream x (n_seq*L, dim) and the attention output
 * (n_seq*L, n_heads*hd) of all calibration tokens live on the device; each
 * step runs over chunks of about 4096 tokens (as the CPU driver) with the
 * engine's kernels (lq_kernels.h: rmsnorm, cuBLAS fp32 GEMM, rope, prefill
 * attention on an fp32 "cache" that is the chunk's k/v, swiglu), every
 * sequence attending to itself from position 0. All tensors fp32, so the
 * Hessians equal the CPU forward's up to float summation order. The weights
 * are read from the HOST model (lq_layer_weights) at each call and uploaded:
 * the driver replaces them by their quantized versions between the steps
 * (true-sequential). Host arguments: x0 (n_seq*L, dim) (the embeddings),
 * lw and norm. S: device (K, K) upper-triangle Hessians as above. */
typedef struct lq_calib_cuda lq_calib_cuda;
lq_status lq_calib_cuda_new(lq_gptq_cuda *g, const lq_config *c, const float *x0, int n_seq, int L,
                            lq_calib_cuda **out);
void lq_calib_cuda_free(lq_calib_cuda *s); /* NULL is a no-op */
/* S += xn^T xn, xn = rmsnorm(x, norm) over all tokens (q/k/v or gate/up inputs). */
lq_status lq_calib_cuda_norm_hessian(lq_calib_cuda *s, const float *norm, double *S);
/* att = attention(rope(q), rope(k), v) of xn = rmsnorm(x, attn_norm) with lw's
 * current wq/wk/wv (+ biases); S += att^T att (o_proj's input). */
lq_status lq_calib_cuda_attention(lq_calib_cuda *s, const lq_layer_weights *lw, double *S);
/* x += att wo^T */
lq_status lq_calib_cuda_attn_residual(lq_calib_cuda *s, const float *wo);
/* h = silu(xn gate^T) * (xn up^T), xn = rmsnorm(x, ffn_norm); S += h^T h when
 * S != NULL (down_proj's input); x += h w_down^T when residual. */
lq_status lq_calib_cuda_mlp(lq_calib_cuda *s, const lq_layer_weights *lw, double *S, int residual);

#ifdef __cplusplus
}
#endif

#endif
