/* bench_attn_trace.cu — where a decode-attention launch's time goes, launch after launch.
 *
 * Compiles kernels/attention_cuda.cu itself with LQ_ATTN_TRACE defined, so that thread 0 of every block of
 * attn_decode_mma_kernel stamps %globaltimer at its phases (DM_TRACE there; the mainline build has none of
 * it). The shapes are lq bench kernels --attention's (32 q / 8 kv heads, hd 128, fp16 cache, query at
 * position C - 1, the automatic split count), run the way that bench times them: a CUDA graph of R
 * back-to-back launches, launch i reading cache copy i (R copies, >= 512 MB in all, so nothing is reused
 * from L2). The stamps of one replay, per launch k (t0 = its first block's entry), as median / max over the
 * launch's blocks of
 *   entry, wait   = before / after griddepcontrol.wait   (the ring fill is issued before it)
 *   loop0         = warp 0's key loop done               (thread 0 is warp 0's)
 *   loops         = the first barrier of the warp merge  (every warp's loop done)
 *   part          = the block's partials written          (before the split count)
 *   count         = the split count returned             (atomic, fences)
 *   exit          = the block's last stamp               (the last block: after the split merge)
 * and per launch: period = t0(k + 1) - t0(k); end = the launch's last exit; next-in = how many of launch k + 1's
 * blocks entered before that end; hand = launch k + 1's first wait return - end. Medians over the launches
 * 2 .. R - 3 (steady state) are printed, then, for one launch, a histogram of block entries and exits.
 *
 * Build and run (make dev-attn-trace; needs a GPU):
 *   make dev-attn-trace && build/dev/bench_attn_trace [BxC ...]     (default 1x1024 1x8192 1x16384 1x32768 16x8192)
 */
#define LQ_ATTN_TRACE 1
#include "../attention_cuda.cu"

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#define LQ_DEV_TRACE_TOOLS 1
#include "bench_common.cuh" /* CK, LQ, fill_half, fill_float, dev_median, dev_graph_us */

static void run_shape(int B, int C, int sm) {
    const int nh = 32, nkv = 8, hd = 128, kvd = nkv * hd;
    const int ns = lq_attention_decode_splits(B, nh, nkv, C, sm);
    const size_t elems = (size_t)B * C * kvd, cache_bytes = elems * 2 * 2;
    int R = (int)(((size_t)512 << 20) / cache_bytes) + 1;
    if (R < 12) R = 12;
    if (R > 32) R = 32;
    const int nblk = ns * nkv * B; /* grid (ns, nkv * head groups, B); llama3 shapes: one head group per kv head */
    __half *kv;
    float *q;
    int32_t *pos;
    void *out, *ws;
    unsigned long long *tr;
    CK(cudaMalloc(&kv, cache_bytes * (size_t)R));
    CK(cudaMalloc(&q, sizeof(float) * (size_t)B * nh * hd));
    CK(cudaMalloc(&out, 2 * (size_t)B * nh * hd));
    CK(cudaMalloc(&pos, sizeof(int32_t) * (size_t)B));
    CK(cudaMalloc(&ws, lq_attention_decode_workspace(B, nh, hd, ns)));
    const size_t tr_n = (size_t)R * nblk * DM_TRACE_N;
    CK(cudaMalloc(&tr, sizeof(unsigned long long) * tr_n));
    fill_half<<<1024, 256>>>(kv, elems * 2 * (size_t)R, 11);
    fill_float<<<64, 256>>>(q, (size_t)B * nh * hd, 12, 1.0f);
    std::vector<int32_t> hp((size_t)B, C - 1);
    CK(cudaMemcpy(pos, hp.data(), sizeof(int32_t) * (size_t)B, cudaMemcpyHostToDevice));
    const char *base = (const char *)kv;
    long long stride = (long long)cache_bytes;
    CK(cudaMemcpyToSymbol(lq_dm_trace, &tr, sizeof tr));
    CK(cudaMemcpyToSymbol(lq_dm_trace_base, &base, sizeof base));
    CK(cudaMemcpyToSymbol(lq_dm_trace_stride, &stride, sizeof stride));
    CK(cudaMemcpyToSymbol(lq_dm_trace_launches, &R, sizeof R));
    CK(cudaDeviceSynchronize());

    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto launch = [&](int i) {
        __half *k = kv + (size_t)i * elems * 2, *v = k + elems;
        LQ(lq_attention_decode_cuda(out, q, 0, k, v, LQ_F16, (int64_t)C * kvd, B, pos, nh, nkv, hd, 0, ns, ws, s));
    };
    for (int i = 0; i < R; i++) launch(i); /* warm-up (stamps overwritten below) */
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < R; i++) launch(i);
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const double graph_us = dev_graph_us(ge, s, R, 5);
    CK(cudaMemsetAsync(tr, 0, sizeof(unsigned long long) * tr_n, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaStreamSynchronize(s));
    std::vector<unsigned long long> h(tr_n);
    CK(cudaMemcpy(h.data(), tr, sizeof(unsigned long long) * tr_n, cudaMemcpyDeviceToHost));

    auto at = [&](int k, int b, int j) { return h[((size_t)k * nblk + b) * DM_TRACE_N + j]; };
    std::vector<double> t0(R), end(R);
    for (int k = 0; k < R; k++) {
        unsigned long long mn = ~0ull, mx = 0;
        for (int b = 0; b < nblk; b++) {
            if (at(k, b, 0) && at(k, b, 0) < mn) mn = at(k, b, 0);
            if (at(k, b, 7) > mx) mx = at(k, b, 7);
        }
        t0[k] = (double)mn;
        end[k] = (double)mx;
    }
    static const char *nm[DM_TRACE_N] = {"entry", "prewait", "wait", "loop0", "loops", "part", "count", "exit"};
    std::vector<std::vector<double>> med(DM_TRACE_N), mxs(DM_TRACE_N);
    std::vector<double> period, endr, nextin, hand;
    for (int k = 2; k < R - 2; k++) {
        for (int j = 0; j < DM_TRACE_N; j++) {
            std::vector<double> v;
            for (int b = 0; b < nblk; b++)
                if (at(k, b, j)) v.push_back(((double)at(k, b, j) - t0[k]) * 1e-3);
            if (v.empty()) continue;
            med[j].push_back(dev_median(v));
            mxs[j].push_back(*std::max_element(v.begin(), v.end()));
        }
        period.push_back((t0[k + 1] - t0[k]) * 1e-3);
        endr.push_back((end[k] - t0[k]) * 1e-3);
        int early = 0;
        unsigned long long w1 = ~0ull;
        for (int b = 0; b < nblk; b++) {
            if (at(k + 1, b, 0) && (double)at(k + 1, b, 0) < end[k]) early++;
            if (at(k + 1, b, 2) && at(k + 1, b, 2) < w1) w1 = at(k + 1, b, 2);
        }
        nextin.push_back(early);
        hand.push_back(((double)w1 - end[k]) * 1e-3);
    }
    printf("%d x %5d: %d splits, %d blocks, %d launches per graph; graph time per launch %.2f us (median of 5)\n", B, C,
           ns, nblk, R, graph_us);
    printf("  us from the launch's first entry, median / max over its blocks:");
    for (int j = 0; j < DM_TRACE_N; j++)
        if (!med[j].empty()) printf("  %s %.2f / %.2f", nm[j], dev_median(med[j]), dev_median(mxs[j]));
    printf("\n  period %.2f us; end (last exit) %.2f; next launch's blocks in before that end %.0f of %d; its first "
           "wait return - end %.2f us\n",
           dev_median(period), dev_median(endr), dev_median(nextin), nblk, dev_median(hand));
    /* one launch: when blocks enter and leave, in 0.5 us bins from its t0 (previous launch's end marked) */
    const int k = R / 2, NB = 64;
    std::vector<int> hin(NB, 0), hout(NB, 0);
    for (int b = 0; b < nblk; b++) {
        int bi = (int)(((double)at(k, b, 0) - t0[k]) * 1e-3 / 0.5), bo = (int)(((double)at(k, b, 7) - t0[k]) * 1e-3 / 0.5);
        if (at(k, b, 0) && bi >= 0 && bi < NB) hin[bi]++;
        if (at(k, b, 7) && bo >= 0 && bo < NB) hout[bo]++;
    }
    printf("  launch %d, blocks entering / leaving per 0.5 us (previous launch ended at %.2f us):\n  ", k,
           (end[k - 1] - t0[k]) * 1e-3);
    int last = 0;
    for (int i = 0; i < NB; i++)
        if (hin[i] || hout[i]) last = i;
    for (int i = 0; i <= last; i++) printf("%.1f:%d/%d ", i * 0.5, hin[i], hout[i]);
    printf("\n");
    unsigned long long *z = NULL;
    CK(cudaMemcpyToSymbol(lq_dm_trace, &z, sizeof z));
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaStreamDestroy(s));
    CK(cudaFree(kv));
    CK(cudaFree(q));
    CK(cudaFree(out));
    CK(cudaFree(pos));
    CK(cudaFree(ws));
    CK(cudaFree(tr));
}

int main(int argc, char **argv) {
    lq_device_limits lim;
    CK(lq_device_limits_current(&lim));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("# %s, %d SMs; decode attention phase trace (kernels/dev/bench_attn_trace.cu)\n", prop.name, lim.sm_count);
    static const char *def[] = {"1x1024", "1x8192", "1x16384", "1x32768", "16x8192"};
    const int n = argc > 1 ? argc - 1 : 5;
    for (int i = 0; i < n; i++) {
        int B = 0, C = 0;
        const char *a = argc > 1 ? argv[i + 1] : def[i];
        if (sscanf(a, "%dx%d", &B, &C) != 2 || B < 1 || C < 1) {
            fprintf(stderr, "bench_attn_trace: shape '%s' (BxC)\n", a);
            return 2;
        }
        run_shape(B, C, lim.sm_count);
    }
    return 0;
}
