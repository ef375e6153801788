/* fuzz_archive.c — libFuzzer target for archive extraction
 * (lq_archive_load in formats/archive.c: libarchive + lq's path checks).
 *
 * Why: a checkpoint archive from the internet decides the names of the files
 * lq creates. Entries with absolute paths, ".." or links must be refused and
 * nothing may be written outside the private extraction directory. Each input
 * is written to a file in a private directory that is also $TMPDIR for the
 * extraction; after every run that directory must hold the input file alone
 * (anything else escaped the extraction directory or was not cleaned up).
 * Run: make fuzz, or ./tests/fuzz/run_fuzz.sh 60 fuzz_archive
 * Seeds: tests/fuzz/corpus/fuzz_archive/ (a tiny checkpoint as .tar). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../formats/lq_formats.h"

static char g_dir[512], g_path[600];

static void cleanup(void) {
    if (g_dir[0]) lq_remove_tree(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lq-fuzz-archive-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g_path, sizeof g_path, "%s/in.bin", g_dir);
    setenv("TMPDIR", g_dir, 1); /* extraction goes to g_dir/lq-archive-XXXXXX */
    setenv("LQ_ARCHIVE_MAX_BYTES", "16777216", 1); /* bound decompression bombs */
    atexit(cleanup);
    return 0;
}

static int only_input_left(void) {
    DIR *d = opendir(g_dir);
    if (!d) return 0;
    int ok = 1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "in.bin")) {
            fprintf(stderr, "left behind in %s: %s\n", g_dir, de->d_name);
            ok = 0;
        }
    closedir(d);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    lq_checkpoint *ck = NULL;
    lq_clear_error();
    lq_status st = lq_archive_load(g_path, &ck);
    if (st != LQ_OK) {
        if (ck || !strstr(lq_last_error(), g_path)) {
            fprintf(stderr, "error without the archive name: %s\n", lq_last_error());
            __builtin_trap();
        }
    } else {
        volatile uint8_t sink = 0;
        for (int i = 0; i < ck->n_tensors; i++) {
            const uint8_t *p = ck->tensors[i].data;
            for (size_t k = 0; k < ck->tensors[i].n_bytes; k++) sink ^= p[k];
        }
        (void)sink;
        lq_checkpoint_free(ck);
    }
    if (!only_input_left()) __builtin_trap();
    return 0;
}
