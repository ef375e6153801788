/* kld.c — KL divergence and the related statistics between a base and a
 * quantized model's next-token distributions (definitions in lq_kld.h).
 * Tested by tests/test_kld.c. */
#include "lq_kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-sum-exp of one row in double, and its argmax (ties -> lowest id). */
static double row_lse(const float *x, int64_t V, int32_t *argmax) {
    int64_t im = 0;
    for (int64_t i = 1; i < V; i++)
        if (x[i] > x[im]) im = i;
    double mx = x[im], s = 0;
    for (int64_t i = 0; i < V; i++) s += exp((double)x[i] - mx);
    *argmax = (int32_t)im;
    return mx + log(s);
}

void lq_kld_token_ref(const float *lb, const float *lq, int64_t V, int32_t y, lq_kld_token *out) {
    double lse_b = row_lse(lb, V, &out->top_base), lse_q = row_lse(lq, V, &out->top_q);
    double kld = 0;
    for (int64_t i = 0; i < V; i++) {
        double lpb = (double)lb[i] - lse_b, lpq = (double)lq[i] - lse_q;
        kld += exp(lpb) * (lpb - lpq);
    }
    out->kld = kld;
    out->nll_base = lse_b - (double)lb[y];
    out->nll_q = lse_q - (double)lq[y];
    out->dp = exp(-out->nll_q) - exp(-out->nll_base);
}

void lq_kld_acc_init(lq_kld_acc *a) { memset(a, 0, sizeof *a); }

void lq_kld_acc_free(lq_kld_acc *a) {
    if (!a) return;
    free(a->kld_values);
    free(a->dp_values);
    memset(a, 0, sizeof *a);
}

lq_status lq_kld_acc_add(lq_kld_acc *a, const lq_kld_token *t) {
    if (a->count == a->cap) {
        int64_t nc = a->cap ? a->cap * 2 : 4096;
        float *k = realloc(a->kld_values, sizeof(float) * (size_t)nc);
        if (!k) return lq_error(LQ_ERR_NOMEM, "KLD statistics: out of memory (%lld tokens)", (long long)nc);
        a->kld_values = k;
        float *d = realloc(a->dp_values, sizeof(float) * (size_t)nc);
        if (!d) return lq_error(LQ_ERR_NOMEM, "KLD statistics: out of memory (%lld tokens)", (long long)nc);
        a->dp_values = d;
        a->cap = nc;
    }
    a->kld_values[a->count] = (float)t->kld;
    a->dp_values[a->count] = (float)t->dp;
    a->count++;
    a->n_same_top += t->top_base == t->top_q;
    a->sum_nll += t->nll_q;
    a->sum_nll2 += t->nll_q * t->nll_q;
    a->sum_nll_base += t->nll_base;
    a->sum_nll_base2 += t->nll_base * t->nll_base;
    a->sum_nll_nll_base += t->nll_q * t->nll_base;
    a->sum_kld += t->kld;
    a->sum_kld2 += t->kld * t->kld;
    a->sum_dp += t->dp;
    double dp2 = t->dp * t->dp;
    a->sum_dp2 += dp2;
    a->sum_dp4 += dp2 * dp2;
    return LQ_OK;
}

lq_status lq_kld_acc_add_rows(lq_kld_acc *a, const float *lb, const float *lq, int64_t T, int64_t V,
                              const int32_t *targets) {
    lq_kld_token *tk = malloc(sizeof *tk * (size_t)(T > 0 ? T : 1));
    if (!tk) return lq_error(LQ_ERR_NOMEM, "KLD statistics: out of memory");
    for (int64_t t = 0; t < T; t++)
        if (targets[t] < 0 || targets[t] >= V) {
            free(tk);
            return lq_error(LQ_ERR_ARG, "KLD statistics: target %d at row %lld is outside the vocabulary (%lld)",
                            targets[t], (long long)t, (long long)V);
        }
#pragma omp parallel for schedule(static) if (T * V > 65536)
    for (int64_t t = 0; t < T; t++) lq_kld_token_ref(lb + t * V, lq + t * V, V, targets[t], &tk[t]);
    lq_status st = LQ_OK;
    for (int64_t t = 0; t < T && st == LQ_OK; t++) {
        if (!isfinite(tk[t].kld) || !isfinite(tk[t].nll_base) || !isfinite(tk[t].nll_q))
            st = lq_error(LQ_ERR_NUMERIC, "KLD statistics: non-finite value at row %lld (NaN/Inf logits)",
                          (long long)t);
        else
            st = lq_kld_acc_add(a, &tk[t]);
    }
    free(tk);
    return st;
}

/* llama.cpp's mean_and_uncertainty. */
static void mean_unc(double sum, double sum2, int64_t n, double *m, double *u) {
    *m = n > 0 ? sum / (double)n : 0;
    double var = n > 0 ? sum2 / (double)n - *m * *m : 0;
    *u = var > 0 && n > 10 ? sqrt(var / (double)(n - 1)) : 0;
}

static int cmp_float(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b ? 1 : 0;
}

double lq_percentile_sorted(const float *v, int64_t n, double f) {
    if (n < 1) return 0;
    if (f <= 0) return v[0];
    if (f >= 1) return v[n - 1];
    double p = f * (double)(n - 1);
    int64_t i = (int64_t)p;
    p -= (double)i;
    int64_t j = i + 1 < n ? i + 1 : n - 1;
    return (1 - p) * v[i] + p * v[j];
}

lq_status lq_kld_summarize(lq_kld_acc *a, lq_kld_summary *s) {
    memset(s, 0, sizeof *s);
    int64_t n = a->count;
    LQ_RETURN_IF(n < 1, LQ_ERR_ARG, "KLD statistics: no tokens were scored");
    s->count = n;
    double mq, uq, mb, ub;
    mean_unc(a->sum_nll, a->sum_nll2, n, &mq, &uq);
    mean_unc(a->sum_nll_base, a->sum_nll_base2, n, &mb, &ub);
    s->ppl_q = exp(mq);
    s->ppl_q_unc = s->ppl_q * uq;
    s->ppl_base = exp(mb);
    s->ppl_base_unc = s->ppl_base * ub;
    double cov = n >= 10 ? (a->sum_nll_nll_base / (double)n - mq * mb) / (double)(n - 1) : 0;
    s->cor_ln_ppl = uq > 0 && ub > 0 ? cov / (uq * ub) : 0;
    s->ln_ppl_ratio = mq - mb;
    double v = uq * uq + ub * ub - 2 * cov;
    s->ln_ppl_ratio_unc = v > 0 ? sqrt(v) : 0;
    s->ppl_ratio = exp(s->ln_ppl_ratio);
    s->ppl_ratio_unc = s->ppl_ratio * s->ln_ppl_ratio_unc;
    mean_unc(a->sum_kld, a->sum_kld2, n, &s->kld_mean, &s->kld_mean_unc);
    mean_unc(a->sum_dp, a->sum_dp2, n, &s->dp_mean, &s->dp_mean_unc);
    double mse, mse_u;
    mean_unc(a->sum_dp2, a->sum_dp4, n, &mse, &mse_u);
    s->dp_rms = sqrt(mse);
    s->dp_rms_unc = s->dp_rms > 0 ? 0.5 / s->dp_rms * mse_u : 0;
    s->same_top = (double)a->n_same_top / (double)n;
    s->same_top_unc = n > 1 ? sqrt(s->same_top * (1 - s->same_top) / (double)(n - 1)) : 0;
    qsort(a->kld_values, (size_t)n, sizeof(float), cmp_float);
    qsort(a->dp_values, (size_t)n, sizeof(float), cmp_float);
    const float *k = a->kld_values, *d = a->dp_values;
    s->kld_min = k[0];
    s->kld_max = k[n - 1];
    s->kld_median = n % 2 ? k[n / 2] : 0.5 * ((double)k[n / 2] + k[n / 2 - 1]);
    s->kld_p99_9 = lq_percentile_sorted(k, n, 0.999);
    s->kld_p99 = lq_percentile_sorted(k, n, 0.99);
    s->kld_p95 = lq_percentile_sorted(k, n, 0.95);
    s->kld_p90 = lq_percentile_sorted(k, n, 0.90);
    s->kld_p10 = lq_percentile_sorted(k, n, 0.10);
    s->kld_p5 = lq_percentile_sorted(k, n, 0.05);
    s->kld_p1 = lq_percentile_sorted(k, n, 0.01);
    s->dp_min = d[0];
    s->dp_max = d[n - 1];
    s->dp_median = n % 2 ? d[n / 2] : 0.5 * ((double)d[n / 2] + d[n / 2 - 1]);
    return LQ_OK;
}
