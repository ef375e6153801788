/* cuda_common.cuh — internal to kernels/: error mapping for CUDA and cuBLAS
 * calls, the fp32/fp16/bf16 load/store helpers every kernel uses, and the
 * dtype dispatch macro. Never included by C code (public headers stay free of
 * cuda_runtime.h, STYLE.md).
 *
 * Error policy: every CUDA/cuBLAS call and every launch is checked; a failure
 * becomes LQ_ERR_CUDA with the CUDA message and what was being done. */
#ifndef LQ_CUDA_COMMON_CUH
#define LQ_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "../libquant/lq_common.h"
#include "../libquant/lq_dtype.h"
}

/* Return LQ_ERR_CUDA from the enclosing lq_status function when a CUDA call fails. */
#define LQ_CUDA_RET(call, what)                                                                   \
    do {                                                                                          \
        cudaError_t lq_ce_ = (call);                                                              \
        if (lq_ce_ != cudaSuccess)                                                                \
            return lq_error(LQ_ERR_CUDA, "%s: %s (%s)", (what), cudaGetErrorString(lq_ce_),       \
                            cudaGetErrorName(lq_ce_));                                            \
    } while (0)
/* Same inside a function with `lq_status st` and a `fail:` label. */
#define LQ_CUDA_TRY(call, what)                                                                   \
    do {                                                                                          \
        cudaError_t lq_ce_ = (call);                                                              \
        if (lq_ce_ != cudaSuccess) {                                                              \
            st = lq_error(LQ_ERR_CUDA, "%s: %s (%s)", (what), cudaGetErrorString(lq_ce_),         \
                          cudaGetErrorName(lq_ce_));                                              \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)
/* After every <<<>>>: launch-configuration errors surface here. */
#define LQ_LAUNCH_RET(name) LQ_CUDA_RET(cudaGetLastError(), "launch " name)
#define LQ_BLAS_RET(call, what)                                                                   \
    do {                                                                                          \
        cublasStatus_t lq_bs_ = (call);                                                           \
        if (lq_bs_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return lq_error(LQ_ERR_CUDA, "%s: cuBLAS %s (%s)", (what), cublasGetStatusString(lq_bs_), \
                            cublasGetStatusName(lq_bs_));                                         \
    } while (0)

/* ---- element conversions (round-to-nearest-even, as lq_f32_to_f16/bf16) ---- */
__device__ __forceinline__ float lq_ld(float x) { return x; }
__device__ __forceinline__ float lq_ld(__half x) { return __half2float(x); }
__device__ __forceinline__ float lq_ld(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T lq_st(float x);
template <> __device__ __forceinline__ float lq_st<float>(float x) { return x; }
template <> __device__ __forceinline__ __half lq_st<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 lq_st<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* Call body with `TE` bound to the element type of dtype `dt` (F32/F16/BF16);
 * returns LQ_ERR_UNSUPPORTED for any other dtype. */
#define LQ_DISPATCH(dt, what, ...)                                                                \
    switch (dt) {                                                                                 \
    case LQ_F32: { typedef float TE; __VA_ARGS__; } break;                                         \
    case LQ_F16: { typedef __half TE; __VA_ARGS__; } break;                                        \
    case LQ_BF16: { typedef __nv_bfloat16 TE; __VA_ARGS__; } break;                                \
    default: return lq_error(LQ_ERR_UNSUPPORTED, "%s: dtype %d is not F32/F16/BF16", (what), (int)(dt)); \
    }

/* Same with a second type name, for kernels templated on two dtypes. */
#define LQ_DISPATCH2(dt, U, what, ...)                                                            \
    switch (dt) {                                                                                 \
    case LQ_F32: { typedef float U; __VA_ARGS__; } break;                                         \
    case LQ_F16: { typedef __half U; __VA_ARGS__; } break;                                        \
    case LQ_BF16: { typedef __nv_bfloat16 U; __VA_ARGS__; } break;                                \
    default: return lq_error(LQ_ERR_UNSUPPORTED, "%s: dtype %d is not F32/F16/BF16", (what), (int)(dt)); \
    }

static inline cudaStream_t lq_stream(void *s) { return (cudaStream_t)s; }

static inline unsigned lq_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Warp / block reductions. */
__device__ __forceinline__ float lq_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float lq_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double lq_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
