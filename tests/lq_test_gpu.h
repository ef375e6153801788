/* lq_test_gpu.h — the CUDA test suites' shared fixture and buffer helpers
 * (tests/test_kernels.c, test_w4a16_gpu.c, test_attention_fa_gpu.c): a
 * context on GPU 0 when there is one (cmocka setup/teardown), NEED_GPU to skip
 * without it (LQ_REQUIRE_GPU=1 turns the skip into a failure), OK() for lq
 * calls, device buffers from / to fp32 host values in any dtype. Include
 * after lq_test.h, lq_cuda.h and lq_dtype.h, under LQ_HAVE_CUDA. */
#ifndef LQ_TEST_GPU_H
#define LQ_TEST_GPU_H

typedef struct {
    lq_cuda_ctx *ctx;
    void *stream, *blas;
    int sm;
    uint64_t seed;
} fixture;

static inline int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    if (lq_cuda_device_count() > 0) {
        if (lq_cuda_ctx_new(0, &f->ctx) != LQ_OK) {
            print_message("lq_cuda_ctx_new: %s\n", lq_last_error());
            return -1;
        }
        f->stream = lq_cuda_ctx_stream(f->ctx);
        f->blas = lq_cuda_ctx_blas(f->ctx);
        f->sm = lq_cuda_ctx_sm_count(f->ctx);
        char desc[512];
        if (lq_cuda_device_describe(0, desc, sizeof desc) == LQ_OK) print_message("device: %s\n", desc);
    }
    f->seed = lq_test_seed();
    return 0;
}

static inline int teardown(void **state) {
    fixture *f = *state;
    lq_cuda_ctx_free(f->ctx);
    free(f);
    return 0;
}

#define NEED_GPU(f) LQ_SKIP_IF_NO_GPU((f)->ctx ? 1 : 0)

#define OK(call)                                                                                    \
    do {                                                                                            \
        lq_status s_ = (call);                                                                      \
        if (s_ != LQ_OK) fail_msg("%s: %s", #call, lq_last_error());                                \
    } while (0)

static inline void *dmalloc(size_t n_bytes) {
    void *p = NULL;
    assert_int_equal(lq_cuda_malloc(&p, n_bytes, "test buffer"), LQ_OK);
    return p;
}

/* Round x to dtype dt in place (what a 16-bit buffer holds). */
static inline void round_to(lq_dtype dt, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (dt == LQ_F16) x[i] = lq_f16_to_f32(lq_f32_to_f16(x[i]));
        else if (dt == LQ_BF16) x[i] = lq_bf16_to_f32(lq_f32_to_bf16(x[i]));
    }
}

/* Upload fp32 host values converted to dt; returns the device pointer. */
static inline void *upload_as(lq_dtype dt, const float *h, size_t n) {
    size_t es = lq_dtype_size(dt);
    void *tmp = malloc(n * es + 1), *d = dmalloc(n * es);
    assert_int_equal(lq_convert_from_f32(dt, h, tmp, n), 0);
    assert_int_equal(lq_cuda_upload(d, tmp, n * es), LQ_OK);
    free(tmp);
    return d;
}

static inline void download_as(lq_dtype dt, const void *d, size_t n, float *h) {
    size_t es = lq_dtype_size(dt);
    void *tmp = malloc(n * es + 1);
    assert_int_equal(lq_cuda_download(tmp, d, n * es), LQ_OK);
    assert_int_equal(lq_convert_to_f32(dt, tmp, h, n), 0);
    free(tmp);
}

/* NaN in every float format: all-ones bytes. */
static inline void poison(void *d, size_t n_bytes) { assert_int_equal(lq_cuda_memset(d, 0xFF, n_bytes), LQ_OK); }

static inline float *hrand(uint64_t *s, size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x + 4);
    lq_test_fill(s, x, n, lo, hi);
    return x;
}

#endif
