/* lq_w4a16.h — the W4A16 weight layout of the fused GPU kernels
 * (kernels/w4a16_cuda.cu: the small-M streaming kernel up to M = 64, the
 * older tensor-core kernel where x does not fit it, dequantize + cuBLAS
 * above, and on sm_90 the wgmma kernel at M = 24..2048),
 * its host-side packer and the CPU reference of the fused product.
 *
 * Why a second layout: the file layout (libquant/lq_quant.h, "lq-bitstream")
 * keeps 8 consecutive codes of one row per uint32, which a CUDA-core GEMV
 * reads well but a tensor-core kernel does not: mma.sync.m16n8k16 wants, in
 * each lane, 4 codes of one output row at inputs 2q, 2q+1, 2q+8, 2q+9 of a
 * 16-input step (q = lane % 4). The "mma" layout stores exactly one uint32
 * per lane per 16x16 (rows x inputs) tile, and 4 such tiles along K next to
 * each other, so one 16-byte load per lane brings the codes of a 16 x 64 tile
 * and a warp reads 512 contiguous bytes — no shared memory, no shuffles.
 * The same words are also the A fragments of mma.m16n8k16 with the weight
 * rows as the M side (row n0 = groupID, n1 = groupID + 8), which is how the
 * small-M kernel multiplies them by up to 8 activation rows in one step.
 *
 * ---- The mma layout (4-bit codes) ----
 * Rows are padded to Np = ceil(N/32)*32 (a warp streams two 16-row blocks),
 * inputs to Kp = ceil(K/64)*64.
 *   qw    uint32 [Np/16][Kp/64][32 lanes][4 sub-tiles]
 * Word (nb, kb, lane, j) holds the codes of rows n0 = 16 nb + lane/4 and
 * n1 = n0 + 8 at inputs k = 64 kb + 16 j + {2q, 2q+1, 2q+8, 2q+9}, q = lane%4:
 *   nibble 0: (n0, 2q)    nibble 4: (n0, 2q+1)      -> B fragment b0 of n-tile 0
 *   nibble 1: (n0, 2q+8)  nibble 5: (n0, 2q+9)      -> b1 of n-tile 0
 *   nibble 2: (n1, 2q)    nibble 6: (n1, 2q+1)      -> b0 of n-tile 1
 *   nibble 3: (n1, 2q+8)  nibble 7: (n1, 2q+9)      -> b1 of n-tile 1
 * (nibble i = bits 4i..4i+3). Pairs (i, i+4) sit at bits 4i and 16+4i, so
 * (w >> 4i) & 0x000F000F OR'ed with 0x6400 in each half is the half2
 * (1024 + lo, 1024 + hi): two codes become fp16 with one LOP3 each.
 *   scales fp16 [n_groups][Np/16][16]  group-major; inside a 16-row block row
 *                                r sits at 2 (r % 8) + r / 8, so rows n0 and
 *                                n1 = n0 + 8 of one lane are one 32-bit load
 *   zeros  fp16 [n_groups][Np/16][16]  the zero point as a small integer in
 *                                fp16, same order; absent (NULL) when
 *                                symmetric (zero 8)
 * (lq_w4a16_group_index gives the position of (n, g).)
 * Padding: rows n >= N have codes 0, scale 0 and zero 0; inputs k >= K have
 * the code equal to their row's zero point (of group min(k/G, n_groups-1)),
 * so every padded weight dequantizes to exactly 0 whatever the activations
 * there (the kernels also zero-fill those activations).
 *
 * Dequantization is the file's rule, w = (code - zero) * scale, with the
 * product rounded once to fp16 (the tensor cores take fp16 operands): the
 * fused kernels compute sum_k x[m,k] * f16((code - zero) * scale) with fp32
 * accumulation. lq_w4a16_matmul_ref is that definition in scalar code.
 *
 * Supported by the fused kernels: bits = 4, symmetric or asymmetric, group
 * size a multiple of 32 or a single group per row (per channel), g_idx absent
 * or equal to k / G (GPTQ act-order with static groups stores exactly that).
 * lq_w4a16_supported says why anything else is not.
 * Tested by tests/test_w4a16.c (layout) and tests/test_w4a16_gpu.c (kernels). */
#ifndef LQ_W4A16_H
#define LQ_W4A16_H

#include <stddef.h>
#include <stdint.h>

#include "lq_common.h"
#include "lq_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lq_w4a16_matmul_cuda's automatic choice: the small-M streaming kernel up
 * to LQ_W4A16_SMALL_MAX_M rows (also the limit of its path 3; the fused
 * tensor-core kernel where x does not fit it), dequantize + cuBLAS above
 * (set from `lq bench kernels --w4a16`: the small-M kernel was the faster at
 * every M <= 64 on the Llama-3-8B shapes, kernels/dev/w4a16_notes.md) ... */
#define LQ_W4A16_SMALL_MAX_M 64
#define LQ_W4A16_FUSED_MAX_M 64
/* ... except on sm_90, where the wgmma kernel (path 4) takes MIN_M..MAX_M
 * rows of x: the range where it measured faster than the small-M kernel and
 * dequantize + cuBLAS on the Llama-3-8B shapes (H200; MIN_M from
 * bench/results/2026-12-01-h200-wgmma-v2/call5, MAX_M from the 256-row
 * tiles' sweep, bench/results/2026-12-01-h200-wgmma-bm256/call1: faster than
 * dequantize + cuBLAS on all four shapes up to M = 2048; at 4096 within 4%
 * either way; kernels/dev/w4a16_notes.md). MIN_M stays 24 with the 16- / 32-row
 * tiles: alone they beat the small-M kernel from M = 12 (qkv M = 12 8.6 vs 10.8
 * us), but the W4 llama3-8b decode at batch 12 / 16 lost 3-11% with them
 * (bench/results/2026-12-03-h200-s18/call4, three rounds); at batch 32 (32-row
 * tiles) it gains 9-24% (call3). */
#define LQ_W4A16_WGMMA_MIN_M 24
#define LQ_W4A16_WGMMA_MAX_M 2048

/* Sizes of a weight of N rows (outputs) and K inputs in the mma layout. */
typedef struct {
    int64_t N, K;       /* logical shape */
    int64_t Np, Kp;     /* padded: multiples of 32 and 64 */
    int64_t G;          /* effective group size */
    int64_t n_groups;   /* ceil(K / G) */
    int sym;            /* 1: no zeros array (zero point 8) */
} lq_w4a16_shape;

/* 0 when q can run on the fused kernels; else LQ_ERR_UNSUPPORTED with the
 * reason (bits, group size, g_idx), `what` naming the tensor. */
lq_status lq_w4a16_supported(const lq_qweight *q, const char *what);

/* Shape of n_parts weights stacked along N (fused q|k|v, gate|up). All parts
 * must share K, bits, G and symmetry (LQ_ERR_SHAPE otherwise). */
lq_status lq_w4a16_shape_of(const lq_qweight *const *parts, int n_parts, lq_w4a16_shape *s);

size_t lq_w4a16_qw_words(const lq_w4a16_shape *s);     /* uint32 words of qw */
size_t lq_w4a16_group_elems(const lq_w4a16_shape *s);  /* fp16 elements of scales (and of zeros) */

/* Repack parts (stacked along N) from the file layout into the mma layout.
 * qw (lq_w4a16_qw_words), scales and zeros (lq_w4a16_group_elems fp16 each;
 * zeros may be NULL when symmetric) are written completely, padding
 * included. Rows in parallel (OpenMP). */
void lq_w4a16_repack(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                     uint16_t *scales, uint16_t *zeros);

/* The mma layout of parts stacked along N, from the parts' own mma layouts
 * (lq_qweight.mma_*, set when a .lqq file stored "lq-mma-w4") instead of a
 * repack: row blocks and group rows are copied, padding written. Bit-identical
 * to lq_w4a16_repack of the same parts. LQ_ERR_UNSUPPORTED (with the reason)
 * when a part has no mma views or a part other than the last has a row
 * count that is not a multiple of 16 (its last block would be shared). */
lq_status lq_w4a16_assemble(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                            uint16_t *scales, uint16_t *zeros);

/* lq_w4a16_assemble when it applies, else lq_w4a16_repack. *assembled
 * (may be NULL) says which ran. */
void lq_w4a16_pack_parts(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                         uint16_t *scales, uint16_t *zeros, int *assembled);

/* A gate|up pair stacked in the mma layout (s: N = 2 H, H a multiple of 64,
 * no padding rows) reordered to 64 gate rows, the same 64 up rows, and so on
 * (what lq_w4a16_upload_swiglu uploads): codes qw -> qw2, group data g0 -> g0o
 * and, when not NULL, g1 -> g1o (scales, zeros). */
void lq_w4a16_interleave64(const lq_w4a16_shape *s, const uint32_t *qw, const uint16_t *g0, const uint16_t *g1,
                           uint32_t *qw2, uint16_t *g0o, uint16_t *g1o);

/* The reference unpack: one weight of shape s stored in the mma layout (qw,
 * scales, zeros: NULL when s->sym) back into the file layout. q must be
 * allocated (lq_qweight_alloc) with rows s->N, cols s->K, 4 bits, G s->G and
 * the same symmetry; q->g_idx is left alone. Checks what the kernels rely on
 * and a file could get wrong: zero points integers in 0..15, padded rows
 * (codes, scales, zeros 0) and padded inputs (code = the row's zero) —
 * LQ_ERR_FORMAT naming `what` and the position otherwise. */
lq_status lq_w4a16_unpack(const lq_w4a16_shape *s, const uint32_t *qw, const uint16_t *scales, const uint16_t *zeros,
                          lq_qweight *q, const char *what);

/* Position of row n, group g in scales / zeros. */
static inline size_t lq_w4a16_group_index(const lq_w4a16_shape *s, int64_t n, int64_t g) {
    return (size_t)g * (size_t)s->Np + (size_t)(n & ~(int64_t)15) + (size_t)(2 * (n & 7) + ((n >> 3) & 1));
}

/* The code stored for (n, k) in an mma-layout qw (the reference unpacker). */
static inline int lq_w4a16_code(const uint32_t *qw, const lq_w4a16_shape *s, int64_t n, int64_t k) {
    int64_t nb = n >> 4, r = n & 15, kb = k >> 6, j = (k >> 4) & 3, kk = k & 15;
    int lane = (int)((r & 7) * 4 + ((kk & 7) >> 1));
    int nib = (r >= 8 ? 2 : 0) + (kk >= 8 ? 1 : 0) + ((kk & 1) ? 4 : 0);
    uint32_t w = qw[(((size_t)nb * (size_t)(s->Kp >> 6) + (size_t)kb) * 32 + (size_t)lane) * 4 + (size_t)j];
    return (int)((w >> (4 * nib)) & 15u);
}

/* Reference of the fused product: y (m, N) = x (m, K) * W^T (+ b), with
 * W[n,k] = f16((code - zero) * scale) from the file-layout q, summed in
 * double. x is fp32 here (tests pass fp16-representable values). */
void lq_w4a16_matmul_ref(float *y, const float *x, const lq_qweight *q, const float *b, int64_t m);
/* The same product, bit for bit (the same double sums in the same order), fast enough for large test
 * shapes: each row's weights formed once, rows spread over OpenMP threads. The GPU tests compare against
 * it; test_w4a16.c checks that it equals lq_w4a16_matmul_ref. */
void lq_w4a16_matmul_cpu(float *y, const float *x, const lq_qweight *q, const float *b, int64_t m);

#ifdef __cplusplus
}
#endif

#endif
