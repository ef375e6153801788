/* engine_cuda.cu — the lq_engine on an NVIDIA GPU (kernels/lq_cuda.h): the
 * same function as the reference forward (lq_forward, libquant/model.c), with
 * weights, KV cache and activations resident on the device.
 *
 * Precision: weights, GEMM inputs and the KV cache are in the compute dtype
 * (F16 by default, BF16, or F32 for tight golden checks); cuBLAS accumulates in
 * fp32; the residual stream, q/k/v, norms, softmax and logits stay fp32; the
 * norm weights and biases stay fp32 (they are tiny); NLLs are computed in
 * double on the device. See kernels/lq_kernels.h. The compute dtype may
 * instead be F32 over F16/BF16 weights (opts.compute_dtype): the weights keep
 * their 16-bit storage and every product widens them to fp32 on the fly
 * (lq_matmul_w16_f32_cuda), so the only rounding left is the weights' own — for
 * reference logits and accuracy checks, at a fraction of the 16-bit speed.
 *
 * Memory plan (all allocated once by lq_cuda_engine_new):
 *   weights      one allocation, each tensor 256-byte aligned; q|k|v and
 *                gate|up stored fused, one GEMM each (the larger GEMV of a
 *                decode step runs closer to the memory bandwidth), converted
 *                from the model's fp32 on the GPU;
 *   KV cache     (L, max_B, max_ctx, kv_dim) for K and for V, zeroed;
 *   activations  for rows_cap = B x T rows per forward. Longer inputs are
 *                run in chunks of whole positions (chunked prefill: each
 *                chunk's K/V land in the cache before the next chunk attends
 *                to them), so a 2048-token score on a 128K vocabulary does not
 *                need a 1 GB logits buffer per sequence;
 *   host         pinned staging for token ids, positions and the last
 *                logits rows.
 *
 * Calls: score computes NLLs on the device and copies back only (B, T-1)
 * doubles; logits copies (B, T, V) floats; step returns the last position's
 * (B, V) logits. A decode step (T = 1) replays a CUDA graph captured once per
 * batch size: tokens and positions are copied into fixed device buffers, the
 * kernels read positions from there (the decode attention derives its context
 * splits from them), and the only host synchronisation is the logits copy.
 *
 * A packed head (lq quantize --lm-head, lq_model.qhead) runs on the same
 * W4A16 kernels as the layers' linears when they would take it (4-bit, fp16
 * compute): logits = xn · Ŵ_head^T, (rows, V) fp32 as the cuBLAS GEMM wrote
 * them; otherwise the dequantized head is uploaded like any weight.
 *
 * Tested by tests/test_model_gpu.c (stories260K against the float64 golden
 * outputs; decode vs prefill; batch vs single; the W4A16 engine with and
 * without a packed head) — make test-gpu. */
#include "cuda_common.cuh"

extern "C" {
#include "lq_cuda.h"
#include "lq_kernels.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One layer on the device. q/k/v and gate/up are stored fused, so that one
 * GEMM reads each group (at batch 1 a larger GEMV runs closer to the memory
 * bandwidth than three or two small ones). */
typedef struct {
    const float *attn_norm, *ffn_norm; /* (D) fp32 */
    const float *bqkv;                 /* (qd + 2 kvd) fp32, or NULL */
    const void *wqkv;                  /* (qd + 2 kvd, D): rows of wq, then wk, then wv */
    const void *wo;                    /* (D, qd) */
    const void *wgu;                   /* (2 H, D): rows of w_gate, then w_up */
    const void *wd;                    /* (D, H) */
    /* 4-bit packed forms (kernels/w4a16_cuda.cu) of the same groups, or NULL:
     * when set, the fp weight above is NULL and the fused W4A16 kernel runs */
    const lq_w4a16_weight *q_qkv, *q_o, *q_gu, *q_d;
} dev_layer;

typedef struct {
    lq_config cfg;
    lq_dtype wdt; /* weight storage dtype (embedding, linears, an unpacked head) */
    lq_dtype adt; /* compute dtype: GEMM inputs and KV cache; == wdt, or F32 over 16-bit weights */
    float *wscratch;       /* adt != wdt: fp32 rows of one weight at a time (lq_matmul_w16_f32_cuda) */
    size_t wscratch_elems;
    int device, use_graph, max_B, max_ctx, rows_cap;
    lq_cuda_ctx *ctx;
    void *stream, *blas;
    /* weights (one allocation) */
    char *wmem;
    /* W4A16 linears: (n_layers * 4) weights in one device allocation, the
     * kernels' workspace; n_w4 groups run packed */
    lq_w4a16_weight *w4;
    char *w4mem;
    void *w4ws;
    size_t w4ws_bytes;
    int n_w4, n_groups_total;
    dev_layer *layers;         /* host array (n_layers) of device pointers */
    const void *embed;         /* (V, D) */
    const void *lm_head;       /* (V, D); == embed when tied; NULL when q_head runs */
    /* the packed head (lq quantize --lm-head) in the W4A16 kernels' layout, in w4mem,
       or NULL: the logits then come from the fused kernel instead of the fp GEMM */
    const lq_w4a16_weight *q_head;
    lq_w4a16_weight w4head;
    const float *final_norm;   /* (D) */
    /* KV cache */
    char *kvmem, *k_cache, *v_cache; /* each (L, max_B, max_ctx, kvd) */
    size_t layer_bytes;              /* bytes of one layer's K (or V) cache */
    int64_t seq_stride;              /* elements between sequences: max_ctx * kvd */
    /* activations (one allocation); rows = rows_cap */
    char *amem;
    float *x, *delta;          /* (rows, D) residual stream, GEMM output to add into it */
    float *qkv;                /* (rows, qd + 2 kvd): q | k | v of each row */
    float *gu;                 /* (rows, 2 H): gate | up of each row */
    float *logits;             /* (rows, V) */
    float *rope_cos, *rope_sin;/* (max_ctx, hd/2) */
    void *xn, *att, *hact;     /* (rows, D) (rows, qd) (rows, H), compute dtype */
    void *attn_ws;             /* decode split workspace */
    double *nll;               /* (max_B, max_ctx) */
    int32_t *tok, *pos, *tgt;  /* (max_B * max_ctx) */
    /* pinned host staging */
    int32_t *h_tok, *h_pos, *h_tgt; /* (max_B * max_ctx) */
    float *h_logits;                /* (max_B, V) */
    cudaGraphExec_t *graphs;        /* (max_B + 1), by batch size */
} cuda_impl;

/* ---------------- device info ---------------- */

extern "C" int lq_cuda_device_count(void) {
    int n = 0;
    /* no driver / no GPU / driver too old: an error code, never a crash */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" lq_status lq_cuda_device_describe(int dev, char *buf, size_t n) {
    if (n) buf[0] = 0;
    int count = lq_cuda_device_count();
    LQ_RETURN_IF(dev < 0 || dev >= count, LQ_ERR_ARG, "CUDA device %d does not exist (%d device%s found)", dev, count,
                 count == 1 ? "" : "s");
    cudaDeviceProp p;
    LQ_CUDA_RET(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
    int clk = 0, mclk = 0, drv = 0, rt = 0;
    if (cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, dev) != cudaSuccess) clk = 0;
    if (cudaDeviceGetAttribute(&mclk, cudaDevAttrMemoryClockRate, dev) != cudaSuccess) mclk = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess) rt = 0;
    (void)cudaGetLastError();
    snprintf(buf, n, "%s, %.1f GiB, %d SMs, sm_%d%d, %d MHz SM / %d MHz memory (max), %d MB L2, driver %d.%d, runtime %d.%d",
             p.name, p.totalGlobalMem / 1073741824.0, p.multiProcessorCount, p.major, p.minor, clk / 1000, mclk / 1000,
             p.l2CacheSize >> 20, drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    return LQ_OK;
}

extern "C" lq_cuda_engine_opts lq_cuda_engine_opts_default(void) {
    lq_cuda_engine_opts o;
    o.weight_dtype = LQ_F16;
    o.compute_dtype = -1;
    o.device = 0;
    o.use_graph = 1;
    return o;
}

/* ---------------- forward ---------------- */

/* y = x W^T (+ b): the fused W4A16 kernel when the group is packed, cuBLAS / lq's GEMV otherwise. */
static lq_status linear(cuda_impl *c, float *y, const void *x, const void *w, const lq_w4a16_weight *q, const float *b,
                        int64_t m, int64_t n, int64_t k, int64_t ldx) {
    if (q)
        return lq_w4a16_matmul_cuda(c->blas, y, x, ldx, q, b, m, 0, lq_cuda_ctx_sm_count(c->ctx), c->w4ws,
                                    c->w4ws_bytes, c->stream);
    if (c->adt != c->wdt)
        return lq_matmul_w16_f32_cuda(c->blas, y, (const float *)x, w, c->wdt, b, m, n, k, ldx, c->wscratch,
                                      c->wscratch_elems, c->stream);
    return lq_matmul_cuda(c->blas, y, x, w, c->wdt, b, m, n, k, ldx, c->stream);
}

/* Enqueue one forward over B sequences of T positions at pos0 .. pos0+T-1
 * (tokens d_tok (B, T), positions d_pos (B, T) on the device).
 * decode: T == 1, split-context attention reading positions from d_pos.
 * logits_mode: 0 none (an intermediate prefill chunk), 1 the last position of
 * each sequence (B rows), 2 every row (B*T rows). */
static lq_status enqueue_forward(cuda_impl *c, int B, int T, int pos0, const int32_t *d_tok, const int32_t *d_pos,
                                 int decode, int logits_mode) {
    const lq_config *cf = &c->cfg;
    const int64_t n = (int64_t)B * T;
    const int D = cf->dim, hd = cf->head_dim, nh = cf->n_heads, nkv = cf->n_kv_heads, H = cf->hidden_dim;
    const int qd = nh * hd, kvd = nkv * hd, V = cf->vocab_size, ldqkv = qd + 2 * kvd;
    const lq_dtype dt = c->adt;
    void *s = c->stream, *blas = c->blas;
    float *q = c->qkv;
    LQ_FORWARD(lq_embedding_cuda(c->x, c->embed, c->wdt, d_tok, n, D, s));
    for (int l = 0; l < cf->n_layers; l++) {
        const dev_layer *lw = &c->layers[l];
        char *kc = c->k_cache + (size_t)l * c->layer_bytes, *vc = c->v_cache + (size_t)l * c->layer_bytes;
        /* x += previous layer's MLP output (fused), xn = norm(x) */
        LQ_FORWARD(lq_rmsnorm_cuda(c->xn, dt, c->x, l ? c->delta : NULL, lw->attn_norm, n, D, cf->rms_eps, s));
        LQ_FORWARD(linear(c, c->qkv, c->xn, lw->wqkv, lw->q_qkv, lw->bqkv, n, ldqkv, D, 0));
        /* one launch: q rotated in place, k rotated into the cache, v copied into it */
        LQ_FORWARD(lq_rope_kv_store_cuda(c->qkv, ldqkv, d_pos, B, T, nh, nkv, hd, c->rope_cos, c->rope_sin, kc, vc, dt,
                                         c->seq_stride, s));
        if (decode) {
            int ns = lq_attention_decode_splits(B, nh, nkv, c->max_ctx, lq_cuda_ctx_sm_count(c->ctx));
            LQ_FORWARD(lq_attention_decode_cuda(c->att, q, ldqkv, kc, vc, dt, c->seq_stride, B, d_pos, nh, nkv, hd,
                                                cf->sliding_window, ns, c->attn_ws, s));
        } else {
            LQ_FORWARD(lq_attention_cuda(c->att, q, ldqkv, kc, vc, dt, c->seq_stride, B, T, pos0, nh, nkv, hd,
                                         cf->sliding_window, s));
        }
        LQ_FORWARD(linear(c, c->delta, c->att, lw->wo, lw->q_o, NULL, n, D, qd, 0));
        LQ_FORWARD(lq_rmsnorm_cuda(c->xn, dt, c->x, c->delta, lw->ffn_norm, n, D, cf->rms_eps, s));
        if (lw->q_gu && lw->q_gu->il) { /* the W4A16 pair: the SwiGLU in the product's epilogue where it can be */
            LQ_FORWARD(lq_w4a16_swiglu_cuda(blas, c->hact, dt, c->gu, c->xn, lw->q_gu, n, lq_cuda_ctx_sm_count(c->ctx),
                                            c->w4ws, c->w4ws_bytes, s));
        } else {
            LQ_FORWARD(linear(c, c->gu, c->xn, lw->wgu, lw->q_gu, NULL, n, 2 * H, D, 0));
            LQ_FORWARD(lq_swiglu_cuda(c->hact, dt, c->gu, c->gu + H, n, H, 2 * H, s));
        }
        LQ_FORWARD(linear(c, c->delta, c->hact, lw->wd, lw->q_d, NULL, n, D, H, 0));
    }
    if (logits_mode == 0) return LQ_OK;
    LQ_FORWARD(lq_rmsnorm_cuda(c->xn, dt, c->x, c->delta, c->final_norm, n, D, cf->rms_eps, s));
    /* logits (rows, V) fp32 either way: the fused W4A16 kernel when the head is packed, the fp GEMM otherwise */
    if (logits_mode == 1) {
        /* rows b*T + T-1 of xn: start at row T-1, T*D elements apart */
        const char *last = (const char *)c->xn + (size_t)(T - 1) * D * lq_dtype_size(dt);
        LQ_FORWARD(linear(c, c->logits, last, c->lm_head, c->q_head, NULL, B, V, D, (int64_t)T * D));
    } else {
        LQ_FORWARD(linear(c, c->logits, c->xn, c->lm_head, c->q_head, NULL, n, V, D, 0));
    }
    return LQ_OK;
}

/* ---------------- engine calls ---------------- */

static lq_status check_call(lq_engine *e, const char *what, const int32_t *tokens, int B, int T, int pos) {
    cuda_impl *c = (cuda_impl *)e->impl;
    LQ_RETURN_IF(B < 1 || B > c->max_B || T < 1, LQ_ERR_ARG, "cuda %s: B=%d T=%d (the engine holds B <= %d)", what, B,
                 T, c->max_B);
    LQ_RETURN_IF(pos < 0 || (int64_t)pos + T > c->max_ctx, LQ_ERR_ARG,
                 "cuda %s: positions %d..%lld exceed the context of %d", what, pos, (long long)pos + T - 1, c->max_ctx);
    int64_t n = (int64_t)B * T;
    for (int64_t i = 0; i < n; i++)
        LQ_RETURN_IF(tokens[i] < 0 || tokens[i] >= c->cfg.vocab_size, LQ_ERR_ARG,
                     "cuda %s: token id %d at index %lld is outside the vocabulary (%d)", what, tokens[i], (long long)i,
                     c->cfg.vocab_size);
    LQ_CUDA_RET(cudaSetDevice(c->device), "cudaSetDevice");
    return LQ_OK;
}

/* Positions per forward call: whole positions of all B sequences, at most rows_cap rows. */
static int chunk_len(const cuda_impl *c, int B, int T) {
    int tc = c->rows_cap / B;
    if (tc < 1) tc = 1;
    return tc < T ? tc : T;
}

/* Stage chunk [c0, c0+tc) of tokens (B, T) at pos0 into the pinned buffers at
 * offset B*c0 (chunks never overlap, so no copy waits for another) and copy it
 * to the same offset on the device. With want_tgt, targets are the next tokens
 * (-1 past the end of a sequence). */
static lq_status stage_chunk(cuda_impl *c, const int32_t *tokens, int B, int T, int c0, int tc, int pos0, int want_tgt) {
    size_t off = (size_t)B * c0, cnt = (size_t)B * tc;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < tc; i++) {
            size_t j = off + (size_t)b * tc + i;
            c->h_tok[j] = tokens[(size_t)b * T + c0 + i];
            c->h_pos[j] = pos0 + c0 + i;
            if (want_tgt) c->h_tgt[j] = c0 + i + 1 < T ? tokens[(size_t)b * T + c0 + i + 1] : -1;
        }
    cudaStream_t s = lq_stream(c->stream);
    LQ_CUDA_RET(cudaMemcpyAsync(c->tok + off, c->h_tok + off, cnt * 4, cudaMemcpyHostToDevice, s), "upload tokens");
    LQ_CUDA_RET(cudaMemcpyAsync(c->pos + off, c->h_pos + off, cnt * 4, cudaMemcpyHostToDevice, s), "upload positions");
    if (want_tgt)
        LQ_CUDA_RET(cudaMemcpyAsync(c->tgt + off, c->h_tgt + off, cnt * 4, cudaMemcpyHostToDevice, s), "upload targets");
    return LQ_OK;
}

static lq_status cuda_score(lq_engine *e, const int32_t *tokens, int B, int T, double *nll) {
    cuda_impl *c = (cuda_impl *)e->impl;
    LQ_FORWARD(check_call(e, "score", tokens, B, T, 0));
    if (T < 2) return LQ_OK;
    const int V = c->cfg.vocab_size, tc0 = chunk_len(c, B, T);
    for (int c0 = 0; c0 < T - 1; c0 += tc0) { /* the last position predicts nothing */
        int tc = T - c0 < tc0 ? T - c0 : tc0;
        LQ_FORWARD(stage_chunk(c, tokens, B, T, c0, tc, 0, 1));
        size_t off = (size_t)B * c0;
        LQ_FORWARD(enqueue_forward(c, B, tc, c0, c->tok + off, c->pos + off, 0, 2));
        int rows = T - 1 - c0 < tc ? T - 1 - c0 : tc; /* rows with a target */
        for (int b = 0; b < B; b++)
            LQ_FORWARD(lq_nll_cuda(c->nll + (size_t)b * (T - 1) + c0, c->logits + (size_t)b * tc * V,
                                   c->tgt + off + (size_t)b * tc, rows, V, c->stream));
    }
    LQ_CUDA_RET(cudaMemcpyAsync(nll, c->nll, sizeof(double) * (size_t)B * (T - 1), cudaMemcpyDeviceToHost,
                                lq_stream(c->stream)),
                "copy NLLs to the host");
    return lq_cuda_sync(c->stream);
}

/* Full logits (B, T, V) into dst: host memory (kind D2H) or this GPU's memory (D2D). */
static lq_status logits_to(lq_engine *e, const int32_t *tokens, int B, int T, float *dst, cudaMemcpyKind kind) {
    cuda_impl *c = (cuda_impl *)e->impl;
    LQ_FORWARD(check_call(e, "logits", tokens, B, T, 0));
    const size_t V = (size_t)c->cfg.vocab_size;
    const int tc0 = chunk_len(c, B, T);
    for (int c0 = 0; c0 < T; c0 += tc0) {
        int tc = T - c0 < tc0 ? T - c0 : tc0;
        LQ_FORWARD(stage_chunk(c, tokens, B, T, c0, tc, 0, 0));
        size_t off = (size_t)B * c0;
        LQ_FORWARD(enqueue_forward(c, B, tc, c0, c->tok + off, c->pos + off, 0, 2));
        /* (B, tc, V) on the device -> rows c0.. of each sequence in (B, T, V) */
        LQ_CUDA_RET(cudaMemcpy2DAsync(dst + (size_t)c0 * V, sizeof(float) * T * V, c->logits, sizeof(float) * tc * V,
                                      sizeof(float) * tc * V, (size_t)B, kind, lq_stream(c->stream)),
                    kind == cudaMemcpyDeviceToHost ? "copy logits to the host" : "copy logits (device)");
    }
    return lq_cuda_sync(c->stream);
}

static lq_status cuda_logits(lq_engine *e, const int32_t *tokens, int B, int T, float *logits) {
    return logits_to(e, tokens, B, T, logits, cudaMemcpyDeviceToHost);
}

extern "C" lq_status lq_cuda_engines_kld(lq_engine *eb, lq_engine *eq, const int32_t *tokens, int B, int T, int first,
                                         lq_kld_token *out) {
    LQ_RETURN_IF(!eb || !eq || strcmp(eb->device, "cuda") || strcmp(eq->device, "cuda"), LQ_ERR_ARG,
                 "GPU KLD statistics need two CUDA engines");
    cuda_impl *cb = (cuda_impl *)eb->impl, *cq = (cuda_impl *)eq->impl;
    LQ_RETURN_IF(cb->device != cq->device, LQ_ERR_ARG, "GPU KLD statistics: the engines are on GPUs %d and %d",
                 cb->device, cq->device);
    LQ_RETURN_IF(cb->cfg.vocab_size != cq->cfg.vocab_size, LQ_ERR_SHAPE, "GPU KLD statistics: vocabularies %d and %d",
                 cb->cfg.vocab_size, cq->cfg.vocab_size);
    LQ_RETURN_IF(T < 2 || first < 0 || first > T - 2, LQ_ERR_ARG, "GPU KLD statistics: T=%d, first=%d", T, first);
    const int64_t V = cb->cfg.vocab_size, R = T - 1 - first; /* scored rows per window */
    lq_status st = LQ_OK;
    float *lb = NULL, *lqd = NULL;
    int32_t *tg = NULL, *tg_h = NULL;
    lq_kld_token *kd = NULL;
    LQ_TRY(lq_cuda_malloc((void **)&lb, sizeof(float) * (size_t)B * T * V, "base logits (KLD)"));
    LQ_TRY(lq_cuda_malloc((void **)&lqd, sizeof(float) * (size_t)B * T * V, "quant logits (KLD)"));
    LQ_TRY(lq_cuda_malloc((void **)&tg, sizeof(int32_t) * (size_t)B * R, "targets (KLD)"));
    LQ_TRY(lq_cuda_malloc((void **)&kd, sizeof(lq_kld_token) * (size_t)B * R, "statistics (KLD)"));
    LQ_TRY(lq_malloc((void **)&tg_h, sizeof(int32_t) * (size_t)B * R, "targets (KLD)"));
    for (int b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++) tg_h[b * R + r] = tokens[(size_t)b * T + first + r + 1];
    LQ_TRY(lq_cuda_upload(tg, tg_h, sizeof(int32_t) * (size_t)B * R));
    LQ_TRY(logits_to(eb, tokens, B, T, lb, cudaMemcpyDeviceToDevice));
    LQ_TRY(logits_to(eq, tokens, B, T, lqd, cudaMemcpyDeviceToDevice));
    for (int b = 0; b < B; b++)
        LQ_TRY(lq_kld_token_cuda(kd + b * R, lb + ((size_t)b * T + first) * V, lqd + ((size_t)b * T + first) * V,
                                 tg + b * R, R, V, NULL));
    LQ_TRY(lq_cuda_download(out, kd, sizeof(lq_kld_token) * (size_t)B * R));
fail:
    lq_cuda_free(lb);
    lq_cuda_free(lqd);
    lq_cuda_free(tg);
    lq_cuda_free(kd);
    free(tg_h);
    return st;
}

/* Capture the decode forward for batch size B into a graph. */
static lq_status capture_decode(cuda_impl *c, int B) {
    cudaStream_t s = lq_stream(c->stream);
    cudaGraph_t g = NULL;
    LQ_CUDA_RET(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    lq_status st = enqueue_forward(c, B, 1, 0, c->tok, c->pos, 1, 1);
    cudaError_t ce = cudaStreamEndCapture(s, &g);
    if (st != LQ_OK) {
        if (g) cudaGraphDestroy(g);
        return lq_error_prefix(st, "capturing the decode graph (B=%d)", B);
    }
    LQ_CUDA_RET(ce, "cudaStreamEndCapture (decode graph)");
    ce = cudaGraphInstantiate(&c->graphs[B], g, 0);
    cudaGraphDestroy(g);
    if (ce != cudaSuccess) {
        c->graphs[B] = NULL;
        LQ_CUDA_RET(ce, "cudaGraphInstantiate (decode graph)");
    }
    return LQ_OK;
}

static lq_status cuda_step(lq_engine *e, const int32_t *tokens, int B, int T, int pos, float *logits) {
    cuda_impl *c = (cuda_impl *)e->impl;
    LQ_FORWARD(check_call(e, "step", tokens, B, T, pos));
    const size_t V = (size_t)c->cfg.vocab_size;
    cudaStream_t s = lq_stream(c->stream);
    if (T == 1) {
        LQ_FORWARD(stage_chunk(c, tokens, B, 1, 0, 1, pos, 0));
        if (c->use_graph && c->graphs[B]) {
            LQ_CUDA_RET(cudaGraphLaunch(c->graphs[B], s), "cudaGraphLaunch (decode)");
        } else if (c->use_graph) {
            /* First decode at this batch size: run it eagerly (this loads every
             * kernel and lets cuBLAS initialize outside the capture), then
             * capture the same work for the next steps (capturing runs nothing). */
            LQ_FORWARD(enqueue_forward(c, B, 1, pos, c->tok, c->pos, 1, 1));
            LQ_FORWARD(lq_cuda_sync(c->stream));
            LQ_FORWARD(capture_decode(c, B));
        } else {
            LQ_FORWARD(enqueue_forward(c, B, 1, pos, c->tok, c->pos, 1, 1));
        }
    } else {
        const int tc0 = chunk_len(c, B, T);
        for (int c0 = 0; c0 < T; c0 += tc0) {
            int tc = T - c0 < tc0 ? T - c0 : tc0;
            LQ_FORWARD(stage_chunk(c, tokens, B, T, c0, tc, pos, 0));
            size_t off = (size_t)B * c0;
            LQ_FORWARD(enqueue_forward(c, B, tc, pos + c0, c->tok + off, c->pos + off, 0, c0 + tc == T ? 1 : 0));
        }
    }
    LQ_CUDA_RET(cudaMemcpyAsync(c->h_logits, c->logits, sizeof(float) * B * V, cudaMemcpyDeviceToHost, s),
                "copy logits to the host");
    LQ_FORWARD(lq_cuda_sync(c->stream));
    memcpy(logits, c->h_logits, sizeof(float) * B * V);
    return LQ_OK;
}

static void cuda_destroy(lq_engine *e) {
    cuda_impl *c = (cuda_impl *)e->impl;
    if (!c) return;
    if (c->ctx) (void)cudaSetDevice(c->device);
    if (c->graphs) {
        for (int b = 0; b <= c->max_B; b++)
            if (c->graphs[b]) cudaGraphExecDestroy(c->graphs[b]);
        free(c->graphs);
    }
    lq_cuda_free(c->wmem);
    lq_cuda_free(c->wscratch);
    lq_cuda_free(c->w4mem);
    lq_cuda_free(c->w4ws);
    free(c->w4);
    lq_cuda_free(c->kvmem);
    lq_cuda_free(c->amem);
    if (c->h_tok) cudaFreeHost(c->h_tok);
    if (c->h_pos) cudaFreeHost(c->h_pos);
    if (c->h_tgt) cudaFreeHost(c->h_tgt);
    if (c->h_logits) cudaFreeHost(c->h_logits);
    free(c->layers);
    lq_cuda_ctx_free(c->ctx);
    free(c);
    e->impl = NULL;
}

/* ---------------- creation ---------------- */

/* A region of one allocation: bytes rounded up to 256 (cuBLAS and the 16-byte
 * vector loads want aligned starts). Overflow-checked. */
static int plan_add(size_t *total, size_t elems, size_t elem_bytes, size_t *offset) {
    size_t b;
    if (lq_mul_overflow(elems, elem_bytes, &b) || lq_add_overflow(b, 255, &b)) return 1;
    b &= ~(size_t)255;
    *offset = *total;
    return lq_add_overflow(*total, b, total);
}

typedef struct {
    const float *src[3]; /* host fp32 pieces, stored one after the other (fused q|k|v, gate|up) */
    const lq_qweight *q[3]; /* a piece without fp32 values (packed-only model): dequantized at upload */
    size_t n[3];
    lq_dtype dt;
    size_t off;
    const void **dst; /* where the device pointer goes */
} wtensor;

template <typename TO> __global__ void convert_f32_kernel(TO *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = lq_st<TO>(src[i]); /* round-to-nearest-even, as lq_f32_to_f16/bf16 */
}

/* Copy fp32 host weights through a bounded device staging buffer and convert
 * them to dt on the GPU: an 8B model's conversion costs nothing next to the
 * PCIe copy (a single host thread would take tens of seconds). */
static lq_status upload_converted(char *dst, const float *src, size_t n, lq_dtype dt, float *stage, size_t stage_elems) {
    size_t es = lq_dtype_size(dt);
    for (size_t i = 0; i < n; i += stage_elems) {
        size_t m = n - i < stage_elems ? n - i : stage_elems;
        if (dt == LQ_F32) {
            LQ_CUDA_RET(cudaMemcpy(dst + i * es, src + i, m * es, cudaMemcpyHostToDevice), "upload weights");
            continue;
        }
        LQ_CUDA_RET(cudaMemcpy(stage, src + i, m * sizeof(float), cudaMemcpyHostToDevice), "upload weights");
        LQ_DISPATCH(dt, "convert weights",
                    convert_f32_kernel<TE><<<lq_blocks((int64_t)m, 256), 256>>>((TE *)(dst + i * es), stage, m));
        LQ_LAUNCH_RET("convert_f32_kernel");
    }
    return LQ_OK;
}

static lq_status upload_weights(cuda_impl *c, const lq_model *m) {
    const lq_config *cf = &m->cfg;
    const lq_weights *w = &m->w;
    const int L = cf->n_layers;
    const size_t D = cf->dim, H = cf->hidden_dim, qd = (size_t)cf->n_heads * cf->head_dim,
                 kvd = (size_t)cf->n_kv_heads * cf->head_dim, V = cf->vocab_size;
    const lq_dtype dt = c->wdt;
    lq_status st = LQ_OK;
    float *stage = NULL; /* device */
    const size_t stage_elems = (size_t)1 << 24;
    int cap = 3 + 7 * L, nt = 0;
    size_t total = 0;
    wtensor *ts = (wtensor *)calloc((size_t)cap, sizeof *ts);
    const lq_qweight *qparts[4][3];
    const int nparts[4] = {3, 1, 2, 1};
    size_t w4_total = 0, head_off = 0; /* head_off: the packed head's place in w4mem */
    int head4 = 0;                       /* the packed head runs on the W4A16 kernels */
    lq_w4a16_shape head_sh;
    int *use4 = NULL;
    size_t *off4 = NULL;
    LQ_RETURN_IF(!ts, LQ_ERR_NOMEM, "out of memory (weight table)");
    c->layers = (dev_layer *)calloc((size_t)L, sizeof *c->layers);
    LQ_FAIL_IF(!c->layers, LQ_ERR_NOMEM, "out of memory (layers)");
#define ADD3(p0, n0, p1, n1, p2, n2, ty, slot)                                                                        \
    do {                                                                                                               \
        ts[nt].src[0] = (p0);                                                                                          \
        ts[nt].n[0] = (n0);                                                                                            \
        ts[nt].src[1] = (p1);                                                                                          \
        ts[nt].n[1] = (n1);                                                                                            \
        ts[nt].src[2] = (p2);                                                                                          \
        ts[nt].n[2] = (n2);                                                                                            \
        ts[nt].dt = (ty);                                                                                              \
        ts[nt].dst = (const void **)(slot);                                                                            \
        nt++;                                                                                                          \
    } while (0)
#define ADD(p, cnt, ty, slot) ADD3(p, cnt, NULL, 0, NULL, 0, ty, slot)
    ADD(w->embed, V * D, dt, &c->embed);
    ADD(w->final_norm, D, LQ_F32, &c->final_norm);
    /* the packed head runs on the fused kernels under the same conditions as a linear group (4-bit,
       layout-compatible, fp16 compute); otherwise it is uploaded in dt like any weight (dequantized at
       upload for a packed-only model, whose w->lm_head is NULL) */
    head4 = m->qhead && c->adt == LQ_F16 && lq_w4a16_supported(m->qhead, "lm_head.weight") == LQ_OK;
    if (head4 && lq_w4a16_shape_of(&m->qhead, 1, &head_sh) != LQ_OK) head4 = 0;
    lq_clear_error();
    if (head4) {
        head_off = w4_total;
        w4_total += (lq_w4a16_device_bytes(&head_sh) + 255) & ~(size_t)255;
    } else if (w->lm_head != w->embed) {
        ADD(w->lm_head, V * D, dt, &c->lm_head);
        ts[nt - 1].q[0] = m->qhead;
    }
    /* which groups run packed: all parts quantized, 4-bit layout-compatible, fp16 compute */
    c->n_groups_total = 4 * L;
    if (m->qw && c->adt == LQ_F16) {
        LQ_FAIL_IF(lq_calloc((void **)&c->w4, (size_t)L * 4, sizeof *c->w4, "w4a16 weights") != LQ_OK, LQ_ERR_NOMEM,
                   "out of memory (w4a16 table)");
    }
    use4 = (int *)calloc((size_t)L * 4 + 1, sizeof(int));
    off4 = (size_t *)calloc((size_t)L * 4 + 1, sizeof(size_t));
    LQ_FAIL_IF(!use4 || !off4, LQ_ERR_NOMEM, "out of memory (w4a16 plan)");
    for (int l = 0; l < L && c->w4; l++) {
        const lq_qweight *const *q = m->qw + (size_t)l * LQ_N_LINEARS;
        const lq_qweight *grp[4][3] = {{q[0], q[1], q[2]}, {q[3], NULL, NULL}, {q[4], q[5], NULL}, {q[6], NULL, NULL}};
        for (int g = 0; g < 4; g++) {
            int ok = 1;
            for (int i = 0; i < nparts[g]; i++) {
                qparts[g][i] = grp[g][i];
                ok = ok && grp[g][i] && lq_w4a16_supported(grp[g][i], "w4a16") == LQ_OK;
            }
            lq_w4a16_shape sh;
            if (ok && lq_w4a16_shape_of(qparts[g], nparts[g], &sh) != LQ_OK) ok = 0;
            lq_clear_error();
            if (!ok) continue;
            use4[l * 4 + g] = 1;
            off4[l * 4 + g] = w4_total;
            w4_total += (lq_w4a16_device_bytes(&sh) + 255) & ~(size_t)255;
        }
    }
    for (int l = 0; l < L; l++) {
        const lq_layer_weights *lw = &w->layers[l];
        dev_layer *dl = &c->layers[l];
        ADD(lw->attn_norm, D, LQ_F32, &dl->attn_norm);
        ADD(lw->ffn_norm, D, LQ_F32, &dl->ffn_norm);
        /* linears not run packed; a packed-only model's pieces are dequantized on upload (lq_dequant_cpu,
           as a full load would have) */
        const lq_qweight *const *lq = m->qw ? m->qw + (size_t)l * LQ_N_LINEARS : NULL;
#define QW(j) (lq ? lq[j] : NULL)
        if (!use4[l * 4 + 0]) {
            ADD3(lw->wq, qd * D, lw->wk, kvd * D, lw->wv, kvd * D, dt, &dl->wqkv);
            ts[nt - 1].q[0] = QW(0), ts[nt - 1].q[1] = QW(1), ts[nt - 1].q[2] = QW(2);
        }
        if (!use4[l * 4 + 1]) {
            ADD(lw->wo, D * qd, dt, &dl->wo);
            ts[nt - 1].q[0] = QW(3);
        }
        if (!use4[l * 4 + 2]) {
            ADD3(lw->w_gate, H * D, lw->w_up, H * D, NULL, 0, dt, &dl->wgu);
            ts[nt - 1].q[0] = QW(4), ts[nt - 1].q[1] = QW(5);
        }
        if (!use4[l * 4 + 3]) {
            ADD(lw->w_down, D * H, dt, &dl->wd);
            ts[nt - 1].q[0] = QW(6);
        }
#undef QW
        if (lw->bq) ADD3(lw->bq, qd, lw->bk, kvd, lw->bv, kvd, LQ_F32, &dl->bqkv);
    }
#undef ADD
#undef ADD3
    for (int i = 0; i < nt; i++)
        LQ_FAIL_IF(plan_add(&total, ts[i].n[0] + ts[i].n[1] + ts[i].n[2], lq_dtype_size(ts[i].dt), &ts[i].off),
                   LQ_ERR_ARG, "weight sizes overflow");
    LQ_TRY(lq_cuda_malloc((void **)&c->wmem, total, "weights"));
    LQ_TRY(lq_cuda_malloc((void **)&stage, stage_elems * sizeof(float), "weight conversion staging"));
    for (int i = 0; i < nt; i++) {
        size_t done = 0;
        for (int j = 0; j < 3 && ts[i].n[j]; j++) {
            const float *src = ts[i].src[j];
            float *tmp = NULL;
            if (!src) { /* packed-only model: one linear's fp32 values at a time */
                LQ_FAIL_IF(!ts[i].q[j], LQ_ERR_ARG, "upload weights: a linear has neither fp32 nor packed values");
                LQ_TRY(lq_malloc((void **)&tmp, ts[i].n[j] * sizeof(float), "dequantized linear (upload)"));
                lq_dequant_cpu(ts[i].q[j], tmp);
                src = tmp;
            }
            st = upload_converted(c->wmem + ts[i].off + done * lq_dtype_size(ts[i].dt), src, ts[i].n[j], ts[i].dt,
                                  stage, stage_elems);
            free(tmp); /* cudaMemcpy from pageable memory has read it when it returns */
            if (st != LQ_OK) goto fail;
            done += ts[i].n[j];
        }
        *ts[i].dst = c->wmem + ts[i].off;
    }
    if (w->lm_head == w->embed) c->lm_head = c->embed;
    LQ_CUDA_TRY(cudaDeviceSynchronize(), "convert weights"); /* before the staging buffer goes */
    if (w4_total) {
        LQ_TRY(lq_cuda_malloc((void **)&c->w4mem, w4_total, "W4A16 weights"));
        if (head4) {
            st = lq_w4a16_upload(&m->qhead, 1, c->w4mem + head_off, lq_w4a16_device_bytes(&head_sh), &c->w4head);
            if (st != LQ_OK) {
                st = lq_error_prefix(st, "lm_head.weight");
                goto fail;
            }
            c->q_head = &c->w4head;
        }
        for (int l = 0; l < L && m->qw; l++) {
            const lq_qweight *const *q = m->qw + (size_t)l * LQ_N_LINEARS;
            const lq_qweight *grp[4][3] = {{q[0], q[1], q[2]}, {q[3], NULL, NULL}, {q[4], q[5], NULL}, {q[6], NULL, NULL}};
            const lq_w4a16_weight **slot[4] = {&c->layers[l].q_qkv, &c->layers[l].q_o, &c->layers[l].q_gu,
                                               &c->layers[l].q_d};
            for (int g = 0; g < 4; g++) {
                if (!use4[l * 4 + g]) continue;
                lq_w4a16_weight *dw = &c->w4[l * 4 + g];
                lq_w4a16_shape sh;
                LQ_TRY(lq_w4a16_shape_of(grp[g], nparts[g], &sh));
                /* gate|up pairs whose halves are whole 64-row tiles: interleaved, for the SwiGLU epilogue */
                if (g == 2 && nparts[g] == 2 && grp[g][0]->rows == grp[g][1]->rows && grp[g][0]->rows % 64 == 0)
                    st = lq_w4a16_upload_swiglu(grp[g][0], grp[g][1], c->w4mem + off4[l * 4 + g],
                                                lq_w4a16_device_bytes(&sh), dw);
                else
                    st = lq_w4a16_upload(grp[g], nparts[g], c->w4mem + off4[l * 4 + g], lq_w4a16_device_bytes(&sh),
                                         dw);
                if (st != LQ_OK) {
                    st = lq_error_prefix(st, "layer %d", l);
                    goto fail;
                }
                *slot[g] = dw;
                c->n_w4++;
            }
        }
    }
fail:
    lq_cuda_free(stage);
    free(ts);
    free(use4);
    free(off4);
    return st;
}

static int hd_supported(int hd) { return hd == 8 || hd == 16 || hd == 32 || hd == 64 || hd == 128 || hd == 256; }

extern "C" lq_status lq_cuda_engine_new(const lq_model *m, const lq_cuda_engine_opts *opts, int max_B, int max_ctx,
                                        lq_engine **out) {
    lq_status st = LQ_OK;
    lq_engine *e = NULL;
    cuda_impl *c = NULL;
    *out = NULL;
    lq_cuda_engine_opts o = opts ? *opts : lq_cuda_engine_opts_default();
    const lq_config *cf = &m->cfg;
    LQ_RETURN_IF(max_B < 1 || max_ctx < 1, LQ_ERR_ARG, "cuda engine: max_B=%d max_ctx=%d", max_B, max_ctx);
    LQ_RETURN_IF(o.weight_dtype != LQ_F16 && o.weight_dtype != LQ_BF16 && o.weight_dtype != LQ_F32,
                 LQ_ERR_UNSUPPORTED, "cuda engine: weight dtype %s (supported: F16, BF16, F32)",
                 lq_dtype_name((lq_dtype)o.weight_dtype));
    const int adt = o.compute_dtype < 0 ? o.weight_dtype : o.compute_dtype;
    LQ_RETURN_IF(adt != o.weight_dtype && !(adt == LQ_F32 && (o.weight_dtype == LQ_F16 || o.weight_dtype == LQ_BF16)),
                 LQ_ERR_UNSUPPORTED,
                 "cuda engine: compute dtype %s over %s weights (the compute dtype is the weights' own, or F32 over "
                 "F16/BF16 weights)",
                 lq_dtype_name((lq_dtype)adt), lq_dtype_name((lq_dtype)o.weight_dtype));
    LQ_RETURN_IF(!hd_supported(cf->head_dim), LQ_ERR_UNSUPPORTED,
                 "cuda engine: head_dim %d is not supported by the attention kernels (8, 16, 32, 64, 128, 256)",
                 cf->head_dim);
    int count = lq_cuda_device_count();
    LQ_RETURN_IF(count == 0, LQ_ERR_CUDA, "cuda engine: no CUDA device (no GPU or no driver)");
    LQ_RETURN_IF(o.device < 0 || o.device >= count, LQ_ERR_ARG, "cuda engine: device %d does not exist (%d found)",
                 o.device, count);

    e = (lq_engine *)calloc(1, sizeof *e);
    c = (cuda_impl *)calloc(1, sizeof *c);
    LQ_FAIL_IF(!e || !c, LQ_ERR_NOMEM, "out of memory (cuda engine)");
    e->impl = c;
    c->cfg = *cf;
    c->wdt = (lq_dtype)o.weight_dtype;
    c->adt = (lq_dtype)adt;
    c->device = o.device;
    c->use_graph = o.use_graph;
    c->max_B = max_B;
    c->max_ctx = max_ctx;
    LQ_TRY(lq_cuda_ctx_new(o.device, &c->ctx));
    c->stream = lq_cuda_ctx_stream(c->ctx);
    c->blas = lq_cuda_ctx_blas(c->ctx);
    LQ_TRY(upload_weights(c, m));

    {
        const size_t D = cf->dim, H = cf->hidden_dim, hd = cf->head_dim, qd = (size_t)cf->n_heads * hd,
                     kvd = (size_t)cf->n_kv_heads * hd, V = cf->vocab_size, L = cf->n_layers;
        const size_t es = lq_dtype_size(c->adt);
        if (c->adt != c->wdt) { /* fp32 rows of one weight at a time: up to 64 MiB, at least one row */
            size_t kmax = D > H ? D : H, big = V * D;
            if (qd > kmax) kmax = qd;
            if (2 * H * D > big) big = 2 * H * D;
            if ((qd + 2 * kvd) * D > big) big = (qd + 2 * kvd) * D;
            c->wscratch_elems = big < ((size_t)1 << 24) ? big : ((size_t)1 << 24);
            if (c->wscratch_elems < kmax) c->wscratch_elems = kmax;
            LQ_TRY(lq_cuda_malloc((void **)&c->wscratch, c->wscratch_elems * sizeof(float),
                                  "fp32 weight scratch (fp32 compute)"));
        }
        size_t slots = (size_t)max_B * (size_t)max_ctx; /* B x positions */
        /* KV cache */
        size_t kv_elems;
        LQ_FAIL_IF(lq_mul_overflow(slots, kvd, &kv_elems) || lq_mul_overflow(kv_elems, es, &c->layer_bytes),
                   LQ_ERR_ARG, "KV cache size overflows (B=%d ctx=%d)", max_B, max_ctx);
        size_t kv_total = 0, k_off, v_off;
        LQ_FAIL_IF(plan_add(&kv_total, kv_elems * L, es, &k_off) || plan_add(&kv_total, kv_elems * L, es, &v_off),
                   LQ_ERR_ARG, "KV cache size overflows (B=%d ctx=%d)", max_B, max_ctx);
        LQ_TRY(lq_cuda_malloc((void **)&c->kvmem, kv_total, "KV cache"));
        c->k_cache = c->kvmem + k_off;
        c->v_cache = c->kvmem + v_off;
        c->seq_stride = (int64_t)max_ctx * (int64_t)kvd;
        LQ_CUDA_TRY(cudaMemset(c->kvmem, 0, kv_total), "cudaMemset (KV cache)");

        /* activations: rows_cap rows; the logits buffer kept under ~1 GiB */
        size_t cap = (size_t)1 << 28; /* floats */
        size_t rows = slots;
        if (rows > 4096) rows = 4096;
        if (rows * V > cap) rows = cap / V;
        if (rows < (size_t)max_B) rows = (size_t)max_B; /* a decode step needs B rows */
        c->rows_cap = (int)rows;
        size_t ws_bytes = 0; /* decode split workspace: the largest over batch sizes */
        for (int b = 1; b <= max_B; b++) {
            int ns = lq_attention_decode_splits(b, cf->n_heads, cf->n_kv_heads, max_ctx, lq_cuda_ctx_sm_count(c->ctx));
            size_t wsb = lq_attention_decode_workspace(b, cf->n_heads, (int)hd, ns);
            if (wsb > ws_bytes) ws_bytes = wsb;
        }
        size_t a_total = 0, o_x, o_d, o_qkv, o_gu, o_lg, o_rc, o_rs, o_xn, o_at, o_ha, o_ws, o_nll, o_tok, o_pos, o_tgt;
        int bad = plan_add(&a_total, rows * D, 4, &o_x) || plan_add(&a_total, rows * D, 4, &o_d) ||
                  plan_add(&a_total, rows * (qd + 2 * kvd), 4, &o_qkv) || plan_add(&a_total, rows * 2 * H, 4, &o_gu) ||
                  plan_add(&a_total, rows * V, 4, &o_lg) ||
                  plan_add(&a_total, (size_t)max_ctx * hd / 2, 4, &o_rc) ||
                  plan_add(&a_total, (size_t)max_ctx * hd / 2, 4, &o_rs) || plan_add(&a_total, rows * D, es, &o_xn) ||
                  plan_add(&a_total, rows * qd, es, &o_at) || plan_add(&a_total, rows * H, es, &o_ha) ||
                  plan_add(&a_total, ws_bytes, 1, &o_ws) || plan_add(&a_total, slots, 8, &o_nll) ||
                  plan_add(&a_total, slots, 4, &o_tok) || plan_add(&a_total, slots, 4, &o_pos) ||
                  plan_add(&a_total, slots, 4, &o_tgt);
        LQ_FAIL_IF(bad, LQ_ERR_ARG, "activation sizes overflow (B=%d ctx=%d)", max_B, max_ctx);
        LQ_TRY(lq_cuda_malloc((void **)&c->amem, a_total, "activations"));
        if (c->n_w4 || c->q_head) { /* W4A16 workspace: split-K partials, or the fp16 weight of a large-M product */
            for (int i = 0; i < cf->n_layers * 4 && c->w4; i++) {
                size_t b = c->w4[i].qw ? lq_w4a16_workspace_bytes(&c->w4[i].s, rows, lq_cuda_ctx_sm_count(c->ctx)) : 0;
                if (b > c->w4ws_bytes) c->w4ws_bytes = b;
            }
            /* the logits: up to rows_cap rows (prefill / score), B in decode. Beyond LQ_W4A16_FUSED_MAX_M rows
               this reserves the head's fp16 weight (V x D) for the dequantize + cuBLAS route, as for every W4
               linear: a large-vocabulary head then saves GPU memory only in engines of few rows */
            if (c->q_head) {
                size_t b = lq_w4a16_workspace_bytes(&c->q_head->s, rows, lq_cuda_ctx_sm_count(c->ctx));
                if (b > c->w4ws_bytes) c->w4ws_bytes = b;
            }
            if (c->w4ws_bytes) LQ_TRY(lq_cuda_malloc(&c->w4ws, c->w4ws_bytes, "W4A16 workspace"));
        }
        char *a = c->amem;
        c->x = (float *)(a + o_x);
        c->delta = (float *)(a + o_d);
        c->qkv = (float *)(a + o_qkv);
        c->gu = (float *)(a + o_gu);
        c->logits = (float *)(a + o_lg);
        c->rope_cos = (float *)(a + o_rc);
        c->rope_sin = (float *)(a + o_rs);
        c->xn = a + o_xn;
        c->att = a + o_at;
        c->hact = a + o_ha;
        c->attn_ws = a + o_ws;
        c->nll = (double *)(a + o_nll);
        c->tok = (int32_t *)(a + o_tok);
        c->pos = (int32_t *)(a + o_pos);
        c->tgt = (int32_t *)(a + o_tgt);

        /* RoPE tables, computed in double on the host like the reference */
        size_t tab = (size_t)max_ctx * hd / 2;
        float *cs = (float *)malloc(sizeof(float) * tab * 2);
        LQ_FAIL_IF(!cs, LQ_ERR_NOMEM, "out of memory (RoPE tables)");
        lq_rope_tables(&cf->rope, (int)hd, max_ctx, cs, cs + tab);
        cudaError_t ce = cudaMemcpy(c->rope_cos, cs, sizeof(float) * tab, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess) ce = cudaMemcpy(c->rope_sin, cs + tab, sizeof(float) * tab, cudaMemcpyHostToDevice);
        free(cs);
        LQ_CUDA_TRY(ce, "upload RoPE tables");

        LQ_CUDA_TRY(cudaMallocHost((void **)&c->h_tok, slots * 4), "cudaMallocHost (token staging)");
        LQ_CUDA_TRY(cudaMallocHost((void **)&c->h_pos, slots * 4), "cudaMallocHost (position staging)");
        LQ_CUDA_TRY(cudaMallocHost((void **)&c->h_tgt, slots * 4), "cudaMallocHost (target staging)");
        LQ_CUDA_TRY(cudaMallocHost((void **)&c->h_logits, sizeof(float) * (size_t)max_B * V),
                    "cudaMallocHost (logits staging)");
    }
    c->graphs = (cudaGraphExec_t *)calloc((size_t)max_B + 1, sizeof *c->graphs);
    LQ_FAIL_IF(!c->graphs, LQ_ERR_NOMEM, "out of memory (graphs)");
    LQ_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize (engine setup)");

    {
        cudaDeviceProp p;
        LQ_CUDA_TRY(cudaGetDeviceProperties(&p, o.device), "cudaGetDeviceProperties");
        char w4d[160] = "";
        if (c->n_w4)
            snprintf(w4d, sizeof w4d, ", W4A16 fused kernels on %d of %d linear groups", c->n_w4, c->n_groups_total);
        else if (m->qw)
            snprintf(w4d, sizeof w4d, ", packed weights dequantized (W4A16 kernels need 4-bit codes and fp16)");
        if (c->q_head) {
            size_t l = strlen(w4d);
            snprintf(w4d + l, sizeof w4d - l, ", W4A16 lm_head");
        } else if (m->qhead) {
            size_t l = strlen(w4d);
            snprintf(w4d + l, sizeof w4d - l, ", lm_head dequantized");
        }
        snprintf(e->desc, sizeof e->desc, "%.80s, %s weights%s%s%s", p.name,
                 c->wdt == LQ_F16 ? "fp16" : c->wdt == LQ_BF16 ? "bf16" : "fp32",
                 c->adt != c->wdt ? ", fp32 compute" : "", c->use_graph ? ", CUDA graphs" : "", w4d);
    }
    e->device = "cuda";
    e->vocab_size = cf->vocab_size;
    e->max_B = max_B;
    e->max_ctx = max_ctx;
    e->score = cuda_score;
    e->logits = cuda_logits;
    e->step = cuda_step;
    e->destroy = cuda_destroy;
    *out = e;
    return LQ_OK;
fail:
    if (e) {
        cuda_destroy(e);
        free(e);
    } else {
        free(c);
    }
    return lq_error_prefix(st, "cuda engine (%s weights, %s compute, B=%d, ctx=%d)",
                           lq_dtype_name((lq_dtype)o.weight_dtype), lq_dtype_name((lq_dtype)adt), max_B, max_ctx);
}
