/* calib_cuda.cu — the layer-by-layer calibration forward of
 * calib/quantize_model.c on the GPU (lq_calib_cuda_* in kernels/lq_gptq_cuda.h):
 * the same steps as the CPU driver's chunk_norm / chunk_attention /
 * chunk_mlp_hidden and residual adds, built from the engine's kernels
 * (kernels/lq_kernels.h), all in fp32, feeding the Hessians straight from
 * device memory (lq_hessian_accum_cuda).
 * Why a separate path from the engine (engine_cuda.cu): GPTQ needs every
 * layer's inputs for all calibration tokens while the weights change between
 * the sublayers (true-sequential), so the state is the residual stream of all
 * tokens rather than a KV cache, and the weights are re-read from the host
 * model after each quantization.
 * Tested by tests/test_gptq_gpu.c (GPU forward vs CPU forward: the same
 * per-weight errors; make test-gpu). */
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

extern "C" {
#include "lq_gptq_cuda.h"
#include "lq_kernels.h"
}

struct lq_calib_cuda {
    lq_gptq_cuda *g;
    lq_config c;
    int n_seq, L, chunk; /* chunk: sequences per step (about 4096 tokens), as the CPU driver */
    float *x;            /* (n_seq*L, D) residual stream */
    float *att;          /* (n_seq*L, qd) attention output of the current layer */
    float *xb;           /* (chunk*L, max(D, qd)) normed input / GEMM output */
    float *q, *k, *v;    /* (chunk*L, qd) (chunk*L, kvd) (chunk*L, kvd) */
    float *hg, *hu;      /* (chunk*L, H) */
    float *cos_t, *sin_t; /* (L, hd/2) */
    int32_t *pos;        /* (chunk*L): t % L */
    /* the current layer's weights, uploaded from the host model */
    float *wq, *wk, *wv, *wo, *wg, *wu, *wd; /* (qd, D) (kvd, D) (kvd, D) (D, qd) (H, D) (H, D) (D, H) */
    float *bq, *bk, *bv, *norm;              /* (qd) (kvd) (kvd) (D) */
};

extern "C" void lq_calib_cuda_free(lq_calib_cuda *s) {
    if (!s) return;
    float *bufs[] = {s->x,  s->att, s->xb, s->q,  s->k,  s->v,  s->hg, s->hu, s->cos_t, s->sin_t, s->wq, s->wk,
                     s->wv, s->wo,  s->wg, s->wu, s->wd, s->bq, s->bk, s->bv, s->norm};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) lq_gptq_cuda_dfree(bufs[i]);
    lq_gptq_cuda_dfree(s->pos);
    free(s);
}

extern "C" lq_status lq_calib_cuda_new(lq_gptq_cuda *g, const lq_config *c, const float *x0, int n_seq, int L,
                                       lq_calib_cuda **out) {
    lq_status st = LQ_OK;
    lq_calib_cuda *s = NULL;
    float *ct = NULL, *stab = NULL;
    int32_t *pos = NULL;
    size_t D, qd, kvd, H, NT, CR, half;
    *out = NULL;
    LQ_RETURN_IF(n_seq < 1 || L < 1 || c->head_dim < 2, LQ_ERR_ARG, "GPU calibration: %d x %d tokens, head_dim %d",
                 n_seq, L, c->head_dim);
    D = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim,
    H = (size_t)c->hidden_dim, NT = (size_t)n_seq * L, half = (size_t)(c->head_dim / 2);
    s = (lq_calib_cuda *)calloc(1, sizeof *s);
    LQ_RETURN_IF(!s, LQ_ERR_NOMEM, "out of memory (GPU calibration state)");
    s->g = g;
    s->c = *c;
    s->n_seq = n_seq;
    s->L = L;
    s->chunk = 4096 / L < 1 ? 1 : 4096 / L;
    if (s->chunk > n_seq) s->chunk = n_seq;
    CR = (size_t)s->chunk * L;
#define CALLOC_DEV(ptr, n, what) LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&(ptr), sizeof(*(ptr)) * (n), (what)))
    CALLOC_DEV(s->x, NT * D, "calibration residual stream");
    CALLOC_DEV(s->att, NT * qd, "calibration attention outputs");
    CALLOC_DEV(s->xb, CR * (D > qd ? D : qd), "calibration scratch");
    CALLOC_DEV(s->q, CR * qd, "calibration q");
    CALLOC_DEV(s->k, CR * kvd, "calibration k");
    CALLOC_DEV(s->v, CR * kvd, "calibration v");
    CALLOC_DEV(s->hg, CR * H, "calibration MLP hidden");
    CALLOC_DEV(s->hu, CR * H, "calibration MLP hidden");
    CALLOC_DEV(s->cos_t, (size_t)L * half, "rope table");
    CALLOC_DEV(s->sin_t, (size_t)L * half, "rope table");
    CALLOC_DEV(s->pos, CR, "positions");
    CALLOC_DEV(s->wq, qd * D, "layer weights");
    CALLOC_DEV(s->wk, kvd * D, "layer weights");
    CALLOC_DEV(s->wv, kvd * D, "layer weights");
    CALLOC_DEV(s->wo, D * qd, "layer weights");
    CALLOC_DEV(s->wg, H * D, "layer weights");
    CALLOC_DEV(s->wu, H * D, "layer weights");
    CALLOC_DEV(s->wd, D * H, "layer weights");
    CALLOC_DEV(s->bq, qd, "layer biases");
    CALLOC_DEV(s->bk, kvd, "layer biases");
    CALLOC_DEV(s->bv, kvd, "layer biases");
    CALLOC_DEV(s->norm, D, "layer norm");
#undef CALLOC_DEV
    LQ_TRY(lq_malloc((void **)&ct, sizeof(float) * (size_t)L * half, "rope table"));
    LQ_TRY(lq_malloc((void **)&stab, sizeof(float) * (size_t)L * half, "rope table"));
    LQ_TRY(lq_malloc((void **)&pos, sizeof(int32_t) * CR, "positions"));
    lq_rope_tables(&c->rope, c->head_dim, L, ct, stab); /* the CPU driver's tables */
    for (size_t t = 0; t < CR; t++) pos[t] = (int32_t)(t % (size_t)L);
    LQ_TRY(lq_gptq_cuda_upload(g, s->cos_t, ct, sizeof(float) * (size_t)L * half));
    LQ_TRY(lq_gptq_cuda_upload(g, s->sin_t, stab, sizeof(float) * (size_t)L * half));
    LQ_TRY(lq_gptq_cuda_upload(g, s->pos, pos, sizeof(int32_t) * CR));
    LQ_TRY(lq_gptq_cuda_upload(g, s->x, x0, sizeof(float) * NT * D));
    *out = s;
    s = NULL;
fail:
    free(ct);
    free(stab);
    free(pos);
    lq_calib_cuda_free(s);
    return st;
}

/* Sequences [s0, s0 + ns) of chunk i. */
#define FOR_CHUNKS(s) for (int s0 = 0, ns = (s)->chunk < (s)->n_seq ? (s)->chunk : (s)->n_seq; s0 < (s)->n_seq; \
                           s0 += ns, ns = (s)->n_seq - s0 < (s)->chunk ? (s)->n_seq - s0 : (s)->chunk)

static lq_status up(lq_calib_cuda *s, float *dst, const float *src, size_t n) {
    return lq_gptq_cuda_upload(s->g, dst, src, sizeof(float) * n);
}

/* xb = rmsnorm(x rows of sequences [s0, s0+ns), s->norm) */
static lq_status chunk_norm(lq_calib_cuda *s, int s0, int ns, int64_t *rows) {
    const int64_t D = s->c.dim;
    *rows = (int64_t)ns * s->L;
    return lq_rmsnorm_cuda(s->xb, LQ_F32, s->x + (size_t)s0 * s->L * D, NULL, s->norm, *rows, D, s->c.rms_eps,
                           lq_gptq_cuda_stream(s->g));
}

__global__ void add_inplace_kernel(float *x, const float *d, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] += d[i];
}

/* x rows += xb rows (the residual add) */
static lq_status add_residual(lq_calib_cuda *s, int s0, int64_t rows) {
    const int64_t n = rows * s->c.dim;
    int64_t b = (n + 255) / 256;
    if (b > 65535) b = 65535;
    add_inplace_kernel<<<(unsigned)(b < 1 ? 1 : b), 256, 0, lq_stream(lq_gptq_cuda_stream(s->g))>>>(
        s->x + (size_t)s0 * s->L * s->c.dim, s->xb, n);
    LQ_LAUNCH_RET("add_inplace_kernel");
    return LQ_OK;
}

extern "C" lq_status lq_calib_cuda_norm_hessian(lq_calib_cuda *s, const float *norm, double *S) {
    const int64_t D = s->c.dim;
    LQ_FORWARD(up(s, s->norm, norm, (size_t)D));
    FOR_CHUNKS(s) {
        int64_t rows;
        LQ_FORWARD(chunk_norm(s, s0, ns, &rows));
        LQ_FORWARD(lq_hessian_accum_cuda(s->g, S, D, s->xb, rows));
    }
    return LQ_OK;
}

extern "C" lq_status lq_calib_cuda_attention(lq_calib_cuda *s, const lq_layer_weights *lw, double *S) {
    const lq_config *c = &s->c;
    const int L = s->L, D = c->dim, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd;
    void *st = lq_gptq_cuda_stream(s->g), *blas = lq_gptq_cuda_blas(s->g);
    LQ_FORWARD(up(s, s->norm, lw->attn_norm, (size_t)D));
    LQ_FORWARD(up(s, s->wq, lw->wq, (size_t)(qd * D)));
    LQ_FORWARD(up(s, s->wk, lw->wk, (size_t)(kvd * D)));
    LQ_FORWARD(up(s, s->wv, lw->wv, (size_t)(kvd * D)));
    if (lw->bq) LQ_FORWARD(up(s, s->bq, lw->bq, (size_t)qd));
    if (lw->bk) LQ_FORWARD(up(s, s->bk, lw->bk, (size_t)kvd));
    if (lw->bv) LQ_FORWARD(up(s, s->bv, lw->bv, (size_t)kvd));
    FOR_CHUNKS(s) {
        int64_t rows;
        float *att = s->att + (size_t)s0 * L * qd;
        LQ_FORWARD(chunk_norm(s, s0, ns, &rows));
        LQ_FORWARD(lq_matmul_cuda(blas, s->q, s->xb, s->wq, LQ_F32, lw->bq ? s->bq : NULL, rows, qd, D, 0, st));
        LQ_FORWARD(lq_matmul_cuda(blas, s->k, s->xb, s->wk, LQ_F32, lw->bk ? s->bk : NULL, rows, kvd, D, 0, st));
        LQ_FORWARD(lq_matmul_cuda(blas, s->v, s->xb, s->wv, LQ_F32, lw->bv ? s->bv : NULL, rows, kvd, D, 0, st));
        LQ_FORWARD(lq_rope_cuda(s->q, 0, s->pos, rows, nh, hd, s->cos_t, s->sin_t, st));
        LQ_FORWARD(lq_rope_cuda(s->k, 0, s->pos, rows, nkv, hd, s->cos_t, s->sin_t, st));
        /* the chunk's k/v are the "cache": sequence i at i * L * kvd, positions 0 .. L-1 */
        LQ_FORWARD(lq_attention_cuda(att, s->q, 0, s->k, s->v, LQ_F32, (int64_t)L * kvd, ns, L, 0, nh, nkv, hd,
                                     c->sliding_window, st));
        LQ_FORWARD(lq_hessian_accum_cuda(s->g, S, qd, att, rows)); /* synchronizes */
    }
    return LQ_OK;
}

extern "C" lq_status lq_calib_cuda_attn_residual(lq_calib_cuda *s, const float *wo) {
    const int L = s->L, D = s->c.dim;
    const int64_t qd = (int64_t)s->c.n_heads * s->c.head_dim;
    void *st = lq_gptq_cuda_stream(s->g), *blas = lq_gptq_cuda_blas(s->g);
    LQ_FORWARD(up(s, s->wo, wo, (size_t)(D * qd)));
    FOR_CHUNKS(s) {
        const int64_t rows = (int64_t)ns * L;
        LQ_FORWARD(lq_matmul_cuda(blas, s->xb, s->att + (size_t)s0 * L * qd, s->wo, LQ_F32, NULL, rows, D, qd, 0, st));
        LQ_FORWARD(add_residual(s, s0, rows));
    }
    LQ_CUDA_RET(cudaStreamSynchronize(lq_stream(st)), "GPU calibration: attention residual");
    return LQ_OK;
}

extern "C" lq_status lq_calib_cuda_mlp(lq_calib_cuda *s, const lq_layer_weights *lw, double *S, int residual) {
    const int D = s->c.dim;
    const int64_t H = s->c.hidden_dim;
    void *st = lq_gptq_cuda_stream(s->g), *blas = lq_gptq_cuda_blas(s->g);
    LQ_FORWARD(up(s, s->norm, lw->ffn_norm, (size_t)D));
    LQ_FORWARD(up(s, s->wg, lw->w_gate, (size_t)(H * D)));
    LQ_FORWARD(up(s, s->wu, lw->w_up, (size_t)(H * D)));
    if (residual) LQ_FORWARD(up(s, s->wd, lw->w_down, (size_t)(D * H)));
    FOR_CHUNKS(s) {
        int64_t rows;
        LQ_FORWARD(chunk_norm(s, s0, ns, &rows));
        LQ_FORWARD(lq_matmul_cuda(blas, s->hg, s->xb, s->wg, LQ_F32, NULL, rows, H, D, 0, st));
        LQ_FORWARD(lq_matmul_cuda(blas, s->hu, s->xb, s->wu, LQ_F32, NULL, rows, H, D, 0, st));
        /* in place, element by element, as the CPU driver's lq_swiglu_ref */
        LQ_FORWARD(lq_swiglu_cuda(s->hg, LQ_F32, s->hg, s->hu, rows, H, 0, st));
        if (S) LQ_FORWARD(lq_hessian_accum_cuda(s->g, S, H, s->hg, rows));
        if (residual) {
            LQ_FORWARD(lq_matmul_cuda(blas, s->xb, s->hg, s->wd, LQ_F32, NULL, rows, D, H, 0, st));
            LQ_FORWARD(add_residual(s, s0, rows));
        }
    }
    LQ_CUDA_RET(cudaStreamSynchronize(lq_stream(st)), "GPU calibration: MLP");
    return LQ_OK;
}
