/* bench_common.cuh — what the dev benchmarks of kernels/dev/ share: error
 * macros that exit, random fills (never all zero), a float comparison for
 * qsort, and the entry points they time that are not in the public headers.
 * Include after <cuda_fp16.h>, <stdio.h>, <stdlib.h> and lq_kernels.h. */
#ifndef LQ_DEV_BENCH_COMMON_CUH
#define LQ_DEV_BENCH_COMMON_CUH

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define LQ(x)                                                                                      \
    do {                                                                                           \
        if ((x) != LQ_OK) {                                                                        \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, lq_last_error());            \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

__global__ void fill_half(__half *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 29;
        z *= 0xBF58476D1CE4E5B9ull;
        z ^= z >> 32;
        p[i] = __float2half((float)(z & 0xFFFF) / 32768.0f - 1.0f);
    }
}
/* U(-amp, amp) (16-bit resolution) */
__global__ void fill_float(float *p, size_t n, uint64_t seed, float amp) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 31;
        p[i] = amp * ((float)(z & 0xFFFF) / 32768.0f - 1.0f);
    }
}

/* the fp32-unit prefill (kernels/attention_cuda.cu), not in the public header */
extern "C" lq_status lq_attention_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                            const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                            int pos0, int n_heads, int n_kv, int hd, int window, void *stream);

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* kernels/attention_cuda.cu, not in the public header: the fp32-unit kernels */
extern "C" lq_status lq_attention_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                            const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B, int T,
                                            int pos0, int n_heads, int n_kv, int hd, int window, void *stream);
extern "C" lq_status lq_attention_decode_simt_cuda(void *out, const float *q, int64_t ldq, const void *k_cache,
                                                   const void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, int B,
                                                   const int32_t *pos, int n_heads, int n_kv, int hd, int window,
                                                   int n_splits, void *workspace, void *stream);


/* The trace tools' shared pieces (bench_attn_trace.cu, bench_w4_trace.cu; they include <vector> and
 * <algorithm> first): the median of a list, and the graph time per launch of a captured graph of R launches
 * (median of `reps` replays, us). */
#ifdef LQ_DEV_TRACE_TOOLS
static double dev_median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}
static double dev_graph_us(cudaGraphExec_t ge, cudaStream_t s, int R, int reps) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<double> per;
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(e0, s));
        CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        per.push_back(ms * 1000.0 / R);
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return dev_median(per);
}
#endif

#endif
