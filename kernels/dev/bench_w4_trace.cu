/* bench_w4_trace.cu — where a W4A16 wgmma (or small-M) launch's time goes, launch after launch.
 *
 * Compiles kernels/w4a16_cuda.cu itself with LQ_W4_TRACE defined, so that thread 0 of every block of
 * w4a16_wgmma_kernel and of w4a16_small_m_kernel stamps %globaltimer at its phases (WG_TRACE there; the
 * mainline build has none of it). A shape NxKxM:3 (the default for M <= 8) runs path 3, the small-M kernel,
 * whose stamps are entry / wait / x (staged) / loop(w0) (warp 0's loop done) / loops (every warp's) / exit and
 * whose "per tile" is (loops - x) / (a warp's tiles - 1); the default list starts with the four llama3-8b
 * products at M = 1 on path 3. Each stamp also keeps the SM clock (clock64), and a last line gives each phase
 * inside a block in SM clocks, median over blocks (%globaltimer ticks are 0.256 us on the H200; session 24).
 * Each shape N x K at M rows runs the way lq bench kernels --w4a16 times path 4: a CUDA graph of R
 * back-to-back launches of lq_w4a16_matmul_cuda (path 4, the automatic tile / slice / cluster choice, the
 * knobs of the environment), launch i reading weight copy i (R copies, >= 512 MB in all), random codes and
 * scales, group 128, symmetric. The stamps of one replay, per launch k (t0 = its first block's entry), as
 * median / max over the launch's blocks of
 *   wait   = after griddepcontrol.wait        (the first stages' weight copies are issued before it)
 *   tile0  = the first tile dequantized        (its x copy, issued after the wait, has landed)
 *   mid    = the step at the middle of the block's K slice
 *   loop   = every wgmma of the block done
 *   exit   = the epilogue done (stores, or the cluster sum)
 * then per launch: period = t0(k + 1) - t0(k); end = its last exit; next-in = how many of launch k + 1's blocks
 * entered before that end; hand = launch k + 1's first wait return - end. The per-step time is
 * (loop - tile0) / steps of a block (steps = K / 64 / slices; the tail mode splits only the last wave).
 * Medians over the launches 2 .. R - 3 (steady state).
 *
 * Build and run (make dev-w4-trace; needs an sm_90 GPU):
 *   make dev-w4-trace && build/dev/bench_w4_trace [NxKxM ...]
 * default: the llama3-8b products (qkv 6144 x 4096, o 4096 x 4096, gate_up 28672 x 4096, down 4096 x 14336)
 * at M = 16, 64, 256 and 1024.
 */
#define LQ_W4_TRACE 1
#include "../w4a16_cuda.cu"

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#define LQ_DEV_TRACE_TOOLS 1
#include "bench_common.cuh" /* CK, LQ, fill_half, dev_median, dev_graph_us */

__global__ void trace_fill_u32(uint32_t *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 29;
        z *= 0xBF58476D1CE4E5B9ull;
        p[i] = (uint32_t)(z >> 32);
    }
}
__global__ void trace_fill_scales(__half *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
        z ^= z >> 31;
        p[i] = __float2half(0.001f + 0.01f * (float)(z & 0xFFFF) / 65536.0f);
    }
}

static lq_device_limits lim_g; /* main's, for the small-M plan */

static void run_shape(const char *name, int N, int K, int M, int sm, int path) {
    lq_w4a16_shape s;
    memset(&s, 0, sizeof s);
    s.N = N, s.K = K, s.Np = (N + 31) / 32 * 32, s.Kp = (K + 63) / 64 * 64, s.G = 128 < K ? 128 : K;
    s.n_groups = (K + s.G - 1) / s.G, s.sym = 1;
    const size_t wb = lq_w4a16_device_bytes(&s);
    int R = (int)((((size_t)512 << 20) + wb - 1) / wb);
    if (R < 12) R = 12;
    if (R > 64) R = 64;
    std::vector<char *> wmem((size_t)R);
    std::vector<lq_w4a16_weight> w((size_t)R);
    const size_t qb = (lq_w4a16_qw_words(&s) * 4 + 255) & ~(size_t)255;
    for (int r = 0; r < R; r++) {
        CK(cudaMalloc(&wmem[r], wb));
        w[r].s = s, w[r].qw = (const uint32_t *)wmem[r], w[r].scales = wmem[r] + qb, w[r].zeros = NULL;
        trace_fill_u32<<<1024, 256>>>((uint32_t *)wmem[r], lq_w4a16_qw_words(&s), 1000 + r);
        trace_fill_scales<<<256, 256>>>((__half *)(wmem[r] + qb), lq_w4a16_group_elems(&s), 77 + r);
    }
    const size_t wsb = lq_w4a16_workspace_bytes(&s, M, sm);
    void *x, *y, *ws = NULL;
    CK(cudaMalloc(&x, (size_t)M * K * 2));
    CK(cudaMalloc(&y, (size_t)M * N * 4));
    if (wsb) CK(cudaMalloc(&ws, wsb));
    fill_half<<<1024, 256>>>((__half *)x, (size_t)M * K, 7);
    CK(cudaDeviceSynchronize());

    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    auto launch = [&](int i) {
        LQ(lq_w4a16_matmul_cuda(NULL, (float *)y, x, 0, &w[(size_t)i], NULL, M, path, sm, ws, wsb, st));
    };
    /* one launch to learn the grid: every block of it takes one ticket */
    unsigned int zero = 0, nblk = 0;
    unsigned long long *none = NULL;
    CK(cudaMemcpyToSymbol(lq_wg_trace, &none, sizeof none));
    CK(cudaMemcpyToSymbol(lq_wg_trace_seq, &zero, sizeof zero));
    for (int i = 0; i < R; i++) launch(i); /* warm-up */
    CK(cudaStreamSynchronize(st));
    {
        unsigned long long *dummy;
        CK(cudaMalloc(&dummy, sizeof(unsigned long long) * WG_TRACE_ROW * 65536));
        int one = 1;
        CK(cudaMemcpyToSymbol(lq_wg_trace, &dummy, sizeof dummy));
        CK(cudaMemcpyToSymbol(lq_wg_trace_launches, &one, sizeof one));
        CK(cudaMemcpyToSymbol(lq_wg_trace_seq, &zero, sizeof zero));
        launch(0);
        CK(cudaStreamSynchronize(st));
        CK(cudaMemcpyFromSymbol(&nblk, lq_wg_trace_seq, sizeof nblk));
        CK(cudaMemcpyToSymbol(lq_wg_trace, &none, sizeof none));
        CK(cudaFree(dummy));
    }
    const size_t tr_n = (size_t)R * nblk * WG_TRACE_ROW;
    unsigned long long *tr;
    CK(cudaMalloc(&tr, sizeof(unsigned long long) * tr_n));

    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < R; i++) launch(i);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const double graph_us = dev_graph_us(ge, st, R, 5); /* untraced replays */
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaMemset(tr, 0, sizeof(unsigned long long) * tr_n));
    CK(cudaMemcpyToSymbol(lq_wg_trace, &tr, sizeof tr));
    CK(cudaMemcpyToSymbol(lq_wg_trace_launches, &R, sizeof R));
    CK(cudaMemcpyToSymbol(lq_wg_trace_seq, &zero, sizeof zero));
    CK(cudaEventRecord(e0, st));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float tms;
    CK(cudaEventElapsedTime(&tms, e0, e1));
    CK(cudaMemcpyToSymbol(lq_wg_trace, &none, sizeof none));
    std::vector<unsigned long long> h(tr_n);
    CK(cudaMemcpy(h.data(), tr, sizeof(unsigned long long) * tr_n, cudaMemcpyDeviceToHost));

    auto at = [&](int k, unsigned b, int j) { return h[((size_t)k * nblk + b) * WG_TRACE_ROW + j]; };
    auto clk = [&](int k, unsigned b, int j) { return h[((size_t)k * nblk + b) * WG_TRACE_ROW + WG_TRACE_N + j]; };
    std::vector<double> t0((size_t)R), end((size_t)R);
    for (int k = 0; k < R; k++) {
        unsigned long long mn = ~0ull, mx = 0;
        for (unsigned b = 0; b < nblk; b++) {
            if (at(k, b, 0) && at(k, b, 0) < mn) mn = at(k, b, 0);
            if (at(k, b, 5) > mx) mx = at(k, b, 5);
        }
        t0[(size_t)k] = (double)mn, end[(size_t)k] = (double)mx;
    }
    static const char *nm4[WG_TRACE_N] = {"entry", "wait", "tile0", "mid", "loop", "exit"};
    static const char *nm3[WG_TRACE_N] = {"entry", "wait", "x", "loop(w0)", "loops", "exit"};
    const char *const *nm = path == 3 ? nm3 : nm4;
    /* path 3: the plan (blocks of B row blocks x S warps, KS K slices) and a warp's tiles */
    small_plan sp;
    memset(&sp, 0, sizeof sp);
    if (path == 3)
        plan_small(&s, 1, M, sm, (size_t)lim_g.smem_per_block_optin, (size_t)lim_g.smem_per_sm, &sp);
    std::vector<std::vector<double>> med(WG_TRACE_N), mxs(WG_TRACE_N);
    std::vector<double> period, endr, nextin, hand, step_us, ghz;
    std::vector<std::vector<double>> phase(WG_TRACE_N - 1); /* SM clocks from stamp j to j + 1, every block */
    const int KB = (int)(s.Kp / 64), ks = path == 3 ? sp.KS : wgm_slices(&s, M, sm),
              steps = path == 3 ? (sp.KT + sp.S - 1) / (sp.S > 0 ? sp.S : 1) : (KB + ks - 1) / ks;
    for (int k = 2; k < R - 2; k++) {
        for (int j = 0; j < WG_TRACE_N; j++) {
            std::vector<double> v;
            for (unsigned b = 0; b < nblk; b++)
                if (at(k, b, j)) v.push_back(((double)at(k, b, j) - t0[(size_t)k]) * 1e-3);
            if (v.empty()) continue;
            med[(size_t)j].push_back(dev_median(v));
            mxs[(size_t)j].push_back(*std::max_element(v.begin(), v.end()));
        }
        for (int j = 0; j + 1 < WG_TRACE_N; j++)
            for (unsigned b = 0; b < nblk; b++)
                if (at(k, b, j) && at(k, b, j + 1)) phase[(size_t)j].push_back((double)(clk(k, b, j + 1) - clk(k, b, j)));
        for (unsigned b = 0; b < nblk; b++)
            if (at(k, b, 0) && at(k, b, 5) > at(k, b, 0))
                ghz.push_back((double)(clk(k, b, 5) - clk(k, b, 0)) / (double)(at(k, b, 5) - at(k, b, 0)));
        std::vector<double> sv;
        for (unsigned b = 0; b < nblk; b++)
            if (at(k, b, 2) && at(k, b, 4)) sv.push_back(((double)at(k, b, 4) - (double)at(k, b, 2)) * 1e-3);
        step_us.push_back(dev_median(sv) / (steps > 1 ? steps - 1 : 1));
        period.push_back((t0[(size_t)k + 1] - t0[(size_t)k]) * 1e-3);
        endr.push_back((end[(size_t)k] - t0[(size_t)k]) * 1e-3);
        int early = 0;
        unsigned long long w1 = ~0ull;
        for (unsigned b = 0; b < nblk; b++) {
            if (at(k + 1, b, 0) && (double)at(k + 1, b, 0) < end[(size_t)k]) early++;
            if (at(k + 1, b, 1) && at(k + 1, b, 1) < w1) w1 = at(k + 1, b, 1);
        }
        nextin.push_back(early);
        hand.push_back(((double)w1 - end[(size_t)k]) * 1e-3);
    }
    if (path == 3) {
        printf("%-8s N %5d K %5d M %4d: small-M kernel, B %d row blocks x S %d warps per block, %d K slice(s), %d "
               "tiles a warp, %u blocks, %d launches; graph %.2f us per launch (traced replay %.2f)\n",
               name, N, K, M, sp.B, sp.S, sp.KS, steps, nblk, R, graph_us, tms * 1000.0 / R);
    } else {
        printf("%-8s N %5d K %5d M %4d: x tile %d rows, %d slice(s) of %d steps, %u blocks, %d launches; graph %.2f us "
               "per launch (traced replay %.2f)\n",
               name, N, K, M, wgm_bm(M), ks, steps, nblk, R, graph_us, tms * 1000.0 / R);
        printf("  route: %d slice(s) summed %s; clusters of %d at once %d, tiles %d\n", lq_wg_route[0],
               lq_wg_route[0] < 2 ? "-" : lq_wg_route[1] ? "in clusters" : "by the reduction kernel", lq_wg_route[0],
               lq_wg_route[2], lq_wg_route[3]);
    }
    printf("  us from the launch's first entry, median / max over its blocks:");
    for (int j = 0; j < WG_TRACE_N; j++)
        if (!med[(size_t)j].empty()) printf("  %s %.2f / %.2f", nm[j], dev_median(med[(size_t)j]), dev_median(mxs[(size_t)j]));
    printf("\n  per %s (%s .. loop) %.3f us; period %.2f; end %.2f; next launch's blocks in before the end %.0f "
           "of %u; its first wait return - end %.2f us\n",
           path == 3 ? "tile" : "step", path == 3 ? "x" : "tile0", dev_median(step_us), dev_median(period), dev_median(endr),
           dev_median(nextin), nblk, dev_median(hand));
    const double f = ghz.empty() ? 0.0 : dev_median(ghz); /* SM clocks per ns */
    printf("  inside a block (SM clocks, median over blocks; us at %.2f GHz):", f);
    for (int j = 0; j + 1 < WG_TRACE_N; j++)
        if (!phase[(size_t)j].empty()) {
            const double c = dev_median(phase[(size_t)j]);
            printf("  %s..%s %.0f (%.2f)", nm[j], nm[j + 1], c, f > 0 ? c / f * 1e-3 : 0.0);
        }
    printf("\n");
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaStreamDestroy(st));
    for (int r = 0; r < R; r++) CK(cudaFree(wmem[(size_t)r]));
    CK(cudaFree(x));
    CK(cudaFree(y));
    if (ws) CK(cudaFree(ws));
    CK(cudaFree(tr));
}

int main(int argc, char **argv) {
    lq_device_limits lim;
    CK(lq_device_limits_current(&lim));
    lim_g = lim;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    if (!lq_w4a16_wgmma_device()) {
        fprintf(stderr, "bench_w4_trace: %s is not an sm_90 device (the wgmma kernel's)\n", prop.name);
        return 2;
    }
    printf("# %s, %d SMs; W4A16 wgmma kernel phase trace (kernels/dev/bench_w4_trace.cu), group 128 sym\n", prop.name,
           lim.sm_count);
    struct shp {
        const char *name;
        int N, K;
    } ll[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int N = 0, K = 0, M = 0, P = 0;
            const int n = sscanf(argv[i], "%dx%dx%d:%d", &N, &K, &M, &P);
            if (n < 3 || N < 1 || K < 64 || K % 8 || M < 1 || (n == 4 && P != 3 && P != 4)) {
                fprintf(stderr, "bench_w4_trace: shape '%s' (NxKxM[:P], K a multiple of 8, >= 64; P = 3 the small-M "
                                "kernel, 4 the wgmma kernel: 3 for M <= 8, else 4)\n", argv[i]);
                return 2;
            }
            if (n < 4) P = M <= 8 ? 3 : 4;
            run_shape("shape", N, K, M, lim.sm_count, P);
        }
    } else {
        for (int i = 0; i < 4; i++) run_shape(ll[i].name, ll[i].N, ll[i].K, 1, lim.sm_count, 3);
        static const int ms[] = {16, 64, 256, 1024};
        for (int mi = 0; mi < 4; mi++)
            for (int i = 0; i < 4; i++) run_shape(ll[i].name, ll[i].N, ll[i].K, ms[mi], lim.sm_count, 4);
    }
    return 0;
}
