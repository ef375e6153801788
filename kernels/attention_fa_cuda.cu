/* attention_fa_cuda.cu — prefill attention FlashAttention-2 style on
 * mma.sync (sm_80+, tuned for the H200): the twin of lq_attention_ref
 * (libquant/ops.c) with lq_attention_cuda's arguments, for fp16/bf16 caches
 * and head_dim 32/64/128; anything else returns LQ_ERR_UNSUPPORTED without a
 * message so that the caller falls back to lq_attention_cuda's kernels.
 *
 * Why a second prefill kernel: attn_prefill_tc_kernel (attention_cuda.cu)
 * keeps S, P and O in shared memory (WMMA stores and reloads every tile, 2
 * lanes per softmax row) and loads K/V synchronously: 826 us per llama3-8b
 * layer at T = 2048 (~42 TFLOP/s). Here everything between the two products
 * stays in registers:
 *
 *  - block = 4 warps x 16 query rows = 64 queries of one (head, sequence)
 *    (FA_WARPS = 8: 128); key tiles of 64. Q is rounded to the cache dtype, staged once through
 *    shared memory and kept as mma A fragments in registers for the loop.
 *  - K and V tiles: global -> shared with cp.async, double-buffered (tile
 *    j+1 is in flight while tile j is computed), rows padded by 16 bytes so
 *    that the 8 row addresses of an ldmatrix fall on distinct banks; K through
 *    ldmatrix (B operand of S = Q K^T), V through ldmatrix.trans (B of P V).
 *  - S (16 x 64 per warp, 32 floats per lane) in mma C fragments; online
 *    softmax per row in fp32 (a row lives in the 4 lanes of a quad: max by
 *    __shfl_xor 1, 2); exp2 with log2(e) folded into the score scale
 *    (exp(x - m) = exp2(x log2e - m log2e); exp2f is accurate to 2 ulp, far
 *    below the 16-bit rounding of P that follows).
 *  - P rounded to the cache dtype and packed into the A fragments of P V
 *    directly (the m16n8k16 C layout of two adjacent n-tiles is the A layout
 *    of one k-step). O (16 x hd per warp) in fp32 C fragments.
 *  - the row sum l is one more mma per k-step: P times a column of ones, so
 *    it sums exactly the rounded P values that P V multiplies, in fp32 (the
 *    reference's normalisation; that is what keeps the results within the
 *    test tolerances of lq_attention_ref), and costs no ALU work.
 *  - causal: only key tiles up to the last query's position (and from the
 *    window's lower edge) are visited; the mask is applied only on tiles that
 *    straddle a warp's diagonal or window edge, a warp skips tiles none of
 *    its rows sees. Keys outside the block's range are zero-filled by
 *    cp.async (never read: unwritten cache rows may hold NaN). Rows past T
 *    in a partial query tile compute on zero queries and are not stored.
 *  - work order: grid (heads, query tiles, B) with the query tiles reversed,
 *    so the tiles with the most keys start first on every head and the
 *    causal triangle balances across the SMs; neighbouring blocks share a KV
 *    head (GQA), which keeps K/V in L2.
 *  - deterministic: fixed reduction order, no atomics.
 *
 * Design notes and expected numbers: kernels/dev/attention_fa_notes.md.
 * Tested by tests/test_attention_fa_gpu.c (make test-gpu); timed by
 * kernels/dev/bench_attention_fa.cu. */
#include "cuda_common.cuh"

extern "C" {
#include "lq_kernels.h"
}

/* Warps per block, 16 query rows each (-DFA_WARPS=8 for 128-query blocks:
 * half the K/V traffic from L2, one block per SM at head_dim 128). */
#ifndef FA_WARPS
#define FA_WARPS 4
#endif
#define FA_BQ (16 * FA_WARPS)
#define FA_BK 64
#define FA_THREADS (32 * FA_WARPS)
/* Blocks per SM the register allocation must allow at head_dim 128 (4
 * warps): 2 gives 212 registers and no spills (ptxas -v, sm_90a); 3 caps
 * them at 168 and spills 128 bytes. -DFA_MIN_BLOCKS_128=3 to compare. */
#ifndef FA_MIN_BLOCKS_128
#define FA_MIN_BLOCKS_128 (FA_WARPS >= 8 ? 1 : 2)
#endif

/* Shared memory (16-bit elements): stages 0 and 1, each a K tile then a V
 * tile of FA_BK rows of LDR. Q (FA_BQ rows of LDR) is staged in stage 1
 * before the loop (free until the first prefetch). */
template <int HD> struct fa_geom {
    static constexpr int LDR = HD + 8;          /* padded row: 16 bytes apart in banks, row to row */
    static constexpr int TILE = FA_BK * LDR;    /* elements of one K or V tile */
    static constexpr size_t SMEM = 4 * TILE * 2; /* bytes: 69632 for hd 128, 36864 for 64 */
    static_assert(FA_BQ * LDR <= 2 * TILE, "the Q tile fits in stage 1");
    static_assert(HD % 16 == 0 && (FA_BK * HD / 8) % FA_THREADS == 0, "fa geometry");
};


/* The 16-bit operand type: pack, mma, a pair of ones (cuda_common.cuh). */
template <typename TK> using fa_op = lq_mma16<TK>;

/* The block's copies of keys k0 .. k0+FA_BK-1 of K and V into one stage:
 * 16-byte vectors, thread tid takes vectors tid, tid + FA_THREADS, ...;
 * keys outside [k_lo, k_hi] are zero-filled (src-size 0; the address stays a
 * real row). */
template <typename TK, int HD>
__device__ __forceinline__ void fa_load(TK *ks, const TK *kb, const TK *vb, int k0, int k_lo, int k_hi, int kvd,
                                        int tid) {
    constexpr int LDR = fa_geom<HD>::LDR, RV = HD / 8, N = FA_BK * RV / FA_THREADS;
    TK *vs = ks + fa_geom<HD>::TILE;
#pragma unroll
    for (int j = 0; j < N; j++) {
        int i = tid + FA_THREADS * j, r = i / RV, c = (i % RV) * 8, key = k0 + r;
        bool ok = key >= k_lo && key <= k_hi;
        int64_t off = (int64_t)(ok ? key : k_hi) * kvd + c;
        lq_cp16(ks + r * LDR + c, kb + off, ok ? 16 : 0);
        lq_cp16(vs + r * LDR + c, vb + off, ok ? 16 : 0);
    }
}

/* Fragment roles (lane = 4 gid + tig; m16n8k16 layouts), warp w owns query
 * rows w*16 .. w*16+15 of the block, a lane rows gid and gid + 8:
 *   qf[kd]   A of Q, dims 16kd .. 16kd+15
 *   s[j]     C of S, keys 8j + 2tig, +1: [0],[1] row gid, [2],[3] row gid+8
 *   pa[kk]   A of P, keys 16kk .. 16kk+15 (= s[2kk], s[2kk+1] rounded)
 *   o[dn]    C of O, dims 8dn + 2tig, +1 (rows as s)
 *   lsum     C of P x ones: [0] = [1] = l of row gid, [2] = [3] = l of row gid+8 */
template <typename TK, int HD>
__global__ void __launch_bounds__(FA_THREADS, HD >= 128 ? FA_MIN_BLOCKS_128 : 16 / FA_WARPS)
    attn_fa_kernel(TK *out, const float *q, int64_t ldq, const TK *kc, const TK *vc, int64_t seq_stride, int T,
                   int pos0, int nh, int nkv, int window, float scale_log2) {
    typedef fa_geom<HD> Gm;
    typedef fa_op<TK> Op;
    constexpr int LDR = Gm::LDR, TILE = Gm::TILE, NKD = HD / 16, NDT = HD / 8, NJ = FA_BK / 8;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    TK *sm = (TK *)fa_smem;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
    const int h = blockIdx.x, qt = gridDim.y - 1 - blockIdx.y, b = blockIdx.z; /* most keys first */
    const int t0 = qt * FA_BQ, nq = min(FA_BQ, T - t0);
    const int kvh = h / (nh / nkv), kvd = nkv * HD;
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;
    const int p_first = pos0 + t0, p_last = p_first + nq - 1;
    const int k_lo = window > 0 ? max(0, p_first - window + 1) : 0, k_hi = p_last;
    const int kt_first = k_lo / FA_BK, kt_last = k_hi / FA_BK;

    fa_load<TK, HD>(sm, kb, vb, kt_first * FA_BK, k_lo, k_hi, kvd, tid);
    lq_cp_commit();
    {
        TK *qs = sm + 2 * TILE;
        const float *qb = q + ((int64_t)b * T + t0) * ldq + (int64_t)h * HD;
        for (int i = tid; i < FA_BQ * HD / 2; i += FA_THREADS) {
            int r = i / (HD / 2), d = (i % (HD / 2)) * 2;
            float x0 = 0.0f, x1 = 0.0f;
            if (r < nq) {
                x0 = qb[(int64_t)r * ldq + d];
                x1 = qb[(int64_t)r * ldq + d + 1];
            }
            *(uint32_t *)(qs + r * LDR + d) = Op::pack(x0, x1);
        }
    }
    __syncthreads();
    uint32_t qf[NKD][4];
#pragma unroll
    for (int kd = 0; kd < NKD; kd++)
        lq_ldsm4(qf[kd], sm + 2 * TILE + (warp * 16 + (lane & 15)) * LDR + kd * 16 + (lane >> 4) * 8);

    float o[NDT][4], lsum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int dn = 0; dn < NDT; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY; /* running max of rows gid, gid+8, in log2 units */
    const int pw = p_first + warp * 16;    /* position of the warp's first row */
    const int pr0 = pw + gid, pr1 = pr0 + 8;
    const int lo0 = window > 0 ? pr0 - window + 1 : 0, lo1 = window > 0 ? pr1 - window + 1 : 0;
    const bool warp_idle = warp * 16 >= nq; /* all its rows are past T */
    /* ldmatrix lane offsets (elements): K as B (keys +0/+8 by lane bit 4, dims +0/+8 by bit 3);
     * V as B through .trans (keys by bit 3, dims by bit 4) */
    const int k_ld = ((lane >> 4) & 1) * 8 * LDR + (lane & 7) * LDR + ((lane >> 3) & 1) * 8;
    const int v_ld = ((lane >> 3) & 1) * 8 * LDR + (lane & 7) * LDR + ((lane >> 4) & 1) * 8;

    for (int kt = kt_first; kt <= kt_last; kt++) {
        const int st = (kt - kt_first) & 1;
        lq_cp_wait<0>();
        __syncthreads(); /* tile kt visible; every warp is done with tile kt-1's stage */
        if (kt < kt_last) fa_load<TK, HD>(sm + (st ^ 1) * 2 * TILE, kb, vb, (kt + 1) * FA_BK, k_lo, k_hi, kvd, tid);
        lq_cp_commit();
        const int k0 = kt * FA_BK;
        /* warp-uniform: skip a tile none of this warp's rows sees */
        if (warp_idle || k0 > pw + 15 || (window > 0 && k0 + FA_BK - 1 < pw - window + 1)) continue;
        const bool need_mask = k0 + FA_BK - 1 > pw || (window > 0 && k0 < pw + 15 - window + 1);
        const TK *ks = sm + st * 2 * TILE, *vs = ks + TILE;

        /* S (16 x 64) = Q K^T */
        float s[NJ][4];
#pragma unroll
        for (int j = 0; j < NJ; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int jp = 0; jp < NJ / 2; jp++)
#pragma unroll
            for (int kd = 0; kd < NKD; kd++) {
                uint32_t kf[4];
                lq_ldsm4(kf, ks + jp * 16 * LDR + kd * 16 + k_ld);
                Op::mma(s[2 * jp], qf[kd], kf[0], kf[1]);
                Op::mma(s[2 * jp + 1], qf[kd], kf[2], kf[3]);
            }
        if (need_mask) {
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = k0 + 8 * j + 2 * tig + (e & 1);
                    int pr = e < 2 ? pr0 : pr1, lo = e < 2 ? lo0 : lo1;
                    if (key > pr || key < lo) s[j][e] = -INFINITY;
                }
        }
        /* online softmax: tile max of the two rows over the quad, correction alpha */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
            mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0 * scale_log2), mn1 = fmaxf(m1, mx1 * scale_log2);
        /* a row that has seen nothing yet keeps max -inf: subtract 0 instead (p = 0, no NaN) */
        const float base0 = mn0 == -INFINITY ? 0.0f : mn0, base1 = mn1 == -INFINITY ? 0.0f : mn1;
        const float al0 = exp2f(m0 - base0), al1 = exp2f(m1 - base1); /* m = -inf: 0 */
        m0 = mn0;
        m1 = mn1;
        uint32_t pa[NJ / 2][4];
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            float p0 = exp2f(fmaf(s[j][0], scale_log2, -base0)), p1 = exp2f(fmaf(s[j][1], scale_log2, -base0));
            float p2 = exp2f(fmaf(s[j][2], scale_log2, -base1)), p3 = exp2f(fmaf(s[j][3], scale_log2, -base1));
            pa[j >> 1][(j & 1) * 2] = Op::pack(p0, p1);
            pa[j >> 1][(j & 1) * 2 + 1] = Op::pack(p2, p3);
        }
#pragma unroll
        for (int dn = 0; dn < NDT; dn++) {
            o[dn][0] *= al0;
            o[dn][1] *= al0;
            o[dn][2] *= al1;
            o[dn][3] *= al1;
        }
        lsum[0] *= al0;
        lsum[1] *= al0;
        lsum[2] *= al1;
        lsum[3] *= al1;
        /* O (16 x hd) += P (16 x 64) V (64 x hd); l += P 1 */
#pragma unroll
        for (int kk = 0; kk < NJ / 2; kk++) {
            Op::mma(lsum, pa[kk], Op::ONES, Op::ONES);
#pragma unroll
            for (int dp = 0; dp < HD / 16; dp++) {
                uint32_t vf[4];
                lq_ldsm4_t(vf, vs + kk * 16 * LDR + dp * 16 + v_ld);
                Op::mma(o[2 * dp], pa[kk], vf[0], vf[1]);
                Op::mma(o[2 * dp + 1], pa[kk], vf[2], vf[3]);
            }
        }
    }
    lq_cp_wait<0>(); /* no copy may land in shared memory after the block exits (the last group is empty) */

    /* out = O / l, rounded to the cache dtype; rows past T are not stored */
    const int r0 = warp * 16 + gid, r1 = r0 + 8;
    const int64_t orow = (int64_t)nh * HD;
    TK *ob = out + (((int64_t)b * T + t0) * nh + h) * HD + 2 * tig;
    if (r0 < nq) {
#pragma unroll
        for (int dn = 0; dn < NDT; dn++)
            *(uint32_t *)(ob + r0 * orow + dn * 8) = Op::pack(o[dn][0] / lsum[0], o[dn][1] / lsum[0]);
    }
    if (r1 < nq) {
#pragma unroll
        for (int dn = 0; dn < NDT; dn++)
            *(uint32_t *)(ob + r1 * orow + dn * 8) = Op::pack(o[dn][2] / lsum[2], o[dn][3] / lsum[2]);
    }
}

template <typename TK, int HD>
static lq_status launch_fa(void *out, const float *q, int64_t ldq, const void *kc, const void *vc, int64_t seq_stride,
                           int B, int T, int pos0, int nh, int nkv, int window, cudaStream_t s) {
    constexpr size_t smem = fa_geom<HD>::SMEM;
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: bytes allowed on each device */
    if (smem > 48 * 1024)
        LQ_CUDA_RET(lq_smem_optin_current(attn_fa_kernel<TK, HD>, (int)smem, optin),
                    "cudaFuncSetAttribute(attn_fa_kernel shared memory)");
    dim3 grid((unsigned)nh, (unsigned)((T + FA_BQ - 1) / FA_BQ), (unsigned)B);
    /* log2(e) / sqrt(hd): the scores go straight into exp2 */
    float scale_log2 = (float)(1.4426950408889634 / sqrt((double)HD));
    attn_fa_kernel<TK, HD><<<grid, FA_THREADS, smem, s>>>((TK *)out, q, ldq, (const TK *)kc, (const TK *)vc,
                                                         seq_stride, T, pos0, nh, nkv, window, scale_log2);
    LQ_LAUNCH_RET("attn_fa_kernel");
    return LQ_OK;
}

extern "C" lq_status lq_attention_fa_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                          const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                          int pos0, int n_heads, int n_kv, int hd, int window, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_RETURN_IF(n_kv < 1 || n_heads < n_kv || n_heads % n_kv != 0, LQ_ERR_ARG,
                 "lq_attention_fa_cuda: %d query heads over %d KV heads", n_heads, n_kv);
    LQ_RETURN_IF(B < 1 || B > 65535 || pos0 < 0, LQ_ERR_ARG, "lq_attention_fa_cuda: B=%d pos0=%d", B, pos0);
    if (ldq == 0) ldq = (int64_t)n_heads * hd;
    /* what this kernel does not take, silently (the caller falls back): other
     * dtypes and head_dims, K/V rows not 16-byte aligned (cp.async), an
     * output not 4-byte aligned, more query tiles than gridDim.y allows */
    if (kv_dtype != LQ_F16 && kv_dtype != LQ_BF16) return LQ_ERR_UNSUPPORTED;
    if (hd != 32 && hd != 64 && hd != 128) return LQ_ERR_UNSUPPORTED;
    if ((((uintptr_t)k_cache | (uintptr_t)v_cache) & 15) || (B > 1 && seq_stride % 8) || ((uintptr_t)out & 3))
        return LQ_ERR_UNSUPPORTED;
    if ((T + FA_BQ - 1) / FA_BQ > 65535) return LQ_ERR_UNSUPPORTED;
    cudaStream_t s = lq_stream(stream);
#define LQ_FA_HD(TY)                                                                                             \
    switch (hd) {                                                                                                \
    case 32: return launch_fa<TY, 32>(out, q, ldq, k_cache, v_cache, seq_stride, B, T, pos0, n_heads, n_kv, window, s); \
    case 64: return launch_fa<TY, 64>(out, q, ldq, k_cache, v_cache, seq_stride, B, T, pos0, n_heads, n_kv, window, s); \
    default: return launch_fa<TY, 128>(out, q, ldq, k_cache, v_cache, seq_stride, B, T, pos0, n_heads, n_kv, window, s); \
    }
    if (kv_dtype == LQ_F16) LQ_FA_HD(__half)
    LQ_FA_HD(__nv_bfloat16)
#undef LQ_FA_HD
}
