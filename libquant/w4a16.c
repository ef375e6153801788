/* w4a16.c — host side of the W4A16 fused kernels: which quantized weights
 * they take, the repacking from the file layout into the mma layout, and the
 * scalar reference of the fused product. The layout is specified in
 * libquant/lq_w4a16.h. Tested by tests/test_w4a16.c. */
#include "lq_w4a16.h"

#include <math.h>
#include <string.h>

#include "lq_dtype.h"

lq_status lq_w4a16_supported(const lq_qweight *q, const char *what) {
    LQ_FORWARD(lq_qweight_validate(q, what));
    LQ_RETURN_IF(q->p.bits != 4, LQ_ERR_UNSUPPORTED, "%s: %d-bit codes (the fused W4A16 kernels take 4-bit)", what,
                 q->p.bits);
    LQ_RETURN_IF(q->n_groups > 1 && q->group_size % 32 != 0, LQ_ERR_UNSUPPORTED,
                 "%s: group size %lld is not a multiple of 32 (the fused kernels read one group per 32 inputs)", what,
                 (long long)q->group_size);
    if (q->g_idx)
        for (int64_t k = 0; k < q->cols; k++)
            LQ_RETURN_IF(q->g_idx[k] != (int32_t)(k / q->group_size), LQ_ERR_UNSUPPORTED,
                         "%s: g_idx[%lld] = %d is not k / G (act-order without static groups)", what, (long long)k,
                         (int)q->g_idx[k]);
    return LQ_OK;
}

lq_status lq_w4a16_shape_of(const lq_qweight *const *parts, int n_parts, lq_w4a16_shape *s) {
    LQ_RETURN_IF(n_parts < 1, LQ_ERR_ARG, "w4a16: no parts");
    memset(s, 0, sizeof *s);
    const lq_qweight *p0 = parts[0];
    for (int i = 0; i < n_parts; i++) {
        const lq_qweight *p = parts[i];
        LQ_RETURN_IF(p->cols != p0->cols || p->p.bits != p0->p.bits || p->group_size != p0->group_size ||
                         p->p.sym != p0->p.sym,
                     LQ_ERR_SHAPE,
                     "w4a16: part %d (%lld x %lld, %d-bit, G %lld, %s) does not match part 0 (%lld x %lld, %d-bit, G "
                     "%lld, %s)",
                     i, (long long)p->rows, (long long)p->cols, p->p.bits, (long long)p->group_size,
                     p->p.sym ? "sym" : "asym", (long long)p0->rows, (long long)p0->cols, p0->p.bits,
                     (long long)p0->group_size, p0->p.sym ? "sym" : "asym");
        s->N += p->rows;
    }
    s->K = p0->cols;
    s->G = p0->group_size;
    s->n_groups = p0->n_groups;
    s->sym = p0->p.sym;
    s->Np = (s->N + 31) / 32 * 32;
    s->Kp = (s->K + 63) / 64 * 64;
    return LQ_OK;
}

size_t lq_w4a16_qw_words(const lq_w4a16_shape *s) { return (size_t)(s->Np / 16) * (size_t)(s->Kp / 64) * 128; }
size_t lq_w4a16_group_elems(const lq_w4a16_shape *s) { return (size_t)s->n_groups * (size_t)s->Np; }

/* Code, zero point and fp16 scale of stacked row n (n < N) at input k. */
static void part_of_row(const lq_qweight *const *parts, int64_t n, const lq_qweight **q, int64_t *row) {
    int i = 0;
    while (n >= parts[i]->rows) n -= parts[i++]->rows;
    *q = parts[i];
    *row = n;
}

static int zero_of(const lq_qweight *q, int64_t row, int64_t g) {
    if (q->p.sym) return 1 << (q->p.bits - 1);
    return lq_packed_get(q->qzeros + row * lq_packed_words(q->n_groups, q->p.bits), g, q->p.bits);
}

void lq_w4a16_repack(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                     uint16_t *scales, uint16_t *zeros) {
    (void)n_parts;
    const int64_t NB = s->Np / 16, KB = s->Kp / 64;
    /* scales / zeros: group-major, padded rows 0 */
    memset(scales, 0, lq_w4a16_group_elems(s) * sizeof(uint16_t));
    if (zeros) memset(zeros, 0, lq_w4a16_group_elems(s) * sizeof(uint16_t));
#pragma omp parallel for schedule(static) if (s->N * s->K > (1 << 20))
    for (int64_t n = 0; n < s->N; n++) {
        const lq_qweight *q;
        int64_t row;
        part_of_row(parts, n, &q, &row);
        for (int64_t g = 0; g < s->n_groups; g++) {
            size_t i = lq_w4a16_group_index(s, n, g);
            scales[i] = q->scales[row * q->n_groups + g];
            if (zeros) zeros[i] = lq_f32_to_f16((float)zero_of(q, row, g));
        }
    }
    /* codes: one 16-row block per iteration; every word written */
#pragma omp parallel for schedule(static) if (s->N * s->K > (1 << 20))
    for (int64_t nb = 0; nb < NB; nb++) {
        const lq_qweight *rq[16];
        int64_t rrow[16];
        for (int r = 0; r < 16; r++) {
            int64_t n = nb * 16 + r;
            if (n < s->N) part_of_row(parts, n, &rq[r], &rrow[r]);
            else rq[r] = NULL;
        }
        for (int64_t kb = 0; kb < KB; kb++)
            for (int lane = 0; lane < 32; lane++)
                for (int j = 0; j < 4; j++) {
                    uint32_t w = 0;
                    for (int nib = 0; nib < 8; nib++) {
                        int r = (lane >> 2) + ((nib & 2) ? 8 : 0);
                        int64_t k = kb * 64 + j * 16 + 2 * (lane & 3) + ((nib & 1) ? 8 : 0) + ((nib & 4) ? 1 : 0);
                        const lq_qweight *q = rq[r];
                        int code = 0;
                        if (q) {
                            const uint32_t *qrow = q->qweight + rrow[r] * lq_packed_words(q->cols, 4);
                            if (k < s->K) {
                                code = lq_packed_get(qrow, k, 4);
                            } else {
                                int64_t g = k / s->G;
                                if (g >= s->n_groups) g = s->n_groups - 1;
                                code = zero_of(q, rrow[r], g);
                            }
                        }
                        w |= (uint32_t)code << (4 * nib);
                    }
                    qw[(((size_t)nb * (size_t)KB + (size_t)kb) * 32 + (size_t)lane) * 4 + (size_t)j] = w;
                }
    }
}

void lq_w4a16_matmul_ref(float *y, const float *x, const lq_qweight *q, const float *b, int64_t m) {
    const int64_t N = q->rows, K = q->cols;
    const int bits = q->p.bits;
    const int64_t wpr = lq_packed_words(K, bits);
    for (int64_t n = 0; n < N; n++) {
        const uint32_t *row = q->qweight + n * wpr;
        for (int64_t i = 0; i < m; i++) {
            double acc = b ? (double)b[n] : 0.0;
            for (int64_t k = 0; k < K; k++) {
                int64_t g = q->g_idx ? q->g_idx[k] : k / q->group_size;
                float s = lq_f16_to_f32(q->scales[n * q->n_groups + g]);
                /* f16((code - zero) * s): what the tensor cores are given */
                float w = lq_f16_to_f32(lq_f32_to_f16((float)(lq_packed_get(row, k, bits) - zero_of(q, n, g)) * s));
                acc += (double)x[i * K + k] * (double)w;
            }
            y[i * N + n] = (float)acc;
        }
    }
}
