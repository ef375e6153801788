/* fuzz_config.c — libFuzzer target for the HF config.json reader
 * (lq_config_from_json in libquant/model.c), fed through jansson as the
 * loaders do.
 *
 * Why: config.json decides every size the runtime allocates; a value that
 * slips through (0 heads, a head_dim that is odd, kv heads that do not divide
 * the heads) would become a division by zero or a huge allocation later. The
 * target checks the invariants lq_config_from_json promises on success.
 * Run: make fuzz, or ./tests/fuzz/run_fuzz.sh 60 fuzz_config
 * Seeds: tests/fuzz/corpus/fuzz_config/. */
#include <stdint.h>
#include <string.h>

#include "../../libquant/lq_model.h"

#define NAME "fuzz-config.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    /* the HF loaders parse config.json with JSON_REJECT_DUPLICATES */
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) return 0;
    lq_config c;
    lq_clear_error();
    lq_status st = lq_config_from_json(doc, NAME, &c);
    if (st != LQ_OK) {
        if (!strstr(lq_last_error(), NAME)) __builtin_trap();
    } else {
        if (c.dim < 1 || c.hidden_dim < 1 || c.n_layers < 1 || c.vocab_size < 1) __builtin_trap();
        if (c.n_heads < 1 || c.n_kv_heads < 1 || c.n_heads % c.n_kv_heads != 0) __builtin_trap();
        if (c.head_dim < 2 || c.head_dim % 2 != 0) __builtin_trap();
        if (c.max_seq_len < 1 || !(c.rms_eps >= 0)) __builtin_trap();
        if (memchr(c.arch_name, 0, sizeof c.arch_name) == NULL) __builtin_trap();
    }
    json_decref(doc);
    return 0;
}
