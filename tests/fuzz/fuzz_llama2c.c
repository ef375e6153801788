/* fuzz_llama2c.c — libFuzzer target for the llama2.c checkpoint loader
 * (lq_llama2c_load in formats/llama2c.c).
 *
 * Why: the 7-int header decides every size; the loader must check them (and
 * the file size they imply) before touching data. The loader takes a path, so
 * each input is written to a file in a private temporary directory (no
 * tokenizer.bin beside it, so only the checkpoint is parsed). On success every
 * tensor is read in full.
 * Run: make fuzz, or ./tests/fuzz/run_fuzz.sh 60 fuzz_llama2c
 * Seeds: tests/fuzz/corpus/fuzz_llama2c/ (tiny valid checkpoints). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../formats/lq_formats.h"

static char g_dir[512], g_path[600];

static void cleanup(void) {
    if (g_path[0]) unlink(g_path);
    if (g_dir[0]) rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lq-fuzz-llama2c-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g_path, sizeof g_path, "%s/model.bin", g_dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    lq_checkpoint *ck = NULL;
    lq_clear_error();
    lq_status st = lq_llama2c_load(g_path, NULL, &ck);
    if (st != LQ_OK) {
        if (ck || !strstr(lq_last_error(), g_path)) __builtin_trap();
        return 0;
    }
    volatile float sink = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        const lq_tensor_info *t = &ck->tensors[i];
        if (t->dtype != LQ_F32 || t->n_bytes != (size_t)lq_tensor_numel(t) * 4) __builtin_trap();
        const float *p = t->data;
        for (int64_t k = 0; k < lq_tensor_numel(t); k++) sink += p[k];
    }
    (void)sink;
    if (!ck->config || !lq_checkpoint_find(ck, "model.embed_tokens.weight")) __builtin_trap();
    lq_checkpoint_free(ck);
    return 0;
}
