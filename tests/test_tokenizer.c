/* test_tokenizer.c — CMocka suite for libquant/tokenizer.c, tokjson.c and
 * tokenizer_llama2c.c: ids must equal Hugging Face `tokenizers`' exactly.
 *
 * References:
 *  - stories260K: $LQ_SHARED/golden/stories260K (ids from transformers) and
 *    tests/data/tokenizer/stories260K_ids.json (edge cases);
 *  - tests/data/tokenizer/tiny_*.json + tiny_ids.json: small HF tokenizers
 *    (byte-level, Llama-3 style, every Split behavior, Metaspace/byte
 *    fallback) with HF's ids — these run without any external data (CI);
 *  - SmolLM2-135M-Instruct's GGUF (env LQ_SMOLLM2_GGUF, else
 *    datasets/cache/smollm2/...; datasets/fetch_smollm2.sh) against
 *    tests/data/tokenizer/smollm2_ids.json, incl. all of WikiText-2 test.
 * All fixtures come from datasets/gen_tokenizer_fixtures.py.
 * Tests whose data is absent skip and say why.
 *
 *   make BUILD=build-tok build-tok/tests/test_tokenizer && ./build-tok/tests/test_tokenizer */
#include "lq_test.h"

#include <jansson.h>

#include "../formats/lq_formats.h"
#include "../libquant/lq_tokenizer.h"

#define FIX "tests/data/tokenizer/"

/* ---------------------------------------------------------------- helpers */

static char *read_all(const char *path, size_t *n) {
    char *buf = NULL;
    if (lq_read_file(path, &buf, n) != LQ_OK) return NULL;
    return buf;
}

static json_t *load_json(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

static lq_tokenizer *load_tok(const char *path) {
    lq_tokenizer *t = NULL;
    lq_status st = lq_tokenizer_load(path, &t);
    if (st != LQ_OK) fail_msg("loading %s: %s: %s", path, lq_status_name(st), lq_last_error());
    return t;
}

static void print_ids(const char *what, const int32_t *ids, size_t n, size_t around) {
    size_t a = around > 4 ? around - 4 : 0, b = around + 5 < n ? around + 5 : n;
    char line[512];
    int k = snprintf(line, sizeof line, "%s[%zu..%zu):", what, a, b);
    for (size_t i = a; i < b && k < (int)sizeof line - 16; i++) k += snprintf(line + k, sizeof line - (size_t)k, " %d", ids[i]);
    print_message("%s\n", line);
}

/* 0 when equal; prints the first difference */
static int cmp_ids(const char *what, const int32_t *got, size_t n_got, const int32_t *want, size_t n_want) {
    size_t i = 0;
    while (i < n_got && i < n_want && got[i] == want[i]) i++;
    if (i == n_got && i == n_want) return 0;
    print_message("%s: ids differ at %zu (got %zu ids, want %zu)\n", what, i, n_got, n_want);
    print_ids("  got ", got, n_got, i);
    print_ids("  want", want, n_want, i);
    return 1;
}

static int32_t *json_ids(const json_t *a, size_t *n) {
    *n = json_array_size(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static uint64_t fnv1a64(const int32_t *ids, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)ids[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void encode_ok(const lq_tokenizer *t, const char *s, size_t n, int add_special, int32_t **ids, size_t *n_ids) {
    lq_status st = lq_tokenizer_encode(t, s, n, add_special, ids, n_ids);
    if (st != LQ_OK) fail_msg("encode \"%.60s\": %s: %s", s, lq_status_name(st), lq_last_error());
}

/* Compare a tokenizer with a fixture's cases: {text, ids, ids_plain,
 * decoded, decoded_skip}. skip_substr: cases containing it are skipped. */
static int check_cases(const char *name, const lq_tokenizer *t, const json_t *cases, const char *skip_substr,
                       int check_decode) {
    int bad = 0, n_checked = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(cs, "text"));
        size_t tl = json_string_length(json_object_get(cs, "text"));
        if (skip_substr && strstr(text, skip_substr)) continue;
        char what[160];
        for (int special = 1; special >= 0; special--) {
            size_t nw, ng;
            int32_t *want = json_ids(json_object_get(cs, special ? "ids" : "ids_plain"), &nw), *got = NULL;
            encode_ok(t, text, tl, special, &got, &ng);
            snprintf(what, sizeof what, "%s case %zu \"%.40s\" add_special=%d", name, c, text, special);
            bad += cmp_ids(what, got, ng, want, nw);
            if (special && check_decode) {
                for (int skip = 0; skip < 2; skip++) {
                    char *out = NULL;
                    size_t ol = 0;
                    lq_status st = lq_tokenizer_decode(t, want, nw, skip, &out, &ol);
                    const json_t *d = json_object_get(cs, skip ? "decoded_skip" : "decoded");
                    if (st != LQ_OK) {
                        print_message("%s: decode failed: %s\n", what, lq_last_error());
                        bad++;
                    } else if (ol != json_string_length(d) || memcmp(out, json_string_value(d), ol)) {
                        print_message("%s: decode(skip=%d) = \"%s\", HF \"%s\"\n", what, skip, out,
                                      json_string_value(d));
                        bad++;
                    }
                    free(out);
                }
            }
            free(want);
            free(got);
        }
        n_checked++;
    }
    print_message("%s: %d cases checked, %d mismatches\n", name, n_checked, bad);
    return bad;
}

/* -------------------------------------------------------- stories260K */

static void test_tokenizer_stories260K_golden(void **state) {
    (void)state;
    char tokp[512], samp[512], gs[512], gj[512];
    LQ_SKIP_IF_NO_SHARED(tokp, "models/stories260K/tokenizer.json");
    LQ_SKIP_IF_NO_SHARED(samp, "datasets/tinystories/sample.txt");
    LQ_SKIP_IF_NO_SHARED(gs, "golden/stories260K/golden.safetensors");
    LQ_SKIP_IF_NO_SHARED(gj, "golden/stories260K/golden.json");
    lq_tokenizer *t = load_tok(tokp);
    assert_int_equal(lq_tokenizer_vocab_size(t), 512);
    assert_int_equal(lq_tokenizer_bos_id(t), 1);
    assert_int_equal(lq_tokenizer_eos_id(t), 2);
    assert_string_equal(lq_tokenizer_token(t, 13), "<0x0A>");
    assert_null(lq_tokenizer_token(t, 512));
    size_t n;
    char *text = read_all(samp, &n);
    assert_non_null(text);
    lq_checkpoint *ck = NULL;
    if (lq_safetensors_open(gs, &ck) != LQ_OK) fail_msg("%s", lq_last_error());
    json_t *golden = load_json(gj);

    /* the golden encoded each story (split on blank lines, whitespace-stripped)
     * with BOS; golden.json records the count and a prefix of each */
    const json_t *seqs = json_object_get(golden, "sequences");
    size_t pos = 0;
    for (int s = 0; s < 5; s++) {
        size_t end = pos;
        while (end < n && !(end + 1 < n && text[end] == '\n' && text[end + 1] == '\n')) end++;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\n')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\n')) b--;
        const json_t *sq = json_array_get(seqs, (size_t)s);
        const char *prefix = json_string_value(json_object_get(sq, "text_prefix"));
        assert_memory_equal(text + a, prefix, strlen(prefix));
        char name[32];
        snprintf(name, sizeof name, "tokens.%d", s);
        const lq_tensor_info *ti = lq_checkpoint_find(ck, name);
        assert_non_null(ti);
        assert_int_equal(ti->dtype, LQ_I32);
        int32_t *ids = NULL;
        size_t ni = 0;
        encode_ok(t, text + a, b - a, 1, &ids, &ni);
        assert_int_equal(ni, (size_t)json_integer_value(json_object_get(sq, "n_tokens")));
        assert_int_equal(cmp_ids(name, ids, ni, ti->data, (size_t)lq_tensor_numel(ti)), 0);
        free(ids);
        pos = end + 2;
    }
    /* the whole sample with one BOS (the perplexity protocol) */
    int32_t *ids = NULL;
    size_t ni = 0;
    encode_ok(t, text, n, 1, &ids, &ni);
    const json_t *ppl = json_array_get(json_object_get(json_object_get(golden, "ppl"), "stories"), 0);
    assert_int_equal(ni, (size_t)json_integer_value(json_object_get(ppl, "n_tokens_total")));
    assert_int_equal(ni, 1822);
    free(ids);
    /* greedy prompt and decoding the greedy continuation */
    const json_t *gr = json_object_get(golden, "greedy");
    const char *prompt = json_string_value(json_object_get(gr, "prompt"));
    encode_ok(t, prompt, strlen(prompt), 1, &ids, &ni);
    const int32_t want_prompt[] = {1, 403, 407, 261, 378};
    assert_int_equal(cmp_ids("prompt", ids, ni, want_prompt, 5), 0);
    free(ids);
    size_t ng;
    int32_t *gids = json_ids(json_object_get(gr, "ids"), &ng);
    char *dec = NULL;
    size_t dl = 0;
    assert_int_equal(lq_tokenizer_decode(t, gids, ng, 1, &dec, &dl), LQ_OK);
    assert_string_equal(dec, json_string_value(json_object_get(gr, "text")));
    assert_int_equal(dl, strlen(dec));
    free(dec);
    /* and the whole sample round-trips */
    encode_ok(t, text, n, 1, &ids, &ni);
    assert_int_equal(lq_tokenizer_decode(t, ids, ni, 1, &dec, &dl), LQ_OK);
    assert_int_equal(dl, n);
    assert_memory_equal(dec, text, n);
    free(dec);
    free(ids);
    free(gids);
    json_decref(golden);
    lq_checkpoint_free(ck);
    free(text);
    lq_tokenizer_free(t);
}

static void test_tokenizer_stories260K_edge_cases(void **state) {
    (void)state;
    char tokp[512];
    LQ_SKIP_IF_NO_SHARED(tokp, "models/stories260K/tokenizer.json");
    lq_tokenizer *t = load_tok(tokp);
    json_t *cases = load_json(FIX "stories260K_ids.json");
    assert_int_equal(check_cases("stories260K", t, cases, NULL, 1), 0);
    json_decref(cases);
    lq_tokenizer_free(t);
}

/* tok512.bin -> tokenizer.json equals the shipped tokenizer.json in what
 * matters (vocab, merges in order, normalizer, decoder) and in ids */
static void test_tokenizer_llama2c_matches_json(void **state) {
    (void)state;
    char tokp[512], binp[512], samp[512], wikp[512];
    LQ_SKIP_IF_NO_SHARED(tokp, "models/stories260K/tokenizer.json");
    LQ_SKIP_IF_NO_SHARED(binp, "models/stories260K/llama2c/tok512.bin");
    LQ_SKIP_IF_NO_SHARED(samp, "datasets/tinystories/sample.txt");
    LQ_SKIP_IF_NO_SHARED(wikp, "datasets/wikitext2/wiki.test.raw.txt");
    json_t *doc = NULL;
    lq_status st = lq_llama2c_tokenizer_json(binp, 512, &doc);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    json_t *ref = load_json(tokp);
    const char *keys[] = {"normalizer", "pre_tokenizer", "decoder", "added_tokens", "post_processor"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (!json_equal(json_object_get(doc, keys[k]), json_object_get(ref, keys[k]))) {
            char *a = json_dumps(json_object_get(doc, keys[k]), JSON_COMPACT | JSON_ENCODE_ANY);
            char *b = json_dumps(json_object_get(ref, keys[k]), JSON_COMPACT | JSON_ENCODE_ANY);
            print_message("%s differs:\n ours %s\n HF   %s\n", keys[k], a, b);
            free(a), free(b);
            fail();
        }
    json_t *m1 = json_object_get(doc, "model"), *m2 = json_object_get(ref, "model");
    assert_true(json_equal(json_object_get(m1, "vocab"), json_object_get(m2, "vocab")));
    /* merges derived from the scores, in HF's order */
    assert_true(json_equal(json_object_get(m1, "merges"), json_object_get(m2, "merges")));

    lq_tokenizer *a = load_tok(tokp), *b = NULL;
    assert_int_equal(lq_tokenizer_from_json(doc, binp, &b), LQ_OK);
    const char *files[2] = {samp, wikp};
    size_t limits[2] = {SIZE_MAX, 200 * 1024};
    for (int f = 0; f < 2; f++) {
        size_t n;
        char *text = read_all(files[f], &n);
        assert_non_null(text);
        if (n > limits[f]) n = limits[f];
        int32_t *i1, *i2;
        size_t n1, n2;
        encode_ok(a, text, n, 1, &i1, &n1);
        encode_ok(b, text, n, 1, &i2, &n2);
        assert_int_equal(cmp_ids(files[f], i2, n2, i1, n1), 0);
        print_message("%s: %zu bytes -> %zu ids, identical\n", files[f], n, n1);
        free(i1), free(i2), free(text);
    }
    lq_tokenizer_free(a);
    lq_tokenizer_free(b);
    json_decref(doc);
    json_decref(ref);
}

/* lq_tokjson_build("llama") with explicit merges = the shipped file */
static void test_tokenizer_tokjson_spm_with_merges(void **state) {
    (void)state;
    char tokp[512], samp[512];
    LQ_SKIP_IF_NO_SHARED(tokp, "models/stories260K/tokenizer.json");
    LQ_SKIP_IF_NO_SHARED(samp, "datasets/tinystories/sample.txt");
    json_t *ref = load_json(tokp);
    const json_t *vocab = json_object_get(json_object_get(ref, "model"), "vocab"),
                 *merges = json_object_get(json_object_get(ref, "model"), "merges");
    size_t nv = json_object_size(vocab), nm = json_array_size(merges);
    const char **toks = calloc(nv, sizeof *toks);
    char **ms = calloc(nm, sizeof *ms);
    int32_t *types = calloc(nv, sizeof *types);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        int64_t id = json_integer_value(val);
        toks[id] = key;
        types[id] = id == 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1;
    }
    for (size_t i = 0; i < nm; i++) {
        const json_t *p = json_array_get(merges, i);
        const char *l = json_string_value(json_array_get(p, 0)), *r = json_string_value(json_array_get(p, 1));
        ms[i] = malloc(strlen(l) + strlen(r) + 2);
        sprintf(ms[i], "%s %s", l, r);
    }
    lq_tokjson_spec sp = {.model = "llama", .n_vocab = nv, .tokens = toks, .types = types, .n_merges = nm,
                          .merges = (const char *const *)ms, .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_bos = 1,
                          .add_space_prefix = 1};
    json_t *doc = NULL;
    assert_int_equal(lq_tokjson_build(&sp, &doc), LQ_OK);
    assert_true(json_equal(json_object_get(json_object_get(doc, "model"), "merges"), merges));
    lq_tokenizer *a = load_tok(tokp), *b = NULL;
    assert_int_equal(lq_tokenizer_from_json(doc, "built", &b), LQ_OK);
    size_t n;
    char *text = read_all(samp, &n);
    int32_t *i1, *i2;
    size_t n1, n2;
    encode_ok(a, text, n, 1, &i1, &n1);
    encode_ok(b, text, n, 1, &i2, &n2);
    assert_int_equal(cmp_ids("spm with merges", i2, n2, i1, n1), 0);
    free(i1), free(i2), free(text);
    for (size_t i = 0; i < nm; i++) free(ms[i]);
    free(ms), free(toks), free(types);
    json_decref(doc);
    json_decref(ref);
    lq_tokenizer_free(a);
    lq_tokenizer_free(b);
}

/* ------------------------------------------------------ tiny fixtures (CI) */

static void test_tokenizer_tiny_fixtures(void **state) {
    (void)state;
    json_t *all = load_json(FIX "tiny_ids.json");
    const char *name;
    json_t *cases;
    int bad = 0, n_fix = 0;
    json_object_foreach(all, name, cases) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s.json", name);
        lq_tokenizer *t = load_tok(path);
        bad += check_cases(name, t, cases, NULL, 1);
        lq_tokenizer_free(t);
        n_fix++;
    }
    assert_true(n_fix >= 5);
    assert_int_equal(bad, 0);
    json_decref(all);
}

/* hand-written documents for model options (ignore_merges, unk/fuse_unk,
 * partial byte fallback, subword prefix/suffix, Metaspace variants,
 * normalized added tokens) */
static void test_tokenizer_hand_made_options(void **state) {
    (void)state;
    json_t *all = load_json(FIX "hand_ids.json");
    const char *name;
    json_t *fx;
    int bad = 0, n_fix = 0;
    json_object_foreach(all, name, fx) {
        lq_tokenizer *t = NULL;
        lq_status st = lq_tokenizer_from_json(json_object_get(fx, "doc"), name, &t);
        if (st != LQ_OK) fail_msg("%s: %s", name, lq_last_error());
        bad += check_cases(name, t, json_object_get(fx, "cases"), NULL, 1);
        lq_tokenizer_free(t);
        n_fix++;
    }
    assert_true(n_fix >= 9);
    assert_int_equal(bad, 0);
    json_decref(all);
}

/* Vocabulary arrays of a tiny fixture, as a GGUF would hold them. */
typedef struct {
    size_t n, nm;
    const char **tok;
    int32_t *types;
    char **merges;
    json_t *doc;
} arrays;

static void fixture_arrays(const char *path, arrays *a) {
    a->doc = load_json(path);
    const json_t *model = json_object_get(a->doc, "model");
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    a->n = json_object_size(vocab);
    a->nm = json_array_size(merges);
    a->tok = calloc(a->n, sizeof *a->tok);
    a->types = calloc(a->n, sizeof *a->types);
    a->merges = calloc(a->nm + 1, sizeof *a->merges);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) a->tok[json_integer_value(val)] = key, a->types[json_integer_value(val)] = 1;
    const json_t *added = json_object_get(a->doc, "added_tokens");
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *e = json_array_get(added, i);
        a->types[json_integer_value(json_object_get(e, "id"))] = json_is_true(json_object_get(e, "special")) ? 3 : 4;
    }
    for (size_t i = 0; i < a->nm; i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) a->merges[i] = strdup(json_string_value(m));
        else {
            const char *l = json_string_value(json_array_get(m, 0)), *r = json_string_value(json_array_get(m, 1));
            a->merges[i] = malloc(strlen(l) + strlen(r) + 2);
            sprintf(a->merges[i], "%s %s", l, r);
        }
    }
}
static void arrays_free(arrays *a) {
    for (size_t i = 0; i < a->nm; i++) free(a->merges[i]);
    free(a->merges), free(a->tok), free(a->types);
    json_decref(a->doc);
}

/* lq_tokjson_build's pre-tokenizer presets against HF ids of the tiny
 * fixtures with the same structure (added tokens with lstrip/rstrip/
 * single_word are skipped: GGUF has no such flags) */
static void test_tokenizer_tokjson_presets(void **state) {
    (void)state;
    json_t *all = load_json(FIX "tiny_ids.json");
    struct {
        const char *fixture, *pre;
    } presets[] = {{"tiny_bytelevel", NULL}, {"tiny_bytelevel", "gpt2"}, {"tiny_llama3", "llama-bpe"},
                   {"tiny_qwen2", "qwen2"}};
    for (size_t p = 0; p < sizeof presets / sizeof *presets; p++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s.json", presets[p].fixture);
        arrays a;
        fixture_arrays(path, &a);
        lq_tokjson_spec sp = {.model = "gpt2", .pre = presets[p].pre, .n_vocab = a.n, .tokens = a.tok,
                              .types = a.types, .n_merges = a.nm, .merges = (const char *const *)a.merges,
                              .bos_id = 0, .eos_id = 1, .unk_id = -1, .add_bos = 1};
        json_t *doc = NULL;
        lq_status st = lq_tokjson_build(&sp, &doc);
        if (st != LQ_OK) fail_msg("%s: %s", presets[p].fixture, lq_last_error());
        lq_tokenizer *t = NULL;
        st = lq_tokenizer_from_json(doc, path, &t);
        if (st != LQ_OK) fail_msg("%s: %s", presets[p].fixture, lq_last_error());
        /* the fixtures' templates add <|bos|> (id 0): add_bos = 1 matches */
        const json_t *cases = json_object_get(all, presets[p].fixture);
        int bad = 0;
        for (size_t c = 0; c < json_array_size(cases); c++) {
            const json_t *cs = json_array_get(cases, c);
            const char *text = json_string_value(json_object_get(cs, "text"));
            if (strstr(text, "[TOOL]") || strstr(text, "xyz")) continue;
            size_t nw, ng;
            int32_t *want = json_ids(json_object_get(cs, "ids"), &nw), *got;
            encode_ok(t, text, json_string_length(json_object_get(cs, "text")), 1, &got, &ng);
            /* tiny_qwen2 has no template: prepend the BOS we asked for */
            if (!strcmp(presets[p].fixture, "tiny_qwen2")) {
                assert_true(ng >= 1 && got[0] == 0);
                bad += cmp_ids(text, got + 1, ng - 1, want, nw);
            } else {
                bad += cmp_ids(text, got, ng, want, nw);
            }
            free(want), free(got);
        }
        assert_int_equal(bad, 0);
        lq_tokenizer_free(t);
        json_decref(doc);
        arrays_free(&a);
    }
    /* smollm preset's structure is SmolLM2's file (checked by ids below);
     * unknown presets are refused by name */
    arrays a;
    fixture_arrays(FIX "tiny_bytelevel.json", &a);
    lq_tokjson_spec sp = {.model = "gpt2", .pre = "no-such-pre", .n_vocab = a.n, .tokens = a.tok, .types = a.types,
                          .n_merges = a.nm, .merges = (const char *const *)a.merges, .bos_id = -1, .eos_id = -1,
                          .unk_id = -1};
    json_t *doc = NULL;
    assert_int_equal(lq_tokjson_build(&sp, &doc), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "no-such-pre"));
    assert_null(doc);
    sp.pre = "smollm";
    sp.model = "bert";
    assert_int_equal(lq_tokjson_build(&sp, &doc), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "bert"));
    sp.model = "gpt2";
    sp.bos_id = (int32_t)a.n;
    assert_int_equal(lq_tokjson_build(&sp, &doc), LQ_ERR_FORMAT);
    sp.bos_id = -1;
    char *saved = a.merges[0];
    a.merges[0] = "nospace";
    assert_int_equal(lq_tokjson_build(&sp, &doc), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "merges[0]"));
    a.merges[0] = saved;
    arrays_free(&a);
    json_decref(all);
}

/* --------------------------------------------------------------- SmolLM2 */

static const char *smollm2_path(char *buf, size_t n) {
    const char *e = getenv("LQ_SMOLLM2_GGUF");
    if (e && *e) snprintf(buf, n, "%s", e);
    else snprintf(buf, n, "datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static void test_tokenizer_smollm2_gguf(void **state) {
    (void)state;
    char path[1024];
    if (!smollm2_path(path, sizeof path)) {
        print_message("skipped: %s not found (set LQ_SMOLLM2_GGUF or run datasets/fetch_smollm2.sh)\n", path);
        skip();
    }
    /* the real GGUF loader builds tokenizer.json through lq_tokjson_build */
    lq_checkpoint *ck = NULL;
    double t0 = lq_now();
    lq_status st = lq_gguf_load(path, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_non_null(ck->tokenizer);
    lq_tokenizer *t = NULL;
    double t1 = lq_now();
    st = lq_tokenizer_from_json(ck->tokenizer, path, &t);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    double t2 = lq_now();
    print_message("gguf load %.2fs, tokenizer build %.3fs\n", t1 - t0, t2 - t1);
    lq_checkpoint_free(ck);
    assert_int_equal(lq_tokenizer_vocab_size(t), 49152);
    json_t *ref = load_json(FIX "smollm2_ids.json");
    assert_int_equal(check_cases("smollm2", t, json_object_get(ref, "cases"), NULL, 1), 0);

    char wikp[512];
    const json_t *w = json_object_get(ref, "wikitext2_test");
    if (w && lq_test_shared_path(wikp, sizeof wikp, "datasets/wikitext2/wiki.test.raw.txt")) {
        size_t n;
        char *text = read_all(wikp, &n);
        assert_int_equal(n, (size_t)json_integer_value(json_object_get(w, "n_bytes")));
        int32_t *ids;
        size_t ni;
        double a = lq_now();
        encode_ok(t, text, n, 1, &ids, &ni);
        double b = lq_now();
        char hex[32];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(ids, ni));
        print_message("smollm2: wikitext-2 test %zu bytes -> %zu ids in %.3fs (%.1f MB/s), fnv %s\n", n, ni, b - a,
                      (double)n / 1e6 / (b - a), hex);
        size_t nf;
        int32_t *first = json_ids(json_object_get(w, "first_ids"), &nf);
        assert_int_equal(cmp_ids("wikitext first ids", ids, ni < nf ? ni : nf, first, nf), 0);
        assert_int_equal(ni, (size_t)json_integer_value(json_object_get(w, "n_ids")));
        assert_string_equal(hex, json_string_value(json_object_get(w, "fnv1a64")));
        char *dec;
        size_t dl;
        assert_int_equal(lq_tokenizer_decode(t, ids, ni, 0, &dec, &dl), LQ_OK);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, text, n);
        free(dec), free(first), free(ids), free(text);
    } else {
        print_message("note: WikiText-2 part skipped (no reference or no %s)\n", wikp);
    }
    json_decref(ref);
    lq_tokenizer_free(t);
}

/* --------------------------------------------------------------- speed */

static void test_tokenizer_wikitext_speed(void **state) {
    (void)state;
    char tokp[512], wikp[512];
    LQ_SKIP_IF_NO_SHARED(tokp, "models/stories260K/tokenizer.json");
    LQ_SKIP_IF_NO_SHARED(wikp, "datasets/wikitext2/wiki.test.raw.txt");
    lq_tokenizer *t = load_tok(tokp);
    size_t n;
    char *text = read_all(wikp, &n);
    int32_t *ids;
    size_t ni;
    double a = lq_now();
    /* no pre-tokenizer: the whole text is one BPE "word" of ~1.3M symbols */
    encode_ok(t, text, n, 1, &ids, &ni);
    double b = lq_now();
    print_message("stories260K: wikitext-2 test %zu bytes -> %zu ids in %.3fs (%.1f MB/s)\n", n, ni, b - a,
                  (double)n / 1e6 / (b - a));
    /* HF tokenizers: 815070 ids, FNV-1a 1eabb57de8d1fd39 */
    assert_int_equal(ni, 815070);
    assert_int_equal(fnv1a64(ids, ni), 0x1eabb57de8d1fd39ULL);
    assert_true(b - a < 30.0); /* generous: sanitizer builds are ~10x slower */
    free(ids), free(text);
    lq_tokenizer_free(t);
}

/* ------------------------------------------------------------ malformed */

static void expect_doc_err(const char *json, lq_status want, const char *needle1, const char *needle2) {
    json_error_t e;
    json_t *doc = json_loads(json, 0, &e);
    if (!doc) fail_msg("test JSON does not parse: %s: %s", e.text, json);
    lq_tokenizer *t = (lq_tokenizer *)1;
    lq_status st = lq_tokenizer_from_json(doc, "bad.json", &t);
    if (st != want) fail_msg("want %s, got %s (%s) for %s", lq_status_name(want), lq_status_name(st), lq_last_error(), json);
    assert_null(t);
    const char *m = lq_last_error();
    if (!strstr(m, "bad.json") || (needle1 && !strstr(m, needle1)) || (needle2 && !strstr(m, needle2)))
        fail_msg("message \"%s\" lacks \"%s\"/\"%s\"", m, needle1 ? needle1 : "", needle2 ? needle2 : "");
    json_decref(doc);
}

#define MODEL_OK "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

static void test_tokenizer_malformed_json(void **state) {
    (void)state;
    /* bad JSON text: a file */
    char path[] = "/tmp/lq_tok_badXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"model\": {", 11), 11);
    close(fd);
    lq_tokenizer *t = NULL;
    assert_int_equal(lq_tokenizer_load(path, &t), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), path));
    assert_null(t);
    unlink(path);
    assert_int_equal(lq_tokenizer_load("/nonexistent/tokenizer.json", &t), LQ_ERR_IO);

    /* sanity: the minimal document loads and merges */
    json_t *ok = json_loads("{" MODEL_OK "}", 0, NULL);
    assert_int_equal(lq_tokenizer_from_json(ok, "ok.json", &t), LQ_OK);
    int32_t *ids;
    size_t n;
    encode_ok(t, "abab", 4, 1, &ids, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 2);
    free(ids);
    /* chars missing from the vocab and no unk: dropped, as HF does */
    encode_ok(t, "xaby", 4, 1, &ids, &n);
    assert_int_equal(n, 1);
    free(ids);
    lq_tokenizer_free(t);
    json_decref(ok);

    expect_doc_err("[1,2]", LQ_ERR_FORMAT, "object", NULL);
    expect_doc_err("{\"version\":\"1.0\"}", LQ_ERR_FORMAT, "model", NULL);
    expect_doc_err("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", LQ_ERR_UNSUPPORTED, "Unigram", NULL);
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a c\"]}}", LQ_ERR_FORMAT,
                   "merges[0]", "\"c\"");
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}}",
                   LQ_ERR_FORMAT, "merges[0]", "\"ab\"");
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}", LQ_ERR_FORMAT,
                   "merges[0]", NULL);
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", LQ_ERR_FORMAT, "vocab", NULL);
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":2000000000},\"merges\":[]}}", LQ_ERR_FORMAT,
                   "2000000000", NULL);
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   LQ_ERR_FORMAT, "unk_token", "<unk>");
    expect_doc_err("{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{\"a\":0},\"merges\":[]}}",
                   LQ_ERR_UNSUPPORTED, "dropout", NULL);
    /* a regex that does not compile: the pattern and the offset */
    expect_doc_err("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"ab(c\"},\"behavior\":\"Isolated\"},"
                   MODEL_OK "}",
                   LQ_ERR_FORMAT, "ab(c", "offset 4");
    expect_doc_err("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[z-a]\"},\"content\":\"\"}," MODEL_OK
                   "}",
                   LQ_ERR_FORMAT, "normalizer.pattern", "[z-a]");
    expect_doc_err("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"},"
                   MODEL_OK "}",
                   LQ_ERR_FORMAT, "Sideways", NULL);
    expect_doc_err("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"BertPreTokenizer\"}]},"
                   MODEL_OK "}",
                   LQ_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0]", "BertPreTokenizer");
    expect_doc_err("{\"normalizer\":{\"type\":\"Precompiled\"}," MODEL_OK "}", LQ_ERR_UNSUPPORTED, "Precompiled",
                   NULL);
    expect_doc_err("{\"decoder\":{\"type\":\"CTC\"}," MODEL_OK "}", LQ_ERR_UNSUPPORTED, "CTC", NULL);
    expect_doc_err("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],"
                   "\"special_tokens\":{}}," MODEL_OK "}",
                   LQ_ERR_FORMAT, "<s>", NULL);
    expect_doc_err("{\"added_tokens\":[{\"id\":\"x\",\"content\":\"q\"}]," MODEL_OK "}", LQ_ERR_FORMAT,
                   "added_tokens[0].id", NULL);
}

static void test_tokenizer_invalid_utf8_is_replacement_char(void **state) {
    (void)state;
    lq_tokenizer *t = load_tok(FIX "tiny_bytelevel.json");
    /* each maximal invalid subsequence reads as one U+FFFD (Python's
     * errors="replace"), then encodes as HF encodes that string */
    const char bad[] = "ok \xff\xfe x \xe2\x82 y \xed\xa0\x80 z \xf0\x9f\x98 end \xc0\xaf";
    const char good[] = "ok \xef\xbf\xbd\xef\xbf\xbd x \xef\xbf\xbd y \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd z "
                        "\xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd";
    int32_t *a, *b;
    size_t na, nb;
    encode_ok(t, bad, sizeof bad - 1, 1, &a, &na);
    encode_ok(t, good, sizeof good - 1, 1, &b, &nb);
    assert_int_equal(cmp_ids("invalid utf-8", a, na, b, nb), 0);
    free(a), free(b);
    /* truncated sequence at the very end, lone continuation bytes, NULs */
    const char *edge[] = {"\xe2", "\x80\x80\x80", "a\0b", "\xf4\x90\x80\x80"};
    size_t el[] = {1, 3, 3, 4};
    for (int i = 0; i < 4; i++) {
        encode_ok(t, edge[i], el[i], 0, &a, &na);
        assert_true(na > 0);
        free(a);
    }
    /* empty input */
    encode_ok(t, "", 0, 0, &a, &na);
    assert_int_equal(na, 0);
    free(a);
    encode_ok(t, NULL, 0, 1, &a, &na);
    assert_int_equal(na, 1); /* just the BOS of the template */
    free(a);
    /* decode: ids out of range are an error naming the id */
    int32_t ids[] = {5, 99999};
    char *out = (char *)1;
    assert_int_equal(lq_tokenizer_decode(t, ids, 2, 0, &out, NULL), LQ_ERR_ARG);
    assert_non_null(strstr(lq_last_error(), "99999"));
    assert_null(out);
    /* decoding byte-level ids of partial characters gives U+FFFD, no crash */
    int32_t partial[] = {0};
    for (int32_t id = 0; id < lq_tokenizer_vocab_size(t); id++) {
        partial[0] = id;
        size_t ol;
        assert_int_equal(lq_tokenizer_decode(t, partial, 1, 0, &out, &ol), LQ_OK);
        free(out);
    }
    lq_tokenizer_free(t);
}

static void test_tokenizer_nfc_refuses_what_it_cannot_do(void **state) {
    (void)state;
    lq_tokenizer *t = load_tok(FIX "tiny_metaspace.json");
    int32_t *ids = NULL;
    size_t n;
    /* "e" + COMBINING ACUTE would compose under NFC: refused, not mis-encoded */
    assert_int_equal(lq_tokenizer_encode(t, "cafe\xcc\x81", 6, 1, &ids, &n), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "U+0301"));
    assert_null(ids);
    /* precomposed text is fine, and so are chars NFC never touches */
    encode_ok(t, "caf\xc3\xa9 \xef\xac\x81 \xd9\xa3 \xef\xbb\xbf", 15, 1, &ids, &n);
    free(ids);
    lq_tokenizer_free(t);
    /* NFKC: the "fi" ligature U+FB01 would become "fi": refused */
    json_t *doc = json_loads("{\"normalizer\":{\"type\":\"NFKC\"}," MODEL_OK "}", 0, NULL);
    assert_int_equal(lq_tokenizer_from_json(doc, "nfkc.json", &t), LQ_OK);
    assert_int_equal(lq_tokenizer_encode(t, "ab\xef\xac\x81", 5, 1, &ids, &n), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "U+FB01"));
    encode_ok(t, "ab\xc3\xa9", 4, 1, &ids, &n);
    free(ids);
    lq_tokenizer_free(t);
    json_decref(doc);
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

static void expect_l2c_err(const char *path, int32_t vocab, lq_status want, const char *needle1, const char *needle2) {
    json_t *doc = (json_t *)1;
    lq_status st = lq_llama2c_tokenizer_json(path, vocab, &doc);
    if (st != want) fail_msg("%s: want %s got %s (%s)", path, lq_status_name(want), lq_status_name(st), lq_last_error());
    assert_null(doc);
    const char *m = lq_last_error();
    if (!strstr(m, path) || (needle1 && !strstr(m, needle1)) || (needle2 && !strstr(m, needle2)))
        fail_msg("message \"%s\" lacks \"%s\"/\"%s\"", m, needle1 ? needle1 : "", needle2 ? needle2 : "");
}

static void test_tokenizer_llama2c_malformed(void **state) {
    (void)state;
    char binp[512];
    LQ_SKIP_IF_NO_SHARED(binp, "models/stories260K/llama2c/tok512.bin");
    size_t n;
    char *buf = read_all(binp, &n);
    assert_non_null(buf);
    char path[] = "/tmp/lq_tok512_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    /* truncated at many points: inside the header, a score, a len, a piece */
    size_t cuts[] = {0, 2, 4, 7, 11, 13, 100, n / 2, n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        write_file(path, buf, cuts[c]);
        expect_l2c_err(path, 512, LQ_ERR_FORMAT, cuts[c] < 4 ? "max_token_length" : "token ", NULL);
    }
    /* vocab_size larger than the file: names the first missing token */
    write_file(path, buf, n);
    expect_l2c_err(path, 513, LQ_ERR_FORMAT, "token 512", NULL);
    /* smaller: trailing bytes */
    expect_l2c_err(path, 511, LQ_ERR_FORMAT, "trailing", NULL);
    expect_l2c_err(path, 0, LQ_ERR_ARG, "vocab_size", NULL);
    /* an absurd length field in token 3 */
    char *bad = malloc(n);
    memcpy(bad, buf, n);
    size_t off = 4;
    for (int i = 0; i < 3; i++) {
        int32_t len;
        memcpy(&len, bad + off + 4, 4);
        off += 8 + (size_t)len;
    }
    int32_t huge = 0x7fffffff;
    memcpy(bad + off + 4, &huge, 4);
    write_file(path, bad, n);
    expect_l2c_err(path, 512, LQ_ERR_FORMAT, "token 3", "len");
    int32_t neg = -5;
    memcpy(bad + off + 4, &neg, 4);
    write_file(path, bad, n);
    expect_l2c_err(path, 512, LQ_ERR_FORMAT, "token 3", "-5");
    /* a NaN score */
    memcpy(bad, buf, n);
    uint32_t nan_bits = 0x7fc00000u;
    memcpy(bad + off, &nan_bits, 4);
    write_file(path, bad, n);
    expect_l2c_err(path, 512, LQ_ERR_FORMAT, "token 3", "score");
    /* invalid UTF-8 in a piece (token 3 is "<0x00>": break its first byte) */
    memcpy(bad, buf, n);
    bad[off + 8] = (char)0xff;
    write_file(path, bad, n);
    expect_l2c_err(path, 512, LQ_ERR_FORMAT, "token 3", "UTF-8");
    /* absurd max_token_length */
    memcpy(bad, buf, n);
    int32_t zero = 0;
    memcpy(bad, &zero, 4);
    write_file(path, bad, n);
    expect_l2c_err(path, 512, LQ_ERR_FORMAT, "max_token_length", NULL);
    expect_l2c_err("/nonexistent/tok.bin", 512, LQ_ERR_IO, NULL, NULL);
    unlink(path);
    free(bad);
    free(buf);
}

static void test_tokenizer_free_null_and_accessors(void **state) {
    (void)state;
    lq_tokenizer_free(NULL);
    assert_int_equal(lq_tokenizer_vocab_size(NULL), 0);
    assert_int_equal(lq_tokenizer_bos_id(NULL), -1);
    assert_null(lq_tokenizer_token(NULL, 0));
    lq_tokenizer *t = load_tok(FIX "tiny_bytelevel.json");
    assert_int_equal(lq_tokenizer_bos_id(t), 0); /* the template's <|bos|> */
    assert_string_equal(lq_tokenizer_token(t, 0), "<|bos|>");
    assert_null(lq_tokenizer_token(t, -1));
    assert_int_equal(lq_tokenizer_set_bos_eos(t, 2, 3), LQ_OK);
    assert_int_equal(lq_tokenizer_bos_id(t), 2);
    assert_int_equal(lq_tokenizer_eos_id(t), 3);
    assert_int_equal(lq_tokenizer_set_bos_eos(t, 1 << 30, 0), LQ_ERR_ARG);
    lq_tokenizer_free(t);
}

/* one tokenizer, several threads: scratch is per call */
static void test_tokenizer_threads_share_one_tokenizer(void **state) {
    (void)state;
    lq_tokenizer *t = load_tok(FIX "tiny_llama3.json");
    const char *text = "Hello there, it's 2024 and we're testing threads! \xe6\x9d\xb1\xe4\xba\xac";
    int32_t *ref;
    size_t nref;
    encode_ok(t, text, strlen(text), 1, &ref, &nref);
    int bad = 0;
#pragma omp parallel for reduction(+ : bad) num_threads(4)
    for (int i = 0; i < 64; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (lq_tokenizer_encode(t, text, strlen(text), 1, &ids, &n) != LQ_OK || n != nref ||
            memcmp(ids, ref, n * sizeof *ids))
            bad++;
        free(ids);
    }
    assert_int_equal(bad, 0);
    free(ref);
    lq_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_stories260K_golden),
        cmocka_unit_test(test_tokenizer_stories260K_edge_cases),
        cmocka_unit_test(test_tokenizer_llama2c_matches_json),
        cmocka_unit_test(test_tokenizer_tokjson_spm_with_merges),
        cmocka_unit_test(test_tokenizer_tiny_fixtures),
        cmocka_unit_test(test_tokenizer_hand_made_options),
        cmocka_unit_test(test_tokenizer_tokjson_presets),
        cmocka_unit_test(test_tokenizer_smollm2_gguf),
        cmocka_unit_test(test_tokenizer_wikitext_speed),
        cmocka_unit_test(test_tokenizer_malformed_json),
        cmocka_unit_test(test_tokenizer_invalid_utf8_is_replacement_char),
        cmocka_unit_test(test_tokenizer_nfc_refuses_what_it_cannot_do),
        cmocka_unit_test(test_tokenizer_llama2c_malformed),
        cmocka_unit_test(test_tokenizer_free_null_and_accessors),
        cmocka_unit_test(test_tokenizer_threads_share_one_tokenizer),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
