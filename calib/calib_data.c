/* calib_data.c — calibration token sequences from a text file or a
 * JSONL(.gz) file with a "text" field, sampled with a seed, with provenance
 * (path, SHA-256 of the file, sizes, seed). See lq_calib.h.
 * Tested by tests/test_gptq.c. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lq_calib.h"

#define CALIB_MAX_TRIES 100000

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t rand_below(uint64_t *s, uint64_t m) { return m ? splitmix64(s) % m : 0; }

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Whole file through zlib (plain files pass through gzread unchanged). */
static lq_status read_gz(const char *path, char **out, size_t *n) {
    gzFile g = gzopen(path, "rb");
    LQ_RETURN_IF(!g, LQ_ERR_IO, "%s: cannot open", path);
    size_t cap = 1 << 20, len = 0;
    char *b = malloc(cap);
    if (!b) {
        gzclose(g);
        return lq_error(LQ_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (cap - len < (1 << 16)) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                gzclose(g);
                return lq_error(LQ_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, cap * 2);
            }
            b = nb;
            cap *= 2;
        }
        int r = gzread(g, b + len, (unsigned)(cap - len - 1));
        if (r < 0) {
            int e;
            const char *msg = gzerror(g, &e);
            lq_status st = lq_error(LQ_ERR_IO, "%s: read/decompress failed: %s", path, msg);
            free(b);
            gzclose(g);
            return st;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    gzclose(g);
    b[len] = 0;
    *out = b;
    *n = len;
    return LQ_OK;
}

void lq_calib_data_free(lq_calib_data *d) {
    if (!d) return;
    free(d->tokens);
    free(d->path);
    memset(d, 0, sizeof *d);
}

lq_status lq_calib_data_load(const char *path, const lq_tokenizer *tok, int n, int L, uint64_t seed,
                             lq_calib_data *d) {
    lq_status st = LQ_OK;
    char *raw = NULL, *text = NULL;
    size_t n_raw = 0, n_text = 0;
    int32_t *ids = NULL;
    char **docs = NULL;
    size_t *doc_len = NULL;
    memset(d, 0, sizeof *d);
    LQ_RETURN_IF(n < 1 || L < 2, LQ_ERR_ARG, "calibration: need nsamples >= 1 and seqlen >= 2 (got %d, %d)", n, L);
    LQ_RETURN_IF(!tok, LQ_ERR_ARG, "calibration: the model has no tokenizer");
    d->n_samples = n;
    d->seqlen = L;
    d->seed = seed;
    d->path = strdup(path);
    LQ_FAIL_IF(!d->path, LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(lq_read_file(path, &raw, &n_raw));
    lq_sha256_hex(raw, n_raw, d->sha256);
    d->file_bytes = n_raw;
    free(raw);
    raw = NULL;
    LQ_TRY(read_gz(path, &text, &n_text));
    LQ_TRY(lq_calloc((void **)&d->tokens, (size_t)n * (size_t)L, sizeof(int32_t), "calibration tokens"));
    uint64_t rng = seed;
    if (ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz")) {
        d->kind = "jsonl";
        size_t cap = 1024;
        LQ_TRY(lq_malloc((void **)&docs, cap * sizeof *docs, "documents"));
        LQ_TRY(lq_malloc((void **)&doc_len, cap * sizeof *doc_len, "documents"));
        int64_t line = 0;
        for (char *p = text; p < text + n_text;) {
            char *e = memchr(p, '\n', (size_t)(text + n_text - p));
            if (!e) e = text + n_text;
            line++;
            size_t ll = (size_t)(e - p);
            int blank = 1;
            for (size_t i = 0; i < ll && blank; i++) blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
            if (!blank) {
                json_error_t je;
                json_t *j = json_loadb(p, ll, 0, &je);
                json_t *t = json_object_get(j, "text");
                if (!json_is_string(t)) {
                    if (j) json_decref(j);
                    LQ_FAIL_IF(1, LQ_ERR_FORMAT, "%s: line %lld is not a JSON object with a string field \"text\"%s%s",
                               path, (long long)line, j ? "" : ": ", j ? "" : je.text);
                }
                if ((size_t)d->n_docs == cap) {
                    cap *= 2;
                    char **nd = realloc(docs, cap * sizeof *docs);
                    if (nd) docs = nd;
                    size_t *nl = realloc(doc_len, cap * sizeof *doc_len);
                    if (nl) doc_len = nl;
                    if (!nd || !nl) {
                        json_decref(j);
                        LQ_FAIL_IF(1, LQ_ERR_NOMEM, "out of memory");
                    }
                }
                size_t tl = json_string_length(t);
                docs[d->n_docs] = malloc(tl + 1);
                if (!docs[d->n_docs]) {
                    json_decref(j);
                    LQ_FAIL_IF(1, LQ_ERR_NOMEM, "out of memory");
                }
                memcpy(docs[d->n_docs], json_string_value(t), tl + 1);
                doc_len[d->n_docs] = tl;
                d->n_docs++;
                json_decref(j);
            }
            p = e + 1;
        }
        LQ_FAIL_IF(d->n_docs == 0, LQ_ERR_FORMAT, "%s: no documents", path);
        for (int s = 0; s < n; s++) {
            int tries = 0;
            for (;;) {
                LQ_FAIL_IF(++tries > CALIB_MAX_TRIES, LQ_ERR_ARG,
                           "%s: found no document longer than %d tokens in %d random draws; use a smaller --seqlen",
                           path, L, CALIB_MAX_TRIES);
                uint64_t di = rand_below(&rng, (uint64_t)d->n_docs);
                size_t nid = 0;
                free(ids);
                ids = NULL;
                LQ_TRY(lq_tokenizer_encode(tok, docs[di], doc_len[di], 1, &ids, &nid));
                if (nid <= (size_t)L) continue;
                uint64_t off = rand_below(&rng, nid - (size_t)L + 1);
                memcpy(d->tokens + (size_t)s * L, ids + off, sizeof(int32_t) * (size_t)L);
                break;
            }
        }
    } else {
        d->kind = "text";
        size_t nid = 0;
        LQ_TRY(lq_tokenizer_encode(tok, text, n_text, 1, &ids, &nid));
        d->n_text_tokens = (int64_t)nid;
        LQ_FAIL_IF(nid < (size_t)L, LQ_ERR_ARG, "%s: the text has %zu tokens, fewer than --seqlen %d", path, nid, L);
        for (int s = 0; s < n; s++) {
            uint64_t off = rand_below(&rng, nid - (size_t)L + 1);
            memcpy(d->tokens + (size_t)s * L, ids + off, sizeof(int32_t) * (size_t)L);
        }
    }
fail:
    if (docs)
        for (int64_t i = 0; i < d->n_docs; i++) free(docs[i]);
    free(docs);
    free(doc_len);
    free(ids);
    free(raw);
    free(text);
    if (st != LQ_OK) lq_calib_data_free(d);
    return st;
}

lq_status lq_calib_data_random(int vocab, int n, int L, uint64_t seed, lq_calib_data *d) {
    memset(d, 0, sizeof *d);
    LQ_RETURN_IF(vocab < 1 || n < 1 || L < 1, LQ_ERR_ARG, "random calibration: vocab %d, %d x %d tokens", vocab, n, L);
    lq_status st = LQ_OK;
    uint64_t rng = seed;
    d->n_samples = n;
    d->seqlen = L;
    d->seed = seed;
    d->kind = "random";
    LQ_TRY(lq_malloc((void **)&d->tokens, sizeof(int32_t) * (size_t)n * (size_t)L, "calibration tokens"));
    LQ_TRY(lq_malloc((void **)&d->path, 7, "calibration path"));
    memcpy(d->path, "random", 7);
    for (size_t i = 0; i < (size_t)n * (size_t)L; i++) d->tokens[i] = (int32_t)rand_below(&rng, (uint64_t)vocab);
    return LQ_OK;
fail:
    lq_calib_data_free(d);
    return st;
}

json_t *lq_calib_data_provenance(const lq_calib_data *d) {
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:I}", "dataset", d->path, "sha256", d->sha256, "bytes",
                          (json_int_t)d->file_bytes, "kind", d->kind ? d->kind : "?", "nsamples", d->n_samples,
                          "seqlen", d->seqlen, "seed", (json_int_t)d->seed);
    if (!j) return NULL;
    json_object_set_new(j, "sampler",
                        json_string(d->kind && !strcmp(d->kind, "jsonl")
                                        ? "splitmix64: random document with > seqlen tokens, random offset"
                                    : d->kind && !strcmp(d->kind, "random")
                                        ? "splitmix64: uniform token ids (speed runs only)"
                                        : "splitmix64: random offset into the tokenized file"));
    if (d->n_docs) json_object_set_new(j, "documents", json_integer(d->n_docs));
    if (d->n_text_tokens) json_object_set_new(j, "text_tokens", json_integer(d->n_text_tokens));
    return j;
}
