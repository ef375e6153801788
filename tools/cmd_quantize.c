/* cmd_quantize.c — `lq quantize MODEL OUT.lqq --method rtn|gptq ...`: W4A16
 * (2..8-bit) weight-only quantization of every linear layer (and, with
 * --lm-head, of the head), written as one packed .lqq file (formats/FORMAT.md)
 * that every lq command loads.
 * Progress per layer and a per-weight table (relative output error of RTN
 * and GPTQ on the calibration inputs, damping, seconds) go to stderr; --json
 * prints a summary on stdout. Run `lq quantize --help`. */
#include <getopt.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../calib/lq_calib.h"
#include "../formats/lq_lqq.h"
#include "../kernels/lq_gptq_cuda.h"
#include "../libquant/lq_dtype.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq quantize MODEL OUT --method rtn|gptq [--bits 4] [--group 128] [--sym|--asym] [--act-order]\n"
    "                   [--calib FILE --nsamples 128 --seqlen 2048 --seed 0] [--damp 0.01] [--block 128]\n"
    "                   [--skip REGEX] [--dtype same|f32|f16|bf16] [--device cpu|cuda] [--cpu-forward]\n"
    "                   [--packing auto|mma|bitstream] [--lm-head] [--json] [--quiet]\n"
    "  MODEL          any input lq reads (HF dir, .safetensors, .gguf, llama2.c .bin, archive)\n"
    "  OUT            the packed model file to write (atomically), e.g. model-w4g128.lqq\n"
    "  --method       rtn (round to nearest) or gptq (needs --calib); default rtn\n"
    "  --bits B       2..8 (default 4)\n"
    "  --group G      inputs per scale group: 32, 64, 128, ... or 0 / 'channel' for one group per\n"
    "                 output row (default 128; a group >= the layer's inputs is per-channel)\n"
    "  --sym          symmetric (scale = amax / (2^(b-1)-1), implicit zero); default asymmetric\n"
    "  --asym         asymmetric (range includes 0, stored zero point)\n"
    "  --act-order    GPTQ: quantize columns by decreasing Hessian diagonal (static groups)\n"
    "  --calib FILE   calibration text, or JSONL(.gz) with a \"text\" field (e.g. C4); 'random':\n"
    "                 uniform random token ids (speed runs on `lq synth` models, no tokenizer)\n"
    "  --nsamples N   calibration sequences (default 128)\n"
    "  --seqlen L     tokens per sequence (default min(2048, max_position_embeddings))\n"
    "  --seed S       sampling seed (default 0)\n"
    "  --damp F       GPTQ damping, fraction of mean(diag H) (default 0.01; x10 on Cholesky failure)\n"
    "  --block B      GPTQ lazy-update block (default 128)\n"
    "  --skip REGEX   keep weights whose name matches (POSIX extended regex) unquantized\n"
    "  --dtype D      dtype of the unquantized tensors (embeddings, norms, head): same (default)\n"
    "                 keeps the source dtype; f32, f16 or bf16 convert\n"
    "  --device D     cpu (default) or cuda: the calibration forward, Hessians, Cholesky and the\n"
    "                 GPTQ update on GPU 0\n"
    "  --cpu-forward  with --device cuda: run the calibration forward on the CPU instead\n"
    "  --packing P    layout of the codes in the file (formats/FORMAT.md): auto (default) writes\n"
    "                 the fused GPU kernels' layout (lq-mma-w4) for every 4-bit weight they take\n"
    "                 and the portable bit stream (lq-bitstream-u32-le) for the rest; mma: the\n"
    "                 kernels' layout or an error; bitstream: the bit stream everywhere\n"
    "  --lm-head      quantize the head (lm_head.weight) too, with the same bits/group/sym, after\n"
    "                 the layers: GPTQ with the Hessian of the final-normed hidden states of the\n"
    "                 quantized layers over the calibration tokens, or RTN. A tied head is untied:\n"
    "                 the embeddings stay floating point, the file's config says\n"
    "                 tie_word_embeddings false. Off by default: the head is ~25% of a 4-bit 8B\n"
    "                 model's bytes but quantizing it costs accuracy (README: measured on stories260K)\n"
    "  --json         JSON summary on stdout (every weight's method, errors, damping, seconds)\n"
    "  --quiet        no progress or table on stderr\n";

typedef struct {
    int quiet;
    double t0, t_layer;
} prog_state;

static void fmt_err(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "%9s", "-");
    else snprintf(b, n, "%9.5f", v);
}

static void progress(void *ud, int layer, int n_layers, const lq_quant_result *r) {
    prog_state *p = ud;
    if (p->quiet) return;
    if (!r) {
        double now = lq_now();
        fprintf(stderr, "[quantize] layer %d/%d done in %.2f s (%.1f s total)\n", layer + 1, n_layers,
                now - p->t_layer, now - p->t0);
        p->t_layer = now;
        return;
    }
    char e1[32], e2[32], shape[32], damp[32];
    fmt_err(e1, sizeof e1, r->rel_err_rtn);
    fmt_err(e2, sizeof e2, r->rel_err_gptq);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)r->rows, (long long)r->cols);
    if (r->quantized && r->method && !strcmp(r->method, "gptq")) snprintf(damp, sizeof damp, "%g", r->gptq.percdamp_used);
    else snprintf(damp, sizeof damp, "-");
    fprintf(stderr, "  %-42s %-11s %-8s %s %s %7s %7.2f%s%s\n", r->name, shape, r->method ? r->method : "-", e1, e2,
            damp, r->seconds, r->note[0] ? "  " : "", r->note);
}

static int skip_fn(void *ud, const char *name) { return regexec((regex_t *)ud, name, 0, NULL, 0) == 0; }

static json_t *result_json(const lq_quant_result *r) {
    json_t *j = json_pack("{s:s, s:i, s:[I, I], s:s}", "name", r->name, "layer", r->layer, "shape", (json_int_t)r->rows,
                          (json_int_t)r->cols, "method", r->method ? r->method : "-");
    json_object_set_new(j, "rel_err_rtn", isnan(r->rel_err_rtn) ? json_null() : json_real(r->rel_err_rtn));
    json_object_set_new(j, "rel_err_gptq", isnan(r->rel_err_gptq) ? json_null() : json_real(r->rel_err_gptq));
    if (r->quantized && r->method && !strcmp(r->method, "gptq")) {
        json_object_set_new(j, "damp", json_real(r->gptq.percdamp_used));
        json_object_set_new(j, "damp_escalations", json_integer(r->gptq.escalations));
        json_object_set_new(j, "dead_inputs", json_integer(r->gptq.n_dead));
    }
    json_object_set_new(j, "seconds", json_real(r->seconds));
    if (r->note[0]) json_object_set_new(j, "note", json_string(r->note));
    return j;
}

/* Add one quantized weight to the file (--packing decides the layout) and its recipe to qt. */
static lq_status add_quantized(lq_lqq_writer *w, json_t *qt, const lq_quant_result *r, const char *packing, long group,
                               int act_order, int *n_mma) {
    json_t *rec = NULL;
    /* the mma writer refuses what the kernels cannot take (LQ_ERR_UNSUPPORTED, before adding
       anything): auto then keeps the bit stream, --packing mma stops there */
    int mma = 0;
    if (strcmp(packing, "bitstream")) {
        lq_status st = lq_lqq_writer_add_qweight_mma(w, r->name, &r->q, &rec);
        if (st == LQ_ERR_UNSUPPORTED && strcmp(packing, "mma")) lq_clear_error();
        else if (st != LQ_OK) return lq_error_prefix(st, "--packing %s", packing);
        else mma = 1;
    }
    if (!mma) LQ_FORWARD(lq_lqq_writer_add_qweight(w, r->name, &r->q, &rec));
    *n_mma += mma;
    json_object_set_new(rec, "method", json_string(r->method));
    json_object_set_new(rec, "group_size_requested", json_integer(group));
    if (act_order && !strcmp(r->method, "gptq")) json_object_set_new(rec, "act_order", json_true());
    if (!isnan(r->rel_err_rtn)) json_object_set_new(rec, "rel_err_rtn", json_real(r->rel_err_rtn));
    if (!isnan(r->rel_err_gptq)) json_object_set_new(rec, "rel_err_gptq", json_real(r->rel_err_gptq));
    if (!strcmp(r->method, "gptq")) json_object_set_new(rec, "damp", json_real(r->gptq.percdamp_used));
    json_object_set_new(qt, r->name, rec);
    return LQ_OK;
}

int lq_cmd_quantize(int argc, char **argv) {
    const char *method = "rtn", *calib = NULL, *skip = NULL, *device = "cpu", *dtype_s = "same", *packing = "auto";
    long bits = 4, group = 128, nsamples = 128, seqlen = 0, block = 128;
    unsigned long long seed = 0;
    double damp = 0.01;
    int sym = 0, act_order = 0, as_json = 0, quiet = 0, cpu_forward = 0, lm_head = 0;
    static struct option opts[] = {{"method", required_argument, 0, 'm'}, {"bits", required_argument, 0, 'b'},
                                   {"group", required_argument, 0, 'g'},  {"sym", no_argument, 0, 'S'},
                                   {"asym", no_argument, 0, 'A'},         {"act-order", no_argument, 0, 'a'},
                                   {"calib", required_argument, 0, 'c'},  {"nsamples", required_argument, 0, 'n'},
                                   {"seqlen", required_argument, 0, 'l'}, {"seed", required_argument, 0, 's'},
                                   {"damp", required_argument, 0, 'd'},   {"block", required_argument, 0, 'B'},
                                   {"skip", required_argument, 0, 'k'},   {"dtype", required_argument, 0, 't'},
                                   {"device", required_argument, 0, 'D'}, {"json", no_argument, 0, 'j'},
                                   {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
                                   {"cpu-forward", no_argument, 0, 'F'},  {"packing", required_argument, 0, 'P'},
                                   {"lm-head", no_argument, 0, 'H'},      {0, 0, 0, 0}};
    /* the command line as typed, for the metadata (getopt permutes argv) */
    char cmdline[4096] = "lq";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(cmdline);
        snprintf(cmdline + l, sizeof cmdline - l, " %s", argv[i]);
    }
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(U, stdout); return 0;
        case 'm':
            if (strcmp(optarg, "rtn") && strcmp(optarg, "gptq"))
                return lq_tool_usage("quantize", U, "bad --method '%s' (rtn or gptq)", optarg);
            method = optarg;
            break;
        case 'b':
            if (lq_parse_int(optarg, LQ_QUANT_MIN_BITS, LQ_QUANT_MAX_BITS, &bits))
                return lq_tool_usage("quantize", U, "bad --bits '%s' (2..8)", optarg);
            break;
        case 'g':
            if (!strcmp(optarg, "channel") || !strcmp(optarg, "-1")) group = 0;
            else if (lq_parse_int(optarg, 0, 1 << 24, &group))
                return lq_tool_usage("quantize", U, "bad --group '%s'", optarg);
            break;
        case 'S': sym = 1; break;
        case 'A': sym = 0; break;
        case 'a': act_order = 1; break;
        case 'c': calib = optarg; break;
        case 'n':
            if (lq_parse_int(optarg, 1, 1 << 20, &nsamples)) return lq_tool_usage("quantize", U, "bad --nsamples '%s'", optarg);
            break;
        case 'l':
            if (lq_parse_int(optarg, 2, 1 << 24, &seqlen)) return lq_tool_usage("quantize", U, "bad --seqlen '%s'", optarg);
            break;
        case 's': {
            char *e;
            seed = strtoull(optarg, &e, 10);
            if (!*optarg || *e) return lq_tool_usage("quantize", U, "bad --seed '%s'", optarg);
            break;
        }
        case 'd':
            if (lq_parse_float(optarg, &damp) || !(damp > 0) || damp > 10)
                return lq_tool_usage("quantize", U, "bad --damp '%s' (0 < damp <= 10)", optarg);
            break;
        case 'B':
            if (lq_parse_int(optarg, 1, 1 << 16, &block)) return lq_tool_usage("quantize", U, "bad --block '%s'", optarg);
            break;
        case 'k': skip = optarg; break;
        case 't':
            if (strcmp(optarg, "same") && lq_tool_parse_wdtype(optarg) < 0)
                return lq_tool_usage("quantize", U, "bad --dtype '%s' (same, f32, f16, bf16)", optarg);
            dtype_s = optarg;
            break;
        case 'D':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return lq_tool_usage("quantize", U, "bad --device '%s' (cpu or cuda)", optarg);
            device = optarg;
            break;
        case 'j': as_json = 1; break;
        case 'q': quiet = 1; break;
        case 'F': cpu_forward = 1; break;
        case 'H': lm_head = 1; break;
        case 'P':
            if (strcmp(optarg, "auto") && strcmp(optarg, "mma") && strcmp(optarg, "bitstream"))
                return lq_tool_usage("quantize", U, "bad --packing '%s' (auto, mma or bitstream)", optarg);
            packing = optarg;
            break;
        default: return lq_tool_usage("quantize", U, "bad option");
        }
    }
    if (optind != argc - 2) return lq_tool_usage("quantize", U, "expected MODEL and OUT");
    const char *in = argv[optind], *out = argv[optind + 1];
    const int gptq = !strcmp(method, "gptq");
    if (gptq && !calib) return lq_tool_usage("quantize", U, "--method gptq needs --calib FILE");
    if (act_order && !gptq) return lq_tool_usage("quantize", U, "--act-order applies to --method gptq only");
    int out_dtype = strcmp(dtype_s, "same") ? lq_tool_parse_wdtype(dtype_s) : -1;

    int rc = 0;
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    lq_model *m = NULL;
    lq_calib_data cd;
    memset(&cd, 0, sizeof cd);
    lq_quant_result *res = NULL;
    int n_res = 0;
    regex_t re;
    int have_re = 0;
    lq_lqq_writer *w = NULL;
    lq_gptq_cuda *gpu = NULL;
    json_t *meta = NULL, *qt = NULL;
    void **bufs = NULL;
    int n_bufs = 0;
    double t0 = lq_now();
    if (skip) {
        int e = regcomp(&re, skip, REG_EXTENDED | REG_NOSUB);
        if (e) {
            char eb[256];
            regerror(e, &re, eb, sizeof eb);
            return lq_tool_usage("quantize", U, "bad --skip regex '%s': %s", skip, eb);
        }
        have_re = 1;
    }
#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        st = (expr);                                                                                                   \
        if (st != LQ_OK) goto done;                                                                                    \
    } while (0)
    if (!strcmp(device, "cuda")) {
        CHECK(lq_gptq_cuda_new(0, &gpu)); /* before any loading: no GPU fails at once */
        if (!quiet) fprintf(stderr, "[quantize] device: %s\n", lq_gptq_cuda_device_name(gpu));
    }
    CHECK(lq_checkpoint_open(in, &ck));
    CHECK(lq_model_from_checkpoint(ck, &m));
    if (calib) {
        if (!seqlen) seqlen = m->cfg.max_seq_len < 2048 ? m->cfg.max_seq_len : 2048;
        if (seqlen > m->cfg.max_seq_len) {
            st = lq_error(LQ_ERR_ARG, "--seqlen %ld exceeds the model's max_position_embeddings %d", seqlen,
                          m->cfg.max_seq_len);
            goto done;
        }
        if (!strcmp(calib, "random")) /* random-weight models (lq synth) for speed runs */
            CHECK(lq_calib_data_random(m->cfg.vocab_size, (int)nsamples, (int)seqlen, seed, &cd));
        else
            CHECK(lq_calib_data_load(calib, m->tok, (int)nsamples, (int)seqlen, seed, &cd));
        if (!quiet)
            fprintf(stderr, "[quantize] calibration: %d x %d tokens from %s (%s, sha256 %.16s..., seed %llu)\n",
                    cd.n_samples, cd.seqlen, calib, cd.kind, cd.sha256, seed);
    }
    lq_quantize_opts qo;
    memset(&qo, 0, sizeof qo);
    qo.method = gptq ? LQ_QMETHOD_GPTQ : LQ_QMETHOD_RTN;
    qo.gptq = lq_gptq_opts_default();
    qo.gptq.q.bits = (int)bits;
    qo.gptq.q.group_size = (int)group;
    qo.gptq.q.sym = sym;
    qo.gptq.percdamp = damp;
    qo.gptq.block_size = (int)block;
    qo.gptq.act_order = act_order;
    qo.gpu = gpu;
    qo.gpu_forward = gpu && !cpu_forward;
    qo.lm_head = lm_head;
    const int was_tied = m->cfg.tie_embeddings; /* lq_quantize_model unties a quantized head */
    if (have_re) {
        qo.skip = skip_fn;
        qo.skip_ud = &re;
    }
    prog_state ps = {quiet, lq_now(), lq_now()};
    qo.progress = progress;
    qo.progress_ud = &ps;
    if (!quiet) {
        fprintf(stderr, "[quantize] %s: %d layers%s, %s %ld-bit, group %s%ld, %s%s\n", in, m->cfg.n_layers,
                lm_head ? (was_tied ? " + the head (untied)" : " + the head") : "", method, bits, group ? "" : "per-channel ",
                group, sym ? "symmetric" : "asymmetric", act_order ? ", act-order" : "");
        fprintf(stderr, "  %-42s %-11s %-8s %9s %9s %7s %7s\n", "weight", "shape", "method", "rtn_err", "gptq_err",
                "damp", "seconds");
    }
    CHECK(lq_quantize_model(m, calib ? cd.tokens : NULL, calib ? cd.n_samples : 0, calib ? cd.seqlen : 0, &qo, &res,
                            &n_res));

    /* ---- write the packed file ---- */
    CHECK(lq_lqq_writer_new(&w));
    qt = json_object();
    CHECK(lq_calloc((void **)&bufs, (size_t)ck->n_tensors + 1, sizeof(void *), "conversion buffers"));
    int n_q = 0, n_plain = 0, n_mma = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        const lq_tensor_info *t = &ck->tensors[i];
        const lq_quant_result *r = NULL;
        for (int j = 0; j < n_res && !r; j++)
            if (res[j].quantized && !strcmp(res[j].name, t->name)) r = &res[j];
        if (r) {
            CHECK(add_quantized(w, qt, r, packing, group, act_order, &n_mma));
            n_q++;
            continue;
        }
        int fdt = lq_lqq_dtype_from_lq(t->dtype);
        int is_float = t->dtype == LQ_F32 || t->dtype == LQ_F16 || t->dtype == LQ_BF16 || t->dtype == LQ_F64;
        int want = out_dtype >= 0 && is_float ? out_dtype : (t->dtype == LQ_F64 ? LQ_F32 : (int)t->dtype);
        if (want == (int)t->dtype && fdt >= 0) {
            CHECK(lq_lqq_writer_add(w, t->name, (lq_lqq_dtype)fdt, t->ndim, t->shape, t->data, t->n_bytes));
        } else if (is_float) {
            int64_t ne = lq_tensor_numel(t);
            float *f32 = NULL;
            CHECK(lq_tensor_to_f32(t, -1, &f32));
            size_t nb = (size_t)ne * lq_dtype_size((lq_dtype)want);
            void *buf = malloc(nb ? nb : 1);
            if (!buf) {
                free(f32);
                st = lq_error(LQ_ERR_NOMEM, "out of memory converting '%s'", t->name);
                goto done;
            }
            lq_convert_from_f32((lq_dtype)want, f32, buf, (size_t)ne);
            free(f32);
            bufs[n_bufs++] = buf;
            CHECK(lq_lqq_writer_add(w, t->name, (lq_lqq_dtype)lq_lqq_dtype_from_lq((lq_dtype)want), t->ndim, t->shape,
                                    buf, nb));
        } else {
            if (!quiet)
                fprintf(stderr, "[quantize] warning: tensor '%s' (%s) cannot be stored and is dropped\n", t->name,
                        lq_dtype_name(t->dtype));
            continue;
        }
        n_plain++;
    }
    /* the quantized head of a tied model: the checkpoint stores no lm_head.weight of its own */
    const lq_quant_result *rhead = lm_head && n_res > 0 && res[n_res - 1].quantized ? &res[n_res - 1] : NULL;
    if (rhead && !json_object_get(qt, rhead->name)) {
        CHECK(add_quantized(w, qt, rhead, packing, group, act_order, &n_mma));
        n_q++;
    }
    meta = json_object();
    json_object_set_new(meta, "lq_version", json_string("0.1.0"));
    json_object_set_new(meta, "source", json_string(in));
    json_object_set_new(meta, "source_format", json_string(ck->format));
    if (rhead) { /* a packed head is never tied: say so in the config every reader builds the model from */
        json_t *cfg = json_deep_copy(ck->config);
        json_object_set_new(cfg, "tie_word_embeddings", json_false());
        json_object_set_new(meta, "config", cfg);
    } else {
        json_object_set(meta, "config", ck->config);
    }
    json_object_set(meta, "tokenizer", ck->tokenizer ? ck->tokenizer : json_null());
    {
        json_t *q = json_pack("{s:s, s:i, s:i, s:b, s:b, s:s, s:s}", "method", method, "bits", (int)bits,
                              "group_size", (int)group, "sym", sym, "act_order", act_order, "rounding",
                              "round-half-to-even of fp32 w/s with the fp16-rounded scale (libquant/lq_quant.h)",
                              "unquantized_dtype", dtype_s);
        if (gptq) {
            json_object_set_new(q, "damp", json_real(damp));
            json_object_set_new(q, "damp_escalation", json_string("x10 on Cholesky failure, at most 4 times"));
            json_object_set_new(q, "block_size", json_integer(block));
            json_object_set_new(q, "true_sequential", json_true());
            json_object_set_new(q, "static_groups", json_boolean(act_order));
        }
        if (skip) json_object_set_new(q, "skip", json_string(skip));
        if (rhead) {
            json_t *h = json_pack("{s:s, s:s, s:i, s:i, s:b, s:b}", "tensor", rhead->name, "method", rhead->method,
                                  "bits", (int)bits, "group_size", (int)group, "sym", sym, "untied_from_embeddings",
                                  was_tied);
            json_object_set_new(h, "input",
                                json_string(gptq ? "GPTQ Hessian: X^T X of the final-normed hidden states of the "
                                                   "quantized layers over the calibration tokens"
                                                 : "round to nearest, no calibration"));
            json_object_set_new(q, "lm_head", h);
        }
        json_object_set_new(q, "tensors", qt);
        qt = NULL;
        json_object_set_new(meta, "quantization", q);
    }
    json_object_set_new(meta, "calibration", calib ? lq_calib_data_provenance(&cd) : json_null());
    json_object_set_new(meta, "command", json_string(cmdline));
    CHECK(lq_lqq_write(w, meta, out, NULL, NULL));
    double secs = lq_now() - t0;
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:i, s:i, s:f}", "input", in, "output", out, "method",
                              method, "bits", (int)bits, "group_size", (int)group, "sym", sym, "act_order", act_order,
                              "quantized_tensors", n_q, "other_tensors", n_plain, "seconds", secs);
        json_object_set(j, "calibration", json_object_get(meta, "calibration"));
        json_object_set_new(j, "device", json_string(device));
        json_object_set_new(j, "packing", json_string(packing));
        json_object_set_new(j, "mma_layout_tensors", json_integer(n_mma));
        json_object_set_new(j, "lm_head", json_boolean(rhead != NULL));
        json_object_set_new(j, "calibration_forward", json_string(qo.gpu_forward ? "cuda" : "cpu"));
        if (gpu) {
            json_object_set_new(j, "gpu", json_string(lq_gptq_cuda_device_name(gpu)));
            /* device-wide memory in use (total - free), high-water mark over the run */
            json_object_set_new(j, "gpu_peak_bytes", json_integer((json_int_t)lq_gptq_cuda_peak_bytes(gpu)));
        }
        json_t *arr = json_array();
        for (int i = 0; i < n_res; i++) json_array_append_new(arr, result_json(&res[i]));
        json_object_set_new(j, "tensors", arr);
        char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
        puts(s);
        free(s);
        json_decref(j);
    } else {
        double sr = 0, sg = 0;
        int nr = 0, ng = 0;
        for (int i = 0; i < n_res; i++) {
            if (!isnan(res[i].rel_err_rtn)) sr += res[i].rel_err_rtn, nr++;
            if (!isnan(res[i].rel_err_gptq)) sg += res[i].rel_err_gptq, ng++;
        }
        printf("wrote %s: %d quantized weights%s (%s %ld-bit, group %ld, %s; %d in the GPU kernels' layout), %d other "
               "tensors, %.1f s",
               out, n_q, rhead ? (was_tied ? " incl. the head, untied" : " incl. the head") : "", method, bits, group,
               sym ? "sym" : "asym", n_mma, n_plain, secs);
        if (nr) printf("; mean rel. output error RTN %.5f", sr / nr);
        if (ng) printf(", GPTQ %.5f", sg / ng);
        if (gpu) printf("; GPU peak memory %.2f GiB", lq_gptq_cuda_peak_bytes(gpu) / 1073741824.0);
        printf("\n");
    }
done:
#undef CHECK
    if (st != LQ_OK) rc = lq_tool_fail("quantize", st);
    if (have_re) regfree(&re);
    if (meta) json_decref(meta);
    if (qt) json_decref(qt);
    lq_lqq_writer_free(w);
    lq_gptq_cuda_free(gpu);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    free(bufs);
    lq_quantize_results_free(res, n_res);
    lq_calib_data_free(&cd);
    lq_model_free(m);
    lq_checkpoint_free(ck);
    return rc;
}
