/* fuzz_tokenizer.c — libFuzzer target for the tokenizer (libquant/tokenizer.c,
 * tokjson.c): tokenizer.json documents and text both come from the internet.
 *
 * The first input byte picks what the rest is:
 *   0  a tokenizer.json document: load it; when it loads, encode a fixed text
 *      and the document itself, decode the ids (every id must be in range);
 *   1  text for fixed tokenizers built at start-up (byte-level with the GPT-2,
 *      Llama-3 and SmolLM pre-tokenizers; SentencePiece-style with byte
 *      fallback; a pipeline with every Split behavior, NFC, Lowercase, Strip,
 *      Replace, Metaspace and added tokens with lstrip/rstrip/single_word).
 *      Property: for the byte-level ones decode(encode(x)) is x with invalid
 *      UTF-8 replaced by U+FFFD — byte-level BPE loses nothing;
 *   2  "\n"-separated vocabulary strings (a "|" line starts the merges) for
 *      lq_tokjson_build ("gpt2" and "llama", merges derived from scores when
 *      none are given), then load and encode.
 * Errors must come back as statuses with a message; nothing may crash, leak
 * or hang. Run: make fuzz, or ./tests/fuzz/run_fuzz.sh 60 fuzz_tokenizer
 * Seeds: tests/fuzz/corpus/fuzz_tokenizer/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libquant/lq_tokenizer.h"

#define N_FIXED 5
static lq_tokenizer *g_tok[N_FIXED];
static int g_roundtrip[N_FIXED];

static const char k_text[] = "Hello world! It's 2024, we'll see.\n\t 東京 😀 <s></s><|endoftext|> \xe2\x96\x81x";

static const char k_pipeline[] =
    "{\"added_tokens\":["
    "{\"id\":0,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"[T]\",\"special\":false,\"lstrip\":true,\"rstrip\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"ab\",\"special\":false,\"single_word\":true,\"normalized\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Strip\"},"
    "{\"type\":\"Lowercase\"},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s{2,}\"},\"content\":\" \"},"
    "{\"type\":\"Prepend\",\"prepend\":\"_\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},\"behavior\":\"Removed\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[,.]\"},\"behavior\":\"MergedWithPrevious\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[A-Z]\"},\"behavior\":\"MergedWithNext\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{L}+\"},\"behavior\":\"Isolated\",\"invert\":true},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?=a)\"},\"behavior\":\"Contiguous\",\"invert\":false},"
    "{\"type\":\"Digits\",\"individual_digits\":false},"
    "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\",\"split\":true},"
    "{\"type\":\"WhitespaceSplit\"}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
    "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[0],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Metaspace\",\"prepend_scheme\":\"first\"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\"_\",\"start\":1,\"stop\":1}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\",\"vocab\":{\"<s>\":0,\"[T]\":1,"
    "\"ab\":2,\"<unk>\":3,\"a\":4,\"##b\":5,\"a##b\":6,\"ab</w>\":7,\"<0x41>\":8,\"##b</w>\":9,\"a##b</w>\":10},"
    "\"merges\":[\"a ##b\",\"a ##b</w>\"]}}";

/* Byte-level vocabulary: the 256 GPT-2 byte chars plus a few merges. */
static lq_tokenizer *build_bytelevel(const char *pre) {
    static char names[256][4];
    const char *toks[300];
    int n = 0, k = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unsigned cp = keep ? (unsigned)b : 256u + (unsigned)k++;
        if (cp < 0x80) names[b][0] = (char)cp, names[b][1] = 0;
        else names[b][0] = (char)(0xC0 | (cp >> 6)), names[b][1] = (char)(0x80 | (cp & 0x3F)), names[b][2] = 0;
        toks[n++] = names[b];
    }
    const char *extra[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "in", "<|endoftext|>"};
    for (int i = 0; i < 5; i++) toks[n++] = extra[i];
    const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "i n"};
    int32_t types[300];
    for (int i = 0; i < n; i++) types[i] = i == n - 1 ? 3 : 1;
    lq_tokjson_spec sp = {.model = "gpt2", .pre = pre, .n_vocab = (size_t)n, .tokens = toks, .types = types,
                          .n_merges = 4, .merges = merges, .bos_id = n - 1, .eos_id = n - 1, .unk_id = -1};
    json_t *doc = NULL;
    lq_tokenizer *t = NULL;
    if (lq_tokjson_build(&sp, &doc) != LQ_OK || lq_tokenizer_from_json(doc, "bytelevel", &t) != LQ_OK) {
        fprintf(stderr, "fuzz_tokenizer: fixed tokenizer: %s\n", lq_last_error());
        abort();
    }
    json_decref(doc);
    return t;
}

static lq_tokenizer *build_spm(void) {
    static char names[256][8];
    const char *toks[300];
    float scores[300];
    int32_t types[300];
    int n = 0;
    toks[n] = "<unk>", types[n] = 2, scores[n++] = 0;
    toks[n] = "<s>", types[n] = 3, scores[n++] = 0;
    toks[n] = "</s>", types[n] = 3, scores[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        toks[n] = names[b], types[n] = 6, scores[n++] = 0;
    }
    const char *pieces[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "\xe6\x9d\xb1"};
    for (int i = 0; i < 7; i++) toks[n] = pieces[i], types[n] = 1, scores[n] = (float)-i, n++;
    lq_tokjson_spec sp = {.model = "llama", .n_vocab = (size_t)n, .tokens = toks, .scores = scores, .types = types,
                          .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_bos = 1, .add_space_prefix = 1};
    json_t *doc = NULL;
    lq_tokenizer *t = NULL;
    if (lq_tokjson_build(&sp, &doc) != LQ_OK || lq_tokenizer_from_json(doc, "spm", &t) != LQ_OK) {
        fprintf(stderr, "fuzz_tokenizer: fixed tokenizer: %s\n", lq_last_error());
        abort();
    }
    json_decref(doc);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_tok[0] = build_bytelevel(NULL), g_roundtrip[0] = 1;
    g_tok[1] = build_bytelevel("llama-bpe"), g_roundtrip[1] = 1;
    g_tok[2] = build_bytelevel("smollm"), g_roundtrip[2] = 1;
    g_tok[3] = build_spm();
    json_t *doc = json_loads(k_pipeline, 0, NULL);
    if (!doc || lq_tokenizer_from_json(doc, "pipeline", &g_tok[4]) != LQ_OK) {
        fprintf(stderr, "fuzz_tokenizer: pipeline: %s\n", lq_last_error());
        abort();
    }
    json_decref(doc);
    return 0;
}

/* utf-8 with invalid sequences replaced: the expected byte-level round trip */
static size_t lossy(const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], need = 0, lo = 0x80, hi = 0xBF;
        if (c < 0x80) { out[o++] = (uint8_t)c; i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        size_t k = 1;
        if (need)
            for (; k <= need && i + k < n; k++) {
                unsigned d = s[i + k];
                if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
            }
        if (need && k > need) {
            memcpy(out + o, s + i, need + 1), o += need + 1, i += need + 1;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3, i += k;
        }
    }
    return o;
}

static void encode_decode(const lq_tokenizer *t, const char *s, size_t n, int roundtrip) {
    int32_t *ids = NULL;
    size_t ni = 0;
    lq_clear_error();
    lq_status st = lq_tokenizer_encode(t, s, n, 1, &ids, &ni);
    if (st != LQ_OK) {
        /* only "cannot do this text" (NFC) or out of memory are acceptable */
        if (ids || !lq_last_error()[0] || (st != LQ_ERR_UNSUPPORTED && st != LQ_ERR_NOMEM)) __builtin_trap();
        return;
    }
    for (size_t i = 0; i < ni; i++)
        if (ids[i] < 0 || ids[i] >= lq_tokenizer_vocab_size(t) || !lq_tokenizer_token(t, ids[i])) __builtin_trap();
    for (int skip = 0; skip < 2; skip++) {
        char *out = NULL;
        size_t ol = 0;
        if (lq_tokenizer_decode(t, ids, ni, skip, &out, &ol) != LQ_OK || !out || out[ol] != 0) __builtin_trap();
        if (roundtrip && !skip) {
            uint8_t *want = malloc(3 * n + 1);
            if (!want) abort();
            size_t wl = lossy((const uint8_t *)s, n, want);
            if (wl != ol || memcmp(want, out, ol)) __builtin_trap();
            free(want);
        }
        free(out);
    }
    free(ids);
}

static void from_document(const uint8_t *d, size_t n) {
    json_error_t e;
    json_t *doc = json_loadb((const char *)d, n, JSON_ALLOW_NUL, &e);
    if (!doc) return;
    lq_tokenizer *t = NULL;
    lq_clear_error();
    lq_status st = lq_tokenizer_from_json(doc, "fuzz.json", &t);
    json_decref(doc);
    if (st != LQ_OK) {
        if (t || !strstr(lq_last_error(), "fuzz.json")) __builtin_trap();
        return;
    }
    encode_decode(t, k_text, sizeof k_text - 1, 0);
    encode_decode(t, (const char *)d, n < 4096 ? n : 4096, 0);
    lq_tokenizer_free(t);
}

static void from_arrays(const uint8_t *d, size_t n) {
    char *buf = malloc(n + 1);
    if (!buf) abort();
    memcpy(buf, d, n);
    buf[n] = 0;
    const char *toks[512], *merges[512];
    float scores[512];
    size_t nt = 0, nm = 0;
    int in_merges = 0;
    for (char *p = buf, *q; p && nt < 512 && nm < 512; p = q) {
        q = strchr(p, '\n');
        if (q) *q++ = 0;
        if (!strcmp(p, "|")) {
            in_merges = 1;
            continue;
        }
        if (in_merges) merges[nm++] = p;
        else scores[nt] = -(float)nt, toks[nt++] = p;
    }
    for (int model = 0; model < 2 && nt; model++) {
        lq_tokjson_spec sp = {.model = model ? "llama" : "gpt2", .pre = "qwen2", .n_vocab = nt, .tokens = toks,
                              .scores = scores, .n_merges = model ? 0 : nm, .merges = merges, .bos_id = 0,
                              .eos_id = -1, .unk_id = model ? 0 : -1, .add_bos = 1, .add_space_prefix = 1};
        json_t *doc = NULL;
        lq_clear_error();
        if (lq_tokjson_build(&sp, &doc) != LQ_OK) {
            if (doc || !lq_last_error()[0]) __builtin_trap();
            continue;
        }
        lq_tokenizer *t = NULL;
        if (lq_tokenizer_from_json(doc, "arrays", &t) == LQ_OK) {
            encode_decode(t, k_text, sizeof k_text - 1, 0);
            encode_decode(t, buf, n < 2048 ? n : 2048, 0);
            lq_tokenizer_free(t);
        } else if (t) {
            __builtin_trap();
        }
        json_decref(doc);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: from_document(d, n); break;
    case 1:
        for (int i = 0; i < N_FIXED; i++) encode_decode(g_tok[i], (const char *)d, n, g_roundtrip[i]);
        break;
    case 2: from_arrays(d, n); break;
    }
    return 0;
}
