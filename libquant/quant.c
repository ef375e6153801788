/* quant.c — the quantization rule, RTN, code packing and the reference
 * dequantizer (see lq_quant.h for the rule and the layout).
 * Tested by tests/test_quant.c (make test, or build/tests/test_quant). */
#include "lq_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_dtype.h"

lq_status lq_quant_params_check(const lq_quant_params *p) {
    LQ_RETURN_IF(p->bits < LQ_QUANT_MIN_BITS || p->bits > LQ_QUANT_MAX_BITS, LQ_ERR_ARG,
                 "quantization: bits = %d is out of range [%d, %d]", p->bits, LQ_QUANT_MIN_BITS, LQ_QUANT_MAX_BITS);
    LQ_RETURN_IF(p->group_size < 0, LQ_ERR_ARG, "quantization: group size %d is negative", p->group_size);
    return LQ_OK;
}

int64_t lq_quant_group_size(const lq_quant_params *p, int64_t K) {
    return p->group_size <= 0 || p->group_size >= K ? K : p->group_size;
}

int64_t lq_quant_n_groups(const lq_quant_params *p, int64_t K) {
    int64_t g = lq_quant_group_size(p, K);
    return g > 0 ? (K + g - 1) / g : 0;
}

/* fp32 scale -> fp16 bits, saturating at the largest finite half (65504):
 * a scale that overflows would make every code the zero point. */
static uint16_t scale_to_f16(float s) {
    if (!(s <= 65504.0f)) s = 65504.0f; /* also catches +Inf */
    return lq_f32_to_f16(s);
}

lq_status lq_quant_group_params_ref(const float *w, int64_t n, int64_t stride, const lq_quant_params *p,
                                    uint16_t *scale_f16, int *zero) {
    const int qmax = (1 << p->bits) - 1;
    float lo = 0.0f, hi = 0.0f, amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = w[i * stride];
        LQ_RETURN_IF(!isfinite(v), LQ_ERR_NUMERIC, "quantization: non-finite weight %g at offset %lld of a group",
                     (double)v, (long long)i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (fabsf(v) > amax) amax = fabsf(v);
    }
    if (p->sym) {
        *scale_f16 = scale_to_f16(amax / (float)((1 << (p->bits - 1)) - 1));
        *zero = 1 << (p->bits - 1);
    } else {
        /* hi - lo can overflow to +Inf for |w| near FLT_MAX: it saturates below. */
        *scale_f16 = scale_to_f16((hi - lo) / (float)qmax);
        float s = lq_f16_to_f32(*scale_f16);
        if (s == 0.0f) {
            *zero = 0;
        } else {
            float z = rintf(-lo / s);
            *zero = z < 0.0f ? 0 : z > (float)qmax ? qmax : (int)z;
        }
    }
    return LQ_OK;
}

int lq_quant_code(float w, float s, int zero, int qmax) {
    if (s == 0.0f) return zero;
    /* rint(w/s) + zero is exact while |rint| < 2^24; beyond that the clamp
     * decides anyway. */
    float q = rintf(w / s) + (float)zero;
    if (!(q >= 0.0f)) return 0; /* also maps a NaN quotient to 0 (callers check inputs first) */
    if (q > (float)qmax) return qmax;
    return (int)q;
}

lq_status lq_rtn_quantize_ref(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p, uint8_t *codes,
                              uint16_t *scales, uint8_t *zeros) {
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(rows < 0 || cols < 1, LQ_ERR_SHAPE, "RTN: bad shape [%lld, %lld]", (long long)rows,
                 (long long)cols);
    const int64_t G = lq_quant_group_size(p, cols), ng = lq_quant_n_groups(p, cols);
    const int qmax = (1 << p->bits) - 1;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            int64_t c0 = g * G, c1 = c0 + G < cols ? c0 + G : cols;
            uint16_t sh;
            int z;
            lq_status st = lq_quant_group_params_ref(w + r * cols + c0, c1 - c0, 1, p, &sh, &z);
            if (st != LQ_OK)
                return lq_error_prefix(st, "RTN: row %lld, columns %lld..%lld", (long long)r, (long long)c0,
                                       (long long)(c1 - 1));
            scales[r * ng + g] = sh;
            zeros[r * ng + g] = (uint8_t)z;
            float s = lq_f16_to_f32(sh);
            for (int64_t c = c0; c < c1; c++) codes[r * cols + c] = (uint8_t)lq_quant_code(w[r * cols + c], s, z, qmax);
        }
    }
    return LQ_OK;
}

/* ---- packing ---- */

int64_t lq_packed_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

void lq_pack_codes_ref(const uint8_t *codes, int64_t rows, int64_t cols, int bits, uint32_t *packed) {
    const int64_t wpr = lq_packed_words(cols, bits);
    memset(packed, 0, sizeof(uint32_t) * (size_t)(rows * wpr));
    const uint32_t mask = (1u << bits) - 1u;
    for (int64_t r = 0; r < rows; r++) {
        uint32_t *row = packed + r * wpr;
        for (int64_t k = 0; k < cols; k++) {
            uint64_t v = codes[r * cols + k] & mask;
            uint64_t bit = (uint64_t)k * (uint64_t)bits;
            unsigned sh = (unsigned)(bit & 31);
            row[bit >> 5] |= (uint32_t)(v << sh);
            if (sh + (unsigned)bits > 32) row[(bit >> 5) + 1] |= (uint32_t)(v >> (32 - sh));
        }
    }
}

void lq_unpack_codes_ref(const uint32_t *packed, int64_t rows, int64_t cols, int bits, uint8_t *codes) {
    const int64_t wpr = lq_packed_words(cols, bits);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) codes[r * cols + k] = (uint8_t)lq_packed_get(packed + r * wpr, k, bits);
}

/* ---- lq_qweight ---- */

size_t lq_qweight_qweight_bytes(int64_t rows, int64_t cols, int bits) {
    return sizeof(uint32_t) * (size_t)rows * (size_t)lq_packed_words(cols, bits);
}
size_t lq_qweight_scales_bytes(int64_t rows, int64_t n_groups) {
    return sizeof(uint16_t) * (size_t)rows * (size_t)n_groups;
}
size_t lq_qweight_qzeros_bytes(int64_t rows, int64_t n_groups, int bits) {
    return sizeof(uint32_t) * (size_t)rows * (size_t)lq_packed_words(n_groups, bits);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

lq_status lq_qweight_alloc(lq_qweight *q, int64_t rows, int64_t cols, const lq_quant_params *p, int with_g_idx) {
    memset(q, 0, sizeof *q);
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(rows < 1 || cols < 1, LQ_ERR_SHAPE, "quantized weight: bad shape [%lld, %lld]", (long long)rows,
                 (long long)cols);
    q->rows = rows;
    q->cols = cols;
    q->p = *p;
    q->group_size = lq_quant_group_size(p, cols);
    q->n_groups = lq_quant_n_groups(p, cols);
    size_t bw = align64(lq_qweight_qweight_bytes(rows, cols, p->bits));
    size_t bs = align64(lq_qweight_scales_bytes(rows, q->n_groups));
    size_t bz = p->sym ? 0 : align64(lq_qweight_qzeros_bytes(rows, q->n_groups, p->bits));
    size_t bg = with_g_idx ? align64(sizeof(int32_t) * (size_t)cols) : 0;
    char *m = calloc(1, bw + bs + bz + bg);
    LQ_RETURN_IF(!m, LQ_ERR_NOMEM, "quantized weight [%lld, %lld]: out of memory (%zu bytes)", (long long)rows,
                 (long long)cols, bw + bs + bz + bg);
    q->mem = m;
    q->qweight = (uint32_t *)m;
    q->scales = (uint16_t *)(m + bw);
    q->qzeros = p->sym ? NULL : (uint32_t *)(m + bw + bs);
    q->g_idx = with_g_idx ? (int32_t *)(m + bw + bs + bz) : NULL;
    if (q->g_idx)
        for (int64_t k = 0; k < cols; k++) q->g_idx[k] = (int32_t)(k / q->group_size);
    return LQ_OK;
}

void lq_qweight_free(lq_qweight *q) {
    if (!q) return;
    free(q->mem);
    memset(q, 0, sizeof *q);
}

void lq_qweight_pack(lq_qweight *q, const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros) {
    lq_pack_codes_ref(codes, q->rows, q->cols, q->p.bits, q->qweight);
    memcpy(q->scales, scales, lq_qweight_scales_bytes(q->rows, q->n_groups));
    if (q->qzeros) lq_pack_codes_ref(zeros, q->rows, q->n_groups, q->p.bits, q->qzeros);
}

lq_status lq_rtn_quantize_packed(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                                 lq_qweight *q) {
    lq_status st = LQ_OK;
    uint8_t *codes = NULL, *zeros = NULL;
    uint16_t *scales = NULL;
    LQ_TRY(lq_qweight_alloc(q, rows, cols, p, 0));
    LQ_TRY(lq_malloc((void **)&codes, (size_t)(rows * cols), "RTN codes"));
    LQ_TRY(lq_malloc((void **)&scales, lq_qweight_scales_bytes(rows, q->n_groups), "RTN scales"));
    LQ_TRY(lq_malloc((void **)&zeros, (size_t)(rows * q->n_groups), "RTN zeros"));
    LQ_TRY(lq_rtn_quantize_ref(w, rows, cols, p, codes, scales, zeros));
    lq_qweight_pack(q, codes, scales, zeros);
fail:
    if (st != LQ_OK) lq_qweight_free(q);
    free(codes);
    free(scales);
    free(zeros);
    return st;
}

/* ---------------- RTN and packing, rows in parallel ---------------- */

/* lq_qweight_pack over blocks of rows (rows pack independently: each starts
 * on a new word), so the bytes are those of lq_qweight_pack. (Moved here from
 * calib/gptq.c: RTN's fast twin belongs beside its reference.) */
void lq_qweight_pack_cpu(lq_qweight *q, const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros) {
    const int64_t R = 64, wq = lq_packed_words(q->cols, q->p.bits), wz = lq_packed_words(q->n_groups, q->p.bits);
#pragma omp parallel for schedule(static) if (q->rows * q->cols > (1 << 20))
    for (int64_t r0 = 0; r0 < q->rows; r0 += R) {
        const int64_t nr = q->rows - r0 < R ? q->rows - r0 : R;
        lq_pack_codes_ref(codes + r0 * q->cols, nr, q->cols, q->p.bits, q->qweight + r0 * wq);
        if (q->qzeros) lq_pack_codes_ref(zeros + r0 * q->n_groups, nr, q->n_groups, q->p.bits, q->qzeros + r0 * wz);
    }
    memcpy(q->scales, scales, lq_qweight_scales_bytes(q->rows, q->n_groups));
}

lq_status lq_rtn_quantize_packed_cpu(const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                                     lq_qweight *q) {
    lq_status st = LQ_OK;
    uint8_t *codes = NULL, *zeros = NULL;
    uint16_t *scales = NULL;
    volatile int bad = 0;
    memset(q, 0, sizeof *q);
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(rows < 1 || cols < 1, LQ_ERR_SHAPE, "RTN: bad shape [%lld, %lld]", (long long)rows,
                 (long long)cols);
    const int64_t ng = lq_quant_n_groups(p, cols), R = 64;
    LQ_TRY(lq_qweight_alloc(q, rows, cols, p, 0));
    LQ_TRY(lq_malloc((void **)&codes, (size_t)(rows * cols), "RTN codes"));
    LQ_TRY(lq_malloc((void **)&scales, lq_qweight_scales_bytes(rows, ng), "RTN scales"));
    LQ_TRY(lq_malloc((void **)&zeros, (size_t)(rows * ng), "RTN zeros"));
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 20))
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
        const int64_t nr = rows - r0 < R ? rows - r0 : R;
        if (lq_rtn_quantize_ref(w + r0 * cols, nr, cols, p, codes + r0 * cols, scales + r0 * ng, zeros + r0 * ng) !=
            LQ_OK)
            bad = 1;
    }
    if (bad) {
        /* the message was set in a worker thread (thread-local): redo it here */
        lq_qweight_free(q);
        st = lq_rtn_quantize_packed(w, rows, cols, p, q);
        if (st == LQ_OK) st = lq_error(LQ_ERR_NUMERIC, "RTN: a row failed in parallel but not serially");
        goto fail;
    }
    lq_qweight_pack_cpu(q, codes, scales, zeros);
fail:
    if (st != LQ_OK) lq_qweight_free(q);
    free(codes);
    free(scales);
    free(zeros);
    return st;
}

lq_status lq_qweight_validate(const lq_qweight *q, const char *what) {
    LQ_RETURN_IF(q->p.bits < LQ_QUANT_MIN_BITS || q->p.bits > LQ_QUANT_MAX_BITS, LQ_ERR_FORMAT,
                 "%s: bits = %d is out of range [%d, %d]", what, q->p.bits, LQ_QUANT_MIN_BITS, LQ_QUANT_MAX_BITS);
    LQ_RETURN_IF(q->rows < 1 || q->cols < 1, LQ_ERR_SHAPE, "%s: bad shape [%lld, %lld]", what, (long long)q->rows,
                 (long long)q->cols);
    LQ_RETURN_IF(q->group_size < 1 || q->group_size > q->cols || q->n_groups != (q->cols + q->group_size - 1) / q->group_size,
                 LQ_ERR_FORMAT, "%s: group size %lld / %lld groups do not fit %lld columns", what,
                 (long long)q->group_size, (long long)q->n_groups, (long long)q->cols);
    LQ_RETURN_IF(!q->qweight || !q->scales || (!q->p.sym && !q->qzeros), LQ_ERR_FORMAT, "%s: missing components",
                 what);
    if (q->g_idx)
        for (int64_t k = 0; k < q->cols; k++)
            LQ_RETURN_IF(q->g_idx[k] < 0 || q->g_idx[k] >= q->n_groups, LQ_ERR_FORMAT,
                         "%s: g_idx[%lld] = %d is outside [0, %lld)", what, (long long)k, q->g_idx[k],
                         (long long)q->n_groups);
    return LQ_OK;
}

static void dequant_row(const lq_qweight *q, int64_t r, float *out) {
    const int bits = q->p.bits;
    const uint32_t *row = q->qweight + r * lq_packed_words(q->cols, bits);
    const uint32_t *zrow = q->qzeros ? q->qzeros + r * lq_packed_words(q->n_groups, bits) : NULL;
    const uint16_t *srow = q->scales + r * q->n_groups;
    for (int64_t k = 0; k < q->cols; k++) {
        int64_t g = q->g_idx ? q->g_idx[k] : k / q->group_size;
        int z = zrow ? lq_packed_get(zrow, g, bits) : 1 << (bits - 1);
        out[k] = lq_quant_dequant_value(lq_packed_get(row, k, bits), z, lq_f16_to_f32(srow[g]));
    }
}

void lq_dequant_ref(const lq_qweight *q, float *out) {
    for (int64_t r = 0; r < q->rows; r++) dequant_row(q, r, out + r * q->cols);
}

void lq_dequant_cpu(const lq_qweight *q, float *out) {
#pragma omp parallel for if (q->rows * q->cols > 65536)
    for (int64_t r = 0; r < q->rows; r++) dequant_row(q, r, out + r * q->cols);
}
