/* ops_cuda.cu — CUDA twins of the elementwise and row ops of libquant/ops.c
 * (embedding, RMSNorm fused with the residual add, RoPE, SwiGLU, KV-cache
 * store, NLL, argmax), the cuBLAS matmul, the device-memory/context
 * helpers of kernels/lq_kernels.h, and the per-device limits, shared-memory
 * opt-in and PDL switch the launchers share (kernels/cuda_common.cuh). These
 * ops are memory-bound and tiny next to the GEMMs: one simple kernel each,
 * written for clarity over the last few percent. Tested by
 * tests/test_kernels.c against the lq_<op>_ref functions. */
#include "cuda_common.cuh"

extern "C" {
#include "lq_kernels.h"
}

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- memory and context ---------------- */

extern "C" lq_status lq_cuda_malloc(void **p, size_t n_bytes, const char *what) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, n_bytes ? n_bytes : 1);
    if (e == cudaSuccess) return LQ_OK;
    *p = NULL;
    (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation)
        return lq_error(LQ_ERR_CUDA,
                        "out of GPU memory allocating %s: asked for %zu bytes (%.2f GiB), %zu bytes (%.2f GiB) free "
                        "of %.2f GiB",
                        what, n_bytes, n_bytes / 1073741824.0, fr, fr / 1073741824.0, tot / 1073741824.0);
    return lq_error(LQ_ERR_CUDA, "cudaMalloc %s (%zu bytes): %s", what, n_bytes, cudaGetErrorString(e));
}

extern "C" void lq_cuda_free(void *p) {
    if (p) (void)cudaFree(p);
}

extern "C" lq_status lq_cuda_upload(void *dst, const void *src, size_t n_bytes) {
    LQ_CUDA_RET(cudaMemcpy(dst, src, n_bytes, cudaMemcpyHostToDevice), "cudaMemcpy host to device");
    return LQ_OK;
}

extern "C" lq_status lq_cuda_download(void *dst, const void *src, size_t n_bytes) {
    LQ_CUDA_RET(cudaMemcpy(dst, src, n_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device to host");
    return LQ_OK;
}

extern "C" lq_status lq_cuda_memset(void *dst, int byte, size_t n_bytes) {
    /* cudaMemset runs on the legacy default stream and may return before it is
     * done; lq's streams are non-blocking (they do not wait for that stream),
     * so without this wait a kernel launched next on them can race the memset
     * (seen: test_kernels' NaN poison landing after swiglu's output, H200). */
    LQ_CUDA_RET(cudaMemset(dst, byte, n_bytes), "cudaMemset");
    LQ_CUDA_RET(cudaDeviceSynchronize(), "cudaMemset (wait)");
    return LQ_OK;
}

extern "C" lq_status lq_cuda_sync(void *stream) {
    LQ_CUDA_RET(cudaStreamSynchronize(lq_stream(stream)), "cudaStreamSynchronize");
    return LQ_OK;
}

struct lq_cuda_ctx {
    int device, sm_count;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws; /* cuBLAS workspace we own: no allocations inside graph capture */
};

#define LQ_BLAS_WS_BYTES ((size_t)32 << 20)

extern "C" lq_status lq_cuda_ctx_new(int device, lq_cuda_ctx **out) {
    lq_status st = LQ_OK;
    *out = NULL;
    lq_cuda_ctx *c = (lq_cuda_ctx *)calloc(1, sizeof *c);
    LQ_RETURN_IF(!c, LQ_ERR_NOMEM, "out of memory (CUDA context)");
    c->device = device;
    cublasStatus_t bs;
    LQ_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
    {
        lq_device_limits lim;
        LQ_CUDA_TRY(lq_device_limits_current(&lim), "device limits (multiprocessors)");
        c->sm_count = lim.sm_count;
    }
    LQ_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    bs = cublasCreate(&c->blas);
    LQ_FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, LQ_ERR_CUDA, "cublasCreate: %s", cublasGetStatusString(bs));
    LQ_TRY(lq_cuda_malloc(&c->blas_ws, LQ_BLAS_WS_BYTES, "cuBLAS workspace"));
    bs = cublasSetWorkspace(c->blas, c->blas_ws, LQ_BLAS_WS_BYTES);
    LQ_FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, LQ_ERR_CUDA, "cublasSetWorkspace: %s", cublasGetStatusString(bs));
    bs = cublasSetStream(c->blas, c->stream);
    LQ_FAIL_IF(bs != CUBLAS_STATUS_SUCCESS, LQ_ERR_CUDA, "cublasSetStream: %s", cublasGetStatusString(bs));
    *out = c;
    return LQ_OK;
fail:
    lq_cuda_ctx_free(c);
    return st;
}

extern "C" void lq_cuda_ctx_free(lq_cuda_ctx *c) {
    if (!c) return;
    if (c->blas) cublasDestroy(c->blas);
    lq_cuda_free(c->blas_ws);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" void *lq_cuda_ctx_stream(const lq_cuda_ctx *c) { return (void *)c->stream; }
extern "C" void *lq_cuda_ctx_blas(const lq_cuda_ctx *c) { return (void *)c->blas; }
extern "C" int lq_cuda_ctx_sm_count(const lq_cuda_ctx *c) { return c->sm_count; }

/* ---------------- per-device limits and shared-memory opt-in (cuda_common.cuh) ---------------- */

/* One entry per device, filled once. The fast path is an acquire load of the
 * entry's flag, which the filler stores (release) after the entry: a reader
 * that sees the flag sees the whole entry. Fills — and lq_smem_optin_fn's
 * attribute calls with their records — happen under one lock, so no entry or
 * record is written by two threads at once. */
static lq_device_limits dev_limits[LQ_MAX_DEVICES];
static int dev_limits_filled[LQ_MAX_DEVICES];
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;

static cudaError_t ask_limits(int dev, lq_device_limits *l) {
    cudaError_t e;
    memset(l, 0, sizeof *l);
    l->dev = dev;
    if ((e = cudaDeviceGetAttribute(&l->sm_count, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&l->cc_major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&l->cc_minor, cudaDevAttrComputeCapabilityMinor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&l->smem_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) !=
            cudaSuccess ||
        (e = cudaDeviceGetAttribute(&l->smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev)) != cudaSuccess)
        memset(l, 0, sizeof *l);
    return e;
}

cudaError_t lq_device_limits_current(lq_device_limits *out) {
    memset(out, 0, sizeof *out);
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    if (dev < 0 || dev >= LQ_MAX_DEVICES) return ask_limits(dev, out); /* not cached */
    if (!__atomic_load_n(&dev_limits_filled[dev], __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&dev_lock);
        if (!__atomic_load_n(&dev_limits_filled[dev], __ATOMIC_RELAXED)) {
            lq_device_limits l;
            e = ask_limits(dev, &l);
            if (e == cudaSuccess) {
                dev_limits[dev] = l;
                __atomic_store_n(&dev_limits_filled[dev], 1, __ATOMIC_RELEASE);
            }
        }
        pthread_mutex_unlock(&dev_lock);
        if (e != cudaSuccess) return e; /* not cached: asked again next time */
    }
    *out = dev_limits[dev];
    return cudaSuccess;
}

cudaError_t lq_smem_optin_fn(const void *kernel, int dev, int bytes, int *done) {
    const int cached = dev >= 0 && dev < LQ_MAX_DEVICES;
    if (cached && __atomic_load_n(&done[dev], __ATOMIC_ACQUIRE) >= bytes) return cudaSuccess;
    cudaError_t e = cudaSuccess;
    pthread_mutex_lock(&dev_lock);
    if (!cached || __atomic_load_n(&done[dev], __ATOMIC_RELAXED) < bytes) {
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        if (e == cudaSuccess && cached) __atomic_store_n(&done[dev], bytes, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&dev_lock);
    return e;
}

/* PDL (cuda_common.cuh): on for sm_90+ devices unless LQ_PDL=0 (read once;
 * benign race: every writer stores the same value). */
static int pdl_env = -1;
extern "C" void lq_cuda_set_pdl(int on) { pdl_env = on != 0; }
static int pdl_env_on(void) {
    int env = pdl_env;
    if (env < 0) {
        const char *e = getenv("LQ_PDL");
        pdl_env = env = !(e && !strcmp(e, "0"));
    }
    return env;
}
int lq_pdl_on(const lq_device_limits *lim) { return pdl_env_on() && lim->cc_major >= 9; }
int lq_pdl_enabled(void) {
    if (!pdl_env_on()) return 0; /* no device query when off */
    lq_device_limits lim;
    return lq_device_limits_current(&lim) == cudaSuccess && lim.cc_major >= 9;
}

/* ---------------- embedding ---------------- */

template <typename T>
__global__ void embedding_kernel(float *out, const T *table, const int32_t *ids, int64_t dim) {
    int64_t i = blockIdx.x;
    const T *row = table + (int64_t)ids[i] * dim;
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[i * dim + j] = lq_ld(row[j]);
}

extern "C" lq_status lq_embedding_cuda(float *out, const void *table, lq_dtype table_dtype, const int32_t *ids,
                                       int64_t n, int64_t dim, void *stream) {
    if (n <= 0) return LQ_OK;
    LQ_RETURN_IF(n > INT32_MAX, LQ_ERR_ARG, "lq_embedding_cuda: %lld rows", (long long)n);
    int threads = dim >= 256 ? 256 : 64;
    LQ_DISPATCH(table_dtype, "lq_embedding_cuda",
                embedding_kernel<TE><<<(unsigned)n, threads, 0, lq_stream(stream)>>>(out, (const TE *)table, ids, dim));
    LQ_LAUNCH_RET("embedding_kernel");
    return LQ_OK;
}

/* ---------------- RMSNorm (+ residual add) ---------------- */

/* One block per row. Pass 1 adds delta into x (each thread owns the same
 * columns in both passes, so it re-reads only what it wrote) and sums squares
 * in double; pass 2 writes (x * r) * w in float, the reference's order. */
/* Sum of every thread's ss over the block (warp trees, then warp 0 over the
 * warps' sums through red[32]); every thread gets the total. */
__device__ __forceinline__ double rms_block_sum(double ss, double *red) {
    ss = lq_warp_sum_d(ss);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) red[wid] = ss;
    __syncthreads();
    if (wid == 0) {
        ss = lane < nw ? red[lane] : 0.0;
        ss = lq_warp_sum_d(ss);
        if (lane == 0) red[0] = ss;
    }
    __syncthreads();
    return red[0];
}

template <typename TO>
__global__ void rmsnorm_kernel(TO *out, float *x, const float *delta, const float *w, int64_t dim, float eps) {
    __shared__ double red[32];
    lq_pdl_trigger(); /* launched with PDL (cuda_common.cuh): nothing before the wait */
    lq_pdl_wait();
    int64_t row = blockIdx.x;
    float *xr = x + row * dim;
    double ss = 0;
    if (delta) {
        const float *dr = delta + row * dim;
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            float v = xr[j] + dr[j];
            xr[j] = v;
            ss += (double)v * v;
        }
    } else {
        for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
            float v = xr[j];
            ss += (double)v * v;
        }
    }
    float r = (float)(1.0 / sqrt(rms_block_sum(ss, red) / (double)dim + (double)eps));
    TO *orow = out + row * dim;
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) orow[j] = lq_st<TO>(__fmul_rn(__fmul_rn(xr[j], r), w[j]));
}

/* The same computation with 16-byte accesses and every element of the row
 * in registers: thread t owns float4 chunks t, t + blockDim, ... (V of them,
 * the row is dim4 chunks). The weights are loaded before the PDL wait (they
 * are not written during a step), so at decode (one row, one block) the
 * kernel is one round trip for x/delta after the previous kernel ends, one
 * block reduction and the stores. Squares summed in double per thread, then
 * the warp tree: the same double sum as the kernel above up to the order of
 * additions (|error| ~1e-13 relative, far below a float ulp of r). */
template <typename TO, int V>
__global__ void __launch_bounds__(1024)
    rmsnorm_vec_kernel(TO *out, float *x, const float *delta, const float *w, int dim4, float eps) {
    __shared__ double red[32];
    lq_pdl_trigger();
    const int row = blockIdx.x, tid = threadIdx.x;
    float4 wv[V], xv[V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = tid + k * blockDim.x;
        if (j < dim4) wv[k] = reinterpret_cast<const float4 *>(w)[j];
    }
    lq_pdl_wait();
    float4 *xr = reinterpret_cast<float4 *>(x) + (int64_t)row * dim4;
    const float4 *dr = delta ? reinterpret_cast<const float4 *>(delta) + (int64_t)row * dim4 : NULL;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = tid + k * blockDim.x;
        if (j < dim4) xv[k] = xr[j];
    }
    double ss = 0;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = tid + k * blockDim.x;
        if (j < dim4) {
            if (dr) {
                const float4 d = dr[j];
                xv[k].x += d.x, xv[k].y += d.y, xv[k].z += d.z, xv[k].w += d.w;
                xr[j] = xv[k];
            }
            ss += (double)xv[k].x * xv[k].x + (double)xv[k].y * xv[k].y + (double)xv[k].z * xv[k].z +
                  (double)xv[k].w * xv[k].w;
        }
    }
    const float r = (float)(1.0 / sqrt(rms_block_sum(ss, red) / (double)(4 * dim4) + (double)eps));
    TO *orow = out + (int64_t)row * 4 * dim4;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int j = tid + k * blockDim.x;
        if (j < dim4) {
            const float4 v = xv[k], g = wv[k];
            orow[4 * j] = lq_st<TO>(__fmul_rn(__fmul_rn(v.x, r), g.x));
            orow[4 * j + 1] = lq_st<TO>(__fmul_rn(__fmul_rn(v.y, r), g.y));
            orow[4 * j + 2] = lq_st<TO>(__fmul_rn(__fmul_rn(v.z, r), g.z));
            orow[4 * j + 3] = lq_st<TO>(__fmul_rn(__fmul_rn(v.w, r), g.w));
        }
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" lq_status lq_rmsnorm_cuda(void *out, lq_dtype out_dtype, float *x, const float *delta, const float *w,
                                     int64_t n, int64_t dim, float eps, void *stream) {
    if (n <= 0) return LQ_OK;
    LQ_RETURN_IF(n > INT32_MAX, LQ_ERR_ARG, "lq_rmsnorm_cuda: %lld rows", (long long)n);
    if (dim % 4 == 0 && dim <= 4 * 4 * 1024 && aligned16(x) && aligned16(w) && (!delta || aligned16(delta))) {
        const int dim4 = (int)(dim / 4), V = dim4 <= 1024 ? 1 : dim4 <= 2048 ? 2 : 4;
        const int per = (dim4 + V - 1) / V, threads = (per + 31) / 32 * 32;
        LQ_DISPATCH(out_dtype, "lq_rmsnorm_cuda",
                    if (V == 1) LQ_CUDA_RET(lq_launch_pdl(rmsnorm_vec_kernel<TE, 1>, dim3((unsigned)n), dim3(threads), 0,
                                                          lq_stream(stream), (TE *)out, x, delta, w, dim4, eps),
                                            "launch rmsnorm_vec_kernel");
                    else if (V == 2) LQ_CUDA_RET(lq_launch_pdl(rmsnorm_vec_kernel<TE, 2>, dim3((unsigned)n), dim3(threads),
                                                               0, lq_stream(stream), (TE *)out, x, delta, w, dim4, eps),
                                                 "launch rmsnorm_vec_kernel");
                    else LQ_CUDA_RET(lq_launch_pdl(rmsnorm_vec_kernel<TE, 4>, dim3((unsigned)n), dim3(threads), 0,
                                                   lq_stream(stream), (TE *)out, x, delta, w, dim4, eps),
                                     "launch rmsnorm_vec_kernel"));
        return LQ_OK;
    }
    int threads = dim <= 128 ? 32 : dim <= 1024 ? 128 : 256;
    LQ_DISPATCH(out_dtype, "lq_rmsnorm_cuda",
                LQ_CUDA_RET(lq_launch_pdl(rmsnorm_kernel<TE>, dim3((unsigned)n), dim3(threads), 0, lq_stream(stream),
                                          (TE *)out, x, delta, w, dim, eps),
                            "launch rmsnorm_kernel"));
    return LQ_OK;
}

/* ---------------- RoPE ---------------- */

/* One thread per (row, head, i < half); the products are kept unfused
 * (__fmul_rn / __fsub_rn) so the GPU rounds exactly as the C reference. */
__global__ void rope_kernel(float *x, int64_t ld, const int32_t *pos, int64_t total, int n_heads, int half,
                            const float *cos_tab, const float *sin_tab) {
    lq_pdl_trigger(); /* PDL launch: wait before any read (every thread, before any return) */
    lq_pdl_wait();
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int i = (int)(idx % half);
    int64_t rh = idx / half; /* row * n_heads + head */
    int64_t r = rh / n_heads;
    int64_t p = pos[r];
    float c = cos_tab[p * half + i], s = sin_tab[p * half + i];
    float *v = x + r * ld + (rh % n_heads) * 2 * half;
    float a = v[i], b = v[i + half];
    v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

extern "C" lq_status lq_rope_cuda(float *x, int64_t ld, const int32_t *pos, int64_t n, int n_heads, int head_dim,
                                  const float *cos_tab, const float *sin_tab, void *stream) {
    int half = head_dim / 2;
    int64_t total = n * n_heads * half;
    if (total <= 0) return LQ_OK;
    if (ld == 0) ld = (int64_t)n_heads * head_dim;
    LQ_CUDA_RET(lq_launch_pdl(rope_kernel, dim3(lq_blocks(total, 256)), dim3(256), 0, lq_stream(stream), x, ld, pos,
                              total, n_heads, half, cos_tab, sin_tab),
                "launch rope_kernel");
    return LQ_OK;
}

/* ---------------- SwiGLU ---------------- */

template <typename TO>
__global__ void swiglu_kernel(TO *out, const float *gate, const float *up, int64_t n, int64_t cols, int64_t ld) {
    lq_pdl_trigger(); /* PDL launch */
    lq_pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int64_t src = (i / cols) * ld + i % cols;
    float g = gate[src];
    /* expf (not __expf): full precision, the reference's formula */
    out[i] = lq_st<TO>(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[src]));
}

/* Four consecutive outputs per thread from 16-byte loads of gate and up (the
 * same formula per element): for cols, ld multiples of 4 and aligned rows. */
template <typename TO>
__global__ void swiglu_vec_kernel(TO *out, const float *gate, const float *up, int64_t n4, int64_t cols4,
                                  int64_t ld4) {
    lq_pdl_trigger(); /* PDL launch */
    lq_pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    int64_t src = (i / cols4) * ld4 + i % cols4;
    const float4 g = reinterpret_cast<const float4 *>(gate)[src], u = reinterpret_cast<const float4 *>(up)[src];
    const float gg[4] = {g.x, g.y, g.z, g.w}, uu[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int e = 0; e < 4; e++) out[4 * i + e] = lq_st<TO>(__fmul_rn(__fdiv_rn(gg[e], __fadd_rn(1.0f, expf(-gg[e]))), uu[e]));
}

extern "C" lq_status lq_swiglu_cuda(void *out, lq_dtype out_dtype, const float *gate, const float *up, int64_t rows,
                                    int64_t cols, int64_t ld, void *stream) {
    int64_t n = rows * cols;
    if (n <= 0) return LQ_OK;
    if (ld == 0) ld = cols;
    if (cols % 4 == 0 && ld % 4 == 0 && aligned16(gate) && aligned16(up)) {
        LQ_DISPATCH(out_dtype, "lq_swiglu_cuda",
                    LQ_CUDA_RET(lq_launch_pdl(swiglu_vec_kernel<TE>, dim3(lq_blocks(n / 4, 256)), dim3(256), 0,
                                              lq_stream(stream), (TE *)out, gate, up, n / 4, cols / 4, ld / 4),
                                "launch swiglu_vec_kernel"));
        return LQ_OK;
    }
    LQ_DISPATCH(out_dtype, "lq_swiglu_cuda",
                LQ_CUDA_RET(lq_launch_pdl(swiglu_kernel<TE>, dim3(lq_blocks(n, 256)), dim3(256), 0, lq_stream(stream),
                                          (TE *)out, gate, up, n, cols, ld),
                            "launch swiglu_kernel"));
    return LQ_OK;
}

/* ---------------- matmul (cuBLAS) ---------------- */

__global__ void bias_fill_kernel(float *y, const float *b, int64_t m, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < m * n) y[i] = b[i % n];
}

static int blas_type(lq_dtype t, cudaDataType_t *out) {
    switch (t) {
    case LQ_F32: *out = CUDA_R_32F; return 1;
    case LQ_F16: *out = CUDA_R_16F; return 1;
    case LQ_BF16: *out = CUDA_R_16BF; return 1;
    default: return 0;
    }
}

/* Largest m sent to lq_gemv_cuda (at most LQ_GEMV_MAX_M; 0 = always cuBLAS):
 * set from `lq bench kernels`, which times both for M = 1, 2, 4, 8. */
/* H200, lq bench kernels (2026-12-01): the GEMV beats cuBLAS at M = 1 on all
 * four Llama-3-8B shapes (1.03-1.31x), at M = 2 on three of four, and loses
 * from M = 4 on (0.66-0.85x at M = 8), so it takes M <= 2. */
#ifndef LQ_GEMV_DISPATCH_M
#define LQ_GEMV_DISPATCH_M 2
#endif

/* The start of a cuBLAS product y (m, n) = x W^T (+ b): y filled with the bias rows and *beta = 1 when b is
 * given (cuBLAS then adds the product to them); with k == 0 the product is empty, so y is the bias rows or
 * zeros and the caller returns. */
static lq_status bias_start(float *y, const float *b, int64_t m, int64_t n, int64_t k, cudaStream_t s, float *beta) {
    if (b) {
        bias_fill_kernel<<<lq_blocks(m * n, 256), 256, 0, s>>>(y, b, m, n);
        LQ_LAUNCH_RET("bias_fill_kernel");
        *beta = 1.0f;
    } else if (k == 0) {
        LQ_CUDA_RET(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)(m * n), s), "cudaMemsetAsync");
    }
    return LQ_OK;
}

/* Row-major y (m, n) = x (m, k) W^T is, read column-major, y^T (n, m) =
 * W^T (n, k) x^T (k, m): W as a column-major (k, n) matrix transposed, x as a
 * column-major (k, m) matrix with leading dimension ldx. */
extern "C" lq_status lq_matmul_cuda(void *blas, float *y, const void *x, const void *w, lq_dtype dtype, const float *b,
                                    int64_t m, int64_t n, int64_t k, int64_t ldx, void *stream) {
    if (m <= 0 || n <= 0) return LQ_OK;
    if (ldx == 0) ldx = k;
    cudaDataType_t ty;
    LQ_RETURN_IF(!blas_type(dtype, &ty), LQ_ERR_UNSUPPORTED, "lq_matmul_cuda: dtype %s", lq_dtype_name(dtype));
    LQ_RETURN_IF(m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || ldx > INT32_MAX || ldx < k, LQ_ERR_ARG,
                 "lq_matmul_cuda: shape m=%lld n=%lld k=%lld ldx=%lld", (long long)m, (long long)n, (long long)k,
                 (long long)ldx);
    /* decode-sized products (fp16/bf16, m <= LQ_GEMV_DISPATCH_M): the memory-bound GEMV beats cuBLAS there */
    if (k > 0 && m <= LQ_GEMV_DISPATCH_M && lq_gemv_supported(dtype, m, n, k, ldx, x, w))
        return lq_gemv_cuda(y, x, w, dtype, b, m, n, k, ldx, stream);
    cublasHandle_t h = (cublasHandle_t)blas;
    LQ_BLAS_RET(cublasSetStream(h, lq_stream(stream)), "cublasSetStream");
    float alpha = 1.0f, beta = 0.0f;
    LQ_FORWARD(bias_start(y, b, m, n, k, lq_stream(stream), &beta));
    if (k == 0) return LQ_OK;
    cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha, w, ty, (int)k, x, ty,
                                    (int)ldx, &beta, y, CUDA_R_32F, (int)n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return lq_error(LQ_ERR_CUDA, "cublasGemmEx (m=%lld n=%lld k=%lld, %s): %s", (long long)m, (long long)n,
                        (long long)k, lq_dtype_name(dtype), cublasGetStatusString(s));
    return LQ_OK;
}

/* ---------------- matmul, fp32 x over a 16-bit W (the fp32-compute engine) ---------------- */

/* rows [r0, r0 + nr) of W (n, k), dtype TW, widened to fp32 (exact) into dst (nr, k) */
template <typename TW> __global__ void widen_rows_kernel(float *dst, const TW *w, int64_t elems) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < elems) dst[i] = lq_ld(w[i]);
}

/* cuBLAS takes no fp32 x against a 16-bit W, so W goes through fp32 scratch a
 * chunk of whole rows at a time and the product is cuBLAS's fp32 GEMM
 * (CUBLAS_COMPUTE_32F with the handle's default math mode: no TF32). Each chunk
 * writes columns [r0, r0 + nr) of y (ldc n). It moves W's bytes three times
 * (read 16-bit, write and read fp32): the precision mode, not a speed path. */
extern "C" lq_status lq_matmul_w16_f32_cuda(void *blas, float *y, const float *x, const void *w, lq_dtype w_dtype,
                                            const float *b, int64_t m, int64_t n, int64_t k, int64_t ldx,
                                            float *scratch, size_t scratch_elems, void *stream) {
    if (m <= 0 || n <= 0) return LQ_OK;
    if (ldx == 0) ldx = k;
    LQ_RETURN_IF(w_dtype != LQ_F16 && w_dtype != LQ_BF16, LQ_ERR_UNSUPPORTED,
                 "lq_matmul_w16_f32_cuda: weight dtype %s (F16 or BF16)", lq_dtype_name(w_dtype));
    LQ_RETURN_IF(m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || ldx > INT32_MAX || ldx < k, LQ_ERR_ARG,
                 "lq_matmul_w16_f32_cuda: shape m=%lld n=%lld k=%lld ldx=%lld", (long long)m, (long long)n,
                 (long long)k, (long long)ldx);
    LQ_RETURN_IF(k > 0 && (!scratch || scratch_elems < (size_t)k), LQ_ERR_ARG,
                 "lq_matmul_w16_f32_cuda: scratch of %zu floats, a row of W needs %lld", scratch_elems, (long long)k);
    cudaStream_t s = lq_stream(stream);
    cublasHandle_t h = (cublasHandle_t)blas;
    LQ_BLAS_RET(cublasSetStream(h, s), "cublasSetStream");
    float alpha = 1.0f, beta = 0.0f;
    LQ_FORWARD(bias_start(y, b, m, n, k, s, &beta));
    if (k == 0) return LQ_OK;
    const int64_t rows_per = (int64_t)(scratch_elems / (size_t)k);
    const size_t es = lq_dtype_size(w_dtype);
    for (int64_t r0 = 0; r0 < n; r0 += rows_per) {
        const int64_t nr = n - r0 < rows_per ? n - r0 : rows_per, elems = nr * k;
        const char *wc = (const char *)w + (size_t)r0 * (size_t)k * es;
        if (w_dtype == LQ_F16)
            widen_rows_kernel<__half><<<lq_blocks(elems, 256), 256, 0, s>>>(scratch, (const __half *)wc, elems);
        else
            widen_rows_kernel<__nv_bfloat16><<<lq_blocks(elems, 256), 256, 0, s>>>(scratch, (const __nv_bfloat16 *)wc,
                                                                                   elems);
        LQ_LAUNCH_RET("widen_rows_kernel");
        cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, (int)m, (int)k, &alpha, scratch,
                                         CUDA_R_32F, (int)k, x, CUDA_R_32F, (int)ldx, &beta, y + r0, CUDA_R_32F,
                                         (int)n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return lq_error(LQ_ERR_CUDA, "cublasGemmEx (fp32 over %s weights, m=%lld n=%lld k=%lld): %s",
                            lq_dtype_name(w_dtype), (long long)m, (long long)nr, (long long)k,
                            cublasGetStatusString(st));
    }
    return LQ_OK;
}

/* ---------------- KV-cache store ---------------- */

template <typename TK>
__global__ void kv_store_kernel(TK *kc, TK *vc, const float *k, const float *v, int64_t ld, const int32_t *pos,
                                int64_t total, int T, int kv_dim, int64_t seq_stride) {
    lq_pdl_trigger(); /* PDL launch */
    lq_pdl_wait();
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int j = (int)(i % kv_dim);
    int64_t row = i / kv_dim; /* b * T + t */
    int64_t b = row / T;
    int64_t dst = b * seq_stride + (int64_t)pos[row] * kv_dim + j;
    kc[dst] = lq_st<TK>(k[row * ld + j]);
    vc[dst] = lq_st<TK>(v[row * ld + j]);
}

extern "C" lq_status lq_kv_store_cuda(void *k_cache, void *v_cache, lq_dtype kv_dtype, const float *k, const float *v,
                                      int64_t ld, const int32_t *pos, int B, int T, int kv_dim, int64_t seq_stride,
                                      void *stream) {
    int64_t total = (int64_t)B * T * kv_dim;
    if (total <= 0) return LQ_OK;
    if (ld == 0) ld = kv_dim;
    LQ_DISPATCH(kv_dtype, "lq_kv_store_cuda",
                LQ_CUDA_RET(lq_launch_pdl(kv_store_kernel<TE>, dim3(lq_blocks(total, 256)), dim3(256), 0,
                                          lq_stream(stream), (TE *)k_cache, (TE *)v_cache, k, v, ld, pos, total, T,
                                          kv_dim, seq_stride),
                            "launch kv_store_kernel"));
    return LQ_OK;
}

/* ---------------- RoPE + KV-cache store (the engine's per-layer step) ---------------- */

/* One thread per (row, head of q|k|v, i < half): q heads rotated in place
 * (rope_kernel's arithmetic), k heads rotated and written to the cache, v
 * heads copied to it (kv_store_kernel's addressing); the rotated k is not
 * written back to the q|k|v rows (attention reads keys from the cache). */
template <typename TK>
__global__ void rope_kv_store_kernel(float *qkv, int64_t ld, const int32_t *pos, int64_t total, int nq, int nkv,
                                     int half, const float *cos_tab, const float *sin_tab, TK *kc, TK *vc, int T,
                                     int64_t seq_stride) {
    lq_pdl_trigger(); /* PDL launch: wait before any read (every thread, before any return) */
    lq_pdl_wait();
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int i = (int)(idx % half), nall = nq + 2 * nkv, hd = 2 * half;
    const int64_t rh = idx / half, r = rh / nall;
    const int h = (int)(rh % nall);
    const int64_t p = pos[r];
    float *v = qkv + r * ld + (int64_t)h * hd;
    const float a = v[i], b = v[i + half];
    if (h >= nq + nkv) {
        TK *dst = vc + (r / T) * seq_stride + p * ((int64_t)nkv * hd) + (int64_t)(h - nq - nkv) * hd;
        dst[i] = lq_st<TK>(a);
        dst[i + half] = lq_st<TK>(b);
        return;
    }
    const float c = cos_tab[p * half + i], sn = sin_tab[p * half + i];
    const float ra = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn)), rb = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
    if (h < nq) {
        v[i] = ra;
        v[i + half] = rb;
    } else {
        TK *dst = kc + (r / T) * seq_stride + p * ((int64_t)nkv * hd) + (int64_t)(h - nq) * hd;
        dst[i] = lq_st<TK>(ra);
        dst[i + half] = lq_st<TK>(rb);
    }
}

extern "C" lq_status lq_rope_kv_store_cuda(float *qkv, int64_t ld, const int32_t *pos, int B, int T, int n_q, int n_kv,
                                           int head_dim, const float *cos_tab, const float *sin_tab, void *k_cache,
                                           void *v_cache, lq_dtype kv_dtype, int64_t seq_stride, void *stream) {
    const int half = head_dim / 2;
    const int64_t total = (int64_t)B * T * (n_q + 2 * n_kv) * half;
    if (total <= 0) return LQ_OK;
    LQ_RETURN_IF(head_dim % 2 || n_q < 1 || n_kv < 1, LQ_ERR_ARG, "lq_rope_kv_store_cuda: head_dim %d, %d q / %d kv heads",
                 head_dim, n_q, n_kv);
    if (ld == 0) ld = (int64_t)(n_q + 2 * n_kv) * head_dim;
    LQ_DISPATCH(kv_dtype, "lq_rope_kv_store_cuda",
                LQ_CUDA_RET(lq_launch_pdl(rope_kv_store_kernel<TE>, dim3(lq_blocks(total, 256)), dim3(256), 0,
                                          lq_stream(stream), qkv, ld, pos, total, n_q, n_kv, half, cos_tab, sin_tab,
                                          (TE *)k_cache, (TE *)v_cache, T, seq_stride),
                            "launch rope_kv_store_kernel"));
    return LQ_OK;
}

/* ---------------- NLL ---------------- */

/* One block per row: max in float, sum of exp(l - max) in double (exp in
 * double too, as lq_nll_ref), nll = -(l[target] - max - log(sum)). */
__global__ void nll_kernel(double *nll, const float *logits, const int32_t *target, int64_t V) {
    __shared__ float redf[32];
    __shared__ double redd[32];
    int64_t t = blockIdx.x;
    int tg = target[t];
    if (tg < 0) {
        if (threadIdx.x == 0) nll[t] = 0.0;
        return;
    }
    const float *l = logits + t * V;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = lq_warp_max(mx);
    if (lane == 0) redf[wid] = mx;
    __syncthreads();
    if (wid == 0) {
        mx = lane < nw ? redf[lane] : -INFINITY;
        mx = lq_warp_max(mx);
        if (lane == 0) redf[0] = mx;
    }
    __syncthreads();
    double m = redf[0], s = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += exp((double)l[j] - m);
    s = lq_warp_sum_d(s);
    if (lane == 0) redd[wid] = s;
    __syncthreads();
    if (wid == 0) {
        s = lane < nw ? redd[lane] : 0.0;
        s = lq_warp_sum_d(s);
        if (lane == 0) nll[t] = -((double)l[tg] - m - log(s));
    }
}

extern "C" lq_status lq_nll_cuda(double *nll, const float *logits, const int32_t *target, int64_t T, int64_t V,
                                 void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_RETURN_IF(T > INT32_MAX, LQ_ERR_ARG, "lq_nll_cuda: %lld rows", (long long)T);
    nll_kernel<<<(unsigned)T, 256, 0, lq_stream(stream)>>>(nll, logits, target, V);
    LQ_LAUNCH_RET("nll_kernel");
    return LQ_OK;
}

/* ---------------- argmax ---------------- */

__device__ __forceinline__ void argmax_merge(float &v, int &i, float v2, int i2) {
    /* larger value wins; on a tie the lower index; NaN never wins (as `>` on the host) */
    if (i2 >= 0 && (i < 0 ? !isnan(v2) : (v2 > v || (v2 == v && i2 < i)))) {
        v = v2;
        i = i2;
    }
}

/* Block-wide argmax (ties: lowest index) of (v, i); every thread gets the result. */
__device__ void block_argmax(float &v, int &i, float *sv, int *si) {
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        argmax_merge(v, i, v2, i2);
    }
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* sv/si may still be read from a previous call */
    if (lane == 0) sv[wid] = v, si[wid] = i;
    __syncthreads();
    v = lane < nw ? sv[lane] : -INFINITY;
    i = lane < nw ? si[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        argmax_merge(v, i, v2, i2);
    }
}

/* One block per row of logits: its argmax (ties: the lowest index), 0 for an all-NaN row. */
__global__ void argmax_kernel(int32_t *out, const float *logits, int64_t V) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *l = logits + (int64_t)blockIdx.x * V;
    float best = -INFINITY;
    int bi = -1;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) argmax_merge(best, bi, l[j], (int)j);
    block_argmax(best, bi, sv, si);
    if (threadIdx.x == 0) out[blockIdx.x] = bi < 0 ? 0 : bi; /* all NaN: 0, as the host loop */
}

extern "C" lq_status lq_argmax_cuda(int32_t *out, const float *logits, int64_t T, int64_t V, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_RETURN_IF(T > INT32_MAX || V > INT32_MAX, LQ_ERR_ARG, "lq_argmax_cuda: %lld x %lld", (long long)T, (long long)V);
    argmax_kernel<<<(unsigned)T, 256, 0, lq_stream(stream)>>>(out, logits, V);
    LQ_LAUNCH_RET("argmax_kernel");
    return LQ_OK;
}

/* ---------------- KLD statistics (lq_kld_token_ref's twin) ---------------- */

/* Block-wide sum in double; every thread gets the result. */
__device__ double block_sum_d(double s, double *sd) {
    s = lq_warp_sum_d(s);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sd[wid] = s;
    __syncthreads();
    s = lane < nw ? sd[lane] : 0.0;
    return lq_warp_sum_d(s);
}

/* One block per row, the same arithmetic as lq_kld_token_ref (exp and log in
 * double over fp32 logits); only the summation order differs. */
__global__ void kld_token_kernel(lq_kld_token *out, const float *lb, const float *lqv, const int32_t *target,
                                 int64_t V) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ double sd[32];
    const float *b = lb + (int64_t)blockIdx.x * V, *q = lqv + (int64_t)blockIdx.x * V;
    float vb = -INFINITY, vq = -INFINITY;
    int ib = -1, iq = -1;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        argmax_merge(vb, ib, b[j], (int)j);
        argmax_merge(vq, iq, q[j], (int)j);
    }
    block_argmax(vb, ib, sv, si);
    block_argmax(vq, iq, sv, si);
    const double mb = vb, mq = vq;
    double sb = 0, sq = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        sb += exp((double)b[j] - mb);
        sq += exp((double)q[j] - mq);
    }
    sb = block_sum_d(sb, sd);
    sq = block_sum_d(sq, sd);
    const double lse_b = mb + log(sb), lse_q = mq + log(sq);
    double kl = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        double lpb = (double)b[j] - lse_b, lpq = (double)q[j] - lse_q;
        kl += exp(lpb) * (lpb - lpq);
    }
    kl = block_sum_d(kl, sd);
    if (threadIdx.x == 0) {
        lq_kld_token t;
        int y = target[blockIdx.x];
        t.top_base = ib < 0 ? 0 : ib;
        t.top_q = iq < 0 ? 0 : iq;
        t.kld = kl;
        t.nll_base = lse_b - (double)b[y];
        t.nll_q = lse_q - (double)q[y];
        t.dp = exp(-t.nll_q) - exp(-t.nll_base);
        out[blockIdx.x] = t;
    }
}

extern "C" lq_status lq_kld_token_cuda(lq_kld_token *out, const float *logits_base, const float *logits_q,
                                       const int32_t *target, int64_t T, int64_t V, void *stream) {
    if (T <= 0) return LQ_OK;
    LQ_RETURN_IF(T > INT32_MAX || V > INT32_MAX || V < 1, LQ_ERR_ARG, "lq_kld_token_cuda: %lld x %lld", (long long)T,
                 (long long)V);
    kld_token_kernel<<<(unsigned)T, 256, 0, lq_stream(stream)>>>(out, logits_base, logits_q, target, V);
    LQ_LAUNCH_RET("kld_token_kernel");
    return LQ_OK;
}
