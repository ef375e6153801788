/* cmd_generate.c — `lq generate MODEL --prompt TEXT -n N [--temp T --top-p P
 * --seed S]`: greedy at temperature 0 (the default), tokens streamed to
 * stdout as they are produced; stops early at the end-of-sequence token. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libquant/lq_eval.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq generate MODEL --prompt TEXT [-n N] [--temp T] [--top-p P] [--seed S]\n"
    "                   [--device cpu|cuda|auto] [--weights f16|bf16|f32] [--compute f32] [--json]\n"
    "  -n N        tokens to generate (default 64)\n"
    "  --temp T    sampling temperature; 0 = greedy (default 0)\n"
    "  --top-p P   nucleus sampling mass (default 1 = off)\n"
    "  --seed S    random seed for sampling (default 0)\n"
    "  --device D  cpu, cuda, or auto (default: cuda when a GPU is present)\n"
    "  --weights W weight dtype on the GPU (default f16)\n"
    "  --compute f32 on the GPU: fp32 activations and KV cache over f16/bf16 weights (slower)\n"
    "  --ignore-eos  keep generating past the end-of-sequence token\n"
    "  --json      print {prompt_ids, ids, text, tokens_per_second} instead of streaming\n";

/* Length of s without a trailing incomplete UTF-8 sequence / U+FFFD that a
 * later token may still complete (byte-fallback tokens arrive byte by byte). */
static size_t stable_len(const char *s, size_t n) {
    if (n >= 3 && (unsigned char)s[n - 3] == 0xEF && (unsigned char)s[n - 2] == 0xBF && (unsigned char)s[n - 1] == 0xBD)
        return n - 3;
    return n;
}

int lq_cmd_generate(int argc, char **argv) {
    const char *prompt = NULL;
    long n_gen = 64, seed = 0;
    double temp = 0, top_p = 1;
    int as_json = 0, ignore_eos = 0, wdtype = -1, cdtype = -1;
    const char *device = "auto";
    static struct option opts[] = {{"prompt", required_argument, 0, 'p'}, {"temp", required_argument, 0, 't'},
                                   {"top-p", required_argument, 0, 'P'},  {"seed", required_argument, 0, 's'},
                                   {"json", no_argument, 0, 'j'},         {"ignore-eos", no_argument, 0, 'E'},
                                   {"help", no_argument, 0, 'h'},         {"device", required_argument, 0, 'D'},
                                   {"weights", required_argument, 0, 'W'}, {"compute", required_argument, 0, 'K'},
                                   {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(U, stdout); return 0;
        case 'p': prompt = optarg; break;
        case 'n':
            if (lq_parse_int(optarg, 0, 1 << 24, &n_gen)) return lq_tool_usage("generate", U, "bad -n '%s'", optarg);
            break;
        case 't':
            if (lq_parse_float(optarg, &temp) || temp < 0) return lq_tool_usage("generate", U, "bad --temp '%s'", optarg);
            break;
        case 'P':
            if (lq_parse_float(optarg, &top_p) || top_p <= 0 || top_p > 1)
                return lq_tool_usage("generate", U, "bad --top-p '%s' (0 < P <= 1)", optarg);
            break;
        case 's':
            if (lq_parse_int(optarg, 0, 0x7fffffffL, &seed)) return lq_tool_usage("generate", U, "bad --seed '%s'", optarg);
            break;
        case 'j': as_json = 1; break;
        case 'E': ignore_eos = 1; break;
        case 'D':
            if (!lq_tool_device_valid(optarg)) return lq_tool_usage("generate", U, "bad --device '%s'", optarg);
            device = optarg;
            break;
        case 'W':
            if ((wdtype = lq_tool_parse_wdtype(optarg)) < -1)
                return lq_tool_usage("generate", U, "bad --weights '%s'", optarg);
            break;
        case 'K':
            if ((cdtype = lq_tool_parse_wdtype(optarg)) < -1)
                return lq_tool_usage("generate", U, "bad --compute '%s'", optarg);
            break;
        default: return lq_tool_usage("generate", U, "bad option");
        }
    }
    if (optind != argc - 1) return lq_tool_usage("generate", U, "expected one MODEL");
    if (!prompt) return lq_tool_usage("generate", U, "--prompt is required");
    const char *mpath = argv[optind];
    lq_model *m = NULL;
    lq_engine *e = NULL;
    float *logits = NULL;
    int32_t *ids = NULL, *all = NULL;
    char *text = NULL;
    size_t n_prompt = 0, printed = 0;
    int rc = 0;
    lq_status st = lq_tool_load_model(mpath, device, &m);
    if (st != LQ_OK) return lq_tool_fail("generate", st);
    if (!m->tok) {
        lq_model_free(m);
        lq_error(LQ_ERR_FORMAT, "%s: checkpoint has no tokenizer", mpath);
        return lq_tool_fail("generate", LQ_ERR_FORMAT);
    }
    st = lq_tokenizer_encode(m->tok, prompt, strlen(prompt), 1, &ids, &n_prompt);
    if (st != LQ_OK) goto fail;
    if (n_prompt == 0) {
        st = lq_error(LQ_ERR_ARG, "the prompt encodes to no tokens and the tokenizer adds no BOS");
        goto fail;
    }
    size_t ctx = n_prompt + (size_t)n_gen;
    if (ctx > (size_t)m->cfg.max_seq_len) {
        st = lq_error(LQ_ERR_ARG, "prompt (%zu tokens) + -n %ld exceeds the model's context of %d", n_prompt, n_gen,
                      m->cfg.max_seq_len);
        goto fail;
    }
    st = lq_tool_engine(m, device, wdtype, cdtype, 1, (int)ctx, &e);
    if (st != LQ_OK) goto fail;
    all = malloc(sizeof(int32_t) * ctx);
    logits = malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    if (!all || !logits) {
        st = lq_error(LQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(all, ids, n_prompt * sizeof(int32_t));
    lq_sampler smp = {(float)temp, (float)top_p, 0};
    lq_sampler_seed(&smp, (uint64_t)seed);
    size_t n_all = n_prompt;
    /* print the prompt as decoded, then stream the continuation */
    size_t tl = 0;
    if ((st = lq_tokenizer_decode(m->tok, all, n_all, 1, &text, &tl)) != LQ_OK) goto fail;
    if (!as_json) {
        fwrite(text, 1, tl, stdout);
        fflush(stdout);
    }
    printed = tl;
    double t0 = lq_now(), t_first = 0;
    int V = m->cfg.vocab_size;
    for (long i = 0; i < n_gen; i++) {
        int pos = i == 0 ? 0 : (int)n_all - 1;
        int T = i == 0 ? (int)n_prompt : 1;
        st = e->step(e, all + pos, 1, T, pos, logits);
        if (st != LQ_OK) goto fail;
        if (i == 0) t_first = lq_now() - t0;
        int32_t next = lq_sample(&smp, logits, V);
        all[n_all++] = next;
        free(text);
        text = NULL;
        if ((st = lq_tokenizer_decode(m->tok, all, n_all, 1, &text, &tl)) != LQ_OK) goto fail;
        size_t sl = stable_len(text, tl);
        if (!as_json && sl > printed) {
            fwrite(text + printed, 1, sl - printed, stdout);
            fflush(stdout);
            printed = sl;
        }
        if (!ignore_eos && next == lq_tokenizer_eos_id(m->tok)) break;
    }
    double secs = lq_now() - t0;
    size_t n_new = n_all - n_prompt;
    double tps = n_new > 1 ? (double)(n_new - 1) / (secs - t_first) : 0;
    if (as_json) {
        json_t *pi = json_array(), *ai = json_array();
        for (size_t i = 0; i < n_prompt; i++) json_array_append_new(pi, json_integer(all[i]));
        for (size_t i = 0; i < n_all; i++) json_array_append_new(ai, json_integer(all[i]));
        json_t *o = json_pack("{s:o, s:o, s:s, s:I, s:f, s:f}", "prompt_ids", pi, "ids", ai, "text", text,
                              "generated_tokens", (json_int_t)n_new, "prefill_seconds", t_first,
                              "decode_tokens_per_second", tps);
        char *s = json_dumps(o, JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        if (printed < tl) fwrite(text + printed, 1, tl - printed, stdout);
        printf("\n");
        fprintf(stderr, "[generate] %s: %zu prompt tokens, %zu generated; prefill %.3f s, decode %.1f tok/s\n",
                e->desc, n_prompt, n_new, t_first, tps);
    }
    goto done;
fail:
    rc = lq_tool_fail("generate", st);
done:
    free(ids);
    free(all);
    free(text);
    free(logits);
    lq_engine_free(e);
    lq_model_free(m);
    return rc;
}
