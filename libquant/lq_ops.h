/* lq_ops.h — the transformer ops of the reference runtime, one function per
 * op. Each `lq_<op>_ref` is the scalar, obvious version (the definition of
 * the op); `lq_<op>_cpu` is a faster CPU twin where one exists (OpenBLAS,
 * OpenMP); the CUDA twins live in kernels/ under the same op name
 * (`lq_<op>_cuda`, kernels/lq_kernels.h). Tests compare every twin with the
 * reference on fresh random inputs (tests/test_ops.c, tests/test_kernels.c).
 *
 * Layout conventions: activations are row-major [rows, features]; linear
 * weights are [out, in] (HF / PyTorch), so y = x W^T (+ b). */
#ifndef LQ_OPS_H
#define LQ_OPS_H

#include <stdint.h>

/* out[i, :] = table[ids[i], :]                     out (n, dim), table (vocab, dim) */
void lq_embedding_ref(float *out, const float *table, const int32_t *ids, int64_t n, int64_t dim);

/* out = x / sqrt(mean(x^2) + eps) * w, per row.    x, out (n, dim), w (dim)
 * The sum of squares is accumulated in double (HF computes in fp32; double
 * keeps us closer to the float64 golden). out may alias x. */
void lq_rmsnorm_ref(float *out, const float *x, const float *w, int64_t n, int64_t dim, float eps);

/* Rotary embedding in HF's rotate-half layout, in place.
 * x (n, n_heads, head_dim); pos (n) positions; cos/sin tables (max_pos, head_dim/2)
 * x[.., i] <- x[i] cos - x[i + h/2] sin ; x[.., i + h/2] <- x[i + h/2] cos + x[i] sin */
void lq_rope_ref(float *x, const int32_t *pos, int64_t n, int n_heads, int head_dim,
                 const float *cos_tab, const float *sin_tab);

/* out = silu(gate) * up                           all (n) */
void lq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n);

/* y = x W^T + b                                   x (m, k), W (n, k), b (n) or NULL, y (m, n) */
void lq_matmul_ref(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k);
void lq_matmul_cpu(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k);

/* Causal GQA attention for T new queries at positions pos0 .. pos0+T-1 over a
 * cache that already holds keys/values for positions 0 .. pos0+T-1.
 * q (T, n_heads*hd); k_cache, v_cache (>= pos0+T, n_kv*hd); out (T, n_heads*hd).
 * Query head h reads kv head h / (n_heads/n_kv). Scale 1/sqrt(hd).
 * window > 0: a query at position p sees keys p-window+1 .. p (Mistral). */
void lq_attention_ref(float *out, const float *q, const float *k_cache, const float *v_cache, int T,
                      int pos0, int n_heads, int n_kv, int hd, int window);
void lq_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache, int T,
                      int pos0, int n_heads, int n_kv, int hd, int window);

/* nll[t] = -log softmax(logits[t])[target[t]], in double.  logits (T, V) */
void lq_nll_ref(double *nll, const float *logits, const int32_t *target, int64_t T, int64_t V);

/* RoPE frequency tables: cos/sin (max_pos, head_dim/2), computed in double.
 * rope_scaling: 0 none; 1 llama3 (factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings). */
typedef struct {
    double theta;
    int type; /* 0 none, 1 llama3, 2 linear */
    double factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} lq_rope_params;
void lq_rope_inv_freq(const lq_rope_params *p, int head_dim, double *inv_freq);
void lq_rope_tables(const lq_rope_params *p, int head_dim, int max_pos, float *cos_tab, float *sin_tab);

#endif
