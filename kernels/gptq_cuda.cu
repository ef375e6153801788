/* gptq_cuda.cu — the GPU twins of calib/gptq.c (see kernels/lq_gptq_cuda.h
 * for the contract and the precision of each piece): Hessian accumulation
 * (cublasDsyrk), the relative output error through the Hessian (cublasDsymm),
 * damping + Cholesky + inverse + Cholesky of the inverse (cuSOLVER), the
 * lazy-block GPTQ update (a warp-per-row kernel for the columns of one block,
 * cublasSgemm for the trailing update) and RTN.
 *
 * Kernels are kept deliberately simple (one warp per row, global memory,
 * __syncwarp between columns): the column loop is latency-bound either way
 * and the heavy lifting (syrk, potrf, the trailing sgemm) is in the libraries.
 * Tested against the CPU references by tests/test_gptq_gpu.c (make test-gpu). */
#include <cusolverDn.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

extern "C" {
#include "lq_gptq_cuda.h"
}

struct lq_gptq_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    size_t peak;          /* high-water mark of total - free */
    char name[640];
    double *xd;           /* Hessian chunk converted to double */
    size_t xd_bytes;
    float *xf;            /* host-upload chunk */
    size_t xf_bytes;
    int *flag;            /* (4) device flags / cuSOLVER devInfo */
};

/* Rows of one Hessian chunk: at most 2^24 doubles (128 MiB) of scratch. */
static int64_t hess_chunk_rows(int64_t K, int64_t rows) {
    int64_t c = ((int64_t)1 << 24) / K;
    if (c < 1) c = 1;
    return c < rows ? c : rows;
}

#define LQ_BLAS_TRY(call, what)                                                                   \
    do {                                                                                          \
        cublasStatus_t lq_bs_ = (call);                                                           \
        if (lq_bs_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            st = lq_error(LQ_ERR_CUDA, "%s: cuBLAS %s (%s)", (what), cublasGetStatusString(lq_bs_), \
                          cublasGetStatusName(lq_bs_));                                           \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)
#define LQ_SOLVER_TRY(call, what)                                                                 \
    do {                                                                                          \
        cusolverStatus_t lq_ss_ = (call);                                                         \
        if (lq_ss_ != CUSOLVER_STATUS_SUCCESS) {                                                  \
            st = lq_error(LQ_ERR_CUDA, "%s: cuSOLVER status %d", (what), (int)lq_ss_);            \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)

static void sample_mem(lq_gptq_cuda *g) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
        if (tot - fr > g->peak) g->peak = tot - fr;
    } else {
        (void)cudaGetLastError();
    }
}

/* ---------------- context and memory ---------------- */

extern "C" lq_status lq_gptq_cuda_malloc(lq_gptq_cuda *g, void **p, size_t n_bytes, const char *what) {
    *p = NULL;
    cudaError_t ce = cudaMalloc(p, n_bytes ? n_bytes : 1);
    if (ce != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) (void)cudaGetLastError();
        return lq_error(LQ_ERR_CUDA, "GPU memory for %s: cudaMalloc of %zu bytes failed (%s); %zu of %zu bytes free",
                        what, n_bytes, cudaGetErrorString(ce), fr, tot);
    }
    sample_mem(g);
    return LQ_OK;
}

extern "C" void lq_gptq_cuda_dfree(void *p) {
    if (p) cudaFree(p);
}

extern "C" lq_status lq_gptq_cuda_upload(lq_gptq_cuda *g, void *dst, const void *host_src, size_t n_bytes) {
    if (!n_bytes) return LQ_OK;
    LQ_CUDA_RET(cudaMemcpyAsync(dst, host_src, n_bytes, cudaMemcpyHostToDevice, g->stream), "upload to the GPU");
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "upload to the GPU (synchronize)");
    return LQ_OK;
}

extern "C" lq_status lq_gptq_cuda_download(lq_gptq_cuda *g, void *host_dst, const void *src, size_t n_bytes) {
    if (!n_bytes) return LQ_OK;
    LQ_CUDA_RET(cudaMemcpyAsync(host_dst, src, n_bytes, cudaMemcpyDeviceToHost, g->stream), "download from the GPU");
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "download from the GPU (synchronize)");
    return LQ_OK;
}

extern "C" lq_status lq_gptq_cuda_memset(lq_gptq_cuda *g, void *dst, int byte, size_t n_bytes) {
    if (!n_bytes) return LQ_OK;
    LQ_CUDA_RET(cudaMemsetAsync(dst, byte, n_bytes, g->stream), "cudaMemsetAsync");
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "cudaMemsetAsync (synchronize)");
    return LQ_OK;
}

/* Grow a scratch buffer to at least `need` bytes. */
static lq_status ensure(lq_gptq_cuda *g, void **buf, size_t *have, size_t need, const char *what) {
    if (*have >= need) return LQ_OK;
    /* the stream may still use the old buffer */
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "synchronize before growing a scratch buffer");
    lq_gptq_cuda_dfree(*buf);
    *buf = NULL;
    *have = 0;
    LQ_FORWARD(lq_gptq_cuda_malloc(g, buf, need, what));
    *have = need;
    return LQ_OK;
}

extern "C" void lq_gptq_cuda_free(lq_gptq_cuda *g) {
    if (!g) return;
    if (g->stream) cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(g->xd);
    lq_gptq_cuda_dfree(g->xf);
    lq_gptq_cuda_dfree(g->flag);
    if (g->solver) cusolverDnDestroy(g->solver);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    (void)cudaGetLastError();
    free(g);
}

extern "C" lq_status lq_gptq_cuda_new(int device, lq_gptq_cuda **out) {
    lq_status st = LQ_OK;
    int count = 0;
    cudaError_t ce;
    cudaDeviceProp prop;
    lq_gptq_cuda *g = NULL;
    *out = NULL;
    ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count <= 0) {
        (void)cudaGetLastError();
        return lq_error(LQ_ERR_UNSUPPORTED, "no CUDA device found (%s): GPU GPTQ needs an NVIDIA GPU (use --device cpu)",
                        ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    }
    LQ_RETURN_IF(device < 0 || device >= count, LQ_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    g = (lq_gptq_cuda *)calloc(1, sizeof *g);
    LQ_RETURN_IF(!g, LQ_ERR_NOMEM, "out of memory (GPTQ GPU context)");
    g->device = device;
    LQ_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
    LQ_CUDA_TRY(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    snprintf(g->name, sizeof g->name, "%.256s, %.1f GiB", prop.name, (double)prop.totalGlobalMem / 1073741824.0);
    LQ_CUDA_TRY(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    LQ_BLAS_TRY(cublasCreate(&g->blas), "cublasCreate");
    LQ_BLAS_TRY(cublasSetStream(g->blas, g->stream), "cublasSetStream");
    /* plain fp32/fp64 arithmetic: no TF32 for the GPTQ update's sgemm */
    LQ_BLAS_TRY(cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    LQ_SOLVER_TRY(cusolverDnCreate(&g->solver), "cusolverDnCreate");
    LQ_SOLVER_TRY(cusolverDnSetStream(g->solver, g->stream), "cusolverDnSetStream");
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&g->flag, 4 * sizeof(int), "GPTQ flags"));
    *out = g;
    return LQ_OK;
fail:
    lq_gptq_cuda_free(g);
    return st;
}

extern "C" size_t lq_gptq_cuda_peak_bytes(const lq_gptq_cuda *g) { return g ? g->peak : 0; }
extern "C" const char *lq_gptq_cuda_device_name(const lq_gptq_cuda *g) { return g ? g->name : ""; }
extern "C" void *lq_gptq_cuda_stream(const lq_gptq_cuda *g) { return g ? (void *)g->stream : NULL; }
extern "C" void *lq_gptq_cuda_blas(const lq_gptq_cuda *g) { return g ? (void *)g->blas : NULL; }

/* ---------------- Hessian ---------------- */

__global__ void f32_to_f64_kernel(double *out, const float *in, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = (double)in[i];
}

static unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b > 65535) b = 65535; /* grid-stride loops cover the rest */
    return (unsigned)(b < 1 ? 1 : b);
}

extern "C" lq_status lq_hessian_accum_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X, int64_t rows) {
    LQ_RETURN_IF(K < 1 || K > 46340 || rows < 0, LQ_ERR_ARG, "GPU Hessian: bad shape (%lld rows, K = %lld)",
                 (long long)rows, (long long)K);
    if (rows == 0) return LQ_OK;
    const int64_t chunk = hess_chunk_rows(K, rows);
    const double one = 1.0;
    LQ_FORWARD(ensure(g, (void **)&g->xd, &g->xd_bytes, sizeof(double) * (size_t)(chunk * K), "Hessian chunk"));
    for (int64_t t0 = 0; t0 < rows; t0 += chunk) {
        const int64_t m = rows - t0 < chunk ? rows - t0 : chunk;
        f32_to_f64_kernel<<<grid_for(m * K, 256), 256, 0, g->stream>>>(g->xd, X + t0 * K, m * K);
        LQ_LAUNCH_RET("f32_to_f64_kernel");
        /* row-major X chunk (m, K) = column-major A (K, m); S_cm = A A^T. The
         * column-major lower triangle is the row-major upper one. */
        LQ_BLAS_RET(cublasDsyrk(g->blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, (int)K, (int)m, &one, g->xd, (int)K,
                                &one, S, (int)K),
                    "GPU Hessian (cublasDsyrk)");
    }
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "GPU Hessian (synchronize)");
    return LQ_OK;
}

extern "C" lq_status lq_hessian_accum_host_cuda(lq_gptq_cuda *g, double *S, int64_t K, const float *X_host,
                                                int64_t rows) {
    LQ_RETURN_IF(K < 1 || K > 46340 || rows < 0, LQ_ERR_ARG, "GPU Hessian: bad shape (%lld rows, K = %lld)",
                 (long long)rows, (long long)K);
    if (rows == 0) return LQ_OK;
    const int64_t chunk = hess_chunk_rows(K, rows);
    LQ_FORWARD(ensure(g, (void **)&g->xf, &g->xf_bytes, sizeof(float) * (size_t)(chunk * K), "Hessian upload chunk"));
    for (int64_t t0 = 0; t0 < rows; t0 += chunk) {
        const int64_t m = rows - t0 < chunk ? rows - t0 : chunk;
        LQ_FORWARD(lq_gptq_cuda_upload(g, g->xf, X_host + t0 * K, sizeof(float) * (size_t)(m * K)));
        LQ_FORWARD(lq_hessian_accum_cuda(g, S, K, g->xf, m));
    }
    return LQ_OK;
}

__global__ void diag_copy_kernel(double *d, const double *S, int64_t K) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < K; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = S[i * K + i];
}

extern "C" lq_status lq_hessian_diag_cuda(lq_gptq_cuda *g, const double *S, int64_t K, double *diag_host) {
    lq_status st = LQ_OK;
    double *d = NULL;
    LQ_RETURN_IF(K < 1 || K > 46340, LQ_ERR_ARG, "GPU Hessian diagonal: K = %lld", (long long)K);
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&d, sizeof(double) * (size_t)K, "Hessian diagonal"));
    diag_copy_kernel<<<grid_for(K, 256), 256, 0, g->stream>>>(d, S, K);
    LQ_CUDA_TRY(cudaGetLastError(), "launch diag_copy_kernel");
    LQ_TRY(lq_gptq_cuda_download(g, diag_host, d, sizeof(double) * (size_t)K));
fail:
    if (st != LQ_OK) (void)cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(d);
    return st;
}

__global__ void hess_permute_kernel(double *Hp, const double *S, const int32_t *perm, int64_t K, double f) {
    const int64_t n = K * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t a = i / K, b = i % K, r = perm[a], c = perm[b];
        double v = f * (r <= c ? S[r * K + c] : S[c * K + r]);
        if (a == b && v == 0.0) v = 1.0; /* dead input */
        Hp[i] = v;
    }
}

extern "C" lq_status lq_hessian_permute_cuda(lq_gptq_cuda *g, double *Hp, const double *S, int64_t K, double f,
                                             const int32_t *perm_host) {
    lq_status st = LQ_OK;
    int32_t *perm = NULL;
    LQ_RETURN_IF(K < 1 || K > 46340, LQ_ERR_ARG, "GPU Hessian permutation: K = %lld", (long long)K);
    for (int64_t j = 0; j < K; j++)
        LQ_RETURN_IF(perm_host[j] < 0 || perm_host[j] >= K, LQ_ERR_ARG, "GPU Hessian permutation: perm[%lld] = %d",
                     (long long)j, perm_host[j]);
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&perm, sizeof(int32_t) * (size_t)K, "Hessian permutation"));
    LQ_TRY(lq_gptq_cuda_upload(g, perm, perm_host, sizeof(int32_t) * (size_t)K));
    hess_permute_kernel<<<grid_for(K * K, 256), 256, 0, g->stream>>>(Hp, S, perm, K, f);
    LQ_CUDA_TRY(cudaGetLastError(), "launch hess_permute_kernel");
    LQ_CUDA_TRY(cudaStreamSynchronize(g->stream), "Hessian permutation (synchronize)");
fail:
    if (st != LQ_OK) (void)cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(perm);
    return st;
}

/* D rows 0..N-1 = W - What, rows N..2N-1 = W (double) */
__global__ void rel_err_build_kernel(double *D, const float *W, const float *What, int64_t NK) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < NK; i += (int64_t)gridDim.x * blockDim.x) {
        D[i] = (double)W[i] - (double)What[i];
        D[NK + i] = (double)W[i];
    }
}

/* partial[b] = sum over this block's share of T[i] D[i] for i < NK (num) and
 * i >= NK (den); 256 threads. */
__global__ void rel_err_dot_kernel(double *partial, const double *T, const double *D, int64_t NK) {
    __shared__ double sn[256], sd[256];
    double n = 0, d = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < NK; i += (int64_t)gridDim.x * blockDim.x) {
        n += T[i] * D[i];
        d += T[NK + i] * D[NK + i];
    }
    sn[threadIdx.x] = n;
    sd[threadIdx.x] = d;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            sn[threadIdx.x] += sn[threadIdx.x + s];
            sd[threadIdx.x] += sd[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = sn[0];
        partial[2 * blockIdx.x + 1] = sd[0];
    }
}

extern "C" lq_status lq_hessian_rel_err_cuda(lq_gptq_cuda *g, const double *S, int64_t K, const float *W,
                                             const float *What, int64_t N, double *rel) {
    lq_status st = LQ_OK;
    double *D = NULL, *T = NULL, *part = NULL;
    double hp[2 * 256];
    const int nblk = 256;
    const double one = 1.0, zero = 0.0;
    const int64_t NK = N * K;
    double num = 0, den = 0;
    *rel = 0;
    LQ_RETURN_IF(N < 1 || K < 1 || K > 46340 || 2 * N > INT_MAX, LQ_ERR_ARG, "GPU rel. error: bad shape [%lld, %lld]",
                 (long long)N, (long long)K);
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&D, sizeof(double) * (size_t)(2 * NK), "rel. error (W - Ŵ; W)"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&T, sizeof(double) * (size_t)(2 * NK), "rel. error (D S)"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&part, sizeof(double) * 2 * nblk, "rel. error partial sums"));
    rel_err_build_kernel<<<grid_for(NK, 256), 256, 0, g->stream>>>(D, W, What, NK);
    LQ_CUDA_TRY(cudaGetLastError(), "launch rel_err_build_kernel");
    /* row-major T (2N, K) = D S  <=>  column-major T^T = S D^T, S symmetric,
     * its row-major upper triangle = column-major lower. */
    LQ_BLAS_TRY(cublasDsymm(g->blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, (int)K, (int)(2 * N), &one, S, (int)K,
                            D, (int)K, &zero, T, (int)K),
                "rel. error (cublasDsymm)");
    rel_err_dot_kernel<<<nblk, 256, 0, g->stream>>>(part, T, D, NK);
    LQ_CUDA_TRY(cudaGetLastError(), "launch rel_err_dot_kernel");
    LQ_TRY(lq_gptq_cuda_download(g, hp, part, sizeof hp));
    for (int b = 0; b < nblk; b++) {
        num += hp[2 * b];
        den += hp[2 * b + 1];
    }
    *rel = den > 0 && num > 0 ? sqrt(num / den) : 0.0;
fail:
    if (st != LQ_OK && g->stream) (void)cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(D);
    lq_gptq_cuda_dfree(T);
    lq_gptq_cuda_dfree(part);
    return st;
}

/* ---------------- damping, Cholesky, inverse ---------------- */

/* first[0] = smallest flat index of a non-finite entry (ULLONG_MAX: none) */
__global__ void first_nonfinite_kernel(unsigned long long *first, const double *A, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (!isfinite(A[i])) atomicMin(first, (unsigned long long)i);
}

/* out[0] = sum of diag(H), one block, fixed order (deterministic) */
__global__ void diag_sum_kernel(double *out, const double *H, int64_t K) {
    __shared__ double s[256];
    double a = 0;
    for (int64_t i = threadIdx.x; i < K; i += blockDim.x) a += H[i * K + i];
    s[threadIdx.x] = a;
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = s[0];
}

/* A = H + damp I, or (H == NULL) A = I */
__global__ void damp_copy_kernel(double *A, const double *H, int64_t K, double damp) {
    const int64_t n = K * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int diag = i / K == i % K;
        A[i] = H ? H[i] + (diag ? damp : 0.0) : (diag ? 1.0 : 0.0);
    }
}

/* U[r, c] = c >= r ? (float)A[r K + c] : 0   (A: column-major lower factor) */
__global__ void upper_to_f32_kernel(float *U, const double *A, int64_t K) {
    const int64_t n = K * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / K, c = i % K;
        U[i] = c >= r ? (float)A[i] : 0.0f;
    }
}

typedef struct {
    double *A, *B, *work;
    int lwork;
} hinv_ws;

/* Index of the first non-finite entry of A (n entries), or -1. */
static lq_status first_nonfinite(lq_gptq_cuda *g, const double *A, int64_t n, int64_t *idx) {
    unsigned long long h = ULLONG_MAX;
    unsigned long long *d = (unsigned long long *)g->flag; /* 16 bytes of flags: room for one */
    LQ_FORWARD(lq_gptq_cuda_upload(g, d, &h, sizeof h));
    first_nonfinite_kernel<<<grid_for(n, 256), 256, 0, g->stream>>>(d, A, n);
    LQ_LAUNCH_RET("first_nonfinite_kernel");
    LQ_FORWARD(lq_gptq_cuda_download(g, &h, d, sizeof h));
    *idx = h == ULLONG_MAX ? -1 : (int64_t)h;
    return LQ_OK;
}

static lq_status potrf_info(lq_gptq_cuda *g, double *A, int64_t K, hinv_ws *w, int *info) {
    LQ_FORWARD(lq_gptq_cuda_memset(g, g->flag, 0, sizeof(int)));
    cusolverStatus_t ss =
        cusolverDnDpotrf(g->solver, CUBLAS_FILL_MODE_LOWER, (int)K, A, (int)K, w->work, w->lwork, g->flag);
    LQ_RETURN_IF(ss != CUSOLVER_STATUS_SUCCESS, LQ_ERR_CUDA, "GPTQ Cholesky: cusolverDnDpotrf status %d", (int)ss);
    LQ_FORWARD(lq_gptq_cuda_download(g, info, g->flag, sizeof(int)));
    LQ_RETURN_IF(*info < 0, LQ_ERR_CUDA, "GPTQ Cholesky: cusolverDnDpotrf rejected argument %d", -*info);
    return LQ_OK;
}

/* One damping: 0 on success, else the step that failed (1, 2, 3) in *failed. */
static lq_status try_hinv_cuda(lq_gptq_cuda *g, const double *H, int64_t K, double damp, hinv_ws *w, float *U,
                               int *failed) {
    int info = 0;
    int64_t bad = -1;
    const unsigned grid = grid_for(K * K, 256);
    *failed = 0;
    damp_copy_kernel<<<grid, 256, 0, g->stream>>>(w->A, H, K, damp);
    LQ_LAUNCH_RET("damp_copy_kernel");
    LQ_FORWARD(potrf_info(g, w->A, K, w, &info));
    if (info != 0) {
        *failed = 1;
        return LQ_OK;
    }
    /* H^-1 = solve(L L^T, I) (full matrix; potrf below reads its lower half) */
    damp_copy_kernel<<<grid, 256, 0, g->stream>>>(w->B, NULL, K, 0.0);
    LQ_LAUNCH_RET("damp_copy_kernel (identity)");
    LQ_FORWARD(lq_gptq_cuda_memset(g, g->flag, 0, sizeof(int)));
    {
        cusolverStatus_t ss = cusolverDnDpotrs(g->solver, CUBLAS_FILL_MODE_LOWER, (int)K, (int)K, w->A, (int)K, w->B,
                                               (int)K, g->flag);
        LQ_RETURN_IF(ss != CUSOLVER_STATUS_SUCCESS, LQ_ERR_CUDA, "GPTQ inverse: cusolverDnDpotrs status %d", (int)ss);
    }
    LQ_FORWARD(lq_gptq_cuda_download(g, &info, g->flag, sizeof(int)));
    LQ_RETURN_IF(info != 0, LQ_ERR_CUDA, "GPTQ inverse: cusolverDnDpotrs rejected argument %d", -info);
    LQ_FORWARD(first_nonfinite(g, w->B, K * K, &bad));
    if (bad >= 0) {
        *failed = 2;
        return LQ_OK;
    }
    LQ_FORWARD(potrf_info(g, w->B, K, w, &info));
    if (info != 0) {
        *failed = 3;
        return LQ_OK;
    }
    /* column-major L with H^-1 = L L^T read row-major is U = L^T, upper,
     * H^-1 = U^T U (as lq_gptq_hinv_cpu) */
    upper_to_f32_kernel<<<grid, 256, 0, g->stream>>>(U, w->B, K);
    LQ_LAUNCH_RET("upper_to_f32_kernel");
    LQ_CUDA_RET(cudaStreamSynchronize(g->stream), "GPTQ inverse Cholesky (synchronize)");
    return LQ_OK;
}

extern "C" lq_status lq_gptq_hinv_cuda(lq_gptq_cuda *g, const double *H, int64_t K, double percdamp,
                                       int max_escalations, float *U, double *percdamp_used, double *damp_used,
                                       int *escalations) {
    static const char *const steps[] = {"", "Cholesky of H", "inverse of H", "Cholesky of H^-1"};
    lq_status st = LQ_OK;
    hinv_ws w = {NULL, NULL, NULL, 0};
    int64_t bad = -1;
    double mean_diag = 0, pd = percdamp;
    int failed = 0;
    LQ_RETURN_IF(K < 1 || K > 46340, LQ_ERR_UNSUPPORTED, "GPTQ: %lld inputs exceed cuSOLVER's int indexing",
                 (long long)K);
    LQ_FORWARD(first_nonfinite(g, H, K * K, &bad));
    LQ_RETURN_IF(bad >= 0, LQ_ERR_NUMERIC,
                 "GPTQ: the Hessian has a non-finite entry at (%lld, %lld) (NaN/Inf activations)",
                 (long long)(bad / K), (long long)(bad % K));
    diag_sum_kernel<<<1, 256, 0, g->stream>>>((double *)g->flag, H, K);
    LQ_LAUNCH_RET("diag_sum_kernel");
    LQ_FORWARD(lq_gptq_cuda_download(g, &mean_diag, g->flag, sizeof(double)));
    mean_diag /= (double)K;
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&w.A, sizeof(double) * (size_t)(K * K), "GPTQ Cholesky"));
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&w.B, sizeof(double) * (size_t)(K * K), "GPTQ inverse"));
    LQ_SOLVER_TRY(cusolverDnDpotrf_bufferSize(g->solver, CUBLAS_FILL_MODE_LOWER, (int)K, w.A, (int)K, &w.lwork),
                  "cusolverDnDpotrf_bufferSize");
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&w.work, sizeof(double) * (size_t)(w.lwork > 0 ? w.lwork : 1),
                               "cuSOLVER workspace"));
    for (int esc = 0; esc <= max_escalations; esc++, pd *= 10) {
        const double damp = pd * mean_diag;
        LQ_TRY(try_hinv_cuda(g, H, K, damp, &w, U, &failed));
        if (!failed) {
            *percdamp_used = pd;
            *damp_used = damp;
            *escalations = esc;
            goto fail; /* the cleanup; st is LQ_OK */
        }
    }
    st = lq_error(LQ_ERR_NUMERIC,
                  "GPTQ: %s failed even with damping %g x mean(diag H) = %g after %d escalations (mean diag %g)",
                  steps[failed], pd / 10, pd / 10 * mean_diag, max_escalations, mean_diag);
fail:
    if (g->stream) (void)cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(w.A);
    lq_gptq_cuda_dfree(w.B);
    lq_gptq_cuda_dfree(w.work);
    return st;
}

/* ---------------- the quantization rule on the device ---------------- */

/* lq_quant.h's rule: fp32 scale saturated at 65504, then fp16 (RNE). */
__device__ __forceinline__ uint16_t dev_scale_f16(float s) {
    if (!(s <= 65504.0f)) s = 65504.0f;
    return __half_as_ushort(__float2half_rn(s));
}
__device__ __forceinline__ float dev_f16(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* lq_quant_code: IEEE division, rintf (round half to even), clamp. */
__device__ __forceinline__ int dev_quant_code(float w, float s, int zero, int qmax) {
    if (s == 0.0f) return zero;
    float q = __fadd_rn(rintf(__fdiv_rn(w, s)), (float)zero);
    if (!(q >= 0.0f)) return 0;
    if (q > (float)qmax) return qmax;
    return (int)q;
}

/* lq_quant_group_params_ref over w[c0 .. c1) by the 32 lanes of a warp (all
 * lanes get the result). min/max are exact, so the order does not matter.
 * Returns 0 when a value is not finite. */
__device__ int dev_group_params(const float *w, int64_t c0, int64_t c1, int bits, int sym, uint16_t *s16, int *zero) {
    const int lane = threadIdx.x & 31, qmax = (1 << bits) - 1;
    float lo = 0.0f, hi = 0.0f, amax = 0.0f;
    int fin = 1;
    for (int64_t c = c0 + lane; c < c1; c += 32) {
        const float v = w[c];
        if (!isfinite(v)) fin = 0;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (fabsf(v) > amax) amax = fabsf(v);
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float l2 = __shfl_xor_sync(0xffffffffu, lo, o), h2 = __shfl_xor_sync(0xffffffffu, hi, o),
                    a2 = __shfl_xor_sync(0xffffffffu, amax, o);
        if (l2 < lo) lo = l2;
        if (h2 > hi) hi = h2;
        if (a2 > amax) amax = a2;
    }
    if (!__all_sync(0xffffffffu, fin)) return 0;
    if (sym) {
        *s16 = dev_scale_f16(__fdiv_rn(amax, (float)((1 << (bits - 1)) - 1)));
        *zero = 1 << (bits - 1);
    } else {
        *s16 = dev_scale_f16(__fdiv_rn(__fsub_rn(hi, lo), (float)qmax));
        const float s = dev_f16(*s16);
        if (s == 0.0f) {
            *zero = 0;
        } else {
            const float z = rintf(__fdiv_rn(-lo, s));
            *zero = z < 0.0f ? 0 : z > (float)qmax ? qmax : (int)z;
        }
    }
    return 1;
}

#define LQ_WARPS_PER_BLOCK 4

/* RTN: one warp per (row, group). */
__global__ void rtn_kernel(const float *w, int64_t rows, int64_t cols, int bits, int sym, int64_t G, int64_t ng,
                           uint8_t *codes, uint16_t *scales, uint8_t *zeros, int *bad) {
    const int lane = threadIdx.x & 31, qmax = (1 << bits) - 1;
    const int64_t item = (int64_t)blockIdx.x * LQ_WARPS_PER_BLOCK + threadIdx.x / 32;
    if (item >= rows * ng) return; /* uniform per warp */
    const int64_t r = item / ng, gi = item % ng, c0 = gi * G, c1 = c0 + G < cols ? c0 + G : cols;
    const float *wr = w + r * cols;
    uint16_t s16;
    int z;
    if (!dev_group_params(wr, c0, c1, bits, sym, &s16, &z)) {
        if (lane == 0) atomicCAS(bad, 0, (int)(r + 1));
        return;
    }
    if (lane == 0) {
        scales[r * ng + gi] = s16;
        zeros[r * ng + gi] = (uint8_t)z;
    }
    const float s = dev_f16(s16);
    for (int64_t c = c0 + lane; c < c1; c += 32) codes[r * cols + c] = (uint8_t)dev_quant_code(wr[c], s, z, qmax);
}

extern "C" lq_status lq_rtn_quantize_cuda(lq_gptq_cuda *g, const float *w, int64_t rows, int64_t cols,
                                          const lq_quant_params *p, uint8_t *codes, uint16_t *scales, uint8_t *zeros) {
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(rows < 0 || cols < 1, LQ_ERR_SHAPE, "GPU RTN: bad shape [%lld, %lld]", (long long)rows,
                 (long long)cols);
    if (rows == 0) return LQ_OK;
    const int64_t G = lq_quant_group_size(p, cols), ng = lq_quant_n_groups(p, cols);
    const int64_t items = rows * ng, blocks = (items + LQ_WARPS_PER_BLOCK - 1) / LQ_WARPS_PER_BLOCK;
    LQ_RETURN_IF(blocks > INT_MAX, LQ_ERR_UNSUPPORTED, "GPU RTN: %lld groups are too many for one launch",
                 (long long)items);
    int bad = 0;
    LQ_FORWARD(lq_gptq_cuda_memset(g, g->flag, 0, sizeof(int)));
    rtn_kernel<<<(unsigned)blocks, 32 * LQ_WARPS_PER_BLOCK, 0, g->stream>>>(w, rows, cols, p->bits, p->sym, G, ng, codes,
                                                                          scales, zeros, g->flag);
    LQ_LAUNCH_RET("rtn_kernel");
    LQ_FORWARD(lq_gptq_cuda_download(g, &bad, g->flag, sizeof(int)));
    LQ_RETURN_IF(bad, LQ_ERR_NUMERIC, "GPU RTN: row %d has a non-finite weight", bad - 1);
    return LQ_OK;
}

/* ---------------- the GPTQ loop ---------------- */

/* Columns [i1, i2) of one lazy block, one warp per row: quantize column j,
 * write its code and scaled error Err[r, j - i1], update the row's columns
 * j+1 .. i2-1 (lanes over columns, coalesced). Arithmetic as
 * lq_gptq_update_cpu: err = (w - dq) / U[j, j]; w[c] -= err * U[j, c], each
 * operation rounded (no FMA). Dynamic group params are computed when a group
 * starts (blocks hold whole groups, so the current group's params are the
 * last computed ones). */
__global__ void gptq_block_kernel(float *W, int64_t N, int64_t K, const float *U, int bits, int sym, int64_t G,
                                  int64_t ng, const int32_t *col_group, int static_params, uint16_t *scales,
                                  uint8_t *zeros, uint8_t *codes, float *Err, int64_t B, int64_t i1, int64_t i2,
                                  int *bad) {
    const int lane = threadIdx.x & 31, qmax = (1 << bits) - 1;
    const int64_t r = (int64_t)blockIdx.x * LQ_WARPS_PER_BLOCK + threadIdx.x / 32;
    if (r >= N) return; /* uniform per warp */
    float *w = W + r * K;
    uint16_t cur_s = 0;
    int cur_z = 0;
    for (int64_t j = i1; j < i2; j++) {
        const int64_t gi = col_group[j];
        uint16_t s16;
        int z;
        if (static_params) {
            s16 = scales[r * ng + gi];
            z = zeros[r * ng + gi];
        } else {
            if (j % G == 0) {
                const int64_t c1 = j + G < K ? j + G : K;
                if (!dev_group_params(w, j, c1, bits, sym, &cur_s, &cur_z)) {
                    if (lane == 0) atomicCAS(bad, 0, (int)(r + 1));
                    return;
                }
                if (lane == 0) {
                    scales[r * ng + gi] = cur_s;
                    zeros[r * ng + gi] = (uint8_t)cur_z;
                }
            }
            s16 = cur_s;
            z = cur_z;
        }
        const float s = dev_f16(s16), wj = w[j];
        if (!isfinite(wj)) { /* every lane read the same value: uniform */
            if (lane == 0) atomicCAS(bad, 0, (int)(r + 1));
            return;
        }
        const int c = dev_quant_code(wj, s, z, qmax);
        const float dq = (float)(c - z) * s; /* exact */
        const float err = __fdiv_rn(__fsub_rn(wj, dq), U[j * K + j]);
        if (lane == 0) {
            codes[r * K + j] = (uint8_t)c;
            Err[r * B + (j - i1)] = err;
        }
        const float *u = U + j * K;
        for (int64_t c2 = j + 1 + lane; c2 < i2; c2 += 32) w[c2] = __fsub_rn(w[c2], __fmul_rn(err, u[c2]));
        __syncwarp(); /* the next column reads what other lanes wrote */
    }
}

extern "C" lq_status lq_gptq_update_cuda(lq_gptq_cuda *g, float *W, int64_t N, int64_t K, const float *U,
                                         const lq_quant_params *p, int64_t G, const int32_t *col_group,
                                         int static_params, uint16_t *scales, uint8_t *zeros, uint8_t *codes,
                                         int block_size) {
    lq_status st = LQ_OK;
    float *Err = NULL;
    int32_t *cg = NULL;
    int bad = 0;
    int64_t B = block_size > 0 ? block_size : 128, ng, blocks;
    const float minus1 = -1.0f, one = 1.0f;
    LQ_FORWARD(lq_quant_params_check(p));
    LQ_RETURN_IF(N < 1 || K < 1 || G < 1 || G > K || N > INT_MAX || K > 46340, LQ_ERR_ARG,
                 "GPU GPTQ: bad shape [%lld, %lld] or group %lld", (long long)N, (long long)K, (long long)G);
    ng = (K + G - 1) / G;
    blocks = (N + LQ_WARPS_PER_BLOCK - 1) / LQ_WARPS_PER_BLOCK;
    if (!static_params) {
        /* the same check as the CPU: dynamic params need unpermuted columns */
        LQ_TRY(lq_malloc((void **)&cg, sizeof(int32_t) * (size_t)K, "GPTQ column groups"));
        LQ_TRY(lq_gptq_cuda_download(g, cg, col_group, sizeof(int32_t) * (size_t)K));
        for (int64_t j = 0; j < K; j++)
            LQ_FAIL_IF(cg[j] != j / G, LQ_ERR_ARG, "GPTQ: dynamic group params need unpermuted columns");
        B = G <= B ? B / G * G : G; /* a group never straddles a block boundary */
    }
    if (B > K) B = K;
    LQ_TRY(lq_gptq_cuda_malloc(g, (void **)&Err, sizeof(float) * (size_t)(N * B), "GPTQ block errors"));
    LQ_TRY(lq_gptq_cuda_memset(g, g->flag, 0, sizeof(int)));
    for (int64_t i1 = 0; i1 < K; i1 += B) {
        const int64_t i2 = i1 + B < K ? i1 + B : K, nb = i2 - i1;
        gptq_block_kernel<<<(unsigned)blocks, 32 * LQ_WARPS_PER_BLOCK, 0, g->stream>>>(
            W, N, K, U, p->bits, p->sym, G, ng, col_group, static_params, scales, zeros, codes, Err, B, i1, i2, g->flag);
        LQ_CUDA_TRY(cudaGetLastError(), "launch gptq_block_kernel");
        /* lazy update right of the block: W[:, i2:] -= Err (N, nb) U[i1:i2, i2:].
         * Column-major: W^T[i2:, :] -= U[i1:i2, i2:]^T Err^T. */
        if (i2 < K)
            LQ_BLAS_TRY(cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)(K - i2), (int)N, (int)nb, &minus1,
                                    U + i1 * K + i2, (int)K, Err, (int)B, &one, W + i2, (int)K),
                        "GPTQ trailing update (cublasSgemm)");
    }
    LQ_TRY(lq_gptq_cuda_download(g, &bad, g->flag, sizeof(int)));
    LQ_FAIL_IF(bad, LQ_ERR_NUMERIC, "GPTQ: row %d has non-finite weights during the update", bad - 1);
fail:
    if (g->stream) (void)cudaStreamSynchronize(g->stream);
    lq_gptq_cuda_dfree(Err);
    free(cg);
    return st;
}
