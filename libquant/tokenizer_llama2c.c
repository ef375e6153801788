/* tokenizer_llama2c.c — llama2.c's tokenizer.bin as a tokenizer.json document
 * (lq_llama2c_tokenizer_json, declared in formats/lq_formats.h).
 *
 * Format (llama2.c tokenizer.py export / run.c build_tokenizer), little-endian:
 *   int32 max_token_length
 *   vocab_size times: float32 score, int32 len, len bytes of UTF-8 (no NUL)
 * The count is not stored: it is the model's vocab_size. The exporter wrote
 * SentencePiece's "▁" as " " and BOS/EOS (ids 1, 2) as "\n<s>\n" and
 * "\n</s>\n"; we undo both so the vocabulary is SentencePiece's again, then
 * lq_tokjson_build makes the same tokenizer.json HF's converter makes (merges
 * derived from the scores; BOS added; dummy-prefix "▁").
 * Every field is checked (truncation, negative or over-long lengths, NaN
 * scores, invalid UTF-8, trailing bytes): LQ_ERR_FORMAT naming the file, the
 * token index and the field.
 * Tested by tests/test_tokenizer.c (ids equal stories260K's tokenizer.json). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/lq_formats.h"
#include "lq_tokenizer.h"

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

lq_status lq_llama2c_tokenizer_json(const char *tok_path, int32_t vocab_size, json_t **out) {
    lq_status st = LQ_OK;
    lq_mmap m = {0};
    char **tokens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    *out = NULL;
    LQ_RETURN_IF(!tok_path, LQ_ERR_ARG, "lq_llama2c_tokenizer_json: no path");
    LQ_RETURN_IF(vocab_size < 3 || vocab_size > (1 << 24), LQ_ERR_ARG,
                 "%s: vocab_size %d is not a plausible llama2.c vocabulary (3 .. 16M)", tok_path, vocab_size);
    LQ_TRY(lq_mmap_open(tok_path, &m));
    const unsigned char *p = m.data;
    size_t n = m.n_bytes, off = 4;
    LQ_FAIL_IF(n < 4, LQ_ERR_FORMAT, "%s: %zu bytes: too short for the max_token_length header", tok_path, n);
    int32_t max_len = (int32_t)rd_u32(p);
    LQ_FAIL_IF(max_len <= 0 || max_len > (1 << 20), LQ_ERR_FORMAT, "%s: field max_token_length: %d is not plausible",
               tok_path, max_len);
    tokens = calloc((size_t)vocab_size, sizeof *tokens);
    scores = calloc((size_t)vocab_size, sizeof *scores);
    types = calloc((size_t)vocab_size, sizeof *types);
    LQ_FAIL_IF(!tokens || !scores || !types, LQ_ERR_NOMEM, "%s: out of memory for %d tokens", tok_path, vocab_size);
    for (int32_t i = 0; i < vocab_size; i++) {
        LQ_FAIL_IF(n - off < 8, LQ_ERR_FORMAT,
                   "%s: token %d: file ends at byte %zu inside the score/len fields (truncated, or vocab_size %d "
                   "too large?)",
                   tok_path, i, n, vocab_size);
        uint32_t sb = rd_u32(p + off);
        memcpy(&scores[i], &sb, 4);
        int32_t len = (int32_t)rd_u32(p + off + 4);
        off += 8;
        LQ_FAIL_IF(isnan(scores[i]), LQ_ERR_FORMAT, "%s: token %d: field score is NaN", tok_path, i);
        LQ_FAIL_IF(len <= 0 || len > max_len, LQ_ERR_FORMAT,
                   "%s: token %d: field len %d outside 1..max_token_length (%d)", tok_path, i, len, max_len);
        LQ_FAIL_IF(n - off < (size_t)len, LQ_ERR_FORMAT,
                   "%s: token %d: field piece needs %d bytes at offset %zu, file has %zu", tok_path, i, len, off, n);
        const char *s = (const char *)p + off;
        size_t sl = (size_t)len;
        off += sl;
        /* BOS/EOS were exported as "\n<s>\n" / "\n</s>\n" */
        if (sl >= 2 && s[0] == '\n' && s[sl - 1] == '\n' && (i == 1 || i == 2)) s++, sl -= 2;
        /* " " back to "▁" (3 bytes each) */
        size_t spaces = 0;
        for (size_t k = 0; k < sl; k++) spaces += s[k] == ' ';
        char *t = malloc(sl + 2 * spaces + 1);
        LQ_FAIL_IF(!t, LQ_ERR_NOMEM, "%s: out of memory", tok_path);
        tokens[i] = t;
        size_t w = 0;
        for (size_t k = 0; k < sl; k++) {
            if (s[k] == ' ') memcpy(t + w, "\xE2\x96\x81", 3), w += 3;
            else t[w++] = s[k];
        }
        t[w] = 0;
        LQ_FAIL_IF(memchr(t, 0, w), LQ_ERR_FORMAT, "%s: token %d: field piece contains a NUL byte", tok_path, i);
        json_t *chk = json_stringn(t, w);
        LQ_FAIL_IF(!chk, LQ_ERR_FORMAT, "%s: token %d: field piece is not valid UTF-8", tok_path, i);
        json_decref(chk);
        unsigned b;
        int is_byte = w == 6 && !memcmp(t, "<0x", 3) && t[5] == '>' && sscanf(t + 3, "%2x", &b) == 1;
        types[i] = i == 0 ? 2 : (i == 1 || i == 2) ? 3 : is_byte ? 6 : 1;
    }
    LQ_FAIL_IF(off != n, LQ_ERR_FORMAT,
               "%s: %zu trailing bytes after the %d tokens (vocab_size mismatch with the model?)", tok_path, n - off,
               vocab_size);
    lq_tokjson_spec spec = {
        .model = "llama",
        .pre = NULL,
        .n_vocab = (size_t)vocab_size,
        .tokens = (const char *const *)tokens,
        .scores = scores,
        .types = types,
        .n_merges = 0,
        .merges = NULL,
        .bos_id = 1,
        .eos_id = 2,
        .unk_id = 0,
        .add_bos = 1,
        .add_eos = 0,
        .add_space_prefix = 1,
    };
    st = lq_tokjson_build(&spec, out);
    if (st != LQ_OK) lq_error_prefix(st, "%s", tok_path);
fail:
    if (tokens)
        for (int32_t i = 0; i < vocab_size; i++) free(tokens[i]);
    free(tokens);
    free(scores);
    free(types);
    lq_mmap_close(&m);
    return st;
}
