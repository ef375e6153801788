/* nocuda.c — built instead of the .cu files when nvcc is absent (CUDA=0):
 * no devices, and a clear error for anything that needs one. */
#include "lq_cuda.h"

int lq_cuda_device_count(void) { return 0; }

lq_status lq_cuda_device_describe(int dev, char *buf, size_t n) {
    if (n) buf[0] = 0;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA (no nvcc at build time); device %d unavailable", dev);
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

lq_status lq_cuda_bench_copy(int dev, size_t n_bytes, int iters, lq_bench_timing *t, double *tbps) {
    (void)n_bytes;
    (void)iters;
    (void)t;
    (void)tbps;
    return lq_error(LQ_ERR_UNSUPPORTED, "lq was built without CUDA: no GPU benchmarks (device %d)", dev);
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
