/* cmd_convert.c — `lq convert IN OUT_DIR [--dtype f16|bf16|f32]`: writes the
 * Hugging Face layout (config.json, model.safetensors, tokenizer.json) from
 * any supported input. Each file is written atomically (temp + fsync + rename). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../formats/lq_formats.h"
#include "../libquant/lq_model.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq convert IN OUT_DIR [--dtype f16|bf16|f32] [--json]\n"
    "  IN         HF directory, .safetensors, .gguf, llama2.c .bin, or an archive of these\n"
    "  OUT_DIR    created if missing; receives config.json, model.safetensors, tokenizer.json\n"
    "  --dtype    floating-point tensors are written in this type (default f16)\n"
    "  --json     print a JSON summary on stdout\n";

int lq_cmd_convert(int argc, char **argv) {
    int dtype = LQ_F16, as_json = 0;
    static struct option opts[] = {{"dtype", required_argument, 0, 'd'}, {"json", no_argument, 0, 'j'},
                                   {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(U, stdout);
            return 0;
        } else if (c == 'j') as_json = 1;
        else if (c == 'd') {
            if (!strcmp(optarg, "f16") || !strcmp(optarg, "fp16") || !strcmp(optarg, "float16")) dtype = LQ_F16;
            else if (!strcmp(optarg, "bf16") || !strcmp(optarg, "bfloat16")) dtype = LQ_BF16;
            else if (!strcmp(optarg, "f32") || !strcmp(optarg, "fp32") || !strcmp(optarg, "float32")) dtype = LQ_F32;
            else return lq_tool_usage("convert", U, "unknown --dtype '%s'", optarg);
        } else return lq_tool_usage("convert", U, "bad option");
    }
    if (optind != argc - 2) return lq_tool_usage("convert", U, "expected IN and OUT_DIR");
    const char *in = argv[optind], *out = argv[optind + 1];
    double t0 = lq_now();
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(in, &ck);
    if (st != LQ_OK) return lq_tool_fail("convert", st);
    /* Refuse what the runtime cannot run before writing anything. */
    lq_config cfg;
    st = lq_config_from_json(ck->config, in, &cfg);
    if (st == LQ_OK) st = lq_hf_dir_write(ck, out, dtype);
    if (st != LQ_OK) {
        lq_checkpoint_free(ck);
        return lq_tool_fail("convert", st);
    }
    int64_t params = 0;
    for (int i = 0; i < ck->n_tensors; i++) params += lq_tensor_numel(&ck->tensors[i]);
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:b, s:f}", "input", in, "format", ck->format, "output",
                              out, "dtype", lq_dtype_name((lq_dtype)dtype), "n_params", (json_int_t)params,
                              "n_tensors", ck->n_tensors, "tokenizer", ck->tokenizer != NULL, "seconds",
                              lq_now() - t0);
        char *s = json_dumps(o, JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "lq convert: %s (%s, %s) -> %s: %d tensors, %.2f M parameters as %s%s, %.1f s\n", in,
                ck->format, cfg.arch_name, out, ck->n_tensors, params / 1e6, lq_dtype_name((lq_dtype)dtype),
                ck->tokenizer ? ", tokenizer.json" : ", no tokenizer", lq_now() - t0);
    }
    lq_checkpoint_free(ck);
    return 0;
}
