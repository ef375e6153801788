/* cmd_bench.c — `lq bench`: the measurements ../shared/ANCHORS.md describes.
 *   lq bench kernels [--m LIST] [--shapes llama3|llama2|all] [--iters N] [--json] [--out FILE]
 *     copy bandwidth, then for each Llama linear shape (K x N) and batch M:
 *     cuBLAS fp16 (the baseline every lq kernel is compared with in the same run):
 *     microseconds (median), effective TB/s (weights + activations), TFLOP/s;
 *     for M <= 8 also lq's GEMV (lq_gemv_cuda) and its speedup over cuBLAS;
 *     with --w4a16 lq's W4A16 paths side by side (small-M kernel for
 *     M <= LQ_W4A16_SMALL_MAX_M, fused, dequantize + cuBLAS).
 *   lq bench model (MODEL | --preset NAME) [--device cpu|cuda] [--rtn BITS [--baseline]]
 *                  [--prompt LIST] [--batch LIST] [--ctx LIST] [--steps N] [--json] [--out FILE]
 *     prefill tokens/s for each prompt length, decode tokens/s for each batch x context;
 *     with --baseline the same rows first for the weights before quantization, and each
 *     quantized row's ratio to them (same process, same run).
 * GPU timings are CUDA-event medians; model timings are wall clock around
 * synchronous engine calls (each call ends with its device->host copy). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/lq_checkpoint.h"
#include "../kernels/lq_cuda.h"
#include "../libquant/lq_synth.h"
#include "../libquant/lq_w4a16.h"
#include "lq_tool.h"

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (lq_parse_int(tok, 1, 1 << 24, &v)) {
            free(dup);
            return -1;
        }
        out[n++] = (int)v;
    }
    free(dup);
    return n;
}

/* Print the result document (--json) and/or write it to --out. Returns 0 or the exit code. */
static int emit(json_t *res, int as_json, const char *out) {
    char *js = json_dumps(res, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    int rc = 0;
    if (!js) {
        lq_error(LQ_ERR_NOMEM, "out of memory serialising results");
        return lq_tool_fail("bench", LQ_ERR_NOMEM);
    }
    if (as_json) puts(js);
    if (out) {
        FILE *f = fopen(out, "w");
        int bad = !f || fputs(js, f) < 0;
        if (f && fclose(f) != 0) bad = 1;
        if (bad) {
            lq_error(LQ_ERR_IO, "%s: cannot write results", out);
            rc = lq_tool_fail("bench", LQ_ERR_IO);
        }
    }
    free(js);
    return rc;
}

typedef struct {
    const char *name;
    int K, N;
} lin_shape;

static const lin_shape llama3[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 28672}, {"down", 14336, 4096}};
static const lin_shape llama2[] = {{"qkv", 4096, 12288}, {"o", 4096, 4096}, {"gate_up", 4096, 22016}, {"down", 11008, 4096},
                                   {"sq8192", 8192, 8192}};

static const char *UK = "usage: lq bench kernels [--m 1,2,4,...] [--shapes llama3|llama2|all] [--iters N] [--gpu I]\n"
                        "                        [--w4a16] [--group G] [--asym] [--attention] [--attn BxC,...]\n"
                        "                        [--w4-paths small,fused,deq,wgmma] [--timing graph|events] [--warm-ms MS]\n"
                        "                        [--json] [--out FILE]\n"
                        "  --timing  graph (default): each sample is a CUDA graph of >= 10 back-to-back launches\n"
                        "            over the rotated buffers, divided by the launch count (what a decode step,\n"
                        "            itself a graph, sees); events: one event pair around each single launch\n"
                        "            (adds the host launch latency, ~5 us, to every figure)\n"
                        "  --warm-ms each cell's launches run for at least MS ms (default 50) before its timed\n"
                        "            samples, so that the clocks settle to that cell's load (0: five launches only;\n"
                        "            a light cell right after a heavy one then runs while the clocks recover)\n"
                        "  --attention  also the decode attention sweep of ANCHORS.md (32 query / 8 KV heads,\n"
                        "            head_dim 128, fp16 cache; batch 1 and 16 at 1k, 8k, 32k context): us, KV-cache\n"
                        "            TB/s, its fraction of the copy bandwidth, ns per cached token, a plain\n"
                        "            streaming read of the same bytes timed the same way (the ceiling; \"of read\":\n"
                        "            read time / lq time), PyTorch SDPA's H100 anchor\n"
                        "            (--shapes none: the attention sweep alone)\n"
                        "  --attn BxC,...  the decode attention at these batch x context shapes instead\n"
                        "            (implies --attention; e.g. --attn 1x8192,4x2048: for ncu runs of one shape;\n"
                        "            --attn all: ANCHORS.md's whole sweep, batch 1/8/16/32 x context 1k..32k)\n"
                        "  --w4a16   also time lq's W4A16 kernels (random 4-bit codes, fp16 scales, group G = 128;\n"
                        "            0 = per channel) next to cuBLAS fp16 in the same run: the small-M kernel\n"
                        "            (path 3) for M <= 64, the fused tensor-core path (1) for M <= 256 and\n"
                        "            dequantize + cuBLAS (2) for M >= 64 and, on sm_90, the wgmma kernel (4) for\n"
                        "            M >= 8, each in its own column (0.0: not run); TB/s and the\n"
                        "            speedup use the fastest; TB/s counts the int4 codes, scales/zeros,\n"
                        "            activations and outputs; \"f32y\": cuBLAS fp16 writing fp32 y, as the W4A16 paths\n"
                        "            (and lq's fp16 runtime) do, and the speedup over it\n"
                        "  --w4-paths  only these of the four W4A16 paths (comma list of small, fused, deq,\n"
                        "            wgmma; default all): for sweeps of one path under its A/B knobs\n";

static int bench_kernels(int argc, char **argv) {
    int ms[32] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096}, n_m = 11, iters = 50, as_json = 0, gpu = 0;
    int w4 = 0, w4_group = 128, w4_sym = 1, attn = 0, graphs = 1;
    int w4_paths[4] = {1, 1, 1, 1}, warm_ms = 50; /* small, fused, deq, wgmma (the columns' order) */
    /* the decode attention shapes: ANCHORS.md's six with a PyTorch SDPA figure unless --attn names others
       (--attn all: its whole sweep, batch 1 / 8 / 16 / 32 x context 1k / 4k / 8k / 16k / 32k) */
    int AB[32] = {1, 1, 1, 16, 16, 16}, AC[32] = {1024, 8192, 32768, 1024, 8192, 32768}, n_attn = 6;
    const char *shapes = "llama3", *out = NULL;
    static struct option opts[] = {{"m", required_argument, 0, 'm'},      {"shapes", required_argument, 0, 's'},
                                   {"iters", required_argument, 0, 'i'},  {"json", no_argument, 0, 'j'},
                                   {"out", required_argument, 0, 'o'},    {"gpu", required_argument, 0, 'g'},
                                   {"w4a16", no_argument, 0, 'w'},        {"group", required_argument, 0, 'G'},
                                   {"asym", no_argument, 0, 'a'},         {"attention", no_argument, 0, 'A'},
                                   {"timing", required_argument, 0, 'T'}, {"help", no_argument, 0, 'h'},
                                   {"attn", required_argument, 0, 'S'},   {"w4-paths", required_argument, 0, 'P'},
                                   {"warm-ms", required_argument, 0, 'W'},
                                   {0, 0, 0, 0}};
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(UK, stdout); return 0;
        case 'w': w4 = 1; break;
        case 'A': attn = 1; break;
        case 'S': {
            n_attn = 0;
            if (!strcmp(optarg, "all")) {
                static const int bs[4] = {1, 8, 16, 32}, cs[5] = {1024, 4096, 8192, 16384, 32768};
                for (int bi = 0; bi < 4; bi++)
                    for (int ci = 0; ci < 5; ci++) AB[n_attn] = bs[bi], AC[n_attn] = cs[ci], n_attn++;
                attn = 1;
                break;
            }
            const char *q = optarg;
            while (*q) {
                char *end = NULL;
                long b = strtol(q, &end, 10), cx;
                if (end == q || *end != 'x' || b < 1 || b > 4096 || n_attn >= 32)
                    return lq_tool_usage("bench", UK, "bad --attn '%s' (BxC,... e.g. 1x8192,16x32768)", optarg);
                q = end + 1;
                cx = strtol(q, &end, 10);
                if (end == q || (*end && *end != ',') || cx < 1 || cx > (1 << 20))
                    return lq_tool_usage("bench", UK, "bad --attn '%s' (BxC,... e.g. 1x8192,16x32768)", optarg);
                AB[n_attn] = (int)b, AC[n_attn] = (int)cx, n_attn++;
                q = *end ? end + 1 : end;
            }
            if (n_attn < 1) return lq_tool_usage("bench", UK, "bad --attn '%s'", optarg);
            attn = 1;
            break;
        }
        case 'a': w4_sym = 0; break;
        case 'W':
            if (lq_parse_int(optarg, 0, 10000, &v)) return lq_tool_usage("bench", UK, "bad --warm-ms '%s' (0..10000)", optarg);
            warm_ms = (int)v;
            break;
        case 'P': {
            static const char *const names[4] = {"small", "fused", "deq", "wgmma"};
            int any = 0;
            for (int k = 0; k < 4; k++) w4_paths[k] = 0;
            for (const char *q = optarg; *q;) {
                const size_t n = strcspn(q, ",");
                int k = 0;
                while (k < 4 && !(strlen(names[k]) == n && !strncmp(q, names[k], n))) k++;
                if (k == 4)
                    return lq_tool_usage("bench", UK, "bad --w4-paths '%s' (a comma list of small, fused, deq, wgmma)",
                                         optarg);
                w4_paths[k] = any = 1;
                q += n + (q[n] == ',');
            }
            if (!any) return lq_tool_usage("bench", UK, "bad --w4-paths '%s' (no path named)", optarg);
            w4 = 1;
            break;
        }
        case 'T':
            if (strcmp(optarg, "graph") && strcmp(optarg, "events"))
                return lq_tool_usage("bench", UK, "bad --timing '%s' (graph or events)", optarg);
            graphs = !strcmp(optarg, "graph");
            break;
        case 'G':
            if (lq_parse_int(optarg, 0, 1 << 20, &v) || (v && v % 32))
                return lq_tool_usage("bench", UK, "bad --group '%s' (0 or a multiple of 32)", optarg);
            w4_group = (int)v;
            break;
        case 'm':
            if ((n_m = parse_list(optarg, ms, 32)) < 1) return lq_tool_usage("bench", UK, "bad --m '%s'", optarg);
            break;
        case 's': shapes = optarg; break;
        case 'i':
            if (lq_parse_int(optarg, 3, 100000, &v)) return lq_tool_usage("bench", UK, "bad --iters");
            iters = (int)v;
            break;
        case 'g':
            if (lq_parse_int(optarg, 0, 64, &v)) return lq_tool_usage("bench", UK, "bad --gpu");
            gpu = (int)v;
            break;
        case 'j': as_json = 1; break;
        case 'o': out = optarg; break;
        default: return lq_tool_usage("bench", UK, "bad option");
        }
    }
    if (lq_cuda_device_count() <= gpu) {
        lq_error(LQ_ERR_UNSUPPORTED, "bench kernels needs a CUDA GPU (found %d device(s))", lq_cuda_device_count());
        return lq_tool_fail("bench", LQ_ERR_UNSUPPORTED);
    }
    char desc[512];
    lq_status st = lq_cuda_device_describe(gpu, desc, sizeof desc);
    if (st != LQ_OK) return lq_tool_fail("bench", st);
    lq_cuda_bench_set_graphs(graphs);
    lq_cuda_bench_set_warm_ms((double)warm_ms);
    const char *method = graphs ? "CUDA graph replays of >= 10 back-to-back launches (per-launch time = replay / "
                                  "launches), median of the replays after warm-up; weights rotated through >= 512 MB; "
                                  "random data"
                                : "CUDA events around each launch, median after warm-up; weights rotated through "
                                  ">= 512 MB; random data";
    json_t *res = json_pack("{s:s, s:s, s:s, s:i}", "gpu", desc, "timing", graphs ? "graph" : "events", "method", method,
                            "warm_ms", warm_ms);
    json_t *rows = json_array();
    lq_bench_timing t;
    double tbps;
    st = lq_cuda_bench_copy(gpu, (size_t)1 << 30, 20, &t, &tbps);
    if (st != LQ_OK) return lq_tool_fail("bench", st);
    json_object_set_new(res, "copy_tbps", json_real(tbps));
    fprintf(stderr, "%s\ndevice-to-device copy (1 GiB): %.3f TB/s (read + write)\ntiming: %s; >= %d ms of warm-up per cell\n",
            desc, tbps, method, warm_ms);
    const lin_shape *sets[2] = {NULL, NULL};
    int nsets[2] = {0, 0};
    if (!strcmp(shapes, "llama3") || !strcmp(shapes, "all")) sets[0] = llama3, nsets[0] = 4;
    if (!strcmp(shapes, "llama2") || !strcmp(shapes, "all")) sets[1] = llama2, nsets[1] = 5;
    if (!sets[0] && !sets[1] && strcmp(shapes, "none"))
        return lq_tool_usage("bench", UK, "unknown --shapes '%s' (llama3, llama2, all, none)", shapes);
    fprintf(stderr, "(M <= 8: a second row \"gemv\" times lq's small-M GEMV, with its speedup over cuBLAS)\n");
    if (w4) {
        json_object_set_new(res, "w4a16", json_pack("{s:i, s:b, s:i, s:i}", "group", w4_group, "sym", w4_sym,
                                                     "small_max_m_auto", LQ_W4A16_SMALL_MAX_M, "fused_max_m_auto",
                                                     LQ_W4A16_FUSED_MAX_M));
        fprintf(stderr, "%-8s %6s %6s %5s | %10s %8s %8s | %9s %9s %9s %9s %8s %8s\n", "layer", "K", "N", "M",
                "cuBLAS us", "TB/s", "TFLOP/s", "w4 small", "w4 fused", "w4 deq", "w4 wgmma", "w4 TB/s", "speedup");
        fprintf(stderr, "(speedup: over cuBLAS with fp16 y; \"f32y\": cuBLAS writing fp32 y as lq's W4A16 paths do, "
                        "and the speedup over it)\n");
    } else
        fprintf(stderr, "%-8s %6s %6s %5s | %10s %8s %8s\n", "layer", "K", "N", "M", "cuBLAS us", "TB/s", "TFLOP/s");
    for (int si = 0; si < 2; si++)
        for (int i = 0; i < nsets[si]; i++) {
            const lin_shape *s = &sets[si][i];
            for (int mi = 0; mi < n_m; mi++) {
                int M = ms[mi];
                st = lq_cuda_bench_gemm_f16(gpu, M, s->N, s->K, (size_t)512 << 20, iters, &t);
                if (st != LQ_OK) return lq_tool_fail("bench", st);
                double bytes = 2.0 * ((double)s->N * s->K + (double)M * s->K + (double)M * s->N);
                double sec = t.us_median * 1e-6;
                double flops = 2.0 * M * (double)s->N * s->K;
                fprintf(stderr, "%-8s %6d %6d %5d | %10.1f %8.3f %8.1f", s->name, s->K, s->N, M, t.us_median,
                        bytes / sec / 1e12, flops / sec / 1e12);
                if (w4) {
                    /* the paths side by side: small M (3), fused (1), dequantize + cuBLAS (2), wgmma (4) */
                    static const int path[4] = {3, 1, 2, 4};
                    static const char *const key[4] = {"us_small_m", "us_fused", "us_dequant_cublas", "us_wgmma"};
                    /* cuBLAS with fp32 y first, so that every W4A16 path follows a cuBLAS run of its own cell
                       (a heavy product just before a light one slows the light one: the clocks settle late) */
                    lq_bench_timing t32;
                    st = lq_cuda_bench_gemm_f16_out(gpu, M, s->N, s->K, 1, (size_t)512 << 20, iters, &t32);
                    if (st != LQ_OK) return lq_tool_fail("bench", st);
                    const int have[4] = {w4_paths[0] && M <= LQ_W4A16_SMALL_MAX_M, w4_paths[1] && M <= 256,
                                         w4_paths[2] && M >= 64, w4_paths[3] && M >= 8 && lq_w4a16_wgmma_device()};
                    lq_bench_timing tp[4] = {{0}};
                    double best = 1e300;
                    for (int k = 0; k < 4; k++) {
                        if (!have[k]) continue;
                        st = lq_cuda_bench_w4a16(gpu, M, s->N, s->K, w4_group, w4_sym, path[k], (size_t)512 << 20,
                                                 iters, &tp[k]);
                        if (st != LQ_OK) return lq_tool_fail("bench", st);
                        if (tp[k].us_median < best) best = tp[k].us_median;
                    }
                    int g = w4_group > 0 && w4_group < s->K ? w4_group : s->K;
                    double ng = (double)((s->K + g - 1) / g);
                    double w4bytes = (double)s->N * s->K / 2 + (double)s->N * ng * 2 * (w4_sym ? 1 : 2) +
                                     2.0 * M * s->K + 4.0 * M * s->N;
                    fputs(" |", stderr);
                    for (int k = 0; k < 4; k++) fprintf(stderr, " %9.1f", have[k] ? tp[k].us_median : 0.0);
                    if (best == 1e300) { /* --w4-paths left no path for this M */
                        fprintf(stderr, " %8s %8s", "-", "-");
                        goto w4_done;
                    }
                    fprintf(stderr, " %8.3f %7.2fx  f32y %8.1f %6.2fx", w4bytes / (best * 1e-6) / 1e12,
                            t.us_median / best, t32.us_median, t32.us_median / best);
                    json_t *row = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:i, s:b, s:f, s:f, s:f}", "set",
                                            si == 0 ? "llama3-8b" : "llama2-7b", "layer", s->name, "K", s->K, "N",
                                            s->N, "M", M, "impl", "lq_w4a16", "group", w4_group, "sym", w4_sym,
                                            "us_median", best, "tbps", w4bytes / (best * 1e-6) / 1e12,
                                            "speedup_vs_cublas_f16", t.us_median / best);
                    for (int k = 0; k < 4; k++)
                        if (have[k]) json_object_set_new(row, key[k], json_real(tp[k].us_median));
                    json_object_set_new(row, "cublas_f16_us", json_real(t.us_median));
                    json_object_set_new(row, "cublas_f16_f32y_us", json_real(t32.us_median));
                    json_object_set_new(row, "speedup_vs_cublas_f16_f32y", json_real(t32.us_median / best));
                    json_array_append_new(rows, row);
                }
            w4_done:
                fputc('\n', stderr);
                json_array_append_new(
                    rows, json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:f, s:f}", "set",
                                    si == 0 ? "llama3-8b" : "llama2-7b", "layer", s->name, "K", s->K, "N", s->N, "M",
                                    M, "impl", "cublas_f16", "us_median", t.us_median, "us_min", t.us_min, "us_p90",
                                    t.us_p90, "tbps", bytes / sec / 1e12, "tflops", flops / sec / 1e12));
                if (M <= 8 && s->K % 8 == 0) { /* lq's small-M GEMV, same run, same data: speedup over cuBLAS */
                    lq_bench_timing tg;
                    st = lq_cuda_bench_gemv_f16(gpu, M, s->N, s->K, (size_t)512 << 20, iters, &tg);
                    if (st != LQ_OK) return lq_tool_fail("bench", st);
                    double gb = 2.0 * ((double)s->N * s->K + (double)M * s->K) + 4.0 * M * s->N, gs = tg.us_median * 1e-6;
                    fprintf(stderr, "%-8s %6s %6s %5s | %10.1f %8.3f %8.1f   %.2fx cuBLAS\n", "", "", "", "gemv",
                            tg.us_median, gb / gs / 1e12, flops / gs / 1e12, t.us_median / tg.us_median);
                    json_array_append_new(
                        rows, json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "set",
                                        si == 0 ? "llama3-8b" : "llama2-7b", "layer", s->name, "K", s->K, "N", s->N,
                                        "M", M, "impl", "lq_gemv_f16", "us_median", tg.us_median, "us_min", tg.us_min,
                                        "us_p90", tg.us_p90, "tbps", gb / gs / 1e12, "tflops", flops / gs / 1e12,
                                        "speedup_vs_cublas", t.us_median / tg.us_median));
                }
            }
        }
    json_object_set_new(res, "linear", rows);
    if (attn) {
        /* ANCHORS.md: PyTorch SDPA decode on the H100, 32 q / 8 kv heads, hd 128, fp16 */
        static const int SB[] = {1, 1, 1, 16, 16, 16}, SC[] = {1024, 8192, 32768, 1024, 8192, 32768};
        static const double sdpa_us[] = {13.0, 27.0, 64.9, 36.2, 190.2, 698.8};
        json_t *arows = json_array();
        fprintf(stderr, "decode attention, fp16 KV cache, 32 q / 8 kv heads, head_dim 128\n");
        fprintf(stderr, "%5s %6s %6s | %9s %8s %8s %9s | %8s %7s | %12s %8s\n", "batch", "ctx", "splits", "lq us",
                "KV TB/s", "of copy", "ns/token", "read us", "of read", "SDPA us H100", "speedup");
        for (int i = 0; i < n_attn; i++) {
            int splits = 0;
            double sdpa = 0; /* 0: no anchor for this shape */
            for (int a = 0; a < 6; a++)
                if (SB[a] == AB[i] && SC[a] == AC[i]) sdpa = sdpa_us[a];
            st = lq_cuda_bench_attention_decode(gpu, AB[i], AC[i], 32, 8, 128, (size_t)512 << 20, iters, &t, &splits);
            if (st != LQ_OK) return lq_tool_fail("bench", st);
            double kvb = 2.0 * AB[i] * (double)AC[i] * 8 * 128 * 2, bw = kvb / (t.us_median * 1e-6) / 1e12;
            /* the copy figure counts read + write; the cache is only read */
            double frac = bw / tbps;
            /* ANCHORS.md's per-context-token cost: the step's time over the cached tokens it reads */
            double ns_tok = t.us_median * 1e3 / ((double)AB[i] * AC[i]);
            /* the ceiling: a plain streaming read of the same bytes, timed the same way (a failure here
               leaves the column empty and the sweep going) */
            lq_bench_timing tr;
            double rbw = 0, read_us = 0;
            if (lq_cuda_bench_read(gpu, (size_t)kvb, (size_t)512 << 20, iters, &tr, &rbw) == LQ_OK)
                read_us = tr.us_median;
            else
                fprintf(stderr, "  (read ceiling not measured: %s)\n", lq_last_error());
            char rcol[40];
            if (read_us > 0)
                snprintf(rcol, sizeof rcol, "%8.1f %6.1f%%", read_us, 100 * read_us / t.us_median);
            else
                snprintf(rcol, sizeof rcol, "%8s %7s", "-", "-");
            if (sdpa > 0)
                fprintf(stderr, "%5d %6d %6d | %9.1f %8.3f %7.1f%% %9.4f | %s | %12.1f %7.2fx\n", AB[i], AC[i], splits,
                        t.us_median, bw, 100 * frac, ns_tok, rcol, sdpa, sdpa / t.us_median);
            else
                fprintf(stderr, "%5d %6d %6d | %9.1f %8.3f %7.1f%% %9.4f | %s | %12s %8s\n", AB[i], AC[i], splits,
                        t.us_median, bw, 100 * frac, ns_tok, rcol, "-", "-");
            json_t *row = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "batch", AB[i], "ctx",
                                    AC[i], "n_heads", 32, "n_kv", 8, "head_dim", 128, "splits", splits, "us_median",
                                    t.us_median, "us_min", t.us_min, "us_p90", t.us_p90, "kv_tbps", bw,
                                    "fraction_of_copy", frac);
            json_object_set_new(row, "ns_per_ctx_token", json_real(ns_tok));
            json_object_set_new(row, "read_us", read_us > 0 ? json_real(read_us) : json_null());
            json_object_set_new(row, "fraction_of_read", read_us > 0 ? json_real(read_us / t.us_median) : json_null());
            json_object_set_new(row, "sdpa_h100_us", sdpa > 0 ? json_real(sdpa) : json_null());
            json_array_append_new(arows, row);
        }
        json_object_set_new(res, "attention_decode", arows);
    }
    int rc = emit(res, as_json, out);
    json_decref(res);
    return rc;
}

static const char *UM =
    "usage: lq bench model (MODEL | --preset NAME) [--device cpu|cuda|auto] [--weights f16|bf16|f32] [--compute f32]\n"
    "                      [--prompt 512,2048] [--batch 1,8,32] [--ctx 512,2048,8192] [--steps N]\n"
    "                      [--reps N] [--compare-pdl] [--layers N] [--max-pos N] [--json] [--out FILE]\n"
    "                      [--rtn BITS [--group G] [--asym] [--lm-head] [--baseline]]\n"
    "  --compute f32  fp32 activations and KV cache over f16/bf16 weights (the precision mode of lq ppl)\n"
    "  --preset    random weights with a real model's shapes (see lq synth --help), built in memory\n"
    "  --layers N  with --preset: only the first N layers (the same shapes; for profiling and quick\n"
    "              A/B runs: per-layer costs scale, the whole-model figures do not)\n"
    "  --max-pos N with --preset: the model's positions (max_position_embeddings; llama3-8b: 8192), so\n"
    "              that --ctx can go past them (e.g. --max-pos 32768 --ctx 16000: a Llama-3.1-length cache)\n"
    "  --rtn       RTN-quantize every linear in memory first (4 bits: the GPU runs the fused W4A16\n"
    "              kernels; group G = 128 by default, 0 = per channel); a .lqq MODEL is quantized already\n"
    "  --lm-head   with --rtn: the head too (lq quantize --lm-head; 4 bits: its logits on the W4A16 kernels)\n"
    "  --baseline  with --rtn: first every row with the weights before quantization, in the same process;\n"
    "              each quantized row then gives its speed against that row (vs_baseline in the JSON,\n"
    "              the baseline's rows under \"baseline\")\n"
    "  --compare-pdl  on a GPU: every decode row twice, with and without programmatic dependent launch\n"
    "              (kernels overlapping the previous kernel's tail; the default on sm_90+)\n"
    "prefill on a GPU: also cuBLAS fp16 on the same four GEMMs per layer at M = prompt, in the same run\n"
    "(fraction_of_cublas_gemm: that time / the prefill's).\n"
    "decode at context C: the KV cache is prefilled with min(C, 512) real tokens per sequence and the\n"
    "remaining positions hold earlier data (attention cost does not depend on the values).\n";

/* What one pass of bench_model measures, and with what. */
typedef struct {
    const int *prompts, *batches, *ctxs;
    int n_p, n_b, n_c, steps, reps, cmp_pdl, wdtype, cdtype;
    const char *device;
    int32_t *tok;
    float *logits;
} model_pass;

/* The baseline row of the same kind as row (prefill: the same prompt; decode: batch, ctx, pdl), or NULL. */
static json_t *baseline_row(json_t *base, const json_t *row, int decode) {
    size_t i;
    json_t *r;
    if (!base) return NULL;
    json_array_foreach(base, i, r) {
        if (decode) {
            const json_t *pa = json_object_get(r, "pdl"), *pb = json_object_get(row, "pdl");
            if (json_integer_value(json_object_get(r, "batch")) == json_integer_value(json_object_get(row, "batch")) &&
                json_integer_value(json_object_get(r, "ctx")) == json_integer_value(json_object_get(row, "ctx")) &&
                (pa && pb ? json_equal(pa, pb) : !pa && !pb) && json_object_get(r, "tokens_per_second"))
                return r;
        } else if (json_integer_value(json_object_get(r, "prompt")) == json_integer_value(json_object_get(row, "prompt"))) {
            return r;
        }
    }
    return NULL;
}

/* row's tokens/s against the baseline's row of the same kind: "vs_baseline" in row, and the text's suffix */
static void vs_baseline(json_t *row, json_t *base, int decode, char *txt, size_t n) {
    txt[0] = 0;
    json_t *b = baseline_row(base, row, decode);
    if (!b) return;
    const double q = json_real_value(json_object_get(row, "tokens_per_second")),
                 f = json_real_value(json_object_get(b, "tokens_per_second"));
    if (!(f > 0)) return;
    json_object_set_new(row, "vs_baseline", json_real(q / f));
    snprintf(txt, n, "  = %.3fx the baseline (%+.1f%%)", q / f, 100 * (q / f - 1));
}

/* One pass over the prefill and decode rows of model m, appended to pre and dec. base_pre / base_dec: the
 * baseline pass's rows (NULL: none): each row gets its ratio to the baseline's. engine_desc: set from the
 * first engine. Returns 0 or the exit code (after a message). */
static int bench_pass(lq_model *m, const model_pass *o, json_t *pre, json_t *dec, json_t *base_pre,
                      json_t *base_dec, char *engine_desc, size_t desc_n) {
    lq_status st;
    int maxc = 0;
    char txt[96];
    for (int i = 0; i < o->n_c; i++) maxc = o->ctxs[i] > maxc ? o->ctxs[i] : maxc;
    const int on_gpu = strcmp(o->device, "cpu") && lq_cuda_device_count() > 0;
    /* prefill */
    for (int i = 0; i < o->n_p; i++) {
        int P = o->prompts[i];
        if (P > m->cfg.max_seq_len) continue;
        lq_engine *e = NULL;
        st = lq_tool_engine(m, o->device, o->wdtype, o->cdtype, 1, P, &e);
        if (st != LQ_OK) {
            fprintf(stderr, "[bench] prefill %d: %s (skipped)\n", P, lq_last_error());
            continue;
        }
        if (!engine_desc[0]) snprintf(engine_desc, desc_n, "%s", e->desc);
        double best = 1e30;
        for (int r = 0; r < o->reps + 1; r++) {
            double s = lq_now();
            if ((st = e->step(e, o->tok, 1, P, 0, o->logits)) != LQ_OK) break;
            double d = lq_now() - s;
            if (r > 0 && d < best) best = d; /* first run is warm-up */
        }
        lq_engine_free(e);
        if (st != LQ_OK) return lq_tool_fail("bench", st);
        json_t *row = json_pack("{s:i, s:f, s:f}", "prompt", P, "seconds", best, "tokens_per_second", P / best);
        vs_baseline(row, base_pre, 0, txt, sizeof txt);
        fprintf(stderr, "[bench] prefill %5d tokens: %10.1f tok/s (%.3f s)%s\n", P, P / best, best, txt);
        if (on_gpu) {
            /* The same run's yardstick: cuBLAS fp16 on the layer's four GEMMs at M = P (q|k|v, o,
               gate|up, down, as the engine stacks them), times the layers. fraction = that time /
               the measured prefill: the share of the cuBLAS GEMM rate the whole prefill reaches. */
            const lq_config *cf = &m->cfg;
            const int qd = cf->n_heads * cf->head_dim, kvd = cf->n_kv_heads * cf->head_dim;
            const int gN[4] = {qd + 2 * kvd, cf->dim, 2 * cf->hidden_dim, cf->dim},
                      gK[4] = {cf->dim, qd, cf->dim, cf->hidden_dim};
            double gemm_s = 0, flops = 0;
            lq_bench_timing tg;
            for (int g = 0; g < 4 && st == LQ_OK; g++) {
                st = lq_cuda_bench_gemm_f16(0, P, gN[g], gK[g], (size_t)512 << 20, 20, &tg);
                gemm_s += tg.us_median * 1e-6 * cf->n_layers;
                flops += 2.0 * P * (double)gN[g] * gK[g] * cf->n_layers;
            }
            if (st != LQ_OK) {
                fprintf(stderr, "[bench] cuBLAS yardstick for prefill %d: %s (skipped)\n", P, lq_last_error());
                lq_clear_error();
            } else {
                fprintf(stderr, "[bench]   cuBLAS fp16 on the same GEMMs: %.3f s (%.0f TFLOP/s); the prefill runs at "
                        "%.1f%% of that rate (%.0f TFLOP/s on the linears)\n",
                        gemm_s, flops / gemm_s / 1e12, 100 * gemm_s / best, flops / best / 1e12);
                json_object_set_new(row, "cublas_gemm_seconds", json_real(gemm_s));
                json_object_set_new(row, "cublas_gemm_tflops", json_real(flops / gemm_s / 1e12));
                json_object_set_new(row, "linear_tflops", json_real(flops / best / 1e12));
                json_object_set_new(row, "fraction_of_cublas_gemm", json_real(gemm_s / best));
            }
        }
        json_array_append_new(pre, row);
    }
    /* decode (with --compare-pdl on a GPU: each batch size twice, PDL on then off) */
    const int n_pdl = o->cmp_pdl && on_gpu ? 2 : 1;
    for (int bi = 0; bi < o->n_b * n_pdl; bi++) {
        int B = o->batches[bi / n_pdl], pdl = bi % n_pdl == 0;
        if (n_pdl == 2) lq_cuda_set_pdl(pdl);
        lq_engine *e = NULL;
        int cap = maxc + o->steps;
        if (cap > m->cfg.max_seq_len) cap = m->cfg.max_seq_len;
        st = lq_tool_engine(m, o->device, o->wdtype, o->cdtype, B, cap, &e);
        if (st != LQ_OK) {
            fprintf(stderr, "[bench] decode batch %d: %s (skipped)\n", B, lq_last_error());
            json_array_append_new(dec, json_pack("{s:i, s:s}", "batch", B, "skipped", lq_last_error()));
            continue;
        }
        if (!engine_desc[0]) snprintf(engine_desc, desc_n, "%s", e->desc);
        int pf = 512 < cap ? 512 : cap - o->steps;
        if ((st = e->step(e, o->tok, B, pf, 0, o->logits)) != LQ_OK) {
            lq_engine_free(e);
            if (n_pdl == 2) lq_cuda_set_pdl(1);
            return lq_tool_fail("bench", st);
        }
        for (int ci = 0; ci < o->n_c; ci++) {
            int C = o->ctxs[ci];
            if (C < 1) continue;
            if (C + o->steps > cap) { /* the model's max_seq_len: the longest context that still takes the steps */
                int C2 = cap - o->steps;
                fprintf(stderr, "[bench] decode ctx %d + %d steps exceeds the model's %d positions: ctx %d instead\n",
                        C, o->steps, cap, C2);
                if (C2 < 1) continue;
                C = C2;
            }
            double s = 0;
            for (int k = 0; k < o->steps + 2; k++) {
                if (k == 2) s = lq_now(); /* two warm-up steps (graph capture) */
                if ((st = e->step(e, o->tok + (size_t)(k % 8) * B, B, 1, C + k - 2 < 0 ? 0 : C + k - 2, o->logits)) !=
                    LQ_OK)
                    break;
            }
            if (st != LQ_OK) {
                lq_engine_free(e);
                if (n_pdl == 2) lq_cuda_set_pdl(1);
                return lq_tool_fail("bench", st);
            }
            double secs = (lq_now() - s) / o->steps;
            json_t *row = json_pack("{s:i, s:i, s:f, s:f}", "batch", B, "ctx", C, "ms_per_step", secs * 1e3,
                                    "tokens_per_second", B / secs);
            if (n_pdl == 2) json_object_set_new(row, "pdl", json_boolean(pdl));
            vs_baseline(row, base_dec, 1, txt, sizeof txt);
            fprintf(stderr, "[bench] decode batch %2d ctx %5d: %8.2f ms/step, %10.1f tok/s%s%s\n", B, C, secs * 1e3,
                    B / secs, n_pdl == 1 ? "" : pdl ? " (PDL on)" : " (PDL off)", txt);
            json_array_append_new(dec, row);
        }
        lq_engine_free(e);
    }
    if (n_pdl == 2) lq_cuda_set_pdl(1);
    return 0;
}

static int bench_model(int argc, char **argv) {
    int prompts[16] = {512, 2048}, n_p = 2, batches[16] = {1, 8, 32}, n_b = 3, ctxs[16] = {512, 2048, 8192}, n_c = 3;
    int steps = 32, reps = 3, as_json = 0, wdtype = -1, cdtype = -1, rtn_bits = 0, rtn_group = 128, rtn_sym = 1, cmp_pdl = 0;
    int n_layers = 0, baseline = 0, rtn_head = 0, max_pos = 0;
    const char *preset = NULL, *device = "auto", *out = NULL;
    static struct option opts[] = {{"preset", required_argument, 0, 'P'}, {"device", required_argument, 0, 'D'},
                                   {"weights", required_argument, 0, 'W'}, {"prompt", required_argument, 0, 'p'},
                                   {"batch", required_argument, 0, 'b'},   {"ctx", required_argument, 0, 'c'},
                                   {"steps", required_argument, 0, 's'},   {"reps", required_argument, 0, 'r'},
                                   {"json", no_argument, 0, 'j'},          {"out", required_argument, 0, 'o'},
                                   {"rtn", required_argument, 0, 'R'},     {"group", required_argument, 0, 'G'},
                                   {"asym", no_argument, 0, 'a'},          {"compare-pdl", no_argument, 0, 'C'},
                                   {"layers", required_argument, 0, 'L'},  {"baseline", no_argument, 0, 'B'},
                                   {"lm-head", no_argument, 0, 'H'},       {"help", no_argument, 0, 'h'},
                                   {"compute", required_argument, 0, 'K'}, {"max-pos", required_argument, 0, 'X'},
                                   {0, 0, 0, 0}};
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(UM, stdout); return 0;
        case 'R':
            if (lq_parse_int(optarg, 2, 8, &v)) return lq_tool_usage("bench", UM, "bad --rtn '%s' (2..8 bits)", optarg);
            rtn_bits = (int)v;
            break;
        case 'G':
            if (lq_parse_int(optarg, 0, 1 << 20, &v)) return lq_tool_usage("bench", UM, "bad --group '%s'", optarg);
            rtn_group = (int)v;
            break;
        case 'a': rtn_sym = 0; break;
        case 'C': cmp_pdl = 1; break;
        case 'B': baseline = 1; break;
        case 'H': rtn_head = 1; break;
        case 'L':
            if (lq_parse_int(optarg, 1, 1000, &v)) return lq_tool_usage("bench", UM, "bad --layers");
            n_layers = (int)v;
            break;
        case 'X':
            if (lq_parse_int(optarg, 16, 1 << 22, &v))
                return lq_tool_usage("bench", UM, "bad --max-pos '%s' (16..4194304 positions)", optarg);
            max_pos = (int)v;
            break;
        case 'P': preset = optarg; break;
        case 'D':
            if (!lq_tool_device_valid(optarg)) return lq_tool_usage("bench", UM, "bad --device");
            device = optarg;
            break;
        case 'W':
            if ((wdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("bench", UM, "bad --weights");
            break;
        case 'K':
            if ((cdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("bench", UM, "bad --compute");
            break;
        case 'p':
            if ((n_p = parse_list(optarg, prompts, 16)) < 0) return lq_tool_usage("bench", UM, "bad --prompt");
            break;
        case 'b':
            if ((n_b = parse_list(optarg, batches, 16)) < 0) return lq_tool_usage("bench", UM, "bad --batch");
            break;
        case 'c':
            if ((n_c = parse_list(optarg, ctxs, 16)) < 0) return lq_tool_usage("bench", UM, "bad --ctx");
            break;
        case 's':
            if (lq_parse_int(optarg, 1, 100000, &v)) return lq_tool_usage("bench", UM, "bad --steps");
            steps = (int)v;
            break;
        case 'r':
            if (lq_parse_int(optarg, 1, 1000, &v)) return lq_tool_usage("bench", UM, "bad --reps");
            reps = (int)v;
            break;
        case 'j': as_json = 1; break;
        case 'o': out = optarg; break;
        default: return lq_tool_usage("bench", UM, "bad option");
        }
    }
    if ((preset != NULL) == (optind < argc)) return lq_tool_usage("bench", UM, "give MODEL or --preset, not both");
    if (max_pos && !preset) return lq_tool_usage("bench", UM, "--max-pos is for --preset (a model file has its own)");
    if (rtn_head && !rtn_bits) return lq_tool_usage("bench", UM, "--lm-head needs --rtn");
    if (baseline && !rtn_bits)
        return lq_tool_usage("bench", UM, "--baseline needs --rtn (the baseline is the model before quantization)");
    lq_model *m = NULL;
    lq_status st;
    double t0 = lq_now();
    const char *label = preset ? preset : argv[optind];
    if (preset) {
        const lq_synth_preset *pf = lq_synth_find(preset);
        if (!pf) return lq_tool_usage("bench", UM, "unknown preset '%s' (lq synth --help lists them)", preset);
        lq_synth_preset pl = *pf;
        if (n_layers > 0 && n_layers < pl.layers) pl.layers = n_layers;
        if (max_pos > 0) pl.max_pos = max_pos;
        const lq_synth_preset *p = &pl;
        lq_checkpoint *ck = NULL;
        fprintf(stderr, "[bench] building %s in memory (%.2f B random parameters)\n", preset, lq_synth_n_params(p) / 1e9);
        st = lq_synth_checkpoint(p, LQ_F16, 1, &ck);
        if (st == LQ_OK) st = lq_model_from_checkpoint(ck, &m);
        lq_checkpoint_free(ck);
    } else {
        st = lq_tool_load_model(argv[optind], device, &m);
    }
    if (st == LQ_OK && baseline && m->qw) { /* a .lqq: its linears are quantized already */
        lq_model_free(m);
        return lq_tool_usage("bench", UM, "--baseline: %s is quantized already (no unquantized weights to compare)",
                             label);
    }
    if (st != LQ_OK) return lq_tool_fail("bench", st);
    int maxb = 0, maxp = 0;
    for (int i = 0; i < n_b; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    for (int i = 0; i < n_p; i++) maxp = prompts[i] > maxp ? prompts[i] : maxp;
    const int V = m->cfg.vocab_size, ntok = maxb * (maxp > 512 ? maxp : 512);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)ntok);
    float *logits = malloc(sizeof(float) * (size_t)maxb * V);
    json_t *res = json_object(), *pre = json_array(), *dec = json_array(), *bpre = NULL, *bdec = NULL;
    char desc[256] = "", bdesc[256] = "";
    int rc = 0;
    if (!tok || !logits || !res || !pre || !dec) {
        lq_error(LQ_ERR_NOMEM, "out of memory");
        rc = lq_tool_fail("bench", LQ_ERR_NOMEM);
        goto done;
    }
    for (int i = 0; i < ntok; i++) tok[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    const model_pass o = {prompts, batches, ctxs, n_p, n_b, n_c, steps, reps, cmp_pdl, wdtype, cdtype, device, tok, logits};
    if (baseline) { /* the same weights before quantization, in the same process, first */
        fprintf(stderr, "[bench] model ready in %.1f s\n", lq_now() - t0);
        bpre = json_array(), bdec = json_array();
        if (!bpre || !bdec) {
            lq_error(LQ_ERR_NOMEM, "out of memory");
            rc = lq_tool_fail("bench", LQ_ERR_NOMEM);
            goto done;
        }
        fprintf(stderr, "[bench] baseline: the model before quantization\n");
        if ((rc = bench_pass(m, &o, bpre, bdec, NULL, NULL, bdesc, sizeof bdesc)) != 0) goto done;
    }
    if (rtn_bits) {
        lq_quant_params qp = {rtn_bits, rtn_group, rtn_sym};
        const double tq = lq_now();
        fprintf(stderr, "[bench] RTN %d-bit g%d %s of every linear%s\n", rtn_bits, rtn_group, rtn_sym ? "sym" : "asym",
                rtn_head ? " and the head" : "");
        if ((st = lq_model_quantize_rtn(m, &qp)) != LQ_OK || (rtn_head && (st = lq_model_quantize_head_rtn(m, &qp)) != LQ_OK)) {
            rc = lq_tool_fail("bench", st);
            goto done;
        }
        if (baseline) fprintf(stderr, "[bench] quantized in %.1f s\n", lq_now() - tq);
    }
    if (!baseline) fprintf(stderr, "[bench] model ready in %.1f s\n", lq_now() - t0);
    if ((rc = bench_pass(m, &o, pre, dec, bpre, bdec, desc, sizeof desc)) != 0) goto done;
    json_object_set_new(res, "model", json_string(label));
    json_object_set_new(res, "synthetic", json_boolean(preset != NULL));
    json_object_set_new(res, "layers", json_integer(m->cfg.n_layers));
    json_object_set_new(res, "max_positions", json_integer(m->cfg.max_seq_len));
    if (rtn_bits)
        json_object_set_new(res, "quantization", json_pack("{s:s, s:i, s:i, s:b, s:b}", "method", "rtn", "bits", rtn_bits,
                                                            "group", rtn_group, "sym", rtn_sym, "lm_head", rtn_head));
    if (desc[0]) json_object_set_new(res, "engine", json_string(desc));
    json_object_set_new(res, "prefill", pre);
    json_object_set_new(res, "decode", dec);
    pre = dec = NULL;
    if (baseline) {
        json_t *bl = json_object();
        if (bdesc[0]) json_object_set_new(bl, "engine", json_string(bdesc));
        json_object_set_new(bl, "prefill", bpre);
        json_object_set_new(bl, "decode", bdec);
        bpre = bdec = NULL;
        json_object_set_new(res, "baseline", bl);
    }
    rc = emit(res, as_json, out);
done:
    if (pre) json_decref(pre);
    if (dec) json_decref(dec);
    if (bpre) json_decref(bpre);
    if (bdec) json_decref(bdec);
    if (res) json_decref(res);
    free(tok);
    free(logits);
    lq_model_free(m);
    return rc;
}

int lq_cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: lq bench kernels|model [options]   (lq bench kernels --help, lq bench model --help)\n",
              argc < 2 ? stderr : stdout);
        fputs(UK, argc < 2 ? stderr : stdout);
        fputs(UM, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "kernels")) return bench_kernels(argc - 1, argv + 1);
    if (!strcmp(argv[1], "model")) return bench_model(argc - 1, argv + 1);
    fprintf(stderr, "lq bench: unknown mode '%s' (kernels or model)\n", argv[1]);
    return 2;
}
