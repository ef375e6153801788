/* w4a16.c — host side of the W4A16 fused kernels: which quantized weights
 * they take, the repacking from the file layout into the mma layout, and the
 * scalar reference of the fused product. The layout is specified in
 * libquant/lq_w4a16.h. Tested by tests/test_w4a16.c. */
#include "lq_w4a16.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lq_dtype.h"

#ifdef _OPENMP
#include <omp.h>
#else /* the fuzz build may lack OpenMP: one thread */
static int omp_get_max_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
#endif

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

lq_status lq_w4a16_assemble(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                            uint16_t *scales, uint16_t *zeros) {
    for (int i = 0; i < n_parts; i++) {
        const lq_qweight *q = parts[i];
        LQ_RETURN_IF(!q->mma_qw || !q->mma_scales || (!s->sym && !q->mma_zeros), LQ_ERR_UNSUPPORTED,
                     "w4a16: part %d has no mma layout (its file stores the bit stream)", i);
        LQ_RETURN_IF(i + 1 < n_parts && q->rows % 16 != 0, LQ_ERR_UNSUPPORTED,
                     "w4a16: part %d has %lld rows, not a multiple of 16 (its last row block would be shared)", i,
                     (long long)q->rows);
    }
    const size_t blk = (size_t)(s->Kp / 64) * 128; /* words per 16-row block */
    const int64_t NB = s->Np / 16;
    int64_t r0 = 0; /* first row of part i in the stack */
    for (int i = 0; i < n_parts; i++) {
        const lq_qweight *q = parts[i];
        lq_w4a16_shape si;
        LQ_FORWARD(lq_w4a16_shape_of(&parts[i], 1, &si));
        const int64_t nb = (q->rows + 15) / 16; /* blocks that hold rows of this part */
        memcpy(qw + (size_t)(r0 / 16) * blk, q->mma_qw, (size_t)nb * blk * sizeof(uint32_t));
        for (int64_t g = 0; g < s->n_groups; g++) {
            memcpy(scales + (size_t)g * (size_t)s->Np + (size_t)r0, q->mma_scales + (size_t)g * (size_t)si.Np,
                   (size_t)nb * 16 * sizeof(uint16_t));
            if (zeros)
                memcpy(zeros + (size_t)g * (size_t)s->Np + (size_t)r0, q->mma_zeros + (size_t)g * (size_t)si.Np,
                       (size_t)nb * 16 * sizeof(uint16_t));
        }
        r0 += nb * 16;
    }
    /* padding blocks after the last part: codes, scales and zeros 0 */
    memset(qw + (size_t)(r0 / 16) * blk, 0, (size_t)(NB - r0 / 16) * blk * sizeof(uint32_t));
    for (int64_t g = 0; g < s->n_groups; g++) {
        memset(scales + (size_t)g * (size_t)s->Np + (size_t)r0, 0, (size_t)(s->Np - r0) * sizeof(uint16_t));
        if (zeros) memset(zeros + (size_t)g * (size_t)s->Np + (size_t)r0, 0, (size_t)(s->Np - r0) * sizeof(uint16_t));
    }
    return LQ_OK;
}

void lq_w4a16_pack_parts(const lq_qweight *const *parts, int n_parts, const lq_w4a16_shape *s, uint32_t *qw,
                         uint16_t *scales, uint16_t *zeros, int *assembled) {
    int a = lq_w4a16_assemble(parts, n_parts, s, qw, scales, zeros) == LQ_OK;
    if (!a) {
        lq_clear_error();
        lq_w4a16_repack(parts, n_parts, s, qw, scales, zeros);
    }
    if (assembled) *assembled = a;
}

void lq_w4a16_interleave64(const lq_w4a16_shape *s, const uint32_t *qw, const uint16_t *g0, const uint16_t *g1,
                           uint32_t *qw2, uint16_t *g0o, uint16_t *g1o) {
    const int64_t H = s->N / 2, hb = H / 16;
    const size_t blk = (size_t)(s->Kp / 64) * 128; /* words per 16-row block */
    for (int64_t b = 0; b < 2 * hb; b++) {       /* destination block b: 8 j + i */
        const int64_t j = b / 8, i = b % 8, src = i < 4 ? 4 * j + i : hb + 4 * j + i - 4;
        memcpy(qw2 + (size_t)b * blk, qw + (size_t)src * blk, blk * sizeof(uint32_t));
    }
    for (int64_t n = 0; n < 2 * H; n++) { /* destination row n */
        const int64_t j = n / 128, r = n % 128, src = r < 64 ? 64 * j + r : H + 64 * j + r - 64;
        for (int64_t g = 0; g < s->n_groups; g++) {
            const size_t d = lq_w4a16_group_index(s, n, g), o = lq_w4a16_group_index(s, src, g);
            g0o[d] = g0[o];
            if (g1) g1o[d] = g1[o];
        }
    }
}

lq_status lq_w4a16_unpack(const lq_w4a16_shape *s, const uint32_t *qw, const uint16_t *scales, const uint16_t *zeros,
                          lq_qweight *q, const char *what) {
    LQ_RETURN_IF(q->rows != s->N || q->cols != s->K || q->p.bits != 4 || q->group_size != s->G ||
                     q->n_groups != s->n_groups || q->p.sym != s->sym || (!s->sym && (!zeros || !q->qzeros)),
                 LQ_ERR_ARG, "%s: unpack target does not match the mma shape", what);
    const int64_t wpr = lq_packed_words(s->K, 4), zpr = lq_packed_words(s->n_groups, 4);
    /* the first bad entry (lowest row), reported after the parallel loops */
    int64_t bad_n = INT64_MAX, bad_x = 0;
    int bad_kind = 0, bad_c = 0, bad_want = 0;
    /* scales and zero points: padded rows 0, zero points small integers */
#pragma omp parallel for schedule(static) if (s->N * s->K > (1 << 20))
    for (int64_t n = 0; n < s->Np; n++) {
        for (int64_t g = 0; g < s->n_groups; g++) {
            size_t i = lq_w4a16_group_index(s, n, g);
            float z = zeros ? lq_f16_to_f32(zeros[i]) : 8.0f;
            int kind = n < s->N ? (!(z >= 0.0f && z <= 15.0f && z == floorf(z)) ? 1 : 0)
                                : ((scales[i] != 0 || (zeros && zeros[i] != 0)) ? 2 : 0);
            if (kind) {
#pragma omp critical(lq_w4a16_unpack_bad)
                if (n < bad_n) bad_n = n, bad_x = g, bad_kind = kind;
                break;
            }
            if (n >= s->N) continue;
            q->scales[n * s->n_groups + g] = scales[i];
            if (zeros) {
                uint32_t *zr = q->qzeros + n * zpr + (g >> 3);
                if ((g & 7) == 0) *zr = 0;
                *zr |= (uint32_t)z << (4 * (g & 7));
            }
        }
    }
    if (bad_kind)
        return lq_error(LQ_ERR_FORMAT, "%s: %s of row %lld, group %lld is %s", what,
                        bad_kind == 1 ? "zero point" : "padding scale/zero", (long long)bad_n, (long long)bad_x,
                        bad_kind == 1 ? "not an integer in 0..15" : "not 0");
    /* codes, one 16 x 64 tile at a time (the inverse of lq_w4a16_repack's word order, so every
       word is read once; lq_w4a16_code is the scalar definition); padded inputs must hold the
       row's zero point, padded rows 0 */
    const int64_t KB = s->Kp / 64;
#pragma omp parallel for schedule(static) if (s->N * s->K > (1 << 20))
    for (int64_t nb = 0; nb < s->Np / 16; nb++) {
        uint8_t c[16][64];
        for (int r = 0; r < 16; r++)
            if (nb * 16 + r < s->N) memset(q->qweight + (nb * 16 + r) * wpr, 0, (size_t)wpr * sizeof(uint32_t));
        for (int64_t kb = 0; kb < KB; kb++) {
            const uint32_t *t = qw + ((size_t)nb * (size_t)KB + (size_t)kb) * 128;
            for (int lane = 0; lane < 32; lane++)
                for (int j = 0; j < 4; j++) {
                    uint32_t w = t[lane * 4 + j];
                    for (int nib = 0; nib < 8; nib++) {
                        int r = (lane >> 2) + ((nib & 2) ? 8 : 0);
                        int k = j * 16 + 2 * (lane & 3) + ((nib & 1) ? 8 : 0) + ((nib & 4) ? 1 : 0);
                        c[r][k] = (uint8_t)((w >> (4 * nib)) & 15u);
                    }
                }
            for (int r = 0; r < 16; r++) {
                const int64_t n = nb * 16 + r;
                uint32_t *row = n < s->N ? q->qweight + n * wpr : NULL;
                for (int k = 0; k < 64; k++) {
                    const int64_t kg = kb * 64 + k;
                    if (row && kg < s->K) {
                        row[kg >> 3] |= (uint32_t)c[r][k] << (4 * (kg & 7));
                        continue;
                    }
                    int want = 0;
                    if (row) {
                        int64_t g = kg / s->G;
                        if (g >= s->n_groups) g = s->n_groups - 1;
                        want = zeros ? (int)lq_f16_to_f32(zeros[lq_w4a16_group_index(s, n, g)]) : 8;
                    }
                    if (c[r][k] != want) {
#pragma omp critical(lq_w4a16_unpack_bad)
                        if (n < bad_n || (n == bad_n && kg < bad_x))
                            bad_n = n, bad_x = kg, bad_kind = 3, bad_c = c[r][k], bad_want = want;
                        break;
                    }
                }
            }
        }
    }
    if (bad_kind)
        return lq_error(LQ_ERR_FORMAT, "%s: padding code at row %lld, input %lld is %d, not %d", what,
                        (long long)bad_n, (long long)bad_x, bad_c, bad_want);
    return LQ_OK;
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

/* One row's weights as lq_w4a16_matmul_ref forms them: f16((code - zero) * scale) */
static void w4a16_row_ref(const lq_qweight *q, int64_t n, float *w) {
    const int bits = q->p.bits;
    const uint32_t *row = q->qweight + n * lq_packed_words(q->cols, bits);
    for (int64_t k = 0; k < q->cols; k++) {
        const int64_t g = q->g_idx ? q->g_idx[k] : k / q->group_size;
        const float s = lq_f16_to_f32(q->scales[n * q->n_groups + g]);
        w[k] = lq_f16_to_f32(lq_f32_to_f16((float)(lq_packed_get(row, k, bits) - zero_of(q, n, g)) * s));
    }
}

void lq_w4a16_matmul_cpu(float *y, const float *x, const lq_qweight *q, const float *b, int64_t m) {
    const int64_t N = q->rows, K = q->cols;
    const int nt = omp_get_max_threads();
    float *wbuf = malloc(sizeof(float) * (size_t)K * (size_t)(nt > 0 ? nt : 1));
    if (!wbuf) { /* no room for the row buffers: the reference itself (the same bits) */
        lq_w4a16_matmul_ref(y, x, q, b, m);
        return;
    }
#pragma omp parallel for schedule(dynamic, 16) if (N * K * (m > 0 ? m : 1) > 1 << 20)
    for (int64_t n = 0; n < N; n++) {
        float *w = wbuf + (size_t)omp_get_thread_num() * (size_t)K;
        w4a16_row_ref(q, n, w);
        for (int64_t i = 0; i < m; i++) {
            double acc = b ? (double)b[n] : 0.0;
            for (int64_t k = 0; k < K; k++) acc += (double)x[i * K + k] * (double)w[k];
            y[i * N + n] = (float)acc;
        }
    }
    free(wbuf);
}
