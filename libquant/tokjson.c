/* tokjson.c — lq_tokjson_build: a complete Hugging Face tokenizer.json
 * document from vocabulary arrays (GGUF tokenizer.ggml.*, llama2.c's
 * tokenizer.bin), so every checkpoint format ends in the same tokenizer code
 * (tokenizer.c) and `lq convert` can write a tokenizer.json HF loads.
 *
 * What is produced (the structure of the tokenizer.json files the original
 * models ship, so ids match HF's):
 *  - "gpt2" (byte-level BPE): model BPE with the given vocab and merges,
 *    pre-tokenizer chosen by `pre` the way llama.cpp maps tokenizer.ggml.pre
 *    to a regex: default/gpt2 -> ByteLevel(use_regex); smollm/starcoder/refact
 *    -> [Digits(individual), ByteLevel(use_regex)] (SmolLM2's file);
 *    llama-bpe/llama3/dbrx/smaug-bpe -> [Split(Llama-3 regex), ByteLevel] with
 *    ignore_merges (Llama-3's file); qwen2 -> [Split(Qwen2 regex), ByteLevel].
 *    Qwen2's own file also has an NFC normalizer; like llama.cpp we leave it
 *    out (identical ids on NFC text, which is nearly all text). ByteLevel
 *    decoder; TemplateProcessing only when add_bos/add_eos.
 *  - "llama" (SentencePiece BPE): byte_fallback, fuse_unk, normalizer
 *    [Prepend("▁") when add_space_prefix, Replace(" " -> "▁")], no
 *    pre-tokenizer, decoder [Replace("▁" -> " "), ByteFallback, Fuse,
 *    Strip(" ", 1, 0)] — exactly stories260K's and Llama-2's tokenizer.json.
 *    Without merges they are derived from the scores as transformers'
 *    SentencePieceExtractor does (see derive_merges); this reproduces the
 *    stories260K tokenizer.json merge list exactly.
 * Token types: 2 (unknown) and 3 (control) become special added tokens, 4
 * (user-defined) non-special added tokens (all normalized=false: matched in
 * the raw text, as llama.cpp does); 6 (byte, "<0xXX>") stay vocab entries.
 * A token string that repeats keeps its first id in the vocab.
 * Tested by tests/test_tokenizer.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lq_tokenizer.h"

static const char k_llama3_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_qwen2_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
#define SPM_SPACE "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

/* Builders that record an allocation failure in *bad instead of returning
 * one, so the document reads top to bottom; checked once at the end. */
static json_t *jchk(json_t *v, int *bad) {
    if (!v) *bad = 1;
    return v;
}
/* both steal v, also on failure (jansson's *_new semantics) */
static void jset(json_t *o, const char *k, json_t *v, int *bad) {
    if (!v || json_object_set_new(o, k, v)) *bad = 1;
}
static void jpush(json_t *a, json_t *v, int *bad) {
    if (!v || json_array_append_new(a, v)) *bad = 1;
}
static json_t *jtyped(const char *type, int *bad) {
    json_t *o = jchk(json_object(), bad);
    jset(o, "type", json_string(type), bad);
    return o;
}
static json_t *jpattern_string(const char *s, int *bad) {
    json_t *o = jchk(json_object(), bad);
    jset(o, "String", json_string(s), bad);
    return o;
}
static json_t *jbytelevel(int add_prefix_space, int trim_offsets, int use_regex, int *bad) {
    json_t *o = jtyped("ByteLevel", bad);
    jset(o, "add_prefix_space", json_boolean(add_prefix_space), bad);
    jset(o, "trim_offsets", json_boolean(trim_offsets), bad);
    jset(o, "use_regex", json_boolean(use_regex), bad);
    return o;
}
static json_t *jsplit(const char *regex, int *bad) {
    json_t *o = jtyped("Split", bad), *p = jchk(json_object(), bad);
    jset(p, "Regex", json_string(regex), bad);
    jset(o, "pattern", p, bad);
    jset(o, "behavior", json_string("Isolated"), bad);
    jset(o, "invert", json_false(), bad);
    return o;
}
static json_t *jseq(const char *type, const char *key, json_t *a, json_t *b, int *bad) {
    json_t *o = jtyped(type, bad), *arr = jchk(json_array(), bad);
    if (a) jpush(arr, a, bad);
    if (b) jpush(arr, b, bad);
    jset(o, key, arr, bad);
    return o;
}

/* The pre-tokenizer for a byte-level vocabulary, by tokenizer.ggml.pre. */
static lq_status gpt2_pre(const char *pre, json_t **out, int *ignore_merges, int *bad) {
    *ignore_merges = 0;
    if (!pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        *out = jbytelevel(0, 1, 1, bad);
    } else if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact")) {
        json_t *d = jtyped("Digits", bad);
        jset(d, "individual_digits", json_true(), bad);
        *out = jseq("Sequence", "pretokenizers", d, jbytelevel(0, 1, 1, bad), bad);
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") ||
               !strcmp(pre, "dbrx") || !strcmp(pre, "smaug-bpe")) {
        *out = jseq("Sequence", "pretokenizers", jsplit(k_llama3_re, bad), jbytelevel(0, 1, 0, bad), bad);
        *ignore_merges = 1;
    } else if (!strcmp(pre, "qwen2")) {
        *out = jseq("Sequence", "pretokenizers", jsplit(k_qwen2_re, bad), jbytelevel(0, 1, 0, bad), bad);
    } else {
        return lq_error(LQ_ERR_UNSUPPORTED,
                        "tokenizer.ggml.pre \"%s\": pre-tokenizer not supported (known: default, gpt2, smollm, "
                        "starcoder, refact, llama-bpe, llama3, dbrx, smaug-bpe, qwen2)",
                        pre);
    }
    return LQ_OK;
}

/* TemplateProcessing for add_bos/add_eos; NULL (no post-processor) when
 * neither applies. HF's Llama files use "<s> $A <s> $B" for pairs. */
static json_t *template_post(const lq_tokjson_spec *sp, int *bad) {
    int bos = sp->add_bos && sp->bos_id >= 0, eos = sp->add_eos && sp->eos_id >= 0;
    if (!bos && !eos) return NULL;
    json_t *o = jtyped("TemplateProcessing", bad), *single = jchk(json_array(), bad), *pair = jchk(json_array(), bad),
           *specials = jchk(json_object(), bad);
    for (int part = 0; part < 2; part++) {
        json_t *arr = part == 0 ? single : pair;
        for (int seq = 0; seq < (part == 0 ? 1 : 2); seq++) {
            for (int k = 0; k < 3; k++) {
                if ((k == 0 && !bos) || (k == 2 && !eos)) continue;
                json_t *item = jchk(json_object(), bad), *in = jchk(json_object(), bad);
                if (k == 1) {
                    jset(in, "id", json_string(seq == 0 ? "A" : "B"), bad);
                    jset(in, "type_id", json_integer(seq), bad);
                    jset(item, "Sequence", in, bad);
                } else {
                    jset(in, "id", json_string(sp->tokens[k == 0 ? sp->bos_id : sp->eos_id]), bad);
                    jset(in, "type_id", json_integer(seq), bad);
                    jset(item, "SpecialToken", in, bad);
                }
                jpush(arr, item, bad);
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        if (!(k == 0 ? bos : eos)) continue;
        int32_t id = k == 0 ? sp->bos_id : sp->eos_id;
        json_t *e = jchk(json_object(), bad), *ids = jchk(json_array(), bad), *toks = jchk(json_array(), bad);
        jset(e, "id", json_string(sp->tokens[id]), bad);
        jpush(ids, json_integer(id), bad);
        jpush(toks, json_string(sp->tokens[id]), bad);
        jset(e, "ids", ids, bad);
        jset(e, "tokens", toks, bad);
        jset(specials, sp->tokens[id], e, bad);
    }
    jset(o, "single", single, bad);
    jset(o, "pair", pair, bad);
    jset(o, "special_tokens", specials, bad);
    return o;
}

typedef struct {
    float score;
    uint32_t order;
    int32_t l, r;
} merge_cand;

static int cand_lr_cmp(const void *a, const void *b) {
    const merge_cand *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}
static int cand_score_cmp(const void *a, const void *b) {
    const merge_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int32_t vocab_id(const json_t *vocab, const char *s, size_t n) {
    json_t *v = json_object_getn(vocab, s, n);
    return v ? (int32_t)json_integer_value(v) : -1;
}

/* transformers' SentencePieceExtractor.extract(vocab_scores): for every piece
 * (in id order), every split at a character boundary whose halves are both
 * pieces, sorted by (left id, right id); then all of them sorted by the
 * merged piece's score, descending, stably. Without scores HF orders by id
 * ascending, which is the same as score = -id. */
static lq_status derive_merges(const lq_tokjson_spec *sp, const json_t *vocab, json_t *merges, int *bad) {
    lq_status st = LQ_OK;
    merge_cand *c = NULL;
    size_t n = 0, cap = 0;
    uint32_t order = 0;
    for (size_t i = 0; i < sp->n_vocab; i++) {
        const char *p = sp->tokens[i];
        size_t len = strlen(p);
        if (vocab_id(vocab, p, len) != (int32_t)i) continue; /* a repeated piece counts once */
        float score = sp->scores ? sp->scores[i] : -(float)i;
        size_t n0 = n;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80) continue; /* code point boundaries only */
            int32_t l = vocab_id(vocab, p, k), r = vocab_id(vocab, p + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                merge_cand *q = realloc(c, nc * sizeof *c);
                LQ_FAIL_IF(!q, LQ_ERR_NOMEM, "tokenizer: out of memory deriving merges");
                c = q, cap = nc;
            }
            c[n++] = (merge_cand){score, 0, l, r};
        }
        if (n - n0 > 1) qsort(c + n0, n - n0, sizeof *c, cand_lr_cmp);
        for (size_t k = n0; k < n; k++) c[k].order = order++;
    }
    if (n > 1) qsort(c, n, sizeof *c, cand_score_cmp);
    for (size_t k = 0; k < n; k++) {
        json_t *pr = jchk(json_array(), bad);
        jpush(pr, json_string(sp->tokens[c[k].l]), bad);
        jpush(pr, json_string(sp->tokens[c[k].r]), bad);
        jpush(merges, pr, bad);
    }
fail:
    free(c);
    return st;
}

lq_status lq_tokjson_build(const lq_tokjson_spec *sp, json_t **out) {
    lq_status st = LQ_OK;
    int bad = 0;
    json_t *doc = NULL, *vocab = NULL, *added = NULL, *merges = NULL, *model = NULL;
    json_t *pre = NULL, *norm = NULL, *dec = NULL, *post = NULL;
    *out = NULL;
    LQ_RETURN_IF(!sp || !sp->model, LQ_ERR_ARG, "lq_tokjson_build: no spec or no model");
    int spm = !strcmp(sp->model, "llama");
    LQ_RETURN_IF(!spm && strcmp(sp->model, "gpt2"), LQ_ERR_UNSUPPORTED,
                 "tokenizer.ggml.model \"%s\": not supported (only \"gpt2\" and \"llama\")", sp->model);
    LQ_RETURN_IF(!sp->n_vocab || !sp->tokens || sp->n_vocab > INT32_MAX, LQ_ERR_FORMAT,
                 "tokenizer.ggml.tokens: %zu tokens", sp->n_vocab);
    LQ_RETURN_IF(sp->n_merges && !sp->merges, LQ_ERR_ARG, "lq_tokjson_build: n_merges without merges");
    const int32_t ids[3] = {sp->bos_id, sp->eos_id, sp->unk_id};
    static const char *const id_names[3] = {"bos", "eos", "unk"};
    for (int k = 0; k < 3; k++)
        LQ_RETURN_IF(ids[k] < -1 || ids[k] >= (int64_t)sp->n_vocab, LQ_ERR_FORMAT,
                     "tokenizer: %s id %d outside the %zu-token vocabulary", id_names[k], ids[k], sp->n_vocab);
    for (size_t i = 0; i < sp->n_vocab; i++) {
        LQ_RETURN_IF(!sp->tokens[i], LQ_ERR_FORMAT, "tokenizer.ggml.tokens[%zu]: missing", i);
        LQ_RETURN_IF(sp->scores && isnan(sp->scores[i]), LQ_ERR_FORMAT, "tokenizer.ggml.scores[%zu]: NaN", i);
    }

    doc = jchk(json_object(), &bad);
    vocab = jchk(json_object(), &bad), added = jchk(json_array(), &bad), merges = jchk(json_array(), &bad);
    for (size_t i = 0; i < sp->n_vocab && !bad; i++) {
        const char *s = sp->tokens[i];
        json_t *js = json_string(s);
        LQ_FAIL_IF(!js, LQ_ERR_FORMAT, "tokenizer.ggml.tokens[%zu]: not valid UTF-8", i);
        json_decref(js);
        if (!json_object_get(vocab, s)) jset(vocab, s, json_integer((json_int_t)i), &bad);
        int32_t type = sp->types ? sp->types[i] : 1;
        if (type == 2 || type == 3 || type == 4) {
            json_t *a = jchk(json_object(), &bad);
            jset(a, "id", json_integer((json_int_t)i), &bad);
            jset(a, "content", json_string(s), &bad);
            jset(a, "single_word", json_false(), &bad);
            jset(a, "lstrip", json_false(), &bad);
            jset(a, "rstrip", json_false(), &bad);
            jset(a, "normalized", json_false(), &bad);
            jset(a, "special", json_boolean(type != 4), &bad);
            jpush(added, a, &bad);
        }
    }
    LQ_FAIL_IF(bad, LQ_ERR_NOMEM, "tokenizer: out of memory building tokenizer.json");
    for (size_t i = 0; i < sp->n_merges; i++) {
        const char *m = sp->merges[i];
        /* llama.cpp splits at the first space after the first byte */
        const char *space = m && m[0] ? strchr(m + 1, ' ') : NULL;
        LQ_FAIL_IF(!space, LQ_ERR_FORMAT, "tokenizer.ggml.merges[%zu]: \"%s\" is not \"left right\"", i, m ? m : "");
        json_t *l = json_stringn(m, (size_t)(space - m)), *r = json_string(space + 1);
        if (!l || !r) {
            json_decref(l);
            json_decref(r);
            LQ_FAIL_IF(1, LQ_ERR_FORMAT, "tokenizer.ggml.merges[%zu]: not valid UTF-8", i);
        }
        json_t *pr = jchk(json_array(), &bad);
        jpush(pr, l, &bad);
        jpush(pr, r, &bad);
        jpush(merges, pr, &bad);
    }
    if (spm && !sp->n_merges) LQ_TRY(derive_merges(sp, vocab, merges, &bad));

    int ignore_merges = 0;
    if (!spm) LQ_TRY(gpt2_pre(sp->pre, &pre, &ignore_merges, &bad));
    post = template_post(sp, &bad);
    model = jtyped("BPE", &bad);
    jset(model, "dropout", json_null(), &bad);
    jset(model, "unk_token", spm && sp->unk_id >= 0 ? json_string(sp->tokens[sp->unk_id]) : json_null(), &bad);
    jset(model, "continuing_subword_prefix", json_null(), &bad);
    jset(model, "end_of_word_suffix", json_null(), &bad);
    jset(model, "fuse_unk", json_boolean(spm), &bad);
    jset(model, "byte_fallback", json_boolean(spm), &bad);
    if (spm) {
        json_t *rep = jtyped("Replace", &bad);
        jset(rep, "pattern", jpattern_string(" ", &bad), &bad);
        jset(rep, "content", json_string(SPM_SPACE), &bad);
        json_t *prep = NULL;
        if (sp->add_space_prefix) {
            prep = jtyped("Prepend", &bad);
            jset(prep, "prepend", json_string(SPM_SPACE), &bad);
        }
        norm = jseq("Sequence", "normalizers", prep, rep, &bad);
        json_t *drep = jtyped("Replace", &bad);
        jset(drep, "pattern", jpattern_string(SPM_SPACE, &bad), &bad);
        jset(drep, "content", json_string(" "), &bad);
        dec = jseq("Sequence", "decoders", drep, jtyped("ByteFallback", &bad), &bad);
        jpush(json_object_get(dec, "decoders"), jtyped("Fuse", &bad), &bad);
        if (sp->add_space_prefix) {
            json_t *strip = jtyped("Strip", &bad);
            jset(strip, "content", json_string(" "), &bad);
            jset(strip, "start", json_integer(1), &bad);
            jset(strip, "stop", json_integer(0), &bad);
            jpush(json_object_get(dec, "decoders"), strip, &bad);
        }
    } else {
        dec = jbytelevel(1, 1, 1, &bad);
        if (!post) post = jbytelevel(1, 0, 1, &bad);
    }
    jset(model, "ignore_merges", json_boolean(ignore_merges), &bad);
    jset(model, "vocab", vocab, &bad);
    vocab = NULL;
    jset(model, "merges", merges, &bad);
    merges = NULL;

    jset(doc, "version", json_string("1.0"), &bad);
    jset(doc, "truncation", json_null(), &bad);
    jset(doc, "padding", json_null(), &bad);
    jset(doc, "added_tokens", added, &bad);
    added = NULL;
    /* jset steals each reference, also on failure */
    jset(doc, "normalizer", norm ? norm : json_null(), &bad);
    jset(doc, "pre_tokenizer", pre ? pre : json_null(), &bad);
    jset(doc, "post_processor", post ? post : json_null(), &bad);
    jset(doc, "decoder", dec ? dec : json_null(), &bad);
    jset(doc, "model", model, &bad);
    norm = pre = post = dec = model = NULL;
    LQ_FAIL_IF(bad, LQ_ERR_NOMEM, "tokenizer: out of memory building tokenizer.json");
    *out = doc;
    return LQ_OK;
fail:
    json_decref(vocab);
    json_decref(added);
    json_decref(merges);
    json_decref(model);
    json_decref(pre);
    json_decref(norm);
    json_decref(dec);
    json_decref(post);
    json_decref(doc);
    return st;
}
