/* lq_tokenizer.h — Hugging Face tokenizer.json, encode and decode, in C.
 *
 * Supports the two BPE families real Llama-type checkpoints ship:
 *  - byte-level BPE with a regex pre-tokenizer (GPT-2, Llama-3, Qwen2, SmolLM):
 *    the pre-tokenizer regex is run with PCRE2 exactly as tokenizer.json gives it;
 *  - SentencePiece-style BPE with byte fallback (Llama-2, Mistral, the
 *    stories260K tokenizer): "▁" normalizer, <0xXX> byte tokens.
 * Added/special tokens are matched before pre-tokenization; the post-processor
 * (TemplateProcessing, ByteLevel) decides whether BOS is added.
 *
 * lq_tokjson_build synthesizes a tokenizer.json document from vocabulary
 * arrays (GGUF tokenizer.ggml.* metadata, llama2.c tokenizer.bin), so every
 * input format ends in the same tokenizer code.
 * Tested by tests/test_tokenizer.c against ids produced by HF tokenizers. */
#ifndef LQ_TOKENIZER_H
#define LQ_TOKENIZER_H

#include <jansson.h>

#include "lq_common.h"

typedef struct lq_tokenizer lq_tokenizer;

/* Build from a parsed tokenizer.json document; `source` names it in errors. */
lq_status lq_tokenizer_from_json(const json_t *doc, const char *source, lq_tokenizer **out);
/* Load a tokenizer.json file. */
lq_status lq_tokenizer_load(const char *path, lq_tokenizer **out);
void lq_tokenizer_free(lq_tokenizer *tok); /* NULL is a no-op */

int32_t lq_tokenizer_vocab_size(const lq_tokenizer *tok);
/* -1 when the tokenizer has none. */
int32_t lq_tokenizer_bos_id(const lq_tokenizer *tok);
int32_t lq_tokenizer_eos_id(const lq_tokenizer *tok);
/* tokenizer.json has no bos/eos field: the getters above guess them (the
 * post-processor's first/last special token, else well-known names such as
 * "<s>" / "</s>", "<|endoftext|>"). A loader that knows better (config.json's
 * bos_token_id, GGUF's tokenizer.ggml.bos_token_id) sets them here; -1 = none. */
lq_status lq_tokenizer_set_bos_eos(lq_tokenizer *tok, int32_t bos_id, int32_t eos_id);

/* Encode len bytes of UTF-8 text. add_special = 1 applies the post-processor
 * (e.g. prepends BOS for Llama-2 style tokenizers) as HF's
 * tokenizer(text) does by default. *ids is malloc'd (caller frees).
 * Invalid UTF-8 is not an error: each maximal invalid subsequence is read as
 * U+FFFD (Python's bytes.decode("utf-8", "replace")), then encoded as HF would
 * encode that string. Normalizers lq only implements where they are the
 * identity (NFC beyond common scripts, NFD/NFKC/NFKD beyond ASCII) make text
 * they would change fail with LQ_ERR_UNSUPPORTED. Thread-safe: scratch is
 * per call. */
lq_status lq_tokenizer_encode(const lq_tokenizer *tok, const char *text, size_t len,
                              int add_special, int32_t **ids, size_t *n_ids);

/* Decode ids to UTF-8 (HF decode with skip_special_tokens=skip_special).
 * *out is malloc'd and NUL-terminated. An id outside the vocabulary is
 * LQ_ERR_ARG naming it and its position (HF would silently drop it). */
lq_status lq_tokenizer_decode(const lq_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              int skip_special, char **out, size_t *out_len);

/* The raw vocabulary string of one id (NULL when out of range). */
const char *lq_tokenizer_token(const lq_tokenizer *tok, int32_t id);

/* ---- synthesizing tokenizer.json from vocabulary arrays ---- */
typedef struct {
    const char *model;        /* "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE) */
    const char *pre;          /* GGUF tokenizer.ggml.pre ("smollm", "llama-bpe", "qwen2",
                                 "default", ...) or NULL; selects the pre-tokenizer regex */
    size_t n_vocab;
    const char *const *tokens;   /* n_vocab strings, as GGUF stores them */
    const float *scores;         /* n_vocab or NULL */
    const int32_t *types;        /* n_vocab GGUF token types (1 normal, 2 unknown,
                                    3 control, 4 user-defined, 5 unused, 6 byte) or NULL */
    size_t n_merges;
    const char *const *merges;   /* "a b" strings; when 0 for "llama", merges are
                                    derived from scores as HF's SentencePiece converter does */
    int32_t bos_id, eos_id, unk_id; /* -1 when absent */
    int add_bos, add_eos;
    int add_space_prefix;        /* SentencePiece dummy prefix ("▁" prepended) */
} lq_tokjson_spec;

/* Fills *out with a new tokenizer.json document (caller json_decref's). */
lq_status lq_tokjson_build(const lq_tokjson_spec *spec, json_t **out);

#endif
