/* cmd_synth.c — `lq synth --preset NAME OUT_DIR [--dtype f16|bf16|f32] [--seed S]`:
 * a random-weight checkpoint with a real model's shapes, for speed work only. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../libquant/lq_dtype.h"
#include "../libquant/lq_synth.h"
#include "lq_tool.h"

static void usage(FILE *f) {
    fprintf(f, "usage: lq synth --preset NAME OUT_DIR [--dtype f16|bf16|f32] [--seed S]\n"
               "Writes config.json + model.safetensors with RANDOM weights and real shapes.\n"
               "For speed measurements only: perplexity or accuracy of these weights means nothing.\n"
               "presets:\n");
    for (int i = 0; lq_synth_preset_at(i); i++) {
        const lq_synth_preset *p = lq_synth_preset_at(i);
        fprintf(f, "  %-14s %-18s dim %d, ffn %d, %d layers, %d/%d heads, vocab %d, %.2f B params\n", p->name, p->arch,
                p->dim, p->hidden, p->layers, p->heads, p->kv_heads, p->vocab, lq_synth_n_params(p) / 1e9);
    }
}

static void progress(void *ud, int done, int total) {
    (void)ud;
    if (done == total || done % 16 == 0) fprintf(stderr, "\r[synth] tensors %d/%d", done, total);
    if (done == total) fputc('\n', stderr);
}

int lq_cmd_synth(int argc, char **argv) {
    const char *preset = NULL;
    int dtype = LQ_F16;
    long seed = 0;
    static struct option opts[] = {{"preset", required_argument, 0, 'p'}, {"dtype", required_argument, 0, 'd'},
                                   {"seed", required_argument, 0, 's'},   {"help", no_argument, 0, 'h'},
                                   {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c == 'p') preset = optarg;
        else if (c == 'd') {
            dtype = lq_tool_parse_wdtype(optarg);
            if (dtype < 0) {
                usage(stderr);
                fprintf(stderr, "lq synth: unknown --dtype '%s'\n", optarg);
                return 2;
            }
        } else if (c == 's') {
            if (lq_parse_int(optarg, 0, 0x7fffffffL, &seed)) {
                fprintf(stderr, "lq synth: bad --seed '%s'\n", optarg);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!preset || optind != argc - 1) {
        usage(stderr);
        fprintf(stderr, "lq synth: expected --preset NAME and OUT_DIR\n");
        return 2;
    }
    const lq_synth_preset *p = lq_synth_find(preset);
    if (!p) {
        usage(stderr);
        fprintf(stderr, "lq synth: unknown preset '%s'\n", preset);
        return 2;
    }
    fprintf(stderr, "[synth] %s: %.2f B parameters of RANDOM weights (speed work only, never accuracy) -> %s\n",
            p->name, lq_synth_n_params(p) / 1e9, argv[optind]);
    double t0 = lq_now();
    lq_status st = lq_synth_write(p, argv[optind], dtype, (uint64_t)seed, progress, NULL);
    if (st != LQ_OK) return lq_tool_fail("synth", st);
    fprintf(stderr, "[synth] done in %.1f s\n", lq_now() - t0);
    return 0;
}
