/* bench_wgmma.cu — how fast Hopper's warpgroup MMA runs in the shapes of
 * lq's W4A16 wgmma kernel (kernels/w4a16_cuda.cu, w4a16_wgmma_kernel), with no
 * memory traffic at all: to tell whether that kernel's ~1 us per 64-input tile
 * (~50% of the tensor peak, kernels/dev/w4a16_notes.md) comes from the
 * register-A (RS) form of wgmma itself, from its issue/wait pattern, or from
 * the block barriers.
 *
 * One block of 2 warpgroups per SM (132 blocks), each warpgroup issuing
 * m64n128k16 f32 += f16 x f16 products into two accumulator sets, 16 wgmma per
 * "tile" per block (the kernel's tile: 256 weight rows x 128 x rows x 64
 * inputs), B from a 128-byte-swizzled shared tile, for ITERS tiles:
 *   0 v1     RS; per tile and warpgroup: wait<1>, rewrite fragment set 0,
 *            4 wgmma, commit, wait<1>, rewrite set 1, 4 wgmma, commit; two
 *            block barriers per tile (the mainline kernel's pattern, no loads)
 *   1 v2     RS; per tile: 8 wgmma from one set, commit, wait<1>, rewrite the
 *            other set; one block barrier (branch wgmma-v2's pattern)
 *   2 v2-ss  as v2 with A from shared memory (no fragment rewrite)
 *   3 rs     RS, 8 wgmma per commit, wait<1>, nothing else
 *   4 ss     SS, the same
 * The "rewrite" is 16 dependent-free ALU ops on the set's 16 registers, a
 * stand-in for the dequantization's ~50 (the numbers multiply garbage: the
 * result is printed only so that nothing is optimized away).
 * Prints TFLOP/s over the GPU and FLOP per clock per SM (dense fp16 peak:
 * 4096 on H100/H200).
 * Build (not part of `make`):
 *   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_wgmma.cu -o build/bench_wgmma
 *   build/bench_wgmma */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#define ITERS 4096

__device__ __forceinline__ uint64_t desc128(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void keep(uint32_t &r) { asm volatile("" : "+r"(r)::"memory"); }
__device__ __forceinline__ void keepf(float &r) { asm volatile("" : "+f"(r)::"memory"); }

__device__ __forceinline__ void mma_rs(float *d, const uint32_t *a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
__device__ __forceinline__ void mma_ss(float *d, uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(a), "l"(b), "r"(1));
}

template <int MODE>
__global__ void __launch_bounds__(256, 1) bench(float *out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(16) unsigned char raw[];
    const uint32_t s0 = (uint32_t)__cvta_generic_to_shared(raw), sb = (s0 + 1023u) & ~1023u;
    unsigned char *sp = raw + (sb - s0);
    /* B: 128 rows x 128 bytes; A (SS): 2 warpgroups x 2 sets x 64 rows x 128 bytes */
    for (int i = threadIdx.x; i < (16384 + 32768) / 4; i += blockDim.x) ((uint32_t *)sp)[i] = 0x00010001u * (i & 7);
    __syncthreads();
    const int wg = threadIdx.x >> 7;
    const uint32_t xb = sb, ab = sb + 16384 + wg * 16384;
    float d[2][64];
#pragma unroll
    for (int s = 0; s < 2; s++)
#pragma unroll
        for (int i = 0; i < 64; i++) d[s][i] = 0.0f;
    uint32_t a[2][2][4][4];
#pragma unroll
    for (int b = 0; b < 2; b++)
#pragma unroll
        for (int s = 0; s < 2; s++)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) a[b][s][j][e] = 0x3c003c00u ^ (threadIdx.x + j + e);
    fence();
    for (int t = 0; t < ITERS; t += 2) {
#pragma unroll
        for (int h = 0; h < 2; h++) { /* tile t + h; fragment set h (v2: issue h, rewrite 1 - h) */
            if (MODE == 0) {
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    wait<1>();
#pragma unroll
                    for (int j = 0; j < 4; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++) { keep(a[0][s][j][e]); a[0][s][j][e] ^= (uint32_t)(t + h); }
                    fence();
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_rs(d[s], a[0][s][j], desc128(xb + 32 * j));
                    commit();
                }
                __syncthreads();
                __syncthreads();
            } else if (MODE == 1 || MODE == 3) {
                fence();
#pragma unroll
                for (int s = 0; s < 2; s++)
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_rs(d[s], a[h][s][j], desc128(xb + 32 * j));
                commit();
                wait<1>();
                if (MODE == 1) {
#pragma unroll
                    for (int s = 0; s < 2; s++)
#pragma unroll
                        for (int j = 0; j < 4; j++)
#pragma unroll
                            for (int e = 0; e < 4; e++) {
                                keep(a[1 - h][s][j][e]);
                                a[1 - h][s][j][e] ^= (uint32_t)(t + h);
                            }
                    __syncthreads();
                }
            } else {
                fence();
#pragma unroll
                for (int s = 0; s < 2; s++)
#pragma unroll
                    for (int j = 0; j < 4; j++) mma_ss(d[s], desc128(ab + s * 8192 + 32 * j), desc128(xb + 32 * j));
                commit();
                wait<1>();
                if (MODE == 2) __syncthreads();
            }
        }
    }
    wait<0>();
    float sum = 0.0f;
#pragma unroll
    for (int s = 0; s < 2; s++)
#pragma unroll
        for (int i = 0; i < 64; i++) { keepf(d[s][i]); sum += d[s][i]; }
    if (sum == 1234.5f) out[blockIdx.x] = sum; /* never true in practice: keeps the work */
#endif
}

template <int MODE> static double run(const char *name, int sms, float *out, double clock_ghz) {
    const int smem = 16384 + 32768 + 1024;
    cudaFuncSetAttribute(bench<MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    bench<MODE><<<sms, 256, smem>>>(out); /* warm-up */
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaEventRecord(e0);
    bench<MODE><<<sms, 256, smem>>>(out);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) { printf("%s: %s\n", name, cudaGetErrorString(err)); return 0; }
    const double flop = (double)sms * ITERS * 16 * 64.0 * 128 * 16 * 2;
    const double tf = flop / (ms * 1e-3) / 1e12, per_clk = flop / sms / (ms * 1e-3 * clock_ghz * 1e9);
    printf("%-8s %8.3f ms  %7.1f TFLOP/s  %6.0f FLOP/clk/SM  %.3f us per tile\n", name, ms, tf, per_clk,
           ms * 1e3 / ITERS);
    return tf;
}

int main(void) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) { printf("no CUDA device\n"); return 1; }
    int clk_khz = 0;
    cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, 0);
    const double ghz = clk_khz / 1e6;
    printf("%s, %d SMs, %.2f GHz max clock; %d tiles of 16 wgmma m64n128k16 per block, one block per SM\n", p.name,
           p.multiProcessorCount, ghz, ITERS);
    float *out = NULL;
    cudaMalloc(&out, 4096);
    run<0>("v1", p.multiProcessorCount, out, ghz);
    run<1>("v2", p.multiProcessorCount, out, ghz);
    run<2>("v2-ss", p.multiProcessorCount, out, ghz);
    run<3>("rs", p.multiProcessorCount, out, ghz);
    run<4>("ss", p.multiProcessorCount, out, ghz);
    cudaFree(out);
    return 0;
}
