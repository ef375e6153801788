/* lq_quant.h — weight-only integer quantization (W4A16 and friends): the one
 * rounding rule, round-to-nearest (RTN) quantization, the packed code layout
 * and the reference dequantizer. GPTQ (calib/lq_calib.h) produces the same
 * lq_qweight through the same per-value rule, so every consumer — the file
 * format (formats/lq_lqq.h), the CPU dequantizer, later fused CUDA kernels —
 * reads one representation.
 *
 * ---- The quantization rule (identical everywhere: RTN, GPTQ, CPU, CUDA) ----
 * A linear weight W is [N, K] (out, in; HF layout). Columns are split into
 * groups of G consecutive inputs: column k belongs to group k / G, so there
 * are n_groups = ceil(K / G) groups and the last one may be partial
 * (stories260K's down_proj has K = 172: with G = 64 the groups hold 64, 64, 44
 * columns). G = 0 means one group per output row ("per channel", G = K); a
 * G >= K is the same thing. Codes are unsigned b-bit integers, 2 <= b <= 8,
 * qmax = 2^b - 1.
 *
 *   symmetric:   amax  = max |w| over the group                       (fp32)
 *                scale = amax / (2^(b-1) - 1)                         (fp32 division)
 *                zero  = 2^(b-1)                                      (implicit, not stored)
 *   asymmetric:  lo = min(min w, 0), hi = max(max w, 0)   (the range always holds 0,
 *                                                          so 0 is exactly representable)
 *                scale = (hi - lo) / (2^b - 1)                        (fp32)
 *
 *   The scale is then rounded to fp16 (round to nearest even, lq_f32_to_f16),
 *   saturating at 65504 (weights beyond 65504 * qmax are clipped — no real
 *   checkpoint comes close), BEFORE any code is computed: s = f16(scale).
 *   Quantizing with the scale that is stored makes dequantization with the
 *   stored scale exact to this definition.
 *
 *   asymmetric zero = clamp(rint(-lo / s), 0, qmax)        (fp32 division, then rint)
 *   code            = clamp(rint(w / s) + zero, 0, qmax)   (fp32 division, then rint)
 *   dequantized     = (float)(code - zero) * s             (exact in fp32: an integer
 *                                                           of <= 9 bits times an fp16)
 *
 *   rint is round-half-to-even in the default rounding mode (C rintf /
 *   nearbyintf; CUDA __float2int_rn). The division is IEEE fp32 division
 *   (correctly rounded; CUDA's default '/' or __fdiv_rn — never
 *   __fdividef or a multiply by 1/s, which round differently).
 *   s == 0 (an all-zero group, or one whose scale underflows fp16) never
 *   divides: every code is the zero point (asymmetric zero = 0), so the group
 *   dequantizes to exactly 0 (the error is bounded by amax < 2^-24 * qmax).
 *   NaN/Inf weights are refused (LQ_ERR_NUMERIC naming row and column).
 *
 * ---- Packed layout (see formats/FORMAT.md) ----
 * Codes of one row form a little-endian bit stream: code k occupies bits
 * [k*b, k*b + b) of the row, bit i of the stream being bit (i % 32) of
 * uint32 word i / 32. Each row starts on a new word and is zero-padded to
 * lq_packed_words(K, b) = ceil(K*b / 32) words. For b = 4 this is exactly
 * "8 codes per uint32 along K, code k in bits 4*(k%8) .. 4*(k%8)+3 of word
 * k/8", row-major [N, ceil(K/8)] — what a GPU kernel loading one uint32 per
 * 8 inputs wants. For b = 8 it is 4 codes per word, for b = 2 sixteen; odd
 * widths (3, 5, 6, 7) straddle words. Asymmetric zero points are packed the
 * same way, one row of n_groups codes per output row.
 *
 * Tested by tests/test_quant.c (bit-exact against a brute-force reference). */
#ifndef LQ_QUANT_H
#define LQ_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "lq_common.h"

#define LQ_QUANT_MIN_BITS 2
#define LQ_QUANT_MAX_BITS 8

typedef struct {
    int bits;       /* 2..8 */
    int group_size; /* columns per group; 0 = per output channel (group = K) */
    int sym;        /* 1 symmetric (implicit zero 2^(b-1)), 0 asymmetric (stored zero) */
} lq_quant_params;

/* Validate params (bits range, group_size >= 0). */
lq_status lq_quant_params_check(const lq_quant_params *p);
/* The effective group size for K columns (G, or K when G is 0 or >= K). */
int64_t lq_quant_group_size(const lq_quant_params *p, int64_t K);
int64_t lq_quant_n_groups(const lq_quant_params *p, int64_t K);

/* ---- the scalar rule, shared by RTN, GPTQ and the tests ---- */

/* Scale (fp16 bits) and zero point of one group: n values w[0], w[stride], ...
 * *zero is 2^(b-1) for symmetric params. NaN/Inf -> LQ_ERR_NUMERIC. */
lq_status lq_quant_group_params_ref(const float *w, int64_t n, int64_t stride, const lq_quant_params *p,
                                    uint16_t *scale_f16, int *zero);
/* code = clamp(rint(w / s) + zero, 0, qmax); s == 0 gives zero. */
int lq_quant_code(float w, float s, int zero, int qmax);
/* (float)(code - zero) * s */
static inline float lq_quant_dequant_value(int code, int zero, float s) { return (float)(code - zero) * s; }

/* ---- RTN ---- */

/* Round-to-nearest quantization of W (rows, cols) with the rule above.
 * codes  (rows, cols) one code per byte, unpacked
 * scales (rows, n_groups) fp16 bits
 * zeros  (rows, n_groups) zero points (written for symmetric params too: 2^(b-1))
 * The obvious scalar version; the definition the tests check bit for bit. */
lq_status lq_rtn_quantize_ref(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p, uint8_t *codes,
                              uint16_t *scales, uint8_t *zeros);

/* ---- packing ---- */

/* uint32 words per packed row of n codes of b bits: ceil(n*b/32). */
int64_t lq_packed_words(int64_t n, int bits);
/* codes (rows, cols) bytes -> packed (rows, lq_packed_words(cols, bits)) */
void lq_pack_codes_ref(const uint8_t *codes, int64_t rows, int64_t cols, int bits, uint32_t *packed);
/* packed -> codes (rows, cols) */
void lq_unpack_codes_ref(const uint32_t *packed, int64_t rows, int64_t cols, int bits, uint8_t *codes);
/* One code of a packed row. */
static inline int lq_packed_get(const uint32_t *row, int64_t k, int bits) {
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    uint64_t w = row[bit >> 5];
    unsigned sh = (unsigned)(bit & 31);
    if (sh + (unsigned)bits > 32) w |= (uint64_t)row[(bit >> 5) + 1] << 32;
    return (int)((w >> sh) & ((1u << bits) - 1u));
}

/* ---- a quantized weight in its packed form ---- */

typedef struct {
    int64_t rows, cols;   /* N (out features), K (in features) */
    lq_quant_params p;    /* as requested (group_size 0 = per channel) */
    int64_t group_size;   /* effective G (<= cols) */
    int64_t n_groups;     /* ceil(cols / group_size) */
    uint32_t *qweight;    /* (rows, lq_packed_words(cols, bits)) */
    uint16_t *scales;     /* (rows, n_groups) fp16 */
    uint32_t *qzeros;     /* (rows, lq_packed_words(n_groups, bits)); NULL when symmetric */
    int32_t *g_idx;       /* (cols) group of each input column, or NULL (= k / group_size).
                             GPTQ act-order with static groups stores it and it equals
                             k / group_size: monotone in the stored column order. */
    void *mem;            /* the allocation the pointers live in; NULL for views (mmap) */
    /* The same weight in the fused kernels' "mma" layout (libquant/lq_w4a16.h), when the
       file stored that layout (.lqq packing "lq-mma-w4"): views into the file, else NULL.
       The fields above then hold the reference unpack of it (owned, mem != NULL). */
    const uint32_t *mma_qw;     /* (Np/16, Kp/64, 32, 4) */
    const uint16_t *mma_scales; /* fp16 (n_groups, Np) */
    const uint16_t *mma_zeros;  /* fp16 (n_groups, Np); NULL when symmetric */
} lq_qweight;

/* Byte sizes of the components. */
size_t lq_qweight_qweight_bytes(int64_t rows, int64_t cols, int bits);
size_t lq_qweight_scales_bytes(int64_t rows, int64_t n_groups);
size_t lq_qweight_qzeros_bytes(int64_t rows, int64_t n_groups, int bits);

/* Allocate an owning lq_qweight (components zeroed; g_idx only when with_g_idx). */
lq_status lq_qweight_alloc(lq_qweight *q, int64_t rows, int64_t cols, const lq_quant_params *p, int with_g_idx);
void lq_qweight_free(lq_qweight *q); /* frees mem when owned; NULL / views are fine */

/* Fill q (allocated by lq_qweight_alloc) from unpacked codes/scales/zeros. */
void lq_qweight_pack(lq_qweight *q, const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros);

/* RTN straight into an owning lq_qweight (allocates q). */
lq_status lq_rtn_quantize_packed(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                                 lq_qweight *q);
/* The same with blocks of rows quantized and packed in parallel (OpenMP): the
 * same bytes, for large weights (an 8B model has 7e9 of them). */
lq_status lq_rtn_quantize_packed_cpu(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                                     lq_qweight *q);
/* lq_qweight_pack over blocks of rows in parallel: the same bytes. */
void lq_qweight_pack_cpu(lq_qweight *q, const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros);

/* Check a qweight's sizes/fields (g_idx within [0, n_groups)); `what` names it. */
lq_status lq_qweight_validate(const lq_qweight *q, const char *what);

/* The reference dequantizer: out (rows, cols) f32 from the packed form. */
void lq_dequant_ref(const lq_qweight *q, float *out);
/* Same result, rows in parallel (OpenMP). */
void lq_dequant_cpu(const lq_qweight *q, float *out);

#endif
