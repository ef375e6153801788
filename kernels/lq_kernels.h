/* lq_kernels.h — the CUDA twins of the reference ops in libquant/lq_ops.h,
 * one launcher per op, named after its reference (`lq_rmsnorm_ref` ->
 * `lq_rmsnorm_cuda`), with the same arguments plus the dtypes of the buffers
 * that may be 16-bit and the stream (a cudaStream_t passed as void*, NULL =
 * the default stream). All pointers are device pointers unless noted.
 * Launchers check the launch (cudaGetLastError) and return LQ_ERR_CUDA with
 * the CUDA message; they do not synchronize.
 *
 * Precision contract of the GPU runtime (kernels/engine_cuda.cu):
 *   - the residual stream, q/k/v, GEMM outputs, logits: fp32;
 *   - GEMM inputs (normed activations, attention output, SwiGLU output) and
 *     weights: the "compute dtype" (F16, BF16 or F32); cuBLAS accumulates in
 *     fp32 (CUBLAS_COMPUTE_32F);
 *   - KV cache: the compute dtype; attention math, softmax and norms: fp32;
 *     row sums of RMSNorm and the NLL's log-sum-exp: double.
 * Only the buffers marked `void *` with a dtype argument take 16-bit types.
 *
 * Implementation: kernels/ops_cuda.cu (elementwise ops, norms, GEMM, NLL,
 * argmax), kernels/gemv_cuda.cu (small-M GEMV), kernels/attention_cuda.cu
 * (prefill and split-context decode).
 * Tested against the references by tests/test_kernels.c (make test-gpu). */
#ifndef LQ_KERNELS_H
#define LQ_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../libquant/lq_common.h"
#include "../libquant/lq_dtype.h"
#include "../libquant/lq_kld.h"
#include "../libquant/lq_w4a16.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------- device memory and context ---------------- */

/* cudaMalloc; out of memory gives LQ_ERR_CUDA naming `what`, the bytes asked
 * for and the bytes free (cudaMemGetInfo). */
lq_status lq_cuda_malloc(void **p, size_t n_bytes, const char *what);
void lq_cuda_free(void *p); /* NULL is a no-op */
lq_status lq_cuda_upload(void *dst, const void *host_src, size_t n_bytes);
lq_status lq_cuda_download(void *host_dst, const void *src, size_t n_bytes);
lq_status lq_cuda_memset(void *dst, int byte, size_t n_bytes);
/* Wait for the stream; asynchronous kernel faults surface here. */
lq_status lq_cuda_sync(void *stream);

/* A stream and a cuBLAS handle (with its own workspace, so GEMMs can be
 * captured in CUDA graphs) on one device. */
typedef struct lq_cuda_ctx lq_cuda_ctx;
lq_status lq_cuda_ctx_new(int device, lq_cuda_ctx **out);
void lq_cuda_ctx_free(lq_cuda_ctx *c); /* NULL is a no-op */
void *lq_cuda_ctx_stream(const lq_cuda_ctx *c);
void *lq_cuda_ctx_blas(const lq_cuda_ctx *c);
int lq_cuda_ctx_sm_count(const lq_cuda_ctx *c);

/* ---------------- ops ---------------- */

/* out[i, :] = table[ids[i], :] as fp32.         out (n, dim) fp32, table (vocab, dim) table_dtype.
 * ids are not range-checked here (the engine checks them on the host). */
lq_status lq_embedding_cuda(float *out, const void *table, lq_dtype table_dtype, const int32_t *ids, int64_t n,
                            int64_t dim, void *stream);

/* RMSNorm fused with the residual add: when delta != NULL, first x += delta
 * (written back to x); then out = x / sqrt(mean(x^2) + eps) * w, per row.
 * x (n, dim) fp32, delta (n, dim) fp32 or NULL, w (dim) fp32, out (n, dim) out_dtype.
 * Sum of squares in double, then (x * r) * w in float, as lq_rmsnorm_ref. */
lq_status lq_rmsnorm_cuda(void *out, lq_dtype out_dtype, float *x, const float *delta, const float *w, int64_t n,
                          int64_t dim, float eps, void *stream);

/* Rotate-half RoPE in place, as lq_rope_ref.   x (n, n_heads, head_dim) fp32, rows ld
 * elements apart (ld = 0: n_heads*head_dim; a fused q|k|v GEMM output has
 * wider rows); pos (n); cos/sin tables (max_pos, head_dim/2) fp32. */
lq_status lq_rope_cuda(float *x, int64_t ld, const int32_t *pos, int64_t n, int n_heads, int head_dim,
                       const float *cos_tab, const float *sin_tab, void *stream);

/* out = silu(gate) * up, as lq_swiglu_ref over rows x cols elements.
 * gate, up (rows, cols) fp32 with rows ld elements apart (ld = 0: cols; a fused
 * gate|up GEMM output has ld = 2*cols); out (rows, cols) out_dtype, contiguous. */
lq_status lq_swiglu_cuda(void *out, lq_dtype out_dtype, const float *gate, const float *up, int64_t rows, int64_t cols,
                         int64_t ld, void *stream);

/* y = x W^T + b through cuBLAS (cublasGemmEx, fp32 accumulation), or for
 * small m with fp16/bf16 through lq_gemv_cuda (below).
 * x (m, k) rows ldx elements apart (ldx = 0 means k), W (n, k), both `dtype`;
 * b (n) fp32 or NULL; y (m, n) fp32. blas: lq_cuda_ctx_blas(). */
lq_status lq_matmul_cuda(void *blas, float *y, const void *x, const void *w, lq_dtype dtype, const float *b,
                         int64_t m, int64_t n, int64_t k, int64_t ldx, void *stream);

/* The same product with fp32 x against a 16-bit W (F16/BF16): the engine's
 * fp32 compute over fp16/bf16 weights (lq_cuda_engine_opts.compute_dtype).
 * W is widened to fp32 (exact) whole rows at a time into scratch (device,
 * scratch_elems floats, at least k) and multiplied by cuBLAS in fp32 (no
 * TF32): lq_matmul_ref on the widened weights up to summation order. Moves
 * W's bytes three times: a precision mode, not a speed path. */
lq_status lq_matmul_w16_f32_cuda(void *blas, float *y, const float *x, const void *w, lq_dtype w_dtype, const float *b,
                                 int64_t m, int64_t n, int64_t k, int64_t ldx, float *scratch, size_t scratch_elems,
                                 void *stream);

/* The same product for a few rows of x without cuBLAS: a memory-bound GEMV
 * (kernels/gemv_cuda.cu) for m <= LQ_GEMV_MAX_M, fp16/bf16 x and W, fp32
 * accumulation. lq_matmul_cuda calls it whenever lq_gemv_supported() says
 * yes: dtype F16/BF16, 1 <= m <= LQ_GEMV_MAX_M, k and ldx (0: k) multiples of
 * 8, x and w 16-byte aligned. Otherwise lq_gemv_cuda returns LQ_ERR_UNSUPPORTED. */
#define LQ_GEMV_MAX_M 8
int lq_gemv_supported(lq_dtype dtype, int64_t m, int64_t n, int64_t k, int64_t ldx, const void *x, const void *w);
lq_status lq_gemv_cuda(float *y, const void *x, const void *w, lq_dtype dtype, const float *b, int64_t m, int64_t n,
                       int64_t k, int64_t ldx, void *stream);

/* RoPE and the KV-cache store of one layer in one launch, on fused q|k|v rows
 * (B*T rows, ld floats apart, 0 = (n_q + 2 n_kv) head_dim; q heads, then k,
 * then v): q rotated in place (lq_rope_cuda's arithmetic: bit-identical), k
 * rotated and stored, v stored, into the caches as lq_kv_store_cuda does
 * (positions pos (B*T), sequence b at b * seq_stride). The k columns of qkv
 * are left unrotated. Twin of lq_rope_ref + the cache copy. */
lq_status lq_rope_kv_store_cuda(float *qkv, int64_t ld, const int32_t *pos, int B, int T, int n_q, int n_kv,
                                int head_dim, const float *cos_tab, const float *sin_tab, void *k_cache,
                                void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, void *stream);

/* Write new keys/values into the cache: for b < B, t < T
 *   cache[b * seq_stride + pos[b*T + t] * kv_dim + j] = k/v[(b*T + t) * ld + j]
 * k, v (B, T, kv_dim) fp32, rows ld elements apart (0: kv_dim); caches
 * kv_dtype. (lq_forward's memcpy into its cache.) */
lq_status lq_kv_store_cuda(void *k_cache, void *v_cache, lq_dtype kv_dtype, const float *k, const float *v, int64_t ld,
                           const int32_t *pos, int B, int T, int kv_dim, int64_t seq_stride, void *stream);

/* Prefill attention, the twin of lq_attention_ref for B sequences at once:
 * T queries per sequence at positions pos0 .. pos0+T-1 over cache positions
 * 0 .. pos0+T-1 (causal, GQA, window > 0 = sliding window).
 * q (B, T, n_heads*hd) fp32, rows ldq elements apart (0: n_heads*hd);
 * cache of sequence b at b*seq_stride, rows of
 * n_kv*hd (kv_dtype); out (B, T, n_heads*hd) kv_dtype (the GEMM input that follows).
 * Tiled with an online softmax: no T x T matrix is ever stored. fp16/bf16
 * caches with head_dim 32/64/128 run on the tensor cores (q and the
 * probabilities rounded to the cache dtype, fp32 accumulation); the rest on
 * the fp32 units. head_dim 8, 16, 32, 64, 128 or 256. */
lq_status lq_attention_cuda(void *out, const float *q, int64_t ldq, const void *k_cache, const void *v_cache,
                            lq_dtype kv_dtype, int64_t seq_stride, int B, int T, int pos0, int n_heads, int n_kv, int hd, int window,
                            void *stream);
/* The same prefill, FlashAttention-2 style (kernels/attention_fa_cuda.cu):
 * S, P and O in registers, K/V through a cp.async double buffer, mma.sync.
 * fp16/bf16 caches, head_dim 32/64/128, 16-byte aligned K/V rows; anything
 * else returns LQ_ERR_UNSUPPORTED without setting a message (fall back). */
lq_status lq_attention_fa_cuda(void *out, const float *q, int64_t ldq, const void *k_cache, const void *v_cache,
                               lq_dtype kv_dtype, int64_t seq_stride, int B, int T, int pos0, int n_heads, int n_kv, int hd,
                               int window, void *stream);

/* Decode attention (one query per sequence) over the preallocated cache, split
 * along the context into at most n_splits pieces processed by separate blocks,
 * then merged (log-sum-exp, in split order: deterministic). Sequence b's query
 * sits at position pos[b], read from device memory so that a CUDA graph
 * replays it with new positions; the split sizes (and, at short contexts, how
 * many of the n_splits are used) follow pos at run time. fp16/bf16 caches
 * with head_dim 16..256 run on the tensor cores (q and the probabilities
 * rounded to the cache dtype, fp32 softmax and accumulation).
 * q (B, n_heads*hd) fp32, rows ldq apart (0: n_heads*hd); out (B, n_heads*hd) kv_dtype;
 * workspace: lq_attention_decode_workspace() bytes, any initial contents
 * (no clearing needed), reusable by later calls with any B / n_splits that
 * fit it, one call at a time.
 * Launched with programmatic dependent launch (sm_90+): pos and every cache
 * row of sequence b except row pos[b] may be read before the kernel before it
 * in the stream has finished, so that kernel (in the engine: RoPE + KV store)
 * may write row pos[b] of the caches, q and nothing else this call reads;
 * earlier writes must be complete (LQ_PDL=0 turns the overlap off). */
lq_status lq_attention_decode_cuda(void *out, const float *q, int64_t ldq, const void *k_cache, const void *v_cache,
                                   lq_dtype kv_dtype, int64_t seq_stride, int B,
                                   const int32_t *pos, int n_heads, int n_kv, int hd, int window, int n_splits,
                                   void *workspace, void *stream);
/* Splits that fill the GPU for B sequences with contexts up to max_ctx. */
int lq_attention_decode_splits(int B, int n_heads, int n_kv, int max_ctx, int sm_count);
size_t lq_attention_decode_workspace(int B, int n_heads, int hd, int n_splits);

/* nll[t] = -log softmax(logits[t])[target[t]] (double), as lq_nll_ref;
 * rows with target[t] < 0 get 0. logits (T, V) fp32. */
lq_status lq_nll_cuda(double *nll, const float *logits, const int32_t *target, int64_t T, int64_t V, void *stream);

/* Per row t, the KLD statistics of libquant/lq_kld.h (lq_kld_token_ref's
 * twin): both NLLs, KLD(base || q), dp, both argmaxes. logits (T, V) fp32 of
 * each model, target (T) in [0, V) (not checked here: the caller's), out (T)
 * device memory. Non-finite logits give non-finite numbers (the caller checks). */
lq_status lq_kld_token_cuda(lq_kld_token *out, const float *logits_base, const float *logits_q,
                            const int32_t *target, int64_t T, int64_t V, void *stream);

/* out[t] = argmax(logits[t]) (ties: the lowest id, like lq_sample's greedy). */
lq_status lq_argmax_cuda(int32_t *out, const float *logits, int64_t T, int64_t V, void *stream);


/* ---------------- W4A16 (kernels/w4a16_cuda.cu) ---------------- */

/* A 4-bit weight on the device in the mma layout of libquant/lq_w4a16.h
 * (laid out by lq_w4a16_pack_parts on the host, then uploaded). */
typedef struct {
    lq_w4a16_shape s;
    const uint32_t *qw;  /* (Np/16, Kp/64, 32, 4) */
    const void *scales;  /* fp16 (n_groups, Np), lq_w4a16_group_index order */
    const void *zeros;   /* fp16, same shape; NULL when symmetric */
    int il;              /* 0: the parts stacked; 64: a gate|up pair interleaved by 64 rows (lq_w4a16_upload_swiglu) */
} lq_w4a16_weight;

/* y (m, N) fp32 = x (m, K) fp16 (rows ldx apart, 0: K) · W^T (+ b (N) fp32),
 * the twin of lq_w4a16_matmul_ref. path: 0 auto (small-M kernel up to
 * LQ_W4A16_SMALL_MAX_M, fused up to LQ_W4A16_FUSED_MAX_M, then the wgmma
 * kernel where it runs, else dequantize + cuBLAS; the fused kernel also when
 * no K slice of x fits the small-M kernel's shared memory), 1 fused (any m:
 * the codes are re-read per 64 rows), 2 dequantize + cuBLAS, 3 small M
 * (m <= LQ_W4A16_SMALL_MAX_M, else LQ_ERR_ARG; LQ_ERR_UNSUPPORTED when x
 * does not fit; up to 8 rows no workspace while m rows of x fit one block
 * (ws may then be NULL), else the K-slice partial sums in ws), 4 wgmma (any
 * m, no workspace; LQ_ERR_UNSUPPORTED off sm_90, or when K or ldx is not a
 * multiple of 8 or x is not 16-byte aligned). Any x pointer and ldx >= K
 * (unaligned ones take slower loads). ws: a device workspace of at least
 * lq_w4a16_workspace_bytes(&w->s, m, sm_count) bytes (split-K partial sums,
 * or the fp16 weight of path 2);
 * one launch at a time per workspace. Deterministic: the same inputs give
 * the same bits.
 * sm_count: the device's multiprocessors (lq_cuda_ctx_sm_count), which sets
 * the K split. blas: lq_cuda_ctx_blas() (path 2 only). */
lq_status lq_w4a16_matmul_cuda(void *blas, float *y, const void *x, int64_t ldx, const lq_w4a16_weight *w,
                               const float *b, int64_t m, int path, int sm_count, void *ws, size_t ws_bytes,
                               void *stream);
size_t lq_w4a16_workspace_bytes(const lq_w4a16_shape *s, int64_t max_m, int sm_count);

/* A gate|up pair for lq_w4a16_swiglu_cuda: both parts of H rows (H a multiple
 * of 64; LQ_ERR_UNSUPPORTED otherwise), stacked 64 gate rows, then the same 64
 * up rows, and so on (out->il = 64), so that one 128-row tile of the wgmma
 * kernel holds the gate and up rows of 64 hidden units. Device bytes:
 * lq_w4a16_device_bytes of the two stacked. A product with it (y (m, 2H)) has
 * its columns in that order: gate of unit n at 128 (n / 64) + n % 64, up 64
 * further. */
lq_status lq_w4a16_upload_swiglu(const lq_qweight *gate, const lq_qweight *up, void *dev, size_t dev_bytes,
                                 lq_w4a16_weight *out);
/* h (m, H), fp16 or bf16 (hdt) = silu(x Wg^T) * (x Wu^T), rounded once (the
 * formula of lq_swiglu_cuda), for w from lq_w4a16_upload_swiglu. Where the
 * automatic path is the wgmma kernel with 256-row tiles and one K slice
 * (sm_90, m = 129..256 and m >= 384), and at m <= 4 where the small-M
 * kernel's blocks of one gate|up pair of 64 units fill every SM (H / 64 >=
 * sm_count), the SwiGLU is the kernel's epilogue (the (m, 2H) fp32 product is
 * never written); otherwise lq_w4a16_matmul_cuda (path 0) writes it to y
 * ((m, 2H) fp32, the caller's scratch) and lq_swiglu_cuda reads it. The
 * wgmma epilogue gives that route's bits; the small-M one sums K in its own
 * split over the warps (within one fp16 step of it). Deterministic either way. ws / ws_bytes / sm_count / blas as lq_w4a16_matmul_cuda. */
lq_status lq_w4a16_swiglu_cuda(void *blas, void *h, lq_dtype hdt, float *y, const void *x, const lq_w4a16_weight *w,
                               int64_t m, int sm_count, void *ws, size_t ws_bytes, void *stream);
/* Device bytes of a weight in the mma layout (codes, scales, zeros; 256-aligned pieces). */
size_t lq_w4a16_device_bytes(const lq_w4a16_shape *s);
/* Lay parts out stacked along N (libquant/lq_w4a16.h) on the host —
 * lq_w4a16_pack_parts: copied from the parts' mma views when their file
 * stored that layout, else repacked — and copy them into dev
 * (lq_w4a16_device_bytes bytes); *out points into dev. */
lq_status lq_w4a16_upload(const lq_qweight *const *parts, int n_parts, void *dev, size_t dev_bytes,
                          lq_w4a16_weight *out);
/* out (N, K) fp16 row-major = the dequantized weight (exactly what the fused path multiplies). */
lq_status lq_w4a16_dequant_cuda(void *out, const lq_w4a16_weight *w, void *stream);

#ifdef __cplusplus
}
#endif

#endif
