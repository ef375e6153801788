/* attention_cuda.cu — causal GQA attention over the KV cache, the CUDA twins
 * of lq_attention_ref (libquant/ops.c):
 *
 *  - prefill (lq_attention_cuda), FlashAttention's recurrence: key tiles go
 *    through shared memory, scores of a tile are masked (causal, window),
 *    folded into a running max / sum (online softmax) and multiplied into the
 *    output; memory is O(tile), never O(T^2). Two kernels:
 *      tensor cores (fp16/bf16 caches, head_dim 32/64/128): the FA2-style
 *        kernel of kernels/attention_fa_cuda.cu (S, P, O in registers);
 *      fp32 units (here; fp32 caches, head_dim 8/16/256, and any case the
 *        first refuses): 32 x 32 tiles, accumulators in registers.
 *    The WMMA kernel the first replaced is in kernels/dev/attention_prefill_wmma.cuh.
 *
 *  - decode (lq_attention_decode_cuda): one query per sequence, the classic
 *    memory-bound case. One block per (context split, KV head [x up to 8 of
 *    its query heads], sequence): each K/V row is read once for all the query
 *    heads that share it (GQA). 16-bit caches: tensor cores (mma.sync), each
 *    warp streaming its own K/V tiles through a cp.async ring of 2-3 stages so
 *    loads stay in flight while a tile is computed; the last split to finish
 *    merges the splits (log-sum-exp, fixed order) in the same kernel. fp32
 *    caches and head_dim 8: the previous fp32-unit kernel and a merge kernel.
 *    Positions come from device memory and split sizes are derived from them
 *    in the kernel, so one captured CUDA graph serves every decode step.
 *    Design and expected numbers: the comment opening the decode section.
 *
 * Tested by tests/test_kernels.c (head_dim 8/16/32/64/128/256, GQA 1..16,
 * windows, long contexts, tile/stage/split boundaries, workspace reuse, both
 * prefill and both decode paths). Earlier versions and the timing harness are
 * in kernels/dev/ (bench_attention.cu, decode_v1.cuh, attention_notes.md). */
#include "cuda_common.cuh"

#include <stdlib.h>

#include <cuda_pipeline.h>

extern "C" {
#include "lq_kernels.h"
}

/* ---------------- prefill ---------------- */

#define PF_BQ 32
#define PF_BK 32
#define PF_THREADS 128

template <int HD> static size_t prefill_smem_bytes(void) {
    return sizeof(float) * (size_t)(PF_BQ * (HD + 1) + PF_BK * (HD + 1) + PF_BK * HD + PF_BQ * (PF_BK + 1));
}

/* Thread roles (128 threads):
 *   scores:  rows sr, sr+1 (sr = tid/8*2) x keys sc + 8j (sc = tid%8, j < 4)
 *   softmax and P·V: row orow = tid/4; the 4 threads of a row (consecutive
 *   lanes) own keys oc*8..oc*8+7 for the softmax and columns oc + 4j of the
 *   output, so the row's running max/sum live in their registers. */
template <typename TK, int HD>
__global__ void __launch_bounds__(PF_THREADS)
    attn_prefill_kernel(TK *out, const float *q, int64_t ldq, const TK *kc, const TK *vc, int64_t seq_stride, int T,
                        int pos0, int nh, int nkv, int window, float scale) {
    extern __shared__ float smem[];
    float *Qs = smem;                     /* (BQ, HD+1): padded against bank conflicts */
    float *Ks = Qs + PF_BQ * (HD + 1);    /* (BK, HD+1) */
    float *Vs = Ks + PF_BK * (HD + 1);    /* (BK, HD) */
    float *S = Vs + PF_BK * HD;           /* (BQ, BK+1) scores, then probabilities */
    const int tid = threadIdx.x;
    const int t0 = blockIdx.x * PF_BQ, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (nh / nkv), kvd = nkv * HD;
    const int nq = min(PF_BQ, T - t0);
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;

    for (int i = tid; i < PF_BQ * HD; i += PF_THREADS) {
        int r = i / HD, d = i % HD;
        Qs[r * (HD + 1) + d] = r < nq ? q[((int64_t)b * T + t0 + r) * ldq + h * HD + d] : 0.0f;
    }
    const int p_first = pos0 + t0, p_last = pos0 + t0 + nq - 1;
    const int k_lo = window > 0 ? max(0, p_first - window + 1) : 0, k_hi = p_last;

    const int sr = (tid / 8) * 2, sc = tid % 8;
    const int orow = tid / 4, oc = tid % 4;
    float o[HD / 4];
#pragma unroll
    for (int j = 0; j < HD / 4; j++) o[j] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int k0 = (k_lo / PF_BK) * PF_BK; k0 <= k_hi; k0 += PF_BK) {
        __syncthreads(); /* the previous tile's readers are done (and Qs is written) */
        for (int i = tid; i < PF_BK * HD; i += PF_THREADS) {
            int kk = i / HD, d = i % HD, key = k0 + kk;
            /* keys outside [k_lo, k_hi] are zero, not garbage: masked scores
             * give p = 0, and 0 * NaN from an unwritten cache row would be NaN */
            bool ok = key >= k_lo && key <= k_hi;
            Ks[kk * (HD + 1) + d] = ok ? lq_ld(kb[(int64_t)key * kvd + d]) : 0.0f;
            Vs[kk * HD + d] = ok ? lq_ld(vb[(int64_t)key * kvd + d]) : 0.0f;
        }
        __syncthreads();
        float acc[2][4];
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; d++) {
            float q0 = Qs[sr * (HD + 1) + d], q1 = Qs[(sr + 1) * (HD + 1) + d];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float kv = Ks[(sc + 8 * j) * (HD + 1) + d];
                acc[0][j] = fmaf(q0, kv, acc[0][j]);
                acc[1][j] = fmaf(q1, kv, acc[1][j]);
            }
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int r = sr + i, p = pos0 + t0 + r;
            int lo = window > 0 ? p - window + 1 : 0;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int key = k0 + sc + 8 * j;
                bool valid = r < nq && key <= p && key >= lo;
                S[r * (PF_BK + 1) + sc + 8 * j] = valid ? acc[i][j] * scale : -INFINITY;
            }
        }
        __syncthreads();
        /* online softmax for row orow: this thread's 8 keys, then the row's 4 threads */
        float sv[8], mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            sv[i] = S[orow * (PF_BK + 1) + oc * 8 + i];
            mx = fmaxf(mx, sv[i]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float m_new = fmaxf(m, mx), alpha = 1.0f, sum = 0.0f;
        if (m_new == -INFINITY) { /* nothing visible to this row yet */
#pragma unroll
            for (int i = 0; i < 8; i++) sv[i] = 0.0f;
        } else {
            alpha = expf(m - m_new); /* m = -inf gives 0 */
#pragma unroll
            for (int i = 0; i < 8; i++) {
                sv[i] = expf(sv[i] - m_new);
                sum += sv[i];
            }
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l = l * alpha + sum;
        m = m_new;
#pragma unroll
        for (int i = 0; i < 8; i++) S[orow * (PF_BK + 1) + oc * 8 + i] = sv[i];
        __syncwarp(); /* a row's probabilities come from its own 4 lanes */
#pragma unroll
        for (int j = 0; j < HD / 4; j++) o[j] *= alpha;
#pragma unroll 4
        for (int k = 0; k < PF_BK; k++) {
            float p = S[orow * (PF_BK + 1) + k];
#pragma unroll
            for (int j = 0; j < HD / 4; j++) o[j] = fmaf(p, Vs[k * HD + oc + 4 * j], o[j]);
        }
    }
    if (orow < nq) {
        TK *orow_p = out + (((int64_t)b * T + t0 + orow) * nh + h) * HD;
#pragma unroll
        for (int j = 0; j < HD / 4; j++) orow_p[oc + 4 * j] = lq_st<TK>(o[j] / l);
    }
}

template <typename TK, int HD>
static lq_status launch_prefill(void *out, const float *q, int64_t ldq, const void *kc, const void *vc,
                                int64_t seq_stride, int B, int T, int pos0, int nh, int nkv, int window,
                                cudaStream_t s) {
    size_t smem = prefill_smem_bytes<HD>();
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: bytes allowed on each device */
    if (smem > 48 * 1024)
        LQ_CUDA_RET(lq_smem_optin_current(attn_prefill_kernel<TK, HD>, (int)smem, optin),
                    "cudaFuncSetAttribute(attn_prefill_kernel shared memory)");
    dim3 grid((unsigned)((T + PF_BQ - 1) / PF_BQ), (unsigned)nh, (unsigned)B);
    attn_prefill_kernel<TK, HD><<<grid, PF_THREADS, smem, s>>>((TK *)out, q, ldq, (const TK *)kc, (const TK *)vc,
                                                              seq_stride, T, pos0, nh, nkv, window,
                                                              (float)(1.0 / sqrt((double)HD)));
    LQ_LAUNCH_RET("attn_prefill_kernel");
    return LQ_OK;
}

#define LQ_HD_SWITCH(hd, what, ...)                                                               \
    switch (hd) {                                                                                 \
    case 8: { constexpr int HD = 8; __VA_ARGS__; } break;                                         \
    case 16: { constexpr int HD = 16; __VA_ARGS__; } break;                                       \
    case 32: { constexpr int HD = 32; __VA_ARGS__; } break;                                       \
    case 64: { constexpr int HD = 64; __VA_ARGS__; } break;                                       \
    case 128: { constexpr int HD = 128; __VA_ARGS__; } break;                                     \
    case 256: { constexpr int HD = 256; __VA_ARGS__; } break;                                     \
    default: return lq_error(LQ_ERR_UNSUPPORTED, "%s: head_dim %d (supported: 8, 16, 32, 64, 128, 256)", (what), (hd)); \
    }

static lq_status check_heads(const char *what, int B, int nh, int nkv) {
    LQ_RETURN_IF(nkv < 1 || nh < nkv || nh % nkv != 0, LQ_ERR_ARG, "%s: %d query heads over %d KV heads", what, nh,
                 nkv);
    LQ_RETURN_IF(B < 1 || B > 65535 || nh > 65535, LQ_ERR_ARG, "%s: B=%d heads=%d exceed the grid", what, B, nh);
    return LQ_OK;
}

extern "C" lq_status lq_attention_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                            const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                            int pos0, int n_heads, int n_kv, int hd, int window, void *stream);

extern "C" lq_status lq_attention_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                       const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                       int pos0, int n_heads, int n_kv, int hd, int window, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_FORWARD(check_heads("lq_attention_cuda", B, n_heads, n_kv));
    LQ_RETURN_IF(pos0 < 0, LQ_ERR_ARG, "lq_attention_cuda: pos0 %d", pos0);
    if (ldq == 0) ldq = (int64_t)n_heads * hd;
    /* FlashAttention-2-style kernel (kernels/attention_fa_cuda.cu) for 16-bit caches, head_dim 32/64/128;
       the fp32-unit kernel below for what it refuses (the WMMA kernel it replaced: kernels/dev/) */
    lq_status fa = lq_attention_fa_cuda(out, q, ldq, k_cache, v_cache, kv_dtype, seq_stride, B, T, pos0, n_heads, n_kv,
                                        hd, window, stream);
    if (fa != LQ_ERR_UNSUPPORTED) return fa;
    return lq_attention_simt_cuda(out, q, ldq, k_cache, v_cache, kv_dtype, seq_stride, B, T, pos0, n_heads, n_kv, hd,
                                  window, stream);
}

/* The fp32-unit prefill kernel for any cache dtype and head_dim: the path for
 * fp32 caches and head_dims the tensor-core kernel does not take. Not in the
 * public header; kernels/dev/bench_attention_fa.cu times the tensor-core
 * kernel against it. */
extern "C" lq_status lq_attention_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                            const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                            int pos0, int n_heads, int n_kv, int hd, int window, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_FORWARD(check_heads("lq_attention_cuda", B, n_heads, n_kv));
    if (ldq == 0) ldq = (int64_t)n_heads * hd;
    lq_status st = LQ_OK;
    LQ_DISPATCH(kv_dtype, "lq_attention_cuda",
                LQ_HD_SWITCH(hd, "lq_attention_cuda",
                             st = (launch_prefill<TE, HD>(out, q, ldq, k_cache, v_cache, seq_stride, B, T, pos0,
                                                         n_heads, n_kv, window, lq_stream(stream)))));
    return st;
}

/* ---------------- decode ----------------
 *
 * Two kernels compute lq_attention_decode_cuda:
 *
 *  - tensor cores (fp16/bf16 caches, head_dim 16/32/64/128/256; the case
 *    that matters): attn_decode_mma_kernel below.
 *  - fp32 units (fp32 caches, head_dim 8): attn_decode_kernel +
 *    attn_decode_reduce_kernel, the previous design (v2), kept as the
 *    fallback and, through lq_attention_decode_simt_cuda, for comparison.
 *
 * Why the tensor cores, in a memory-bound kernel: v2 re-read q and the
 * probabilities from shared memory for every FMA (~500 LDS + ~512 FFMA per
 * thread per 32 KB tile, checked in the PTX). The shared-memory pipe took
 * about as long as the tile's DRAM transfer, and v2 did not overlap them
 * (copy the tile, wait, compute), which is why it stopped at 52-73% of the
 * copy bandwidth. With mma.sync m16n8k16 a 16-key x 128-dim step of a warp
 * is 8 ldmatrix + 8 mma for the scores and the same again for P.V, about
 * 150 instructions per 8 KB of K+V. The math becomes ~5-10% of the
 * issue slots, and the kernel does little but keep loads in flight.
 *
 * Layout (S^T = K Q^T, O^T = V^T P^T): keys (scores) or dims (output) are
 * the m = 16 side and the block's query heads the n = 8 side, so GQA up to 8
 * heads costs one n-tile (G = 4 for Llama 3 wastes half of n, for free). q^T
 * is a B fragment held in registers for the whole kernel; K (row-major A) and
 * V^T (A through ldmatrix.trans) come from shared memory; the probabilities
 * go from the score accumulators to the B fragment of P.V in registers
 * (movmatrix.trans, no shared-memory round trip). q and P are rounded to the
 * cache dtype (tensor-core operands, as in the prefill kernel); scores,
 * softmax statistics and O stay fp32; l sums the rounded P that P.V uses.
 *
 * Pipeline: every warp owns its own ring of S stages (KW keys of K and V
 * each) and streams its own tiles (tiles w, w+W, ... of the block's
 * split) with cp.async: the ring is filled with the first S tiles, and once
 * tile i is computed its stage takes tile i+S (S-1 tiles in flight during
 * every tile's math); no __syncthreads sits in the loop (a warp waits only
 * for its own copies: cp.async.wait_group + __syncwarp). Keys past the split are
 * zero-filled by cp.async (src-size 0), never read: no NaN from unwritten
 * rows. At the end the W warps' (m, l, O) merge in shared memory.
 *
 * Splits: the block of (split, KV head x up to 8 query heads, sequence)
 * takes a chunk of max(ceil(n / n_splits), W KW) keys (whole KW tiles) of
 * the n visible ones, so a short context uses fewer splits than were launched
 * (the rest exit at once): one launch / one captured graph serves every
 * position, and a 512-key step costs one DRAM round trip, not dozens of
 * tiny splits. The last block of a (head group, sequence) to finish merges
 * all splits in split order (deterministic) — no second kernel. It knows it
 * is last from a counter in the workspace (one atomicAdd per split); the
 * counter carries a tag in its high word, so a never-initialized (or
 * poisoned) workspace needs no memset (dm_arrive), and the last block resets
 * it for the next call or graph replay. Launched with PDL (cuda_common.cuh)
 * like the rest of the decode path: its blocks become resident as the
 * previous kernel's blocks leave their SMs and, before the PDL wait, fill
 * their rings with the cache rows no kernel of this step writes (every row
 * but p: the whole first S tiles of a warp whose tiles end before p), so the
 * first DRAM round trip overlaps the previous kernel's tail (LQ_DECODE_EARLY=k
 * fills only k stages early, 0 none: all lost in session 13; L2 prefetches of
 * the first tiles, and in session 12 of the tiles after the ring, both lost to
 * it and are gone).
 * Warps per block W: 8 where the 8 rings fit the device's per-block shared
 * memory (head_dim <= 128 on sm_90: 8 rings of ~26 KB, one block per SM),
 * else 4 (decode_warps); splits fill whole waves of one block per SM
 * (lq_attention_decode_splits).
 *
 * Measured (H200, graph timing, fp16, 32 q / 8 kv heads, hd 128; bench/results/
 * 2026-12-02-h200-attn-merge/call3/attn.txt, the ring filled before the wait,
 * against the L2 prefetch of before in the same run): 1 x 1k 5.1 us (6.2),
 * 1 x 8k 13.1 us = 61% of copy bandwidth (14.7), 1 x 32k 36.3 us = 88% (39.5),
 * 16 x 8k 128.9 us = 99.5% (132.3), 16 x 32k 511 us = 100% (515). Session 12 (the split count fenced by
 * thread 0, the merge's loads all in flight; 2026-12-02-h200-attn-pf/call5, call7): 1 x 8k 12.7 us = 63%,
 * 1 x 16k 20.2-20.4 (78-79%), 1 x 32k 35.5-36.3 (88-90%); a plain read of 1 x 8k's bytes takes 7.8 us.
 * Session 13 (the warp merge's rows padded; 2026-12-02-h200-s13/call5/attn_all.txt): 1 x 8k 12.2 us (66%),
 * 1 x 16k 19.9 (81%; 78.7-81.1% over the session's machines), 1 x 32k 35.6 (91%), batch >= 8 at >= 8k 98-103%
 * (copy 4.16 TB/s there; a read-only kernel can pass it). Splits merged in thread-block clusters instead of
 * the workspace: kernels/dev/attn_cluster_merge.patch (not kept: the H200 runs only 7 clusters of 16 at once).
 * Caches of >= 12288 positions take the register-stage instantiation (decode_regtile; call6/attn.txt):
 * 1 x 16k 19.9 -> 19.5 us (81.7%), 1 x 32k 35.5 -> 34.7 (91.7%).
 * Reasoning and alternatives: kernels/dev/attention_notes.md. */

#define DM_WARPS 4 /* warps per block (each with its own pipeline) where 8 do not fit: decode_warps */
#define DM_HEADS 8 /* query heads per block: the n = 8 side of m16n8k16 */
#define DM_TAG 0x6c714154ull /* "lqAT": high word of a live split counter */
#define DM_MERGE_ALL 16      /* up to this many splits the last block loads every partial at once (decode_merge_all) */

/* Per head_dim and W warps: KW keys per warp stage (~8 KB of K+V, at least
 * one 16-key m-tile), S stages, shared-memory rows padded by 16 bytes
 * (ldmatrix reads 8 rows at once: an odd number of 16-byte units per row
 * keeps them in distinct banks). head_dim 256 uses 2 stages and 4 warps so a
 * block fits the 163 KB an A100 (sm_80) allows; hd 128 with 8 warps takes
 * 204 KB: one block per H200 SM (the 227 KB opt-in limit). */
template <int HD, int W = DM_WARPS> struct dm_geom {
    static constexpr int KW = HD >= 128 ? 16 : HD == 64 ? 32 : HD == 32 ? 32 : 64;
    static constexpr int S = HD == 256 ? 2 : 3;
    static constexpr int LDR = HD + 8;                  /* elements per shared row */
    static constexpr int STAGE = 2 * KW * LDR;          /* elements: K tile, then V tile */
    static constexpr int WARP = S * STAGE;              /* elements per warp ring */
    static constexpr int SMEM = W * WARP * 2;           /* bytes (16-bit elements) */
    /* the warp merge's O rows: HD + 4 floats apart, so that the O^T fragment stores (lane 4 gid + tig to row
     * 2 tig, column gid) fall in 32 distinct banks (a stride of HD put the 4 tig on the same 8) */
    static constexpr int ORW = HD + 4;
    static constexpr int MERGE = (W * DM_HEADS * ORW + 2 * W * DM_HEADS) * 4;
    static_assert(HD % 16 == 0 && KW % 16 == 0 && (KW * HD / 8) % 32 == 0, "decode mma geometry");
    static_assert(SMEM >= MERGE, "the warp merge reuses the stage buffers");
};

/* transpose an 8x8 16-bit matrix held one 32-bit pair per lane (row lane/4) */
__device__ __forceinline__ uint32_t dm_trans(uint32_t x) {
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

/* The 16-bit operand type: pack, mma (cuda_common.cuh). */
template <typename TK> using dm_op = lq_mma16<TK>;

/* One warp's copies of keys k0 .. k0+KW-1 (those < s1; the rest zero-filled)
 * of K and V into one stage. Lane i copies 16-byte vectors i, i+32, ... */
template <typename TK, int HD>
__device__ __forceinline__ void dm_load(TK *ks, const TK *kb, const TK *vb, int k0, int s1, int kvd, int lane) {
    typedef dm_geom<HD> Gm;
    constexpr int RV = HD / 8, N = Gm::KW * RV / 32;
    TK *vs = ks + Gm::KW * Gm::LDR;
#pragma unroll
    for (int j = 0; j < N; j++) {
        int i = lane + 32 * j, r = i / RV, c = (i % RV) * 8, key = k0 + r;
        bool ok = key < s1;
        int64_t off = (int64_t)(ok ? key : k0) * kvd + c; /* k0 < s1: always a real row */
        lq_cp16(ks + r * Gm::LDR + c, kb + off, ok ? 16 : 0);
        lq_cp16(vs + r * Gm::LDR + c, vb + off, ok ? 16 : 0);
    }
}

/* Stages a .. b-1 of a warp's first S tiles (w, w + W, ... of the split at s0) into its ring, one commit group
 * each (empty past the warp's nt tiles: the group count stays in step with the loop's waits). */
template <typename TK, int HD, int W>
__device__ __forceinline__ void dm_fill(TK *ring, const TK *kb, const TK *vb, int s0, int s1, int kvd, int warp,
                                        int lane, int nt, int a, int b) {
    typedef dm_geom<HD, W> Gm;
#pragma unroll
    for (int st = 0; st < Gm::S; st++) {
        if (st < a || st >= b) continue;
        if (st < nt) dm_load<TK, HD>(ring + st * Gm::STAGE, kb, vb, s0 + (warp + st * W) * Gm::KW, s1, kvd, lane);
        lq_cp_commit();
    }
}

/* The register stage of the long-context instantiation (RT > 0): a warp's tile after its ring read into
 * registers before the PDL wait, lane i holding the 16-byte vectors dm_load would copy (keys past s1 zero), and
 * stored into the ring once its first stages are consumed, so more of a split is asked for before the wait.
 * 16 uint4 (64 registers) per lane and tile at hd 128. */
template <typename TK, int HD>
__device__ __forceinline__ void dm_ldreg(uint4 *r, const TK *kb, const TK *vb, int k0, int s1, int kvd, int lane) {
    typedef dm_geom<HD> Gm;
    constexpr int RV = HD / 8, N = Gm::KW * RV / 32;
#pragma unroll
    for (int j = 0; j < N; j++) {
        const int i = lane + 32 * j, row = i / RV, c = (i % RV) * 8, key = k0 + row;
        r[j] = r[N + j] = make_uint4(0u, 0u, 0u, 0u);
        if (key < s1) {
            const int64_t off = (int64_t)key * kvd + c;
            r[j] = __ldcs(reinterpret_cast<const uint4 *>(kb + off));
            r[N + j] = __ldcs(reinterpret_cast<const uint4 *>(vb + off));
        }
    }
}
template <typename TK, int HD> __device__ __forceinline__ void dm_streg(TK *ks, const uint4 *r, int lane) {
    typedef dm_geom<HD> Gm;
    constexpr int RV = HD / 8, N = Gm::KW * RV / 32;
    TK *vs = ks + Gm::KW * Gm::LDR;
#pragma unroll
    for (int j = 0; j < N; j++) {
        const int i = lane + 32 * j, row = i / RV, c = (i % RV) * 8;
        *reinterpret_cast<uint4 *>(ks + row * Gm::LDR + c) = r[j];
        *reinterpret_cast<uint4 *>(vs + row * Gm::LDR + c) = r[N + j];
    }
}

/* Count one finished split of a (head group, sequence); true for the last
 * of n. A counter at rest holds DM_TAG << 32 (count 0): each split adds 1
 * (one atomic, one L2 round trip, no retries however many splits finish
 * together), and the one that sees count n - 1 is last and puts the counter
 * back to rest. An untagged value means a fresh or poisoned workspace, or a
 * slot that held another layout's fp32 partials: then every split of this
 * call sees it untagged (they all add to the same garbage) and they count on
 * a second slot c2 with compare-and-swap instead, reading any untagged value
 * there as 0 (slow under contention, but only on such a first call); the
 * last one puts both slots to rest. */
__device__ __forceinline__ bool dm_arrive_cas(unsigned long long *c, int n) {
    unsigned long long old = *(volatile unsigned long long *)c, seen;
    unsigned cnt;
    do {
        seen = old;
        cnt = (seen >> 32) == DM_TAG ? (unsigned)seen + 1u : 1u;
        old = atomicCAS(c, seen, (DM_TAG << 32) | (cnt >= (unsigned)n ? 0u : cnt));
    } while (old != seen);
    return cnt >= (unsigned)n;
}
__device__ __forceinline__ bool dm_arrive(unsigned long long *c, unsigned long long *c2, int n) {
    const unsigned long long old = atomicAdd(c, 1ull);
    if ((old >> 32) == DM_TAG && (unsigned)old < (unsigned)n) {
        if ((unsigned)old + 1u < (unsigned)n) return false;
        atomicExch(c, DM_TAG << 32); /* every split has counted: nobody else touches it in this call */
        return true;
    }
    if (!dm_arrive_cas(c2, n)) return false;
    atomicExch(c, DM_TAG << 32);
    return true; /* c2 is at rest already (dm_arrive_cas) */
}

/* dm_arrive with the count itself the release and the acquire (the default, rel = 2): one atom.acq_rel.gpu by
 * thread 0 after the block's barrier instead of fence + relaxed atomic + fence (the barrier orders every
 * thread's partials before it, as for the fence). Session 14, two rounds against the fences: 1 x 8k 12.4 ->
 * 12.1 us, 16k 19.7 -> 19.4, 32k 35.4 -> 35.1, 8 x 8k 67.4 -> 67.1 (bench/results/2026-12-02-h200-s14/call1).
 * The rare untagged route keeps the fences around the CAS. */
__device__ __forceinline__ bool dm_arrive_ar(unsigned long long *c, unsigned long long *c2, int n) {
    unsigned long long old;
    asm volatile("atom.acq_rel.gpu.global.add.u64 %0, [%1], 1;\n" : "=l"(old) : "l"(c) : "memory");
    if ((old >> 32) == DM_TAG && (unsigned)old < (unsigned)n) {
        if ((unsigned)old + 1u < (unsigned)n) return false;
        atomicExch(c, DM_TAG << 32); /* every split has counted: nobody else touches it in this call */
        return true;
    }
    /* this atomic acquired every earlier count of this slot; the CAS route between fences as dm_arrive's */
    asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
    const bool last = dm_arrive_cas(c2, n);
    asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
    if (!last) return false;
    atomicExch(c, DM_TAG << 32);
    return true;
}

/* Phase stamps for kernels/dev/bench_attn_trace.cu, which includes this file with LQ_ATTN_TRACE defined:
 * thread 0 of every block writes %globaltimer (ns) at each phase into lq_dm_trace, one row of DM_TRACE_N per
 * (launch, block); the launch is the rotated cache copy the block reads ((kc - base) / stride), so no
 * atomic or argument is added. Without LQ_ATTN_TRACE (every build of make) these are empty. */
#define DM_TRACE_N 8 /* entry, before the wait, after it, warp 0's loop end, all warps' loop end, partials
                        written, count returned, exit */
#ifdef LQ_ATTN_TRACE
__device__ unsigned long long *lq_dm_trace;
__device__ const char *lq_dm_trace_base;
__device__ long long lq_dm_trace_stride;
__device__ int lq_dm_trace_launches;
__device__ __forceinline__ unsigned long long dm_gtime(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
#define DM_TRACE_INIT(kc)                                                                                      \
    unsigned long long *dm_tr = nullptr;                                                                       \
    if (threadIdx.x == 0 && lq_dm_trace) {                                                                     \
        const long long sl = ((const char *)(kc) - lq_dm_trace_base) / lq_dm_trace_stride;                     \
        const unsigned blk = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z),                   \
                       nblk = gridDim.x * gridDim.y * gridDim.z;                                               \
        if (sl >= 0 && sl < lq_dm_trace_launches) dm_tr = lq_dm_trace + ((size_t)sl * nblk + blk) * DM_TRACE_N; \
    }
#define DM_TRACE(i)                                                                                            \
    do {                                                                                                       \
        if (dm_tr) dm_tr[i] = dm_gtime();                                                                      \
    } while (0)
#else
#define DM_TRACE_INIT(kc)
#define DM_TRACE(i) \
    do {            \
    } while (0)
#endif

/* Fragment roles (lane = 4 gid + tig, mma.sync m16n8k16 layouts):
 *   scores  sc[mt] = S^T (16 keys x 8 heads): [0],[1] key gid, heads 2tig, 2tig+1; [2],[3] key gid+8
 *   output  o[dm]  = O^T (16 dims x 8 heads): [0],[1] dim dm*16+gid, heads 2tig, 2tig+1; [2],[3] dim +8
 * so a lane's softmax state is that of heads 2tig and 2tig+1 (m0/l0, m1/l1);
 * the maxima are shared by the 8 lanes of a tig (xor 4, 8, 16), the sums
 * stay per lane (over its own keys) until the end. */
template <typename TK, int HD, int W, int RT>
__global__ void __launch_bounds__(32 * W, 1)
    attn_decode_mma_kernel(TK *out, float *ws_o, float *ws_ml, unsigned long long *ctr, const float *q, int64_t ldq,
                           const TK *kc, const TK *vc, int64_t seq_stride, const int32_t *pos, int nh, int nkv,
                           int window, int ns, float scale_log2, int early, int rel, int merge_all) {
    typedef dm_geom<HD, W> Gm;
    typedef dm_op<TK> Op;
    constexpr int KW = Gm::KW, S = Gm::S, LDR = Gm::LDR, MT = KW / 16, NK = HD / 16;
    extern __shared__ __align__(16) unsigned char dm_smem[];
    __shared__ int last_s;

    /* launched with PDL (lq_launch_pdl): let the next kernel's blocks in early. Before waiting for the
     * previous kernel only what no kernel of this step writes is read: pos (uploaded before the step's
     * first kernel, which every kernel of the chain started after) and the cache rows other than p (the
     * ring fill below). q, row p and the workspace wait. */
    lq_pdl_trigger();
    DM_TRACE_INIT(kc);
    DM_TRACE(0);
    const int split = blockIdx.x, hg = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
    const int group = nh / nkv, n_hg = (group + DM_HEADS - 1) / DM_HEADS;
    const int kvh = hg / n_hg, g0 = (hg % n_hg) * DM_HEADS, h0 = kvh * group + g0;
    const int gb = min(DM_HEADS, group - g0);
    const int kvd = nkv * HD;
    const int p = pos[b];
    const int lo = window > 0 ? max(0, p - window + 1) : 0, n = p + 1 - lo;
    /* chunk: whole KW tiles, at least one per warp; splits past the context end exit */
    int chunk = max((n + ns - 1) / ns, W * KW);
    chunk = (chunk + KW - 1) / KW * KW;
    const int ns_eff = (n + chunk - 1) / chunk;
    if (split >= ns_eff) {
        lq_pdl_wait(); /* every block waits before it exits: the chain's ordering is transitive */
        DM_TRACE(2);
        DM_TRACE(7);
        return;
    }
    const int s0 = lo + split * chunk, s1 = min(p + 1, s0 + chunk);
    const int ntile = (s1 - s0 + KW - 1) / KW;
    const int nt = warp < ntile ? (ntile - warp + W - 1) / W : 0; /* tiles warp, warp+W, ... */
    const TK *kb = kc + (int64_t)b * seq_stride + (int64_t)kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + (int64_t)kvh * HD;
    TK *ring = (TK *)dm_smem + warp * Gm::WARP;
    /* the whole ring (the warp's first S tiles) is filled before the wait when none of those keys is row
     * p (the one row the previous kernel writes; a warp's tiles rise in key order, so only its last can
     * hold p): these copies overlap the previous kernel's tail. Otherwise (or with early off) after it. */
    const int npre = min(nt, min(early, S)); /* early: stages filled before the wait (decode_early) */
    const bool pre = npre > 0 && s0 + (warp + (npre - 1) * W) * KW + KW - 1 < p;
    const int fa = pre ? min(early, S) : 0; /* the stages filled after the wait: fa .. S-1 */
    if (pre) dm_fill<TK, HD, W>(ring, kb, vb, s0, s1, kvd, warp, lane, nt, 0, fa);
    /* RT: tiles S .. S + RT - 1 into registers too, when the whole ring went early, the warp has all RT of them
     * and none holds row p */
    constexpr int NRV = 2 * KW * (HD / 8) / 32;
    uint4 rtile[RT > 0 ? RT : 1][NRV];
    const bool rs = RT > 0 && pre && fa == S && nt >= S + RT && s0 + (warp + (S + RT - 1) * W) * KW + KW - 1 < p;
#pragma unroll
    for (int t = 0; t < RT; t++)
        if (rs) dm_ldreg<TK, HD>(rtile[t], kb, vb, s0 + (warp + (S + t) * W) * KW, s1, kvd, lane);
    DM_TRACE(1);
    lq_pdl_wait();
    DM_TRACE(2);
    /* the rest (all of them without the early fill) start now: q's fragments are built while they fly */
    if (fa < S) dm_fill<TK, HD, W>(ring, kb, vb, s0, s1, kvd, warp, lane, nt, fa, S);
    /* q^T as the B fragment (k = dims, n = heads): lane holds head gid, dims 2tig, 2tig+1 (+8) */
    uint32_t qf[NK][2];
    {
        const float *qh = q + (int64_t)b * ldq + (int64_t)(h0 + (gid < gb ? gid : 0)) * HD;
        float r0, r1;
#pragma unroll
        for (int k = 0; k < NK; k++) {
            int d = k * 16 + 2 * tig;
            float x0 = 0.0f, x1 = 0.0f, x2 = 0.0f, x3 = 0.0f;
            if (gid < gb) x0 = qh[d], x1 = qh[d + 1], x2 = qh[d + 8], x3 = qh[d + 9];
            qf[k][0] = Op::pack(x0, x1, &r0, &r1);
            qf[k][1] = Op::pack(x2, x3, &r0, &r1);
        }
    }
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float o[NK][4];
#pragma unroll
    for (int k = 0; k < NK; k++) o[k][0] = o[k][1] = o[k][2] = o[k][3] = 0.0f;
    /* ldmatrix row addresses of this lane: K as A (keys x dims): matrices (keys 0-7 | 8-15) x (dims +0 | +8);
     * V^T as A through .trans (dims x keys): matrices (dims +0 | +8) x (keys 0-7 | 8-15) */
    const int krow = (lane & 7) + ((lane >> 3) & 1) * 8, kcol = (lane >> 4) * 8;
    const int vrow = (lane & 7) + (lane >> 4) * 8, vcol = ((lane >> 3) & 1) * 8;

    for (int i = 0; i < nt; i++) {
        lq_cp_wait<S - 1>(); /* this lane's copies of tile i have landed (S + i groups committed) ... */
        __syncwarp();     /* ... and the whole warp's */
        const TK *Kt = ring + (i % S) * Gm::STAGE, *Vt = Kt + KW * LDR;
        const int k0 = s0 + (warp + i * W) * KW;
        float sc[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            sc[mt][0] = sc[mt][1] = sc[mt][2] = sc[mt][3] = 0.0f;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                uint32_t a[4];
                lq_ldsm4(a, Kt + (mt * 16 + krow) * LDR + k * 16 + kcol);
                Op::mma(sc[mt], a, qf[k][0], qf[k][1]);
            }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                bool ok = k0 + mt * 16 + gid + 8 * r < s1;
                sc[mt][2 * r] = ok ? sc[mt][2 * r] * scale_log2 : -INFINITY;
                sc[mt][2 * r + 1] = ok ? sc[mt][2 * r + 1] * scale_log2 : -INFINITY;
                mx0 = fmaxf(mx0, sc[mt][2 * r]);
                mx1 = fmaxf(mx1, sc[mt][2 * r + 1]);
            }
#pragma unroll
        for (int x = 4; x < 32; x <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, x));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, x));
        }
        /* key k0 < s1 is in every tile: the maxima are finite; exp2(-inf) = 0 for the first tile */
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float a0 = exp2f(m0 - mn0), a1 = exp2f(m1 - mn1);
        m0 = mn0;
        m1 = mn1;
        uint32_t pb[MT][2]; /* P^T as the B fragment (k = keys, n = heads) */
        float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float r0, r1;
                uint32_t x = Op::pack(exp2f(sc[mt][2 * r] - mn0), exp2f(sc[mt][2 * r + 1] - mn1), &r0, &r1);
                ps0 += r0;
                ps1 += r1;
                pb[mt][r] = dm_trans(x); /* (key gid, heads 2tig..) -> (keys 2tig.., head gid) */
            }
        l0 = l0 * a0 + ps0;
        l1 = l1 * a1 + ps1;
#pragma unroll
        for (int k = 0; k < NK; k++) {
            o[k][0] *= a0;
            o[k][1] *= a1;
            o[k][2] *= a0;
            o[k][3] *= a1;
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int k = 0; k < NK; k++) {
                uint32_t a[4];
                lq_ldsm4_t(a, Vt + (mt * 16 + vrow) * LDR + k * 16 + vcol);
                Op::mma(o[k], a, pb[mt][0], pb[mt][1]);
            }
        __syncwarp(); /* every lane has read tile i's stage: it takes tile i + S (S - 1 tiles stay in flight) */
        {
            int il = i + S;
            bool from_reg = false;
#pragma unroll
            for (int t = 0; t < RT; t++)
                if (rs && i == t) { /* tile S + t from registers; read at iteration S + t, after its __syncwarp */
                    dm_streg<TK, HD>(ring + (i % S) * Gm::STAGE, rtile[t], lane);
                    from_reg = true;
                }
            if (!from_reg && il < nt)
                dm_load<TK, HD>(ring + (i % S) * Gm::STAGE, kb, vb, s0 + (warp + il * W) * KW, s1, kvd, lane);
            lq_cp_commit(); /* possibly empty: keeps the group count in step */
        }
    }
    lq_cp_wait<0>();
    DM_TRACE(3);
#pragma unroll
    for (int x = 4; x < 32; x <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, x);
        l1 += __shfl_xor_sync(0xffffffffu, l1, x);
    }

    /* merge the warps (shared memory; the rings are dead): Ow (W, 8, HD), Mw, Lw (W, 8) */
    __syncthreads();
    DM_TRACE(4);
    constexpr int ORW = Gm::ORW;
    float *Ow = (float *)dm_smem, *Mw = Ow + W * DM_HEADS * ORW, *Lw = Mw + W * DM_HEADS;
    {
        float *ow = Ow + (warp * DM_HEADS + 2 * tig) * ORW + gid;
#pragma unroll
        for (int k = 0; k < NK; k++) {
            ow[k * 16] = o[k][0];
            ow[ORW + k * 16] = o[k][1];
            ow[k * 16 + 8] = o[k][2];
            ow[ORW + k * 16 + 8] = o[k][3];
        }
        if (gid == 0) {
            Mw[warp * DM_HEADS + 2 * tig] = m0; /* -inf, 0 for a warp without tiles */
            Mw[warp * DM_HEADS + 2 * tig + 1] = m1;
            Lw[warp * DM_HEADS + 2 * tig] = l0;
            Lw[warp * DM_HEADS + 2 * tig + 1] = l1;
        }
    }
    __syncthreads();
    const bool single = ns_eff == 1;
    for (int i = tid; i < gb * HD; i += (32 * W)) {
        int g = i / HD, d = i % HD;
        float M = -INFINITY, L = 0.0f, acc = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++) M = fmaxf(M, Mw[w * DM_HEADS + g]); /* finite: warp 0 has a tile */
#pragma unroll
        for (int w = 0; w < W; w++) {
            float e = exp2f(Mw[w * DM_HEADS + g] - M);
            L = fmaf(e, Lw[w * DM_HEADS + g], L);
            acc = fmaf(e, Ow[(w * DM_HEADS + g) * ORW + d], acc);
        }
        int64_t bh = (int64_t)b * nh + h0 + g;
        if (single) {
            out[bh * HD + d] = lq_st<TK>(acc / L);
        } else {
            ws_o[(bh * ns + split) * HD + d] = acc;
            if (d == 0) {
                ws_ml[(bh * ns + split) * 2] = M; /* log2 units */
                ws_ml[(bh * ns + split) * 2 + 1] = L;
            }
        }
    }
    if (single) {
        DM_TRACE(7);
        return;
    }
    DM_TRACE(5);

    /* the last split of this (head group, sequence) to finish merges them all, in split order. rel 2: the
     * count by thread 0 after the barrier is itself the release and the acquire (dm_arrive_ar); rel 1: one
     * fence by thread 0 after the barrier (a release, cumulative over the block's partials, which the
     * barrier ordered before it) and one after the count (the acquire, which the second barrier extends
     * to the merging threads); rel 0: a __threadfence by every thread on both sides */
    if (!rel) __threadfence(); /* this block's partials are visible before it is counted */
    __syncthreads();
    if (tid == 0) {
        const int64_t slot = (int64_t)b * gridDim.y + hg, slots = (int64_t)gridDim.z * gridDim.y;
        if (rel == 2) {
            last_s = dm_arrive_ar(ctr + slot, ctr + slots + slot, ns_eff);
        } else {
            if (rel) asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
            last_s = dm_arrive(ctr + slot, ctr + slots + slot, ns_eff);
            if (rel) asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
        }
        DM_TRACE(6);
    }
    __syncthreads();
    if (!last_s) {
        DM_TRACE(7);
        return;
    }
    if (!rel) __threadfence();
    if (ns_eff <= merge_all) {
        /* thread: 2 dims of one head; every split's (m, l) and O in flight at once (one L2 round trip, not
         * one per 8 splits as below), then the maximum, then the weighted sums in split order */
        for (int i = tid; i < gb * (HD / 2); i += 32 * W) {
            const int g = i / (HD / 2), d = (i % (HD / 2)) * 2;
            const int64_t bh = (int64_t)b * nh + h0 + g;
            const float2 *ml = (const float2 *)(ws_ml + bh * ns * 2);
            const float2 *op = (const float2 *)(ws_o + bh * ns * HD + d);
            float2 st[DM_MERGE_ALL], v[DM_MERGE_ALL];
#pragma unroll
            for (int sp = 0; sp < DM_MERGE_ALL; sp++)
                if (sp < ns_eff) st[sp] = __ldcg(ml + sp), v[sp] = __ldcg(op + (int64_t)sp * (HD / 2));
            float M = -INFINITY, L = 0.0f, ax = 0.0f, ay = 0.0f;
#pragma unroll
            for (int sp = 0; sp < DM_MERGE_ALL; sp++)
                if (sp < ns_eff) M = fmaxf(M, st[sp].x);
#pragma unroll
            for (int sp = 0; sp < DM_MERGE_ALL; sp++)
                if (sp < ns_eff) {
                    const float e = exp2f(st[sp].x - M);
                    L = fmaf(e, st[sp].y, L);
                    ax = fmaf(e, v[sp].x, ax);
                    ay = fmaf(e, v[sp].y, ay);
                }
            TK *orow = out + bh * HD + d;
            orow[0] = lq_st<TK>(ax / L);
            orow[1] = lq_st<TK>(ay / L);
        }
        DM_TRACE(7);
        return;
    }
    /* thread: 4 dims of one head over every split, one pass (online rescaling, fixed split order): the
     * loads of (m, l) and O of a split do not wait on the previous split's, so they are in flight together */
    for (int i = tid; i < gb * (HD / 4); i += 32 * W) {
        int g = i / (HD / 4), d = (i % (HD / 4)) * 4;
        int64_t bh = (int64_t)b * nh + h0 + g;
        const float2 *ml = (const float2 *)(ws_ml + bh * ns * 2);
        const float4 *op = (const float4 *)(ws_o + bh * ns * HD + d);
        float M = -INFINITY, L = 0.0f;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
        for (int sp = 0; sp < ns_eff; sp++) {
            const float2 st = __ldcg(ml + sp); /* (max in log2 units, sum); a split always has a finite max */
            const float4 v = __ldcg(op + (int64_t)sp * (HD / 4));
            const float Mn = fmaxf(M, st.x), a = exp2f(M - Mn), e = exp2f(st.x - Mn);
            M = Mn;
            L = fmaf(L, a, e * st.y);
            acc.x = fmaf(acc.x, a, e * v.x);
            acc.y = fmaf(acc.y, a, e * v.y);
            acc.z = fmaf(acc.z, a, e * v.z);
            acc.w = fmaf(acc.w, a, e * v.w);
        }
        TK *orow = out + bh * HD + d;
        orow[0] = lq_st<TK>(acc.x / L);
        orow[1] = lq_st<TK>(acc.y / L);
        orow[2] = lq_st<TK>(acc.z / L);
        orow[3] = lq_st<TK>(acc.w / L);
    }
    DM_TRACE(7);
}

/* ---- the fp32-unit decode kernel (v2): fp32 caches, head_dim 8 ---- */

#define DC_THREADS 128
#define DC_GMAX 8 /* query heads per block (more GQA heads: more blocks) */

/* Tile geometry of the decode kernel for a cache type and head_dim: KT keys
 * per tile (16 KB of K, 16 KB of V, at most 128 keys), P threads per key in
 * the scoring phase (DP dims each), KS key slices in the P·V phase. */
template <typename TK, int HD> struct dc_geom {
    static constexpr int VEC = 16 / (int)sizeof(TK);           /* elements per 16-byte vector */
    static constexpr int RV = HD / VEC;                         /* vectors per row */
    static constexpr int ROWB = HD * (int)sizeof(TK);
    static constexpr int KT = ROWB <= 128 ? 128 : 16384 / ROWB;
    static constexpr int P = DC_THREADS / KT;
    static constexpr int DP = HD / P;
    static constexpr int DPT = HD > DC_THREADS ? HD / DC_THREADS : 1; /* output dims per thread */
    static constexpr int DW = HD / DPT;                               /* threads across head_dim */
    static constexpr int KS = DC_THREADS / DW;                        /* key slices in P·V */
    /* shared memory (bytes): K tile (rows padded by one vector against bank
     * conflicts), V tile, q, scores; the P·V partials reuse the K/V tiles */
    static constexpr int K_BYTES = KT * (RV + 1) * 16, V_BYTES = KT * RV * 16;
    static constexpr int Q_BYTES = DC_GMAX * HD * 4, S_BYTES = P * DC_GMAX * KT * 4;
    static constexpr int RED_BYTES = KS * DC_GMAX * HD * 4;
    static constexpr int TILE_BYTES = K_BYTES + V_BYTES > RED_BYTES ? K_BYTES + V_BYTES : RED_BYTES;
    static constexpr int SMEM = TILE_BYTES + Q_BYTES + S_BYTES;
    static_assert(HD % VEC == 0 && DP % VEC == 0, "head_dim vs 16-byte vectors");
    static_assert(SMEM <= 48 * 1024, "decode tile exceeds static shared memory");
};

/* One block per (context split, KV head x up to G of its query heads,
 * sequence). Per tile of KT keys: every thread issues its 16-byte loads of
 * the K and V tiles at once (memory-level parallelism is what a decode
 * kernel lives on), then scores (P threads per key, G heads each), a warp per
 * head updates the online softmax, and threads over head_dim accumulate P·V
 * from shared memory. Each split leaves an unnormalized output and its
 * (max, sum) for the merge kernel. */
template <typename TK, int HD, int G>
__global__ void __launch_bounds__(DC_THREADS)
    attn_decode_kernel(float *ws_o, float *ws_ml, const float *q, int64_t ldq, const TK *kc, const TK *vc,
                       int64_t seq_stride, const int32_t *pos, int nh, int nkv, int window, int ns, float scale) {
    typedef dc_geom<TK, HD> Gm;
    constexpr int KT = Gm::KT, P = Gm::P, DP = Gm::DP, VEC = Gm::VEC, RV = Gm::RV;
    constexpr int DPT = Gm::DPT, DW = Gm::DW, KS = Gm::KS;
    __shared__ __align__(16) unsigned char smem[Gm::SMEM];
    uint4 *Ks = (uint4 *)smem;                                  /* (KT, RV+1) vectors */
    uint4 *Vs = (uint4 *)(smem + Gm::K_BYTES);                  /* (KT, RV) vectors */
    float *red = (float *)smem;                                 /* (KS, G, HD), after the last tile */
    float *qs = (float *)(smem + Gm::TILE_BYTES);               /* (G, HD) */
    float *sc = (float *)(smem + Gm::TILE_BYTES + Gm::Q_BYTES); /* (P, G, KT) partial scores; [0] = probabilities */
    __shared__ float m_s[G], l_s[G], alpha_s[G];

    const int split = blockIdx.x, hg = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int group = nh / nkv, n_hg = (group + G - 1) / G;
    const int kvh = hg / n_hg, g0 = (hg % n_hg) * G, h0 = kvh * group + g0;
    const int gb = min(G, group - g0);
    const int kvd = nkv * HD;
    const int p = pos[b];
    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const int n = p + 1 - lo;
    int chunk = (n + ns - 1) / ns;
    chunk = (chunk + KT - 1) / KT * KT; /* whole tiles */
    const int s0 = lo + split * chunk, s1 = min(p + 1, s0 + chunk);
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;

    for (int i = tid; i < G * HD; i += DC_THREADS) {
        int g = i / HD, d = i % HD;
        qs[i] = g < gb ? q[(int64_t)b * ldq + (h0 + g) * HD + d] : 0.0f;
    }
    if (tid < G) {
        m_s[tid] = -INFINITY;
        l_s[tid] = 0.0f;
        alpha_s[tid] = 1.0f;
    }
    const int kk = tid % KT, part = tid / KT; /* scoring role */
    const int dsl = tid % DW, ks = tid / DW;  /* P·V role */
    float o[G][DPT];
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int j = 0; j < DPT; j++) o[g][j] = 0.0f;

    for (int k0 = s0; k0 < s1; k0 += KT) {
        const int nk = min(KT, s1 - k0);
        __syncthreads(); /* the previous tile (and qs/stats at the start) are settled */
        /* global -> shared without a trip through registers (cp.async, sm_80+): every
         * copy of the tile is issued before any is waited for, so a thread keeps all
         * of its 16-byte K and V vectors in flight at once (the register-staged
         * copy it replaces was unrolled by 4: two round trips per tile) */
        for (int i = tid; i < nk * RV; i += DC_THREADS) {
            int r = i / RV, c = i % RV;
            int64_t off = (int64_t)(k0 + r) * kvd + c * VEC;
            __pipeline_memcpy_async(&Ks[r * (RV + 1) + c], kb + off, 16);
            __pipeline_memcpy_async(&Vs[r * RV + c], vb + off, 16);
        }
        __pipeline_commit();
        __pipeline_wait_prior(0); /* this thread's copies have landed ... */
        __syncthreads();          /* ... and everyone's */
        if (kk < nk) {
            float acc[G];
#pragma unroll
            for (int g = 0; g < G; g++) acc[g] = 0.0f;
            const uint4 *kr = Ks + kk * (RV + 1) + part * (DP / VEC);
#pragma unroll 4
            for (int c = 0; c < DP / VEC; c++) {
                union {
                    uint4 u;
                    TK e[VEC];
                } ld;
                ld.u = kr[c];
                const int d0 = part * DP + c * VEC;
#pragma unroll
                for (int e = 0; e < VEC; e++) {
                    float kf = lq_ld(ld.e[e]);
#pragma unroll
                    for (int g = 0; g < G; g++) acc[g] = fmaf(qs[g * HD + d0 + e], kf, acc[g]);
                }
            }
#pragma unroll
            for (int g = 0; g < G; g++) sc[(part * G + g) * KT + kk] = acc[g];
        }
        __syncthreads();
        const int warp = tid >> 5, lane = tid & 31;
        for (int g = warp; g < gb; g += DC_THREADS / 32) {
            float v[(KT + 31) / 32], mx = -INFINITY;
#pragma unroll
            for (int i = 0; i < (KT + 31) / 32; i++) {
                int k = lane + 32 * i;
                float sv = -INFINITY;
                if (k < nk) {
                    sv = 0.0f;
#pragma unroll
                    for (int pp = 0; pp < P; pp++) sv += sc[(pp * G + g) * KT + k];
                    sv *= scale;
                }
                v[i] = sv;
                mx = fmaxf(mx, sv);
            }
            mx = lq_warp_max(mx);
            float m_old = m_s[g], m_new = fmaxf(m_old, mx), sum = 0.0f; /* m_new finite: nk >= 1 */
#pragma unroll
            for (int i = 0; i < (KT + 31) / 32; i++) {
                int k = lane + 32 * i;
                float e = expf(v[i] - m_new); /* -inf -> 0 */
                sum += e;
                if (k < KT) sc[g * KT + k] = e;
            }
            sum = lq_warp_sum(sum);
            if (lane == 0) {
                float a = expf(m_old - m_new);
                alpha_s[g] = a;
                l_s[g] = l_s[g] * a + sum;
                m_s[g] = m_new;
            }
        }
        __syncthreads();
        const TK *vt = (const TK *)Vs;
#pragma unroll
        for (int g = 0; g < G; g++) {
            float a = alpha_s[g];
#pragma unroll
            for (int j = 0; j < DPT; j++) o[g][j] *= a;
        }
        for (int k = ks; k < nk; k += KS) {
            float vv[DPT];
#pragma unroll
            for (int j = 0; j < DPT; j++) vv[j] = lq_ld(vt[k * HD + dsl + j * DW]);
#pragma unroll
            for (int g = 0; g < G; g++) {
                float pg = sc[g * KT + k];
#pragma unroll
                for (int j = 0; j < DPT; j++) o[g][j] = fmaf(pg, vv[j], o[g][j]);
            }
        }
    }

    /* workspace layout: ws_o (B, nh, ns, HD), ws_ml (B, nh, ns, 2) = (max, sum) */
    if (KS > 1) {
        __syncthreads(); /* the tiles are dead: reuse them for the key-slice partials */
#pragma unroll
        for (int g = 0; g < G; g++) red[(ks * G + g) * HD + dsl] = o[g][0];
        __syncthreads();
        for (int i = tid; i < gb * HD; i += DC_THREADS) {
            int g = i / HD, d = i % HD;
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < KS; k++) s += red[(k * G + g) * HD + d];
            ws_o[(((int64_t)b * nh + h0 + g) * ns + split) * HD + d] = s;
        }
    } else {
        for (int g = 0; g < gb; g++)
#pragma unroll
            for (int j = 0; j < DPT; j++) ws_o[(((int64_t)b * nh + h0 + g) * ns + split) * HD + dsl + j * DW] = o[g][j];
    }
    if (tid < gb) {
        float *ml = ws_ml + (((int64_t)b * nh + h0 + tid) * ns + split) * 2;
        ml[0] = m_s[tid]; /* -inf and 0 for an empty split */
        ml[1] = l_s[tid];
    }
}

/* Merge the splits of one (head, sequence): out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M)
 * over the non-empty splits (l_s > 0). Parallel over the splits: at batch 1
 * there are dozens to hundreds of them, and a loop over them in one thread
 * per dimension (the first version) was a chain of dependent L2 round trips
 * that cost more than the attention itself. Pass 1: block max M; pass 2:
 * block sum L; pass 3: thread (slice, 4 dims) sums splits slice, slice + NSL,
 * ... (loads independent of the weights, so they stay in flight), then the
 * NSL slices are added in shared memory. */
#define DR_THREADS 256
template <typename TK, int HD>
__global__ void __launch_bounds__(DR_THREADS)
    attn_decode_reduce_kernel(TK *out, const float *ws_o, const float *ws_ml, int nh, int ns) {
    constexpr int VD = HD / 4, NSL = DR_THREADS / VD; /* threads across head_dim (4 dims each), split slices */
    static_assert(HD % 4 == 0 && DR_THREADS % VD == 0, "merge geometry");
    __shared__ float red[NSL * HD]; /* 4 * DR_THREADS floats */
    __shared__ float wred[DR_THREADS / 32], ML[2];
    const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t base = (int64_t)b * nh + h;
    const float *ml = ws_ml + base * ns * 2;
    float mx = -INFINITY;
    for (int s = tid; s < ns; s += DR_THREADS)
        if (ml[2 * s + 1] > 0.0f) mx = fmaxf(mx, ml[2 * s]);
    mx = lq_warp_max(mx);
    if (lane == 0) wred[warp] = mx;
    __syncthreads();
    if (tid == 0) {
        float m = wred[0];
        for (int i = 1; i < DR_THREADS / 32; i++) m = fmaxf(m, wred[i]);
        ML[0] = m;
    }
    __syncthreads(); /* ML[0] is set; wred was read by thread 0 before this barrier: free again */
    const float M = ML[0];
    float l = 0.0f;
    for (int s = tid; s < ns; s += DR_THREADS)
        if (ml[2 * s + 1] > 0.0f) l += ml[2 * s + 1] * expf(ml[2 * s] - M);
    l = lq_warp_sum(l);
    if (lane == 0) wred[warp] = l;
    __syncthreads();
    if (tid == 0) {
        float t = 0.0f;
        for (int i = 0; i < DR_THREADS / 32; i++) t += wred[i];
        ML[1] = t;
    }
    const int dv = tid % VD, sl = tid / VD;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
    for (int s = sl; s < ns; s += NSL) {
        const float *o = ws_o + (base * ns + s) * HD + dv * 4; /* in bounds for every s < ns */
        float lv = ml[2 * s + 1], mv = ml[2 * s], o0 = o[0], o1 = o[1], o2 = o[2], o3 = o[3];
        if (lv > 0.0f) { /* empty splits (m = -inf, l = 0) contribute nothing */
            float wgt = expf(mv - M);
            acc[0] = fmaf(o0, wgt, acc[0]);
            acc[1] = fmaf(o1, wgt, acc[1]);
            acc[2] = fmaf(o2, wgt, acc[2]);
            acc[3] = fmaf(o3, wgt, acc[3]);
        }
    }
#pragma unroll
    for (int j = 0; j < 4; j++) red[sl * HD + dv * 4 + j] = acc[j];
    __syncthreads(); /* red complete, ML[1] visible */
    const float L = ML[1];
    for (int d = tid; d < HD; d += DR_THREADS) {
        float a = 0.0f;
        for (int k = 0; k < NSL; k++) a += red[k * HD + d];
        out[base * HD + d] = lq_st<TK>(a / L);
    }
}

/* Workspace: split counters 2 x (B, n_heads) u64 (the mma kernel's: B x head
 * groups of them used, and as many second slots, see dm_arrive; rounded up to 256 bytes), then ws_o (B, n_heads,
 * n_splits, hd) fp32 partial outputs, ws_ml (B, n_heads, n_splits, 2) fp32
 * (max, sum) per split. Never needs clearing: see dm_arrive. */
static size_t dc_ctr_bytes(int B, int nh) { return ((size_t)B * (size_t)nh * 16 + 255) / 256 * 256; }

extern "C" size_t lq_attention_decode_workspace(int B, int n_heads, int hd, int n_splits) {
    return dc_ctr_bytes(B, n_heads) +
           sizeof(float) * (size_t)B * (size_t)n_heads * (size_t)n_splits * ((size_t)hd + 2);
}

/* Splits: the block count (B x head groups x splits) in whole waves of one
 * block per SM (the hd <= 128 mma kernel has 8 warps and ~204 KB, so one
 * fits; LQ_DECODE_BLOCKS_PER_SM=k counts k slots per SM, LQ_DECODE_SPLITS_MAX=k caps the count, for
 * sweeps): one
 * wave of as many splits as fit when that fills >= 90% of the SMs, else the
 * fewest splits whose blocks fill >= 90% of their waves (else the best
 * filling); at least 64 keys each (at max_ctx), at most 256. Batch 1 with 8
 * KV heads on 132 SMs: 16 splits = 128 blocks (17 would put 4 blocks in a
 * second wave, which cost 1 x 8k 19 -> 16.5 us when fixed); batch 16: 1. The
 * kernel uses fewer at shorter contexts (at least W KW keys per split), so
 * this is an upper bound chosen once per graph. */
extern "C" int lq_attention_decode_splits(int B, int n_heads, int n_kv, int max_ctx, int sm_count) {
    if (n_kv < 1 || B < 1) return 1;
    int group = n_heads / n_kv;
    long blocks = (long)B * n_kv * ((group + DM_HEADS - 1) / DM_HEADS);
    static int per_sm = -1, most = -1;
    if (per_sm < 0) {
        const char *e = getenv("LQ_DECODE_BLOCKS_PER_SM");
        int v = e ? atoi(e) : 0;
        per_sm = v > 0 && v <= 64 ? v : 1;
    }
    if (most < 0) { /* LQ_DECODE_SPLITS_MAX=k: at most k splits (sweeps) */
        const char *e = getenv("LQ_DECODE_SPLITS_MAX");
        int v = e ? atoi(e) : 0;
        most = v > 0 && v <= 256 ? v : 256;
    }
    const long slots = (long)per_sm * (sm_count > 0 ? sm_count : 1);
    long cap = ((long)max_ctx + 63) / 64;
    if (cap > most) cap = most;
    /* one wave when the blocks fit: as many splits as fill it */
    if (blocks <= slots) {
        long ns = slots / blocks < cap ? slots / blocks : cap;
        if ((double)(blocks * ns) >= 0.9 * (double)slots || ns == cap) return (int)ns;
    }
    long best = 1;
    double best_fill = 0;
    for (long ns = 1; ns <= cap; ns++) {
        long n = blocks * ns, waves = (n + slots - 1) / slots;
        double fill = (double)n / (double)(waves * slots);
        if (fill >= 0.9) return (int)ns;
        if (fill > best_fill + 1e-9) best = ns, best_fill = fill;
    }
    return (int)best;
}

template <typename TK, int HD, int G>
static lq_status launch_decode_g(void *out, const float *q, int64_t ldq, const void *kc, const void *vc,
                                 int64_t seq_stride, int B, const int32_t *pos, int nh, int nkv, int window, int ns,
                                 void *ws, cudaStream_t s) {
    float *ws_o = (float *)((char *)ws + dc_ctr_bytes(B, nh));
    float *ws_ml = ws_o + (size_t)B * nh * ns * HD;
    int group = nh / nkv;
    dim3 grid((unsigned)ns, (unsigned)(nkv * ((group + G - 1) / G)), (unsigned)B);
    attn_decode_kernel<TK, HD, G><<<grid, DC_THREADS, 0, s>>>(ws_o, ws_ml, q, ldq, (const TK *)kc, (const TK *)vc,
                                                             seq_stride, pos, nh, nkv, window, ns,
                                                             (float)(1.0 / sqrt((double)HD)));
    LQ_LAUNCH_RET("attn_decode_kernel");
    attn_decode_reduce_kernel<TK, HD><<<dim3((unsigned)nh, (unsigned)B), DR_THREADS, 0, s>>>((TK *)out, ws_o, ws_ml, nh,
                                                                                         ns);
    LQ_LAUNCH_RET("attn_decode_reduce_kernel");
    return LQ_OK;
}

/* G = query heads per block: the group size rounded up to 1, 2, 4 or 8 (no
 * FMAs wasted on absent heads for the usual GQA ratios). */
template <typename TK, int HD>
static lq_status launch_decode(void *out, const float *q, int64_t ldq, const void *kc, const void *vc,
                               int64_t seq_stride, int B, const int32_t *pos, int nh, int nkv, int window, int ns,
                               void *ws, cudaStream_t s) {
    int group = nh / nkv;
    if (group == 1)
        return launch_decode_g<TK, HD, 1>(out, q, ldq, kc, vc, seq_stride, B, pos, nh, nkv, window, ns, ws, s);
    if (group == 2)
        return launch_decode_g<TK, HD, 2>(out, q, ldq, kc, vc, seq_stride, B, pos, nh, nkv, window, ns, ws, s);
    if (group <= 4)
        return launch_decode_g<TK, HD, 4>(out, q, ldq, kc, vc, seq_stride, B, pos, nh, nkv, window, ns, ws, s);
    return launch_decode_g<TK, HD, 8>(out, q, ldq, kc, vc, seq_stride, B, pos, nh, nkv, window, ns, ws, s);
}

/* The ring filled before the PDL wait (see the kernel): all of its stages unless LQ_DECODE_EARLY=k (the first
 * k stages, 0: none; tuning knob for A/B runs, read once; the result never depends on it). */
static int decode_early(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_DECODE_EARLY");
        v = e && atoi(e) >= 0 && atoi(e) < 64 ? atoi(e) : 64;
    }
    return v;
}

/* The last block's merge with every partial loaded at once up to DM_MERGE_ALL splits, unless
 * LQ_DECODE_MERGE_ALL=0 (the online one-pass loop for every count: tuning knob, read once). */
static int decode_merge_all(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_DECODE_MERGE_ALL");
        v = e && atoi(e) == 0 ? 0 : DM_MERGE_ALL;
    }
    return v;
}

/* The split count one atom.acq_rel.gpu by thread 0 (dm_arrive_ar) unless LQ_DECODE_REL=1 (fences by thread
 * 0 around a relaxed atomic, session 12's default) or 0 (a __threadfence by every thread): tuning knob for A/B
 * runs, read once; the result never depends on it. */
static int decode_rel(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_DECODE_REL");
        v = e && (atoi(e) == 0 || atoi(e) == 1) ? atoi(e) : 2;
    }
    return v;
}

/* The register-stage instantiation (RT = 2, hd 128, 8 warps: 243 registers a thread) for caches of at least
 * DM_RT_CAPACITY positions (seq_stride / (n_kv hd): the engine's max_ctx): session 12 measured 1 x 16k 20.7 ->
 * 19.9 us and 32k 36.5 -> 35.5 with it, no gain at 8k, and ~1% off the W4 decode at ctx 8000 (no room left
 * beside it for the next kernel's blocks under PDL), so shorter caches keep the 122-register kernel.
 * LQ_DECODE_REGTILE=0 / 2 forces either (tuning knob and tests, read on every launch; the result never
 * depends on it). */
#define DM_RT_CAPACITY 12288
static int decode_regtile(int64_t capacity) {
    const char *e = getenv("LQ_DECODE_REGTILE");
    if (e && (e[0] == '0' || e[0] == '2') && e[1] == 0) return e[0] - '0';
    return capacity >= DM_RT_CAPACITY ? 2 : 0;
}

template <typename TK, int HD, int W, int RT = 0>
static lq_status launch_decode_mma(const lq_device_limits *lim, void *out, const float *q, int64_t ldq, const void *kc,
                                   const void *vc, int64_t seq_stride, int B, const int32_t *pos, int nh, int nkv,
                                   int window, int ns, void *ws, cudaStream_t s) {
    typedef dm_geom<HD, W> Gm;
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: bytes allowed on each device */
    LQ_CUDA_RET(lq_smem_optin(attn_decode_mma_kernel<TK, HD, W, RT>, lim->dev, (int)Gm::SMEM, optin),
                "cudaFuncSetAttribute(attn_decode_mma_kernel shared memory)");
    unsigned long long *ctr = (unsigned long long *)ws;
    float *ws_o = (float *)((char *)ws + dc_ctr_bytes(B, nh));
    float *ws_ml = ws_o + (size_t)B * nh * ns * HD;
    int group = nh / nkv;
    dim3 grid((unsigned)ns, (unsigned)(nkv * ((group + DM_HEADS - 1) / DM_HEADS)), (unsigned)B);
    LQ_CUDA_RET(lq_launch_pdl_if(lq_pdl_on(lim), attn_decode_mma_kernel<TK, HD, W, RT>, grid, dim3(32 * W),
                                 (size_t)Gm::SMEM, s, (TK *)out, ws_o, ws_ml, ctr, q, ldq, (const TK *)kc,
                                 (const TK *)vc, seq_stride, pos, nh, nkv, window, ns,
                                 (float)(1.4426950408889634 / sqrt((double)HD)), /* log2(e)/sqrt(hd): base 2 */
                                 decode_early(), decode_rel(), decode_merge_all()),
                "launch attn_decode_mma_kernel");
    LQ_LAUNCH_RET("attn_decode_mma_kernel");
    return LQ_OK;
}

/* Warps per block of the tensor-core decode kernel: 8 where the 8 rings fit the device's per-block
 * shared memory (head_dim <= 128 on sm_90: 204 KB of the 227 KB; an A100's 163 KB takes 4), else 4;
 * LQ_DECODE_WARPS=4 forces 4 (tuning knob for A/B runs, read once; the result never depends on it). */
static int decode_warps(const lq_device_limits *lim, int smem8) {
    static int forced = -1;
    if (forced < 0) {
        const char *e = getenv("LQ_DECODE_WARPS");
        forced = e && atoi(e) == 4 ? 1 : 0;
    }
    return !forced && smem8 <= lim->smem_per_block_optin ? 8 : 4;
}

/* Tensor-core decode for 16-bit caches with head_dim 16..256; returns
 * LQ_ERR_UNSUPPORTED (no message) when it does not apply. */
static lq_status decode_mma(void *out, const float *q, int64_t ldq, const void *kc, const void *vc, lq_dtype dt,
                            int64_t seq_stride, int B, const int32_t *pos, int nh, int nkv, int hd, int window,
                            int ns, void *ws, cudaStream_t s) {
    if ((dt != LQ_F16 && dt != LQ_BF16) || (hd != 16 && hd != 32 && hd != 64 && hd != 128 && hd != 256))
        return LQ_ERR_UNSUPPORTED;
    lq_device_limits lim; /* the one device query of the launch */
    LQ_CUDA_RET(lq_device_limits_current(&lim), "device limits (attn_decode_mma_kernel)");
#define LQ_DM_ARGS &lim, out, q, ldq, kc, vc, seq_stride, B, pos, nh, nkv, window, ns, ws, s
#define LQ_DM_W(TY, HD)                                                                                   \
    if (decode_warps(&lim, dm_geom<HD, 8>::SMEM) != 8) return launch_decode_mma<TY, HD, 4>(LQ_DM_ARGS);   \
    return HD == 128 && decode_regtile(seq_stride / ((int64_t)nkv * hd)) == 2                             \
               ? launch_decode_mma<TY, HD, 8, HD == 128 ? 2 : 0>(LQ_DM_ARGS)                              \
               : launch_decode_mma<TY, HD, 8>(LQ_DM_ARGS);
#define LQ_DM_HD(TY)                                                                 \
    switch (hd) {                                                                    \
    case 16: LQ_DM_W(TY, 16)                                                         \
    case 32: LQ_DM_W(TY, 32)                                                         \
    case 64: LQ_DM_W(TY, 64)                                                         \
    case 128: LQ_DM_W(TY, 128)                                                       \
    case 256: return launch_decode_mma<TY, 256, 4>(LQ_DM_ARGS);                      \
    default: return LQ_ERR_UNSUPPORTED;                                              \
    }
    if (dt == LQ_F16) LQ_DM_HD(__half)
    if (dt == LQ_BF16) LQ_DM_HD(__nv_bfloat16)
#undef LQ_DM_HD
#undef LQ_DM_W
#undef LQ_DM_ARGS
    return LQ_ERR_UNSUPPORTED;
}

extern "C" lq_status lq_attention_decode_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                                   const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B,
                                                   const int32_t *pos, int n_heads, int n_kv, int hd, int window,
                                                   int n_splits, void *workspace, void *stream);

/* The argument checks of both decode entry points (the fp32-unit one is also called directly, by tests
 * and benches); ldq 0 becomes the packed row length. */
static lq_status decode_args(int B, int n_heads, int n_kv, int hd, int n_splits, int64_t *ldq) {
    LQ_FORWARD(check_heads("lq_attention_decode_cuda", B, n_heads, n_kv));
    LQ_RETURN_IF(n_splits < 1 || n_splits > 65535, LQ_ERR_ARG, "lq_attention_decode_cuda: %d splits", n_splits);
    if (*ldq == 0) *ldq = (int64_t)n_heads * hd;
    return LQ_OK;
}

extern "C" lq_status lq_attention_decode_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                              const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B,
                                              const int32_t *pos, int n_heads, int n_kv, int hd, int window,
                                              int n_splits, void *workspace, void *stream) {
    LQ_FORWARD(decode_args(B, n_heads, n_kv, hd, n_splits, &ldq));
    lq_status st = decode_mma(out, q, ldq, k_cache, v_cache, kv_dtype, seq_stride, B, pos, n_heads, n_kv, hd, window,
                              n_splits, workspace, lq_stream(stream));
    if (st != LQ_ERR_UNSUPPORTED) return st;
    return lq_attention_decode_simt_cuda(out, q, ldq, k_cache, v_cache, kv_dtype, seq_stride, B, pos, n_heads, n_kv,
                                         hd, window, n_splits, workspace, stream);
}

/* The fp32-unit decode (v2) for any cache dtype and head_dim: the path for
 * fp32 caches and head_dim 8. Not in the public header; kernels/dev/
 * bench_attention.cu and tests/test_kernels.c run it on 16-bit caches too. */
extern "C" lq_status lq_attention_decode_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                                   const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B,
                                                   const int32_t *pos, int n_heads, int n_kv, int hd, int window,
                                                   int n_splits, void *workspace, void *stream) {
    LQ_FORWARD(decode_args(B, n_heads, n_kv, hd, n_splits, &ldq));
    lq_status st = LQ_OK;
    LQ_DISPATCH(kv_dtype, "lq_attention_decode_cuda",
                LQ_HD_SWITCH(hd, "lq_attention_decode_cuda",
                             st = (launch_decode<TE, HD>(out, q, ldq, k_cache, v_cache, seq_stride, B, pos, n_heads,
                                                         n_kv, window, n_splits, workspace, lq_stream(stream)))));
    return st;
}
