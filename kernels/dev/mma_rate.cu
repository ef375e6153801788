/* Session 23 microbenchmark (dev only, not part of the build): the issue rate of the tensor-core instructions a
 * small-M W4A16 kernel could use, per SM and per SM clock, on the card it runs on.
 *   mma.sync m16n8k16 f32 (what w4a16_small_m_kernel issues: 4 per 16 x 64 weight tile of a warp), with
 *   IND independent accumulators per warp (1 = one dependent chain), and wgmma m64n8k16 / m64n16k16 with A
 *   from registers (one instruction covers 64 weight rows x 16 inputs = 4 warps' mma.sync), B (x) from shared
 *   memory, IND accumulators per warpgroup, one commit group and a wait per round.
 * Build: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o mma_rate kernels/dev/mma_rate.cu
 * Run: ./mma_rate  (one block of 1024 threads per SM, the cycles from clock64 inside the block) */
#include <cstdio>
#include <cstdint>
#include <cuda_runtime.h>
#include <cuda_fp16.h>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); return 1; } } while (0)

template <int IND> __global__ void __launch_bounds__(1024, 1) k_mma(float *out, long long *cyc, int iters, uint32_t seed) {
    float acc[IND][4];
    for (int j = 0; j < IND; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    uint32_t a[4], b0 = 0x3c003c00u ^ (seed & 0x00ff00ffu), b1 = b0 ^ (threadIdx.x & 7);
    for (int i = 0; i < 4; i++) a[i] = 0x3c003c00u ^ ((threadIdx.x * 0x9E3779B9u + i) & 0x03ff03ffu);
    __syncthreads();
    const long long t0 = clock64();
    for (int it = 0; it < iters; it++)
#pragma unroll
        for (int j = 0; j < IND; j++)
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                         "{%0,%1,%2,%3};\n"
                         : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    __syncthreads();
    const long long t1 = clock64();
    float s = 0;
    for (int j = 0; j < IND; j++) s += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
    if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

/* no-swizzle K-major descriptor: start / 16, LBO (K direction) 128 B, SBO (N direction) 256 B, layout 0 */
__device__ __forceinline__ uint64_t desc0(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(128 >> 4) << 16) | ((uint64_t)(256 >> 4) << 32);
}

template <int N, int IND> __global__ void __launch_bounds__(1024, 1) k_wgmma(float *out, long long *cyc, int iters, uint32_t seed) {
    __shared__ __align__(1024) __half xs[8 * 1024];
    for (int i = threadIdx.x; i < 8 * 1024; i += blockDim.x) xs[i] = __float2half((float)((i * 7 + seed) % 13) * 0.125f);
    constexpr int NR = N / 2; /* accumulator floats per thread: 64 x N / 128 */
    float acc[IND][NR];
    for (int j = 0; j < IND; j++)
        for (int e = 0; e < NR; e++) acc[j][e] = 0.0f;
    uint32_t a[4];
    for (int i = 0; i < 4; i++) a[i] = 0x3c003c00u ^ ((threadIdx.x * 0x9E3779B9u + i) & 0x03ff03ffu);
    const uint32_t sb = (uint32_t)__cvta_generic_to_shared(xs) + (threadIdx.x / 128) * 1024;
    const uint64_t d = desc0(sb);
    __syncthreads();
    const long long t0 = clock64();
    for (int it = 0; it < iters; it++) {
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int j = 0; j < IND; j++) {
            if constexpr (N == 8)
                asm volatile("wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, 1, 1, 1, 0;\n"
                             : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(d));
            else
                asm volatile("wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9,%10,%11}, %12, 1, 1, 1, 0;\n"
                             : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3]), "+f"(acc[j][4]),
                               "+f"(acc[j][5]), "+f"(acc[j][6]), "+f"(acc[j][7])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(d));
        }
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    }
    __syncthreads();
    const long long t1 = clock64();
    float s = 0;
    for (int j = 0; j < IND; j++)
        for (int e = 0; e < NR; e++) s += acc[j][e];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
    if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

template <typename K> static int run(const char *name, K kern, int sms, int threads, int iters, double insts_per_thread_iter_per_warp,
                                     float *out, long long *cyc) {
    long long h[1024];
    for (int rep = 0; rep < 2; rep++) {
        kern<<<sms, threads>>>(out, cyc, iters, 12345u + rep);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
    }
    CK(cudaMemcpy(h, cyc, sizeof(long long) * sms, cudaMemcpyDeviceToHost));
    long long mx = 0, mn = h[0];
    for (int i = 0; i < sms; i++) mx = h[i] > mx ? h[i] : mx, mn = h[i] < mn ? h[i] : mn;
    /* instructions per SM: warps x iters x per-iteration count (wgmma: per warpgroup, given per warp / 4) */
    const double insts = (double)(threads / 32) * iters * insts_per_thread_iter_per_warp;
    printf("%-34s %8.2f SM clocks per instruction (min %lld max %lld cycles for %.0f per SM)\n", name,
           (double)mx / insts, mn, mx, insts);
    return 0;
}

int main() {
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    float *out;
    long long *cyc;
    CK(cudaMalloc(&out, sizeof(float) * 1024 * sms));
    CK(cudaMalloc(&cyc, sizeof(long long) * sms));
    const int it = 4096;
    for (int w : {1024, 512, 256}) {
        char n[64];
        printf("-- %d threads per SM\n", w);
        snprintf(n, sizeof n, "mma.sync m16n8k16, 8 chains");
        run(n, k_mma<8>, sms, w, it, 8, out, cyc);
        snprintf(n, sizeof n, "mma.sync m16n8k16, 4 chains");
        run(n, k_mma<4>, sms, w, it, 4, out, cyc);
        snprintf(n, sizeof n, "mma.sync m16n8k16, 1 chain");
        run(n, k_mma<1>, sms, w, it, 1, out, cyc);
        /* per warpgroup IND wgmma per iteration: per warp IND / 4 */
        snprintf(n, sizeof n, "wgmma m64n8k16 RS, 4 acc");
        run(n, k_wgmma<8, 4>, sms, w, it, 1.0, out, cyc);
        snprintf(n, sizeof n, "wgmma m64n8k16 RS, 8 acc");
        run(n, k_wgmma<8, 8>, sms, w, it, 2.0, out, cyc);
        snprintf(n, sizeof n, "wgmma m64n16k16 RS, 4 acc");
        run(n, k_wgmma<16, 4>, sms, w, it, 1.0, out, cyc);
    }
    printf("(one wgmma m64nXk16 = 4 warps' mma.sync m16n8k16 of weights when X = 8: compare clocks per wgmma with 4x "
           "the mma.sync figure)\n");
    return 0;
}
