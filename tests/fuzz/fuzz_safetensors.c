/* fuzz_safetensors.c — libFuzzer target for the safetensors parser
 * (lq_safetensors_parse in formats/safetensors.c).
 *
 * Why: the 8-byte header length, the JSON header and every shape/offset in it
 * come from the file; the parser must refuse bad ones with a message that
 * names the file, and never crash or read outside the buffer. On accepted
 * inputs every tensor is read in full (converted to f32 where the dtype
 * allows), so a pointer the parser got wrong shows up under ASan.
 * Run: make fuzz (all targets, see run_fuzz.sh), or
 *   ./tests/fuzz/run_fuzz.sh 60 fuzz_safetensors
 * Seeds: tests/fuzz/corpus/fuzz_safetensors/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../formats/lq_formats.h"

#define NAME "fuzz.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_checkpoint *ck = NULL;
    if (lq_checkpoint_new(&ck, NAME, "safetensors") != LQ_OK) return 0;
    lq_clear_error();
    lq_status st = lq_safetensors_parse(ck, data, size, NAME);
    if (st != LQ_OK) {
        /* every refusal says which file */
        if (!strstr(lq_last_error(), NAME)) __builtin_trap();
    } else {
        volatile uint8_t sink = 0;
        for (int i = 0; i < ck->n_tensors; i++) {
            const lq_tensor_info *t = &ck->tensors[i];
            /* the tensor lies inside the data area */
            const uint8_t *p = t->data;
            if (t->n_bytes && (p < data || p + t->n_bytes > data + size)) __builtin_trap();
            for (size_t k = 0; k < t->n_bytes; k++) sink ^= p[k];
            if (lq_checkpoint_find(ck, t->name) != t) __builtin_trap();
            float *f = NULL;
            if (lq_tensor_to_f32(t, lq_tensor_numel(t), &f) == LQ_OK) {
                if (lq_tensor_numel(t) > 0) sink ^= (uint8_t)(f[0] != f[0]);
                free(f);
            }
        }
        (void)sink;
    }
    lq_checkpoint_free(ck);
    return 0;
}
