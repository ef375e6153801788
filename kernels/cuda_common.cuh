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

/* ---- programmatic dependent launch (PDL, sm_90+) ----
 * A kernel launched with lq_launch_pdl may start while the kernel before it
 * in the stream is still running: its blocks are scheduled once every block
 * of the previous kernel has called lq_pdl_trigger() (or exited), and each
 * thread must call lq_pdl_wait() — which returns when the previous kernel
 * has completed and its writes are visible — before it reads anything an
 * earlier kernel wrote or writes anything an earlier kernel reads. What comes
 * before the wait may only touch data no kernel of the step writes (weights),
 * so a GEMV's first weight loads overlap the previous kernel's tail and the
 * launch gap. Rules for a kernel launched this way:
 *   - every thread reaches lq_pdl_wait() (a kernel that finished without
 *     waiting would let its successor run ahead of its predecessor);
 *   - call lq_pdl_trigger() early (at the top): the next kernel's blocks can
 *     only occupy SMs left over once all of this kernel's blocks are running,
 *     so triggering early never starves this kernel.
 * Both are no-ops for a normal launch and on sm_80. lq_launch_pdl launches
 * normally when the device is older than sm_90 or LQ_PDL=0 is set in the
 * environment (for A/B timing). Used on the decode path (engine_cuda.cu):
 * rmsnorm, RoPE + KV store, decode attention (16-bit caches), SwiGLU, the
 * GEMV and the small-M W4A16 kernel. Measured (H200, llama3-8b preset,
 * `lq bench model --compare-pdl`): fp16 decode batch 1 +2%, W4 batch 1 +9%,
 * W4 batch 4 +21%. */
__device__ __forceinline__ void lq_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void lq_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/* ---- per-device limits (ops_cuda.cu) ----
 * What the launchers ask of a device: asked once per device and cached, so a
 * launch costs one cudaGetDevice and no attribute query. Devices 0..63 are
 * cached; a higher index is asked on every call.
 * Threading: any thread may call these. A device's entry is filled once, under
 * a lock, and published through an acquire/release flag; readers take no lock. */
#define LQ_MAX_DEVICES 64
typedef struct {
    int dev;                  /* the device these limits are of */
    int sm_count;             /* multiprocessors */
    int cc_major, cc_minor;   /* compute capability */
    int smem_per_block_optin; /* bytes of shared memory one block may opt in to */
    int smem_per_sm;          /* bytes of shared memory per multiprocessor */
} lq_device_limits;
/* The current device's limits into *out; on an error *out is zeroed. */
cudaError_t lq_device_limits_current(lq_device_limits *out);

/* Dynamic shared memory beyond 48 KB is an opt-in per kernel and per device (a
 * host-side function attribute, not a stream operation: legal while a graph is
 * captured). Raises the limit of `kernel` on device `dev` (the current one) to
 * `bytes`, unless done[dev] — the caller's record for that kernel, a static
 * int[LQ_MAX_DEVICES] per kernel instantiation — says it already allows as
 * much; a limit is never lowered. */
cudaError_t lq_smem_optin_fn(const void *kernel, int dev, int bytes, int *done);
template <typename K> static inline cudaError_t lq_smem_optin(K *kernel, int dev, int bytes, int *done) {
    return lq_smem_optin_fn((const void *)kernel, dev, bytes, done);
}
/* The same on the current device, for a launcher that has not asked for the limits. */
template <typename K> static inline cudaError_t lq_smem_optin_current(K *kernel, int bytes, int *done) {
    lq_device_limits lim;
    cudaError_t e = lq_device_limits_current(&lim);
    return e != cudaSuccess ? e : lq_smem_optin_fn((const void *)kernel, lim.dev, bytes, done);
}

/* 1 when launches on the current device get the PDL attribute (ops_cuda.cu);
 * lq_pdl_on: the same for the device of limits already asked for. */
int lq_pdl_enabled(void);
int lq_pdl_on(const lq_device_limits *lim);
/* Launch with the PDL attribute when pdl is nonzero (a normal launch otherwise). */
template <typename... KArgs, typename... Args>
static inline cudaError_t lq_launch_pdl_if(int pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                           cudaStream_t s, Args... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...);
}
template <typename... KArgs, typename... Args>
static inline cudaError_t lq_launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                        Args... args) {
    return lq_launch_pdl_if(lq_pdl_enabled(), kernel, grid, block, smem, s, args...);
}

static inline unsigned lq_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b);
}

/* ---- asynchronous copies and ldmatrix (sm_80+), for the attention kernels ----
 * lq_cp16: 16 bytes global -> shared, of which src_bytes are read (the rest
 * zero-filled: 0 reads nothing); lq_cp_commit / lq_cp_wait<N>: close a group,
 * wait until at most N groups are pending; lq_ldsm4 (_t: transposed): four
 * 8x8 16-bit matrices from shared memory into fragments. */
__device__ __forceinline__ void lq_cp16(void *dst, const void *src, int src_bytes) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void lq_cp_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void lq_cp_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void lq_ldsm4(uint32_t r[4], const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void lq_ldsm4_t(uint32_t r[4], const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* ---- m16n8k16 tensor-core product on 16-bit operands, fp32 accumulate (sm_80+) ----
 * pack: two floats to one register (round to nearest even; lo in the low half
 * = the lower column), optionally returning the rounded values; ONES: a pair
 * of 1.0; mma: c += a b. Shared by the attention kernels. */
template <typename TK> struct lq_mma16;
/* one specialization per 16-bit type: T, its pair type, the pair conversion, the PTX type name, 1.0 twice */
#define LQ_MMA16_SPEC(T, T2, CVT2, PTX, ONES2)                                                              \
    template <> struct lq_mma16<T> {                                                                          \
        static constexpr uint32_t ONES = ONES2;                                                               \
        static __device__ __forceinline__ uint32_t pack(float lo, float hi, float *rlo, float *rhi) {          \
            union {                                                                                           \
                T2 h;                                                                                         \
                uint32_t u;                                                                                   \
            } x;                                                                                              \
            x.h = CVT2(lo, hi);                                                                               \
            if (rlo) *rlo = __low2float(x.h);                                                                 \
            if (rhi) *rhi = __high2float(x.h);                                                                \
            return x.u;                                                                                       \
        }                                                                                                     \
        static __device__ __forceinline__ uint32_t pack(float lo, float hi) { return pack(lo, hi, NULL, NULL); } \
        static __device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) { \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." PTX "." PTX ".f32 {%0,%1,%2,%3}, "          \
                         "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                                           \
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                     \
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                     \
        }                                                                                                     \
    };
LQ_MMA16_SPEC(__half, __half2, __floats2half2_rn, "f16", 0x3C003C00u)
LQ_MMA16_SPEC(__nv_bfloat16, __nv_bfloat162, __floats2bfloat162_rn, "bf16", 0x3F803F80u)
#undef LQ_MMA16_SPEC

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
