/* lq.c — the `lq` command: dispatches to subcommands (tools/cmd_*.c).
 * Run `lq --help` for the list, `lq <command> --help` for each. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lq_tool.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} lq_command;

static const lq_command commands[] = {
    {"inspect", lq_cmd_inspect, "print architecture, tensors, dtypes, shapes and parameter count"},
    {"convert", lq_cmd_convert, "write any supported checkpoint as a Hugging Face directory"},
    {"ppl", lq_cmd_ppl, "perplexity of a model on a text file"},
    {"generate", lq_cmd_generate, "generate text from a prompt (greedy or sampled)"},
    {"quantize", lq_cmd_quantize, "W4A16 (2..8-bit) weight quantization, RTN or GPTQ, into a packed .lqq file"},
    {"eval", lq_cmd_eval, "compare a quantized model with its base: PPL, KL divergence, top-1 agreement"},
    {"bench", lq_cmd_bench, "benchmark kernels (vs cuBLAS fp16) or a whole model (prefill/decode tok/s)"},
    {"synth", lq_cmd_synth, "write a random-weight checkpoint with a real model's shapes (speed work only)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "lq — convert, quantize, run and evaluate Llama-family checkpoints\n\n"
            "usage: lq <command> [options]   (lq <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\ninputs: a Hugging Face directory (config.json + model.safetensors[.index.json] + tokenizer.json),\n"
            "a .safetensors file, a .gguf file, a llama2.c .bin (tokenizer beside it), a packed .lqq from lq quantize,\n"
            "or a .tar/.tar.gz/.tar.zst/.zip of these.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lq 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int lq_tool_fail(const char *cmd, lq_status st) {
    fprintf(stderr, "lq %s: error: %s (%s)\n", cmd, lq_last_error(), lq_status_name(st));
    return 1;
}

int lq_tool_usage(const char *cmd, const char *u, const char *fmt, ...) {
    fprintf(stderr, "lq %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", u);
    return 2;
}

int lq_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return -1;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int lq_parse_float(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e) return -1;
    *out = v;
    return 0;
}

lq_status lq_tool_read_text(const char *path, char **out, size_t *n) {
    if (strcmp(path, "-") != 0) return lq_read_file(path, out, n);
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    if (!b) return lq_error(LQ_ERR_NOMEM, "out of memory");
    size_t r;
    while ((r = fread(b + len, 1, cap - len - 1, stdin)) > 0) {
        len += r;
        if (cap - len < 2) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return lq_error(LQ_ERR_NOMEM, "out of memory");
            }
            b = nb;
            cap *= 2;
        }
    }
    b[len] = 0;
    *out = b;
    *n = len;
    return LQ_OK;
}

void lq_print_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') printf("\\n");
        else if (*p == '\t') printf("\\t");
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}
