/* attention_prefill_wmma.cuh — the WMMA prefill kernel that kernels/attention_cuda.cu
 * ran for fp16/bf16 caches (head_dim 32/64/128) until 2026-12-01, when the
 * FlashAttention-2-style kernel (kernels/attention_fa_cuda.cu) replaced it:
 * llama3-8b shapes, T = 2048 on the H200, 826 us per layer under ncu
 * (~42 TFLOP/s) against 161 us for the new kernel. Kept for comparison only;
 * not compiled into the library. To time it, include this file after
 * cuda_common.cuh and <mma.h> in a dev program and call prefill_tc(). */
/* ---- prefill on the tensor cores (fp16 / bf16 caches, head_dim 32/64/128) ----
 * One block of 4 warps per (64-query tile, head, sequence); each warp owns 16
 * query rows. Per 64-key tile: S = Q K^T with WMMA (16x16x16, fp32
 * accumulate) into shared memory, the online softmax in fp32 by 2 lanes per
 * row (running max / sum in registers), P rounded to the cache dtype, and
 * O += P V with WMMA on an fp32 O kept in shared memory (rescaled by the
 * softmax correction before each update). Q is rounded to the cache dtype
 * (the tensor cores take 16-bit operands); scores, softmax and O stay fp32. */
#define TC_BQ 64
#define TC_BK 64
#define TC_THREADS 128

template <int HD> struct tc_geom {
    static constexpr int LDQ = HD + 8;     /* 16-bit rows padded by 16 bytes (bank conflicts; wmma ldm % 8 == 0) */
    static constexpr int LDS = TC_BK + 4;  /* fp32 score rows */
    static constexpr int LDP = TC_BK + 8;  /* 16-bit probability rows */
    static constexpr int LDO = HD + 4;     /* fp32 output rows */
    static constexpr size_t Q_OFF = 0, K_OFF = Q_OFF + 2 * TC_BQ * LDQ, V_OFF = K_OFF + 2 * TC_BK * LDQ,
                            S_OFF = V_OFF + 2 * TC_BK * LDQ, P_OFF = S_OFF + 4 * TC_BQ * LDS,
                            O_OFF = P_OFF + 2 * TC_BQ * LDP, BYTES = O_OFF + 4 * TC_BQ * LDO;
    static_assert(Q_OFF % 32 == 0 && K_OFF % 32 == 0 && V_OFF % 32 == 0 && S_OFF % 32 == 0 && P_OFF % 32 == 0 &&
                      O_OFF % 32 == 0,
                  "wmma needs 32-byte aligned tiles");
};

template <typename TK, int HD>
__global__ void __launch_bounds__(TC_THREADS)
    attn_prefill_tc_kernel(TK *out, const float *q, int64_t ldq, const TK *kc, const TK *vc, int64_t seq_stride, int T,
                           int pos0, int nh, int nkv, int window, float scale) {
    using namespace nvcuda;
    typedef tc_geom<HD> Gm;
    constexpr int LDQ = Gm::LDQ, LDS = Gm::LDS, LDP = Gm::LDP, LDO = Gm::LDO;
    constexpr int VEC = 8; /* 16-bit elements per 16-byte vector */
    extern __shared__ __align__(128) unsigned char smem_tc[];
    TK *Qs = (TK *)(smem_tc + Gm::Q_OFF);
    TK *Ks = (TK *)(smem_tc + Gm::K_OFF);
    TK *Vs = (TK *)(smem_tc + Gm::V_OFF);
    float *S = (float *)(smem_tc + Gm::S_OFF);
    TK *Pm = (TK *)(smem_tc + Gm::P_OFF);
    float *O = (float *)(smem_tc + Gm::O_OFF);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int t0 = blockIdx.x * TC_BQ, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (nh / nkv), kvd = nkv * HD;
    const int nq = min(TC_BQ, T - t0);
    const TK *kb = kc + (int64_t)b * seq_stride + kvh * HD;
    const TK *vb = vc + (int64_t)b * seq_stride + kvh * HD;

    for (int i = tid; i < TC_BQ * HD; i += TC_THREADS) {
        int r = i / HD, d = i % HD;
        Qs[r * LDQ + d] = lq_st<TK>(r < nq ? q[((int64_t)b * T + t0 + r) * ldq + h * HD + d] : 0.0f);
        O[r * LDO + d] = 0.0f;
    }
    const int p_first = pos0 + t0, p_last = pos0 + t0 + nq - 1;
    const int k_lo = window > 0 ? max(0, p_first - window + 1) : 0, k_hi = p_last;
    /* softmax role: row r of this warp's 16, columns half*32 .. half*32+31 */
    const int r = warp * 16 + lane / 2, half = lane & 1;
    const int p_row = pos0 + t0 + r, lo_row = window > 0 ? p_row - window + 1 : 0;
    float m = -INFINITY, l = 0.0f;

    for (int k0 = (k_lo / TC_BK) * TC_BK; k0 <= k_hi; k0 += TC_BK) {
        __syncthreads();
        for (int i = tid; i < TC_BK * (HD / VEC); i += TC_THREADS) {
            int kk = i / (HD / VEC), c = (i % (HD / VEC)) * VEC, key = k0 + kk;
            uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
            if (key >= k_lo && key <= k_hi) { /* zeros outside: no NaN from unwritten rows */
                kv4 = *(const uint4 *)(kb + (int64_t)key * kvd + c);
                vv4 = *(const uint4 *)(vb + (int64_t)key * kvd + c);
            }
            *(uint4 *)(Ks + kk * LDQ + c) = kv4;
            *(uint4 *)(Vs + kk * LDQ + c) = vv4;
        }
        __syncthreads();
        /* S (this warp's 16 rows x 64 keys) = Q K^T */
#pragma unroll
        for (int j = 0; j < TC_BK / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kd = 0; kd < HD / 16; kd++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, TK, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, TK, wmma::col_major> fb;
                wmma::load_matrix_sync(fa, Qs + warp * 16 * LDQ + kd * 16, LDQ);
                wmma::load_matrix_sync(fb, Ks + j * 16 * LDQ + kd * 16, LDQ);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(S + warp * 16 * LDS + j * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax of row r over this tile (the row's two lanes are adjacent) */
        float sv[32], mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int c = half * 32 + i, key = k0 + c;
            bool valid = r < nq && key <= p_row && key >= lo_row && key >= k_lo;
            sv[i] = valid ? S[r * LDS + c] * scale : -INFINITY;
            mx = fmaxf(mx, sv[i]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float m_new = fmaxf(m, mx), alpha = 1.0f, sum = 0.0f;
        if (m_new != -INFINITY) alpha = expf(m - m_new);
#pragma unroll
        for (int i = 0; i < 32; i++) {
            float pv = m_new == -INFINITY ? 0.0f : expf(sv[i] - m_new);
            TK pt = lq_st<TK>(pv);
            Pm[r * LDP + half * 32 + i] = pt;
            sum += lq_ld(pt); /* the sum of what P·V multiplies */
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = m_new;
#pragma unroll 8
        for (int c = half * (HD / 2); c < (half + 1) * (HD / 2); c++) O[r * LDO + c] *= alpha;
        __syncwarp();
        /* O (16 x HD) += P (16 x 64) V (64 x HD) */
#pragma unroll
        for (int j = 0; j < HD / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, O + warp * 16 * LDO + j * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < TC_BK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, TK, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, TK, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Pm + warp * 16 * LDP + kk * 16, LDP);
                wmma::load_matrix_sync(fb, Vs + kk * 16 * LDQ + j * 16, LDQ);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(O + warp * 16 * LDO + j * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    if (r < nq) {
        TK *orow = out + (((int64_t)b * T + t0 + r) * nh + h) * HD;
        for (int c = half * (HD / 2); c < (half + 1) * (HD / 2); c++) orow[c] = lq_st<TK>(O[r * LDO + c] / l);
    }
}

template <typename TK, int HD>
static lq_status launch_prefill_tc(void *out, const float *q, int64_t ldq, const void *kc, const void *vc,
                                   int64_t seq_stride, int B, int T, int pos0, int nh, int nkv, int window,
                                   cudaStream_t s) {
    size_t smem = tc_geom<HD>::BYTES;
    LQ_CUDA_RET(cudaFuncSetAttribute(attn_prefill_tc_kernel<TK, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem),
                "cudaFuncSetAttribute(attn_prefill_tc_kernel shared memory)");
    dim3 grid((unsigned)((T + TC_BQ - 1) / TC_BQ), (unsigned)nh, (unsigned)B);
    attn_prefill_tc_kernel<TK, HD><<<grid, TC_THREADS, smem, s>>>((TK *)out, q, ldq, (const TK *)kc, (const TK *)vc,
                                                                 seq_stride, T, pos0, nh, nkv, window,
                                                                 (float)(1.0 / sqrt((double)HD)));
    LQ_LAUNCH_RET("attn_prefill_tc_kernel");
    return LQ_OK;
}

/* Tensor-core path for 16-bit caches with head_dim 32, 64 or 128; returns
 * LQ_ERR_UNSUPPORTED (no message) when it does not apply. */
static lq_status prefill_tc(void *out, const float *q, int64_t ldq, const void *kc, const void *vc, lq_dtype dt,
                            int64_t seq_stride, int B, int T, int pos0, int nh, int nkv, int hd, int window,
                            cudaStream_t s) {
#define LQ_TC_HD(TY)                                                                                          \
    switch (hd) {                                                                                             \
    case 32: return launch_prefill_tc<TY, 32>(out, q, ldq, kc, vc, seq_stride, B, T, pos0, nh, nkv, window, s);  \
    case 64: return launch_prefill_tc<TY, 64>(out, q, ldq, kc, vc, seq_stride, B, T, pos0, nh, nkv, window, s);  \
    case 128: return launch_prefill_tc<TY, 128>(out, q, ldq, kc, vc, seq_stride, B, T, pos0, nh, nkv, window, s); \
    default: return LQ_ERR_UNSUPPORTED;                                                                       \
    }
    if (dt == LQ_F16) LQ_TC_HD(__half)
    if (dt == LQ_BF16) LQ_TC_HD(__nv_bfloat16)
#undef LQ_TC_HD
    return LQ_ERR_UNSUPPORTED;
}

