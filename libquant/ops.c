/* ops.c — reference (scalar) and CPU (OpenBLAS/OpenMP) versions of the
 * transformer ops declared in lq_ops.h. Tested by tests/test_ops.c. */
#include "lq_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void lq_embedding_ref(float *out, const float *table, const int32_t *ids, int64_t n, int64_t dim) {
    for (int64_t i = 0; i < n; i++) memcpy(out + i * dim, table + (int64_t)ids[i] * dim, (size_t)dim * sizeof(float));
}

void lq_rmsnorm_ref(float *out, const float *x, const float *w, int64_t n, int64_t dim, float eps) {
#pragma omp parallel for if (n * dim > 4 * 100000)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        double ss = 0;
        for (int64_t j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        float *oi = out + i * dim;
        for (int64_t j = 0; j < dim; j++) oi[j] = xi[j] * r * w[j];
    }
}

void lq_rope_ref(float *x, const int32_t *pos, int64_t n, int n_heads, int head_dim,
                 const float *cos_tab, const float *sin_tab) {
    int half = head_dim / 2;
#pragma omp parallel for if (n * n_heads * head_dim > 4 * 100000)
    for (int64_t r = 0; r < n; r++) {
        const float *c = cos_tab + (int64_t)pos[r] * half, *s = sin_tab + (int64_t)pos[r] * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (r * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

void lq_swiglu_ref(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for if (n > 4 * 100000)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void lq_matmul_ref(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = b ? b[j] : 0.0;
            for (int64_t t = 0; t < k; t++) acc += (double)x[i * k + t] * w[j * k + t];
            y[i * n + j] = (float)acc;
        }
}

void lq_matmul_cpu(float *y, const float *x, const float *w, const float *b, int64_t m, int64_t n, int64_t k) {
    if (b) {
        for (int64_t i = 0; i < m; i++) memcpy(y + i * n, b, (size_t)n * sizeof(float));
    }
    if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0f, w, (int)k, x, 1, b ? 1.0f : 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)k, w, (int)k,
                    b ? 1.0f : 0.0f, y, (int)n);
}

void lq_attention_ref(float *out, const float *q, const float *k_cache, const float *v_cache, int T,
                      int pos0, int n_heads, int n_kv, int hd, int window) {
    int group = n_heads / n_kv;
    int kv_dim = n_kv * hd;
    double scale = 1.0 / sqrt((double)hd);
    double *sc = malloc(sizeof(double) * (size_t)(pos0 + T));
    if (!sc) return; /* reference only: tests size their inputs */
    for (int t = 0; t < T; t++) {
        int p = pos0 + t;
        int lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + ((int64_t)t * n_heads + h) * hd;
            int kvh = h / group;
            double mx = -INFINITY;
            for (int j = lo; j <= p; j++) {
                const float *kj = k_cache + (int64_t)j * kv_dim + kvh * hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)qh[d] * kj[d];
                sc[j] = s * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            double sum = 0;
            for (int j = lo; j <= p; j++) {
                sc[j] = exp(sc[j] - mx);
                sum += sc[j];
            }
            float *o = out + ((int64_t)t * n_heads + h) * hd;
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int j = lo; j <= p; j++) acc += sc[j] * v_cache[(int64_t)j * kv_dim + kvh * hd + d];
                o[d] = (float)(acc / sum);
            }
        }
    }
    free(sc);
}

/* Parallel regions only pay off above ~1e5 multiply-adds: below that the
 * fork/join (and, on a loaded machine, a descheduled thread at the barrier)
 * costs more than the work. */
#define LQ_OMP_MIN_WORK 100000

/* Same math in float with the score row in a per-thread buffer; parallel over
 * (query, head). Softmax max-subtracted; accumulation in float is enough for
 * the 1e-4 logit tolerance at these context lengths (tests check it). */
void lq_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache, int T,
                      int pos0, int n_heads, int n_kv, int hd, int window) {
    int group = n_heads / n_kv;
    int kv_dim = n_kv * hd;
    float scale = (float)(1.0 / sqrt((double)hd));
    int64_t total = (int64_t)T * n_heads;
#pragma omp parallel if (total * (int64_t)(pos0 + T) * hd > LQ_OMP_MIN_WORK)
    {
        float *sc = malloc(sizeof(float) * (size_t)(pos0 + T));
#pragma omp for schedule(dynamic, 4)
        for (int64_t th = 0; th < total; th++) {
            if (!sc) continue;
            int t = (int)(th / n_heads), h = (int)(th % n_heads);
            int p = pos0 + t;
            int lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
            const float *qh = q + th * hd;
            int kvh = h / group;
            float mx = -INFINITY;
            for (int j = lo; j <= p; j++) {
                const float *kj = k_cache + (int64_t)j * kv_dim + kvh * hd;
                float s = 0;
                for (int d = 0; d < hd; d++) s += qh[d] * kj[d];
                s *= scale;
                sc[j] = s;
                if (s > mx) mx = s;
            }
            float sum = 0;
            for (int j = lo; j <= p; j++) {
                sc[j] = expf(sc[j] - mx);
                sum += sc[j];
            }
            float inv = 1.0f / sum;
            float *o = out + th * hd;
            for (int d = 0; d < hd; d++) o[d] = 0;
            for (int j = lo; j <= p; j++) {
                const float *vj = v_cache + (int64_t)j * kv_dim + kvh * hd;
                float a = sc[j] * inv;
                for (int d = 0; d < hd; d++) o[d] += a * vj[d];
            }
        }
        free(sc);
    }
}

void lq_nll_ref(double *nll, const float *logits, const int32_t *target, int64_t T, int64_t V) {
#pragma omp parallel for if (T * V > 100000)
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * V;
        double mx = -INFINITY;
        for (int64_t v = 0; v < V; v++)
            if (l[v] > mx) mx = l[v];
        double s = 0;
        for (int64_t v = 0; v < V; v++) s += exp((double)l[v] - mx);
        nll[t] = -((double)l[target[t]] - mx - log(s));
    }
}

void lq_rope_inv_freq(const lq_rope_params *p, int head_dim, double *inv_freq) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(p->theta, (double)(2 * i) / (double)head_dim);
        if (p->type == 1) {
            /* Llama-3.1 "llama3" scaling: long wavelengths divided by factor,
             * short ones kept, a smooth blend between (HF _compute_llama3_parameters). */
            double low_wl = p->original_max_pos / p->low_freq_factor;
            double high_wl = p->original_max_pos / p->high_freq_factor;
            double wl = 2.0 * M_PI / f;
            if (wl > low_wl) f = f / p->factor;
            else if (wl >= high_wl) {
                double smooth = (p->original_max_pos / wl - p->low_freq_factor) /
                                (p->high_freq_factor - p->low_freq_factor);
                f = (1.0 - smooth) * f / p->factor + smooth * f;
            }
        } else if (p->type == 2) {
            f = f / p->factor; /* linear: positions divided by factor */
        }
        inv_freq[i] = f;
    }
}

void lq_rope_tables(const lq_rope_params *p, int head_dim, int max_pos, float *cos_tab, float *sin_tab) {
    int half = head_dim / 2;
    double inv[1024];
    lq_rope_inv_freq(p, head_dim, inv);
    for (int pos = 0; pos < max_pos; pos++)
        for (int i = 0; i < half; i++) {
            double a = (double)pos * inv[i];
            cos_tab[(int64_t)pos * half + i] = (float)cos(a);
            sin_tab[(int64_t)pos * half + i] = (float)sin(a);
        }
}
