/* w4a16_cuda.cu — W4A16 matrix products with the dequantization fused in:
 * y (M, N) fp32 = x (M, K) fp16 · W^T (+ b), W held as 4-bit codes in the
 * mma layout of libquant/lq_w4a16.h. The CUDA twin of lq_w4a16_matmul_ref.
 *
 * Four paths, one launcher (lq_w4a16_matmul_cuda; path 0 picks):
 *  - small M (M <= LQ_W4A16_SMALL_MAX_M = 64, decode and small batches): a
 *    streaming kernel that keeps each warp's codes in a register ring
 *    (w4s_depth 16-byte loads in flight), multiplies them on the tensor
 *    cores with the weights as the A operand (one dequantized sub-tile
 *    feeds one mma per 8 rows of x), and splits K among the warps of a
 *    block (partial sums added in shared memory) and, when x does not fit
 *    one block or the grid needs it, across blocks (a second kernel adds
 *    the slices; deterministic either way). Described at
 *    w4a16_small_m_kernel.
 *  - fused (M <= LQ_W4A16_FUSED_MAX_M): tensor cores (mma.sync m16n8k16,
 *    fp16 in, fp32 accumulate). Each warp owns 32 output columns (two 16-row
 *    blocks of W) and streams their codes straight from device memory, one
 *    16-byte load per lane per 16 x 64 tile (the layout puts every lane's
 *    codes in its own word), through a per-warp cp.async ring W4_STAGES tile
 *    pairs deep; the codes become fp16 in registers (one LOP3 per pair, then
 *    (c - z) * s), never in memory. The block's 8 warps share one K-slice of
 *    the activations, staged once in shared memory (min(M, 16 MT) rows and a
 *    zero row) and read with ldmatrix. K is split across blocks until the grid fills the
 *    GPU; a second small kernel adds the partial sums in split order
 *    (deterministic: no float atomics) and the bias. M-chunks of
 *    16/32/64 rows per pass; larger M re-reads the codes per 64 rows.
 *  - large M: dequantize the whole weight to fp16 into the workspace (one
 *    pass, memory-bound), then cuBLAS fp16 GEMM with fp32 accumulation. The
 *    dequantization costs about (N K / 2 + 2 N K) bytes of traffic, small
 *    next to the GEMM once M is in the thousands.
 *  - wgmma (sm_90a): a warpgroup-MMA GEMM that dequantizes the codes in
 *    registers as wgmma's A operand, x from shared memory; no fp16 copy of
 *    W. Path 0 takes it at LQ_W4A16_WGMMA_MIN_M..MAX_M rows, where it was
 *    measured faster. Described at w4a16_wgmma_kernel; for a gate|up pair
 *    uploaded by lq_w4a16_upload_swiglu its epilogue can be the SwiGLU
 *    (lq_w4a16_swiglu_cuda).
 *
 * Precision: the tensor cores get f16((code - zero) * scale) — the product
 * rounded once to fp16, as the reference defines — and accumulate in fp32.
 * Tested by tests/test_w4a16_gpu.c against lq_w4a16_matmul_ref; timed by
 * `lq bench kernels --w4a16` (kernels/bench_cuda.cu). */
#include "cuda_common.cuh"
#include <cuda.h> /* CUtensorMap (types only: the encoder comes through cudaGetDriverEntryPointByVersion) */

extern "C" {
#include "lq_kernels.h"
}

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

#define W4_WARPS 8          /* warps per block; each owns 32 output columns */
#define W4_COLS (32 * W4_WARPS)
#define W4_STAGES 6         /* per-warp cp.async ring depth (pairs of 16x64 code tiles) */
#define W4_SMEM_A_MAX (46 * 1024) /* with the 64 KB ring: two blocks per SM */
#define W4_SMEM_RING (W4_WARPS * W4_STAGES * (64 + 16) * 16) /* codes + group data */

/* ---------------- the fused kernel ---------------- */

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<uint32_t *>(&h); }
__device__ __forceinline__ __half2 bits_h2(uint32_t u) { return *reinterpret_cast<__half2 *>(&u); }

__device__ __forceinline__ void mma_16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t *a, const __half *p) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(addr));
}

/* Streaming 16-byte load that skips L1 (every code is read once). */
__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 v;
    asm volatile("ld.global.cs.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* Per-tile constants of one lane and one 16-row block: fp16 scales of rows
 * n0 and n1 for the two 32-input halves of the tile, and the negated
 * offsets that turn the LOP3 results into (code - zero):
 *   lo pair: (1024 + c) - (1024 + z)        hi pair: (1024 + 16 c) / 16 - (64 + z)
 * all exact in fp16 (small integers); only the final * scale rounds. */
struct tile_consts {
    __half2 s0[2], s1[2]; /* [half of tile]: scale of row n0 / n1, splatted */
    __half2 a0[2], a1[2]; /* -(1024 + z) of row n0 / n1 */
    __half2 b0[2], b1[2]; /* -(64 + z) */
};

template <bool SYM>
__device__ __forceinline__ void tile_setup(tile_consts &c, uint4 g) {
    const __half2 s_lo = bits_h2(g.x), s_hi = bits_h2(g.y);
    c.s0[0] = __low2half2(s_lo);
    c.s1[0] = __high2half2(s_lo);
    c.s0[1] = __low2half2(s_hi);
    c.s1[1] = __high2half2(s_hi);
    if (SYM) {
        const __half2 A = bits_h2(0xE408E408u), B = bits_h2(0xD480D480u); /* -1032, -72: zero point 8 */
        c.a0[0] = c.a0[1] = c.a1[0] = c.a1[1] = A;
        c.b0[0] = c.b0[1] = c.b1[0] = c.b1[1] = B;
    } else {
        const __half2 n1024 = bits_h2(0xE400E400u), n64 = bits_h2(0xD400D400u);
        const __half2 z_lo = bits_h2(g.z), z_hi = bits_h2(g.w);
        const __half2 z[2][2] = {{__low2half2(z_lo), __high2half2(z_lo)}, {__low2half2(z_hi), __high2half2(z_hi)}};
#pragma unroll
        for (int h = 0; h < 2; h++) {
            c.a0[h] = __hsub2(n1024, z[h][0]);
            c.a1[h] = __hsub2(n1024, z[h][1]);
            c.b0[h] = __hsub2(n64, z[h][0]);
            c.b1[h] = __hsub2(n64, z[h][1]);
        }
    }
}

/* One 16-input step (sub-tile j, tile half h = j / 2): word -> B fragments
 * b[0], b[1] of n-tile 0 (row n0) and b[2], b[3] of n-tile 1 (row n1). */
__device__ __forceinline__ void dequant_step(uint32_t w, const tile_consts &c, int h, uint32_t *b) {
    const __half2 r16 = bits_h2(0x2c002c00u); /* 1/16 */
    const uint32_t w8 = w >> 8;
    const __half2 lo0 = bits_h2((w & 0x000F000Fu) | 0x64006400u);  /* 1024 + c(n0, 2q | 2q+1) */
    const __half2 hi0 = bits_h2((w & 0x00F000F0u) | 0x64006400u);  /* 1024 + 16 c(n0, 2q+8 | 2q+9) */
    const __half2 lo1 = bits_h2((w8 & 0x000F000Fu) | 0x64006400u); /* row n1 */
    const __half2 hi1 = bits_h2((w8 & 0x00F000F0u) | 0x64006400u);
    b[0] = h2_bits(__hmul2(__hadd2(lo0, c.a0[h]), c.s0[h]));
    b[1] = h2_bits(__hmul2(__hfma2(hi0, r16, c.b0[h]), c.s0[h]));
    b[2] = h2_bits(__hmul2(__hadd2(lo1, c.a1[h]), c.s1[h]));
    b[3] = h2_bits(__hmul2(__hfma2(hi1, r16, c.b1[h]), c.s1[h]));
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(a), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* grid (column tiles, K splits, M chunks), block 32 * W4_WARPS; each warp
 * owns 32 output columns (two 16-row blocks of W, so that every activation
 * fragment read from shared memory feeds four MMAs per m-tile), MT m16 tiles
 * (16 MT rows of x) per pass.
 * Each warp streams its 16 x 64 code tiles (and their group scales / zeros)
 * through a private W4_STAGES-deep ring in shared memory with cp.async: every
 * lane copies and later reads only its own slots, so the ring needs no
 * barriers, and W4_STAGES - 1 tile pairs per warp are always in flight.
 * Each version's time, prediction and outcome: kernels/dev/w4a16_notes.md. */
template <int MT, bool SYM>
__global__ void __launch_bounds__(32 * W4_WARPS, 2)
w4a16_mma_kernel(float *__restrict__ y, const __half *__restrict__ x, int64_t ldx, const uint4 *__restrict__ qw,
                 const uint32_t *__restrict__ sc, const uint32_t *__restrict__ zr, const float *__restrict__ bias,
                 int64_t M, int64_t N, int64_t K, int64_t Np, int64_t KB, int64_t G, int64_t n_groups, int kb_per_split,
                 int vec_x, int arows, float *__restrict__ ws) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int MC = 16 * MT;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int S = gridDim.y, split = blockIdx.y;
    const int64_t kb0 = (int64_t)split * kb_per_split;
    int64_t kb1 = kb0 + kb_per_split;
    if (kb1 > KB) kb1 = KB;
    const int nkb = kb1 > kb0 ? (int)(kb1 - kb0) : 0;
    const int KS = kb_per_split * 64;  /* slice width (halves) */
    const int lda = KS + 8;            /* +16 bytes: ldmatrix rows land in distinct banks */
    uint4 *ring_w = reinterpret_cast<uint4 *>(smem_raw); /* [W4_WARPS][W4_STAGES][2 row blocks][32 lanes] */
    uint4 *ring_g = ring_w + W4_WARPS * W4_STAGES * 64;  /* [W4_WARPS][W4_STAGES][16]: scales lo, hi; zeros lo, hi */
    __half *As = reinterpret_cast<__half *>(ring_g + W4_WARPS * W4_STAGES * 16); /* [MC][lda] */
    const int64_t m0 = (int64_t)blockIdx.z * MC;
    const int64_t nb = ((int64_t)blockIdx.x * W4_WARPS + warp) * 2; /* this warp's first n16 block */
    const bool warp_on = nb * 16 < Np; /* then nb + 1 is too: Np is a multiple of 32 */
    const uint4 *wp = qw + ((nb * KB + kb0) * 32 + lane);
    const int64_t wstride = KB * 32; /* uint4 from one n16 block to the next */
    uint4 *my_w = ring_w + warp * W4_STAGES * 64 + lane;
    uint4 *warp_g = ring_g + warp * W4_STAGES * 16; /* shared by the warp's lanes */
    /* group of each 32-input half of a tile: h = 2 kb (+1), g = h / (G / 32) —
     * a shift for power-of-two G, a 32-bit division otherwise, 0 per channel
     * (a 64-bit division here cost more than the whole tile's arithmetic) */
    const int gpk = (int)(G >> 5), gshift = gpk > 0 && (gpk & (gpk - 1)) == 0 ? __ffs(gpk) - 1 : -1;
    const int ng = (int)n_groups, np2 = (int)(Np >> 1);

    auto issue = [&](int t, int st) { /* tile pair kb0 + t into ring slot st */
        uint4 *dw = my_w + st * 64;
        cp_async16(dw, wp + t * 32);
        cp_async16(dw + 32, wp + wstride + t * 32);
        const int h = 2 * ((int)kb0 + t);
        int g0 = 0, g1 = 0;
        if (ng > 1) {
            g0 = gshift >= 0 ? h >> gshift : h / gpk;
            g1 = gshift >= 0 ? (h + 1) >> gshift : (h + 1) / gpk;
            g0 = g0 < ng ? g0 : ng - 1;
            g1 = g1 < ng ? g1 : ng - 1;
        }
        /* the warp's 32 rows of one group are 64 contiguous bytes (rows nb*16 ..
         * nb*16 + 31 of the group-major, pair-interleaved layout): lanes 0-3
         * copy the scales of the low half, 4-7 the high half, 8-15 the zeros */
        if (lane < (SYM ? 8 : 16)) {
            const int part = lane >> 2, g = (part & 1) ? g1 : g0;
            const uint32_t *src = ((part & 2) ? zr : sc) + (g * np2 + (int)(nb * 8)) + (lane & 3) * 4;
            cp_async16(warp_g + st * 16 + lane, src);
        }
    };
    /* the first W4_STAGES - 1 tile pairs in flight before anything else */
#pragma unroll
    for (int t = 0; t < W4_STAGES - 1; t++) {
        if (warp_on && t < nkb) issue(t, t);
        cp_async_commit();
    }

    /* activations of this slice -> shared memory: the arows = min(MC, M) rows
     * that can hold data, then one zero row that ldmatrix reads for every row
     * beyond them (so M = 1 stores 2 rows, not 16: the shared memory goes to
     * more resident blocks); zero outside (M, K). (An
     * experiment that read the fragments of M <= 16 straight from global
     * memory, to leave all shared memory to the rings, ran slower: 62 vs
     * 45 us on gate_up, M = 1) */
    {
        const int per_row = KS / 8, chunks = (arows + 1) * per_row; /* 8 halves each */
        for (int c = tid; c < chunks; c += blockDim.x) {
            int r = c / per_row, kc = (c - r * per_row) * 8;
            int64_t gm = m0 + r, gk = kb0 * 64 + kc;
            __half *dst = As + r * lda + kc;
            if (r < arows && gm < M && vec_x && gk + 8 <= K) {
                *reinterpret_cast<uint4 *>(dst) = __ldg(reinterpret_cast<const uint4 *>(x + gm * ldx + gk));
            } else if (r >= arows || gm >= M || gk >= K) {
                *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) dst[e] = gk + e < K ? x[gm * ldx + gk + e] : __float2half(0.0f);
            }
        }
    }
    __syncthreads();

    float acc[MT][4][4]; /* [m-tile][n-tile of 8 columns: 0,1 row block 0; 2,3 row block 1][fragment] */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.0f;

    const __half *a_row[MT]; /* this lane's ldmatrix row of each m-tile (the zero row past arows) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int r = mt * 16 + (lane & 15);
        a_row[mt] = As + (r < arows ? r : arows) * lda + (lane >> 4) * 8;
    }
    int st_issue = W4_STAGES - 1, st_read = 0;
    for (int t = 0; t < nkb; t++) {
        if (warp_on && t + W4_STAGES - 1 < nkb) issue(t + W4_STAGES - 1, st_issue);
        st_issue = st_issue + 1 == W4_STAGES ? 0 : st_issue + 1;
        cp_async_commit();
        cp_async_wait<W4_STAGES - 1>(); /* this lane's copies of tile pair t have landed */
        __syncwarp();                   /* ... and those of the lanes that copied the group data */
        if (warp_on) {
            const uint4 w0 = my_w[st_read * 64], w1 = my_w[st_read * 64 + 32];
            const uint32_t *gw = reinterpret_cast<const uint32_t *>(warp_g + st_read * 16);
            const int r2 = lane >> 2; /* this lane's (n0, n1) pair in a 16-row block */
            tile_consts c0, c1;
            tile_setup<SYM>(c0, make_uint4(gw[r2], gw[16 + r2], SYM ? 0u : gw[32 + r2], SYM ? 0u : gw[48 + r2]));
            tile_setup<SYM>(c1, make_uint4(gw[8 + r2], gw[24 + r2], SYM ? 0u : gw[40 + r2], SYM ? 0u : gw[56 + r2]));
            const uint32_t words0[4] = {w0.x, w0.y, w0.z, w0.w}, words1[4] = {w1.x, w1.y, w1.z, w1.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t a[MT][4], b0[4], b1[4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) ldmatrix_x4(a[mt], a_row[mt] + t * 64 + j * 16);
                dequant_step(words0[j], c0, j >> 1, b0);
                dequant_step(words1[j], c1, j >> 1, b1);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_16816(acc[mt][0], a[mt], b0[0], b0[1]);
                    mma_16816(acc[mt][1], a[mt], b0[2], b0[3]);
                    mma_16816(acc[mt][2], a[mt], b1[0], b1[1]);
                    mma_16816(acc[mt][3], a[mt], b1[2], b1[3]);
                }
            }
        }
        st_read = st_read + 1 == W4_STAGES ? 0 : st_read + 1;
    }

    /* epilogue: fragment (mt, nt): rows mt*16 + lane/4 (+8), columns
     * 8 nt + 2 (lane%4) (+1) of the warp's 32 (n-tiles 0,1: row block nb; 2,3: nb + 1) */
    const int64_t rows = M - m0 < MC ? M - m0 : MC; /* valid rows of this chunk */
    if (S == 1) {
        if (!warp_on) return;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = mt * 16 + (lane >> 2) + (e >= 2 ? 8 : 0);
                    int64_t col = nb * 16 + nt * 8 + 2 * (lane & 3) + (e & 1);
                    if (r < rows && col < N) y[(m0 + r) * N + col] = acc[mt][nt][e] + (bias ? bias[col] : 0.0f);
                }
        return;
    }
    /* split K: partial tile -> workspace [tile][split][MC][W4_COLS] (valid rows only); w4a16_reduce_kernel adds them */
    const int64_t tile = (int64_t)blockIdx.z * gridDim.x + blockIdx.x;
    float *part = ws + (tile * S + split) * (int64_t)(MC * W4_COLS);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = mt * 16 + (lane >> 2) + (e >= 2 ? 8 : 0);
                int cl = warp * 32 + nt * 8 + 2 * (lane & 3) + (e & 1);
                if (r < rows) part[r * W4_COLS + cl] = acc[mt][nt][e];
            }
}

/* y[m, n] = bias[n] + sum over splits of the partial tiles, in split order
 * (deterministic). One thread per output, consecutive n in a warp.
 * (A first version let the last block of each column tile add the partials
 * itself: one block then read S x rows x 256 values alone, a serial tail of
 * several microseconds at M = 16.) */
__global__ void w4a16_reduce_kernel(float *__restrict__ y, const float *__restrict__ ws, const float *__restrict__ bias,
                                    int64_t M, int64_t N, int MC, int S, int tiles) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * N) return;
    int64_t m = i / N, n = i - m * N;
    int64_t chunk = m / MC, r = m - chunk * MC, tile = chunk * tiles + n / W4_COLS, cl = n % W4_COLS;
    const float *p = ws + (tile * S) * (int64_t)(MC * W4_COLS) + r * W4_COLS + cl;
    float sum = bias ? bias[n] : 0.0f;
    for (int s = 0; s < S; s++) sum += __ldg(p + (int64_t)s * (MC * W4_COLS));
    y[i] = sum;
}

/* h = silu(g) * u for 8 hidden units of x row m (lq_swiglu_cuda's formula; no bias: the SwiGLU epilogues of the small-M and
 * wgmma kernels are launched without), written as one 16-byte store of fp16 or bf16 (hbf16) at hout[m][nh ..]; H % 64 == 0, so a
 * row's 8 units are all inside or all outside */
__device__ __forceinline__ void wgm_swiglu8(const float (&g)[8], const float (&u)[8], void *__restrict__ hout,
                                            int hbf16, int M, int H, int m, int nh) {
    uint32_t o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float h0 = __fmul_rn(__fdiv_rn(g[2 * j], __fadd_rn(1.0f, expf(-g[2 * j]))), u[2 * j]);
        const float h1 = __fmul_rn(__fdiv_rn(g[2 * j + 1], __fadd_rn(1.0f, expf(-g[2 * j + 1]))), u[2 * j + 1]);
        if (hbf16) {
            const __nv_bfloat162 p = __floats2bfloat162_rn(h0, h1);
            o[j] = *reinterpret_cast<const uint32_t *>(&p);
        } else {
            const __half2 p = __floats2half2_rn(h0, h1);
            o[j] = *reinterpret_cast<const uint32_t *>(&p);
        }
    }
    if (m < M && nh < H)
        *reinterpret_cast<uint4 *>(reinterpret_cast<char *>(hout) + ((int64_t)m * H + nh) * 2) =
            make_uint4(o[0], o[1], o[2], o[3]);
}

/* ---------------- the small-M kernel (M <= LQ_W4A16_SMALL_MAX_M) ----------------
 *
 * Why a second kernel: at M = 1 the fused kernel above is latency-bound (ncu
 * on gate_up: DRAM 35 %, 1.15 eligible warps per scheduler) — its codes pass
 * through a per-warp cp.async ring in shared memory, each tile pays a wait,
 * the group setup and ldmatrix, and split K costs a second kernel. Here the
 * only goal is to keep enough code bytes in flight and to spend few
 * instructions per byte:
 *  - each warp owns one 16-row block and a contiguous range of its K tiles
 *    and keeps DEPTH tiles (16 bytes per lane, 3 KB per warp at 6) in flight
 *    in a rolling register ring: the load of tile t + DEPTH goes into
 *    tile t's registers as soon as its last word is consumed: the codes never
 *    pass through shared memory, and no wait or barrier sits between DRAM
 *    and the math;
 *  - the mma roles are swapped: the weight tile is the A operand (16 rows x
 *    16 inputs — the layout's words are exactly its fragments) and x is B
 *    (16 inputs x 8 columns = activation rows, 8 of them per n-tile), so one
 *    m16n8k16 covers a whole 16 x 16 sub-tile for 8 rows of x: 4 NT mma per
 *    512-byte tile for M <= 8 NT rows, one dequantization whatever NT is, no
 *    ldmatrix, and the K reduction across the lanes of a warp happens inside
 *    the tensor core (no shuffles).
 *    Products fp16 x fp16 exact, fp32 accumulation, as in the fused kernel;
 *  - the B fragments come from shared memory where the block stages its
 *    slice of the activations once, permuted so that a lane's 8 half2 of a
 *    tile (inputs 16j + 2q + {0,1,8,9}, j = 0..3) are 32 contiguous bytes:
 *    2 LDS.128 per tile and n-tile; the block's group scales / zeros are
 *    staged next to them;
 *  - K is split across the S warps of a row block inside the block; their
 *    partial sums meet in shared memory and are added in warp order
 *    (deterministic, no atomics); with KS > 1 slices across blocks (x of M
 *    rows is M Kp 2 bytes: 458 KB for down at M = 16) the blocks' sums go
 *    to the workspace and w4a16_small_reduce_kernel adds them in order.
 * A block holds B row blocks x S warps of one K slice (plan_small picks
 * them, see there).
 * Cost per 16 x 64 tile and warp (sm_90a SASS, symmetric g128): 1 LDG.128,
 * 2 LDS.128, 4 x 13 dequantization (SHF, 4 LOP3, 2 HADD2, 2 HFMA2, 4 HMUL2 per
 * word), 4 HMMA, ~20 for the group constants, guards and addresses: ~79
 * (asym g128 ~82, asym g32 ~104), i.e. ~9 us of issue for gate_up on 132
 * SMs, under the 14.4 us DRAM floor. With integer weights (ISC, M <= 8, see
 * small_isc) the dequantization is 4 x 9 and 4 FFMA apply the scale: ~67. Each further n-tile adds 4 HMMA and
 * 2 LDS.128 (1 KB of shared-memory reads) per tile. kernels/dev/w4a16_notes.md
 * has the predictions and the measurements. */

/* Phase stamps for kernels/dev/bench_w4_trace.cu, which includes this file with LQ_W4_TRACE defined: thread 0
 * of every block of the wgmma kernel (and of the small-M kernel: entry, after the PDL wait, x staged, warp 0's
 * loop done, every warp's loop done, exit) takes a ticket at entry (the launch = ticket / blocks: with PDL a launch's
 * blocks enter only after all of the previous launch's have) and writes %globaltimer (ns) at each phase into
 * lq_wg_trace, one row of WG_TRACE_ROW per (launch, block), each stamp with the SM clock (clock64) beside it for
 * the phases inside a block. Without LQ_W4_TRACE (every build of make) these are empty. */
#define WG_TRACE_N 6 /* entry, after the PDL wait, tile 0 dequantized, the middle step, loop end, exit */
#define WG_TRACE_ROW (2 * WG_TRACE_N) /* a row: the WG_TRACE_N %globaltimer stamps (ns), then the same stamps in SM clocks (clock64) */
#ifdef LQ_W4_TRACE
/* the last launch's route (host side): slices, summed in clusters (1) or the workspace (0), clusters of ks
 * that run at once (-1: none / not asked), tiles */
static int lq_wg_route[4];
__device__ unsigned long long *lq_wg_trace;
__device__ unsigned int lq_wg_trace_seq;
__device__ int lq_wg_trace_launches;
__device__ __forceinline__ unsigned long long wg_gtime(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
#define WG_TRACE_INIT()                                                                                         \
    unsigned long long *wg_tr = nullptr;                                                                        \
    if (threadIdx.x == 0 && lq_wg_trace) {                                                                      \
        const unsigned blk = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z),                    \
                       nblk = gridDim.x * gridDim.y * gridDim.z, tk = atomicAdd(&lq_wg_trace_seq, 1u);          \
        if ((int)(tk / nblk) < lq_wg_trace_launches) wg_tr = lq_wg_trace + ((size_t)(tk / nblk) * nblk + blk) * WG_TRACE_ROW; \
    }
#define WG_TRACE(i)                                                                                             \
    do {                                                                                                        \
        if (wg_tr) wg_tr[i] = wg_gtime(), wg_tr[WG_TRACE_N + (i)] = (unsigned long long)clock64();            \
    } while (0)
#else
#define WG_TRACE_INIT()
#define WG_TRACE(i) \
    do {            \
    } while (0)
#endif

/* Warps per block, and with them the register bound (__launch_bounds__(32 W,
 * 1): 65536 / (32 W) registers per thread), by n-tiles of 8 rows of x: up
 * to 2 n-tiles (M <= 16) the 64 registers of 32 warps hold the ring, the
 * 4 NT accumulators and the NT x-fragments of a sub-tile pair; 4 and 8
 * n-tiles (16 and 32 accumulators, 16 and 32 fragment registers) get 128
 * registers and 16 warps. */
__host__ __device__ constexpr int w4s_max_warps(int nt) { return nt <= 2 ? 32 : 16; }
/* Code tiles in flight per warp (16 bytes per lane each: 4 registers): the
 * largest rings without spills at the register bound (ptxas -v, sm_90a and
 * sm_80). NT = 1: a ring of 8 spilled; asymmetric with two groups per tile
 * holds 12 more constants (6 spilled there). NT = 2 (64 registers): 5 sym,
 * 4 asym G2, 3 asym (4 spilled). NT = 4 / 8 (128 registers): 6; 5 for sym
 * with one group per tile at NT = 8 (6 spilled). */
__host__ __device__ constexpr int w4s_depth(int nt, bool sym, bool g2) {
    return nt == 1   ? (g2 && !sym ? 5 : 6)
           : nt == 2 ? (sym ? 5 : g2 ? 4 : 3)
           : nt == 8 && sym && !g2 ? 5
                                   : 6;
}

/* Streaming 16-byte load: read-only path, not kept in L1 (every code is read
 * once). Volatile so that it stays where it is written: before the staging
 * and its barrier, and one ring slot ahead in the loop — a pure asm could be
 * sunk towards its use to relieve the 64-register bound, which would undo
 * the prefetch. */
__device__ __forceinline__ uint4 ld_nc_stream(const uint4 *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* Constants of one lane, one group: scales of rows n0 / n1 splatted, and the
 * offsets that turn the LOP3 results into (code - zero) exactly (as
 * tile_consts above). */
struct small_consts {
    __half2 s0, s1; /* scale of row n0 / n1 */
    __half2 a0, a1; /* -(1024 + z) */
    __half2 b0, b1; /* -(64 + z) */
    float f0, f1;   /* the scales in fp32 (ISC: applied to each tile's integer product) */
};

template <bool SYM>
__device__ __forceinline__ void small_setup(small_consts &c, uint32_t sc2, uint32_t zr2) {
    const __half2 s = bits_h2(sc2); /* (row n0, row n1): one 32-bit word of the interleaved group layout */
    c.s0 = __low2half2(s);
    c.s1 = __high2half2(s);
    c.f0 = __low2float(s);
    c.f1 = __high2float(s);
    if (SYM) {
        c.a0 = c.a1 = bits_h2(0xE408E408u); /* -1032: zero point 8 */
        c.b0 = c.b1 = bits_h2(0xD480D480u); /* -72 */
    } else {
        const __half2 z = bits_h2(zr2);
        const __half2 a = __hsub2(bits_h2(0xE400E400u), z), b = __hsub2(bits_h2(0xD400D400u), z);
        c.a0 = __low2half2(a);
        c.a1 = __high2half2(a);
        c.b0 = __low2half2(b);
        c.b1 = __high2half2(b);
    }
}

/* (a & mask) | bits as one LOP3: written in C, the two constants made it an
 * AND and an OR (LOP3 takes one immediate) — 16 extra instructions per tile. */
template <uint32_t MASK> __device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t bits) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "n"(MASK), "r"(bits));
    return d;
}

/* One code word (sub-tile j) -> the A fragment of a 16 x 16 weight tile:
 * a[0] row n0, inputs 2q, 2q+1; a[1] row n1, same inputs; a[2] row n0,
 * inputs 2q+8, 2q+9; a[3] row n1. The same operations as dequant_step
 * (b[0], b[2], b[1], b[3] there), so the same fp16 bits. */
__device__ __forceinline__ void small_dequant(uint32_t w, const small_consts &c, uint32_t *a) {
    const __half2 r16 = bits_h2(0x2c002c00u); /* 1/16 */
    const uint32_t w8 = w >> 8;
    const __half2 lo0 = bits_h2(and_or<0x000F000Fu>(w, 0x64006400u));  /* 1024 + c(n0, 2q | 2q+1) */
    const __half2 hi0 = bits_h2(and_or<0x00F000F0u>(w, 0x64006400u));  /* 1024 + 16 c(n0, 2q+8 | 2q+9) */
    const __half2 lo1 = bits_h2(and_or<0x000F000Fu>(w8, 0x64006400u)); /* row n1 */
    const __half2 hi1 = bits_h2(and_or<0x00F000F0u>(w8, 0x64006400u));
    a[0] = h2_bits(__hmul2(__hadd2(lo0, c.a0), c.s0));
    a[1] = h2_bits(__hmul2(__hadd2(lo1, c.a1), c.s1));
    a[2] = h2_bits(__hmul2(__hfma2(hi0, r16, c.b0), c.s0));
    a[3] = h2_bits(__hmul2(__hfma2(hi1, r16, c.b1), c.s1));
}

/* small_dequant without the scale: (code - zero) exactly, integers in fp16 (ISC; the scale goes onto the fp32
 * product, small_flush) */
__device__ __forceinline__ void small_dequant_i(uint32_t w, const small_consts &c, uint32_t *a) {
    const __half2 r16 = bits_h2(0x2c002c00u);
    const uint32_t w8 = w >> 8;
    const __half2 lo0 = bits_h2(and_or<0x000F000Fu>(w, 0x64006400u));
    const __half2 hi0 = bits_h2(and_or<0x00F000F0u>(w, 0x64006400u));
    const __half2 lo1 = bits_h2(and_or<0x000F000Fu>(w8, 0x64006400u));
    const __half2 hi1 = bits_h2(and_or<0x00F000F0u>(w8, 0x64006400u));
    a[0] = h2_bits(__hadd2(lo0, c.a0));
    a[1] = h2_bits(__hadd2(lo1, c.a1));
    a[2] = h2_bits(__hfma2(hi0, r16, c.b0));
    a[3] = h2_bits(__hfma2(hi1, r16, c.b1));
}

/* acc += scale t: c0, c1 belong to weight row n0, c2, c3 to n1 */
__device__ __forceinline__ void small_flush(float *acc, const float *t, const small_consts &c) {
    acc[0] = fmaf(c.f0, t[0], acc[0]);
    acc[1] = fmaf(c.f0, t[1], acc[1]);
    acc[2] = fmaf(c.f1, t[2], acc[2]);
    acc[3] = fmaf(c.f1, t[3], acc[3]);
}

/* Group of tile (or tile half) i: a shift when the divisor is a power of two,
 * a 32-bit division otherwise; clamped like the padding of the layout. */
__device__ __forceinline__ int small_group(int i, int gdiv, int gshift, int ng) {
    const int g = gshift >= 0 ? i >> gshift : i / gdiv;
    return g < ng ? g : ng - 1;
}

/* Row of 8-input chunk c (c < M per_row) of the x staging: MC - 1 compares
 * when M is a compile-time constant, a division otherwise. Computed again
 * for the stores: kept in registers from the loads instead, the 4 rows
 * spilled 8-16 bytes at the 64-register bound (ptxas -v). */
template <int MC> __device__ __forceinline__ int chunk_row(int c, int per_row) {
    if (MC > 0) {
        int m = 0;
#pragma unroll
        for (int i = 1; i < MC; i++) m += c >= i * per_row;
        return m;
    }
    return c / per_row;
}

/* grid (ceil(NB / B), KS), block 32 B S threads. Block (bx, ks) owns row
 * blocks bx B .. bx B + B - 1 and the K slice of tiles [ks KT, ks KT + KT)
 * (KS = 1: all of K); warp w: row block bx B + w / S, the slice's tiles
 * [kp T, kp T + T) with kp = w % S, T = ceil(KT / S).
 * NT: n-tiles of 8 activation rows, M <= 8 NT. MC: M at compile time (1..4,
 * NT = 1: the decode shapes, where a warp's few tiles leave the prologue and
 * the epilogue a visible share; their row loops, divisions and guards fold),
 * or 0: M is the runtime argument m_rows (M = 5..64). Each dequantized 16 x 16
 * weight sub-tile (the A fragment) feeds NT mma, one per n-tile, so the
 * dequantization is paid once for up to 8 NT rows of x. SYM: zero point 8,
 * no zeros array. G2: two groups per 64-input tile (G % 64 == 32: each
 * 32-input half has its own); else one (G a multiple of 64, or one group per
 * row). gdiv / gshift: tiles (G2: tile halves) per group and its log2 (-1:
 * not a power of two). KS > 1: the block writes its partial sums to
 * part [KS][M][N] (bias not added) and w4a16_small_reduce_kernel adds them.
 * Shared memory (16-byte aligned pieces):
 *   xs  uint4 [M][8 KBs + 1]  x of the slice's tile kb (KBs = its tiles), row m,
 *                          permuted: 32-bit word 8 q + i of the tile holds
 *                          inputs 64 kb + 2 p, 2 p + 1 with p = 4 i + q — lane
 *                          q's b0/b1 of sub-tiles 0..3 are words 8q .. 8q+7;
 *                          zero beyond K. The extra 16 bytes per row put the
 *                          rows read by one 8-lane phase of an LDS.128 (two
 *                          rows, same column) in different banks
 *   red float [B S][M][16] each warp's partial sums, over xs once the main
 *                          loop is done (the piece is the larger of the two)
 *   sg  uint32 [B][ngs][8] scale pairs of each row block for the slice's
 *                          groups glo .. glo + ngs - 1, global order
 *   zg  uint32 [B][ngs][8] zero pairs (asymmetric only) */
template <int NT, int MC, bool SYM, bool G2, bool ISC>
__global__ void __launch_bounds__(32 * w4s_max_warps(NT), 1)
w4a16_small_m_kernel(float *__restrict__ y, float *__restrict__ part, const __half *__restrict__ x, int64_t ldx,
                     const uint4 *__restrict__ qw, const uint32_t *__restrict__ sc, const uint32_t *__restrict__ zr,
                     const float *__restrict__ bias, int m_rows, int N, int NB, int K, int KB, int ng, int gdiv,
                     int gshift, int B, int S, int KT, int vec_x, void *__restrict__ hout, int hbf16) {
    static_assert(MC == 0 || (NT == 1 && MC <= 8), "compile-time M only with one n-tile");
    static_assert(!ISC || NT == 1, "the integer-weight products only with one n-tile");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int M = MC > 0 ? MC : m_rows;
    /* WHOLE (M at compile time, the decode shapes): one K slice, x rows not
     * padded, the partial sums in their own piece after the group data — the
     * layout of the M <= 4 kernel this one grew from, whose per-tile and
     * per-block work it keeps (the general layout measured 4-6 % slower on
     * gate_up / down at M = 1). small_smem sizes both layouts. */
    constexpr bool WHOLE = MC > 0;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, nthr = blockDim.x;
    const int kb0 = WHOLE ? 0 : blockIdx.y * KT, KBs = WHOLE ? KB : KB - kb0 < KT ? KB - kb0 : KT; /* this block's slice */
    const int XR = WHOLE ? KBs * 8 : KBs * 8 + 1;                           /* uint4 per staged row of x */
    const int glo = WHOLE ? 0 : G2 ? small_group(2 * kb0, gdiv, gshift, ng) : small_group(kb0, gdiv, gshift, ng);
    const int ghi = WHOLE ? ng - 1
                    : G2  ? small_group(2 * (kb0 + KBs) - 1, gdiv, gshift, ng)
                          : small_group(kb0 + KBs - 1, gdiv, gshift, ng);
    const int ngs = ghi - glo + 1;
    uint4 *xs = reinterpret_cast<uint4 *>(smem_raw);
    const int xs_u4 = M * XR, red_u4 = (B * S * M * 16 + 3) / 4;
    uint32_t *sg = reinterpret_cast<uint32_t *>(xs + (WHOLE || xs_u4 > red_u4 ? xs_u4 : red_u4));
    uint32_t *zg = sg + B * ngs * 8;
    float *red = WHOLE ? reinterpret_cast<float *>(zg + (SYM ? 0 : B * ngs * 8)) : reinterpret_cast<float *>(smem_raw);
    const int rbl = warp / S, kp = warp - rbl * S;
    const int nb = blockIdx.x * B + rbl;
    const int per = (KBs + S - 1) / S, t0 = kp * per; /* t0: first tile of the warp, local to the slice */
    int ntl = KBs - t0 < per ? KBs - t0 : per;
    if (nb >= NB || ntl < 0) ntl = 0;
    const uint4 *wp = qw + (((int64_t)nb * KB + kb0 + t0) * 32 + lane);

    /* the first DEPTH tiles in flight before anything else: their DRAM
     * latency covers the staging below (and, launched with PDL, the end of
     * the previous kernel) */
    WG_TRACE_INIT();
    WG_TRACE(0);
    lq_pdl_trigger();
    constexpr int DEPTH = w4s_depth(NT, SYM, G2);
    uint4 buf[DEPTH];
#pragma unroll
    for (int u = 0; u < DEPTH; u++)
        if (u < ntl) buf[u] = ld_nc_stream(wp + u * 32);

    /* stage the block's group data for the slice: each row block's 16 scales
     * of a group are 32 contiguous bytes (8 pairs) */
    {
        const int per_rb = ngs * 8, total = B * per_rb * (SYM ? 1 : 2), half_np = NB * 8;
        for (int c0 = tid; c0 < total; c0 += 4 * nthr) {
            uint32_t v[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int c = c0 + i * nthr;
                v[i] = 0;
                if (c < total) {
                    const int zpart = c >= B * per_rb, cc = zpart ? c - B * per_rb : c;
                    const int rb = cc / per_rb, r = cc - rb * per_rb, g = glo + (r >> 3), nbb = blockIdx.x * B + rb;
                    if (nbb < NB) v[i] = __ldg((zpart ? zr : sc) + ((int64_t)g * half_np + nbb * 8 + (r & 7)));
                }
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
                if (c0 + i * nthr < total) sg[c0 + i * nthr] = v[i]; /* zg follows sg */
        }
    }
    /* PDL (cuda_common.cuh): the codes and group data above are weights
     * (never written during a step); x is the previous kernel's output, and
     * part may still be read by the previous reduction */
    lq_pdl_wait();
    WG_TRACE(1);
    /* stage x (M rows, the slice's inputs) permuted, 4 independent 16-byte
     * loads per thread and round so that the loads overlap */
    {
        const int per_row = KBs * 8, total = M * per_row; /* 8-input chunks */
        for (int c0 = tid; c0 < total; c0 += 4 * nthr) {
            uint4 v[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int c = c0 + i * nthr;
                v[i] = make_uint4(0, 0, 0, 0);
                if (c < total) {
                    const int m = chunk_row<MC>(c, per_row), r = c - m * per_row, gk = kb0 * 64 + r * 8;
                    const __half *src = x + (int64_t)m * ldx + gk;
                    if (vec_x && gk + 8 <= K) {
                        v[i] = __ldg(reinterpret_cast<const uint4 *>(src));
                    } else if (gk < K) {
                        __half h[8];
#pragma unroll
                        for (int e = 0; e < 8; e++) h[e] = gk + e < K ? src[e] : __float2half(0.0f);
                        v[i] = *reinterpret_cast<const uint4 *>(h);
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int c = c0 + i * nthr;
                if (c < total) {
                    /* chunk (row m, tile kb, i8 = c % 8): inputs 8 i8 .. 8 i8 + 7 of the
                     * tile are pairs p = 4 i8 + q, q = 0..3 -> words 8 q + i8. Tile
                     * m KBs + kb of the unpadded rows is c / 8 (per_row is a multiple
                     * of 8), and each row before it adds one uint4 of padding (XR; none
                     * in the WHOLE layout) */
                    const int m = WHOLE ? 0 : chunk_row<MC>(c, per_row);
                    uint32_t *dst = reinterpret_cast<uint32_t *>(xs + (c >> 3) * 8 + m) + (c & 7);
                    dst[0] = v[i].x;
                    dst[8] = v[i].y;
                    dst[16] = v[i].z;
                    dst[24] = v[i].w;
                }
            }
        }
    }
    /* (4-byte cp.async per word instead — coalesced, no registers, every copy
     * in flight at once — measured slower: gate_up M = 16 31.7 vs 29.7 us, qkv
     * M = 4 10.5 vs 8.7; bench/results/2026-12-01-h200-w4-m16/) */
    __syncthreads();
    WG_TRACE(2);

    /* one accumulator chain per n-tile: a second one (for odd sub-tiles) cost
     * the registers of two ring slots at NT = 1, and the dependent mma hide
     * behind the other warps of the scheduler */
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const int g8 = lane >> 2, q = lane & 3;
    /* n-tile j reads row 8 j + g8 of x; lanes past the last row supply columns
     * of the product that nobody reads: row M - 1 again */
    const uint4 *xr[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int row = 8 * j + g8 < M ? 8 * j + g8 : M - 1;
        xr[j] = xs + row * XR + q * 2 + t0 * 8;
    }
    const uint32_t *sgr = sg + rbl * ngs * 8 + g8, *zgr = zg + rbl * ngs * 8 + g8;
    for (int c = 0; c < ntl; c += DEPTH) {
        const uint4 *wn = wp + (c + DEPTH) * 32; /* this round's refills: immediate offsets u * 512 bytes */
#pragma unroll
        for (int u = 0; u < DEPTH; u++) {
            const int t = c + u;
            if (t < ntl) {
                const uint4 wv = buf[u];
                const int kb = kb0 + t0 + t;
                /* b0, b1 of sub-tiles 0, 1 (xa) and 2, 3 (xb) of every n-tile. NT = 1:
                 * both LDS.128 first, before the group constants, as main's M <= 4
                 * kernel had them (~50 instructions ahead of their first mma in the
                 * sm_90a SASS). Written where they are used, ptxas kept the order at
                 * the 64-register bound: xb's LDS.128 came ~11 instructions before
                 * the third mma of every tile, a shared-memory round trip on each
                 * tile's dependency chain. NT >= 2: xb after the first two sub-tiles,
                 * which keeps NT uint4 fewer live. */
                uint4 xa[NT], xb[NT];
                if (NT == 1) xa[0] = xr[0][t * 8], xb[0] = xr[0][t * 8 + 1];
                small_consts k0, k1;
                if (G2) {
                    const int g0 = small_group(2 * kb, gdiv, gshift, ng) - glo;
                    const int g1 = small_group(2 * kb + 1, gdiv, gshift, ng) - glo;
                    small_setup<SYM>(k0, sgr[g0 * 8], SYM ? 0u : zgr[g0 * 8]);
                    small_setup<SYM>(k1, sgr[g1 * 8], SYM ? 0u : zgr[g1 * 8]);
                } else {
                    /* no clamp: with G a multiple of 64, Kp <= n_groups G (and one
                     * group per row has gshift 30) */
                    const int g0 = (gshift >= 0 ? kb >> gshift : kb / gdiv) - glo;
                    small_setup<SYM>(k0, sgr[g0 * 8], SYM ? 0u : zgr[g0 * 8]);
                }
#pragma unroll
                for (int j = 0; j < NT && NT > 1; j++) xa[j] = xr[j][t * 8];
                uint32_t a[4];
                if (ISC) { /* integer weights, the scale on each group's fp32 product (LQ_W4S_ISCALE) */
                    float tp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                    small_dequant_i(wv.x, k0, a);
                    mma_16816(tp, a, xa[0].x, xa[0].y);
                    small_dequant_i(wv.y, k0, a);
                    mma_16816(tp, a, xa[0].z, xa[0].w);
                    if (G2) {
                        small_flush(acc[0], tp, k0);
                        tp[0] = tp[1] = tp[2] = tp[3] = 0.0f;
                    }
                    small_dequant_i(wv.z, G2 ? k1 : k0, a);
                    mma_16816(tp, a, xb[0].x, xb[0].y);
                    small_dequant_i(wv.w, G2 ? k1 : k0, a);
                    mma_16816(tp, a, xb[0].z, xb[0].w);
                    small_flush(acc[0], tp, G2 ? k1 : k0);
                    if (t + DEPTH < ntl) buf[u] = ld_nc_stream(wn + u * 32);
                    continue;
                }
                small_dequant(wv.x, k0, a);
#pragma unroll
                for (int j = 0; j < NT; j++) mma_16816(acc[j], a, xa[j].x, xa[j].y);
                small_dequant(wv.y, k0, a);
#pragma unroll
                for (int j = 0; j < NT; j++) mma_16816(acc[j], a, xa[j].z, xa[j].w);
#pragma unroll
                for (int j = 0; j < NT && NT > 1; j++) xb[j] = xr[j][t * 8 + 1];
                small_dequant(wv.z, G2 ? k1 : k0, a);
#pragma unroll
                for (int j = 0; j < NT; j++) mma_16816(acc[j], a, xb[j].x, xb[j].y);
                small_dequant(wv.w, G2 ? k1 : k0, a);
#pragma unroll
                for (int j = 0; j < NT; j++) mma_16816(acc[j], a, xb[j].z, xb[j].w);
                /* refill the slot only now that its last word is consumed: issued
                 * earlier, the new load and the old words need separate registers,
                 * and the compiler moved the loaded value back into the slot right
                 * away — a wait for the load on every tile */
                if (t + DEPTH < ntl) buf[u] = ld_nc_stream(wn + u * 32);
            }
        }
    }

    WG_TRACE(3);
    /* C fragment of n-tile j: c0, c1 = weight row g8 (n0), x rows 8 j + 2q, 8 j + 2q + 1;
     * c2, c3 = weight row g8 + 8. red lies over xs (not WHOLE): every warp must be done reading it */
    if (!WHOLE) __syncthreads();
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int m = 8 * j + 2 * q + (e & 1);
            if (m < M) red[(warp * M + m) * 16 + g8 + (e >> 1) * 8] = acc[j][e];
        }
    __syncthreads();
    WG_TRACE(4);
    if (hout) { /* the SwiGLU epilogue (one K slice, B a multiple of 8, a weight from lq_w4a16_upload_swiglu, no
                   bias): each 8 row blocks are the gate rows of 64 hidden units, then their up rows; the sums
                   in the order of the plain epilogue below (the K split over the warps is this plan's, S = 2, so
                   not the bits of the product + lq_swiglu_cuda under the product's own plan) */
        const int H = N / 2;
        for (int o = tid; o < (B / 8) * M * 8; o += nthr) {
            const int pr = o / (M * 8), rem = o - pr * (M * 8), m = rem >> 3, j8 = rem & 7;
            const int rb0 = blockIdx.x * B + pr * 8; /* the pair's first row block */
            if (rb0 >= NB) continue;
            float g[8], u[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int j = j8 * 8 + i, rbg = pr * 8 + (j >> 4), r = j & 15;
                const float *pg = red + (rbg * S * M + m) * 16 + r, *pu = red + ((rbg + 4) * S * M + m) * 16 + r;
                float sg = 0.0f, su = 0.0f;
                for (int s = 0; s < S; s++) sg += pg[s * M * 16], su += pu[s * M * 16];
                g[i] = sg, u[i] = su;
            }
            wgm_swiglu8(g, u, hout, hbf16, M, H, m, rb0 / 8 * 64 + j8 * 8);
        }
        WG_TRACE(5);
        return;
    }
    const bool split = gridDim.y > 1;
    float *dst = split ? part + (int64_t)blockIdx.y * M * N : y;
    for (int o = tid; o < B * M * 16; o += nthr) {
        const int rb = o / (M * 16), rem = o - rb * (M * 16), m = rem >> 4, r = rem & 15;
        const int nbb = blockIdx.x * B + rb, n = nbb * 16 + r;
        if (nbb < NB && n < N) {
            float sum = !split && bias ? bias[n] : 0.0f;
            const float *p = red + (rb * S * M + m) * 16 + r;
            for (int s = 0; s < S; s++) sum += p[s * M * 16]; /* in warp order: deterministic */
            dst[(int64_t)m * N + n] = sum;
        }
    }
    WG_TRACE(5);
}

/* y (M, N) = bias + the KS partial products of w4a16_small_m_kernel, added in
 * split order (deterministic). One thread per output. Launched with PDL: the
 * wait comes before any read of part, and every thread reaches it. */
__global__ void w4a16_small_reduce_kernel(float *__restrict__ y, const float *__restrict__ part,
                                          const float *__restrict__ bias, int M, int N, int KS) {
    lq_pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, MN = (int64_t)M * N;
    lq_pdl_wait();
    if (i >= MN) return;
    float sum = bias ? bias[i % N] : 0.0f;
    for (int k = 0; k < KS; k++) sum += __ldg(part + k * MN + i);
    y[i] = sum;
}

/* w4a16_small_reduce_kernel four outputs per thread (N % 4 == 0, y / part / bias 16-byte aligned): float4
 * loads, up to 8 slices' loads in flight before the adds; the same adds in the same order (the same bits). */
__global__ void w4a16_small_reduce4_kernel(float4 *__restrict__ y, const float4 *__restrict__ part,
                                           const float4 *__restrict__ bias, int M, int N4, int KS) {
    lq_pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, MN4 = (int64_t)M * N4;
    lq_pdl_wait();
    if (i >= MN4) return;
    float4 s = bias ? bias[i % N4] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int k0 = 0; k0 < KS; k0 += 8) {
        float4 p[8];
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k0 + k < KS) p[k] = __ldg(part + (int64_t)(k0 + k) * MN4 + i);
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k0 + k < KS) s.x += p[k].x, s.y += p[k].y, s.z += p[k].z, s.w += p[k].w;
    }
    y[i] = s;
}

/* y (M, N) = bias + the KS slices of part [KS][M][N], in slice order. Four outputs per thread above 64K
 * outputs (where the shapes and pointers allow), one at or below: H200, llama3 shapes, same-run A/B in two
 * calls (bench/results/2026-12-03-h200-s20, calls 2 and 3): four won qkv M = 16 (98K outputs) 10.0 -> 8.9
 * us, qkv M = 64 14.4 -> 13.4, qkv 128 20.8 -> 19.2, o 256 22.8 -> 20.4; at 32K-64K outputs (o M = 16,
 * down M = 8 / 16) one was 0.2-0.6 us faster (threads per block 64 / 128 / 256: no difference).
 * LQ_W4A16_REDUCE4=0: always one (A/B knob, read on every call). */
static lq_status launch_small_reduce(int pdl, float *y, const float *part, const float *b, int64_t m, int64_t n,
                                     int ks, cudaStream_t st, const char *what) {
    const char *e = getenv("LQ_W4A16_REDUCE4");
    const bool v4 = !(e && e[0] == '0') && m * n > 65536 && n % 4 == 0 &&
                    (((uintptr_t)y | (uintptr_t)part | (uintptr_t)(b ? b : y)) & 15) == 0;
    if (v4)
        LQ_CUDA_RET(lq_launch_pdl_if(pdl, w4a16_small_reduce4_kernel, dim3(lq_blocks(m * n / 4, 256)), dim3(256), 0,
                                     st, (float4 *)y, (const float4 *)part, (const float4 *)b, (int)m, (int)(n / 4),
                                     ks),
                    what);
    else
        LQ_CUDA_RET(lq_launch_pdl_if(pdl, w4a16_small_reduce_kernel, dim3(lq_blocks(m * n, 256)), dim3(256), 0, st, y,
                                     part, b, (int)m, (int)n, ks),
                    what);
    return LQ_OK;
}

/* ---------------- dequantization to fp16 (the large-M path) ---------------- */

/* One block per (16-row block nb, DQ_TILES consecutive 64-input tiles): each
 * warp reads whole tiles, one 16-byte word group per lane (the upload layout:
 * lane 4 g + q, word j holds rows g and g + 8, inputs 16 j + {0, 8} + 2 q
 * + {0, 1}: nibble 2 rr + h, and + 4 for the second input), dequantizes them
 * into a shared 16-row slab, and the block writes the slab's rows out with
 * 16-byte stores (2 KB contiguous per row). The earlier kernel (one thread per
 * 8 outputs, four 4-byte code loads each) reached ~2.55 TB/s on the H200;
 * reads and writes here are both whole lines. The value is
 * f16((code - zero) * scale), the group taken at the first input of each 8
 * (as before), computed as small_dequant does (the magic-number conversion,
 * (1024 + c) - (1024 + z) exact, one rounding in the multiply: the same bits
 * as the fused path's dequant_step), with one 4-byte group word per row pair
 * and 8 inputs instead of a 64-bit division and two half loads per pair. */
#define DQ_TILES 16 /* 64-input tiles per block: 8 warps x 2 */
#define DQ_LD (DQ_TILES * 64 + 8) /* slab row, halves: +16 bytes keeps the 8 rows of a store in distinct banks */
__global__ void __launch_bounds__(256)
w4a16_dequant_kernel(__half *__restrict__ out, const uint4 *__restrict__ qw, const __half *__restrict__ sc,
                     const __half *__restrict__ zr, int64_t N, int64_t K, int64_t Np, int64_t KB, int64_t G,
                     int64_t n_groups, int vec) {
    __shared__ __align__(16) __half slab[16 * DQ_LD];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g8 = lane >> 2, q = lane & 3;
    const int64_t nchunks = (KB + DQ_TILES - 1) / DQ_TILES;
    const int64_t nb = blockIdx.x / nchunks, kc = blockIdx.x - nb * nchunks;
    uint4 cw[DQ_TILES / 8];
#pragma unroll
    for (int t = 0; t < DQ_TILES / 8; t++) { /* both loads in flight before any use */
        const int64_t kb = kc * DQ_TILES + warp + 8 * t;
        cw[t] = kb < KB ? __ldg(qw + (nb * KB + kb) * 32 + lane) : make_uint4(0, 0, 0, 0);
    }
    /* the group words of this lane's two rows (g8, g8 + 8): word (g, nb, g8) of the interleaved layout holds
     * both scales (zeros); small_dequant's operations, so f16((code - zero) * scale) exactly */
    const uint32_t *sw = reinterpret_cast<const uint32_t *>(sc), *zw = reinterpret_cast<const uint32_t *>(zr);
    const int Gi = (int)G, ngi = (int)n_groups, gsh = (Gi & (Gi - 1)) == 0 ? __ffs(Gi) - 1 : -1;
    const __half2 r16 = bits_h2(0x2c002c00u); /* 1/16 */
#pragma unroll
    for (int t = 0; t < DQ_TILES / 8; t++) {
        const int kb = (int)(kc * DQ_TILES) + warp + 8 * t;
        if (kb >= KB) continue;
        const uint32_t wd[4] = {cw[t].x, cw[t].y, cw[t].z, cw[t].w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            small_consts k[2]; /* inputs 16 j + 0..7 (h = 0) and 16 j + 8..15 (h = 1): the group of each 8 */
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int k8 = kb * 64 + j * 16 + h * 8;
                int g = gsh >= 0 ? k8 >> gsh : k8 / Gi;
                if (g >= ngi) g = ngi - 1;
                const size_t wi = ((size_t)g * (size_t)(Np / 16) + (size_t)nb) * 8 + (size_t)g8;
                if (zw) small_setup<false>(k[h], __ldg(sw + wi), __ldg(zw + wi));
                else small_setup<true>(k[h], __ldg(sw + wi), 0u);
            }
            const uint32_t w = wd[j], w8 = w >> 8;
            const __half2 lo0 = bits_h2(and_or<0x000F000Fu>(w, 0x64006400u));
            const __half2 hi0 = bits_h2(and_or<0x00F000F0u>(w, 0x64006400u));
            const __half2 lo1 = bits_h2(and_or<0x000F000Fu>(w8, 0x64006400u));
            const __half2 hi1 = bits_h2(and_or<0x00F000F0u>(w8, 0x64006400u));
            __half *r0 = slab + g8 * DQ_LD + (warp + 8 * t) * 64 + j * 16 + 2 * q, *r1 = r0 + 8 * DQ_LD;
            *reinterpret_cast<__half2 *>(r0) = __hmul2(__hadd2(lo0, k[0].a0), k[0].s0);
            *reinterpret_cast<__half2 *>(r1) = __hmul2(__hadd2(lo1, k[0].a1), k[0].s1);
            *reinterpret_cast<__half2 *>(r0 + 8) = __hmul2(__hfma2(hi0, r16, k[1].b0), k[1].s0);
            *reinterpret_cast<__half2 *>(r1 + 8) = __hmul2(__hfma2(hi1, r16, k[1].b1), k[1].s1);
        }
    }
    __syncthreads();
    const int64_t k_base = kc * DQ_TILES * 64;
    if (vec) { /* K % 8 == 0 and out 16-byte aligned: every 8-input piece below K is whole */
        for (int i = tid; i < 16 * DQ_TILES * 8; i += 256) {
            const int r = i / (DQ_TILES * 8), c8 = i - r * (DQ_TILES * 8);
            const int64_t n = nb * 16 + r, k = k_base + c8 * 8;
            if (n < N && k < K)
                *reinterpret_cast<uint4 *>(out + n * K + k) = *reinterpret_cast<const uint4 *>(slab + r * DQ_LD + c8 * 8);
        }
    } else {
        for (int i = tid; i < 16 * DQ_TILES * 64; i += 256) {
            const int r = i / (DQ_TILES * 64), c = i - r * (DQ_TILES * 64);
            const int64_t n = nb * 16 + r, k = k_base + c;
            if (n < N && k < K) out[n * K + k] = slab[r * DQ_LD + c];
        }
    }
}

/* ---------------- the wgmma kernel (sm_90a, large M) ----------------
 *
 * y (M, N) = x (M, K) W^T for M in the hundreds to thousands (prefill), with
 * the dequantization inside the GEMM instead of an fp16 copy of W in global
 * memory (the dequantize + cuBLAS path writes and re-reads 2 bytes per
 * weight: 235 MB for gate_up). Hopper's warpgroup MMA (wgmma.mma_async)
 * takes its A operand from registers: the weight is A (rows = output
 * features, the m64 side) and x is B (columns = activation rows), so
 *   y^T tile (256 weight rows x 128 x rows) += W tile (256 x 16) x^T (16 x 128)
 * per k16 step. The mma layout's words are the register fragments of A for
 * wgmma as they are for mma.sync (each warp of a warpgroup holds 16 rows of
 * the m64 tile in the m16n8k16 A layout), so small_dequant feeds them as is.
 *
 * Block: 2 warpgroups (256 threads), BM = 128 rows of x (16 / 32 / 64 for M <= 16 / 32 / 64:
 * m64n16 / n32 / n64 products instead of m64n128); warpgroup g owns weight rows
 * 128 g .. 128 g + 127 of the block's 256 as two m64 tiles (s = 0, 1);
 * warp w % 4 of the warpgroup holds row block 4 s + w % 4 of each. 64- and
 * 128-row tiles run in 4 warpgroups (512 threads, WGS = 4) by default, one
 * m64 tile each (wgm_wgs: the same tile, twice the warps). A
 * WGM_STAGES-deep ring of stages, filled by TMA copies that thread 0 issues, holds
 * per 64-input tile: x (128 rows x 128 bytes, the 128-byte swizzle wgmma's
 * shared-memory descriptor describes), the codes of the 16 row blocks
 * (512 bytes each, the layout's order) and their group scales / zeros.
 * The copies are TMA tiles of three tensor maps (x: 64 x BM halves in the
 * 128-byte swizzle; codes: the 16 row blocks' 512 bytes of a tile; group
 * words: one group of the 16 row blocks), completing on the stage's "full"
 * mbarrier; every warp arrives on the stage's "empty" mbarrier once its wgmma
 * no longer read it, and thread 0 refills a stage two tiles after it was
 * released (so it rarely waits). Per tile and warpgroup, two fragment sets:
 * issue the tile's 8 wgmma from one set, then, while they run, wait for the
 * previous tile's group (release its stage), let thread 0 refill, wait for
 * the next tile's copies and dequantize it into the other set; a set is
 * rewritten only after wgmma.wait_group says its wgmma are done. No block
 * barrier in the loop. The weight copies of the first stages go out before
 * the PDL wait (weights are not written by the previous kernel), x after it.
 * Grid (ceil(M / 128), ceil(N / 256), K slices): the x tiles vary fastest,
 * so the blocks of a wave share weight tiles (read from DRAM about once) and
 * x stays in L2; when those tiles leave most SMs idle, K is split in up to 8
 * slices whose fp32 partial sums w4a16_small_reduce_kernel adds in order
 * (wgm_slices; only when the workspace holds them). fp16 x fp16 products are exact and accumulate in fp32, as in
 * the other paths (the summation order differs: results agree to rounding,
 * and this path is deterministic). Needs K % 8 == 0, ldx % 8 == 0, x and the
 * scales 16-byte aligned, and the driver's cuTensorMapEncodeTiled
 * (wgm_supported). Measured: kernels/dev/w4a16_notes.md, session 5. */

/* BM: activation rows per block (the wgmma N side): 16 for M <= 16 and 32 for M <= 32 (m64n16 / m64n32
 * products: at M = 16 a 64-row tile spent 3/4 of its tensor time on padding rows), 64 for M <= 64 (half the tensor work per tile where
 * half of a 128-row tile would be padding), 128, or 256 for large M (branch wgmma-bm256, unmeasured):
 * then each warpgroup owns one m64 tile of weight rows instead of two (m64n256 products), a block 128
 * weight rows, and the dequantization per tensor FLOP halves. */
#define WGM_GB 1024 /* scale (or zero) words per stage: [2 groups][16 row blocks][8] x 4 bytes (8 row blocks:
                       half of each group's 512 bytes used) */
__host__ __device__ constexpr int wgm_ns(int bm) { return bm == 256 ? 1 : 2; } /* m64 tiles per warpgroup */
/* 16-row blocks per block: 8 (256-row x tiles), 16, or 12 with 3 warpgroups of one m64 tile (64- / 128-row x
 * tiles, LQ_W4A16_WGMMA_WGS=3: 192 weight rows, so that qkv's 6144 rows make 32 tiles instead of 24 / 48) */
__host__ __device__ constexpr int wgm_rbb(int bm, int wgs = 2) { return bm == 256 ? 8 : wgs == 3 ? 12 : 16; }
__host__ __device__ constexpr int wgm_bn(int bm, int wgs = 2) { return 16 * wgm_rbb(bm, wgs); } /* weight rows */
__host__ __device__ constexpr int wgm_cb(int bm, int wgs = 2) { return 512 * wgm_rbb(bm, wgs); } /* code bytes per stage */
/* 64-input tiles in smem: t, t + 1, in flight, t - 1 being released (5 at BM = 256: 38 KB stages; 8 at BM =
 * 16 / 32, whose 12-14 KB stages are nearly all weight: more of it in flight, still two blocks per SM) */
__host__ __device__ constexpr int wgm_stages(int bm) { return bm == 256 ? 5 : bm <= 32 ? 8 : 6; }
/* bytes of x per stage (BM rows x 64 halves); a stage (x, codes, group words: 26 KB at BM = 128, 18 KB at
 * 64, 38 KB at 256, multiples of 1024 so that every stage's x is 1024-byte aligned); the dynamic shared
 * memory */
__host__ __device__ constexpr int wgm_xb(int bm) { return bm * 128; }
__host__ __device__ constexpr int wgm_stage(int bm, int wgs = 2) { return wgm_xb(bm) + wgm_cb(bm, wgs) + 2 * WGM_GB; }
__host__ __device__ constexpr int wgm_smem(int bm, int wgs = 2) {
    return wgm_stages(bm) * wgm_stage(bm, wgs) + 1024 + 16 * wgm_stages(bm);
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* Shared-memory matrix descriptor of a K-major operand in the 128-byte
 * swizzle: start address / 16, leading offset unused (1), stride 1024 bytes
 * between 8-row groups, layout type 1 (128B). Moving along K by 16 halves
 * inside the 128-byte row adds 32 bytes to the start address. */
__device__ __forceinline__ uint64_t wgm_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wgm_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgm_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgm_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Pin registers that an in-flight wgmma still reads or writes: the compiler
 * must keep them where they are until this point. */
__device__ __forceinline__ void wgm_keep(uint32_t &r) { asm volatile("" : "+r"(r)::"memory"); }
__device__ __forceinline__ void wgm_keep(float &r) { asm volatile("" : "+f"(r)::"memory"); }

/* d (64 x 128 fp32, the m64n128 accumulator fragment) = (acc ? d : 0) + a
 * (64 x 16 fp16, registers) x B (16 x 128 fp16, shared memory, descriptor b).
 * The first product overwrites d (acc = 0): zeroing d with ordinary moves
 * instead made ptxas serialize every wgmma (C7515). */
__device__ __forceinline__ void wgm_mma(float *d, const uint32_t *a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* the same with B of 16 x 64 (the m64n64 fragment: 32 fp32) */
__device__ __forceinline__ void wgm_mma64(float *d, const uint32_t *a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* the same with B of 16 x 32 (the m64n32 fragment: 16 fp32) */
__device__ __forceinline__ void wgm_mma32(float *d, const uint32_t *a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* the same with B of 16 x 16 (the m64n16 fragment: 8 fp32) */
__device__ __forceinline__ void wgm_mma16(float *d, const uint32_t *a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}

/* the same with B of 16 x 256 (the m64n256 fragment: 128 fp32) */
__device__ __forceinline__ void wgm_mma256(float *d, const uint32_t *a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, {%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));
}
template <int BM> __device__ __forceinline__ void wgm_mma_bm(float *d, const uint32_t *a, uint64_t b, int acc) {
    if (BM == 256) wgm_mma256(d, a, b, acc);
    else if (BM == 128) wgm_mma(d, a, b, acc);
    else if (BM == 64) wgm_mma64(d, a, b, acc);
    else if (BM == 32) wgm_mma32(d, a, b, acc);
    else wgm_mma16(d, a, b, acc);
}

/* mbarriers and the tensor-memory accelerator (TMA). One "full" barrier per
 * stage: thread 0 arrives with the stage's byte count (expect_tx), the TMA
 * copies complete the transaction; one "empty" barrier per stage: every warp
 * arrives once its wgmma no longer read the stage. */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ bool mbar_try(uint32_t bar, uint32_t par) {
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok) : "r"(bar), "r"(par) : "memory");
    return ok != 0;
}
/* wait until the phase of parity `par` of the barrier has completed; a phase that never completes (a copy
 * that never lands) traps after ~2^34 cycles (a launch error instead of a hung process; no printf here: a
 * call inside the loop would make ptxas serialize the wgmma, C7510) */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t par) {
    if (mbar_try(bar, par)) return;
    const long long t0 = clock64();
    while (!mbar_try(bar, par))
        if (clock64() - t0 > (1LL << 34)) __trap();
}
/* 2-D tile of a tensor map (coordinates: innermost first) into shared memory, completing on bar */
__device__ __forceinline__ void tma_2d(uint32_t dst, const CUtensorMap *map, int c0, int c1, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(dst), "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(bar) : "memory");
}
#endif

/* Bytes a stage's TMA copies bring: x tile, codes, group words (scales, zeros when asymmetric; two groups
 * per tile when G2) */
template <bool SYM, bool G2, int BM, int WGS = 2> __host__ __device__ constexpr uint32_t wgm_tx() {
    return (uint32_t)(wgm_xb(BM) + wgm_cb(BM, WGS) + 32 * wgm_rbb(BM, WGS) * (G2 ? 2 : 1) * (SYM ? 1 : 2));
}

/* Thread 0: the TMA copies of tile kb into stage slot `slot` (x rows m0.., 128-byte swizzled by the tensor
 * map; the codes of row blocks nb0 .. nb0 + 15; their group words). Rows past M / N and inputs past K come
 * back as zeros. `what`: 1 the weight copies (codes, group words) with the stage's expect_tx, 2 the x copy,
 * 3 both — the prologue issues them apart (the weight before the PDL wait, x after it). */
template <bool SYM, bool G2, int BM, int WGS = 2>
__device__ __forceinline__ void wgm_produce(uint32_t sbase, uint32_t bars, int slot, int kb, int m0, int nb0,
                                            const CUtensorMap *tx, const CUtensorMap *tq, const CUtensorMap *ts,
                                            const CUtensorMap *tz, int ng, int gdiv, int gshift, int what) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    const uint32_t st = sbase + (uint32_t)slot * wgm_stage(BM, WGS), full = bars + 8u * (uint32_t)slot;
    if (what & 1) {
        mbar_expect(full, wgm_tx<SYM, G2, BM, WGS>());
        tma_2d(st + wgm_xb(BM), tq, kb * 128, nb0, full);
#pragma unroll
        for (int h = 0; h < (G2 ? 2 : 1); h++) {
            const int g = G2 ? small_group(2 * kb + h, gdiv, gshift, ng) : small_group(kb, gdiv, gshift, ng);
            tma_2d(st + wgm_xb(BM) + wgm_cb(BM, WGS) + 512 * h, ts, nb0 * 8, g, full);
            if (!SYM) tma_2d(st + wgm_xb(BM) + wgm_cb(BM, WGS) + WGM_GB + 512 * h, tz, nb0 * 8, g, full);
        }
    }
    if (what & 2) tma_2d(st, tx, kb * 64, m0, full);
#endif
}

/* The K slices of one output tile summed inside their cluster (one block per slice, the slice = the block's
 * rank in the cluster: dims 1 x 1 x ks, or 2 x 1 x 1 for the tail tiles; a cluster's blocks run together,
 * so they can read each other's shared memory). Each block puts its partial sums into its own shared
 * memory as [BM x rows][TN weight rows] (row stride TN + 4 floats: the fragment stores hit 32 banks, rows
 * stay 16-byte aligned); after a cluster barrier block r adds, for the r-th ks-th of the tile, bias +
 * slice 0 + slice 1 + ... in slice order (the bits of w4a16_small_reduce_kernel) from the ks blocks'
 * shared memory, 8 outputs per thread per round (16-byte loads and stores where N % 4 == 0 and y is
 * aligned), and writes y; a second barrier keeps every block's shared memory alive until the others have
 * read it. No partial sums in global memory, no second kernel. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wgm_cluster_sync(void) {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
/* the shared-memory address a of this block, in block `rank` of the cluster */
__device__ __forceinline__ uint32_t wgm_mapa(uint32_t a, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(rank));
    return r;
}
__device__ __forceinline__ float4 wgm_ld_cluster4(uint32_t a) {
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "r"(a)
                 : "memory");
    return v;
}
__device__ __forceinline__ float wgm_ld_cluster(uint32_t a) {
    float v;
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(a) : "memory");
    return v;
}
/* FUSE: the tile is a gate|up tile (lq_w4a16_upload_swiglu: its 128 columns are 64 gate then 64 up values
 * of hidden units H0 ..): the sums become h = silu(gate) * up (lq_swiglu_cuda's formula), 8 units of a row
 * per thread, written to hout (M, H) with 16-byte stores, as the one-slice SwiGLU epilogue does */
template <int BM, int NS, bool FUSE, int NTH = 256>
__device__ __forceinline__ void wgm_cluster_sum(float (&d)[NS][BM / 2], unsigned char *sptr, float *__restrict__ y,
                                                const float *__restrict__ bias, int M, int N, int m0, int n0, int tid,
                                                int wg, int wi, int g8, int q, int ks, int r, void *__restrict__ hout,
                                                int hbf16, int H, int H0) {
    constexpr int TN = wgm_bn(BM, NTH / 128), LDS = TN + 4;
    static_assert(BM * LDS * 4 <= wgm_stages(BM) * wgm_stage(BM, NTH / 128), "the partial tile fits in the stages");
    float *own = reinterpret_cast<float *>(sptr);
    __syncthreads(); /* the stages are free: the other warpgroup's last wgmma may still have been reading them */
#pragma unroll
    for (int s = 0; s < NS; s++)
#pragma unroll
        for (int i = 0; i < BM / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                own[(8 * i + 2 * q + (e & 1)) * LDS + (wg * 4 * NS + s * 4 + wi) * 16 + g8 + 8 * (e >> 1)] = d[s][4 * i + e];
    wgm_cluster_sync(); /* every slice's partials are in its block's shared memory */
    const uint32_t obase = (uint32_t)__cvta_generic_to_shared(own);
    if constexpr (FUSE) { /* BM = 256, TN = 128; no bias (launched without), H % 64 == 0 */
        constexpr int TOT = BM * 8; /* (row, 8 units) pieces */
        const int lo = TOT * r / ks, hi = TOT * (r + 1) / ks;
#pragma unroll 1
        for (int v = lo + tid; v < hi; v += 256) {
            const int row = v >> 3, c = (v & 7) * 8, m = m0 + row, nh = H0 + c;
            float g[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, u[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            const uint32_t off = (uint32_t)((row * LDS + c) * 4);
            for (int k = 0; k < ks; k++) {
                const uint32_t kb = wgm_mapa(obase, (uint32_t)k) + off;
                const float4 g0 = wgm_ld_cluster4(kb), g1 = wgm_ld_cluster4(kb + 16), u0 = wgm_ld_cluster4(kb + 256),
                             u1 = wgm_ld_cluster4(kb + 272);
                g[0] += g0.x, g[1] += g0.y, g[2] += g0.z, g[3] += g0.w, g[4] += g1.x, g[5] += g1.y, g[6] += g1.z,
                    g[7] += g1.w;
                u[0] += u0.x, u[1] += u0.y, u[2] += u0.z, u[3] += u0.w, u[4] += u1.x, u[5] += u1.y, u[6] += u1.z,
                    u[7] += u1.w;
            }
            wgm_swiglu8(g, u, hout, hbf16, M, H, m, nh);
        }
    } else if ((N & 3) == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0) {
        constexpr int C4 = TN / 4, TOT = BM * C4;
        const int lo = (int)((int64_t)TOT * r / ks), hi = (int)((int64_t)TOT * (r + 1) / ks);
#pragma unroll 1
        for (int base = lo; base < hi; base += NTH * 8) {
            float4 acc[8];
            uint32_t off[8];
            bool ok[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int v = base + u * NTH + tid, row = v / C4, c = 4 * (v % C4), m = m0 + row, n = n0 + c;
                ok[u] = v < hi && m < M && n < N;
                off[u] = (uint32_t)((ok[u] ? row * LDS + c : 0) * 4);
                acc[u] = ok[u] && bias ? make_float4(__ldg(bias + n), __ldg(bias + n + 1), __ldg(bias + n + 2),
                                                     __ldg(bias + n + 3))
                                       : make_float4(0.f, 0.f, 0.f, 0.f);
            }
            for (int k = 0; k < ks; k++) {
                const uint32_t kb = wgm_mapa(obase, (uint32_t)k);
                float4 p[8];
#pragma unroll
                for (int u = 0; u < 8; u++) p[u] = wgm_ld_cluster4(kb + off[u]);
#pragma unroll
                for (int u = 0; u < 8; u++) acc[u].x += p[u].x, acc[u].y += p[u].y, acc[u].z += p[u].z, acc[u].w += p[u].w;
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int v = base + u * NTH + tid, row = v / C4, c = 4 * (v % C4);
                if (ok[u]) *reinterpret_cast<float4 *>(y + (int64_t)(m0 + row) * N + n0 + c) = acc[u];
            }
        }
    } else { /* the same, one output at a time */
        constexpr int TOT = BM * TN;
        const int lo = (int)((int64_t)TOT * r / ks), hi = (int)((int64_t)TOT * (r + 1) / ks);
#pragma unroll 1
        for (int base = lo; base < hi; base += NTH * 8) {
            float acc[8];
            uint32_t off[8];
            bool ok[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int v = base + u * NTH + tid, row = v / TN, c = v % TN, m = m0 + row, n = n0 + c;
                ok[u] = v < hi && m < M && n < N;
                off[u] = (uint32_t)((ok[u] ? row * LDS + c : 0) * 4);
                acc[u] = ok[u] && bias ? __ldg(bias + n) : 0.0f;
            }
            for (int k = 0; k < ks; k++) {
                const uint32_t kb = wgm_mapa(obase, (uint32_t)k);
                float p[8];
#pragma unroll
                for (int u = 0; u < 8; u++) p[u] = wgm_ld_cluster(kb + off[u]);
#pragma unroll
                for (int u = 0; u < 8; u++) acc[u] += p[u];
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int v = base + u * NTH + tid;
                if (ok[u]) y[(int64_t)(m0 + v / TN) * N + n0 + v % TN] = acc[u];
            }
        }
    }
    wgm_cluster_sync(); /* the other blocks have read this one's shared memory */
}
#endif

/* FUSE (BM = 256, one K slice, a weight from lq_w4a16_upload_swiglu): the epilogue is the SwiGLU. The
 * block's 128 weight rows are the gate (warpgroup 0) and up (warpgroup 1) rows of hidden units
 * 64 blockIdx.y ..; warpgroup 1 hands its accumulators to warpgroup 0 through shared memory, which writes
 * h = silu(gate) * up (lq_swiglu_cuda's formula) to hout (M, H), fp16 or bf16 (hbf16); y is not written. */
template <bool SYM, bool G2, int BM, bool FUSE = false, int WGS = 2>
__global__ void __launch_bounds__(128 * WGS, BM <= 32 && WGS == 2 ? 2 : 1) /* 16- / 32-row tiles: two blocks per
                                                                              SM (<= 128 registers) */
w4a16_wgmma_kernel(float *__restrict__ y, float *__restrict__ part, const __grid_constant__ CUtensorMap tx,
                   const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap ts,
                   const __grid_constant__ CUtensorMap tz, const float *__restrict__ bias, int M, int N, int KB, int ng,
                   int gdiv, int gshift, int KT, void *__restrict__ hout, int hbf16, int H, int csum, int tail,
                   int mt) {
    static_assert(!FUSE || BM == 256, "the SwiGLU epilogue pairs the two warpgroups' m64 tiles of 256-row tiles");
    static_assert(WGS == 2 || ((WGS == 4 || WGS == 3) && wgm_ns(BM) == 2 && !FUSE),
                  "3 or 4 warpgroups: one m64 tile each (64- / 128-row x tiles)");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t sraw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (sraw + 1023u) & ~1023u;
    unsigned char *sptr = smem_raw + (sbase - sraw);
    /* WGS = 4 (BM = 64 / 128): the block's 16 row blocks in 4 warpgroups of one m64 tile each instead of 2 of
     * two: the same tile, stages and copies, twice the warps (more of the dequantization latency hidden) */
    constexpr int WGM_STAGES = wgm_stages(BM), NS = wgm_ns(BM) * 2 / WGS, NTH = 128 * WGS;
    /* the barriers after the stages: full[WGM_STAGES], then empty[WGM_STAGES] */
    const uint32_t fullb = sbase + WGM_STAGES * wgm_stage(BM, WGS), emptyb = fullb + 8 * WGM_STAGES;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2, wi = warp & 3;
    const int g8 = lane >> 2, q = lane & 3;
    /* the block's tile and K slice: grid (M tiles, weight tiles, K slices), or, tail > 0 (launched as
     * clusters of 2 along x), clusters 0 .. tail - 1 doing two whole tiles each (tile 2 c + rank) and the
     * clusters after them one tile each in two K slices (tile 2 tail + c - tail, slice = rank): the tiles
     * of a last, partly filled wave in half the time; tiles numbered M tile fastest (mt M tiles) */
    int bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z, nz = gridDim.z;
    if (tail > 0) {
        const int c = blockIdx.x >> 1, rk = blockIdx.x & 1;
        const int tile = c < tail ? 2 * c + rk : tail + c;
        nz = c < tail ? 1 : 2, bz = c < tail ? 0 : rk;
        bx = tile % mt, by = tile / mt;
        KT = nz == 1 ? KB : (KB + 1) / 2;
    }
    const int m0 = bx * BM, nb0 = by * wgm_rbb(BM, WGS);
    /* K slice of this block (grid z; one slice: all of K): tiles kb0 .. kb0 + nkb - 1; t below is local */
    const int kb0 = bz * KT, nkb = KB - kb0 < KT ? KB - kb0 : KT;
    const CUtensorMap *ptx = &tx, *ptq = &tq, *pts = &ts, *ptz = &tz;
    WG_TRACE_INIT();
    WG_TRACE(0);

    /* stages 0 .. WGM_STAGES - 3 in the prologue; step t fills tile t + WGM_STAGES - 2 into the stage that
     * tile t - 2 left (every warp released it in its step t - 1) */
    constexpr int PRE = WGM_STAGES - 2;
    if (tid == 0) {
        for (int i = 0; i < WGM_STAGES; i++) {
            mbar_init(fullb + 8 * i, 1);
            mbar_init(emptyb + 8 * i, 4 * WGS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        for (int i = 0; i < PRE && i < nkb; i++) /* weights do not depend on the previous kernel */
            wgm_produce<SYM, G2, BM, WGS>(sbase, fullb, i, kb0 + i, m0, nb0, ptx, ptq, pts, ptz, ng, gdiv, gshift, 1);
    }
    lq_pdl_trigger();
    lq_pdl_wait(); /* x is the previous kernel's output */
    WG_TRACE(1);
    if (tid == 0)
        for (int i = 0; i < PRE && i < nkb; i++)
            wgm_produce<SYM, G2, BM, WGS>(sbase, fullb, i, kb0 + i, m0, nb0, ptx, ptq, pts, ptz, ng, gdiv, gshift, 2);
    __syncthreads(); /* the barriers are initialized */

    float d[NS][BM / 2]; /* written first by the wgmma of tile 0 (acc = 0) */
    /* two fragment sets: tile t's wgmma read one while tile t + 1 is dequantized into the other */
    uint32_t a[2][NS][4][4];
    /* dequantize tile t (in slot t % WGM_STAGES, once its copies landed) into ab: s < NS */
    auto dequant = [&](int t, uint32_t (&ab)[NS][4][4]) {
        mbar_wait(fullb + 8 * (t % WGM_STAGES), (uint32_t)(t / WGM_STAGES) & 1u);
        const unsigned char *stp = sptr + (t % WGM_STAGES) * wgm_stage(BM, WGS);
        const uint4 *cs = reinterpret_cast<const uint4 *>(stp + wgm_xb(BM));
        const uint32_t *gs = reinterpret_cast<const uint32_t *>(stp + wgm_xb(BM) + wgm_cb(BM, WGS));
#pragma unroll
        for (int s = 0; s < NS; s++) {
            const int rb = wg * 4 * NS + s * 4 + wi;
            const uint4 w = cs[rb * 32 + lane];
            small_consts k0, k1;
            small_setup<SYM>(k0, gs[rb * 8 + g8], SYM ? 0u : gs[WGM_GB / 4 + rb * 8 + g8]);
            if (G2) small_setup<SYM>(k1, gs[(16 + rb) * 8 + g8], SYM ? 0u : gs[WGM_GB / 4 + (16 + rb) * 8 + g8]);
            small_dequant(w.x, k0, ab[s][0]);
            small_dequant(w.y, k0, ab[s][1]);
            small_dequant(w.z, G2 ? k1 : k0, ab[s][2]);
            small_dequant(w.w, G2 ? k1 : k0, ab[s][3]);
        }
    };
    /* one tile: issue its 8 wgmma from cur, then, while they run, wait for the previous tile's group (which
     * read nxt and slot t - 1: this warp releases that slot), let thread 0 refill the slot tile t - 2 left,
     * and dequantize tile t + 1 into nxt. No block barrier: the warpgroups meet only at the empty barriers. */
    auto step = [&](int t, uint32_t (&cur)[NS][4][4], uint32_t (&nxt)[NS][4][4]) {
        const uint32_t xb = sbase + (uint32_t)(t % WGM_STAGES) * wgm_stage(BM, WGS);
        wgm_fence();
#pragma unroll
        for (int s = 0; s < NS; s++)
#pragma unroll
            for (int j = 0; j < 4; j++) wgm_mma_bm<BM>(d[s], cur[s][j], wgm_desc(xb + 32 * j), t > 0 || j > 0);
        wgm_commit();
        wgm_wait<1>();
#pragma unroll
        for (int s = 0; s < NS; s++)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) wgm_keep(nxt[s][j][e]);
        if (t > 0 && lane == 0) mbar_arrive(emptyb + 8 * ((t - 1) % WGM_STAGES));
        const int nt = t + PRE;
        if (tid == 0 && nt < nkb) {
            if (t >= 2) mbar_wait(emptyb + 8 * ((t - 2) % WGM_STAGES), (uint32_t)((t - 2) / WGM_STAGES) & 1u);
            wgm_produce<SYM, G2, BM, WGS>(sbase, fullb, nt % WGM_STAGES, kb0 + nt, m0, nb0, ptx, ptq, pts, ptz, ng, gdiv,
                                     gshift, 3);
        }
        __syncwarp();
        if (t + 1 < nkb) dequant(t + 1, nxt);
    };
    dequant(0, a[0]);
    WG_TRACE(2);
    for (int t = 0; t < nkb; t += 2) { /* two tiles per trip: the fragment sets stay in fixed registers */
#ifdef LQ_W4_TRACE
        if (t == ((nkb / 2) & ~1)) WG_TRACE(3);
#endif
        step(t, a[0], a[1]);
        if (t + 1 < nkb) step(t + 1, a[1], a[0]);
    }
    wgm_wait<0>();
#pragma unroll
    for (int s = 0; s < NS; s++)
#pragma unroll
        for (int i = 0; i < BM / 2; i++) wgm_keep(d[s][i]);
    WG_TRACE(4);

    /* accumulator fragment (per warp as mma's C): d[4 i + e] = weight row
     * 16 wi + g8 + 8 (e >> 1) of the m64 tile, x row 8 i + 2 q + (e & 1).
     * Several K slices: this slice's sum, without bias, to part [slice][M][N]
     * (w4a16_small_reduce_kernel adds them in slice order) */
    if (FUSE && nz > 1) { /* a tail tile: its two slices summed in the cluster, then the SwiGLU */
        wgm_cluster_sum<BM, NS, FUSE>(d, sptr, y, bias, M, N, m0, nb0 * 16, tid, wg, wi, g8, q, nz, bz, hout, hbf16, H,
                                      by * 64);
        WG_TRACE(5);
        return;
    }
    if constexpr (FUSE) {
        /* The stages are free (every wgmma has completed, every copy has landed): both warpgroups put their
         * accumulators into shared memory, gate (warpgroup 0) and up (1) as [256 x rows][64 hidden units]
         * (row stride 68 floats: the four q lanes of a store land in different banks), then all 256 threads
         * write h in 16-byte pieces, 8 hidden units of one x row each: full 128-byte rows of h, and no
         * branch around an element, so the 64 exp / division chains of a thread overlap. */
        constexpr int LD = 68;
        float *gu = reinterpret_cast<float *>(sptr) + wg * (BM * LD);
        __syncthreads();
#pragma unroll
        for (int i = 0; i < BM / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) gu[(8 * i + 2 * q + (e & 1)) * LD + wi * 16 + g8 + 8 * (e >> 1)] = d[0][4 * i + e];
        __syncthreads();
        const float *gs = reinterpret_cast<const float *>(sptr), *us = gs + BM * LD;
#pragma unroll 2
        for (int v = tid; v < BM * 8; v += 256) {
            const int r = v >> 3, c = (v & 7) * 8, m = m0 + r, nh = by * 64 + c;
            const float4 g0 = *reinterpret_cast<const float4 *>(gs + r * LD + c),
                         g1 = *reinterpret_cast<const float4 *>(gs + r * LD + c + 4),
                         u0 = *reinterpret_cast<const float4 *>(us + r * LD + c),
                         u1 = *reinterpret_cast<const float4 *>(us + r * LD + c + 4);
            const float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w},
                        u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
            wgm_swiglu8(g, u, hout, hbf16, M, H, m, nh);
        }
        WG_TRACE(5);
        return;
    }
    const bool split = nz > 1;
    if (split && csum) { /* launched as clusters of the nz slices of one output tile (rank = slice) */
        wgm_cluster_sum<BM, NS, false, NTH>(d, sptr, y, bias, M, N, m0, nb0 * 16, tid, wg, wi, g8, q, nz, bz, NULL, 0,
                                            0, 0);
        WG_TRACE(5);
        return;
    }
    float *dst = split ? part + (int64_t)bz * M * N : y;
#pragma unroll
    for (int s = 0; s < NS; s++) {
#pragma unroll
        for (int e2 = 0; e2 < 2; e2++) {
            const int n = (nb0 + wg * 4 * NS + s * 4 + wi) * 16 + g8 + 8 * e2;
            if (n >= N) continue;
            const float bv = bias && !split ? __ldg(bias + n) : 0.0f;
#pragma unroll
            for (int i = 0; i < BM / 8; i++)
#pragma unroll
                for (int e1 = 0; e1 < 2; e1++) {
                    const int m = m0 + 8 * i + 2 * q + e1;
                    if (m < M) dst[(int64_t)m * N + n] = d[s][4 * i + 2 * e2 + e1] + bv;
                }
        }
    }
    WG_TRACE(5);
#else
    __trap(); /* launched only on sm_90 (wgm_supported) */
#endif
}

/* ---------------- launchers ---------------- */

static int64_t fused_mt(int64_t m) { return m <= 16 ? 1 : m <= 32 ? 2 : 4; }

typedef struct {
    int MT, S, kb_per_split, arows;
    unsigned tiles, chunks;
    size_t smem;
} fused_plan;

static fused_plan plan_fused(const lq_w4a16_shape *s, int64_t m, int sm_count) {
    fused_plan p;
    p.MT = (int)fused_mt(m);
    const int MC = 16 * p.MT;
    const int64_t KB = s->Kp / 64, NW = s->Np / 32; /* warps' worth of columns */
    p.tiles = (unsigned)((NW + W4_WARPS - 1) / W4_WARPS);
    p.chunks = (unsigned)((m + MC - 1) / MC);
    /* split K into as many slices as one wave of resident blocks holds, and
     * at least until the activation slice fits its shared-memory budget: more
     * splits only add partial sums, a second wave adds a tail. Resident
     * blocks per SM: 3 when M <= 4 (76 registers; the ring and a slice of at
     * most 5 rows fit three times), 2 otherwise */
    p.arows = (int)(m < MC ? m : MC);
    const int three = p.MT == 1 && p.arows <= 4;
    const int64_t per_sm = three ? 3 : 2, sms = sm_count > 0 ? sm_count : 132;
    const int64_t a_budget = three ? (227 * 1024 / 3 - 1024 - W4_SMEM_RING) : W4_SMEM_A_MAX;
    int64_t blocks = (int64_t)p.tiles * p.chunks;
    int64_t S = per_sm * sms / blocks;
    {
        int64_t kbmax = a_budget / ((p.arows + 1) * (64 * 2 + 16));
        if (kbmax < 1) kbmax = 1;
        int64_t smin = (KB + kbmax - 1) / kbmax;
        if (S < smin) S = smin;
    }
    if (S > KB) S = KB;
    if (S < 1) S = 1;
    int64_t kps = (KB + S - 1) / S;
    S = (KB + kps - 1) / kps; /* no empty splits */
    p.S = (int)S;
    p.kb_per_split = (int)kps;
    p.smem = W4_SMEM_RING + (size_t)(p.arows + 1) * (size_t)(kps * 64 + 8) * sizeof(__half);
    return p;
}

static size_t small_ws_bytes(const lq_w4a16_shape *s, int64_t m, int sm_count);

static size_t wgm_ws_bytes(const lq_w4a16_shape *s, int64_t m, int sm_count);

extern "C" size_t lq_w4a16_workspace_bytes(const lq_w4a16_shape *s, int64_t max_m, int sm_count) {
    size_t need = 0;
    /* K-slice partials of the small-M kernel */
    for (int64_t m = 1; m <= max_m && m <= LQ_W4A16_SMALL_MAX_M; m++) {
        size_t b = small_ws_bytes(s, m, sm_count);
        if (b > need) need = b;
    }
    /* split-K partials for every fused M-chunk size up to max_m */
    int64_t mlim = max_m < LQ_W4A16_FUSED_MAX_M ? max_m : LQ_W4A16_FUSED_MAX_M;
    for (int64_t m = 1; m <= mlim; m++) {
        {
        fused_plan p = plan_fused(s, m, sm_count);
        size_t b = p.S > 1 ? (size_t)p.tiles * p.chunks * (size_t)p.S * (size_t)(16 * p.MT * W4_COLS) * sizeof(float) : 0;
        if (b > need) need = b;
        }
    }
    /* K-slice partials of the wgmma kernel (sm_90; sized whatever the device: the engine plans before it asks) */
    for (int64_t mm = 1; mm <= max_m; mm++) {
        size_t b = wgm_ws_bytes(s, mm, sm_count);
        if (b > need) need = b;
    }
    /* dequantized fp16 weight for the cuBLAS path */
    if (max_m > LQ_W4A16_FUSED_MAX_M) {
        size_t b = (size_t)s->N * (size_t)s->K * sizeof(__half) + 256;
        if (b > need) need = b;
    }
    return need;
}

extern "C" lq_status lq_w4a16_dequant_cuda(void *out, const lq_w4a16_weight *w, void *stream) {
    const lq_w4a16_shape *s = &w->s;
    const int64_t KB = s->Kp / 64, blocks = (s->Np / 16) * ((KB + DQ_TILES - 1) / DQ_TILES);
    if (s->N == 0 || KB == 0) return LQ_OK;
    LQ_RETURN_IF(blocks > INT32_MAX, LQ_ERR_UNSUPPORTED, "lq_w4a16_dequant_cuda: N=%lld K=%lld: too many blocks",
                 (long long)s->N, (long long)s->K);
    int vec = (s->K % 8 == 0) && (((uintptr_t)out & 15) == 0);
    w4a16_dequant_kernel<<<(unsigned)blocks, 256, 0, lq_stream(stream)>>>(
        (__half *)out, (const uint4 *)w->qw, (const __half *)w->scales, (const __half *)w->zeros, s->N, s->K, s->Np,
        KB, s->G, s->n_groups, vec);
    LQ_LAUNCH_RET("w4a16_dequant_kernel");
    return LQ_OK;
}

template <int MT, bool SYM>
static lq_status launch_fused(const lq_device_limits *lim, const fused_plan &p, float *y, const void *x, int64_t ldx,
                              const lq_w4a16_weight *w, const float *b, int64_t m, int vec_x, float *parts,
                              cudaStream_t st) {
    const lq_w4a16_shape *s = &w->s;
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: the dynamic shared-memory limit, raised once per device */
    LQ_CUDA_RET(lq_smem_optin(w4a16_mma_kernel<MT, SYM>, lim->dev, W4_SMEM_RING + W4_SMEM_A_MAX + 16 * 4 * 16, optin),
                "cudaFuncSetAttribute (w4a16_mma_kernel)");
    dim3 grid(p.tiles, (unsigned)p.S, p.chunks);
    w4a16_mma_kernel<MT, SYM><<<grid, 32 * W4_WARPS, p.smem, st>>>(
        y, (const __half *)x, ldx, (const uint4 *)w->qw, (const uint32_t *)w->scales, (const uint32_t *)w->zeros,
        p.S > 1 ? NULL : b, m, s->N, s->K, s->Np, s->Kp / 64, s->G, s->n_groups, p.kb_per_split, vec_x, p.arows, parts);
    LQ_LAUNCH_RET("w4a16_mma_kernel");
    if (p.S > 1) {
        w4a16_reduce_kernel<<<lq_blocks(m * s->N, 256), 256, 0, st>>>(y, parts, b, m, s->N, 16 * MT, p.S, (int)p.tiles);
        LQ_LAUNCH_RET("w4a16_reduce_kernel");
    }
    return LQ_OK;
}

/* ---- small-M plan ----
 * NT n-tiles of 8 rows of x (M <= 8 NT); B row blocks of 16 rows per block,
 * S warps per row block (each a 1/S part of the block's K slice), W = B S
 * warps; KS K slices (grid y), each staged by its own blocks, whose partial
 * sums w4a16_small_reduce_kernel adds (workspace KS M N floats).
 * NT = 1 (M <= 8; the M = 1..4 plan measured in kernels/dev/w4a16_notes.md):
 *  1. S: the largest power of two (<= 32, <= KB tiles) with NB S <= 32 per
 *     SM: one wave of resident warps (the kernel's 64-register bound allows
 *     32 per SM) covers the whole weight — no second wave, no tail. gate_up
 *     (NB = 1792) gets S = 2, o and down (NB = 256) S = 16.
 *  2. B: each block stages all of x (2 M Kp bytes from L2) for 8 B Kp bytes
 *     of codes: B up to 2 M keeps that extra traffic under 1/8 of the codes,
 *     as long as the grid still has a block for (almost) every SM.
 *  3. Shared memory (x of M rows, B row blocks' groups, the partial sums):
 *     when it lets fewer than 24 warps reside per SM, grow the block (same
 *     x, more warps) until it reaches 32 warps; KS > 1 only when x does not
 *     fit one block.
 * NT >= 2: x grows with M (M Kp 2 bytes: 128 KB at M = 16, K = 4096; 458 KB
 * for down), so blocks stage a K slice, and the extra x traffic (M / (4 B)
 * of the code bytes, from L2) needs large B. Every (B, S, KS) in powers of
 * two is scored by an estimate of the busiest SM's bytes (see small_cost);
 * the lowest wins.
 * Only the speed depends on these estimates, never the result. */
typedef struct {
    int NT, B, S, KS, KT; /* n-tiles; row blocks per block; warps per row block; K slices of KT tiles */
    unsigned blocks;      /* grid x */
    size_t smem;          /* dynamic shared memory, bytes */
    int g2, gdiv, gshift;
} small_plan;

static int small_nt(int64_t m) { return m <= 8 ? 1 : m <= 16 ? 2 : m <= 32 ? 4 : 8; }

/* Groups a slice of KT tiles touches, at most (the kernel stages exactly the ones it touches). */
static int64_t small_slice_groups(const lq_w4a16_shape *s, const small_plan *p, int64_t KT) {
    if (s->n_groups <= 1) return 1;
    const int64_t span = p->g2 ? 2 * KT : KT, g = (span + p->gdiv - 1) / p->gdiv + 1;
    return g < s->n_groups ? g : s->n_groups;
}

/* sym: the weight has no zeros array (the kernel's SYM, not s->sym: the launch follows the pointer).
 * The kernel's layout: max(xs, red), then the group data. */
/* The launch takes the kernel with M at compile time (MC = M, its WHOLE layout) for M = 1..4 in one
 * K slice; every other plan the general one (MC = 0). */
static bool small_whole(const lq_w4a16_shape *s, int64_t m, int64_t KT) { return m <= 4 && KT == s->Kp / 64; }

static size_t small_smem(const lq_w4a16_shape *s, const small_plan *p, int sym, int64_t m, int B, int W, int64_t KT) {
    const size_t red = (size_t)W * 16 * (size_t)m * sizeof(float);
    if (small_whole(s, m, KT)) /* the kernel's WHOLE layout: x, group data, partial sums one after another */
        return (size_t)m * (size_t)KT * 128 + (size_t)B * (size_t)s->n_groups * 32 * (sym ? 1 : 2) + red;
    const size_t xs = (size_t)m * (size_t)(KT * 8 + 1) * 16;
    return (xs > red ? xs : red) + (size_t)B * (size_t)small_slice_groups(s, p, KT) * 32 * (sym ? 1 : 2);
}

/* Blocks of W warps and smem bytes one SM holds (estimate; 1 KB per block is the driver's reserve). */
static int64_t small_blocks_per_sm(int W, int WM, size_t smem, size_t smem_per_sm) {
    int64_t by_warps = WM / W, by_smem = (int64_t)(smem_per_sm / (smem + 1024)), b = by_warps;
    if (by_smem < b) b = by_smem;
    return b < 32 ? b : 32;
}

/* Estimated time of a plan (M >= 2), in bytes the busiest SM streams:
 * ceil(blocks / SMs) blocks, each B KT 512 code bytes from DRAM and M KT 128
 * bytes of x from L2 (counted half); scaled by sqrt(WM / resident warps)
 * when fewer than WM warps share the SM (the M = 1 kernel was latency-bound:
 * more warps, more loads in flight), and up when a warp's K range is
 * shorter than its ring (the ring never fills); KS > 1 adds the partial
 * sums (written and read once) and ~1 us for the second kernel (32 KB per
 * SM at 4.2 TB/s). B need not be a power of two: 1792 row blocks / 14 = 128
 * blocks fill 132 SMs better than 112 or 224. */
static double small_cost(int64_t NB, int64_t N, int64_t m, int64_t sms, int depth, int WM, int B, int S, int64_t KT,
                         int KS, int64_t per_sm_blocks) {
    const int64_t blocks = (NB + B - 1) / B * KS, bps = (blocks + sms - 1) / sms;
    const int64_t resident = (bps < per_sm_blocks ? bps : per_sm_blocks) * B * S, T = (KT + S - 1) / S;
    double c = (double)bps * ((double)B * KT * 512 + (double)m * KT * 64);
    if (resident < WM) c *= sqrt((double)WM / (double)resident);
    if (T < depth) c *= 1.0 + 0.5 * (double)(depth - T) / depth;
    if (KS > 1) c += 32768.0 + 2.0 * KS * m * N * 4 / (double)sms;
    return c;
}

static void small_finish(const lq_w4a16_shape *s, int sym, int64_t m, small_plan *p) {
    const int64_t NB = s->Np / 16, KB = s->Kp / 64;
    if (p->KS < 1) p->KS = 1;
    p->KT = (int)((KB + p->KS - 1) / p->KS);
    p->KS = (int)((KB + p->KT - 1) / p->KT); /* no empty slices */
    p->blocks = (unsigned)((NB + p->B - 1) / p->B);
    p->smem = small_smem(s, p, sym, m, p->B, p->B * p->S, p->KT);
}

/* 0 when no plan fits one block's shared memory (not for M <= 64: one tile per slice is 9 KB of x). */
static int plan_small_search(const lq_w4a16_shape *s, int sym, int64_t m, int sm_count, size_t smem_per_block,
                      size_t smem_per_sm, small_plan *p) {
    const int64_t NB = s->Np / 16, KB = s->Kp / 64, sms = sm_count > 0 ? sm_count : 132;
    const int NT = small_nt(m), WM = w4s_max_warps(NT);
    const int64_t target = sms * WM;
    /* group of a tile: one group per tile unless G is an odd multiple of 32 */
    const int64_t ng = s->n_groups;
    p->NT = NT;
    p->g2 = ng > 1 && s->G % 64 != 0;
    const int64_t div = ng <= 1 ? (int64_t)1 << 30 : p->g2 ? s->G / 32 : s->G / 64;
    p->gdiv = (int)div;
    p->gshift = (div & (div - 1)) == 0 ? __builtin_ctzll((unsigned long long)div) : -1;
    int B = 1, S = 1, KS = 1;
    if (m == 1) { /* rules from LQ_W4S_PLAN sweeps; the cost search below lost here (o 2,16 5.7 us vs 1,16 5.1) */
        while (S < WM && 2 * S <= KB && NB * 2 * S <= target) S *= 2;
        /* at most 16 tiles per warp even past one resident wave of warps — the warp's dependency chain,
           not the warp count, is the limit here (gate_up, S 2 -> 4: 21.8 -> 19.5 us; M = 4 lost with it:
           22.5 -> 25.8; bench/results/2026-12-01-h200-bmsel/call2) */
        while (2 * S <= WM && 2 * S <= KB && (KB + S - 1) / S > 16) S *= 2;
        /* two row blocks per block only where ceil(NB / 2B) blocks still cover every SM (o and down,
           256 row blocks: 1 row block per block 5.7 -> 5.2 and 12.1 -> 11.6 us, the 128 blocks of 2
           leaving 4 SMs idle) */
        while (B < 2 && B * S < WM && (NB + 2 * B - 1) / (2 * B) >= sms) B *= 2;
        while (B * S < WM && small_blocks_per_sm(B * S, WM, small_smem(s, p, sym, m, B, B * S, KB), smem_per_sm) * B * S < 24) {
            if ((NB + 2 * B - 1) / (2 * B) * 2 >= sms) B *= 2; /* fewer, larger blocks: each stages x once */
            else if (2 * S <= KB) S *= 2;
            else break;
        }
    }
    /* M >= 2, or x does not fit one block: the cost search. At M = 2..8 it beat the power-of-two rules the
       M = 1 ones grew from (qkv 3,8,1: M = 8 11.3 -> 9.1 us, M = 5 9.4 -> 8.1; gate_up 14,2,1: 26.0 -> 24.3;
       down 16,2,8 at M = 5..7: 16.4-18.3 -> 15.2-15.4; the rest equal; LQ_W4S_PLAN sweep,
       bench/results/2026-12-01-h200-lmhead/call2) */
    if (m > 1 || small_smem(s, p, sym, m, B, B * S, KB) > smem_per_block) {
        double best = 0;
        const int depth = w4s_depth(NT, sym, p->g2);
        for (int b = 1; b <= WM; b++)
            for (int sp = 1; b * sp <= WM && sp <= KB; sp *= 2)
                for (int ks = 1; ks <= 32 && (int64_t)sp * ks <= KB; ks *= 2) {
                    const int64_t KT = (KB + ks - 1) / ks, ksr = (KB + KT - 1) / KT;
                    const size_t smem = small_smem(s, p, sym, m, b, b * sp, KT);
                    if (smem > smem_per_block) continue;
                    const int64_t r = small_blocks_per_sm(b * sp, WM, smem, smem_per_sm);
                    if (r < 1) continue;
                    double c = small_cost(NB, s->N, m, sms, depth, WM, b, sp, KT, (int)ksr, r);
                    /* M <= 4 in one K slice runs the kernel with M at compile time; a K split the general
                       one (down at M = 4: 16,2,8 14.8 us against 2,16,1's 14.4, the model 3% the other way) */
                    if (m <= 4 && !small_whole(s, m, KT)) c *= 1.06;
                    if (best == 0 || c < best) best = c, B = b, S = sp, KS = (int)ksr;
                }
    }
    /* tuning knob for sweeps on a GPU (kernels/dev/w4a16_notes.md): LQ_W4S_PLAN=B,S[,KS] forces the plan where
       it is valid (B S <= the warps of the instantiation, S KS <= KB); the result never depends on it */
    static int fb = -1, fs = -1, fk = -1;
    if (fb < 0) {
        const char *e = getenv("LQ_W4S_PLAN");
        fb = fs = 0, fk = 1;
        if (e && sscanf(e, "%d,%d,%d", &fb, &fs, &fk) < 2) fb = fs = 0, fk = 1;
        if (fk < 1) fk = 1;
    }
    if (fb > 0 && fs > 0 && fb * fs <= WM && (int64_t)fs * fk <= KB)
        B = fb, S = fs, KS = fk;
    p->B = B;
    p->S = S;
    p->KS = KS;
    small_finish(s, sym, m, p);
    return p->smem <= smem_per_block;
}

/* plan_small_search with a small per-thread cache: the search scores a few
 * hundred candidates (~10 us), paid once per shape and M instead of on every
 * call (decode calls each weight with the same M over and over). */
static int plan_small(const lq_w4a16_shape *s, int sym, int64_t m, int sm_count, size_t smem_per_block,
                      size_t smem_per_sm, small_plan *p) {
    struct entry {
        int64_t N, K, G, m;
        size_t per_block, per_sm;
        int sym, sms, ok;
        small_plan p;
    };
    static thread_local entry cache[16];
    static thread_local int next = 0;
    for (int i = 0; i < 16; i++) {
        const entry &e = cache[i];
        if (e.m == m && e.N == s->N && e.K == s->K && e.G == s->G && e.sym == sym && e.sms == sm_count &&
            e.per_block == smem_per_block && e.per_sm == smem_per_sm) {
            *p = e.p;
            return e.ok;
        }
    }
    entry e = {s->N, s->K, s->G, m, smem_per_block, smem_per_sm, sym, sm_count, 0, {}};
    e.ok = plan_small_search(s, sym, m, sm_count, smem_per_block, smem_per_sm, &e.p);
    cache[next] = e;
    next = (next + 1) % 16;
    *p = e.p;
    return e.ok;
}

/* Workspace of the small-M path at m rows: the K-slice partial sums (0 when one slice). */
static size_t small_ws_bytes(const lq_w4a16_shape *s, int64_t m, int sm_count) {
    lq_device_limits lim;
    if (lq_device_limits_current(&lim) != cudaSuccess) /* H100/H200, when the device cannot be asked */
        lim.smem_per_block_optin = 227 * 1024, lim.smem_per_sm = 228 * 1024;
    small_plan p;
    if (!plan_small(s, s->sym, m, sm_count, (size_t)lim.smem_per_block_optin, (size_t)lim.smem_per_sm, &p) ||
        p.KS <= 1)
        return 0;
    return (size_t)p.KS * (size_t)m * (size_t)s->N * sizeof(float);
}

/* The one-n-tile instantiations (M <= 8) run with integer weights (ISC): (code - zero) exactly in fp16, 9
 * instructions per code word instead of 13, the scale applied in fp32 to each group's product (4 FFMA per tile
 * or half tile). The M = 1 loop is bound by instruction issue, so this was worth (H200, session 15,
 * bench/results/2026-12-02-h200-s15/call5, alternating with ISCALE=0): qkv 6.7 -> 6.1 us, o 5.2 -> 5.0, gate_up
 * 19.3 -> 18.2, down 11.5 -> 10.7; W4 llama3-8b decode b1 ~470 -> ~500 tok/s. Carrying the product over a
 * group's tiles instead (one flush per group) lost: it chains every tile's mma onto the last (call 6). The weights are then the exact (code - zero) scale,
 * not their fp16 rounding (the other paths' weights): closer to the real dequantized values, not the same bits
 * as the fp16-weight paths. LQ_W4S_ISCALE=0 restores the fp16 weights (for A/B runs). */
static int small_isc(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_W4S_ISCALE");
        v = !(e && atoi(e) == 0);
    }
    return v;
}

template <int NT, int MC, bool SYM, bool G2, bool ISC>
static lq_status launch_small_k(const lq_device_limits *lim, const small_plan &p, float *y, float *part, const void *x,
                                int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m, int vec_x,
                                cudaStream_t st, void *hout, int hbf16) {
    const lq_w4a16_shape *s = &w->s;
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: the shared-memory limit per device, raised when needed */
    if (p.smem > 48 * 1024)
        LQ_CUDA_RET(lq_smem_optin(w4a16_small_m_kernel<NT, MC, SYM, G2, ISC>, lim->dev, (int)p.smem, optin),
                    "cudaFuncSetAttribute (w4a16_small_m_kernel)");
    const int pdl = lq_pdl_on(lim);
    LQ_CUDA_RET(lq_launch_pdl_if(pdl, w4a16_small_m_kernel<NT, MC, SYM, G2, ISC>, dim3(p.blocks, (unsigned)p.KS),
                                 dim3(32 * p.B * p.S), p.smem, st, y, part, (const __half *)x, ldx,
                                 (const uint4 *)w->qw, (const uint32_t *)w->scales, (const uint32_t *)w->zeros, b,
                                 (int)m, (int)s->N, (int)(s->Np / 16), (int)s->K, (int)(s->Kp / 64), (int)s->n_groups,
                                 p.gdiv, p.gshift, p.B, p.S, p.KT, vec_x, hout, hbf16),
                "launch w4a16_small_m_kernel");
    if (p.KS > 1)
        LQ_FORWARD(launch_small_reduce(pdl, y, (const float *)part, b, m, s->N, p.KS, st,
                                       "launch w4a16_small_reduce_kernel"));
    return LQ_OK;
}

template <int NT, int MC, bool SYM, bool G2>
static lq_status launch_small_t(const lq_device_limits *lim, const small_plan &p, float *y, float *part, const void *x,
                                int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m, int vec_x,
                                cudaStream_t st, void *hout, int hbf16) {
    if constexpr (NT == 1)
        if (small_isc())
            return launch_small_k<NT, MC, SYM, G2, true>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    return launch_small_k<NT, MC, SYM, G2, false>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
}

/* MC: M at compile time (1..4) or 0 (runtime); see w4a16_small_m_kernel */
template <int NT, int MC>
static lq_status launch_small_nt(const lq_device_limits *lim, const small_plan &p, float *y, float *part,
                                 const void *x, int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m,
                                 int vec_x, cudaStream_t st, void *hout, int hbf16) {
    if (w->zeros == NULL)
        return p.g2 ? launch_small_t<NT, MC, true, true>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16)
                    : launch_small_t<NT, MC, true, false>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    return p.g2 ? launch_small_t<NT, MC, false, true>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16)
                : launch_small_t<NT, MC, false, false>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
}

/* The small-M path: *ran = 0 (and LQ_OK) when no plan fits one block's
 * shared memory, so that the caller can take the fused kernel.
 * hout: the SwiGLU epilogue into hout (fp16, or bf16 when hbf16; M <= 4, a weight from lq_w4a16_upload_swiglu,
 * no bias; y not written): plan B = 8 row blocks (one gate|up pair of 64 hidden units), S = 2, one K slice. */
static lq_status small_m_matmul(cudaError_t lim_err, const lq_device_limits *lim, float *y, const void *x,
                                int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m, int sm_count,
                                void *ws, size_t ws_bytes, cudaStream_t st, int *ran, void *hout = NULL,
                                int hbf16 = 0) {
    const lq_w4a16_shape *s = &w->s;
    *ran = 0;
    LQ_RETURN_IF(s->n_groups > 1 && s->G % 32 != 0, LQ_ERR_UNSUPPORTED,
                 "lq_w4a16_matmul_cuda: group size %lld is not a multiple of 32", (long long)s->G);
    LQ_RETURN_IF(s->Np / 16 > INT32_MAX / 16 || s->Kp > INT32_MAX / 8 || m * s->N > INT32_MAX / 64,
                 LQ_ERR_UNSUPPORTED, "lq_w4a16_matmul_cuda: M=%lld N=%lld K=%lld too large for the small-M kernel",
                 (long long)m, (long long)s->N, (long long)s->K);
    LQ_CUDA_RET(lim_err, "lq_w4a16_matmul_cuda: small-M path: device limits");
    small_plan p;
    if (!plan_small(s, w->zeros == NULL, m, sm_count, (size_t)lim->smem_per_block_optin, (size_t)lim->smem_per_sm,
                    &p))
        return LQ_OK;
    if (hout) {
        p.B = 8, p.S = s->Kp / 64 >= 2 ? 2 : 1, p.KS = 1;
        small_finish(s, w->zeros == NULL, m, &p);
        if (p.smem > (size_t)lim->smem_per_block_optin) return LQ_OK;
    }
    const size_t need = p.KS > 1 ? (size_t)p.KS * (size_t)m * (size_t)s->N * sizeof(float) : 0;
    LQ_RETURN_IF(ws_bytes < need || (need && !ws), LQ_ERR_ARG,
                 "lq_w4a16_matmul_cuda: small-M path: workspace of %zu bytes, %zu needed for %d K slices (M=%lld "
                 "N=%lld K=%lld)", ws_bytes, need, p.KS, (long long)m, (long long)s->N, (long long)s->K);
    /* 16-byte activation loads need an aligned pointer and row stride; the
     * staging reads element by element otherwise (any x, any ldx) */
    const int vec_x = (ldx % 8 == 0) && (((uintptr_t)x & 15) == 0);
    float *part = (float *)ws;
    *ran = 1;
    if (p.NT == 1 && small_whole(s, m, p.KT)) switch (m) {
        case 1: return launch_small_nt<1, 1>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
        case 2: return launch_small_nt<1, 2>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
        case 3: return launch_small_nt<1, 3>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
        default: return launch_small_nt<1, 4>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
        }
    if (p.NT == 1) return launch_small_nt<1, 0>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    switch (p.NT) {
    case 2: return launch_small_nt<2, 0>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    case 4: return launch_small_nt<4, 0>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    default: return launch_small_nt<8, 0>(lim, p, y, part, x, ldx, w, b, m, vec_x, st, hout, hbf16);
    }
}

/* cuTensorMapEncodeTiled from the driver (through the runtime: no link to libcuda); NULL where the driver
 * has none */
typedef CUresult (*wgm_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                  const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                  CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
static wgm_encode_fn wgm_encode_ptr = NULL;
static void wgm_encoder_ask(void) {
    void *p = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
        wgm_encode_ptr = (wgm_encode_fn)p;
    cudaGetLastError();
}
static wgm_encode_fn wgm_encoder(void) { /* asked once per process, thread-safe */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, wgm_encoder_ask);
    return wgm_encode_ptr;
}

/* The wgmma path here and now: an sm_90 device (the binary's sm_90a code), K and
 * ldx multiples of 8, x and the group words 16-byte aligned. 0 with the reason
 * in *why otherwise. */
static int wgm_device(const lq_device_limits *lim, const char **why) {
    if (!lim) return (*why = "no CUDA device"), 0;
    *why = "the device is not sm_90 (the wgmma code is built for sm_90a)";
    return lim->cc_major == 9 && lim->cc_minor == 0;
}

extern "C" int lq_w4a16_wgmma_device(void) {
    const char *why;
    lq_device_limits lim;
    if (lq_device_limits_current(&lim) != cudaSuccess) return cudaGetLastError(), 0;
    return wgm_device(&lim, &why);
}

static int wgm_supported(const lq_device_limits *lim, const lq_w4a16_weight *w, const void *x, int64_t ldx,
                         const char **why) {
    if (!wgm_device(lim, why)) return 0;
    if (w->s.K % 8 || ldx % 8 || ((uintptr_t)x & 15)) return (*why = "K or ldx not a multiple of 8, or x not 16-byte aligned"), 0;
    if (((uintptr_t)w->scales & 15) || ((uintptr_t)w->zeros & 15)) return (*why = "group data not 16-byte aligned"), 0;
    if (w->s.Np / 16 > INT32_MAX / 16 || w->s.Kp > INT32_MAX / 8) return (*why = "shape too large"), 0;
    if (!wgm_encoder()) return (*why = "the driver has no cuTensorMapEncodeTiled"), 0;
    return 1;
}

/* LQ_W4A16_WGMMA=0: path 0 never takes the wgmma kernel; =2: at every M >= LQ_W4A16_WGMMA_MIN_M, any N
   (A/B knobs, read once; results agree to rounding either way) */
static int wgm_knob(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_W4A16_WGMMA");
        v = e && e[0] == '0' ? 0 : e && e[0] == '2' ? 2 : 1;
    }
    return v;
}

/* The smallest M that path 0 gives the wgmma kernel: LQ_W4A16_WGMMA_MIN_M, or LQ_W4A16_WGMMA_MIN=n (A/B knob for
 * the M = 9..23 range, read once) */
static int64_t wgm_min_m(void) {
    static int64_t v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_W4A16_WGMMA_MIN");
        const long n = e ? atol(e) : 0;
        v = n >= 1 ? (int64_t)n : (int64_t)LQ_W4A16_WGMMA_MIN_M;
    }
    return v;
}

/* x rows per block: 64 up to M = 64, 128 up to 128, 256 up to 256 (one tile of rows), 128 below 384, 256 from
 * there. H200, graph timing, the four Llama-3-8B shapes (bench/results/2026-12-01-h200-tail/call5): at M = 192
 * and 256 one 256-row tile beat two 128-row tiles on every shape (qkv M = 256 30.4 -> 26.9 us, o 24.9 -> 23.2,
 * gate_up 122.4 -> 103.6, down 60.8 -> 53.0); at M = 320 two 256-row tiles, the second mostly empty, lost on
 * three of four (gate_up 179.1 vs 220.7); at M = 384 256-row tiles were faster on qkv, o and down, slower on
 * gate_up (0.99x in sum: bench/results/2026-12-01-h200-wgmma-bm256/call1), and gate_up runs the SwiGLU
 * epilogue there. M = 384 (three whole 128-row tiles against two 256-row ones, a quarter of them padding) went
 * to 128 rows in session 22, when the 3- / 4-warpgroup blocks had made them faster on every shape: qkv 44.6 ->
 * 41.0 us, o 28.5 -> 24.9, gate_up 191 -> 166, down 79 -> 74; Llama-2-7B qkv 78 -> 67, gate_up 150 -> 111
 * (bench/results/2026-12-03-h200-s22/call1, the knobs below). 16 / 32 rows at M <= 16 / 32: branch wgmma-n16, see w4a16_notes. LQ_W4A16_WGMMA_BM=16|32|64|128|256
 * forces one for A/B runs (read once) */
static int wgm_bm_force(void) {
    static int force = -1;
    if (force < 0) {
        const char *e = getenv("LQ_W4A16_WGMMA_BM");
        const int v = e ? atoi(e) : 0;
        force = v == 16 || v == 32 || v == 64 || v == 128 || v == 256 ? v : 0;
    }
    return force;
}
static int wgm_bm(int64_t m) {
    if (wgm_bm_force()) return wgm_bm_force();
    return m <= 16 ? 16 : m <= 32 ? 32 : m <= 64 ? 64 : m <= 128 ? 128 : m <= 256 ? 256 : m <= 384 ? 128 : 256;
}
/* Blocks per SM the slice rule counts on: 2 for 16-row tiles (128 registers, ~100 KB of shared memory: two
 * fit), else 1. H200, M = 8..32, llama3 shapes (bench/results/2026-12-03-h200-s18/call2, two rounds): 16-row
 * tiles counting 2 (more slices) qkv M = 12 8.6 vs 9.6-9.8 us, gate_up M = 16 26.7 vs 43.7; 32-row tiles
 * counting 1 qkv M = 24 10.5 vs 13.7, gate_up 35.7 vs 42.6. LQ_W4A16_WGMMA_BPS=1|2 sets it for both tile
 * sizes (A/B knob, read once). */
static int64_t wgm_per_sm(int bm) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LQ_W4A16_WGMMA_BPS");
        v = e && (atoi(e) == 1 || atoi(e) == 2) ? atoi(e) : 0;
    }
    if (bm > 32) return 1;
    return v ? v : bm == 16 ? 2 : 1;
}
/* K slices of a wgmma product: enough blocks for the SMs when the output tiles alone leave most of them
 * idle (qkv / o / down below M ~ 1024: 16-96 blocks), at most 8, each slice at least 8 tiles. */
static int wgm_ks(const lq_w4a16_shape *s, int64_t m, int sm_count, int bm, int wgs) {
    const int rbb = wgm_rbb(bm, wgs);
    const int64_t blocks = (m + bm - 1) / bm * ((s->Np / 16 + rbb - 1) / rbb);
    const int64_t KB = s->Kp / 64, sms = (sm_count > 0 ? sm_count : 132) * wgm_per_sm(bm);
    static int force = -1; /* LQ_W4A16_WGMMA_KS=1..8: that many slices (A/B knob, read once) */
    if (force < 0) {
        const char *e = getenv("LQ_W4A16_WGMMA_KS");
        force = e && atoi(e) >= 1 && atoi(e) <= 8 ? atoi(e) : 0;
    }
    int64_t ks = force ? force : sms / (blocks > 0 ? blocks : 1);
    if (ks > 8) ks = 8;
    if (ks > KB / 8) ks = KB / 8;
    if (ks < 1) ks = 1;
    const int64_t kt = (KB + ks - 1) / ks;
    return (int)((KB + kt - 1) / kt); /* no empty slice */
}
/* LQ_W4A16_WGMMA_WGS: 0 when unset (the rule below), else 2 / 3 / 4; read on every call */
static int wgm_wgs_knob(void) {
    const char *e = getenv("LQ_W4A16_WGMMA_WGS");
    const int v = e ? atoi(e) : 0;
    return v == 2 || v == 3 || v == 4 ? v : 0;
}
/* The predicted time (us, H200) of a wgmma product in the geometry (bm, wgs): the rounds of blocks the SMs run
 * (a last round at most half full, of one-slice tiles, is split in two K halves by launch_wgmma_t: half a
 * round), each the block's rows x x-rows x inputs at the geometry's cost (the 192-row blocks of 3 warpgroups
 * ~8% dearer per row than 4 warpgroups' 256, 64-row x tiles ~1.7x dearer per row than 128-row ones) plus ~1 us,
 * and the K slices' partial sums written and read back (0.54 us per MB). Fitted to session 22's sweep of every
 * (x tile, warpgroups, slices) on the Llama-3-8B and Llama-2-7B shapes at M = 48..1024
 * (bench/results/2026-12-03-h200-s22/call1): choosing by it, the sweep's 99 cells lose 0.07% (geometric mean)
 * against their best, the rules it replaced 0.8% (up to 20% at M = 768: qkv 75.0 -> 66.4 us, down 174 -> 151;
 * and o M = 64 10.7 -> 10.2, 96 14.1 -> 12.8, 128 15.4 -> 13.9, M = 384 qkv 44.6 -> 41.0, o 28.5 -> 24.9,
 * down 79 -> 74, Llama-2-7B qkv M = 320 80.6 -> 66.2). */
static double wgm_cost(const lq_w4a16_shape *s, int64_t m, int sm_count, int bm, int wgs) {
    const int64_t sms = sm_count > 0 ? sm_count : 132, rows = 16 * wgm_rbb(bm, wgs), KB = s->Kp / 64;
    const int ks = wgm_ks(s, m, sm_count, bm, wgs);
    const int64_t tiles = (m + bm - 1) / bm * ((s->Np + rows - 1) / rows), rest = tiles % sms;
    const double rounds = ks == 1 && tiles > sms && rest > 0 && 2 * rest <= sms ? (double)(tiles / sms) + 0.5
                                                                                : (double)((tiles * ks + sms - 1) / sms);
    const double c = bm == 256 ? 0.3305e-6 /* us per weight row x x-row x input */
                     : bm == 128 ? (wgs == 3 ? 0.392e-6 : 0.363e-6)
                                 : (wgs == 3 ? 0.648e-6 : 0.60e-6);
    const double part = ks > 1 ? 0.54e-6 * (double)ks * (double)m * (double)s->N * 4.0 : 0.0;
    return rounds * ((double)rows * bm * (double)((KB + ks - 1) / ks) * 64.0 * c + 1.0) + part;
}
/* The tile geometry of a product: the x tile (16 / 32 / 64 / 128 / 256 rows) and, for 64- / 128-row x tiles,
 * the warpgroups (4 of one m64 tile: 256 weight rows; 3: 192 rows; 2 of two: 256). M <= 32: wgm_bm; M = 33..128:
 * wgm_bm's x tile in 3 or 4 warpgroups, M = 129..1024: 128-row x tiles in 3 or 4 warpgroups or 256-row ones,
 * whichever wgm_cost predicts faster; above, wgm_bm (256 rows). The knobs (LQ_W4A16_WGMMA_WGS, _BM) turn the
 * choice off. */
static void wgm_geom(const lq_w4a16_shape *s, int64_t m, int sm_count, int *bm, int *wgs) {
    *bm = wgm_bm(m);
    const int knob = wgm_wgs_knob(), small = *bm == 64 || *bm == 128;
    *wgs = small ? (knob ? knob : 4) : 2;
    if (knob || wgm_bm_force() || m <= 32 || m > 1024) return;
    if (m <= 128) { /* wgm_bm's x tile in 3 or 4 warpgroups */
        if (wgm_cost(s, m, sm_count, *bm, 3) < wgm_cost(s, m, sm_count, *bm, 4)) *wgs = 3;
        return;
    }
    static const int cand[3][2] = {{256, 2}, {128, 4}, {128, 3}}; /* ties: 256 rows (the SwiGLU epilogue's) */
    double best = -1.0;
    for (int i = 0; i < 3; i++) {
        const double c = wgm_cost(s, m, sm_count, cand[i][0], cand[i][1]);
        if (best < 0.0 || c < best) best = c, *bm = cand[i][0], *wgs = cand[i][1];
    }
}
static int wgm_slices(const lq_w4a16_shape *s, int64_t m, int sm_count) {
    int bm, wgs;
    wgm_geom(s, m, sm_count, &bm, &wgs);
    return wgm_ks(s, m, sm_count, bm, wgs);
}
/* the geometry the SwiGLU epilogue takes: 256-row x tiles, one K slice */
static bool wgm_fused_geom(const lq_w4a16_shape *s, int64_t m, int sm_count) {
    int bm, wgs;
    wgm_geom(s, m, sm_count, &bm, &wgs);
    return bm == 256 && wgm_ks(s, m, sm_count, bm, wgs) == 1;
}
/* Workspace of the wgmma path at m rows: the slices' partial sums (0 with one slice). */
static size_t wgm_ws_bytes(const lq_w4a16_shape *s, int64_t m, int sm_count) {
    const int ks = wgm_slices(s, m, sm_count);
    return ks > 1 ? (size_t)ks * (size_t)m * (size_t)s->N * sizeof(float) : 0;
}

/* A 2-D tensor map of rows x cols elements (cols contiguous, rows `stride` bytes apart), box bc x br */
static lq_status wgm_map(CUtensorMap *m, CUtensorMapDataType dt, const void *base, uint64_t cols, uint64_t rows,
                         uint64_t stride, uint32_t bc, uint32_t br, CUtensorMapSwizzle sw, const char *what) {
    const cuuint64_t dims[2] = {cols, rows}, strides[1] = {stride};
    const cuuint32_t box[2] = {bc, br}, estr[2] = {1, 1};
    CUresult r = wgm_encoder()(m, dt, 2, (void *)base, dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, sw,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    LQ_RETURN_IF(r != CUDA_SUCCESS, LQ_ERR_CUDA,
                 "lq_w4a16_matmul_cuda: path 4: cuTensorMapEncodeTiled (%s: %llu x %llu, stride %llu) failed: %d", what,
                 (unsigned long long)rows, (unsigned long long)cols, (unsigned long long)stride, (int)r);
    return LQ_OK;
}

/* K slices of the wgmma kernel: summed in clusters of ks blocks only where every cluster of the launch runs
 * at once (cudaOccupancyMaxActiveClusters >= the tiles). Clusters of 2 that fit won (o M = 512 38.2 -> 28.2
 * us, qkv M = 256 40.4 -> 31.0); clusters of 4-8 for 128- and 64-row tiles, which did not all fit, ran ~2x
 * slower than the reduction kernel (o M = 256 24.5 -> 40.0, qkv M = 16 11.6 -> 23.7; H200,
 * bench/results/2026-12-01-h200-tail, call 1). LQ_W4A16_WGMMA_CLUSTER=0: always the partial sums in the
 * workspace and w4a16_small_reduce_kernel (and no tail split); =2: clusters wherever they can run at all
 * (tests). Read on every call so that a test can run each route; the same bits every way. */
static int wgm_cluster_knob(void) {
    const char *e = getenv("LQ_W4A16_WGMMA_CLUSTER");
    return e && e[0] == '0' ? 0 : e && e[0] == '2' ? 2 : 1;
}
/* LQ_W4A16_WGMMA_TAIL=0: no split of a last, partly filled wave's tiles (A/B knob, read on every call) */
static int wgm_tail_knob(void) {
    const char *e = getenv("LQ_W4A16_WGMMA_TAIL");
    return e && e[0] == '0' ? 0 : 1;
}

/* How many clusters of dims `cl` of kern, launched as cfg (its block and shared memory) over grid, run at once
 * on the current device (cudaOccupancyMaxActiveClusters; nothing is enqueued, so this may run inside a graph
 * capture); -1 when none or when the device cannot say (then the caller takes the route without clusters). */
template <typename K> static int wgm_clusters_at_once(K *kern, cudaLaunchConfig_t cfg, dim3 grid, dim3 cl) {
    cudaLaunchAttribute a;
    a.id = cudaLaunchAttributeClusterDimension;
    a.val.clusterDim.x = cl.x, a.val.clusterDim.y = cl.y, a.val.clusterDim.z = cl.z;
    cfg.stream = NULL, cfg.gridDim = grid, cfg.attrs = &a, cfg.numAttrs = 1;
    int n = 0;
    const cudaError_t e = cudaOccupancyMaxActiveClusters(&n, kern, &cfg);
    if (e != cudaSuccess) (void)cudaGetLastError();
    return e == cudaSuccess && n > 0 ? n : -1;
}

/* FUSE: the SwiGLU epilogue into hout (ks must be 1). ks > 1: the slices summed in clusters of ks blocks
 * where all the launch's clusters run at once on this device (cudaOccupancyMaxActiveClusters, asked once per
 * device and slice count; see wgm_cluster_knob), else their partial sums in part (NULL: not enough
 * workspace: one slice) and w4a16_small_reduce_kernel. */
template <bool SYM, bool G2, int BM, bool FUSE = false, int WGS = 2>
static lq_status launch_wgmma_t(const lq_device_limits *lim, float *y, float *part, const void *x, int64_t ldx,
                                const lq_w4a16_weight *w, const float *b, int64_t m, int gdiv, int gshift, int ks,
                                cudaStream_t st, void *hout = NULL, int hbf16 = 0) {
    static int optin[LQ_MAX_DEVICES]; /* per instantiation: the dynamic shared-memory limit, raised once per device */
    static int cluster_n[LQ_MAX_DEVICES][9]; /* [dev][ks]: clusters running at once; 0 not asked yet, -1 none */
    static int pairs[LQ_MAX_DEVICES];                 /* clusters of 2 running at once (0: not asked, -1: none) */
    auto kern = w4a16_wgmma_kernel<SYM, G2, BM, FUSE, WGS>;
    LQ_CUDA_RET(lq_smem_optin(kern, lim->dev, (int)wgm_smem(BM, WGS), optin), "cudaFuncSetAttribute (w4a16_wgmma_kernel)");
    const lq_w4a16_shape *s = &w->s;
    const int NB = (int)(s->Np / 16), KB = (int)(s->Kp / 64);
    const dim3 grid((unsigned)((m + BM - 1) / BM), (unsigned)((NB + wgm_rbb(BM, WGS) - 1) / wgm_rbb(BM, WGS)), 1);
    const int pdl = lq_pdl_on(lim);
    cudaLaunchAttribute at[2];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    at[1].id = cudaLaunchAttributeClusterDimension;
    cudaLaunchConfig_t cfg = {};
    cfg.blockDim = dim3(128 * WGS), cfg.dynamicSmemBytes = (size_t)wgm_smem(BM, WGS), cfg.stream = st;
    int csum = 0;
    const int cknob = wgm_cluster_knob();
    /* 16- / 32-row tiles (two blocks per SM fit) sum more than 2 slices through the workspace: their clusters of
     * 4-8 pack onto half as many SMs (qkv M = 16, 8 slices: 13.2 us in clusters, 10.0 through the workspace;
     * s18 call 2); pairs stay in clusters (gate_up M = 16 26.7 vs 28.7) */
    if (!FUSE && ks > 1 && ks <= 8 && cknob && (BM > 32 || ks <= 2 || cknob == 2) && lim->dev >= 0 &&
        lim->dev < LQ_MAX_DEVICES) {
        int *ok = &cluster_n[lim->dev][ks];
        if (*ok == 0) *ok = wgm_clusters_at_once(kern, cfg, dim3(grid.x, grid.y, (unsigned)ks), dim3(1, 1, (unsigned)ks));
        csum = cknob == 2 ? *ok > 0 : *ok >= (int64_t)grid.x * grid.y;
    }
    if (ks > 1 && !csum && (!part || FUSE)) ks = 1;
    /* one slice and a last wave that is at most half full: its tiles in two K slices each, summed in clusters
     * of 2 (the other tiles whole, two per cluster); the wave is what clusters of 2 fill at once */
    int tail = 0;
    const int64_t tiles = (int64_t)grid.x * grid.y;
    if (ks == 1 && KB >= 2 && cknob && wgm_tail_knob() && lim->dev >= 0 && lim->dev < LQ_MAX_DEVICES &&
        tiles < INT32_MAX / 2) {
        int *np = &pairs[lim->dev];
        if (*np == 0) *np = wgm_clusters_at_once(kern, cfg, dim3(2, 1, 1), dim3(2, 1, 1));
        const int64_t wave = *np > 0 ? 2 * (int64_t)*np : 0, rest = wave ? tiles % wave : 0;
        if (wave && tiles >= wave && rest > 0 && 2 * rest <= wave) tail = (int)((tiles - rest) / 2);
    }
    const int KT = (KB + ks - 1) / ks;
    /* x: M rows of K halves, 64 x BM boxes in the 128-byte swizzle of the wgmma descriptor; the codes: NB row
     * blocks of KB tiles x 512 bytes (one box = the 16 row blocks of a tile); group words: n_groups rows of
     * NB x 8 words (one box = one group of the 16 row blocks) */
    CUtensorMap tx, tq, ts, tz;
    LQ_FORWARD(wgm_map(&tx, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, x, (uint64_t)s->K, (uint64_t)m, (uint64_t)ldx * 2, 64,
                       (uint32_t)BM, CU_TENSOR_MAP_SWIZZLE_128B, "x"));
    const uint32_t rbb = (uint32_t)wgm_rbb(BM, WGS);
    LQ_FORWARD(wgm_map(&tq, CU_TENSOR_MAP_DATA_TYPE_UINT32, w->qw, (uint64_t)KB * 128, (uint64_t)NB,
                       (uint64_t)KB * 512, 128, rbb, CU_TENSOR_MAP_SWIZZLE_NONE, "codes"));
    LQ_FORWARD(wgm_map(&ts, CU_TENSOR_MAP_DATA_TYPE_UINT32, w->scales, (uint64_t)NB * 8, (uint64_t)s->n_groups,
                       (uint64_t)NB * 32, 8 * rbb, 1, CU_TENSOR_MAP_SWIZZLE_NONE, "scales"));
    if (SYM) tz = ts; /* not read */
    else
        LQ_FORWARD(wgm_map(&tz, CU_TENSOR_MAP_DATA_TYPE_UINT32, w->zeros, (uint64_t)NB * 8, (uint64_t)s->n_groups,
                           (uint64_t)NB * 32, 8 * rbb, 1, CU_TENSOR_MAP_SWIZZLE_NONE, "zeros"));
    cfg.gridDim = dim3(grid.x, grid.y, (unsigned)ks);
    cfg.attrs = at;
    at[1].val.clusterDim.x = 1, at[1].val.clusterDim.y = 1, at[1].val.clusterDim.z = (unsigned)ks;
    if (tail) { /* tail clusters of whole tile pairs, then the split tiles: 2 blocks each */
        const int64_t rest = tiles - 2 * (int64_t)tail;
        cfg.gridDim = dim3((unsigned)(2 * (tail + rest)), 1, 1);
        at[1].val.clusterDim.x = 2, at[1].val.clusterDim.z = 1;
        csum = 1;
    }
    if (csum) { /* PDL (when on) and the cluster dimensions */
        if (pdl) cfg.numAttrs = 2;
        else cfg.attrs = at + 1, cfg.numAttrs = 1;
    } else {
        cfg.numAttrs = pdl ? 1 : 0;
    }
#ifdef LQ_W4_TRACE
    lq_wg_route[0] = ks, lq_wg_route[1] = csum, lq_wg_route[2] = ks > 1 && ks <= 8 ? cluster_n[lim->dev][ks] : 0;
    lq_wg_route[3] = (int)tiles;
#endif
    LQ_CUDA_RET(cudaLaunchKernelEx(&cfg, kern, y, part, tx, tq, ts, tz, b, (int)m, (int)s->N, KB, (int)s->n_groups,
                                   gdiv, gshift, KT, hout, hbf16, (int)(s->N / 2), csum, tail, (int)grid.x),
                "launch w4a16_wgmma_kernel");
    if (!FUSE && ks > 1 && !csum)
        LQ_FORWARD(launch_small_reduce(pdl, y, (const float *)part, b, m, s->N, ks, st,
                                       "launch w4a16_small_reduce_kernel (wgmma slices)"));
    return LQ_OK;
}

/* The group lookup of the wgmma kernels: the tile (or half tile: the return value, G2, for groups that are not
 * multiples of 64) -> group divisor, and its shift when a power of two (else -1) */
static bool wgm_groups(const lq_w4a16_shape *s, int *gdiv, int *gshift) {
    const int64_t ng = s->n_groups;
    const bool g2 = ng > 1 && s->G % 64 != 0;
    const int64_t div = ng <= 1 ? (int64_t)1 << 30 : g2 ? s->G / 32 : s->G / 64;
    *gdiv = (int)div, *gshift = (div & (div - 1)) == 0 ? __builtin_ctzll((unsigned long long)div) : -1;
    return g2;
}

/* Warpgroups per block for 64- / 128-row x tiles (M = 33..128 and 257..383): 4 of one m64 tile each (512
 * threads, 128 registers, no spills) rather than 2 of two (221 / 154 registers): the same tile, stages and
 * copies, twice the warps to hide the dequantization's latency. H200, llama3 shapes, graph timing, two rounds
 * in each of two calls (bench/results/2026-12-03-h200-s19/call1, call2): qkv M = 48 14.0 -> 13.3 us, 96
 * 20.1 -> 18.7, 320 53.3 -> 50.5; o 96 15.1 -> 14.0; gate_up 128 58.8 -> 55.8; down 96 30.3 -> 28.8;
 * gate_up M = 48 / 64 and down 64 tie (41.0 vs 41.3). 3 of one m64 tile (192 weight rows) where wgm_geom
 * says. LQ_W4A16_WGMMA_WGS=2 / 3 / 4 forces the two-warpgroup blocks / the 192-row ones / the default without
 * wgm_geom's rule (read at every call: an A/B knob the tests flip). */

/* launch_wgmma_t with symmetry, the half-tile group lookup and (BM = 64 / 128) the warpgroups chosen at run
 * time */
template <int BM, int WGS>
static lq_status launch_wgmma_bw(bool sym, bool g2, const lq_device_limits *lim, float *y, float *part, const void *x,
                                 int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m, int gdiv, int gshift,
                                 int ks, cudaStream_t st) {
    if (sym) return g2 ? launch_wgmma_t<true, true, BM, false, WGS>(lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st)
                       : launch_wgmma_t<true, false, BM, false, WGS>(lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st);
    return g2 ? launch_wgmma_t<false, true, BM, false, WGS>(lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st)
              : launch_wgmma_t<false, false, BM, false, WGS>(lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st);
}
template <int BM>
static lq_status launch_wgmma_bm(bool sym, bool g2, const lq_device_limits *lim, float *y, float *part, const void *x,
                                 int64_t ldx, const lq_w4a16_weight *w, const float *b, int64_t m, int gdiv, int gshift,
                                 int ks, int wgs, cudaStream_t st) {
    if constexpr (BM == 64 || BM == 128) {
        if (wgs == 4) return launch_wgmma_bw<BM, 4>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st);
        if (wgs == 3) return launch_wgmma_bw<BM, 3>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st);
    }
    return launch_wgmma_bw<BM, 2>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, st);
}

/* ws: the slices' partial sums when wgm_slices > 1, they cannot be summed in clusters and ws holds them; one
 * slice when neither. */
static lq_status wgmma_matmul(const lq_device_limits *lim, float *y, const void *x, int64_t ldx,
                              const lq_w4a16_weight *w, const float *b, int64_t m, int sm_count, void *ws,
                              size_t ws_bytes, cudaStream_t st) {
    LQ_RETURN_IF(m > INT32_MAX / 2, LQ_ERR_UNSUPPORTED, "lq_w4a16_matmul_cuda: path 4: M=%lld too large", (long long)m);
    const lq_w4a16_shape *s = &w->s;
    int gdiv, gshift;
    const bool g2 = wgm_groups(s, &gdiv, &gshift), sym = w->zeros == NULL;
    int bm, wgs; /* the geometry and its slices once per call (wgm_slices / wgm_ws_bytes would redo both) */
    wgm_geom(s, m, sm_count, &bm, &wgs);
    const int ks = wgm_ks(s, m, sm_count, bm, wgs);
    /* the partial sums' workspace (wgm_ws_bytes), for K slices that cannot be summed in clusters (launch_wgmma_t) */
    const size_t need = ks > 1 ? (size_t)ks * (size_t)m * (size_t)s->N * sizeof(float) : 0;
    float *part = ks > 1 && ws && ws_bytes >= need && m * s->N <= INT32_MAX / 8 ? (float *)ws : NULL;
    switch (bm) {
    case 256: return launch_wgmma_bm<256>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, wgs, st);
    case 64: return launch_wgmma_bm<64>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, wgs, st);
    case 32: return launch_wgmma_bm<32>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, wgs, st);
    case 16: return launch_wgmma_bm<16>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, wgs, st);
    default: return launch_wgmma_bm<128>(sym, g2, lim, y, part, x, ldx, w, b, m, gdiv, gshift, ks, wgs, st);
    }
}

extern "C" lq_status lq_w4a16_matmul_cuda(void *blas, float *y, const void *x, int64_t ldx, const lq_w4a16_weight *w,
                                          const float *b, int64_t m, int path, int sm_count, void *ws,
                                          size_t ws_bytes, void *stream) {
    const lq_w4a16_shape *s = &w->s;
    if (m <= 0 || s->N <= 0) return LQ_OK;
    if (ldx == 0) ldx = s->K;
    LQ_RETURN_IF(ldx < s->K || s->K < 1, LQ_ERR_ARG, "lq_w4a16_matmul_cuda: K=%lld ldx=%lld", (long long)s->K,
                 (long long)ldx);
    LQ_RETURN_IF(path < 0 || path > 4, LQ_ERR_ARG, "lq_w4a16_matmul_cuda: path %d (0 auto, 1 fused, 2 dequantize + "
                 "cuBLAS, 3 small M, 4 wgmma)", path);
    LQ_RETURN_IF(path == 3 && m > LQ_W4A16_SMALL_MAX_M, LQ_ERR_ARG,
                 "lq_w4a16_matmul_cuda: path 3 (small M) takes M <= %d, not %lld", LQ_W4A16_SMALL_MAX_M, (long long)m);
    const int automatic = path == 0;
    if (automatic) path = m <= LQ_W4A16_SMALL_MAX_M ? 3 : m <= LQ_W4A16_FUSED_MAX_M ? 1 : 2;
    cudaStream_t st = lq_stream(stream);
    /* the device's limits, asked once for the whole call; lim is NULL without them (the wgmma path is then
     * unsupported; the small-M and fused paths return lim_err after their argument checks) */
    lq_device_limits lim_;
    const cudaError_t lim_err = lq_device_limits_current(&lim_);
    const lq_device_limits *lim = lim_err == cudaSuccess ? &lim_ : NULL;
    if (!lim) (void)cudaGetLastError();
    /* the wgmma kernel where it was measured faster than the other paths (H200, kernels/dev/w4a16_notes.md):
     * LQ_W4A16_WGMMA_MIN_M..MAX_M rows; below MIN_M the small-M kernel, above MAX_M dequantize + cuBLAS
     * (within 4% of it at M = 4096) */
    const char *why = "";
    const int knob = automatic ? wgm_knob() : 0;
    const int wg_try = path == 4 || (knob == 2 && m >= wgm_min_m()) ||
                       (knob == 1 && m >= wgm_min_m() && m <= LQ_W4A16_WGMMA_MAX_M);
    const int wg_ok = wg_try && wgm_supported(lim, w, x, ldx, &why);
    if (automatic && wg_ok) path = 4;
    if (path == 4) {
        LQ_RETURN_IF(!wg_ok, LQ_ERR_UNSUPPORTED, "lq_w4a16_matmul_cuda: path 4 (wgmma): %s", why);
        return wgmma_matmul(lim, y, x, ldx, w, b, m, sm_count, ws, ws_bytes, st);
    }
    if (path == 3) {
        int ran = 0;
        LQ_FORWARD(small_m_matmul(lim_err, &lim_, y, x, ldx, w, b, m, sm_count, ws, ws_bytes, st, &ran));
        if (ran) return LQ_OK;
        /* x of m rows does not fit one block's shared memory (M K beyond ~110 K
         * inputs): the fused kernel slices K across blocks */
        LQ_RETURN_IF(!automatic, LQ_ERR_UNSUPPORTED,
                     "lq_w4a16_matmul_cuda: path 3: %lld rows of %lld inputs do not fit the small-M kernel's shared "
                     "memory (use path 1)", (long long)m, (long long)s->K);
        path = 1;
    }
    if (path == 2) {
        size_t need = (size_t)s->N * (size_t)s->K * sizeof(__half);
        LQ_RETURN_IF(ws_bytes < need, LQ_ERR_ARG,
                     "lq_w4a16_matmul_cuda: workspace of %zu bytes is smaller than the %zu the fp16 weight needs",
                     ws_bytes, need);
        LQ_FORWARD(lq_w4a16_dequant_cuda(ws, w, stream));
        return lq_matmul_cuda(blas, y, x, ws, LQ_F16, b, m, s->N, s->K, ldx, stream);
    }
    fused_plan p = plan_fused(s, m, sm_count);
    size_t parts = p.S > 1 ? (size_t)p.tiles * p.chunks * (size_t)p.S * (size_t)(16 * p.MT * W4_COLS) * sizeof(float) : 0;
    LQ_RETURN_IF(p.S > 1 && ws_bytes < parts, LQ_ERR_ARG,
                 "lq_w4a16_matmul_cuda: workspace of %zu bytes, %zu needed (M=%lld N=%lld K=%lld)", ws_bytes, parts,
                 (long long)m, (long long)s->N, (long long)s->K);
    float *part = (float *)ws;
    int vec_x = (s->K % 8 == 0) && (ldx % 8 == 0) && (((uintptr_t)x & 15) == 0);
    const bool sym = w->zeros == NULL;
    LQ_CUDA_RET(lim_err, "lq_w4a16_matmul_cuda: fused path: device limits");
    switch (p.MT * 2 + (sym ? 1 : 0)) {
    case 2: return launch_fused<1, false>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    case 3: return launch_fused<1, true>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    case 4: return launch_fused<2, false>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    case 5: return launch_fused<2, true>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    case 8: return launch_fused<4, false>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    default: return launch_fused<4, true>(lim, p, y, x, ldx, w, b, m, vec_x, part, st);
    }
}

/* ---------------- upload ---------------- */

extern "C" lq_status lq_w4a16_swiglu_cuda(void *blas, void *h, lq_dtype hdt, float *y, const void *x,
                                          const lq_w4a16_weight *w, int64_t m, int sm_count, void *ws, size_t ws_bytes,
                                          void *stream) {
    const lq_w4a16_shape *s = &w->s;
    LQ_RETURN_IF(w->il != 64, LQ_ERR_ARG,
                 "lq_w4a16_swiglu_cuda: the weight is not a gate|up pair from lq_w4a16_upload_swiglu");
    LQ_RETURN_IF(hdt != LQ_F16 && hdt != LQ_BF16, LQ_ERR_ARG, "lq_w4a16_swiglu_cuda: h is %s, not fp16 or bf16",
                 lq_dtype_name(hdt));
    if (m <= 0) return LQ_OK;
    const int64_t H = s->N / 2;
    /* the fused epilogue where path 0 takes the wgmma kernel with 256-row tiles and one K slice */
    lq_device_limits lim_;
    const cudaError_t lim_err = lq_device_limits_current(&lim_);
    const lq_device_limits *lim = lim_err == cudaSuccess ? &lim_ : NULL;
    if (!lim) (void)cudaGetLastError();
    const int knob = wgm_knob();
    const char *why = "";
    if (lim && m >= wgm_min_m() && (knob == 2 || (knob == 1 && m <= LQ_W4A16_WGMMA_MAX_M)) &&
        m <= INT32_MAX / 2 && wgm_fused_geom(s, m, sm_count) &&
        wgm_supported(lim, w, x, s->K, &why)) {
        int gdiv, gshift;
        const bool g2 = wgm_groups(s, &gdiv, &gshift), bf = hdt == LQ_BF16;
        cudaStream_t st = lq_stream(stream);
        if (w->zeros == NULL)
            return g2 ? launch_wgmma_t<true, true, 256, true>(lim, NULL, NULL, x, s->K, w, NULL, m, gdiv, gshift, 1, st, h, bf)
                      : launch_wgmma_t<true, false, 256, true>(lim, NULL, NULL, x, s->K, w, NULL, m, gdiv, gshift, 1, st, h, bf);
        return g2 ? launch_wgmma_t<false, true, 256, true>(lim, NULL, NULL, x, s->K, w, NULL, m, gdiv, gshift, 1, st, h, bf)
                  : launch_wgmma_t<false, false, 256, true>(lim, NULL, NULL, x, s->K, w, NULL, m, gdiv, gshift, 1, st, h, bf);
    }
    /* M <= 4: the SwiGLU in the small-M kernel's epilogue, where its blocks of one gate|up pair (8 row blocks)
     * still fill every SM (llama3-8b gate_up: 224 blocks); h 16-byte aligned (one store per 8 units) */
    const int sms = sm_count > 0 ? sm_count : lim ? lim->sm_count : 132;
    if (lim && m <= 4 && s->Np / 16 / 8 >= sms && ((uintptr_t)h & 15) == 0 && (s->n_groups <= 1 || s->G % 32 == 0) &&
        s->Np / 16 <= INT32_MAX / 16 && s->Kp <= INT32_MAX / 8 && m * s->N <= INT32_MAX / 64) {
        int ran = 0;
        LQ_FORWARD(small_m_matmul(lim_err, lim, NULL, x, s->K, w, NULL, m, sm_count, ws, ws_bytes, lq_stream(stream),
                                  &ran, h, hdt == LQ_BF16));
        if (ran) return LQ_OK;
    }
    /* otherwise the product, then the SwiGLU over its interleaved columns: (m H / 64) rows of 64 gate values,
     * their up values 64 further, 128 apart */
    LQ_FORWARD(lq_w4a16_matmul_cuda(blas, y, x, 0, w, NULL, m, 0, sm_count, ws, ws_bytes, stream));
    return lq_swiglu_cuda(h, hdt, y, y + 64, m * (H / 64), 64, 128, stream);
}

extern "C" size_t lq_w4a16_device_bytes(const lq_w4a16_shape *s) {
    size_t qb = (lq_w4a16_qw_words(s) * 4 + 255) & ~(size_t)255;
    size_t gb = (lq_w4a16_group_elems(s) * 2 + 255) & ~(size_t)255;
    return qb + gb * (s->sym ? 1 : 2);
}

/* The parts stacked and packed on the host, il = 64: then reordered as a gate|up pair interleaved by 64 rows
 * (lq_w4a16_interleave64), and copied to dev. */
static lq_status upload_packed(const lq_qweight *const *parts, int n_parts, int il, void *dev, size_t dev_bytes,
                               lq_w4a16_weight *out, const char *what) {
    lq_status st = LQ_OK;
    lq_w4a16_shape s;
    uint32_t *qw = NULL, *qw2 = NULL;
    uint16_t *g[2] = {NULL, NULL}, *g2[2] = {NULL, NULL};
    const uint32_t *qo = NULL; /* what goes to the device */
    const uint16_t *go[2] = {NULL, NULL};
    LQ_FORWARD(lq_w4a16_shape_of(parts, n_parts, &s));
    for (int i = 0; i < n_parts; i++) LQ_FORWARD(lq_w4a16_supported(parts[i], what));
    const size_t need = lq_w4a16_device_bytes(&s);
    LQ_RETURN_IF(dev_bytes < need, LQ_ERR_ARG, "%s: %zu device bytes given, %zu needed", what, dev_bytes, need);
    const size_t qwn = lq_w4a16_qw_words(&s), gn = lq_w4a16_group_elems(&s);
    const size_t qb = (qwn * 4 + 255) & ~(size_t)255, gb = (gn * 2 + 255) & ~(size_t)255;
    const int ngrp = s.sym ? 1 : 2; /* scales, and zeros when asymmetric */
    LQ_TRY(lq_malloc((void **)&qw, qwn * 4, "w4a16 repack (codes)"));
    for (int i = 0; i < ngrp; i++) LQ_TRY(lq_malloc((void **)&g[i], gn * 2, "w4a16 repack (group data)"));
    lq_w4a16_pack_parts(parts, n_parts, &s, qw, g[0], g[1], NULL); /* copies when the file held the mma layout */
    qo = qw, go[0] = g[0], go[1] = g[1];
    if (il) {
        LQ_TRY(lq_malloc((void **)&qw2, qwn * 4, "w4a16 repack (codes)"));
        for (int i = 0; i < ngrp; i++) LQ_TRY(lq_malloc((void **)&g2[i], gn * 2, "w4a16 repack (group data)"));
        lq_w4a16_interleave64(&s, qw, g[0], g[1], qw2, g2[0], g2[1]);
        qo = qw2, go[0] = g2[0], go[1] = g2[1];
    }
    LQ_CUDA_TRY(cudaMemcpy(dev, qo, qwn * 4, cudaMemcpyHostToDevice), "upload w4a16 codes");
    for (int k = 0; k < ngrp; k++)
        LQ_CUDA_TRY(cudaMemcpy((char *)dev + qb + (size_t)k * gb, go[k], gn * 2, cudaMemcpyHostToDevice),
                    k ? "upload w4a16 zeros" : "upload w4a16 scales");
    out->s = s;
    out->qw = (const uint32_t *)dev;
    out->scales = (char *)dev + qb;
    out->zeros = s.sym ? NULL : (char *)dev + qb + gb;
    out->il = il;
fail:
    free(qw);
    free(qw2);
    for (int i = 0; i < 2; i++) free(g[i]), free(g2[i]);
    return st;
}

extern "C" lq_status lq_w4a16_upload(const lq_qweight *const *parts, int n_parts, void *dev, size_t dev_bytes,
                                     lq_w4a16_weight *out) {
    return upload_packed(parts, n_parts, 0, dev, dev_bytes, out, "w4a16 upload");
}

/* The gate|up pair interleaved by 64 rows: the stacked pair packed as lq_w4a16_upload packs it, then
 * reordered on the host (lq_w4a16_interleave64) before the copy. */
extern "C" lq_status lq_w4a16_upload_swiglu(const lq_qweight *gate, const lq_qweight *up, void *dev,
                                            size_t dev_bytes, lq_w4a16_weight *out) {
    LQ_RETURN_IF(gate->rows != up->rows || gate->rows % 64 != 0, LQ_ERR_UNSUPPORTED,
                 "w4a16 swiglu upload: gate %lld rows, up %lld: needs equal counts, multiples of 64",
                 (long long)gate->rows, (long long)up->rows);
    const lq_qweight *parts[2] = {gate, up};
    return upload_packed(parts, 2, 64, dev, dev_bytes, out, "w4a16 swiglu upload");
}
