/* fuzz_lqq.c — libFuzzer target for the .lqq reader (formats/lqq.c) and the
 * reference unpacker of the kernels' layout (libquant/w4a16.c).
 *
 * Why: every size, offset, shape and recipe field of a packed model file comes
 * from the file, and the "lq-mma-w4" packing adds a layout check (zero points,
 * padding) before anything is allocated from the recipe's shape. The reader
 * must refuse bad files with an error and never crash, hang or read outside
 * the mapping. The fuzzing build ignores checksum mismatches
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, formats/lqq.c) so mutations reach
 * the table, the metadata and the unpackers; this target then opens the file,
 * unpacks and dequantizes every quantized weight, and loads it as a checkpoint.
 * The reader maps a path, so each input is written to one temporary file.
 * Seeds (tests/fuzz/corpus/fuzz_lqq): tiny files with a 4-bit mma weight (sym
 * and asym, act-order g_idx) and a 3-bit bit-stream weight.
 * Run: make fuzz (all targets), or ./tests/fuzz/run_fuzz.sh 60 fuzz_lqq */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../formats/lq_lqq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_lqq.%d.lqq", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    if (w != size) return 0;
    lq_lqq *q = NULL;
    if (lq_lqq_open(path, 0, &q) == LQ_OK) {
        for (int i = 0; i < lq_lqq_n_qweights(q); i++) {
            lq_qweight qw;
            if (lq_lqq_get_qweight(q, lq_lqq_qweight_name(q, i), &qw) != LQ_OK) continue;
            /* the recipe's shape was checked against the component tensors, so this is bounded by the input */
            float *dst = malloc((size_t)qw.rows * (size_t)qw.cols * sizeof(float) + 1);
            if (dst) lq_dequant_cpu(&qw, dst);
            free(dst);
            lq_qweight_free(&qw);
        }
        lq_lqq_close(q);
    }
    lq_checkpoint *ck = NULL;
    if (lq_lqq_load(path, &ck) == LQ_OK) lq_checkpoint_free(ck);
    return 0;
}
