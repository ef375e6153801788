/* cmd_eval.c — `lq eval BASE QUANT TEXTFILE --ctx N`: runs a base model and a
 * quantized one over the same perplexity windows in lockstep (through
 * lq_engine.logits, nothing written to disk; on a GPU the logits stay there and
 * lq_cuda_engines_kld computes the per-token statistics) and reports both perplexities,
 * ln(PPL_q / PPL_base), KL divergence (mean, percentiles, max), top-1
 * agreement and RMS Δp — the statistics of llama.cpp's
 * `perplexity --kl-divergence`, defined in libquant/lq_kld.h.
 * Windows follow lq ppl's protocol (lq_eval.h), so PPL(base) equals what
 * `lq ppl BASE` prints; --half scores only the second half of each window
 * as llama.cpp does. Run `lq eval --help`. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/lq_cuda.h"
#include "../libquant/lq_eval.h"
#include "../libquant/lq_kld.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq eval BASE QUANT TEXTFILE --ctx N [--max-windows K] [--batch B] [--half]\n"
    "               [--device cpu|cuda|auto] [--weights f16|bf16|f32] [--compute f32] [--json] [--quiet]\n"
    "  BASE, QUANT    any inputs lq reads (QUANT typically an .lqq from lq quantize)\n"
    "  TEXTFILE       UTF-8 text, tokenized with BASE's tokenizer (as lq ppl does)\n"
    "  --ctx N        window length (required); windows as in lq ppl: len/N, tail dropped\n"
    "  --max-windows  only the first K windows\n"
    "  --batch B      windows per forward pass (default: automatic)\n"
    "  --half         score only the second half of each window (llama.cpp's protocol);\n"
    "                 default: every token but each window's first (lq ppl's protocol)\n"
    "  --device D     cpu, cuda, or auto (default: cuda when a GPU is present)\n"
    "  --weights W    weight dtype on the GPU (default f16)\n"
    "  --compute f32  on the GPU, both models: fp32 activations and KV cache over f16/bf16 weights\n"
    "                 (default: the weights' dtype): the quantization's error without activation rounding\n"
    "  --json         one JSON object on stdout\n"
    "on a GPU the logits stay on the device and the per-token statistics are computed there.\n"
    "statistics (lq_kld.h): PPL of both, ln(PPL_q/PPL_base) +/- its standard error, KLD(base || quant)\n"
    "mean +/- s.e., max, 99.9/99/95/90/50 percentiles, same top-1 token, mean and RMS of\n"
    "dp = p_quant(next) - p_base(next).\n";

int lq_cmd_eval(int argc, char **argv) {
    long ctx = 0, maxw = 0, batch = 0;
    int as_json = 0, quiet = 0, half = 0, wdtype = -1, cdtype = -1;
    const char *device = "auto";
    static struct option opts[] = {{"ctx", required_argument, 0, 'c'},    {"max-windows", required_argument, 0, 'm'},
                                   {"batch", required_argument, 0, 'b'},  {"json", no_argument, 0, 'j'},
                                   {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
                                   {"device", required_argument, 0, 'D'}, {"weights", required_argument, 0, 'W'},
                                   {"half", no_argument, 0, 'H'},         {"compute", required_argument, 0, 'K'},
                                   {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(U, stdout); return 0;
        case 'c':
            if (lq_parse_int(optarg, 4, 1 << 24, &ctx)) return lq_tool_usage("eval", U, "bad --ctx '%s'", optarg);
            break;
        case 'm':
            if (lq_parse_int(optarg, 1, 1 << 30, &maxw)) return lq_tool_usage("eval", U, "bad --max-windows '%s'", optarg);
            break;
        case 'b':
            if (lq_parse_int(optarg, 1, 4096, &batch)) return lq_tool_usage("eval", U, "bad --batch '%s'", optarg);
            break;
        case 'j': as_json = 1; break;
        case 'q': quiet = 1; break;
        case 'H': half = 1; break;
        case 'D':
            if (!lq_tool_device_valid(optarg)) return lq_tool_usage("eval", U, "bad --device '%s'", optarg);
            device = optarg;
            break;
        case 'W':
            if ((wdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("eval", U, "bad --weights '%s'", optarg);
            break;
        case 'K':
            if ((cdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("eval", U, "bad --compute '%s'", optarg);
            break;
        default: return lq_tool_usage("eval", U, "bad option");
        }
    }
    if (optind != argc - 3) return lq_tool_usage("eval", U, "expected BASE, QUANT and TEXTFILE");
    if (!ctx) return lq_tool_usage("eval", U, "--ctx is required");
    const char *bpath = argv[optind], *qpath = argv[optind + 1], *tpath = argv[optind + 2];
    lq_model *mb = NULL, *mq = NULL;
    lq_engine *eb = NULL, *eq = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    float *lb = NULL, *lqt = NULL;
    lq_kld_token *tk = NULL;
    size_t n_text = 0, n_ids = 0;
    lq_kld_acc acc;
    lq_kld_acc_init(&acc);
    int rc = 0;
    lq_status st;
    double t0 = lq_now();
#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        st = (expr);                                                                                                   \
        if (st != LQ_OK) goto done;                                                                                    \
    } while (0)
    CHECK(lq_tool_load_model(bpath, device, &mb));
    CHECK(lq_tool_load_model(qpath, device, &mq));
    if (!mb->tok) {
        st = lq_error(LQ_ERR_FORMAT, "%s: checkpoint has no tokenizer", bpath);
        goto done;
    }
    if (mb->cfg.vocab_size != mq->cfg.vocab_size) {
        st = lq_error(LQ_ERR_SHAPE, "vocabularies differ: %s has %d tokens, %s has %d", bpath, mb->cfg.vocab_size,
                      qpath, mq->cfg.vocab_size);
        goto done;
    }
    int max_pos = mb->cfg.max_seq_len < mq->cfg.max_seq_len ? mb->cfg.max_seq_len : mq->cfg.max_seq_len;
    if (ctx > max_pos) {
        st = lq_error(LQ_ERR_ARG, "--ctx %ld exceeds max_position_embeddings %d", ctx, max_pos);
        goto done;
    }
    CHECK(lq_tool_read_text(tpath, &text, &n_text));
    CHECK(lq_tokenizer_encode(mb->tok, text, n_text, 1, &ids, &n_ids));
    const int V = mb->cfg.vocab_size;
    int nw = lq_ppl_n_windows(n_ids, (int)ctx, (int)maxw);
    if (nw < 1) {
        st = lq_error(LQ_ERR_ARG, "%s has %zu tokens, fewer than one window of %ld", tpath, n_ids, ctx);
        goto done;
    }
    /* two models' logits: keep each under ~128 MB on the host, ~1 GB on a GPU (statistics computed there) */
    const int gpu = strcmp(device, "cpu") && lq_cuda_device_count() > 0;
    int B = batch ? (int)batch
                  : gpu ? (int)(1e9 / ((double)ctx * V * 4)) : lq_ppl_auto_batch((int)ctx, V, nw) / 2;
    if (B < 1) B = 1;
    if (!batch && B > 16) B = 16;
    if (B > nw) B = nw;
    CHECK(lq_tool_engine(mb, device, wdtype, cdtype, B, (int)ctx, &eb));
    CHECK(lq_tool_engine(mq, device, wdtype, cdtype, B, (int)ctx, &eq));
    const int on_gpu = !strcmp(eb->device, "cuda") && !strcmp(eq->device, "cuda");
    const int first = half ? (int)ctx / 2 : 0; /* first position whose prediction is scored */
    const int64_t R = ctx - 1 - first;        /* scored rows per window */
    if (on_gpu) {
        CHECK(lq_malloc((void **)&tk, sizeof *tk * (size_t)B * R, "KLD statistics"));
    } else {
        CHECK(lq_malloc((void **)&lb, sizeof(float) * (size_t)B * ctx * V, "base logits"));
        CHECK(lq_malloc((void **)&lqt, sizeof(float) * (size_t)B * ctx * V, "quant logits"));
    }
    if (!quiet && !as_json)
        fprintf(stderr, "[eval] %s: %zu tokens, n_ctx %ld, %d windows, %d scored per window; engines: %s / %s\n",
                tpath, n_ids, ctx, nw, (int)ctx - 1 - first, eb->desc, eq->desc);
    double te = lq_now();
    for (int w0 = 0; w0 < nw; w0 += B) {
        int nb = nw - w0 < B ? nw - w0 : B;
        const int32_t *tok = ids + (size_t)w0 * ctx;
        if (on_gpu) { /* logits stay on the GPU; per-token statistics come back, added in row order */
            CHECK(lq_cuda_engines_kld(eb, eq, tok, nb, (int)ctx, first, tk));
            for (int64_t i = 0; i < (int64_t)nb * R; i++) {
                const lq_kld_token *t = &tk[i];
                if (!isfinite(t->nll_base) || !isfinite(t->nll_q) || !isfinite(t->kld) || !isfinite(t->dp)) {
                    st = lq_error(LQ_ERR_NUMERIC, "window %d, position %lld: non-finite logits (NaN/Inf)",
                                  w0 + (int)(i / R), (long long)(first + i % R));
                    goto done;
                }
                CHECK(lq_kld_acc_add(&acc, t));
            }
        }
        if (!on_gpu) {
            CHECK(eb->logits(eb, tok, nb, (int)ctx, lb));
            CHECK(eq->logits(eq, tok, nb, (int)ctx, lqt));
        }
        for (int b = 0; b < nb && !on_gpu; b++) {
            size_t row = (size_t)b * ctx + first;
            st = lq_kld_acc_add_rows(&acc, lb + row * V, lqt + row * V, ctx - 1 - first, V, tok + row + 1);
            if (st != LQ_OK) {
                lq_error_prefix(st, "window %d", w0 + b);
                goto done;
            }
        }
        if (!quiet && !as_json) {
            double mk = acc.sum_kld / (double)acc.count;
            double el = lq_now() - te;
            fprintf(stderr, "[eval] windows %d/%d  PPL base %.4f  quant %.4f  mean KLD %.6f  %.1f s  ETA %.1f s\n",
                    w0 + nb, nw, exp(acc.sum_nll_base / (double)acc.count), exp(acc.sum_nll / (double)acc.count), mk,
                    el, el / (w0 + nb) * (nw - w0 - nb));
        }
    }
    lq_kld_summary s;
    CHECK(lq_kld_summarize(&acc, &s));
    double secs = lq_now() - t0;
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:b}", "base", bpath, "quant", qpath, "text", tpath,
                              "n_ctx", (int)ctx, "windows", nw, "scored_tokens", (json_int_t)s.count, "half", half);
#define F(k, v) json_object_set_new(j, k, json_real(v))
        F("ppl_base", s.ppl_base);
        F("ppl_base_unc", s.ppl_base_unc);
        F("ppl_quant", s.ppl_q);
        F("ppl_quant_unc", s.ppl_q_unc);
        F("ln_ppl_ratio", s.ln_ppl_ratio);
        F("ln_ppl_ratio_unc", s.ln_ppl_ratio_unc);
        F("ppl_ratio", s.ppl_ratio);
        F("ppl_ratio_unc", s.ppl_ratio_unc);
        F("cor_ln_ppl", s.cor_ln_ppl);
        F("kld_mean", s.kld_mean);
        F("kld_mean_unc", s.kld_mean_unc);
        F("kld_max", s.kld_max);
        F("kld_p99_9", s.kld_p99_9);
        F("kld_p99", s.kld_p99);
        F("kld_p95", s.kld_p95);
        F("kld_p90", s.kld_p90);
        F("kld_median", s.kld_median);
        F("kld_p10", s.kld_p10);
        F("kld_min", s.kld_min);
        F("dp_mean", s.dp_mean);
        F("dp_mean_unc", s.dp_mean_unc);
        F("dp_rms", s.dp_rms);
        F("dp_rms_unc", s.dp_rms_unc);
        F("dp_max", s.dp_max);
        F("dp_min", s.dp_min);
        F("same_top", s.same_top);
        F("same_top_unc", s.same_top_unc);
        F("seconds", secs);
#undef F
        json_object_set_new(j, "device", json_string(eb->device));
        char *o = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        puts(o);
        free(o);
        json_decref(j);
    } else {
        printf("base %s\nquant %s\ntext %s: n_ctx %ld, %d windows, %lld scored tokens%s, %.1f s\n\n", bpath, qpath,
               tpath, ctx, nw, (long long)s.count, half ? " (second half of each window)" : "", secs);
        printf("====== Perplexity statistics ======\n");
        printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", s.ppl_q, s.ppl_q_unc);
        printf("Mean PPL(base)                : %10.6f ± %10.6f\n", s.ppl_base, s.ppl_base_unc);
        printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * s.cor_ln_ppl);
        printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", s.ln_ppl_ratio, s.ln_ppl_ratio_unc);
        printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", s.ppl_ratio, s.ppl_ratio_unc);
        printf("\n====== KL divergence statistics ======\n");
        printf("Mean    KLD: %10.6f ± %10.6f\n", s.kld_mean, s.kld_mean_unc);
        printf("Maximum KLD: %10.6f\n", s.kld_max);
        printf("99.9%%   KLD: %10.6f\n", s.kld_p99_9);
        printf("99.0%%   KLD: %10.6f\n", s.kld_p99);
        printf("95.0%%   KLD: %10.6f\n", s.kld_p95);
        printf("90.0%%   KLD: %10.6f\n", s.kld_p90);
        printf("Median  KLD: %10.6f\n", s.kld_median);
        printf("10.0%%   KLD: %10.6f\n", s.kld_p10);
        printf("Minimum KLD: %10.6f\n", s.kld_min);
        printf("\n====== Token probability statistics ======\n");
        printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100 * s.dp_mean, 100 * s.dp_mean_unc);
        printf("Maximum Δp: %6.3f%%\n", 100 * s.dp_max);
        printf("Minimum Δp: %6.3f%%\n", 100 * s.dp_min);
        printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100 * s.dp_rms, 100 * s.dp_rms_unc);
        printf("Same top p: %6.3f ± %5.3f %%\n", 100 * s.same_top, 100 * s.same_top_unc);
    }
done:
#undef CHECK
    if (st != LQ_OK) rc = lq_tool_fail("eval", st);
    lq_kld_acc_free(&acc);
    free(lb);
    free(tk);
    free(lqt);
    free(text);
    free(ids);
    lq_engine_free(eb);
    lq_engine_free(eq);
    lq_model_free(mb);
    lq_model_free(mq);
    return rc;
}
