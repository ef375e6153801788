/* nocuda.c — built instead of the .cu files when nvcc is absent (CUDA=0):
 * no devices, and a clear error for anything that needs one. */
#include "lq_cuda.h"

int lq_cuda_device_count(void) { return 0; }

lq_status lq_cuda_device_describe(int dev, char *buf, size_t n) {
    if (n) buf[0] = 0;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA (no nvcc at build time); device %d unavailable", dev);
}

lq_status lq_cuda_engines_kld(lq_engine *base, lq_engine *quant, const int32_t *tokens, int B, int T, int first,
                              lq_kld_token *out) {
    (void)base, (void)quant, (void)tokens, (void)B, (void)T, (void)first, (void)out;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU KLD statistics");
}

lq_cuda_engine_opts lq_cuda_engine_opts_default(void) {
    lq_cuda_engine_opts o = {LQ_F16, 0, 1};
    return o;
}

lq_status lq_cuda_engine_new(const lq_model *m, const lq_cuda_engine_opts *opts, int max_B, int max_ctx,
                             lq_engine **out) {
    (void)m;
    (void)opts;
    (void)max_B;
    (void)max_ctx;
    *out = NULL;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA (no nvcc at build time): --device cuda is unavailable");
}

void lq_cuda_bench_set_graphs(int on) { (void)on; }
void lq_cuda_bench_set_warm_ms(double ms) { (void)ms; }
double lq_cuda_bench_warm_ms(void) { return 0.0; }
void lq_cuda_set_pdl(int on) { (void)on; }
int lq_cuda_bench_graphs(void) { return 0; }

lq_status lq_cuda_bench_copy(int dev, size_t n_bytes, int iters, lq_bench_timing *t, double *tbps) {
    (void)n_bytes;
    (void)iters;
    (void)t;
    (void)tbps;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

lq_status lq_cuda_bench_read(int dev, size_t n_bytes, size_t rotate_bytes, int iters, lq_bench_timing *t, double *tbps) {
    (void)n_bytes;
    (void)rotate_bytes;
    (void)iters;
    (void)t;
    (void)tbps;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

lq_status lq_cuda_read_xor(const void *d, size_t n_bytes, uint32_t out[4]) {
    (void)d;
    (void)n_bytes;
    (void)out;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA");
}

lq_status lq_cuda_bench_gemm_f16_out(int dev, int M, int N, int K, int f32y, size_t rotate_bytes, int iters,
                                     lq_bench_timing *t) {
    (void)f32y;
    return lq_cuda_bench_gemm_f16(dev, M, N, K, rotate_bytes, iters, t);
}

lq_status lq_cuda_bench_gemm_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters, lq_bench_timing *t) {
    (void)M;
    (void)N;
    (void)K;
    (void)rotate_bytes;
    (void)iters;
    (void)t;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

int lq_w4a16_wgmma_device(void) { return 0; }

lq_status lq_cuda_bench_w4a16(int dev, int M, int N, int K, int G, int sym, int path, size_t rotate_bytes, int iters,
                              lq_bench_timing *t) {
    (void)M;
    (void)N;
    (void)K;
    (void)G;
    (void)sym;
    (void)path;
    (void)rotate_bytes;
    (void)iters;
    (void)t;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

lq_status lq_cuda_bench_gemv_f16(int dev, int M, int N, int K, size_t rotate_bytes, int iters, lq_bench_timing *t) {
    (void)M;
    (void)N;
    (void)K;
    (void)rotate_bytes;
    (void)iters;
    (void)t;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

lq_status lq_cuda_bench_attention_decode(int dev, int B, int C, int n_heads, int n_kv, int hd, size_t rotate_bytes,
                                         int iters, lq_bench_timing *t, int *splits) {
    (void)B, (void)C, (void)n_heads, (void)n_kv, (void)hd, (void)rotate_bytes, (void)iters, (void)t, (void)splits;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
}

/* ---- GPU GPTQ (kernels/lq_gptq_cuda.h): unavailable ---- */
#include "lq_gptq_cuda.h"

static lq_status no_gptq_gpu(void) {
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA (no nvcc at build time): GPU GPTQ is unavailable");
}
lq_status lq_gptq_cuda_new(int device, lq_gptq_cuda **out) {
    (void)device;
    *out = NULL;
    return no_gptq_gpu();
}
void lq_gptq_cuda_free(lq_gptq_cuda *g) { (void)g; }
size_t lq_gptq_cuda_peak_bytes(const lq_gptq_cuda *g) { return (void)g, 0; }
const char *lq_gptq_cuda_device_name(const lq_gptq_cuda *g) { return (void)g, ""; }
lq_status lq_gptq_cuda_malloc(lq_gptq_cuda *g, void **p, size_t n_bytes, const char *what) {
    (void)g, (void)n_bytes, (void)what;
    *p = NULL;
    return no_gptq_gpu();
}
void lq_gptq_cuda_dfree(void *p) { (void)p; }
lq_status lq_gptq_cuda_upload(lq_gptq_cuda *g, void *dst, const void *src, size_t n) { return (void)g, (void)dst, (void)src, (void)n, no_gptq_gpu(); }
lq_status lq_gptq_cuda_download(lq_gptq_cuda *g, void *dst, const void *src, size_t n) { return (void)g, (void)dst, (void)src, (void)n, no_gptq_gpu(); }
lq_status lq_gptq_cuda_memset(lq_gptq_cuda *g, void *dst, int b, size_t n) { return (void)g, (void)dst, (void)b, (void)n, no_gptq_gpu(); }
lq_status lq_hessian_accum_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X, int64_t rows) {
    return (void)g, (void)S, (void)K, (void)X, (void)rows, no_gptq_gpu();
}
lq_status lq_hessian_accum_host_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X, int64_t rows) {
    return (void)g, (void)S, (void)K, (void)X, (void)rows, no_gptq_gpu();
}
lq_status lq_hessian_rel_err_cuda(lq_gptq_cuda *g, const double *S, int64_t K, const float *W, const float *What,
                                  int64_t N, double *rel) {
    (void)g, (void)S, (void)K, (void)W, (void)What, (void)N;
    *rel = 0;
    return no_gptq_gpu();
}
lq_status lq_gptq_hinv_cuda(lq_gptq_cuda *g, const double *H, int64_t K, double percdamp, int max_escalations,
                            float *U, double *percdamp_used, double *damp_used, int *escalations) {
    (void)g, (void)H, (void)K, (void)percdamp, (void)max_escalations, (void)U, (void)percdamp_used, (void)damp_used,
        (void)escalations;
    return no_gptq_gpu();
}
lq_status lq_gptq_update_cuda(lq_gptq_cuda *g, float *W, int64_t N, int64_t K, const float *U,
                              const lq_quant_params *p, int64_t G, const int32_t *col_group, int static_params,
                              uint16_t *scales, uint8_t *zeros, uint8_t *codes, int block_size) {
    (void)g, (void)W, (void)N, (void)K, (void)U, (void)p, (void)G, (void)col_group, (void)static_params, (void)scales,
        (void)zeros, (void)codes, (void)block_size;
    return no_gptq_gpu();
}
lq_status lq_rtn_quantize_cuda(lq_gptq_cuda *g, const float *w, int64_t rows, int64_t cols, const lq_quant_params *p,
                               uint8_t *codes, uint16_t *scales, uint8_t *zeros) {
    (void)g, (void)w, (void)rows, (void)cols, (void)p, (void)codes, (void)scales, (void)zeros;
    return no_gptq_gpu();
}
void *lq_gptq_cuda_stream(const lq_gptq_cuda *g) { return (void)g, NULL; }
void *lq_gptq_cuda_blas(const lq_gptq_cuda *g) { return (void)g, NULL; }
lq_status lq_calib_cuda_new(lq_gptq_cuda *g, const lq_config *c, const float *x0, int n_seq, int L,
                            lq_calib_cuda **out) {
    (void)g, (void)c, (void)x0, (void)n_seq, (void)L;
    *out = NULL;
    return no_gptq_gpu();
}
void lq_calib_cuda_free(lq_calib_cuda *s) { (void)s; }
lq_status lq_calib_cuda_norm_hessian(lq_calib_cuda *s, const float *norm, double *S) {
    return (void)s, (void)norm, (void)S, no_gptq_gpu();
}
lq_status lq_calib_cuda_attention(lq_calib_cuda *s, const lq_layer_weights *lw, double *S) {
    return (void)s, (void)lw, (void)S, no_gptq_gpu();
}
lq_status lq_calib_cuda_attn_residual(lq_calib_cuda *s, const float *wo) { return (void)s, (void)wo, no_gptq_gpu(); }
lq_status lq_calib_cuda_mlp(lq_calib_cuda *s, const lq_layer_weights *lw, double *S, int residual) {
    return (void)s, (void)lw, (void)S, (void)residual, no_gptq_gpu();
}
lq_status lq_hessian_diag_cuda(lq_gptq_cuda *g, const double *S, int64_t K, double *diag_host) {
    return (void)g, (void)S, (void)K, (void)diag_host, no_gptq_gpu();
}
lq_status lq_hessian_permute_cuda(lq_gptq_cuda *g, double *Hp, const double *S, int64_t K, double f,
                                  const int32_t *perm_host) {
    return (void)g, (void)Hp, (void)S, (void)K, (void)f, (void)perm_host, no_gptq_gpu();
}
