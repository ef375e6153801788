/* engine_cpu.c — the lq_engine over the CPU reference runtime (lq_forward). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_engine.h"

typedef struct {
    const lq_model *m;
    lq_runstate *rs;
} cpu_impl;

static lq_status cpu_logits(lq_engine *e, const int32_t *tokens, int B, int T, float *logits) {
    cpu_impl *c = e->impl;
    LQ_FORWARD(lq_forward(c->m, c->rs, tokens, B, T, 0, 0));
    memcpy(logits, c->rs->logits, sizeof(float) * (size_t)B * T * e->vocab_size);
    return LQ_OK;
}

static lq_status cpu_score(lq_engine *e, const int32_t *tokens, int B, int T, double *nll) {
    cpu_impl *c = e->impl;
    LQ_FORWARD(lq_forward(c->m, c->rs, tokens, B, T, 0, 0));
    for (int b = 0; b < B; b++)
        lq_nll_ref(nll + (size_t)b * (T - 1), c->rs->logits + (size_t)b * T * e->vocab_size,
                   tokens + (size_t)b * T + 1, T - 1, e->vocab_size);
    return LQ_OK;
}

static lq_status cpu_step(lq_engine *e, const int32_t *tokens, int B, int T, int pos, float *logits) {
    cpu_impl *c = e->impl;
    LQ_FORWARD(lq_forward(c->m, c->rs, tokens, B, T, pos, 1));
    for (int b = 0; b < B; b++)
        memcpy(logits + (size_t)b * e->vocab_size, c->rs->logits + ((size_t)b * T + T - 1) * e->vocab_size,
               sizeof(float) * e->vocab_size);
    return LQ_OK;
}

static void cpu_destroy(lq_engine *e) {
    cpu_impl *c = e->impl;
    if (c) lq_runstate_free(c->rs);
    free(c);
}

lq_status lq_engine_cpu_new(const lq_model *m, int max_B, int max_ctx, lq_engine **out) {
    *out = NULL;
    LQ_RETURN_IF(m->packed_only, LQ_ERR_ARG,
                 "the CPU engine needs fp32 weights, and this model was loaded packed-only for the GPU "
                 "(LQ_LOAD_PACKED_ONLY): load it without that flag");
    lq_engine *e = calloc(1, sizeof *e);
    cpu_impl *c = calloc(1, sizeof *c);
    if (!e || !c) {
        free(e);
        free(c);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    c->m = m;
    lq_status st = lq_runstate_new(m, max_B, max_ctx, max_ctx, &c->rs);
    if (st != LQ_OK) {
        free(e);
        free(c);
        return st;
    }
    e->device = "cpu";
    snprintf(e->desc, sizeof e->desc, "cpu fp32 (OpenBLAS)");
    e->vocab_size = m->cfg.vocab_size;
    e->max_B = max_B;
    e->max_ctx = max_ctx;
    e->impl = c;
    e->score = cpu_score;
    e->logits = cpu_logits;
    e->step = cpu_step;
    e->destroy = cpu_destroy;
    *out = e;
    return LQ_OK;
}

void lq_engine_free(lq_engine *e) {
    if (!e) return;
    if (e->destroy) e->destroy(e);
    free(e);
}
