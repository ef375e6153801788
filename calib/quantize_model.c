/* quantize_model.c — quantize every linear weight of an lq_model with RTN or
 * GPTQ, running the calibration forward one layer at a time (see
 * lq_quantize_model in lq_calib.h).
 *
 * Memory: the residual stream x (n_seq*seqlen, dim) and the attention output
 * (n_seq*seqlen, q_dim) for all calibration tokens, plus one sequence's worth
 * of q/k/v/MLP activations and the Hessians of the sublayer being quantized —
 * never the whole model's activations. The forward reuses the reference ops
 * of libquant/lq_ops.h (rmsnorm, matmul, rope, attention, swiglu), so the
 * calibration inputs are exactly what lq_forward computes.
 * With o->gpu the Hessians, errors and GPTQ run on the GPU (kernels/
 * lq_gptq_cuda.h), and with o->gpu_forward the forward too (lq_calib_cuda_*:
 * the same steps, the residual stream and attention outputs in GPU memory).
 * Tested by tests/test_gptq.c (stories260K end to end) and
 * tests/test_gptq_gpu.c (the GPU paths against this CPU one). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_calib.h"

#include "../kernels/lq_gptq_cuda.h"

typedef struct {
    const lq_model *m;
    int n_seq, L;
    int chunk;     /* sequences per forward call (about 4096 tokens): big enough for
                      BLAS, small enough that the MLP activations stay modest */
    float *x;      /* (n_seq*L, D) residual stream */
    float *att;    /* (n_seq*L, qd) attention output of the current layer */
    float *xb, *q, *k, *v, *hg, *hu; /* one chunk: (chunk*L, ...) */
    float *cos_t, *sin_t;
    int32_t *pos;  /* (chunk*L): t % L */
} calib_state;

static void calib_state_free(calib_state *s) {
    free(s->x);
    free(s->att);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->hg);
    free(s->hu);
    free(s->cos_t);
    free(s->sin_t);
    free(s->pos);
}

static lq_status calib_state_new(calib_state *s, const lq_model *m, const int32_t *tokens, int n_seq, int L) {
    const lq_config *c = &m->cfg;
    const size_t D = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim,
                 H = (size_t)c->hidden_dim, NT = (size_t)n_seq * L;
    memset(s, 0, sizeof *s);
    s->m = m;
    s->n_seq = n_seq;
    s->L = L;
    s->chunk = 4096 / L < 1 ? 1 : 4096 / L;
    if (s->chunk > n_seq) s->chunk = n_seq;
    const size_t CR = (size_t)s->chunk * L; /* rows per chunk */
    lq_status st = LQ_OK;
    LQ_TRY(lq_malloc((void **)&s->x, sizeof(float) * NT * D, "calibration residual stream"));
    LQ_TRY(lq_malloc((void **)&s->att, sizeof(float) * NT * qd, "calibration attention outputs"));
    LQ_TRY(lq_malloc((void **)&s->xb, sizeof(float) * CR * (D > qd ? D : qd), "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->q, sizeof(float) * CR * qd, "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->k, sizeof(float) * CR * kvd, "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->v, sizeof(float) * CR * kvd, "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->hg, sizeof(float) * CR * H, "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->hu, sizeof(float) * CR * H, "calibration scratch"));
    LQ_TRY(lq_malloc((void **)&s->cos_t, sizeof(float) * (size_t)L * (size_t)(c->head_dim / 2), "rope"));
    LQ_TRY(lq_malloc((void **)&s->sin_t, sizeof(float) * (size_t)L * (size_t)(c->head_dim / 2), "rope"));
    LQ_TRY(lq_malloc((void **)&s->pos, sizeof(int32_t) * CR, "positions"));
    lq_rope_tables(&c->rope, c->head_dim, L, s->cos_t, s->sin_t);
    for (size_t t = 0; t < CR; t++) s->pos[t] = (int32_t)(t % (size_t)L);
    for (size_t i = 0; i < NT; i++)
        LQ_FAIL_IF(tokens[i] < 0 || tokens[i] >= c->vocab_size, LQ_ERR_ARG,
                   "calibration: token id %d at index %zu is outside the vocabulary (%d)", tokens[i], i, c->vocab_size);
    lq_embedding_ref(s->x, m->w.embed, tokens, (int64_t)NT, (int64_t)D);
    return LQ_OK;
fail:
    calib_state_free(s);
    return st;
}

/* Chunk [s0, s0+ns) of sequences: rows = ns * L. */

/* xb = rmsnorm(x_chunk, w) */
static int64_t chunk_norm(calib_state *s, int s0, int ns, const float *w) {
    const lq_config *c = &s->m->cfg;
    int64_t rows = (int64_t)ns * s->L;
    lq_rmsnorm_ref(s->xb, s->x + (size_t)s0 * s->L * c->dim, w, rows, c->dim, c->rms_eps);
    return rows;
}

/* att_chunk = attention(q, k, v) from the (current) q/k/v weights */
static void chunk_attention(calib_state *s, int s0, int ns, const lq_layer_weights *lw) {
    const lq_config *c = &s->m->cfg;
    const int L = s->L, D = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int64_t rows = chunk_norm(s, s0, ns, lw->attn_norm);
    lq_matmul_cpu(s->q, s->xb, lw->wq, lw->bq, rows, qd, D);
    lq_matmul_cpu(s->k, s->xb, lw->wk, lw->bk, rows, kvd, D);
    lq_matmul_cpu(s->v, s->xb, lw->wv, lw->bv, rows, kvd, D);
    lq_rope_ref(s->q, s->pos, rows, c->n_heads, hd, s->cos_t, s->sin_t);
    lq_rope_ref(s->k, s->pos, rows, c->n_kv_heads, hd, s->cos_t, s->sin_t);
    /* each sequence attends only to itself, from position 0. One parallel
     * region over the sequences (the nested one inside lq_attention_cpu runs
     * with one thread): one fork/join per chunk instead of per sequence,
     * which matters on a loaded 2-core machine. */
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < ns; i++)
        lq_attention_cpu(s->att + ((size_t)(s0 + i) * L) * qd, s->q + (size_t)i * L * qd, s->k + (size_t)i * L * kvd,
                         s->v + (size_t)i * L * kvd, L, 0, c->n_heads, c->n_kv_heads, hd, c->sliding_window);
}

/* hg = silu(gate xb) * up xb with xb = rmsnorm(x_chunk, ffn_norm) */
static int64_t chunk_mlp_hidden(calib_state *s, int s0, int ns, const lq_layer_weights *lw) {
    const lq_config *c = &s->m->cfg;
    int64_t rows = chunk_norm(s, s0, ns, lw->ffn_norm);
    lq_matmul_cpu(s->hg, s->xb, lw->w_gate, NULL, rows, c->hidden_dim, c->dim);
    lq_matmul_cpu(s->hu, s->xb, lw->w_up, NULL, rows, c->hidden_dim, c->dim);
    lq_swiglu_ref(s->hg, s->hg, s->hu, rows * c->hidden_dim);
    return rows;
}

/* The GPU forward's state: the embeddings computed here, uploaded once. */
static lq_status calib_gpu_new(lq_calib_cuda **out, lq_gptq_cuda *g, const lq_model *m, const int32_t *tokens,
                               int n_seq, int L) {
    const lq_config *c = &m->cfg;
    const size_t NT = (size_t)n_seq * L;
    lq_status st = LQ_OK;
    float *x0 = NULL;
    for (size_t i = 0; i < NT; i++)
        LQ_RETURN_IF(tokens[i] < 0 || tokens[i] >= c->vocab_size, LQ_ERR_ARG,
                     "calibration: token id %d at index %zu is outside the vocabulary (%d)", tokens[i], i,
                     c->vocab_size);
    LQ_TRY(lq_malloc((void **)&x0, sizeof(float) * NT * (size_t)c->dim, "calibration embeddings"));
    lq_embedding_ref(x0, m->w.embed, tokens, (int64_t)NT, (int64_t)c->dim);
    LQ_TRY(lq_calib_cuda_new(g, c, x0, n_seq, L, out));
fail:
    free(x0);
    return st;
}

/* ---- one sublayer's Hessian: on the CPU, or (o->gpu) accumulated on the
 * GPU in dS, which GPTQ and the relative errors read there (h->n counts the
 * tokens; h->S stays unused) ---- */

static lq_status hess_reset(const lq_quantize_opts *o, lq_hessian *h, double *dS) {
    h->n = 0;
    /* on the GPU path h->S is never touched (calloc'd pages stay unmapped) */
    if (o->gpu) return lq_gptq_cuda_memset(o->gpu, dS, 0, sizeof(double) * (size_t)(h->K * h->K));
    memset(h->S, 0, sizeof(double) * (size_t)(h->K * h->K));
    return LQ_OK;
}

static lq_status hess_accum(const lq_quantize_opts *o, lq_hessian *h, double *dS, const float *X, int64_t rows) {
    if (!o->gpu) return lq_hessian_accum_cpu(h, X, rows);
    LQ_FORWARD(lq_hessian_accum_host_cuda(o->gpu, dS, h->K, X, rows));
    h->n += rows;
    return LQ_OK;
}

/* Nothing to do since the GPU path reads dS directly (lq_gptq_quantize_cuda,
 * rel_err); kept as the one place to copy S to the host should a step need it. */
static lq_status hess_done(const lq_quantize_opts *o, lq_hessian *h, const double *dS) {
    (void)o, (void)h, (void)dS;
    return LQ_OK;
}

/* ||WX - ŴX|| / ||WX|| through the Hessian, on the GPU when o->gpu. */
static lq_status rel_err(const lq_quantize_opts *o, const lq_hessian *h, const double *dS, const float *W,
                         const float *What, int64_t N, double *rel) {
    if (!o->gpu) return lq_hessian_rel_err(h, W, What, N, rel);
    lq_status st = LQ_OK;
    float *dW = NULL, *dWh = NULL;
    const size_t nb = sizeof(float) * (size_t)(N * h->K);
    LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&dW, nb, "rel. error W"));
    LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&dWh, nb, "rel. error W quantized"));
    LQ_TRY(lq_gptq_cuda_upload(o->gpu, dW, W, nb));
    LQ_TRY(lq_gptq_cuda_upload(o->gpu, dWh, What, nb));
    LQ_TRY(lq_hessian_rel_err_cuda(o->gpu, dS, h->K, dW, dWh, N, rel));
fail:
    lq_gptq_cuda_dfree(dW);
    lq_gptq_cuda_dfree(dWh);
    return st;
}

typedef struct {
    float *w;        /* the model's weight (rows, cols), replaced in place */
    int64_t rows, cols;
    const char *kind;
} linear_ref;

/* Quantize one weight with the (optional) Hessian, fill r, replace w. */
static lq_status quantize_one(const lq_quantize_opts *o, const lq_hessian *h, const double *dS, linear_ref *lr,
                              lq_quant_result *r) {
    lq_status st = LQ_OK;
    float *Wr = NULL, *Wg = NULL;
    lq_qweight qr = {0}, qg = {0};
    double t0 = lq_now();
    r->rows = lr->rows;
    r->cols = lr->cols;
    r->rel_err_rtn = r->rel_err_gptq = NAN;
    if (o->skip && o->skip(o->skip_ud, r->name)) {
        r->quantized = 0;
        r->method = "skipped";
        return LQ_OK;
    }
    const size_t n = (size_t)(lr->rows * lr->cols);
    LQ_TRY(lq_malloc((void **)&Wr, sizeof(float) * n, "dequantized weight"));
    LQ_TRY(lq_rtn_quantize_packed_cpu(lr->w, lr->rows, lr->cols, &o->gptq.q, &qr));
    lq_dequant_cpu(&qr, Wr);
    if (h) LQ_TRY(rel_err(o, h, dS, lr->w, Wr, lr->rows, &r->rel_err_rtn));
    r->quantized = 1;
    if (o->method == LQ_QMETHOD_GPTQ) {
        LQ_TRY(lq_malloc((void **)&Wg, sizeof(float) * n, "dequantized weight"));
        st = o->gpu ? lq_gptq_quantize_cuda(o->gpu, dS, lr->w, lr->rows, lr->cols, h, &o->gptq, &qg, Wg, &r->gptq)
                    : lq_gptq_quantize(lr->w, lr->rows, lr->cols, h, &o->gptq, &qg, Wg, &r->gptq);
        if (st == LQ_ERR_NUMERIC) {
            /* never crash on a bad layer: keep RTN and say why */
            snprintf(r->note, sizeof r->note, "GPTQ failed (%s); kept RTN", lq_last_error());
            r->method = "rtn (gptq failed)";
            st = LQ_OK;
        } else {
            if (st != LQ_OK) goto fail;
            LQ_TRY(rel_err(o, h, dS, lr->w, Wg, lr->rows, &r->rel_err_gptq));
            if (r->gptq.escalations)
                snprintf(r->note, sizeof r->note, "Cholesky failed at damping %g; succeeded with %g x mean(diag H)",
                         o->gptq.percdamp * pow(10, r->gptq.escalations - 1), r->gptq.percdamp_used);
            if (r->gptq.n_dead) {
                size_t l = strlen(r->note);
                snprintf(r->note + l, sizeof r->note - l, "%s%d dead inputs", l ? "; " : "", r->gptq.n_dead);
            }
            r->method = "gptq";
            r->q = qg;
            memset(&qg, 0, sizeof qg);
            memcpy(lr->w, Wg, sizeof(float) * n);
        }
    }
    if (!r->method || strcmp(r->method, "gptq") != 0) {
        if (!r->method) r->method = "rtn";
        r->q = qr;
        memset(&qr, 0, sizeof qr);
        memcpy(lr->w, Wr, sizeof(float) * n);
    }
    r->seconds = lq_now() - t0;
fail:
    lq_qweight_free(&qr);
    lq_qweight_free(&qg);
    free(Wr);
    free(Wg);
    if (st != LQ_OK) lq_error_prefix(st, "%s", r->name);
    return st;
}

void lq_quantize_results_free(lq_quant_result *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) lq_qweight_free(&r[i].q);
    free(r);
}

#define N_LIN 7

lq_status lq_quantize_model(lq_model *m, const int32_t *tokens, int n_seq, int L, const lq_quantize_opts *o,
                            lq_quant_result **results, int *n_results) {
    lq_status st = LQ_OK;
    const lq_config *c = &m->cfg;
    const int NL = c->n_layers, D = c->dim, hd = c->head_dim, qd = c->n_heads * hd, Hd = c->hidden_dim;
    lq_quant_result *res = NULL;
    calib_state cs;
    int have_cs = 0;
    lq_calib_cuda *cg = NULL; /* the forward on the GPU (o->gpu && o->gpu_forward) */
    lq_hessian h_attn = {0}, h_o = {0}, h_mlp = {0}, h_down = {0};
    double *d_attn = NULL, *d_o = NULL, *d_mlp = NULL, *d_down = NULL; /* their device copies (o->gpu) */
    *results = NULL;
    *n_results = 0;
    LQ_FORWARD(lq_quant_params_check(&o->gptq.q));
    const int calib = tokens != NULL && n_seq > 0;
    LQ_RETURN_IF(o->method == LQ_QMETHOD_GPTQ && !calib, LQ_ERR_ARG, "GPTQ needs calibration data");
    if (calib)
        LQ_RETURN_IF(L < 1 || L > c->max_seq_len, LQ_ERR_ARG,
                     "calibration seqlen %d exceeds the model's max_position_embeddings %d", L, c->max_seq_len);
    const int n_res = NL * N_LIN + (o->lm_head ? 1 : 0);
    LQ_TRY(lq_calloc((void **)&res, (size_t)n_res, sizeof *res, "quantization results"));
    if (calib && o->gpu && o->gpu_forward) {
        LQ_TRY(calib_gpu_new(&cg, o->gpu, m, tokens, n_seq, L));
    } else if (calib) {
        LQ_TRY(calib_state_new(&cs, m, tokens, n_seq, L));
        have_cs = 1;
    }
    if (calib) {
        LQ_TRY(lq_hessian_init(&h_attn, D));
        LQ_TRY(lq_hessian_init(&h_o, qd));
        LQ_TRY(lq_hessian_init(&h_mlp, D));
        LQ_TRY(lq_hessian_init(&h_down, Hd));
        if (o->gpu) {
            LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&d_attn, sizeof(double) * (size_t)D * D, "Hessian (q/k/v)"));
            LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&d_o, sizeof(double) * (size_t)qd * qd, "Hessian (o)"));
            LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&d_mlp, sizeof(double) * (size_t)D * D, "Hessian (gate/up)"));
            LQ_TRY(lq_gptq_cuda_malloc(o->gpu, (void **)&d_down, sizeof(double) * (size_t)Hd * Hd, "Hessian (down)"));
        }
    }
    for (int l = 0; l < NL; l++) {
        lq_layer_weights *lw = &m->w.layers[l];
        linear_ref lin[N_LIN] = {{lw->wq, qd, D, "self_attn.q_proj"},   {lw->wk, c->n_kv_heads * hd, D, "self_attn.k_proj"},
                                 {lw->wv, c->n_kv_heads * hd, D, "self_attn.v_proj"}, {lw->wo, D, qd, "self_attn.o_proj"},
                                 {lw->w_gate, Hd, D, "mlp.gate_proj"},    {lw->w_up, Hd, D, "mlp.up_proj"},
                                 {lw->w_down, D, Hd, "mlp.down_proj"}};
        lq_quant_result *rl = res + (size_t)l * N_LIN;
        for (int i = 0; i < N_LIN; i++) {
            snprintf(rl[i].name, sizeof rl[i].name, "model.layers.%d.%s.weight", l, lin[i].kind);
            rl[i].layer = l;
        }
#define QUANT(i, H, DS)                                                                                                 \
    do {                                                                                                               \
        LQ_TRY(quantize_one(o, (H), (DS), &lin[i], &rl[i]));                                                           \
        if (o->progress) o->progress(o->progress_ud, l, NL, &rl[i]);                                                   \
    } while (0)
        if (!calib) {
            for (int i = 0; i < N_LIN; i++) QUANT(i, NULL, NULL);
            if (o->progress) o->progress(o->progress_ud, l, NL, NULL);
            continue;
        }
        if (cg) { /* the same steps with the forward on the GPU */
            const int64_t NT = (int64_t)n_seq * L;
            LQ_TRY(hess_reset(o, &h_attn, d_attn));
            LQ_TRY(lq_calib_cuda_norm_hessian(cg, lw->attn_norm, d_attn));
            h_attn.n = NT;
            LQ_TRY(hess_done(o, &h_attn, d_attn));
            for (int i = 0; i < 3; i++) QUANT(i, &h_attn, d_attn);
            LQ_TRY(hess_reset(o, &h_o, d_o));
            LQ_TRY(lq_calib_cuda_attention(cg, lw, d_o));
            h_o.n = NT;
            LQ_TRY(hess_done(o, &h_o, d_o));
            QUANT(3, &h_o, d_o);
            LQ_TRY(lq_calib_cuda_attn_residual(cg, lw->wo));
            LQ_TRY(hess_reset(o, &h_mlp, d_mlp));
            LQ_TRY(lq_calib_cuda_norm_hessian(cg, lw->ffn_norm, d_mlp));
            h_mlp.n = NT;
            LQ_TRY(hess_done(o, &h_mlp, d_mlp));
            QUANT(4, &h_mlp, d_mlp);
            QUANT(5, &h_mlp, d_mlp);
            LQ_TRY(hess_reset(o, &h_down, d_down));
            LQ_TRY(lq_calib_cuda_mlp(cg, lw, d_down, 0));
            h_down.n = NT;
            LQ_TRY(hess_done(o, &h_down, d_down));
            QUANT(6, &h_down, d_down);
            LQ_TRY(lq_calib_cuda_mlp(cg, lw, NULL, 1)); /* the next layer sees the quantized output */
            if (o->progress) o->progress(o->progress_ud, l, NL, NULL);
            continue;
        }
        const int CH = cs.chunk;
#define FOR_CHUNKS for (int s0 = 0, ns = CH < n_seq ? CH : n_seq; s0 < n_seq; s0 += ns, ns = n_seq - s0 < CH ? n_seq - s0 : CH)
        /* q/k/v: attention input */
        LQ_TRY(hess_reset(o, &h_attn, d_attn));
        FOR_CHUNKS {
            int64_t rows = chunk_norm(&cs, s0, ns, lw->attn_norm);
            LQ_TRY(hess_accum(o, &h_attn, d_attn, cs.xb, rows));
        }
        LQ_TRY(hess_done(o, &h_attn, d_attn));
        for (int i = 0; i < 3; i++) QUANT(i, &h_attn, d_attn);
        /* o: attention output of the quantized q/k/v */
        LQ_TRY(hess_reset(o, &h_o, d_o));
        FOR_CHUNKS {
            chunk_attention(&cs, s0, ns, lw);
            LQ_TRY(hess_accum(o, &h_o, d_o, cs.att + (size_t)s0 * L * qd, (int64_t)ns * L));
        }
        LQ_TRY(hess_done(o, &h_o, d_o));
        QUANT(3, &h_o, d_o);
        FOR_CHUNKS {
            int64_t rows = (int64_t)ns * L;
            float *xs = cs.x + (size_t)s0 * L * D;
            lq_matmul_cpu(cs.xb, cs.att + (size_t)s0 * L * qd, lw->wo, NULL, rows, D, qd);
            for (size_t i = 0; i < (size_t)rows * D; i++) xs[i] += cs.xb[i];
        }
        /* gate/up: MLP input */
        LQ_TRY(hess_reset(o, &h_mlp, d_mlp));
        FOR_CHUNKS {
            int64_t rows = chunk_norm(&cs, s0, ns, lw->ffn_norm);
            LQ_TRY(hess_accum(o, &h_mlp, d_mlp, cs.xb, rows));
        }
        LQ_TRY(hess_done(o, &h_mlp, d_mlp));
        QUANT(4, &h_mlp, d_mlp);
        QUANT(5, &h_mlp, d_mlp);
        /* down: hidden activations of the quantized gate/up */
        LQ_TRY(hess_reset(o, &h_down, d_down));
        FOR_CHUNKS {
            int64_t rows = chunk_mlp_hidden(&cs, s0, ns, lw);
            LQ_TRY(hess_accum(o, &h_down, d_down, cs.hg, rows));
        }
        LQ_TRY(hess_done(o, &h_down, d_down));
        QUANT(6, &h_down, d_down);
        /* the next layer sees this layer's quantized output */
        FOR_CHUNKS {
            int64_t rows = chunk_mlp_hidden(&cs, s0, ns, lw);
            float *xs = cs.x + (size_t)s0 * L * D;
            lq_matmul_cpu(cs.xb, cs.hg, lw->w_down, NULL, rows, D, Hd);
            for (size_t i = 0; i < (size_t)rows * D; i++) xs[i] += cs.xb[i];
        }
#undef FOR_CHUNKS
#undef QUANT
        if (o->progress) o->progress(o->progress_ud, l, NL, NULL);
    }
    if (o->lm_head) {
        /* the head, after every layer: its input is the final-normed residual stream
           of the quantized layers (D inputs, like q/k/v: h_attn's storage serves) */
        LQ_TRY(lq_model_untie_head(m)); /* quantize_one replaces the weight: never the embeddings */
        linear_ref lh = {m->w.lm_head, c->vocab_size, D, "lm_head"};
        lq_quant_result *rh = &res[NL * N_LIN];
        snprintf(rh->name, sizeof rh->name, "lm_head.weight");
        rh->layer = -1;
        if (calib) {
            LQ_TRY(hess_reset(o, &h_attn, d_attn));
            if (cg) {
                LQ_TRY(lq_calib_cuda_norm_hessian(cg, m->w.final_norm, d_attn));
                h_attn.n = (int64_t)n_seq * L;
            } else {
                for (int s0 = 0; s0 < n_seq; s0 += cs.chunk) {
                    const int ns = n_seq - s0 < cs.chunk ? n_seq - s0 : cs.chunk;
                    int64_t rows = chunk_norm(&cs, s0, ns, m->w.final_norm);
                    LQ_TRY(hess_accum(o, &h_attn, d_attn, cs.xb, rows));
                }
            }
            LQ_TRY(hess_done(o, &h_attn, d_attn));
        }
        LQ_TRY(quantize_one(o, calib ? &h_attn : NULL, d_attn, &lh, rh));
        if (o->progress) o->progress(o->progress_ud, NL - 1, NL, rh);
    }
    *results = res;
    *n_results = n_res;
    res = NULL;
fail:
    if (res) lq_quantize_results_free(res, n_res);
    if (have_cs) calib_state_free(&cs);
    lq_calib_cuda_free(cg);
    lq_hessian_free(&h_attn);
    lq_hessian_free(&h_o);
    lq_hessian_free(&h_mlp);
    lq_hessian_free(&h_down);
    lq_gptq_cuda_dfree(d_attn);
    lq_gptq_cuda_dfree(d_o);
    lq_gptq_cuda_dfree(d_mlp);
    lq_gptq_cuda_dfree(d_down);
    return st;
}
