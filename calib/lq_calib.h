/* lq_calib.h — calibration: sampling calibration token sequences from a text
 * or JSONL(.gz) file (with provenance), Hessian statistics of layer inputs,
 * GPTQ, and the model-level driver that runs the calibration forward layer by
 * layer and quantizes every linear (RTN or GPTQ).
 *
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
 * Generative Pre-trained Transformers") quantizes W [N, K] one input column at
 * a time and spreads each column's rounding error over the columns not yet
 * quantized, weighted by the inverse Hessian of the layer-wise objective
 * ||W X^T - Ŵ X^T||^2, H = 2 X^T X / n. The pieces are separate functions so
 * a CUDA twin can replace any of them:
 *   lq_hessian_accum_ref/_cpu   H += X^T X over calibration tokens (double)
 *   lq_gptq_hinv_cpu            damping (with escalation), Cholesky, inverse,
 *                               upper Cholesky of H^-1 (LAPACK from OpenBLAS)
 *   lq_gptq_update_ref/_cpu     the column-by-column quantize-and-compensate
 *                               loop (unblocked reference / lazy blocks of 128
 *                               with an sgemm per block)
 *   lq_gptq_quantize            the orchestration for one weight (dead inputs,
 *                               act-order permutation, static groups, packing)
 * GPU twins of these pieces (and of the calibration forward) are in
 * kernels/lq_gptq_cuda.h; lq_gptq_quantize_cuda and lq_quantize_opts.gpu use
 * them.
 * Codes come from the one rule of libquant/lq_quant.h (lq_quant_code), so a
 * GPTQ weight dequantizes exactly like an RTN one.
 * Tested by tests/test_gptq.c. */
#ifndef LQ_CALIB_H
#define LQ_CALIB_H

#include <jansson.h>
#include <stdint.h>

#include "../libquant/lq_common.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_quant.h"
#include "../libquant/lq_tokenizer.h"

/* ---------------- SHA-256 (FIPS 180-4), for dataset provenance ---------------- */

void lq_sha256(const void *data, size_t n_bytes, uint8_t out[32]);
void lq_sha256_hex(const void *data, size_t n_bytes, char out[65]);

/* ---------------- calibration data (calib/calib_data.c) ---------------- */

typedef struct {
    int n_samples, seqlen;
    uint64_t seed;
    int32_t *tokens;        /* (n_samples, seqlen) */
    char *path;             /* as given */
    char sha256[65];        /* of the file's bytes as stored (compressed when .gz) */
    uint64_t file_bytes;
    const char *kind;       /* "text" or "jsonl" */
    int64_t n_docs;         /* JSONL documents read (0 for text) */
    int64_t n_text_tokens;  /* text: tokens in the whole file */
} lq_calib_data;

/* Sample n sequences of L tokens with a seed.
 *  - text file (optionally gzip'd): the whole file is tokenized once (with the
 *    tokenizer's special tokens, e.g. one BOS); each sample starts at a
 *    uniformly random offset in [0, n_tokens - L].
 *  - JSONL file (".jsonl" or ".jsonl.gz"; one object per line with a string
 *    field "text"): as GPTQ's C4 loader does, pick a random document,
 *    tokenize it (special tokens included), retry while it has <= L tokens,
 *    then take L tokens at a random offset.
 * The generator is splitmix64 seeded with `seed`; integers in [0, m) come
 * from the 64-bit output modulo m (bias < m / 2^64). */
lq_status lq_calib_data_load(const char *path, const lq_tokenizer *tok, int n_samples, int seqlen, uint64_t seed,
                             lq_calib_data *out);
/* n sequences of L uniform random token ids in [0, vocab) (splitmix64 from
 * seed; kind "random", path "random", no file): for speed runs on random-weight
 * models (lq synth), which have no tokenizer. Meaningless for accuracy. */
lq_status lq_calib_data_random(int vocab, int n_samples, int seqlen, uint64_t seed, lq_calib_data *out);
void lq_calib_data_free(lq_calib_data *d); /* NULL is a no-op */
/* {"dataset": path, "sha256": hex, "bytes": n, "kind": ..., "nsamples": n,
 *  "seqlen": L, "seed": s, "sampler": "..."} */
json_t *lq_calib_data_provenance(const lq_calib_data *d);

/* ---------------- Hessian statistics ---------------- */

typedef struct {
    int64_t K;       /* inputs */
    int64_t n;       /* tokens accumulated */
    double *S;       /* (K, K) sum of x x^T; only the upper triangle (c >= r) is maintained */
} lq_hessian;

lq_status lq_hessian_init(lq_hessian *h, int64_t K);
void lq_hessian_free(lq_hessian *h);
/* S += X^T X, n += rows.  X (rows, K). The obvious triple loop. */
void lq_hessian_accum_ref(lq_hessian *h, const float *X, int64_t rows);
/* The same with OpenBLAS dsyrk on X converted to double in chunks. */
lq_status lq_hessian_accum_cpu(lq_hessian *h, const float *X, int64_t rows);
/* H = 2 S / n as a full symmetric (K, K) matrix. */
void lq_hessian_finalize(const lq_hessian *h, double *H);
/* Relative output error on the accumulated inputs:
 *   ||(W - Ŵ) X^T||_F / ||W X^T||_F = sqrt(sum_r d_r S d_r^T / sum_r w_r S w_r^T)
 * W, What (N, K). 0 when the denominator is 0. */
lq_status lq_hessian_rel_err(const lq_hessian *h, const float *W, const float *What, int64_t N, double *rel);

/* ---------------- GPTQ ---------------- */

typedef struct {
    lq_quant_params q;
    double percdamp;        /* damping as a fraction of mean(diag H); default 0.01 */
    int max_escalations;    /* times the damping may be multiplied by 10 when
                               Cholesky fails; default 4 (0.01 -> at most 100) */
    int block_size;         /* lazy-batch block; default 128 */
    int act_order;          /* desc_act: process columns by decreasing diag(H) */
} lq_gptq_opts;

lq_gptq_opts lq_gptq_opts_default(void);

typedef struct {
    double percdamp_used;   /* the relative damping that worked */
    double damp_used;       /* the absolute value added to diag(H) */
    int escalations;        /* how many times it was multiplied by 10 */
    int n_dead;             /* inputs with diag(H) == 0 (weight column set to 0) */
    double seconds;
} lq_gptq_report;

/* H (K, K) full symmetric (the caller's copy is not modified). Adds
 * damp = percdamp * mean(diag H) to the diagonal, factors H = L L^T
 * (dpotrf), inverts (dpotri), and factors H^-1 = U^T U (dpotrf again); on a
 * failed factorisation damp is multiplied by 10 and everything retried, up
 * to max_escalations times (reported in rep). U (K, K) row-major upper
 * triangular, float; below-diagonal entries are 0. Non-finite H or failure
 * after the last escalation: LQ_ERR_NUMERIC with the damping tried. */
lq_status lq_gptq_hinv_cpu(const double *H, int64_t K, double percdamp, int max_escalations, float *U,
                           lq_gptq_report *rep);

/* The GPTQ loop over columns in processing order.
 *   W (N, K)          weights in processing order; overwritten (error-compensated)
 *   U (K, K)          upper Cholesky factor of H^-1 in processing order
 *   G                 effective group size; col_group (K): group of each processed
 *                     column (original column / G under act-order)
 *   static_params     1: scales/zeros (N, n_groups) are inputs (computed before
 *                     the loop: per-channel, or act-order's static groups);
 *                     0: the params of group g are computed from the current,
 *                     already-compensated weights when its first column is
 *                     reached (needs col_group[j] == j / G: no permutation).
 *                     The GPTQ reference code reads them from W before the
 *                     current block's in-block updates when a group starts
 *                     mid-block (G < 128); here they always see the updated
 *                     weights (identical when G is a multiple of the block)
 *   codes (N, K)      output, processing order
 * _ref: one column at a time over the whole row (the definition).
 * _cpu: lazy blocks (block_size columns; with non-static groups the block is
 * rounded to a multiple of G, or to G when G > block_size, so a group's
 * params always see fully updated weights: the result equals _ref up to
 * float summation order), rows in parallel, one sgemm per block. */
lq_status lq_gptq_update_ref(float *W, int64_t N, int64_t K, const float *U, const lq_quant_params *p, int64_t G,
                             const int32_t *col_group, int static_params, uint16_t *scales, uint8_t *zeros,
                             uint8_t *codes);
lq_status lq_gptq_update_cpu(float *W, int64_t N, int64_t K, const float *U, const lq_quant_params *p, int64_t G,
                             const int32_t *col_group, int static_params, uint16_t *scales, uint8_t *zeros,
                             uint8_t *codes, int block_size);

/* Quantize one weight W (N, K) (not modified) with GPTQ given its input
 * statistics. Dead inputs (diag H == 0) get diag 1 and a zero weight column.
 * With act_order, columns are processed by decreasing diag(H) (stable), and
 * the groups are STATIC: computed on the original column order before
 * permuting (AutoGPTQ's static_groups), so column k keeps group k / G,
 * g_idx (stored) is monotone and every group is contiguous in the original
 * order. Allocates *out (with g_idx under act-order); What (N, K) receives
 * the dequantized result when not NULL. */
lq_status lq_gptq_quantize(const float *W, int64_t N, int64_t K, const lq_hessian *h, const lq_gptq_opts *o,
                           lq_qweight *out, float *What, lq_gptq_report *rep);

/* The GPU context of kernels/lq_gptq_cuda.h (opaque here). */
typedef struct lq_gptq_cuda lq_gptq_cuda;

/* lq_gptq_quantize with the damping/Cholesky/inverse (lq_gptq_hinv_cuda) and
 * the update (lq_gptq_update_cuda) on the GPU of g; dead inputs, the
 * act-order permutation, static groups and packing are the same host code.
 * Host arrays in and out, as lq_gptq_quantize. dS: the Hessian's sums already
 * on the device (h->S's layout; h->S is then not read, only h->n), or NULL to
 * take h->S from the host. The same result either way. */
lq_status lq_gptq_quantize_cuda(lq_gptq_cuda *g, const double *dS, const float *W, int64_t N, int64_t K,
                                const lq_hessian *h, const lq_gptq_opts *o, lq_qweight *out, float *What,
                                lq_gptq_report *rep);

/* ---------------- the model-level driver (calib/quantize_model.c) ---------------- */

typedef enum { LQ_QMETHOD_RTN = 0, LQ_QMETHOD_GPTQ = 1 } lq_qmethod;

typedef struct {
    char name[160];         /* HF weight name */
    int layer;
    int64_t rows, cols;
    int quantized;          /* 0: skipped (kept in full precision) */
    const char *method;     /* "rtn", "gptq", or "rtn (gptq failed)" */
    lq_qweight q;           /* owned; free with lq_quantize_results_free */
    double rel_err_rtn;     /* ||WX - ŴX|| / ||WX|| on the calibration inputs; NaN unmeasured */
    double rel_err_gptq;    /* same for GPTQ; NaN when not run */
    lq_gptq_report gptq;
    double seconds;         /* wall time for this weight (RTN + GPTQ) */
    char note[256];         /* e.g. the damping escalation or fallback reason */
} lq_quant_result;

typedef struct {
    lq_qmethod method;
    lq_gptq_opts gptq;      /* .q is used by RTN as well */
    /* return 1 to keep the weight unquantized */
    int (*skip)(void *ud, const char *name);
    void *skip_ud;
    /* called after each weight (r) and after each layer (r == NULL) */
    void (*progress)(void *ud, int layer, int n_layers, const lq_quant_result *r);
    void *progress_ud;
    /* non-NULL: Hessians, relative errors, Cholesky and the GPTQ update run on
     * this GPU (kernels/lq_gptq_cuda.h) */
    lq_gptq_cuda *gpu;
    /* with gpu: 1 runs the calibration forward on the GPU too (lq_calib_cuda_*;
     * the activations of all tokens live there), 0 keeps it on the CPU */
    int gpu_forward;
    /* 1: quantize the head too (lm_head.weight, one more result after the
     * layers', layer -1), after the last layer: GPTQ with the Hessian of its
     * input, the final-normed hidden states of the quantized layers over the
     * calibration tokens; RTN otherwise. A tied head is untied first
     * (lq_model_untie_head): the embeddings stay floating point. 0 (default):
     * the head stays as it is. */
    int lm_head;
} lq_quantize_opts;

/* Quantize every linear weight of every layer (q/k/v/o/gate/up/down; the
 * embeddings and norms stay as they are, the head too unless o->lm_head) and replace it in m by its
 * dequantized version. With calibration tokens (n_seq, seqlen), the layers
 * are run one at a time on those tokens (true-sequential inside a layer:
 * q/k/v from the attention input, then o from the attention output of the
 * quantized q/k/v, then gate/up, then down from the quantized gate/up), only
 * the residual stream (n_seq*seqlen, dim) and the attention output being held
 * for all tokens; GPTQ needs them, RTN uses them to report errors.
 * results: one per linear weight, in model order, then the head's with
 * o->lm_head (caller frees). */
lq_status lq_quantize_model(lq_model *m, const int32_t *tokens, int n_seq, int seqlen, const lq_quantize_opts *o,
                            lq_quant_result **results, int *n_results);
void lq_quantize_results_free(lq_quant_result *r, int n);

#endif
