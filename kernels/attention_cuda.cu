/* attention_cuda.cu — causal GQA attention over the KV cache, the CUDA twins
 * of lq_attention_ref (libquant/ops.c):
 *
 *  - prefill (lq_attention_cuda): one block per (32-query tile, query head,
 *    sequence); K/V tiles of 32 keys go through shared memory (converted to
 *    fp32), scores of the tile are computed, masked (causal, window), folded
 *    into a running max / sum (online softmax, FlashAttention's recurrence)
 *    and multiplied into fp32 accumulators held in registers. Memory is
 *    O(tile), never O(T^2). Arithmetic runs on the fp32 units, so one kernel
 *    serves fp32, fp16 and bf16 caches and the tiny head_dim 8 of stories260K.
 *
 *  - decode (lq_attention_decode_cuda): one query per sequence, the classic
 *    memory-bound case. One block per (context split, KV head [x up to 8 of
 *    its query heads], sequence): each K/V row is read once for all the query
 *    heads that share it (GQA). Within a block one thread scores one key
 *    (16-byte loads of its row), a warp per head updates the online softmax,
 *    and threads over head_dim accumulate P·V. Each split leaves an
 *    unnormalized output with its max and sum; a second kernel merges the
 *    splits (log-sum-exp). Positions come from device memory and split sizes
 *    are derived from them in the kernel, so one captured CUDA graph serves
 *    every decode step.
 *
 * Tested by tests/test_kernels.c (head_dim 8/64/128, GQA 1/2/4/8, windows,
 * long contexts). Variants belong in kernels/dev/. */
#include "cuda_common.cuh"

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
    attn_prefill_kernel(TK *out, const float *q, const TK *kc, const TK *vc, int64_t seq_stride, int T, int pos0,
                        int nh, int nkv, int window, float scale) {
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
        Qs[r * (HD + 1) + d] = r < nq ? q[(((int64_t)b * T + t0 + r) * nh + h) * HD + d] : 0.0f;
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
static lq_status launch_prefill(void *out, const float *q, const void *kc, const void *vc, int64_t seq_stride, int B,
                                int T, int pos0, int nh, int nkv, int window, cudaStream_t s) {
    size_t smem = prefill_smem_bytes<HD>();
    if (smem > 48 * 1024)
        LQ_CUDA_RET(cudaFuncSetAttribute(attn_prefill_kernel<TK, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem),
                    "cudaFuncSetAttribute(attn_prefill_kernel shared memory)");
    dim3 grid((unsigned)((T + PF_BQ - 1) / PF_BQ), (unsigned)nh, (unsigned)B);
    attn_prefill_kernel<TK, HD><<<grid, PF_THREADS, smem, s>>>((TK *)out, q, (const TK *)kc, (const TK *)vc,
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

extern "C" lq_status lq_attention_cuda(void *out, const float *q, const void *k_cache, const void *v_cache,
                                       lq_dtype kv_dtype, int64_t seq_stride, int B, int T, int pos0, int n_heads,
                                       int n_kv, int hd, int window, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_FORWARD(check_heads("lq_attention_cuda", B, n_heads, n_kv));
    LQ_RETURN_IF(pos0 < 0, LQ_ERR_ARG, "lq_attention_cuda: pos0 %d", pos0);
    lq_status st = LQ_OK;
    LQ_DISPATCH(kv_dtype, "lq_attention_cuda",
                LQ_HD_SWITCH(hd, "lq_attention_cuda",
                             st = (launch_prefill<TE, HD>(out, q, k_cache, v_cache, seq_stride, B, T, pos0, n_heads,
                                                         n_kv, window, lq_stream(stream)))));
    return st;
}

/* ---------------- decode ---------------- */

#define DC_THREADS 128
#define DC_KT 128  /* keys per tile: one per thread in the scoring phase */
#define DC_GMAX 8  /* query heads per block (more GQA heads: more blocks) */

template <typename TK, int HD>
__global__ void __launch_bounds__(DC_THREADS)
    attn_decode_kernel(float *ws_o, float *ws_ml, const float *q, const TK *kc, const TK *vc, int64_t seq_stride,
                       const int32_t *pos, int nh, int nkv, int window, int ns, float scale) {
    constexpr int VEC = 16 / (int)sizeof(TK);           /* elements per 16-byte load */
    constexpr int DPT = HD > DC_THREADS ? HD / DC_THREADS : 1; /* output dims per thread */
    constexpr int DW = HD / DPT;                        /* threads across head_dim */
    constexpr int KS = DC_THREADS / DW;                 /* key slices in P·V */
    static_assert(HD % VEC == 0, "head_dim must be a multiple of the 16-byte vector");
    __shared__ float qs[DC_GMAX][HD];
    __shared__ float sc[DC_GMAX][DC_KT];
    __shared__ float m_s[DC_GMAX], l_s[DC_GMAX], alpha_s[DC_GMAX];
    __shared__ float red[KS][DC_GMAX][HD];

    const int split = blockIdx.x, hg = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int group = nh / nkv, n_hg = (group + DC_GMAX - 1) / DC_GMAX;
    const int kvh = hg / n_hg, g0 = (hg % n_hg) * DC_GMAX, h0 = kvh * group + g0;
    const int gb = min(DC_GMAX, group - g0);
    const int kvd = nkv * HD;
    const int p = pos[b];
    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const int n = p + 1 - lo;
    int chunk = (n + ns - 1) / ns;
    chunk = (chunk + DC_KT - 1) / DC_KT * DC_KT; /* whole tiles: fewer, fuller splits at short contexts */
    const int s0 = lo + split * chunk, s1 = min(p + 1, s0 + chunk);
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;

    for (int i = tid; i < DC_GMAX * HD; i += DC_THREADS) {
        int g = i / HD, d = i % HD;
        qs[g][d] = g < gb ? q[((int64_t)b * nh + h0 + g) * HD + d] : 0.0f;
    }
    if (tid < DC_GMAX) {
        m_s[tid] = -INFINITY;
        l_s[tid] = 0.0f;
        alpha_s[tid] = 1.0f;
    }
    const int dsl = tid % DW, ks = tid / DW;
    float o[DC_GMAX][DPT];
#pragma unroll
    for (int g = 0; g < DC_GMAX; g++)
#pragma unroll
        for (int j = 0; j < DPT; j++) o[g][j] = 0.0f;
    __syncthreads();

    for (int k0 = s0; k0 < s1; k0 += DC_KT) {
        const int nk = min(DC_KT, s1 - k0);
        if (tid < nk) {
            float acc[DC_GMAX];
#pragma unroll
            for (int g = 0; g < DC_GMAX; g++) acc[g] = 0.0f;
            const TK *kr = kb + (int64_t)(k0 + tid) * kvd;
#pragma unroll 4
            for (int d0 = 0; d0 < HD; d0 += VEC) {
                union {
                    uint4 u;
                    TK e[VEC];
                } ld;
                ld.u = *(const uint4 *)(kr + d0);
#pragma unroll
                for (int e = 0; e < VEC; e++) {
                    float kf = lq_ld(ld.e[e]);
#pragma unroll
                    for (int g = 0; g < DC_GMAX; g++) acc[g] = fmaf(qs[g][d0 + e], kf, acc[g]);
                }
            }
#pragma unroll
            for (int g = 0; g < DC_GMAX; g++) sc[g][tid] = acc[g] * scale;
        } else {
#pragma unroll
            for (int g = 0; g < DC_GMAX; g++) sc[g][tid] = -INFINITY;
        }
        __syncthreads();
        const int warp = tid >> 5, lane = tid & 31;
        for (int g = warp; g < gb; g += DC_THREADS / 32) {
            float v[DC_KT / 32], mx = -INFINITY;
#pragma unroll
            for (int i = 0; i < DC_KT / 32; i++) {
                v[i] = sc[g][lane + 32 * i];
                mx = fmaxf(mx, v[i]);
            }
            mx = lq_warp_max(mx);
            float m_old = m_s[g], m_new = fmaxf(m_old, mx), sum = 0.0f; /* m_new finite: nk >= 1 */
#pragma unroll
            for (int i = 0; i < DC_KT / 32; i++) {
                v[i] = expf(v[i] - m_new);
                sum += v[i];
                sc[g][lane + 32 * i] = v[i];
            }
            sum = lq_warp_sum(sum);
            __syncwarp();
            if (lane == 0) {
                float a = expf(m_old - m_new);
                alpha_s[g] = a;
                l_s[g] = l_s[g] * a + sum;
                m_s[g] = m_new;
            }
        }
        __syncthreads();
#pragma unroll
        for (int g = 0; g < DC_GMAX; g++) {
            float a = alpha_s[g];
#pragma unroll
            for (int j = 0; j < DPT; j++) o[g][j] *= a;
        }
        for (int k = ks; k < nk; k += KS) {
            const TK *vr = vb + (int64_t)(k0 + k) * kvd;
            float vv[DPT];
#pragma unroll
            for (int j = 0; j < DPT; j++) vv[j] = lq_ld(vr[dsl + j * DW]);
#pragma unroll
            for (int g = 0; g < DC_GMAX; g++) {
                float pg = sc[g][k];
#pragma unroll
                for (int j = 0; j < DPT; j++) o[g][j] = fmaf(pg, vv[j], o[g][j]);
            }
        }
        __syncthreads(); /* sc and alpha_s are rewritten by the next tile */
    }

    /* workspace layout: ws_o (B, nh, ns, HD), ws_ml (B, nh, ns, 2) = (max, sum) */
    if (KS > 1) {
#pragma unroll
        for (int g = 0; g < DC_GMAX; g++) red[ks][g][dsl] = o[g][0];
        __syncthreads();
        for (int i = tid; i < gb * HD; i += DC_THREADS) {
            int g = i / HD, d = i % HD;
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < KS; k++) s += red[k][g][d];
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

/* Merge the splits of one (head, sequence): out = sum_s o_s e^(m_s - M) / sum_s l_s e^(m_s - M). */
template <typename TK, int HD>
__global__ void attn_decode_reduce_kernel(TK *out, const float *ws_o, const float *ws_ml, int nh, int ns) {
    const int h = blockIdx.x, b = blockIdx.y;
    const int64_t base = (int64_t)b * nh + h;
    const float *ml = ws_ml + base * ns * 2;
    float M = -INFINITY;
    for (int s = 0; s < ns; s++)
        if (ml[2 * s + 1] > 0.0f) M = fmaxf(M, ml[2 * s]);
    float L = 0.0f;
    for (int s = 0; s < ns; s++)
        if (ml[2 * s + 1] > 0.0f) L += ml[2 * s + 1] * expf(ml[2 * s] - M);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < ns; s++)
            if (ml[2 * s + 1] > 0.0f) acc += ws_o[(base * ns + s) * HD + d] * expf(ml[2 * s] - M);
        out[base * HD + d] = lq_st<TK>(acc / L);
    }
}

extern "C" size_t lq_attention_decode_workspace(int B, int n_heads, int hd, int n_splits) {
    return sizeof(float) * (size_t)B * (size_t)n_heads * (size_t)n_splits * ((size_t)hd + 2);
}

extern "C" int lq_attention_decode_splits(int B, int n_heads, int n_kv, int max_ctx, int sm_count) {
    if (n_kv < 1 || B < 1) return 1;
    int group = n_heads / n_kv;
    long blocks = (long)B * n_kv * ((group + DC_GMAX - 1) / DC_GMAX);
    long want = (2L * sm_count + blocks - 1) / blocks; /* two blocks per SM */
    long cap = (max_ctx + DC_KT - 1) / DC_KT;           /* at least one full tile per split */
    if (want > cap) want = cap;
    if (want > 256) want = 256;
    return want < 1 ? 1 : (int)want;
}

template <typename TK, int HD>
static lq_status launch_decode(void *out, const float *q, const void *kc, const void *vc, int64_t seq_stride, int B,
                               const int32_t *pos, int nh, int nkv, int window, int ns, void *ws, cudaStream_t s) {
    float *ws_o = (float *)ws;
    float *ws_ml = ws_o + (size_t)B * nh * ns * HD;
    int group = nh / nkv;
    dim3 grid((unsigned)ns, (unsigned)(nkv * ((group + DC_GMAX - 1) / DC_GMAX)), (unsigned)B);
    attn_decode_kernel<TK, HD><<<grid, DC_THREADS, 0, s>>>(ws_o, ws_ml, q, (const TK *)kc, (const TK *)vc, seq_stride,
                                                          pos, nh, nkv, window, ns, (float)(1.0 / sqrt((double)HD)));
    LQ_LAUNCH_RET("attn_decode_kernel");
    attn_decode_reduce_kernel<TK, HD><<<dim3((unsigned)nh, (unsigned)B), HD < 32 ? 32 : (HD > 128 ? 128 : HD), 0, s>>>(
        (TK *)out, ws_o, ws_ml, nh, ns);
    LQ_LAUNCH_RET("attn_decode_reduce_kernel");
    return LQ_OK;
}

extern "C" lq_status lq_attention_decode_cuda(void *out, const float *q, const void *k_cache, const void *v_cache,
                                              lq_dtype kv_dtype, int64_t seq_stride, int B, const int32_t *pos,
                                              int n_heads, int n_kv, int hd, int window, int n_splits,
                                              void *workspace, void *stream) {
    LQ_FORWARD(check_heads("lq_attention_decode_cuda", B, n_heads, n_kv));
    LQ_RETURN_IF(n_splits < 1 || n_splits > 65535, LQ_ERR_ARG, "lq_attention_decode_cuda: %d splits", n_splits);
    lq_status st = LQ_OK;
    LQ_DISPATCH(kv_dtype, "lq_attention_decode_cuda",
                LQ_HD_SWITCH(hd, "lq_attention_decode_cuda",
                             st = (launch_decode<TE, HD>(out, q, k_cache, v_cache, seq_stride, B, pos, n_heads, n_kv,
                                                        window, n_splits, workspace, lq_stream(stream)))));
    return st;
}
