/* eval.c — the perplexity protocol and the sampler (see lq_eval.h). */
#include "lq_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lq_ppl_n_windows(size_t n_ids, int n_ctx, int max_windows) {
    if (n_ctx < 2) return 0;
    int w = (int)(n_ids / (size_t)n_ctx);
    if (max_windows > 0 && max_windows < w) w = max_windows;
    return w;
}

int lq_ppl_auto_batch(int n_ctx, int vocab_size, int n_windows) {
    double per = (double)n_ctx * vocab_size * 4.0;
    int B = (int)(256e6 / per);
    if (B < 1) B = 1;
    if (B > 16) B = 16;
    if (n_windows > 0 && B > n_windows) B = n_windows;
    return B;
}

lq_status lq_ppl_eval(lq_engine *e, const int32_t *ids, size_t n_ids, const lq_ppl_opts *o, lq_ppl_result *r) {
    lq_status st = LQ_OK;
    double *nll = NULL;
    memset(r, 0, sizeof *r);
    int n_ctx = o->n_ctx;
    LQ_RETURN_IF(n_ctx < 2, LQ_ERR_ARG, "perplexity: n_ctx must be at least 2 (got %d)", n_ctx);
    LQ_RETURN_IF(n_ctx > e->max_ctx, LQ_ERR_ARG, "perplexity: n_ctx %d exceeds the engine's context %d", n_ctx,
                 e->max_ctx);
    int windows = lq_ppl_n_windows(n_ids, n_ctx, o->max_windows);
    LQ_RETURN_IF(windows < 1, LQ_ERR_ARG, "perplexity: the text has %zu tokens, fewer than one window of %d",
                 n_ids, n_ctx);
    int B = o->batch > 0 ? o->batch : e->max_B;
    if (B > e->max_B) B = e->max_B;
    if (B > windows) B = windows;
    LQ_TRY(lq_malloc((void **)&nll, sizeof(double) * (size_t)B * n_ctx, "nll"));
    double t0 = lq_now(), sum = 0, sumsq = 0;
    int64_t scored = 0;
    for (int w0 = 0; w0 < windows; w0 += B) {
        int nb = windows - w0 < B ? windows - w0 : B;
        const int32_t *tok = ids + (size_t)w0 * n_ctx;
        LQ_TRY(e->score(e, tok, nb, n_ctx, nll));
        for (int i = 0; i < nb * (n_ctx - 1); i++) {
            LQ_FAIL_IF(!isfinite(nll[i]), LQ_ERR_NUMERIC,
                       "perplexity: non-finite NLL in window %d at position %d (NaN/Inf logits)",
                       w0 + i / (n_ctx - 1), i % (n_ctx - 1) + 1);
            sum += nll[i];
            sumsq += nll[i] * nll[i];
        }
        scored += (int64_t)nb * (n_ctx - 1);
        if (o->progress) o->progress(o->progress_ud, w0 + nb, windows, sum, scored, lq_now() - t0);
    }
    r->windows = windows;
    r->scored = scored;
    r->nll_sum = sum;
    r->ppl = exp(sum / (double)scored);
    double mean = sum / (double)scored, var = sumsq / (double)scored - mean * mean;
    r->nll_stderr = scored > 1 && var > 0 ? sqrt(var / (double)(scored - 1)) : 0;
    r->n_tokens = (int64_t)n_ids;
    r->seconds = lq_now() - t0;
fail:
    free(nll);
    return st;
}

void lq_sampler_seed(lq_sampler *s, uint64_t seed) {
    s->rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!s->rng) s->rng = 1;
}

static double next_uniform(lq_sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct {
    float p;
    int32_t id;
} prob_id;

static int cmp_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

int32_t lq_sample(lq_sampler *s, const float *logits, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0) return best;
    prob_id *pi = malloc(sizeof *pi * (size_t)V);
    if (!pi) return best; /* out of memory: fall back to greedy rather than fail a token */
    double mx = logits[best], sum = 0;
    for (int i = 0; i < V; i++) {
        pi[i].p = (float)exp(((double)logits[i] - mx) / s->temperature);
        pi[i].id = i;
        sum += pi[i].p;
    }
    int n = V;
    if (s->top_p > 0 && s->top_p < 1) {
        qsort(pi, (size_t)V, sizeof *pi, cmp_desc);
        double cum = 0;
        for (n = 0; n < V; n++) {
            cum += pi[n].p / sum;
            if (cum >= s->top_p) {
                n++;
                break;
            }
        }
        if (n > V) n = V;
        sum = 0;
        for (int i = 0; i < n; i++) sum += pi[i].p;
    }
    double u = next_uniform(s) * sum, c = 0;
    int32_t chosen = pi[n - 1].id;
    for (int i = 0; i < n; i++) {
        c += pi[i].p;
        if (u < c) {
            chosen = pi[i].id;
            break;
        }
    }
    free(pi);
    return chosen;
}
