/* lq_engine.h — one interface over "where the forward pass runs", so that
 * perplexity, generation, evaluation and benchmarks are written once.
 * The CPU engine (libquant/engine_cpu.c) wraps the reference runtime; the
 * CUDA engine (kernels/, lq_cuda_engine_new in kernels/lq_cuda.h) keeps
 * weights, KV cache and logits on the GPU and returns only what is asked for.
 * Tested by tests/test_model.c (CPU) and tests/test_model_gpu.c (CUDA). */
#ifndef LQ_ENGINE_H
#define LQ_ENGINE_H

#include "lq_model.h"

typedef struct lq_engine lq_engine;
struct lq_engine {
    const char *device;  /* "cpu" or "cuda" */
    char desc[192];      /* e.g. "cpu fp32 (OpenBLAS)" or "NVIDIA H100 80GB HBM3, fp16 weights" */
    int vocab_size;
    int max_B, max_ctx;  /* capacity chosen at creation */
    void *impl;
    /* Score B sequences of T tokens from position 0 (each from scratch):
     * nll (B, T-1), nll[b*(T-1) + t] = -log p(tok[b, t+1] | tok[b, 0..t]). */
    lq_status (*score)(lq_engine *e, const int32_t *tokens, int B, int T, double *nll);
    /* Full logits of B sequences of T tokens from position 0: logits (B, T, V) on the host. */
    lq_status (*logits)(lq_engine *e, const int32_t *tokens, int B, int T, float *logits);
    /* Decode/prefill step: T new tokens per sequence at positions pos .. pos+T-1
     * (the cache holds 0 .. pos-1); writes the last position's logits (B, V). */
    lq_status (*step)(lq_engine *e, const int32_t *tokens, int B, int T, int pos, float *logits);
    void (*destroy)(lq_engine *e);
};

/* The engine borrows m: free the engine before the model. */
lq_status lq_engine_cpu_new(const lq_model *m, int max_B, int max_ctx, lq_engine **out);
void lq_engine_free(lq_engine *e); /* NULL is a no-op */

#endif
