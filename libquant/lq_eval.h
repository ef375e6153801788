/* lq_eval.h — evaluation protocols over a model: perplexity (the protocol of
 * ../shared/golden/stories260K/golden.json) and sampling for generation.
 *
 * Perplexity protocol: ids = tokenizer(text) (post-processor applied, so
 * Llama-2-style tokenizers prepend one BOS); windows = n_ids / n_ctx
 * non-overlapping windows of n_ctx tokens (the tail is dropped); each window
 * is evaluated from scratch; every token of a window except its first is
 * scored; ppl = exp(total NLL / scored). NLLs are summed in double.
 * Tested by tests/test_model.c. */
#ifndef LQ_EVAL_H
#define LQ_EVAL_H

#include "lq_engine.h"

typedef void (*lq_progress_fn)(void *ud, int done, int total, double nll_sum, int64_t scored, double seconds);

typedef struct {
    int n_ctx;
    int max_windows;   /* 0 = all */
    int batch;         /* windows per engine call; 0 = the engine's max_B */
    lq_progress_fn progress; /* may be NULL */
    void *progress_ud;
} lq_ppl_opts;

typedef struct {
    double ppl;
    double nll_sum;
    double nll_stderr;  /* standard error of the mean token NLL */
    int64_t scored;
    int windows;
    int64_t n_tokens;   /* tokens in the text */
    double seconds;
} lq_ppl_result;

/* Windows are scored through the engine (created with max_ctx >= n_ctx). */
lq_status lq_ppl_eval(lq_engine *e, const int32_t *ids, size_t n_ids, const lq_ppl_opts *o, lq_ppl_result *r);
/* Windows per call that keep a CPU engine's logits under ~256 MB (1..16). */
int lq_ppl_auto_batch(int n_ctx, int vocab_size, int n_windows);
/* Number of windows the protocol evaluates (after max_windows). */
int lq_ppl_n_windows(size_t n_ids, int n_ctx, int max_windows);

/* ---- sampling ---- */
typedef struct {
    float temperature; /* 0 = greedy (argmax; ties -> lowest id, like torch.argmax) */
    float top_p;       /* 1 = off */
    uint64_t rng;      /* xorshift64* state; seed with lq_sampler_seed */
} lq_sampler;
void lq_sampler_seed(lq_sampler *s, uint64_t seed);
/* logits (V) are not modified. Returns the chosen id. */
int32_t lq_sample(lq_sampler *s, const float *logits, int V);

#endif
