/* cmd_ppl.c — `lq ppl MODEL TEXTFILE --ctx N [--max-windows K] [--json]`:
 * perplexity with the protocol of lq_eval.h (the one golden.json describes).
 * Progress (windows done, running ppl, ETA) goes to stderr. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../libquant/lq_eval.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq ppl MODEL TEXTFILE --ctx N [--max-windows K] [--batch B] [--device cpu|cuda|auto]\n"
    "               [--weights f16|bf16|f32] [--compute f32] [--json] [--quiet]\n"
    "  MODEL          any input lq reads (HF dir, .gguf, llama2.c .bin, archive)\n"
    "  TEXTFILE       UTF-8 text ('-' for stdin), tokenized as HF's tokenizer(text) does\n"
    "  --ctx N        window length in tokens (required)\n"
    "  --max-windows  evaluate only the first K windows\n"
    "  --batch B      windows per forward pass (default: automatic)\n"
    "  --device D     cpu, cuda, or auto (default: cuda when a GPU is present)\n"
    "  --weights W    weight dtype on the GPU (default f16; the CPU runtime is fp32)\n"
    "  --compute f32  on the GPU: fp32 activations and KV cache over f16/bf16 weights (default: the\n"
    "                 weights' dtype): no rounding but the weights' own, for reference numbers; slower\n"
    "  --json         one JSON object on stdout: ppl, n_ctx, windows, scored_tokens, seconds, ...\n"
    "protocol: one BOS if the tokenizer adds it; len/N non-overlapping windows, tail dropped; each\n"
    "window from scratch; all tokens but each window's first are scored; ppl = exp(mean NLL).\n";

typedef struct {
    int tty, quiet, last_pct;
} progress_state;

static void progress(void *ud, int done, int total, double nll, int64_t scored, double secs) {
    progress_state *p = ud;
    if (p->quiet) return;
    double eta = done ? secs / done * (total - done) : 0;
    int pct = (int)(100.0 * done / total);
    if (p->tty) {
        fprintf(stderr, "\r[ppl] windows %d/%d  ppl %.4f  %.1f s elapsed  ETA %.1f s   ", done, total,
                exp(nll / (double)scored), secs, eta);
        if (done == total) fputc('\n', stderr);
    } else if (pct / 10 != p->last_pct / 10 || done == total) {
        fprintf(stderr, "[ppl] windows %d/%d  ppl %.4f  %.1f s elapsed  ETA %.1f s\n", done, total,
                exp(nll / (double)scored), secs, eta);
    }
    p->last_pct = pct;
}

int lq_cmd_ppl(int argc, char **argv) {
    long ctx = 0, maxw = 0, batch = 0;
    int as_json = 0, quiet = 0, wdtype = -1, cdtype = -1;
    const char *device = "auto";
    static struct option opts[] = {{"ctx", required_argument, 0, 'c'},   {"max-windows", required_argument, 0, 'm'},
                                   {"batch", required_argument, 0, 'b'}, {"json", no_argument, 0, 'j'},
                                   {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
                                   {"device", required_argument, 0, 'D'}, {"weights", required_argument, 0, 'W'},
                                   {"compute", required_argument, 0, 'K'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(U, stdout); return 0;
        case 'c':
            if (lq_parse_int(optarg, 2, 1 << 24, &ctx)) return lq_tool_usage("ppl", U, "bad --ctx '%s'", optarg);
            break;
        case 'm':
            if (lq_parse_int(optarg, 1, 1 << 30, &maxw)) return lq_tool_usage("ppl", U, "bad --max-windows '%s'", optarg);
            break;
        case 'b':
            if (lq_parse_int(optarg, 1, 4096, &batch)) return lq_tool_usage("ppl", U, "bad --batch '%s'", optarg);
            break;
        case 'j': as_json = 1; break;
        case 'q': quiet = 1; break;
        case 'D':
            if (!lq_tool_device_valid(optarg)) return lq_tool_usage("ppl", U, "bad --device '%s'", optarg);
            device = optarg;
            break;
        case 'W':
            if ((wdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("ppl", U, "bad --weights '%s'", optarg);
            break;
        case 'K':
            if ((cdtype = lq_tool_parse_wdtype(optarg)) < -1) return lq_tool_usage("ppl", U, "bad --compute '%s'", optarg);
            break;
        default: return lq_tool_usage("ppl", U, "bad option");
        }
    }
    if (optind != argc - 2) return lq_tool_usage("ppl", U, "expected MODEL and TEXTFILE");
    if (!ctx) return lq_tool_usage("ppl", U, "--ctx is required");
    const char *mpath = argv[optind], *tpath = argv[optind + 1];
    lq_model *m = NULL;
    lq_engine *e = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n_text = 0, n_ids = 0;
    int rc = 0;
    double t0 = lq_now();
    lq_status st = lq_tool_load_model(mpath, device, &m);
    if (st != LQ_OK) return lq_tool_fail("ppl", st);
    if (!m->tok) {
        lq_model_free(m);
        lq_error(LQ_ERR_FORMAT, "%s: checkpoint has no tokenizer", mpath);
        return lq_tool_fail("ppl", LQ_ERR_FORMAT);
    }
    double t_load = lq_now() - t0;
    if (ctx > m->cfg.max_seq_len) {
        lq_error(LQ_ERR_ARG, "--ctx %ld exceeds the model's max_position_embeddings %d", ctx, m->cfg.max_seq_len);
        rc = lq_tool_fail("ppl", LQ_ERR_ARG);
        goto done;
    }
    st = lq_tool_read_text(tpath, &text, &n_text);
    if (st == LQ_OK) st = lq_tokenizer_encode(m->tok, text, n_text, 1, &ids, &n_ids);
    if (st != LQ_OK) {
        rc = lq_tool_fail("ppl", st);
        goto done;
    }
    double t_tok = lq_now() - t0 - t_load;
    if (!quiet && !as_json)
        fprintf(stderr, "[ppl] %s: %zu tokens, n_ctx %ld, %d of %zu windows (load %.1f s, tokenize %.1f s)\n", tpath,
                n_ids, ctx, lq_ppl_n_windows(n_ids, (int)ctx, (int)maxw), n_ids / (size_t)ctx, t_load, t_tok);
    int nw = lq_ppl_n_windows(n_ids, (int)ctx, (int)maxw);
    int B = batch ? (int)batch : lq_ppl_auto_batch((int)ctx, m->cfg.vocab_size, nw);
    if (nw > 0 && B > nw) B = nw;
    st = lq_tool_engine(m, device, wdtype, cdtype, B, (int)ctx, &e);
    if (st != LQ_OK) {
        rc = lq_tool_fail("ppl", st);
        goto done;
    }
    if (!quiet && !as_json) fprintf(stderr, "[ppl] engine: %s, %d windows per call\n", e->desc, B);
    progress_state ps = {isatty(2), quiet, -1};
    lq_ppl_opts o = {(int)ctx, (int)maxw, B, progress, &ps};
    lq_ppl_result r;
    st = lq_ppl_eval(e, ids, n_ids, &o, &r);
    if (st != LQ_OK) {
        rc = lq_tool_fail("ppl", st);
        goto done;
    }
    if (as_json) {
        json_t *j = json_pack("{s:f, s:i, s:i, s:I, s:I, s:f, s:f, s:f, s:s, s:s, s:s}", "ppl", r.ppl, "n_ctx", (int)ctx,
                              "windows", r.windows, "scored_tokens", (json_int_t)r.scored, "text_tokens",
                              (json_int_t)r.n_tokens, "nll_mean", r.nll_sum / (double)r.scored, "nll_stderr",
                              r.nll_stderr, "seconds", r.seconds, "model", mpath, "text", tpath, "device", e->device);
        json_object_set_new(j, "engine", json_string(e->desc));
        json_object_set_new(j, "tokens_per_second", json_real((double)r.windows * ctx / r.seconds));
        char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("ppl %.6f  (n_ctx %ld, %d windows, %lld scored tokens, mean NLL %.6f +/- %.6f, %.1f s, %.0f tok/s)\n",
               r.ppl, ctx, r.windows, (long long)r.scored, r.nll_sum / (double)r.scored, r.nll_stderr, r.seconds,
               (double)r.windows * ctx / r.seconds);
    }
done:
    free(text);
    free(ids);
    lq_engine_free(e);
    lq_model_free(m);
    return rc;
}
