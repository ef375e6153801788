/* bench_read_ceiling.cu — how fast can a launch that only reads B bytes go, timed the way lq bench times a kernel?
 *
 * The M = 1 W4A16 products (issue 5: 3.5x cuBLAS fp16 across the four Llama-3-8B shapes) and the 1 x 8k decode
 * attention (issue 3: 80% of copy) are timed as CUDA graphs of back-to-back launches, each launch reading its own
 * copy of the weights (rotated through >= 512 MB), with programmatic dependent launch (PDL). A launch then pays,
 * beyond its bytes at copy rate, the hand-over from the previous launch (its grid's completion) and whatever it
 * does before its first byte and after its last. This tool measures the floor of that for a kernel that does
 * nothing but read: 16-byte streaming loads (ld.global.nc.L1::no_allocate, as the W4A16 small-M kernel's), 8 per
 * thread in flight, 2 blocks of 512 threads per SM, one word out per block. Three ways to place the PDL wait:
 *   wait-first   griddepcontrol.wait before any load (a kernel whose every input is the previous kernel's output)
 *   ring-first   the first 8 loads of each thread issued before the wait, the rest after it (the W4A16 small-M
 *                kernel: its weight ring before the wait, x and everything after the ring behind it)
 *   read-first   every load before the wait, the wait only before the one store (a kernel none of whose inputs
 *                the previous kernel writes: the most a launch can overlap its predecessor)
 *   stage-first  up to 96 KB per block (two per SM) copied into shared memory by one cp.async.bulk before the
 *                wait, the rest of the block's bytes read after it (a W4A16 kernel holding its weights in shared
 *                memory until x is there)
 * For each byte count: us per launch (median of 20 graph replays after >= 50 ms of warm-up), TB/s, and the share
 * of the device-to-device copy rate (1 GiB, read + write, as lq bench reports it). Default byte counts: the four
 * llama3-8b W4A16 products at M = 1 (codes + fp16 scales of group 128: qkv 6144 x 4096, o 4096 x 4096, gate_up
 * 28672 x 4096, down 4096 x 14336) and the 1 x 8k decode attention's K + V (8 heads x 128 x 8192 x 2 x 2 bytes).
 *
 * Build and run (make dev-read-ceiling; any GPU with PDL, sm_90 here):
 *   make dev-read-ceiling && build/dev/bench_read_ceiling [MB ...]
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

#define CK(x)                                                                                                 \
    do {                                                                                                      \
        cudaError_t e_ = (x);                                                                                 \
        if (e_ != cudaSuccess) {                                                                              \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));               \
            exit(1);                                                                                          \
        }                                                                                                     \
    } while (0)

#define RC_THREADS 512
#define RC_U 8 /* 16-byte loads per thread in flight */

__device__ __forceinline__ uint4 rc_ld(const uint4 *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}
__device__ __forceinline__ void rc_wait(void) {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void rc_trigger(void) {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* xor of the 16-byte words i, i + RC_THREADS, ... below hi (RC_U loads in flight per round) */
__device__ __forceinline__ uint32_t rc_xor(const uint4 *__restrict__ src, size_t i, size_t hi) {
    uint32_t acc = 0;
    for (; i + (RC_U - 1) * RC_THREADS < hi; i += (size_t)RC_THREADS * RC_U) {
        uint4 v[RC_U];
#pragma unroll
        for (int u = 0; u < RC_U; u++) v[u] = rc_ld(src + i + (size_t)u * RC_THREADS);
#pragma unroll
        for (int u = 0; u < RC_U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < hi; i += RC_THREADS) {
        const uint4 v = rc_ld(src + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    return acc;
}
/* the block's xor into out[blockIdx.x] (so that no load is dead) */
__device__ __forceinline__ void rc_finish(uint32_t acc, unsigned *__restrict__ out) {
    __shared__ unsigned red[RC_THREADS / 32];
    for (int o = 16; o; o >>= 1) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned a = 0;
        for (int w = 0; w < RC_THREADS / 32; w++) a ^= red[w];
        out[blockIdx.x] = a;
    }
}

/* MODE 0 wait-first, 1 ring-first, 2 read-first. Block b reads 16-byte words [b n / G, (b + 1) n / G) of src. */
template <int MODE> __global__ void __launch_bounds__(RC_THREADS) rc_read(const uint4 *__restrict__ src, size_t n,
                                                                         unsigned *__restrict__ out) {
    rc_trigger();
    if (MODE == 0) rc_wait();
    const size_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    size_t i = lo + threadIdx.x;
    uint32_t acc = 0;
    if (MODE == 1 && i + (RC_U - 1) * RC_THREADS < hi) { /* the first round's loads in flight before the wait */
        uint4 v[RC_U];
#pragma unroll
        for (int u = 0; u < RC_U; u++) v[u] = rc_ld(src + i + (size_t)u * RC_THREADS);
        rc_wait();
#pragma unroll
        for (int u = 0; u < RC_U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
        i += (size_t)RC_THREADS * RC_U;
    } else if (MODE == 1) {
        rc_wait();
    }
    acc ^= rc_xor(src, i, hi);
    if (MODE == 2) rc_wait();
    rc_finish(acc, out);
}

/* stage-first: each block's first (up to) RC_STAGE bytes copied into shared memory by one cp.async.bulk before
 * the PDL wait (the copy engine; no registers held), the rest of its chunk read after the wait, then the staged
 * bytes read from shared memory. The W4A16 kernel's weights could be held this way (session 15's w4-pre staged
 * them by cp.async and lost: its trace had the grid hand-over ~1 us later); this says what the copies in flight
 * do to a launch that has nothing else to do. */
#define RC_STAGE (96 * 1024)
__global__ void __launch_bounds__(RC_THREADS) rc_stage(const uint4 *__restrict__ src, size_t n,
                                                       unsigned *__restrict__ out) {
#if __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) uint4 sm[];
    __shared__ __align__(8) unsigned long long bar;
    rc_trigger();
    const size_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    const size_t ns = hi - lo < (size_t)(RC_STAGE / 16) ? hi - lo : (size_t)(RC_STAGE / 16); /* staged words */
    const uint32_t b = (uint32_t)__cvta_generic_to_shared(&bar), d = (uint32_t)__cvta_generic_to_shared(sm);
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(b) : "memory");
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(b), "r"((uint32_t)(ns * 16))
                     : "memory");
        if (ns)
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(d),
                         "l"(src + lo), "r"((uint32_t)(ns * 16)), "r"(b)
                         : "memory");
    }
    __syncthreads(); /* the barrier is initialized */
    rc_wait();
    uint32_t acc = rc_xor(src, lo + ns + threadIdx.x, hi); /* the rest, after the wait */
    for (;;) { /* the staged bytes have landed */
        uint32_t ok;
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok)
                     : "r"(b)
                     : "memory");
        if (ok) break;
    }
    for (size_t i = threadIdx.x; i < ns; i += RC_THREADS) {
        const uint4 v = sm[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    rc_finish(acc, out);
#endif
}

__global__ void rc_fill(uint4 *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t z = (uint32_t)i * 2654435761u + seed;
        p[i] = make_uint4(z, z ^ 0x9E3779B9u, z * 3u, ~z);
    }
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

/* one launch of rc_read<MODE> (MODE 3: rc_stage) with the PDL attribute, as lq's launches */
template <int MODE> static void launch(const uint4 *src, size_t n, unsigned *out, int blocks, cudaStream_t st) {
    cudaLaunchAttribute a;
    a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks), cfg.blockDim = dim3(RC_THREADS), cfg.stream = st;
    cfg.attrs = &a, cfg.numAttrs = 1;
    if (MODE == 3) {
        cfg.dynamicSmemBytes = RC_STAGE;
        CK(cudaLaunchKernelEx(&cfg, rc_stage, src, n, out));
    } else {
        CK(cudaLaunchKernelEx(&cfg, rc_read<MODE>, src, n, out));
    }
}

/* us per launch: a graph of L launches, launch i reading copy i % copies */
template <int MODE>
static double time_mode(const std::vector<uint4 *> &cp, size_t n, unsigned *out, int blocks, cudaStream_t st) {
    const int copies = (int)cp.size(), L = copies > 10 ? copies : 10;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < L; i++) launch<MODE>(cp[(size_t)(i % copies)], n, out, blocks, st);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms = 0, warm = 0;
    while (warm < 50.0f) { /* >= 50 ms of warm-up, as lq bench */
        CK(cudaEventRecord(e0, st));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        warm += ms;
    }
    std::vector<double> per;
    for (int r = 0; r < 20; r++) {
        CK(cudaEventRecord(e0, st));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        per.push_back(ms * 1000.0 / L);
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    return median(per);
}

int main(int argc, char **argv) {
    int dev = 0;
    CK(cudaSetDevice(dev));
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, dev));
    if (p.major < 9) fprintf(stderr, "note: sm_%d%d has no griddepcontrol; the three modes are the same kernel\n", p.major, p.minor);
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    /* the copy rate, as lq bench reports it: 1 GiB device to device, read + write */
    double copy_tbs = 0;
    {
        const size_t cb = (size_t)1 << 30;
        void *a = NULL, *b = NULL;
        CK(cudaMalloc(&a, cb));
        CK(cudaMalloc(&b, cb));
        CK(cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice, st));
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        std::vector<double> v;
        for (int r = 0; r < 10; r++) {
            float ms;
            CK(cudaEventRecord(e0, st));
            CK(cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice, st));
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            v.push_back(2.0 * cb / (ms * 1e-3) / 1e12);
        }
        copy_tbs = median(v);
        CK(cudaFree(a));
        CK(cudaFree(b));
        CK(cudaEventDestroy(e0));
        CK(cudaEventDestroy(e1));
    }
    printf("# %s, %d SMs; device-to-device copy (1 GiB): %.3f TB/s (read + write); kernels/dev/bench_read_ceiling.cu\n",
           p.name, p.multiProcessorCount, copy_tbs);
    printf("# a launch that only reads B bytes (2 x 512-thread blocks per SM, 8 x 16-byte loads per thread in flight),"
           " graphs of back-to-back PDL launches over copies rotated through >= 512 MB\n");
    struct item {
        const char *name;
        double bytes;
    };
    std::vector<item> items;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            const double mb = atof(argv[i]);
            if (mb <= 0) {
                fprintf(stderr, "usage: %s [MB ...] (positive sizes in 10^6 bytes)\n", argv[0]);
                return 2;
            }
            items.push_back({argv[i], mb * 1e6});
        }
    } else {
        const double g = 2.0 / 128.0; /* fp16 scale bytes per weight, group 128 */
        items = {{"qkv", 6144.0 * 4096 * (0.5 + g)},
                 {"o", 4096.0 * 4096 * (0.5 + g)},
                 {"gate_up", 28672.0 * 4096 * (0.5 + g)},
                 {"down", 4096.0 * 14336 * (0.5 + g)},
                 {"attn1x8k", 8.0 * 128 * 8192 * 2 * 2}};
    }
    const int blocks = 2 * p.multiProcessorCount;
    unsigned *out = NULL;
    CK(cudaMalloc(&out, sizeof(unsigned) * (size_t)blocks));
    /* stage-first: 96 KB of dynamic shared memory per block, two blocks per SM */
    const bool stage_ok = p.major >= 9 &&
                          cudaFuncSetAttribute(rc_stage, cudaFuncAttributeMaxDynamicSharedMemorySize, RC_STAGE) ==
                              cudaSuccess;
    if (!stage_ok) (void)cudaGetLastError(), fprintf(stderr, "note: no stage-first mode on this device (0 below)\n");
    printf("%-10s %9s %8s | %10s %10s %10s %11s | %s\n", "bytes", "MB", "100% us", "wait-first", "ring-first",
           "read-first", "stage-first", "TB/s and share of copy (read-first)");
    for (const item &it : items) {
        const size_t n = (size_t)(it.bytes / 16.0 + 0.5); /* 16-byte words */
        const size_t bytes = n * 16;
        int copies = (int)(((size_t)512 << 20) / bytes) + 1;
        if (copies < 2) copies = 2;
        std::vector<uint4 *> cp((size_t)copies);
        for (int c = 0; c < copies; c++) {
            CK(cudaMalloc(&cp[(size_t)c], bytes));
            rc_fill<<<1024, 256, 0, st>>>(cp[(size_t)c], n, (uint32_t)c * 7919u + 1u);
            CK(cudaGetLastError());
        }
        CK(cudaStreamSynchronize(st));
        const double t0 = time_mode<0>(cp, n, out, blocks, st), t1 = time_mode<1>(cp, n, out, blocks, st),
                     t2 = time_mode<2>(cp, n, out, blocks, st), t3 = stage_ok ? time_mode<3>(cp, n, out, blocks, st) : 0.0;
        const double at_copy = bytes / (copy_tbs * 1e12) * 1e6; /* us at 100% of copy, the share's reference */
        const double tbs = bytes / (t2 * 1e-6) / 1e12;
        printf("%-10s %9.2f %8.2f | %10.2f %10.2f %10.2f %11.2f | %.3f TB/s, %.1f%% of copy\n", it.name, bytes / 1e6,
               at_copy, t0, t1, t2, t3, tbs, 100.0 * tbs / copy_tbs);
        for (uint4 *c : cp) CK(cudaFree(c));
    }
    CK(cudaFree(out));
    CK(cudaStreamDestroy(st));
    return 0;
}
