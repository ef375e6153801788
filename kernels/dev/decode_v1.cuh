/* decode_v1.cuh — the first decode-attention kernel of kernels/attention_cuda.cu,
 * kept for side-by-side timing in kernels/dev/bench_attention.cu.
 * Measured on the H100 (2026-11, 32 q / 8 kv heads, hd 128, fp16): 32 us at
 * batch 1 / 1k context, 197 us at 32k; 0.13-1.06 TB/s of KV, 0.33-0.43x of
 * PyTorch SDPA. Why it lost: one thread per key reads its K row with
 * dependent 16-byte loads and the P.V loop issues 128 dependent 2-byte V
 * loads per thread: latency-bound, little memory-level parallelism; and
 * 128-key tiles allow few splits at short contexts. v2 stages K/V tiles in
 * shared memory with all loads of a tile in flight at once. */
#include "../cuda_common.cuh"

#define V1_THREADS 128
#define V1_KT 128  /* keys per tile: one per thread in the scoring phase */
#define V1_GMAX 8  /* query heads per block (more GQA heads: more blocks) */

template <typename TK, int HD>
__global__ void __launch_bounds__(V1_THREADS)
    attn_decode_v1_kernel(float *ws_o, float *ws_ml, const float *q, const TK *kc, const TK *vc, int64_t seq_stride,
                       const int32_t *pos, int nh, int nkv, int window, int ns, float scale) {
    constexpr int VEC = 16 / (int)sizeof(TK);           /* elements per 16-byte load */
    constexpr int DPT = HD > V1_THREADS ? HD / V1_THREADS : 1; /* output dims per thread */
    constexpr int DW = HD / DPT;                        /* threads across head_dim */
    constexpr int KS = V1_THREADS / DW;                 /* key slices in P·V */
    static_assert(HD % VEC == 0, "head_dim must be a multiple of the 16-byte vector");
    __shared__ float qs[V1_GMAX][HD];
    __shared__ float sc[V1_GMAX][V1_KT];
    __shared__ float m_s[V1_GMAX], l_s[V1_GMAX], alpha_s[V1_GMAX];
    __shared__ float red[KS][V1_GMAX][HD];

    const int split = blockIdx.x, hg = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int group = nh / nkv, n_hg = (group + V1_GMAX - 1) / V1_GMAX;
    const int kvh = hg / n_hg, g0 = (hg % n_hg) * V1_GMAX, h0 = kvh * group + g0;
    const int gb = min(V1_GMAX, group - g0);
    const int kvd = nkv * HD;
    const int p = pos[b];
    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    const int n = p + 1 - lo;
    int chunk = (n + ns - 1) / ns;
    chunk = (chunk + V1_KT - 1) / V1_KT * V1_KT; /* whole tiles: fewer, fuller splits at short contexts */
    const int s0 = lo + split * chunk, s1 = min(p + 1, s0 + chunk);
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;

    for (int i = tid; i < V1_GMAX * HD; i += V1_THREADS) {
        int g = i / HD, d = i % HD;
        qs[g][d] = g < gb ? q[((int64_t)b * nh + h0 + g) * HD + d] : 0.0f;
    }
    if (tid < V1_GMAX) {
        m_s[tid] = -INFINITY;
        l_s[tid] = 0.0f;
        alpha_s[tid] = 1.0f;
    }
    const int dsl = tid % DW, ks = tid / DW;
    float o[V1_GMAX][DPT];
#pragma unroll
    for (int g = 0; g < V1_GMAX; g++)
#pragma unroll
        for (int j = 0; j < DPT; j++) o[g][j] = 0.0f;
    __syncthreads();

    for (int k0 = s0; k0 < s1; k0 += V1_KT) {
        const int nk = min(V1_KT, s1 - k0);
        if (tid < nk) {
            float acc[V1_GMAX];
#pragma unroll
            for (int g = 0; g < V1_GMAX; g++) acc[g] = 0.0f;
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
                    for (int g = 0; g < V1_GMAX; g++) acc[g] = fmaf(qs[g][d0 + e], kf, acc[g]);
                }
            }
#pragma unroll
            for (int g = 0; g < V1_GMAX; g++) sc[g][tid] = acc[g] * scale;
        } else {
#pragma unroll
            for (int g = 0; g < V1_GMAX; g++) sc[g][tid] = -INFINITY;
        }
        __syncthreads();
        const int warp = tid >> 5, lane = tid & 31;
        for (int g = warp; g < gb; g += V1_THREADS / 32) {
            float v[V1_KT / 32], mx = -INFINITY;
#pragma unroll
            for (int i = 0; i < V1_KT / 32; i++) {
                v[i] = sc[g][lane + 32 * i];
                mx = fmaxf(mx, v[i]);
            }
            mx = lq_warp_max(mx);
            float m_old = m_s[g], m_new = fmaxf(m_old, mx), sum = 0.0f; /* m_new finite: nk >= 1 */
#pragma unroll
            for (int i = 0; i < V1_KT / 32; i++) {
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
        for (int g = 0; g < V1_GMAX; g++) {
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
            for (int g = 0; g < V1_GMAX; g++) {
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
        for (int g = 0; g < V1_GMAX; g++) red[ks][g][dsl] = o[g][0];
        __syncthreads();
        for (int i = tid; i < gb * HD; i += V1_THREADS) {
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
__global__ void attn_decode_v1_reduce_kernel(TK *out, const float *ws_o, const float *ws_ml, int nh, int ns) {
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


/* Launch v1 (workspace layout as mainline: ws_o (B, nh, ns, HD) then ws_ml (B, nh, ns, 2)). */
template <typename TK, int HD>
static void decode_v1_launch(void *out, const float *q, const void *kc, const void *vc, int64_t seq_stride, int B,
                             const int32_t *pos, int nh, int nkv, int window, int ns, void *ws, cudaStream_t s) {
    float *ws_o = (float *)ws;
    float *ws_ml = ws_o + (size_t)B * nh * ns * HD;
    int group = nh / nkv;
    dim3 grid((unsigned)ns, (unsigned)(nkv * ((group + V1_GMAX - 1) / V1_GMAX)), (unsigned)B);
    attn_decode_v1_kernel<TK, HD><<<grid, V1_THREADS, 0, s>>>(ws_o, ws_ml, q, (const TK *)kc, (const TK *)vc,
                                                             seq_stride, pos, nh, nkv, window, ns,
                                                             (float)(1.0 / sqrt((double)HD)));
    attn_decode_v1_reduce_kernel<TK, HD><<<dim3((unsigned)nh, (unsigned)B), HD < 32 ? 32 : (HD > 128 ? 128 : HD), 0, s>>>(
        (TK *)out, ws_o, ws_ml, nh, ns);
}
