/* lq_kld.h — how far a quantized model's next-token distributions are from
 * its base model's: the statistics llama.cpp's `perplexity --kl-divergence`
 * prints, computed from both models' logits over the same tokens.
 *
 * Per scored token t (target y = the next token), with P = softmax(base
 * logits) and Q = softmax(quantized logits), both in double:
 *   nll_base = -log P(y), nll_q = -log Q(y)
 *   KLD      = sum_i P_i (log P_i - log Q_i)        (exact over the whole vocabulary;
 *                                                   llama.cpp drops terms with
 *                                                   log P_i < -16 and stores the
 *                                                   base log-probs in 16 bits)
 *   dp       = Q(y) - P(y)                          ("Δp")
 *   same_top = argmax P == argmax Q (ties -> lowest id, like torch.argmax)
 * Aggregates (n tokens; llama.cpp's definitions):
 *   mean and its uncertainty of a quantity x: m = sum x / n,
 *     sd = sqrt((sum x^2 / n - m^2) / (n - 1)) (0 when n <= 10 or the variance is <= 0)
 *   PPL = exp(mean nll), its uncertainty PPL * sd(nll)
 *   ln(PPL_q / PPL_base) = mean nll_q - mean nll_base, uncertainty
 *     sqrt(sd_q^2 + sd_b^2 - 2 cov), cov = (sum nll_q nll_b / n - m_q m_b) / (n - 1)
 *   RMS dp = sqrt(mean dp^2), uncertainty sd(dp^2) / (2 RMS)
 *   same top p = n_same / n, uncertainty sqrt(p (1 - p) / (n - 1))
 *   percentiles of KLD: linear interpolation between sorted values at fraction * (n - 1)
 * Tested by tests/test_kld.c (identical distributions give 0; hand-computed cases). */
#ifndef LQ_KLD_H
#define LQ_KLD_H

#include <stdint.h>

#include "lq_common.h"

/* One token's numbers. */
typedef struct {
    double nll_base, nll_q, kld, dp;
    int32_t top_base, top_q;
} lq_kld_token;

/* logits_base, logits_q (V); target in [0, V). The scalar definition. */
void lq_kld_token_ref(const float *logits_base, const float *logits_q, int64_t V, int32_t target, lq_kld_token *out);

/* Running sums over tokens; keeps every token's KLD and dp for percentiles. */
typedef struct {
    int64_t count, n_same_top;
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_dp, sum_dp2, sum_dp4;
    float *kld_values, *dp_values;
    int64_t cap;
} lq_kld_acc;

void lq_kld_acc_init(lq_kld_acc *a);
void lq_kld_acc_free(lq_kld_acc *a);
lq_status lq_kld_acc_add(lq_kld_acc *a, const lq_kld_token *t);
/* T rows of logits (T, V) from each model, targets (T): computes and adds each
 * row (rows in parallel with OpenMP, added in order). Non-finite logits give
 * LQ_ERR_NUMERIC naming the row. */
lq_status lq_kld_acc_add_rows(lq_kld_acc *a, const float *logits_base, const float *logits_q, int64_t T, int64_t V,
                              const int32_t *targets);

typedef struct {
    int64_t count;
    double ppl_base, ppl_base_unc, ppl_q, ppl_q_unc;
    double ln_ppl_ratio, ln_ppl_ratio_unc, ppl_ratio, ppl_ratio_unc;
    double cor_ln_ppl;                 /* correlation of the per-token NLLs */
    double kld_mean, kld_mean_unc, kld_max, kld_min, kld_median;
    double kld_p99_9, kld_p99, kld_p95, kld_p90, kld_p10, kld_p5, kld_p1;
    double dp_mean, dp_mean_unc, dp_rms, dp_rms_unc, dp_max, dp_min, dp_median;
    double same_top, same_top_unc;     /* fractions (0..1) */
} lq_kld_summary;

/* Sorts the stored values (the accumulator stays usable). Needs count >= 1. */
lq_status lq_kld_summarize(lq_kld_acc *a, lq_kld_summary *s);

/* Linear-interpolation percentile of sorted values (fraction in [0, 1]). */
double lq_percentile_sorted(const float *sorted, int64_t n, double fraction);

#endif
