/* fuzz_gguf.c — libFuzzer target for the GGUF reader (formats/gguf.c).
 *
 * Why: every count, length and offset in a GGUF comes from the file; the
 * parser must refuse bad ones with an error and never crash, hang or read
 * outside the buffer. Beyond lq_gguf_parse this drives what runs on parsed
 * files: the metadata accessors on every key, dequantization of every tensor,
 * and the mapping to an HF checkpoint (config, tokenizer, q/k permutation).
 * Run: make fuzz (all targets), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -fopenmp \
 *     tests/fuzz/fuzz_gguf.c formats/[a-z]*.c libquant/[a-z]*.c \
 *     $(pkg-config --cflags --libs jansson libpcre2-8 libarchive zlib openblas) -lm \
 *     -o fuzz_gguf && ./fuzz_gguf -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>

#include "../../formats/lq_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lq_gguf *g = NULL;
    if (lq_gguf_parse(data, size, "fuzz.gguf", &g) != LQ_OK) return 0;

    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        int64_t iv;
        double dv;
        int bv;
        char *s = NULL, **sa = NULL;
        float *fa = NULL;
        int32_t *ia = NULL;
        size_t n;
        (void)lq_gguf_get_i64(g, k, &iv);
        (void)lq_gguf_get_f64(g, k, &dv);
        (void)lq_gguf_get_bool(g, k, &bv);
        if (lq_gguf_get_str(g, k, &s) == LQ_OK) free(s);
        if (lq_gguf_get_str_array(g, k, &sa, &n) == LQ_OK) free(sa);
        if (lq_gguf_get_f32_array(g, k, &fa, &n) == LQ_OK) free(fa);
        if (lq_gguf_get_i32_array(g, k, &ia, &n) == LQ_OK) free(ia);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const lq_gguf_tensor *t = &g->tensors[i];
        /* n_bytes lie inside the input, so n_elems is bounded by ~8x its size */
        float *dst = malloc((size_t)t->n_elems * sizeof(float) + 1);
        if (dst) (void)lq_gguf_tensor_to_f32(g, t, dst);
        free(dst);
    }
    lq_checkpoint *ck = NULL;
    if (lq_gguf_to_checkpoint(g, &ck) == LQ_OK) lq_checkpoint_free(ck);
    lq_gguf_free(g);
    return 0;
}
