/* gptq.c — Hessian statistics and GPTQ for one weight matrix (see
 * lq_calib.h for the algorithm and the split into _ref / _cpu pieces).
 *
 * Numerics: the Hessian is accumulated and factored in double (the sums over
 * thousands of tokens, and the inverse of a matrix whose condition number is
 * dominated by a few outlier inputs, lose too much in fp32); the GPTQ loop
 * runs in fp32 as in the reference implementation.
 * LAPACK: OpenBLAS exports the Fortran symbols dpotrf_/dpotri_; we declare
 * the prototypes here instead of depending on lapacke.h.
 * Tested by tests/test_gptq.c. */
#include "lq_calib.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/lq_gptq_cuda.h"
#include "../libquant/lq_dtype.h"

/* LAPACK (column-major, Fortran calling convention). */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

/* ---------------- Hessian ---------------- */

lq_status lq_hessian_init(lq_hessian *h, int64_t K) {
    memset(h, 0, sizeof *h);
    LQ_RETURN_IF(K < 1 || K > (1 << 20), LQ_ERR_ARG, "Hessian: bad size %lld", (long long)K);
    h->K = K;
    return lq_calloc((void **)&h->S, (size_t)(K * K), sizeof(double), "Hessian");
}

void lq_hessian_free(lq_hessian *h) {
    if (!h) return;
    free(h->S);
    memset(h, 0, sizeof *h);
}

void lq_hessian_accum_ref(lq_hessian *h, const float *X, int64_t rows) {
    const int64_t K = h->K;
    for (int64_t t = 0; t < rows; t++) {
        const float *x = X + t * K;
        for (int64_t r = 0; r < K; r++)
            for (int64_t c = r; c < K; c++) h->S[r * K + c] += (double)x[r] * (double)x[c];
    }
    h->n += rows;
}

lq_status lq_hessian_accum_cpu(lq_hessian *h, const float *X, int64_t rows) {
    const int64_t K = h->K;
    const int64_t chunk = 1024;
    double *Xd;
    LQ_FORWARD(lq_malloc((void **)&Xd, sizeof(double) * (size_t)(chunk * K), "Hessian chunk"));
    for (int64_t t0 = 0; t0 < rows; t0 += chunk) {
        int64_t m = rows - t0 < chunk ? rows - t0 : chunk;
        for (int64_t i = 0; i < m * K; i++) Xd[i] = X[t0 * K + i];
        /* row-major upper: S (K x K) += Xd^T Xd, Xd (m, K) */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)K, (int)m, 1.0, Xd, (int)K, 1.0, h->S, (int)K);
    }
    h->n += rows;
    free(Xd);
    return LQ_OK;
}

void lq_hessian_finalize(const lq_hessian *h, double *H) {
    const int64_t K = h->K;
    double f = h->n > 0 ? 2.0 / (double)h->n : 0.0;
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = r; c < K; c++) H[r * K + c] = H[c * K + r] = f * h->S[r * K + c];
}

lq_status lq_hessian_rel_err(const lq_hessian *h, const float *W, const float *What, int64_t N, double *rel) {
    const int64_t K = h->K;
    lq_status st = LQ_OK;
    double *S = NULL, *D = NULL, *T = NULL;
    LQ_TRY(lq_malloc((void **)&S, sizeof(double) * (size_t)(K * K), "rel err"));
    LQ_TRY(lq_malloc((void **)&D, sizeof(double) * (size_t)(2 * N * K), "rel err"));
    LQ_TRY(lq_malloc((void **)&T, sizeof(double) * (size_t)(2 * N * K), "rel err"));
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = r; c < K; c++) S[r * K + c] = S[c * K + r] = h->S[r * K + c];
    /* rows 0..N-1: W - Ŵ; rows N..2N-1: W */
    for (int64_t i = 0; i < N * K; i++) {
        D[i] = (double)W[i] - (double)What[i];
        D[N * K + i] = W[i];
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(2 * N), (int)K, (int)K, 1.0, D, (int)K, S, (int)K, 0.0,
                T, (int)K);
    double num = 0, den = 0;
    for (int64_t i = 0; i < N * K; i++) {
        num += T[i] * D[i];
        den += T[N * K + i] * D[N * K + i];
    }
    *rel = den > 0 && num > 0 ? sqrt(num / den) : 0.0;
fail:
    free(S);
    free(D);
    free(T);
    return st;
}

/* ---------------- damping, Cholesky, inverse ---------------- */

lq_gptq_opts lq_gptq_opts_default(void) {
    lq_gptq_opts o;
    memset(&o, 0, sizeof o);
    o.q.bits = 4;
    o.q.group_size = 128;
    o.q.sym = 1;
    o.percdamp = 0.01;
    o.max_escalations = 4;
    o.block_size = 128;
    o.act_order = 0;
    return o;
}

/* Try one damping: A = H + damp I, chol, inverse, chol of the inverse into U.
 * Returns 0 on success, else the LAPACK step that failed (1, 2, 3). */
static int try_hinv(const double *H, int64_t K, double damp, double *A, float *U) {
    const int n = (int)K;
    int info = 0;
    memcpy(A, H, sizeof(double) * (size_t)(K * K));
    for (int64_t i = 0; i < K; i++) A[i * K + i] += damp;
    /* A is symmetric, so its row-major and column-major readings agree. */
    dpotrf_("L", &n, A, &n, &info);
    if (info != 0) return 1;
    dpotri_("L", &n, A, &n, &info);
    if (info != 0) return 2;
    /* column-major lower (i >= j at A[i + j K]) == row-major upper: mirror it */
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = r + 1; c < K; c++) A[c * K + r] = A[r * K + c];
    for (int64_t i = 0; i < K * K; i++)
        if (!isfinite(A[i])) return 2;
    dpotrf_("L", &n, A, &n, &info);
    if (info != 0) return 3;
    /* column-major L with H^-1 = L L^T read row-major is L^T = U, upper, with
     * H^-1 = U^T U (torch.linalg.cholesky(..., upper=True) in GPTQ). */
    for (int64_t r = 0; r < K; r++)
        for (int64_t c = 0; c < K; c++) U[r * K + c] = c >= r ? (float)A[r * K + c] : 0.0f;
    return 0;
}

lq_status lq_gptq_hinv_cpu(const double *H, int64_t K, double percdamp, int max_escalations, float *U,
                           lq_gptq_report *rep) {
    LQ_RETURN_IF(K > 46340, LQ_ERR_UNSUPPORTED, "GPTQ: %lld inputs exceed LAPACK's int indexing", (long long)K);
    double mean_diag = 0;
    for (int64_t i = 0; i < K * K; i++)
        LQ_RETURN_IF(!isfinite(H[i]), LQ_ERR_NUMERIC,
                     "GPTQ: the Hessian has a non-finite entry at (%lld, %lld) (NaN/Inf activations)",
                     (long long)(i / K), (long long)(i % K));
    for (int64_t i = 0; i < K; i++) mean_diag += H[i * K + i];
    mean_diag /= (double)K;
    double *A;
    LQ_FORWARD(lq_malloc((void **)&A, sizeof(double) * (size_t)(K * K), "GPTQ Cholesky"));
    double pd = percdamp;
    int failed_step = 0;
    static const char *const steps[] = {"", "Cholesky of H", "inverse of H", "Cholesky of H^-1"};
    for (int esc = 0; esc <= max_escalations; esc++, pd *= 10) {
        double damp = pd * mean_diag;
        failed_step = try_hinv(H, K, damp, A, U);
        if (!failed_step) {
            rep->percdamp_used = pd;
            rep->damp_used = damp;
            rep->escalations = esc;
            free(A);
            return LQ_OK;
        }
    }
    free(A);
    return lq_error(LQ_ERR_NUMERIC,
                    "GPTQ: %s failed even with damping %g x mean(diag H) = %g after %d escalations (mean diag %g)",
                    steps[failed_step], pd / 10, pd / 10 * mean_diag, max_escalations, mean_diag);
}

/* ---------------- the GPTQ loop ---------------- */

/* Params of group g of row r from W[r, c0 .. c1). */
static lq_status row_group_params(const float *wrow, int64_t c0, int64_t c1, const lq_quant_params *p, uint16_t *s,
                                  uint8_t *z) {
    int zi;
    LQ_FORWARD(lq_quant_group_params_ref(wrow + c0, c1 - c0, 1, p, s, &zi));
    *z = (uint8_t)zi;
    return LQ_OK;
}

lq_status lq_gptq_update_ref(float *W, int64_t N, int64_t K, const float *U, const lq_quant_params *p, int64_t G,
                             const int32_t *col_group, int static_params, uint16_t *scales, uint8_t *zeros,
                             uint8_t *codes) {
    const int qmax = (1 << p->bits) - 1;
    const int64_t ng = (K + G - 1) / G;
    for (int64_t j = 0; j < K; j++) {
        int64_t g = col_group[j];
        if (!static_params && j % G == 0) {
            LQ_RETURN_IF(g != j / G, LQ_ERR_ARG, "GPTQ: dynamic group params need unpermuted columns");
            int64_t c1 = j + G < K ? j + G : K;
            for (int64_t r = 0; r < N; r++)
                LQ_FORWARD(row_group_params(W + r * K, j, c1, p, &scales[r * ng + g], &zeros[r * ng + g]));
        }
        const float d = U[j * K + j];
        for (int64_t r = 0; r < N; r++) {
            float *w = W + r * K;
            float s = lq_f16_to_f32(scales[r * ng + g]);
            int z = zeros[r * ng + g];
            LQ_RETURN_IF(!isfinite(w[j]), LQ_ERR_NUMERIC, "GPTQ: weight (%lld, %lld) became non-finite", (long long)r,
                         (long long)j);
            int c = lq_quant_code(w[j], s, z, qmax);
            codes[r * K + j] = (uint8_t)c;
            float err = (w[j] - lq_quant_dequant_value(c, z, s)) / d;
            for (int64_t c2 = j + 1; c2 < K; c2++) w[c2] -= err * U[j * K + c2];
        }
    }
    return LQ_OK;
}

lq_status lq_gptq_update_cpu(float *W, int64_t N, int64_t K, const float *U, const lq_quant_params *p, int64_t G,
                             const int32_t *col_group, int static_params, uint16_t *scales, uint8_t *zeros,
                             uint8_t *codes, int block_size) {
    const int qmax = (1 << p->bits) - 1;
    const int64_t ng = (K + G - 1) / G;
    int64_t B = block_size > 0 ? block_size : 128;
    if (!static_params) {
        for (int64_t j = 0; j < K; j++)
            LQ_RETURN_IF(col_group[j] != j / G, LQ_ERR_ARG, "GPTQ: dynamic group params need unpermuted columns");
        B = G <= B ? B / G * G : G; /* a group never straddles a block boundary */
    }
    float *Err;
    LQ_FORWARD(lq_malloc((void **)&Err, sizeof(float) * (size_t)(N * B), "GPTQ block errors"));
    volatile int bad = 0; /* first failing row + 1 */
    for (int64_t i1 = 0; i1 < K && !bad; i1 += B) {
        const int64_t i2 = i1 + B < K ? i1 + B : K, nb = i2 - i1;
        /* inside the block every row is independent; below ~1e6 multiply-adds
         * a parallel region costs more than it saves (and far more on a loaded
         * machine, where a descheduled thread stalls the barrier) */
#pragma omp parallel for schedule(static) if (N * nb * nb / 2 > 1000000)
        for (int64_t r = 0; r < N; r++) {
            float *w = W + r * K;
            for (int64_t j = i1; j < i2; j++) {
                int64_t g = col_group[j];
                if (!static_params && j % G == 0) {
                    int64_t c1 = j + G < K ? j + G : K;
                    if (row_group_params(w, j, c1, p, &scales[r * ng + g], &zeros[r * ng + g]) != LQ_OK) {
                        bad = (int)r + 1;
                        break;
                    }
                }
                if (!isfinite(w[j])) {
                    bad = (int)r + 1;
                    break;
                }
                float s = lq_f16_to_f32(scales[r * ng + g]);
                int z = zeros[r * ng + g];
                int c = lq_quant_code(w[j], s, z, qmax);
                codes[r * K + j] = (uint8_t)c;
                float err = (w[j] - lq_quant_dequant_value(c, z, s)) / U[j * K + j];
                Err[r * B + (j - i1)] = err;
                const float *u = U + j * K;
                for (int64_t c2 = j + 1; c2 < i2; c2++) w[c2] -= err * u[c2];
            }
        }
        if (bad) break;
        /* lazy update of everything right of the block: W[:, i2:] -= Err (N, nb) U[i1:i2, i2:] */
        if (i2 < K)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)(K - i2), (int)nb, -1.0f, Err, (int)B,
                        U + i1 * K + i2, (int)K, 1.0f, W + i2, (int)K);
    }
    free(Err);
    LQ_RETURN_IF(bad, LQ_ERR_NUMERIC, "GPTQ: row %d has non-finite weights during the update", bad - 1);
    return LQ_OK;
}

/* ---------------- one weight ---------------- */

typedef struct {
    double d;
    int64_t i;
} diag_idx;

static int diag_desc(const void *a, const void *b) {
    const diag_idx *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: ties keep the original order */
}

/* The factorisation and the update of lq_gptq_quantize on the GPU: H (K, K)
 * in processing order on the host (Hp), or built on the device from the sums
 * dS as f * S[perm, perm] with dead diagonals 1; W (N, K) in processing order
 * on the host; codes_p, scales, zeros come back to the host (scales/zeros are
 * inputs too when static_params). */
static lq_status gptq_on_gpu(lq_gptq_cuda *g, const double *Hp, const double *dS, double f, const int32_t *perm,
                             const float *Wp, int64_t N, int64_t K, const lq_gptq_opts *o, int64_t G, int64_t ng,
                             const int32_t *col_group, int static_params, uint16_t *scales, uint8_t *zeros,
                             uint8_t *codes_p, lq_gptq_report *rep) {
    lq_status st = LQ_OK;
    double *dH = NULL;
    float *dU = NULL, *dW = NULL;
    int32_t *dcg = NULL;
    uint16_t *ds = NULL;
    uint8_t *dz = NULL, *dc = NULL;
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dH, sizeof(double) * (size_t)(K * K), "GPTQ H"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dU, sizeof(float) * (size_t)(K * K), "GPTQ U"));
    if (dS) /* H in processing order straight from the device sums */
        LQ_TRY(lq_hessian_permute_cuda(g, dH, dS, K, f, perm));
    else
        LQ_TRY(lq_gptq_cuda_upload(g, dH, Hp, sizeof(double) * (size_t)(K * K)));
    LQ_TRY(lq_gptq_hinv_cuda(g, dH, K, o->percdamp, o->max_escalations, dU, &rep->percdamp_used, &rep->damp_used,
                             &rep->escalations));
    lq_gptq_cuda_dfree(dH); /* before the weight's buffers: a lower peak */
    dH = NULL;
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dW, sizeof(float) * (size_t)(N * K), "GPTQ W"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dcg, sizeof(int32_t) * (size_t)K, "GPTQ column groups"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&ds, sizeof(uint16_t) * (size_t)(N * ng), "GPTQ scales"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dz, (size_t)(N * ng), "GPTQ zeros"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&dc, (size_t)(N * K), "GPTQ codes"));
    LQ_TRY(lq_gptq_cuda_upload(g, dW, Wp, sizeof(float) * (size_t)(N * K)));
    LQ_TRY(lq_gptq_cuda_upload(g, dcg, col_group, sizeof(int32_t) * (size_t)K));
    if (static_params) {
        LQ_TRY(lq_gptq_cuda_upload(g, ds, scales, sizeof(uint16_t) * (size_t)(N * ng)));
        LQ_TRY(lq_gptq_cuda_upload(g, dz, zeros, (size_t)(N * ng)));
    }
    LQ_TRY(lq_gptq_update_cuda(g, dW, N, K, dU, &o->q, G, dcg, static_params, ds, dz, dc, o->block_size));
    LQ_TRY(lq_gptq_cuda_download(g, codes_p, dc, (size_t)(N * K)));
    LQ_TRY(lq_gptq_cuda_download(g, scales, ds, sizeof(uint16_t) * (size_t)(N * ng)));
    LQ_TRY(lq_gptq_cuda_download(g, zeros, dz, (size_t)(N * ng)));
fail:
    lq_gptq_cuda_dfree(dH);
    lq_gptq_cuda_dfree(dU);
    lq_gptq_cuda_dfree(dW);
    lq_gptq_cuda_dfree(dcg);
    lq_gptq_cuda_dfree(ds);
    lq_gptq_cuda_dfree(dz);
    lq_gptq_cuda_dfree(dc);
    return st;
}

/* lq_gptq_quantize on the CPU (g == NULL) or with the factorisation and the
 * update on the GPU of g: everything else is the same code. */
static lq_status gptq_quantize_impl(lq_gptq_cuda *g, const double *dS, const float *W, int64_t N, int64_t K,
                                    const lq_hessian *h, const lq_gptq_opts *o, lq_qweight *out, float *What,
                                    lq_gptq_report *rep) {
    lq_status st = LQ_OK;
    double *H = NULL, *Hp = NULL, *diag = NULL;
    float *Wc = NULL, *Wp = NULL, *U = NULL;
    uint16_t *scales = NULL;
    uint8_t *zeros = NULL, *codes_p = NULL, *codes = NULL;
    int32_t *perm = NULL, *col_group = NULL;
    diag_idx *di = NULL;
    double t0 = lq_now();
    memset(rep, 0, sizeof *rep);
    memset(out, 0, sizeof *out);
    LQ_FORWARD(lq_quant_params_check(&o->q));
    LQ_RETURN_IF(h->K != K || N < 1, LQ_ERR_SHAPE, "GPTQ: weight [%lld, %lld] vs Hessian of %lld inputs", (long long)N,
                 (long long)K, (long long)h->K);
    LQ_RETURN_IF(h->n < 1, LQ_ERR_ARG, "GPTQ: the Hessian has no calibration tokens");
    const int64_t G = lq_quant_group_size(&o->q, K), ng = lq_quant_n_groups(&o->q, K);
    const int static_params = o->act_order || G == K;
    const double f = 2.0 / (double)h->n; /* H = 2 S / n, as lq_hessian_finalize */
    if (!dS) {
        LQ_TRY(lq_malloc((void **)&H, sizeof(double) * (size_t)(K * K), "GPTQ H"));
        LQ_TRY(lq_malloc((void **)&Hp, sizeof(double) * (size_t)(K * K), "GPTQ H permuted"));
    }
    LQ_TRY(lq_malloc((void **)&diag, sizeof(double) * (size_t)K, "GPTQ diag(H)"));
    if (!g) LQ_TRY(lq_malloc((void **)&U, sizeof(float) * (size_t)(K * K), "GPTQ U"));
    LQ_TRY(lq_malloc((void **)&Wc, sizeof(float) * (size_t)(N * K), "GPTQ W"));
    LQ_TRY(lq_malloc((void **)&Wp, sizeof(float) * (size_t)(N * K), "GPTQ W permuted"));
    LQ_TRY(lq_malloc((void **)&scales, sizeof(uint16_t) * (size_t)(N * ng), "GPTQ scales"));
    LQ_TRY(lq_malloc((void **)&zeros, (size_t)(N * ng), "GPTQ zeros"));
    LQ_TRY(lq_malloc((void **)&codes_p, (size_t)(N * K), "GPTQ codes"));
    LQ_TRY(lq_malloc((void **)&codes, (size_t)(N * K), "GPTQ codes"));
    LQ_TRY(lq_malloc((void **)&perm, sizeof(int32_t) * (size_t)K, "GPTQ perm"));
    LQ_TRY(lq_malloc((void **)&col_group, sizeof(int32_t) * (size_t)K, "GPTQ groups"));
    LQ_TRY(lq_malloc((void **)&di, sizeof *di * (size_t)K, "GPTQ order"));

    if (dS) {
        LQ_TRY(lq_hessian_diag_cuda(g, dS, K, diag));
        for (int64_t k = 0; k < K; k++) diag[k] *= f;
    } else {
        lq_hessian_finalize(h, H);
        for (int64_t k = 0; k < K; k++) diag[k] = H[k * K + k];
    }
    memcpy(Wc, W, sizeof(float) * (size_t)(N * K));
    /* dead inputs: never active in calibration, so any weight is as good as
     * another for the objective; zero the column and give H a unit diagonal
     * so the factorisation stays regular (lq_hessian_permute_cuda does the
     * same on the device). */
    for (int64_t k = 0; k < K; k++)
        if (diag[k] == 0.0) {
            diag[k] = 1.0;
            if (H) H[k * K + k] = 1.0;
            for (int64_t r = 0; r < N; r++) Wc[r * K + k] = 0.0f;
            rep->n_dead++;
        }
    for (int64_t k = 0; k < K; k++) {
        di[k].d = diag[k];
        di[k].i = k;
    }
    if (o->act_order) qsort(di, (size_t)K, sizeof *di, diag_desc);
    for (int64_t j = 0; j < K; j++) {
        perm[j] = (int32_t)di[j].i;
        col_group[j] = (int32_t)(di[j].i / G);
    }
    if (static_params) /* groups from the original column order, before any update */
        for (int64_t r = 0; r < N; r++)
            for (int64_t g = 0; g < ng; g++) {
                int64_t c0 = g * G, c1 = c0 + G < K ? c0 + G : K;
                st = row_group_params(Wc + r * K, c0, c1, &o->q, &scales[r * ng + g], &zeros[r * ng + g]);
                if (st != LQ_OK) {
                    lq_error_prefix(st, "GPTQ: row %lld", (long long)r);
                    goto fail;
                }
            }
    for (int64_t r = 0; r < N; r++)
        for (int64_t j = 0; j < K; j++) Wp[r * K + j] = Wc[r * K + perm[j]];
    if (Hp)
        for (int64_t a = 0; a < K; a++)
            for (int64_t b = 0; b < K; b++) Hp[a * K + b] = H[(int64_t)perm[a] * K + perm[b]];
    if (g) {
        LQ_TRY(gptq_on_gpu(g, Hp, dS, f, perm, Wp, N, K, o, G, ng, col_group, static_params, scales, zeros, codes_p,
                           rep));
    } else {
        LQ_TRY(lq_gptq_hinv_cpu(Hp, K, o->percdamp, o->max_escalations, U, rep));
        LQ_TRY(lq_gptq_update_cpu(Wp, N, K, U, &o->q, G, col_group, static_params, scales, zeros, codes_p,
                                  o->block_size));
    }
    for (int64_t r = 0; r < N; r++)
        for (int64_t j = 0; j < K; j++) codes[r * K + perm[j]] = codes_p[r * K + j];
    LQ_TRY(lq_qweight_alloc(out, N, K, &o->q, o->act_order));
    lq_qweight_pack_cpu(out, codes, scales, zeros); /* g_idx[k] = k / G from lq_qweight_alloc */
    if (What) lq_dequant_cpu(out, What);
    rep->seconds = lq_now() - t0;
fail:
    if (st != LQ_OK) lq_qweight_free(out);
    free(H);
    free(Hp);
    free(diag);
    free(U);
    free(Wc);
    free(Wp);
    free(scales);
    free(zeros);
    free(codes_p);
    free(codes);
    free(perm);
    free(col_group);
    free(di);
    return st;
}

lq_status lq_gptq_quantize(const float *W, int64_t N, int64_t K, const lq_hessian *h, const lq_gptq_opts *o,
                           lq_qweight *out, float *What, lq_gptq_report *rep) {
    return gptq_quantize_impl(NULL, NULL, W, N, K, h, o, out, What, rep);
}

lq_status lq_gptq_quantize_cuda(lq_gptq_cuda *g, const double *dS, const float *W, int64_t N, int64_t K,
                                const lq_hessian *h, const lq_gptq_opts *o, lq_qweight *out, float *What,
                                lq_gptq_report *rep) {
    if (!g) {
        memset(rep, 0, sizeof *rep);
        memset(out, 0, sizeof *out);
        return lq_error(LQ_ERR_ARG, "GPU GPTQ: no GPU context");
    }
    return gptq_quantize_impl(g, dS, W, N, K, h, o, out, What, rep);
}
