/* tokenizer.c — Hugging Face tokenizer.json (BPE models) in C: load, encode,
 * decode. See lq_tokenizer.h for the API.
 *
 * Why: every checkpoint lq reads (HF directory, GGUF, llama2.c) ends in a
 * tokenizer.json document, and perplexity numbers are only comparable with
 * other tools when the ids are exactly HF's. So this file mirrors the
 * `tokenizers` crate stage by stage, in the same order:
 *
 *   raw text --(added tokens, normalized=false)--> segments
 *            --normalizer--> --(added tokens, normalized=true)-->
 *            --pre-tokenizer--> pieces --BPE model--> ids --post-processor-->
 *
 * and decode is ids -> token strings -> decoder chain -> join.
 * Regexes (Split, Replace, ByteLevel's GPT-2 pattern, Digits) run through
 * PCRE2 in UTF + UCP mode (JIT when available); JSON through jansson.
 *
 * Supported: model BPE (merges as "a b" or [a, b]; byte_fallback, unk_token,
 * fuse_unk, ignore_merges, continuing_subword_prefix, end_of_word_suffix).
 * Normalizers: Sequence, Prepend, Replace, Lowercase (C.UTF-8 towlower plus
 * Rust's U+0130 rule), Strip, and NFC/NFKC/NFD/NFKD only where they are the
 * identity (normalize_unicode: text they would change is refused with
 * LQ_ERR_UNSUPPORTED at encode time, never silently mis-tokenized). Pre-tokenizers: Sequence, Split, ByteLevel,
 * Digits, Metaspace, Whitespace, WhitespaceSplit. Post-processors:
 * TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing,
 * Sequence. Decoders: Sequence, Replace, ByteFallback, Fuse, Strip,
 * ByteLevel, Metaspace. Anything else is LQ_ERR_UNSUPPORTED at load, naming
 * the field and the type.
 *
 * Invalid UTF-8 in the text to encode: each maximal invalid subsequence is
 * replaced by U+FFFD first (what Python's bytes.decode("utf-8", "replace")
 * gives, so the result equals HF's on that decoded string). Embedded NULs are
 * ordinary characters.
 *
 * Thread safety: a loaded lq_tokenizer is read-only; encode/decode keep all
 * scratch (PCRE2 match data, JIT stack, the BPE word cache) in a per-call
 * workspace, so one tokenizer may be used from several threads.
 *
 * Tested by tests/test_tokenizer.c (make test), fuzzed by
 * tests/fuzz/fuzz_tokenizer.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lq_tokenizer.h"

#include <locale.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ------------------------------------------------------------------------ */
/* growable buffers                                                         */
/* ------------------------------------------------------------------------ */

static lq_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return LQ_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 4 / elem) return lq_error(LQ_ERR_NOMEM, "tokenizer: buffer size overflow");
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return lq_error(LQ_ERR_NOMEM, "tokenizer: out of memory allocating %zu bytes", c * elem);
    *p = q;
    *cap = c;
    return LQ_OK;
}

/* bytes, always NUL-terminated after n */
typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;

static lq_status buf_add(tk_buf *b, const void *s, size_t n) {
    size_t need;
    if (lq_add_overflow(b->n, n + 1, &need)) return lq_error(LQ_ERR_NOMEM, "tokenizer: size overflow");
    LQ_FORWARD(grow((void **)&b->p, &b->cap, need, 1));
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return LQ_OK;
}

typedef struct {
    int32_t *p;
    size_t n, cap;
} tk_ids;

static lq_status ids_push(tk_ids *v, int32_t id) {
    LQ_FORWARD(grow((void **)&v->p, &v->cap, v->n + 1, sizeof *v->p));
    v->p[v->n++] = id;
    return LQ_OK;
}

/* A list of strings in one buffer: pre-tokenizer pieces, decoder tokens.
 * `first` marks a piece that starts at offset 0 of the original text (what
 * Metaspace's prepend_scheme "first" asks). */
typedef struct {
    size_t off, len;
    int first;
} tk_piece;
typedef struct {
    tk_buf b;
    tk_piece *p;
    size_t n, cap;
} tk_list;

static void list_clear(tk_list *l) {
    l->b.n = 0;
    l->n = 0;
}
static void list_free(tk_list *l) {
    free(l->b.p);
    free(l->p);
    memset(l, 0, sizeof *l);
}
/* Start a new (empty) piece; append bytes with list_cat. */
static lq_status list_open(tk_list *l, int first) {
    LQ_FORWARD(grow((void **)&l->p, &l->cap, l->n + 1, sizeof *l->p));
    l->p[l->n].off = l->b.n;
    l->p[l->n].len = 0;
    l->p[l->n].first = first;
    l->n++;
    return LQ_OK;
}
static lq_status list_cat(tk_list *l, const char *s, size_t n) {
    LQ_FORWARD(buf_add(&l->b, s, n));
    l->p[l->n - 1].len += n;
    return LQ_OK;
}
static lq_status list_push(tk_list *l, const char *s, size_t n, int first) {
    LQ_FORWARD(list_open(l, first));
    return list_cat(l, s, n);
}
/* An empty list's buffer is still NULL: NULL + 0 is undefined in C (UBSan, found by fuzz_tokenizer). */
static const char *list_str(const tk_list *l, size_t i) { return l->b.p ? l->b.p + l->p[i].off : ""; }

/* ------------------------------------------------------------------------ */
/* hash maps                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    return h ^ (h >> 32);
}

/* string -> (v1, v2); keys copied into an arena (offsets, so it may grow) */
typedef struct {
    uint32_t *slot; /* entry index + 1; 0 = empty */
    size_t n_slots;
    size_t n, cap;
    size_t *koff;
    uint32_t *klen;
    uint64_t *khash;
    int32_t *v1, *v2;
    tk_buf keys;
} tk_strmap;

static void sm_free(tk_strmap *m) {
    free(m->slot);
    free(m->koff);
    free(m->klen);
    free(m->khash);
    free(m->v1);
    free(m->v2);
    free(m->keys.p);
    memset(m, 0, sizeof *m);
}

static int64_t sm_find(const tk_strmap *m, const char *s, size_t n) {
    if (!m->n_slots) return -1;
    uint64_t h = hash_bytes(s, n);
    size_t mask = m->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t e = m->slot[i];
        if (!e) return -1;
        e--;
        if (m->khash[e] == h && m->klen[e] == n && memcmp(m->keys.p + m->koff[e], s, n) == 0) return e;
    }
}

static lq_status sm_rehash(tk_strmap *m, size_t n_slots) {
    uint32_t *slot = calloc(n_slots, sizeof *slot);
    if (!slot) return lq_error(LQ_ERR_NOMEM, "tokenizer: out of memory (hash table of %zu slots)", n_slots);
    for (size_t e = 0; e < m->n; e++) {
        size_t i = m->khash[e] & (n_slots - 1);
        while (slot[i]) i = (i + 1) & (n_slots - 1);
        slot[i] = (uint32_t)e + 1;
    }
    free(m->slot);
    m->slot = slot;
    m->n_slots = n_slots;
    return LQ_OK;
}

/* Insert or (overwrite != 0) replace. */
static lq_status sm_put(tk_strmap *m, const char *s, size_t n, int32_t v1, int32_t v2, int overwrite) {
    if (n > UINT32_MAX) return lq_error(LQ_ERR_FORMAT, "tokenizer: string of %zu bytes is too long", n);
    int64_t e = sm_find(m, s, n);
    if (e >= 0) {
        if (overwrite) m->v1[e] = v1, m->v2[e] = v2;
        return LQ_OK;
    }
    if ((m->n + 1) * 2 > m->n_slots) LQ_FORWARD(sm_rehash(m, m->n_slots ? m->n_slots * 2 : 64));
    if (m->n + 1 > m->cap) {
        size_t c = m->cap;
        LQ_FORWARD(grow((void **)&m->koff, &c, m->n + 1, sizeof *m->koff));
        c = m->cap;
        LQ_FORWARD(grow((void **)&m->klen, &c, m->n + 1, sizeof *m->klen));
        c = m->cap;
        LQ_FORWARD(grow((void **)&m->khash, &c, m->n + 1, sizeof *m->khash));
        c = m->cap;
        LQ_FORWARD(grow((void **)&m->v1, &c, m->n + 1, sizeof *m->v1));
        c = m->cap;
        LQ_FORWARD(grow((void **)&m->v2, &c, m->n + 1, sizeof *m->v2));
        m->cap = c;
    }
    size_t k = m->n;
    m->koff[k] = m->keys.n;
    m->klen[k] = (uint32_t)n;
    m->khash[k] = hash_bytes(s, n);
    m->v1[k] = v1;
    m->v2[k] = v2;
    LQ_FORWARD(buf_add(&m->keys, s, n));
    m->n++;
    size_t mask = m->n_slots - 1, i = m->khash[k] & mask;
    while (m->slot[i]) i = (i + 1) & mask;
    m->slot[i] = (uint32_t)k + 1;
    return LQ_OK;
}

/* (left id, right id) -> (rank, merged id) */
typedef struct {
    uint64_t *key; /* UINT64_MAX = empty */
    int32_t *rank, *id;
    size_t n_slots, n;
} tk_pairmap;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void pm_free(tk_pairmap *m) {
    free(m->key);
    free(m->rank);
    free(m->id);
    memset(m, 0, sizeof *m);
}

static lq_status pm_init(tk_pairmap *m, size_t n_expected) {
    size_t s = 64;
    while (s < n_expected * 2 + 2) s *= 2;
    m->key = malloc(s * sizeof *m->key);
    m->rank = malloc(s * sizeof *m->rank);
    m->id = malloc(s * sizeof *m->id);
    if (!m->key || !m->rank || !m->id) return lq_error(LQ_ERR_NOMEM, "tokenizer: out of memory (merge table)");
    memset(m->key, 0xff, s * sizeof *m->key);
    m->n_slots = s;
    m->n = 0;
    return LQ_OK;
}

/* Later entries overwrite earlier ones, as HF's HashMap collect does. */
static void pm_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->n_slots - 1;
    for (size_t i = mix64(k) & mask;; i = (i + 1) & mask) {
        if (m->key[i] == k || m->key[i] == UINT64_MAX) {
            if (m->key[i] == UINT64_MAX) m->n++;
            m->key[i] = k;
            m->rank[i] = rank;
            m->id[i] = id;
            return;
        }
    }
}

static int pm_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->n) return 0;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->n_slots - 1;
    for (size_t i = mix64(k) & mask;; i = (i + 1) & mask) {
        if (m->key[i] == UINT64_MAX) return 0;
        if (m->key[i] == k) {
            *rank = m->rank[i];
            *id = m->id[i];
            return 1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[i] (1..4), or 0 when invalid; on 0,
 * *bad is the length of the maximal invalid subpart to replace by one U+FFFD
 * (Unicode's "substitution of maximal subparts", as Python and Rust do). */
static size_t u8_check(const unsigned char *s, size_t n, size_t i, size_t *bad) {
    unsigned c = s[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t k = 1;
    for (; k <= need; k++) {
        if (i + k >= n) break;
        unsigned d = s[i + k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
    }
    if (k > need) return need + 1;
    *bad = k;
    return 0;
}

/* Code point of the valid UTF-8 char at s; *len gets its length. */
static uint32_t u8_dec(const char *s, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) return *len = 1, u[0];
    if (u[0] < 0xE0) return *len = 2, ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    if (u[0] < 0xF0) return *len = 3, ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    return *len = 4, ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
                         ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}
static size_t u8_clen(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static size_t u8_enc(uint32_t cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    return o[0] = (char)(0xF0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
           o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), 4;
}

static int utf8_valid(const char *s, size_t n) {
    size_t bad;
    for (size_t i = 0; i < n;) {
        size_t k = u8_check((const unsigned char *)s, n, i, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Append s to out with invalid sequences replaced by U+FFFD (from_utf8_lossy). */
static lq_status utf8_lossy(const char *s, size_t n, tk_buf *out) {
    size_t bad, i = 0, run = 0;
    while (i < n) {
        size_t k = u8_check((const unsigned char *)s, n, i, &bad);
        if (k) {
            i += k;
            continue;
        }
        LQ_FORWARD(buf_add(out, s + run, i - run));
        LQ_FORWARD(buf_add(out, "\xEF\xBF\xBD", 3));
        i += bad;
        run = i;
    }
    return buf_add(out, s + run, n - run);
}

/* Rust's char::is_whitespace (Unicode White_Space), which HF's lstrip/rstrip
 * and Strip use. */
static int uni_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* ------------------------------------------------------------------------ */
/* patterns: a literal string or a PCRE2 regex                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *lit; /* literal (may contain NUL) when re == NULL */
    size_t lit_len;
    pcre2_code *re;
} tk_pattern;

static void pat_free(tk_pattern *p) {
    free(p->lit);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

/* Compile a regex exactly as tokenizer.json gives it. UCP makes \s \w \d
 * Unicode-aware like Oniguruma's defaults in HF. */
static lq_status rx_compile(const char *src, const char *field, const char *pat, size_t len, pcre2_code **out) {
    int err;
    PCRE2_SIZE eoff;
    *out = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lq_error(LQ_ERR_FORMAT, "%s: %s: regex \"%.*s\" does not compile at offset %zu: %s", src, field,
                        len > 200 ? 200 : (int)len, pat, (size_t)eoff, (const char *)msg);
    }
    /* JIT is an optimisation only: on failure the interpreter is used. */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return LQ_OK;
}

/* {"String": s} or {"Regex": r} */
static lq_status pat_parse(const char *src, const char *field, const json_t *j, tk_pattern *p) {
    memset(p, 0, sizeof *p);
    json_t *s = json_object_get(j, "String"), *r = json_object_get(j, "Regex");
    if (json_is_string(s)) {
        p->lit_len = json_string_length(s);
        p->lit = malloc(p->lit_len + 1);
        if (!p->lit) return lq_error(LQ_ERR_NOMEM, "%s: out of memory", src);
        memcpy(p->lit, json_string_value(s), p->lit_len + 1);
        return LQ_OK;
    }
    if (json_is_string(r)) return rx_compile(src, field, json_string_value(r), json_string_length(r), &p->re);
    return lq_error(LQ_ERR_FORMAT, "%s: %s: pattern must be {\"String\": ...} or {\"Regex\": ...}", src, field);
}

/* per-call scratch shared by every stage */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
} tk_rx;

static lq_status rx_init(tk_rx *r) {
    memset(r, 0, sizeof *r);
    r->md = pcre2_match_data_create(32, NULL);
    r->mctx = pcre2_match_context_create(NULL);
    /* The default 32 KiB JIT stack is too small for \s+ over long runs. */
    r->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!r->md || !r->mctx) return lq_error(LQ_ERR_NOMEM, "tokenizer: out of memory (PCRE2 match data)");
    if (r->jit) pcre2_jit_stack_assign(r->mctx, NULL, r->jit);
    return LQ_OK;
}
static void rx_free(tk_rx *r) {
    if (r->md) pcre2_match_data_free(r->md);
    if (r->mctx) pcre2_match_context_free(r->mctx);
    if (r->jit) pcre2_jit_stack_free(r->jit);
    memset(r, 0, sizeof *r);
}

/* Next match of p in s[0..n) at or after `from`: 1 found, 0 none, <0 error
 * (message set). Subjects are valid UTF-8 (encode sanitizes first). */
static int pat_next(tk_rx *r, const tk_pattern *p, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                    lq_status *st) {
    if (!p->re) {
        if (!p->lit_len || from >= n) return 0;
        const char *q = memmem(s + from, n - from, p->lit, p->lit_len);
        if (!q) return 0;
        *ms = (size_t)(q - s);
        *me = *ms + p->lit_len;
        return 1;
    }
    if (from > n) return 0;
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, r->md, r->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        *st = lq_error(LQ_ERR_UNSUPPORTED, "tokenizer: regex match failed on a %zu-byte piece: %s", n,
                       (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) *me = *ms; /* \K tricks; never happens with HF patterns */
    return 1;
}

/* HF's Pattern::find_matches: the whole of s as alternating (start, end,
 * is_match) segments. Empty matches split too and are dropped later. */
typedef struct {
    size_t s, e;
    int m;
} tk_seg;
typedef struct {
    tk_seg *p;
    size_t n, cap;
} tk_segs;

static lq_status segs_push(tk_segs *v, size_t s, size_t e, int m) {
    LQ_FORWARD(grow((void **)&v->p, &v->cap, v->n + 1, sizeof *v->p));
    v->p[v->n++] = (tk_seg){s, e, m};
    return LQ_OK;
}

static lq_status find_matches(tk_rx *r, const tk_pattern *p, const char *s, size_t n, tk_segs *out) {
    lq_status st = LQ_OK;
    out->n = 0;
    size_t prev = 0, from = 0, ms, me;
    for (;;) {
        int k = pat_next(r, p, s, n, from, &ms, &me, &st);
        if (k < 0) return st;
        if (!k) break;
        if (ms > prev) LQ_FORWARD(segs_push(out, prev, ms, 0));
        LQ_FORWARD(segs_push(out, ms, me, 1));
        prev = me;
        if (me > ms) from = me;
        else { /* empty match: step one character, as Oniguruma's find_iter does */
            if (me >= n) break;
            from = me + u8_clen((unsigned char)s[me]);
        }
    }
    if (prev < n || out->n == 0) LQ_FORWARD(segs_push(out, prev, n, 0));
    return LQ_OK;
}

/* Replace every match of p in s by `with`, appending to out. */
static lq_status pat_replace(tk_rx *r, const tk_pattern *p, const char *s, size_t n, const char *with,
                             size_t with_len, tk_buf *out) {
    lq_status st = LQ_OK;
    size_t prev = 0, from = 0, ms, me;
    for (;;) {
        int k = pat_next(r, p, s, n, from, &ms, &me, &st);
        if (k < 0) return st;
        if (!k) break;
        LQ_FORWARD(buf_add(out, s + prev, ms - prev));
        LQ_FORWARD(buf_add(out, with, with_len));
        prev = me;
        if (me > ms) from = me;
        else {
            if (me >= n) break;
            size_t cl = u8_clen((unsigned char)s[me]);
            LQ_FORWARD(buf_add(out, s + me, cl));
            prev = from = me + cl;
        }
    }
    return buf_add(out, s + prev, n - prev);
}

/* ------------------------------------------------------------------------ */
/* components                                                               */
/* ------------------------------------------------------------------------ */

enum { N_SEQ, N_PREPEND, N_REPLACE, N_LOWER, N_STRIP, N_NFC, N_NFD, N_NFKC, N_NFKD };
typedef struct tk_norm {
    int kind;
    struct tk_norm *sub;
    size_t n_sub;
    tk_pattern pat;
    char *str; /* Prepend's prepend, Replace's content */
    size_t str_len;
    int left, right; /* Strip */
} tk_norm;

enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };
enum { P_SEQ, P_SPLIT, P_BYTELEVEL, P_DIGITS, P_METASPACE, P_WHITESPACE, P_WSSPLIT };
enum { PS_ALWAYS, PS_FIRST, PS_NEVER };
typedef struct tk_pre {
    int kind;
    struct tk_pre *sub;
    size_t n_sub;
    tk_pattern pat; /* Split's, ByteLevel's GPT-2 regex, Digits' \p{N}, Whitespace's */
    int behavior, invert;
    int add_prefix_space, use_regex;
    char repl[8]; /* Metaspace replacement char, UTF-8 */
    size_t repl_len;
    int scheme, split;
} tk_pre;

enum { D_SEQ, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_BYTELEVEL, D_METASPACE };
typedef struct tk_dec {
    int kind;
    struct tk_dec *sub;
    size_t n_sub;
    tk_pattern pat;
    char *str;
    size_t str_len;
    uint32_t ch; /* Strip's content char, Metaspace's replacement */
    int start, stop;
    int scheme;
} tk_dec;

typedef struct {
    char *content; /* as given */
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tk_added;

/* Added tokens of one kind (normalized or not), indexed by first byte and
 * sorted longest first, so the first hit at a position is the leftmost-
 * longest match that HF's Aho-Corasick (MatchKind::LeftmostLongest) finds. */
typedef struct {
    size_t *idx; /* into tok->added */
    char **text; /* what is matched: content, normalized for normalized=true */
    size_t *len;
    size_t n;
    size_t start[257];
} tk_addset;

struct lq_tokenizer {
    char *source;
    int32_t n_ids;     /* max id + 1 over the model vocab and the added tokens */
    char **id_str;     /* [n_ids] NUL-terminated, NULL for unused ids */
    uint32_t *id_len;  /* [n_ids] */
    uint8_t *id_special;
    /* BPE model */
    tk_strmap vocab; /* string -> id (v1) */
    tk_pairmap merges;
    int32_t unk_id; /* -1: none */
    int byte_fallback, fuse_unk, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix or NULL */
    size_t prefix_len, suffix_len;
    int32_t byte_id[256]; /* <0xXX> ids, -1 absent */
    /* the pipeline */
    tk_added *added;
    size_t n_added;
    tk_addset raw_set, norm_set;
    tk_norm *norm;
    tk_pre *pre;
    tk_dec *dec;
    int32_t *post_pre, *post_post; /* ids the post-processor puts before / after */
    size_t n_post_pre, n_post_post;
    int32_t bos_id, eos_id;
    pcre2_code *word_re; /* \w, for single_word */
    locale_t lc;         /* C.UTF-8 for Lowercase; (locale_t)0 when unavailable */
    /* GPT-2's byte <-> printable char table */
    char bl_enc[256][2];
    uint8_t bl_len[256];
    int16_t bl_dec[324]; /* code point -> byte, -1 */
};

/* ------------------------------------------------------------------------ */
/* JSON helpers                                                             */
/* ------------------------------------------------------------------------ */

static int jbool(const json_t *o, const char *k, int def) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static lq_status jdup(const char *src, const char *field, const json_t *v, char **out, size_t *len) {
    if (!json_is_string(v)) return lq_error(LQ_ERR_FORMAT, "%s: %s: expected a string", src, field);
    size_t n = json_string_length(v);
    *out = malloc(n + 1);
    if (!*out) return lq_error(LQ_ERR_NOMEM, "%s: out of memory", src);
    memcpy(*out, json_string_value(v), n + 1);
    if (len) *len = n;
    return LQ_OK;
}

static const char *jtype(const json_t *o) {
    const char *t = json_string_value(json_object_get(o, "type"));
    return t ? t : "";
}

/* ------------------------------------------------------------------------ */
/* normalizers                                                              */
/* ------------------------------------------------------------------------ */

static void norm_free_inner(tk_norm *n) {
    for (size_t i = 0; i < n->n_sub; i++) norm_free_inner(&n->sub[i]);
    free(n->sub);
    pat_free(&n->pat);
    free(n->str);
}

static lq_status norm_parse(lq_tokenizer *t, const char *field, const json_t *j, tk_norm *n, int depth) {
    const char *src = t->source;
    memset(n, 0, sizeof *n);
    char f[256];
    LQ_RETURN_IF(depth > 16, LQ_ERR_FORMAT, "%s: %s: nested too deeply", src, field);
    LQ_RETURN_IF(!json_is_object(j), LQ_ERR_FORMAT, "%s: %s: expected an object", src, field);
    const char *type = jtype(j);
    if (!strcmp(type, "Sequence")) {
        n->kind = N_SEQ;
        json_t *a = json_object_get(j, "normalizers");
        LQ_RETURN_IF(!json_is_array(a), LQ_ERR_FORMAT, "%s: %s.normalizers: expected an array", src, field);
        n->sub = calloc(json_array_size(a) + 1, sizeof *n->sub);
        LQ_RETURN_IF(!n->sub, LQ_ERR_NOMEM, "%s: out of memory", src);
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(f, sizeof f, "%s.normalizers[%zu]", field, i);
            n->n_sub = i + 1;
            LQ_FORWARD(norm_parse(t, f, json_array_get(a, i), &n->sub[i], depth + 1));
        }
    } else if (!strcmp(type, "Prepend")) {
        n->kind = N_PREPEND;
        snprintf(f, sizeof f, "%s.prepend", field);
        LQ_FORWARD(jdup(src, f, json_object_get(j, "prepend"), &n->str, &n->str_len));
    } else if (!strcmp(type, "Replace")) {
        n->kind = N_REPLACE;
        snprintf(f, sizeof f, "%s.pattern", field);
        LQ_FORWARD(pat_parse(src, f, json_object_get(j, "pattern"), &n->pat));
        snprintf(f, sizeof f, "%s.content", field);
        LQ_FORWARD(jdup(src, f, json_object_get(j, "content"), &n->str, &n->str_len));
    } else if (!strcmp(type, "Lowercase")) {
        n->kind = N_LOWER;
    } else if (!strcmp(type, "Strip")) {
        n->kind = N_STRIP;
        n->left = jbool(j, "strip_left", 1);
        n->right = jbool(j, "strip_right", 1);
    } else if (!strcmp(type, "NFC")) n->kind = N_NFC;
    else if (!strcmp(type, "NFD")) n->kind = N_NFD;
    else if (!strcmp(type, "NFKC")) n->kind = N_NFKC;
    else if (!strcmp(type, "NFKD")) n->kind = N_NFKD;
    else
        return lq_error(LQ_ERR_UNSUPPORTED, "%s: %s: normalizer type \"%s\" is not supported", src, field, type);
    return LQ_OK;
}

/* tokenizer_unicode.c (generated): 1 when normalization form `form` (0 NFC,
 * 1 NFKC, 2 NFD, 3 NFKD) leaves cp unchanged whatever surrounds it. */
int lq_tok_unicode_stable(uint32_t cp, int form);

/* lq does not implement the Unicode normalization forms. Text made only of
 * chars each form leaves alone in any context is its own normal form, so we
 * pass it through; anything else is refused rather than mis-tokenized (HF
 * would change it). Real text in NFC (nearly all text) passes NFC. */
static lq_status normalize_unicode(const tk_norm *n, const char *s, size_t len) {
    static const char *names[] = {"NFC", "NFKC", "NFD", "NFKD"};
    int form = n->kind == N_NFC ? 0 : n->kind == N_NFKC ? 1 : n->kind == N_NFD ? 2 : 3;
    for (size_t i = 0; i < len;) {
        size_t cl;
        uint32_t c = u8_dec(s + i, &cl);
        if (!lq_tok_unicode_stable(c, form))
            return lq_error(LQ_ERR_UNSUPPORTED,
                            "%s normalizer: U+%04X at byte %zu of a normalized segment would be changed by %s, which lq does not "
                            "implement (text must already be in %s)",
                            names[form], (unsigned)c, i, names[form], names[form]);
        i += cl;
    }
    return LQ_OK;
}

/* out = normalized s. */
static lq_status normalize(const lq_tokenizer *t, tk_rx *r, const tk_norm *n, const char *s, size_t len,
                           tk_buf *out) {
    out->n = 0;
    switch (n->kind) {
    case N_SEQ: {
        tk_buf a = {0}, b = {0};
        lq_status st = buf_add(&a, s, len);
        for (size_t i = 0; st == LQ_OK && i < n->n_sub; i++) {
            st = normalize(t, r, &n->sub[i], a.p, a.n, &b);
            tk_buf x = a;
            a = b;
            b = x;
        }
        if (st == LQ_OK) st = buf_add(out, a.p, a.n);
        free(a.p);
        free(b.p);
        return st;
    }
    case N_PREPEND:
        if (len) LQ_FORWARD(buf_add(out, n->str, n->str_len));
        return buf_add(out, s, len);
    case N_REPLACE: return pat_replace(r, &n->pat, s, len, n->str, n->str_len, out);
    case N_LOWER:
        for (size_t i = 0; i < len;) {
            size_t cl;
            uint32_t c = u8_dec(s + i, &cl);
            char e[4];
            if (c < 0x80) c = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            else if (c == 0x130) {
                /* Rust's char::to_lowercase: the one unconditional multi-char
                 * mapping, U+0130 -> "i" U+0307 */
                LQ_FORWARD(buf_add(out, "i\xCC\x87", 3));
                i += cl;
                continue;
            } else if (t->lc) {
                uint32_t l = (uint32_t)towlower_l((wint_t)c, t->lc);
                if (l && l <= 0x10FFFF && !(l >= 0xD800 && l <= 0xDFFF)) c = l;
            } else {
                /* no C.UTF-8 locale on this system: refuse rather than guess */
                return lq_error(LQ_ERR_UNSUPPORTED,
                                "Lowercase normalizer: U+%04X needs the C.UTF-8 locale, which is not available",
                                (unsigned)c);
            }
            LQ_FORWARD(buf_add(out, e, u8_enc(c, e)));
            i += cl;
        }
        return LQ_OK;
    case N_STRIP: {
        size_t a = 0, b = len, cl;
        while (n->left && a < b && uni_space(u8_dec(s + a, &cl))) a += cl;
        while (n->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            if (!uni_space(u8_dec(s + k, &cl))) break;
            b = k;
        }
        return buf_add(out, s + a, b - a);
    }
    default: LQ_FORWARD(normalize_unicode(n, s, len)); return buf_add(out, s, len);
    }
}

/* ------------------------------------------------------------------------ */
/* pre-tokenizers                                                           */
/* ------------------------------------------------------------------------ */

/* GPT-2's pattern as HF's ByteLevel uses it (its trailing \s+ included). */
static const char k_gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void pre_free_inner(tk_pre *p) {
    for (size_t i = 0; i < p->n_sub; i++) pre_free_inner(&p->sub[i]);
    free(p->sub);
    pat_free(&p->pat);
}

static lq_status behavior_parse(const char *src, const char *field, const json_t *j, int *b) {
    const char *s = json_string_value(json_object_get(j, "behavior"));
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; s && i < 5; i++)
        if (!strcmp(s, names[i])) return *b = i, LQ_OK;
    return lq_error(LQ_ERR_FORMAT, "%s: %s.behavior: \"%s\" is not a split behavior", src, field, s ? s : "(missing)");
}

static lq_status scheme_parse(const char *src, const char *field, const json_t *j, int *scheme) {
    json_t *ps = json_object_get(j, "prepend_scheme");
    if (json_is_string(ps)) {
        const char *s = json_string_value(ps);
        if (!strcmp(s, "always")) *scheme = PS_ALWAYS;
        else if (!strcmp(s, "first")) *scheme = PS_FIRST;
        else if (!strcmp(s, "never")) *scheme = PS_NEVER;
        else return lq_error(LQ_ERR_FORMAT, "%s: %s.prepend_scheme: unknown value \"%s\"", src, field, s);
    } else {
        /* older files: add_prefix_space */
        *scheme = jbool(j, "add_prefix_space", 1) ? PS_ALWAYS : PS_NEVER;
    }
    return LQ_OK;
}

static lq_status repl_parse(const char *src, const char *field, const json_t *j, char *repl, size_t *len,
                            uint32_t *cp) {
    json_t *r = json_object_get(j, "replacement");
    const char *s = json_is_string(r) ? json_string_value(r) : "\xE2\x96\x81";
    size_t n = json_is_string(r) ? json_string_length(r) : 3, bad;
    if (!n || n > 4 || u8_check((const unsigned char *)s, n, 0, &bad) != n)
        return lq_error(LQ_ERR_FORMAT, "%s: %s.replacement: must be one character, got \"%s\"", src, field, s);
    memcpy(repl, s, n);
    *len = n;
    if (cp) *cp = u8_dec(s, &bad);
    return LQ_OK;
}

static lq_status pre_parse(lq_tokenizer *t, const char *field, const json_t *j, tk_pre *p, int depth) {
    const char *src = t->source;
    memset(p, 0, sizeof *p);
    char f[256];
    LQ_RETURN_IF(depth > 16, LQ_ERR_FORMAT, "%s: %s: nested too deeply", src, field);
    LQ_RETURN_IF(!json_is_object(j), LQ_ERR_FORMAT, "%s: %s: expected an object", src, field);
    const char *type = jtype(j);
    if (!strcmp(type, "Sequence")) {
        p->kind = P_SEQ;
        json_t *a = json_object_get(j, "pretokenizers");
        LQ_RETURN_IF(!json_is_array(a), LQ_ERR_FORMAT, "%s: %s.pretokenizers: expected an array", src, field);
        p->sub = calloc(json_array_size(a) + 1, sizeof *p->sub);
        LQ_RETURN_IF(!p->sub, LQ_ERR_NOMEM, "%s: out of memory", src);
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(f, sizeof f, "%s.pretokenizers[%zu]", field, i);
            p->n_sub = i + 1;
            LQ_FORWARD(pre_parse(t, f, json_array_get(a, i), &p->sub[i], depth + 1));
        }
    } else if (!strcmp(type, "Split")) {
        p->kind = P_SPLIT;
        snprintf(f, sizeof f, "%s.pattern", field);
        LQ_FORWARD(pat_parse(src, f, json_object_get(j, "pattern"), &p->pat));
        LQ_FORWARD(behavior_parse(src, field, j, &p->behavior));
        p->invert = jbool(j, "invert", 0);
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = P_BYTELEVEL;
        p->add_prefix_space = jbool(j, "add_prefix_space", 1);
        p->use_regex = jbool(j, "use_regex", 1);
        if (p->use_regex) LQ_FORWARD(rx_compile(src, field, k_gpt2_re, sizeof k_gpt2_re - 1, &p->pat.re));
    } else if (!strcmp(type, "Digits")) {
        p->kind = P_DIGITS;
        /* HF splits on char::is_numeric, one char per match */
        p->behavior = jbool(j, "individual_digits", 0) ? B_ISOLATED : B_CONTIGUOUS;
        LQ_FORWARD(rx_compile(src, field, "\\p{N}", 5, &p->pat.re));
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = P_METASPACE;
        LQ_FORWARD(repl_parse(src, field, j, p->repl, &p->repl_len, NULL));
        LQ_FORWARD(scheme_parse(src, field, j, &p->scheme));
        p->split = jbool(j, "split", 1);
        p->pat.lit = malloc(p->repl_len);
        LQ_RETURN_IF(!p->pat.lit, LQ_ERR_NOMEM, "%s: out of memory", src);
        memcpy(p->pat.lit, p->repl, p->repl_len);
        p->pat.lit_len = p->repl_len;
    } else if (!strcmp(type, "Whitespace")) {
        /* HF: keep the matches of \w+|[^\w\s]+, drop the rest */
        p->kind = P_WHITESPACE;
        p->behavior = B_REMOVED;
        p->invert = 1;
        LQ_FORWARD(rx_compile(src, field, "\\w+|[^\\w\\s]+", 12, &p->pat.re));
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = P_WSSPLIT;
        p->behavior = B_REMOVED;
        LQ_FORWARD(rx_compile(src, field, "\\s", 2, &p->pat.re));
    } else {
        return lq_error(LQ_ERR_UNSUPPORTED, "%s: %s: pre-tokenizer type \"%s\" is not supported", src, field, type);
    }
    return LQ_OK;
}

/* NormalizedString::split: cut s by the matches of pat with HF's behaviors,
 * dropping removed and empty parts. */
static lq_status split_piece(tk_rx *r, const tk_pattern *pat, int behavior, int invert, const char *s, size_t n,
                             int first, tk_segs *segs, tk_list *out) {
    LQ_FORWARD(find_matches(r, pat, s, n, segs));
    tk_seg *g = segs->p;
    size_t m = segs->n, k = 0;
    if (invert)
        for (size_t i = 0; i < m; i++) g[i].m = !g[i].m;
    /* rewrite in place into (s, e, remove) */
    switch (behavior) {
    case B_REMOVED: k = m; break;
    case B_ISOLATED:
        for (size_t i = 0; i < m; i++) g[i].m = 0;
        k = m;
        break;
    case B_CONTIGUOUS: {
        int prev = 0;
        for (size_t i = 0; i < m; i++) {
            int im = g[i].m;
            if (im == prev && k) g[k - 1].e = g[i].e;
            else g[k++] = (tk_seg){g[i].s, g[i].e, 0};
            prev = im;
        }
        break;
    }
    case B_MERGED_PREV: {
        int prev = 0;
        for (size_t i = 0; i < m; i++) {
            int im = g[i].m;
            if (im && !prev && k) g[k - 1].e = g[i].e;
            else g[k++] = (tk_seg){g[i].s, g[i].e, 0};
            prev = im;
        }
        break;
    }
    case B_MERGED_NEXT: {
        /* HF folds from the right */
        int prev = 0;
        size_t w = m; /* build from the end, in place */
        for (size_t i = m; i-- > 0;) {
            int im = g[i].m;
            if (im && !prev && w < m) g[w].s = g[i].s;
            else g[--w] = (tk_seg){g[i].s, g[i].e, 0};
            prev = im;
        }
        memmove(g, g + w, (m - w) * sizeof *g);
        k = m - w;
        break;
    }
    }
    for (size_t i = 0; i < k; i++)
        if (!g[i].m && g[i].e > g[i].s) LQ_FORWARD(list_push(out, s + g[i].s, g[i].e - g[i].s, first && g[i].s == 0));
    return LQ_OK;
}

typedef struct {
    tk_rx rx;
    tk_segs segs;
    tk_list la, lb; /* pre-tokenizer ping-pong */
    tk_buf nb;      /* normalized text */
    tk_buf tmp;
    /* BPE */
    struct tk_sym *sym;
    size_t cap_sym;
    struct tk_hent *heap;
    size_t cap_heap;
    tk_strmap cache; /* piece -> (offset, count) into cache_ids */
    tk_ids cache_ids;
} tk_ws;

static lq_status pre_apply(const lq_tokenizer *t, tk_ws *w, const tk_pre *p, tk_list *in, tk_list *out);

static lq_status pre_apply_one(const lq_tokenizer *t, tk_ws *w, const tk_pre *p, const char *s, size_t n, int first,
                               tk_list *out) {
    switch (p->kind) {
    case P_SPLIT:
    case P_DIGITS:
    case P_WHITESPACE:
    case P_WSSPLIT: return split_piece(&w->rx, &p->pat, p->behavior, p->invert, s, n, first, &w->segs, out);
    case P_BYTELEVEL: {
        w->tmp.n = 0;
        if (p->add_prefix_space && (n == 0 || s[0] != ' ')) LQ_FORWARD(buf_add(&w->tmp, " ", 1));
        LQ_FORWARD(buf_add(&w->tmp, s, n));
        if (p->use_regex) {
            /* split into out, then map each new piece's bytes in a second pass */
            tk_list tmpl = {0};
            lq_status st = split_piece(&w->rx, &p->pat, B_ISOLATED, 0, w->tmp.p, w->tmp.n, first, &w->segs, &tmpl);
            for (size_t i = 0; st == LQ_OK && i < tmpl.n; i++) {
                st = list_open(out, tmpl.p[i].first);
                const unsigned char *q = (const unsigned char *)list_str(&tmpl, i);
                for (size_t j = 0; st == LQ_OK && j < tmpl.p[i].len; j++)
                    st = list_cat(out, t->bl_enc[q[j]], t->bl_len[q[j]]);
            }
            list_free(&tmpl);
            return st;
        }
        if (!w->tmp.n) return LQ_OK;
        LQ_FORWARD(list_open(out, first));
        for (size_t j = 0; j < w->tmp.n; j++) {
            unsigned char c = (unsigned char)w->tmp.p[j];
            LQ_FORWARD(list_cat(out, t->bl_enc[c], t->bl_len[c]));
        }
        return LQ_OK;
    }
    case P_METASPACE: {
        /* replace ' ', prepend per scheme, then split before each replacement */
        tk_buf b = {0};
        lq_status st = LQ_OK;
        for (size_t i = 0; st == LQ_OK && i < n; i++)
            st = s[i] == ' ' ? buf_add(&b, p->repl, p->repl_len) : buf_add(&b, s + i, 1);
        int starts = b.n >= p->repl_len && !memcmp(b.p, p->repl, p->repl_len);
        if (st == LQ_OK && !starts && (p->scheme == PS_ALWAYS || (p->scheme == PS_FIRST && first))) {
            tk_buf c = {0};
            st = buf_add(&c, p->repl, p->repl_len);
            if (st == LQ_OK) st = buf_add(&c, b.p, b.n);
            free(b.p);
            b = c;
        }
        if (st == LQ_OK && b.n) {
            if (p->split) st = split_piece(&w->rx, &p->pat, B_MERGED_NEXT, 0, b.p, b.n, first, &w->segs, out);
            else st = list_push(out, b.p, b.n, first);
        }
        free(b.p);
        return st;
    }
    case P_SEQ: {
        tk_list a = {0}, b = {0};
        lq_status st = list_push(&a, s, n, first);
        for (size_t i = 0; st == LQ_OK && i < p->n_sub; i++) {
            list_clear(&b);
            st = pre_apply(t, w, &p->sub[i], &a, &b);
            tk_list x = a;
            a = b;
            b = x;
        }
        for (size_t i = 0; st == LQ_OK && i < a.n; i++) st = list_push(out, list_str(&a, i), a.p[i].len, a.p[i].first);
        list_free(&a);
        list_free(&b);
        return st;
    }
    }
    return lq_error(LQ_ERR_ARG, "tokenizer: bad pre-tokenizer kind %d", p->kind);
}

static lq_status pre_apply(const lq_tokenizer *t, tk_ws *w, const tk_pre *p, tk_list *in, tk_list *out) {
    for (size_t i = 0; i < in->n; i++)
        LQ_FORWARD(pre_apply_one(t, w, p, list_str(in, i), in->p[i].len, in->p[i].first, out));
    return LQ_OK;
}

/* ------------------------------------------------------------------------ */
/* BPE                                                                      */
/* ------------------------------------------------------------------------ */

struct tk_sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len; /* bytes covered; 0 = merged away */
};
struct tk_hent {
    int32_t rank, pos, new_id;
};

/* min-heap on (rank, pos): HF's Merge ordering */
static int hless(const struct tk_hent *a, const struct tk_hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
static void heap_up(struct tk_hent *h, size_t i) {
    while (i) {
        size_t p = (i - 1) / 2;
        if (!hless(&h[i], &h[p])) break;
        struct tk_hent x = h[i];
        h[i] = h[p];
        h[p] = x;
        i = p;
    }
}
static void heap_down(struct tk_hent *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && hless(&h[l], &h[m])) m = l;
        if (r < n && hless(&h[r], &h[m])) m = r;
        if (m == i) return;
        struct tk_hent x = h[i];
        h[i] = h[m];
        h[m] = x;
        i = m;
    }
}

static lq_status sym_add(tk_ws *w, size_t *n, int32_t id, uint32_t len) {
    LQ_FORWARD(grow((void **)&w->sym, &w->cap_sym, *n + 1, sizeof *w->sym));
    if (*n > INT32_MAX - 2) return lq_error(LQ_ERR_UNSUPPORTED, "tokenizer: piece too long (%zu symbols)", *n);
    w->sym[*n] = (struct tk_sym){id, (int32_t)*n - 1, -1, len};
    if (*n) w->sym[*n - 1].next = (int32_t)*n;
    (*n)++;
    return LQ_OK;
}

static int32_t vocab_get(const lq_tokenizer *t, const char *s, size_t n) {
    int64_t e = sm_find(&t->vocab, s, n);
    return e < 0 ? -1 : t->vocab.v1[e];
}

/* Encode one pre-token; appends to out. Mirrors BPE::merge_word + Word::merge_all. */
static lq_status bpe_word(const lq_tokenizer *t, tk_ws *w, const char *s, size_t n, tk_ids *out) {
    if (!n) return LQ_OK;
    if (t->ignore_merges) {
        int32_t id = vocab_get(t, s, n);
        if (id >= 0) return ids_push(out, id);
    }
    /* cache short words: most byte-level pre-tokens repeat */
    int cacheable = n <= 64;
    if (cacheable) {
        int64_t e = sm_find(&w->cache, s, n);
        if (e >= 0) {
            for (int32_t i = 0; i < w->cache.v2[e]; i++) LQ_FORWARD(ids_push(out, w->cache_ids.p[w->cache.v1[e] + i]));
            return LQ_OK;
        }
    }
    size_t ns = 0;
    int32_t unk_len = 0, have_unk = 0, unk_acc_id = -1;
    for (size_t i = 0; i < n;) {
        size_t cl = u8_clen((unsigned char)s[i]);
        if (cl > n - i) cl = n - i;
        int32_t id;
        if (!t->prefix && !t->suffix) id = vocab_get(t, s + i, cl);
        else {
            w->tmp.n = 0;
            if (i > 0 && t->prefix) LQ_FORWARD(buf_add(&w->tmp, t->prefix, t->prefix_len));
            LQ_FORWARD(buf_add(&w->tmp, s + i, cl));
            if (i + cl == n && t->suffix) LQ_FORWARD(buf_add(&w->tmp, t->suffix, t->suffix_len));
            id = vocab_get(t, w->tmp.p, w->tmp.n);
        }
        if (id >= 0) {
            if (have_unk) {
                LQ_FORWARD(sym_add(w, &ns, unk_acc_id, (uint32_t)unk_len));
                have_unk = 0;
            }
            LQ_FORWARD(sym_add(w, &ns, id, (uint32_t)cl));
        } else {
            int done = 0;
            if (t->byte_fallback) {
                /* all bytes must have a <0xXX> token, else fall through to unk
                 * (note: HF does not flush a pending unk here; neither do we) */
                const char *q = (t->prefix || t->suffix) ? w->tmp.p : s + i;
                size_t ql = (t->prefix || t->suffix) ? w->tmp.n : cl, k;
                for (k = 0; k < ql && t->byte_id[(unsigned char)q[k]] >= 0; k++) {}
                if (k == ql) {
                    for (k = 0; k < ql; k++) LQ_FORWARD(sym_add(w, &ns, t->byte_id[(unsigned char)q[k]], 1));
                    done = 1;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (have_unk && t->fuse_unk) unk_len += (int32_t)cl;
                else {
                    if (have_unk) LQ_FORWARD(sym_add(w, &ns, unk_acc_id, (uint32_t)unk_len));
                    have_unk = 1, unk_acc_id = t->unk_id, unk_len = (int32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (have_unk) LQ_FORWARD(sym_add(w, &ns, unk_acc_id, (uint32_t)unk_len));

    /* merge_all: a priority queue of candidate merges; stale entries are
     * detected by re-looking up the pair (HF's exact rule). O(n log n). */
    size_t nh = 0;
    if (ns > 1) LQ_FORWARD(grow((void **)&w->heap, &w->cap_heap, ns, sizeof *w->heap));
    for (size_t i = 0; i + 1 < ns; i++) {
        int32_t rank, nid;
        if (pm_get(&t->merges, w->sym[i].id, w->sym[i + 1].id, &rank, &nid)) {
            w->heap[nh] = (struct tk_hent){rank, (int32_t)i, nid};
            heap_up(w->heap, nh++);
        }
    }
    struct tk_sym *S = w->sym;
    while (nh) {
        struct tk_hent top = w->heap[0];
        w->heap[0] = w->heap[--nh];
        heap_down(w->heap, nh, 0);
        if (S[top.pos].len == 0 || S[top.pos].next == -1) continue;
        int32_t nx = S[top.pos].next;
        int32_t rank, nid;
        if (!pm_get(&t->merges, S[top.pos].id, S[nx].id, &rank, &nid) || nid != top.new_id) continue;
        struct tk_sym right = S[nx];
        S[top.pos].id = top.new_id;
        S[top.pos].len += right.len;
        S[top.pos].next = right.next;
        S[nx].len = 0;
        if (right.next >= 0) S[right.next].prev = top.pos;
        /* at most two new candidates per merge: the heap never outgrows 3n */
        LQ_FORWARD(grow((void **)&w->heap, &w->cap_heap, nh + 2, sizeof *w->heap));
        if (S[top.pos].prev >= 0) {
            int32_t pv = S[top.pos].prev;
            if (pm_get(&t->merges, S[pv].id, S[top.pos].id, &rank, &nid)) {
                w->heap[nh] = (struct tk_hent){rank, pv, nid};
                heap_up(w->heap, nh++);
            }
        }
        if (S[top.pos].next >= 0) {
            if (pm_get(&t->merges, S[top.pos].id, S[S[top.pos].next].id, &rank, &nid)) {
                w->heap[nh] = (struct tk_hent){rank, top.pos, nid};
                heap_up(w->heap, nh++);
            }
        }
    }
    size_t o0 = out->n;
    for (size_t i = 0; i < ns; i++)
        if (S[i].len) LQ_FORWARD(ids_push(out, S[i].id));
    if (cacheable && w->cache.n < (1u << 17) && w->cache_ids.n < INT32_MAX / 2) {
        size_t off = w->cache_ids.n;
        for (size_t i = o0; i < out->n; i++) LQ_FORWARD(ids_push(&w->cache_ids, out->p[i]));
        LQ_FORWARD(sm_put(&w->cache, s, n, (int32_t)off, (int32_t)(out->n - o0), 0));
    }
    return LQ_OK;
}

/* ------------------------------------------------------------------------ */
/* added tokens                                                             */
/* ------------------------------------------------------------------------ */

static void addset_free(tk_addset *a) {
    for (size_t i = 0; i < a->n; i++) free(a->text[i]);
    free(a->idx);
    free(a->text);
    free(a->len);
    memset(a, 0, sizeof *a);
}

static int addset_cmp(const void *x, const void *y, void *ctx) {
    const tk_addset *a = ctx;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    unsigned char ci = (unsigned char)a->text[i][0], cj = (unsigned char)a->text[j][0];
    if (ci != cj) return ci < cj ? -1 : 1;
    if (a->len[i] != a->len[j]) return a->len[i] > a->len[j] ? -1 : 1;
    return i < j ? -1 : i > j ? 1 : 0;
}

static lq_status set_id(lq_tokenizer *t, int32_t id, const char *s, size_t n, int overwrite);

static lq_status addset_build(lq_tokenizer *t, int normalized, tk_addset *a) {
    lq_status st = LQ_OK;
    tk_rx r = {0};
    tk_buf nb = {0};
    size_t *order = NULL;
    memset(a, 0, sizeof *a);
    size_t m = 0;
    for (size_t i = 0; i < t->n_added; i++) m += t->added[i].normalized == normalized && t->added[i].len > 0;
    if (!m) return LQ_OK;
    a->idx = calloc(m, sizeof *a->idx);
    a->text = calloc(m, sizeof *a->text);
    a->len = calloc(m, sizeof *a->len);
    order = calloc(m, sizeof *order);
    LQ_FAIL_IF(!a->idx || !a->text || !a->len || !order, LQ_ERR_NOMEM, "%s: out of memory", t->source);
    if (normalized && t->norm) LQ_TRY(rx_init(&r));
    for (size_t i = 0, k = 0; i < t->n_added; i++) {
        const tk_added *ad = &t->added[i];
        if (ad->normalized != normalized || !ad->len) continue;
        const char *s = ad->content;
        size_t n = ad->len;
        if (normalized && t->norm) {
            /* HF matches normalized tokens by their normalized content */
            if (normalize(t, &r, t->norm, s, n, &nb) == LQ_OK && nb.n) s = nb.p, n = nb.n;
            lq_clear_error();
        }
        /* HF's id_to_token (and so decode) gives the normalized content too */
        if (normalized && t->norm) LQ_TRY(set_id(t, ad->id, s, n, 1));
        a->text[k] = malloc(n + 1);
        LQ_FAIL_IF(!a->text[k], LQ_ERR_NOMEM, "%s: out of memory", t->source);
        memcpy(a->text[k], s, n);
        a->text[k][n] = 0;
        a->len[k] = n;
        a->idx[k] = i;
        order[k] = k;
        a->n = ++k;
    }
    qsort_r(order, m, sizeof *order, addset_cmp, a);
    {
        size_t *idx = malloc(m * sizeof *idx), *len = malloc(m * sizeof *len);
        char **text = malloc(m * sizeof *text);
        LQ_FAIL_IF(!idx || !len || !text, LQ_ERR_NOMEM, "%s: out of memory", t->source);
        for (size_t k = 0; k < m; k++) idx[k] = a->idx[order[k]], len[k] = a->len[order[k]], text[k] = a->text[order[k]];
        free(a->idx), free(a->len), free(a->text);
        a->idx = idx, a->len = len, a->text = text;
    }
    for (int b = 0, k = 0; b <= 256; b++) {
        while ((size_t)k < m && (unsigned char)a->text[k][0] < b) k++;
        a->start[b] = (size_t)k;
    }
    a->start[256] = m;
fail:
    free(order);
    free(nb.p);
    rx_free(&r);
    return st;
}

/* \w test for single_word (regex_syntax's is_word_character in HF). */
static int is_word_at(const lq_tokenizer *t, tk_rx *r, const char *s, size_t n, size_t at) {
    size_t cl = u8_clen((unsigned char)s[at]);
    if (at + cl > n) cl = n - at;
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)(s + at), cl, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, r->md, NULL);
    return rc >= 0;
}
static size_t prev_char(const char *s, size_t at) {
    size_t k = at - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

typedef struct {
    size_t s, e;
    int32_t id; /* -1: text to tokenize */
} tk_aseg;
typedef struct {
    tk_aseg *p;
    size_t n, cap;
} tk_asegs;

static lq_status aseg_push(tk_asegs *v, size_t s, size_t e, int32_t id) {
    LQ_FORWARD(grow((void **)&v->p, &v->cap, v->n + 1, sizeof *v->p));
    v->p[v->n++] = (tk_aseg){s, e, id};
    return LQ_OK;
}

/* AddedVocabulary::find_matches: leftmost-longest, then single_word, lstrip,
 * rstrip. Text runs between matches come out as id -1 (never empty). */
static lq_status added_split(const lq_tokenizer *t, tk_rx *r, const tk_addset *a, const char *s, size_t n,
                             tk_asegs *out) {
    out->n = 0;
    size_t start_off = 0, i = 0;
    while (a->n && i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t hit = SIZE_MAX;
        for (size_t k = a->start[c]; k < a->start[c + 1]; k++)
            if (a->len[k] <= n - i && !memcmp(s + i, a->text[k], a->len[k])) {
                hit = k;
                break;
            }
        if (hit == SIZE_MAX) {
            i++;
            continue;
        }
        const tk_added *ad = &t->added[a->idx[hit]];
        size_t ms = i, me = i + a->len[hit];
        i = me; /* the automaton resumes after the match, whatever is kept */
        if (ad->single_word) {
            int sw = ms == 0 || !is_word_at(t, r, s, n, prev_char(s, ms));
            int ew = me == n || !is_word_at(t, r, s, n, me);
            if (!sw || !ew) continue;
        }
        if (ad->lstrip) {
            size_t k = ms;
            while (k > 0) {
                size_t p = prev_char(s, k), cl;
                if (!uni_space(u8_dec(s + p, &cl))) break;
                k = p;
            }
            ms = k > start_off ? k : start_off;
        }
        if (ad->rstrip) {
            size_t cl;
            while (me < n && uni_space(u8_dec(s + me, &cl))) me += cl;
            i = me;
        }
        if (ms > start_off) LQ_FORWARD(aseg_push(out, start_off, ms, -1));
        LQ_FORWARD(aseg_push(out, ms, me, ad->id));
        start_off = me;
    }
    if (start_off < n) LQ_FORWARD(aseg_push(out, start_off, n, -1));
    return LQ_OK;
}

/* ------------------------------------------------------------------------ */
/* post-processor                                                           */
/* ------------------------------------------------------------------------ */

static lq_status special_ids(lq_tokenizer *t, const char *field, const json_t *specials, const char *name,
                             tk_ids *v) {
    json_t *e = json_object_get(specials, name);
    json_t *ids = json_object_get(e, "ids");
    LQ_RETURN_IF(!json_is_array(ids), LQ_ERR_FORMAT, "%s: %s: special token \"%s\" has no \"ids\" in special_tokens",
                 t->source, field, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t *x = json_array_get(ids, i);
        LQ_RETURN_IF(!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= t->n_ids,
                     LQ_ERR_FORMAT, "%s: %s: special token \"%s\": id outside the vocabulary", t->source, field, name);
        LQ_FORWARD(ids_push(v, (int32_t)json_integer_value(x)));
    }
    return LQ_OK;
}

static lq_status pair_id(lq_tokenizer *t, const char *field, const json_t *j, const char *key, tk_ids *v) {
    json_t *p = json_object_get(j, key), *x = json_array_get(p, 1);
    LQ_RETURN_IF(!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= t->n_ids,
                 LQ_ERR_FORMAT, "%s: %s.%s: expected [token, id] with an id in the vocabulary", t->source, field, key);
    return ids_push(v, (int32_t)json_integer_value(x));
}

/* Flattens the single-sequence template into ids before / after $A. */
static lq_status post_parse(lq_tokenizer *t, const char *field, const json_t *j, tk_ids *pre, tk_ids *post,
                            int depth) {
    const char *src = t->source;
    char f[256];
    LQ_RETURN_IF(depth > 16, LQ_ERR_FORMAT, "%s: %s: nested too deeply", src, field);
    LQ_RETURN_IF(!json_is_object(j), LQ_ERR_FORMAT, "%s: %s: expected an object", src, field);
    const char *type = jtype(j);
    if (!strcmp(type, "ByteLevel")) return LQ_OK; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        json_t *a = json_object_get(j, "processors");
        LQ_RETURN_IF(!json_is_array(a), LQ_ERR_FORMAT, "%s: %s.processors: expected an array", src, field);
        for (size_t i = 0; i < json_array_size(a); i++) {
            /* each processor wraps the previous result: pre_i ... post_i */
            tk_ids p2 = {0}, q2 = {0};
            snprintf(f, sizeof f, "%s.processors[%zu]", field, i);
            lq_status st = post_parse(t, f, json_array_get(a, i), &p2, &q2, depth + 1);
            for (size_t k = 0; st == LQ_OK && k < pre->n; k++) st = ids_push(&p2, pre->p[k]);
            for (size_t k = 0; st == LQ_OK && k < q2.n; k++) st = ids_push(post, q2.p[k]);
            if (st == LQ_OK) {
                free(pre->p);
                *pre = p2;
                p2.p = NULL;
            }
            free(p2.p);
            free(q2.p);
            LQ_FORWARD(st);
        }
        return LQ_OK;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        LQ_FORWARD(pair_id(t, field, j, "cls", pre));
        return pair_id(t, field, j, "sep", post);
    }
    if (!strcmp(type, "TemplateProcessing")) {
        json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
        LQ_RETURN_IF(!json_is_array(single), LQ_ERR_FORMAT, "%s: %s.single: expected an array", src, field);
        int seen_a = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *it = json_array_get(single, i);
            json_t *sp = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
            snprintf(f, sizeof f, "%s.single[%zu]", field, i);
            if (sp) {
                const char *name = json_string_value(json_object_get(sp, "id"));
                LQ_RETURN_IF(!name, LQ_ERR_FORMAT, "%s: %s.SpecialToken.id: expected a string", src, f);
                LQ_FORWARD(special_ids(t, f, specials, name, seen_a ? post : pre));
            } else if (sq) {
                seen_a = 1;
            } else {
                return lq_error(LQ_ERR_FORMAT, "%s: %s: expected SpecialToken or Sequence", src, f);
            }
        }
        return LQ_OK;
    }
    return lq_error(LQ_ERR_UNSUPPORTED, "%s: %s: post-processor type \"%s\" is not supported", src, field, type);
}

/* ------------------------------------------------------------------------ */
/* decoders                                                                 */
/* ------------------------------------------------------------------------ */

static void dec_free_inner(tk_dec *d) {
    for (size_t i = 0; i < d->n_sub; i++) dec_free_inner(&d->sub[i]);
    free(d->sub);
    pat_free(&d->pat);
    free(d->str);
}

static lq_status dec_parse(lq_tokenizer *t, const char *field, const json_t *j, tk_dec *d, int depth) {
    const char *src = t->source;
    memset(d, 0, sizeof *d);
    char f[256];
    LQ_RETURN_IF(depth > 16, LQ_ERR_FORMAT, "%s: %s: nested too deeply", src, field);
    LQ_RETURN_IF(!json_is_object(j), LQ_ERR_FORMAT, "%s: %s: expected an object", src, field);
    const char *type = jtype(j);
    if (!strcmp(type, "Sequence")) {
        d->kind = D_SEQ;
        json_t *a = json_object_get(j, "decoders");
        LQ_RETURN_IF(!json_is_array(a), LQ_ERR_FORMAT, "%s: %s.decoders: expected an array", src, field);
        d->sub = calloc(json_array_size(a) + 1, sizeof *d->sub);
        LQ_RETURN_IF(!d->sub, LQ_ERR_NOMEM, "%s: out of memory", src);
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(f, sizeof f, "%s.decoders[%zu]", field, i);
            d->n_sub = i + 1;
            LQ_FORWARD(dec_parse(t, f, json_array_get(a, i), &d->sub[i], depth + 1));
        }
    } else if (!strcmp(type, "Replace")) {
        d->kind = D_REPLACE;
        snprintf(f, sizeof f, "%s.pattern", field);
        LQ_FORWARD(pat_parse(src, f, json_object_get(j, "pattern"), &d->pat));
        snprintf(f, sizeof f, "%s.content", field);
        LQ_FORWARD(jdup(src, f, json_object_get(j, "content"), &d->str, &d->str_len));
    } else if (!strcmp(type, "ByteFallback")) d->kind = D_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = D_FUSE;
    else if (!strcmp(type, "ByteLevel")) d->kind = D_BYTELEVEL;
    else if (!strcmp(type, "Strip")) {
        d->kind = D_STRIP;
        json_t *c = json_object_get(j, "content");
        size_t bad;
        LQ_RETURN_IF(!json_is_string(c) || !json_string_length(c) ||
                         u8_check((const unsigned char *)json_string_value(c), json_string_length(c), 0, &bad) !=
                             json_string_length(c),
                     LQ_ERR_FORMAT, "%s: %s.content: expected one character", src, field);
        d->ch = u8_dec(json_string_value(c), &bad);
        json_int_t a = json_integer_value(json_object_get(j, "start")), b = json_integer_value(json_object_get(j, "stop"));
        LQ_RETURN_IF(a < 0 || b < 0 || a > 1 << 20 || b > 1 << 20, LQ_ERR_FORMAT, "%s: %s: start/stop out of range",
                     src, field);
        d->start = (int)a, d->stop = (int)b;
    } else if (!strcmp(type, "Metaspace")) {
        d->kind = D_METASPACE;
        char rb[8];
        size_t rl;
        LQ_FORWARD(repl_parse(src, field, j, rb, &rl, &d->ch));
        LQ_FORWARD(scheme_parse(src, field, j, &d->scheme));
    } else {
        return lq_error(LQ_ERR_UNSUPPORTED, "%s: %s: decoder type \"%s\" is not supported", src, field, type);
    }
    return LQ_OK;
}

static int parse_byte_token(const char *s, size_t n, unsigned *v) {
    /* "<0xXX>", hex of either case (u8::from_str_radix) */
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
    unsigned x = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
        if (d > 15) return 0;
        x = x * 16 + d;
    }
    *v = x;
    return 1;
}

static lq_status dec_apply(const lq_tokenizer *t, tk_rx *r, const tk_dec *d, tk_list *in, tk_list *out) {
    list_clear(out);
    switch (d->kind) {
    case D_SEQ: {
        tk_list a = {0}, b = {0};
        lq_status st = LQ_OK;
        for (size_t i = 0; st == LQ_OK && i < in->n; i++) st = list_push(&a, list_str(in, i), in->p[i].len, 0);
        for (size_t i = 0; st == LQ_OK && i < d->n_sub; i++) {
            st = dec_apply(t, r, &d->sub[i], &a, &b);
            tk_list x = a;
            a = b;
            b = x;
        }
        for (size_t i = 0; st == LQ_OK && i < a.n; i++) st = list_push(out, list_str(&a, i), a.p[i].len, 0);
        list_free(&a);
        list_free(&b);
        return st;
    }
    case D_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            tk_buf b = {0};
            lq_status st = pat_replace(r, &d->pat, list_str(in, i), in->p[i].len, d->str, d->str_len, &b);
            if (st == LQ_OK) st = list_push(out, b.p ? b.p : "", b.n, 0);
            free(b.p);
            LQ_FORWARD(st);
        }
        return LQ_OK;
    case D_BYTEFALLBACK: {
        tk_buf bytes = {0};
        lq_status st = LQ_OK;
        for (size_t i = 0; st == LQ_OK && i <= in->n; i++) {
            unsigned v;
            if (i < in->n && parse_byte_token(list_str(in, i), in->p[i].len, &v)) {
                unsigned char c = (unsigned char)v;
                st = buf_add(&bytes, &c, 1);
                continue;
            }
            if (bytes.n) {
                if (utf8_valid(bytes.p, bytes.n)) st = list_push(out, bytes.p, bytes.n, 0);
                else
                    for (size_t k = 0; st == LQ_OK && k < bytes.n; k++) st = list_push(out, "\xEF\xBF\xBD", 3, 0);
                bytes.n = 0;
            }
            if (st == LQ_OK && i < in->n) st = list_push(out, list_str(in, i), in->p[i].len, 0);
        }
        free(bytes.p);
        return st;
    }
    case D_FUSE:
        LQ_FORWARD(list_open(out, 0));
        for (size_t i = 0; i < in->n; i++) LQ_FORWARD(list_cat(out, list_str(in, i), in->p[i].len));
        return LQ_OK;
    case D_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = list_str(in, i);
            size_t n = in->p[i].len, a = 0, b = n, cl;
            for (int k = 0; k < d->start && a < n && u8_dec(s + a, &cl) == d->ch; k++) a += cl;
            for (int k = 0; k < d->stop && b > a; k++) {
                size_t p = prev_char(s, b);
                if (u8_dec(s + p, &cl) != d->ch) break;
                b = p;
            }
            LQ_FORWARD(list_push(out, s + a, b - a, 0));
        }
        return LQ_OK;
    case D_BYTELEVEL: {
        tk_buf raw = {0}, res = {0};
        lq_status st = LQ_OK;
        for (size_t i = 0; st == LQ_OK && i < in->n; i++) {
            const char *s = list_str(in, i);
            size_t n = in->p[i].len, k, cl, r0 = raw.n;
            /* a token with any char outside the table goes in as its bytes */
            for (k = 0; st == LQ_OK && k < n; k += cl) {
                uint32_t c = u8_dec(s + k, &cl);
                if (c >= 324 || t->bl_dec[c] < 0) break;
                unsigned char b = (unsigned char)t->bl_dec[c];
                st = buf_add(&raw, &b, 1);
            }
            if (st == LQ_OK && k < n) {
                raw.n = r0;
                st = buf_add(&raw, s, n);
            }
        }
        if (st == LQ_OK) st = utf8_lossy(raw.p ? raw.p : "", raw.n, &res);
        if (st == LQ_OK) st = list_push(out, res.p ? res.p : "", res.n, 0);
        free(raw.p);
        free(res.p);
        return st;
    }
    case D_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = list_str(in, i);
            size_t n = in->p[i].len, cl;
            LQ_FORWARD(list_open(out, 0));
            for (size_t k = 0; k < n; k += cl) {
                uint32_t c = u8_dec(s + k, &cl);
                if (c == d->ch) {
                    /* HF drops every replacement char of the first token */
                    if (!(i == 0 && d->scheme != PS_NEVER)) LQ_FORWARD(list_cat(out, " ", 1));
                } else {
                    LQ_FORWARD(list_cat(out, s + k, cl));
                }
            }
        }
        return LQ_OK;
    }
    return lq_error(LQ_ERR_ARG, "tokenizer: bad decoder kind %d", d->kind);
}

/* ------------------------------------------------------------------------ */
/* loading                                                                  */
/* ------------------------------------------------------------------------ */

void lq_tokenizer_free(lq_tokenizer *t) {
    if (!t) return;
    if (t->id_str)
        for (int32_t i = 0; i < t->n_ids; i++) free(t->id_str[i]);
    free(t->id_str);
    free(t->id_len);
    free(t->id_special);
    sm_free(&t->vocab);
    pm_free(&t->merges);
    free(t->prefix);
    free(t->suffix);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    addset_free(&t->raw_set);
    addset_free(&t->norm_set);
    if (t->norm) norm_free_inner(t->norm);
    free(t->norm);
    if (t->pre) pre_free_inner(t->pre);
    free(t->pre);
    if (t->dec) dec_free_inner(t->dec);
    free(t->dec);
    free(t->post_pre);
    free(t->post_post);
    if (t->word_re) pcre2_code_free(t->word_re);
    if (t->lc) freelocale(t->lc);
    free(t->source);
    free(t);
}

static void bytelevel_table(lq_tokenizer *t) {
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves,
     * the other 68 to U+0100 + k in byte order, so every byte is a visible
     * char and BPE never sees whitespace or control bytes. */
    int k = 0;
    for (int i = 0; i < 324; i++) t->bl_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : 256u + (uint32_t)k++;
        char e[4];
        size_t n = u8_enc(cp, e);
        memcpy(t->bl_enc[b], e, n);
        t->bl_len[b] = (uint8_t)n;
        t->bl_dec[cp] = (int16_t)b;
    }
}

static lq_status set_id(lq_tokenizer *t, int32_t id, const char *s, size_t n, int overwrite) {
    if (t->id_str[id] && !overwrite) return LQ_OK;
    free(t->id_str[id]);
    t->id_str[id] = malloc(n + 1);
    if (!t->id_str[id]) return lq_error(LQ_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(t->id_str[id], s, n);
    t->id_str[id][n] = 0;
    t->id_len[id] = (uint32_t)n;
    return LQ_OK;
}

static lq_status load_model(lq_tokenizer *t, const json_t *model) {
    const char *src = t->source;
    lq_status st = LQ_OK;
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    const char *key;
    size_t klen;
    json_t *val;
    tk_buf nb = {0};
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        LQ_TRY(sm_put(&t->vocab, key, klen, (int32_t)json_integer_value(val), 0, 1));
    }
    /* byte fallback tokens */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = vocab_get(t, name, 6);
    }
    /* unk */
    t->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        t->unk_id = vocab_get(t, json_string_value(unk), json_string_length(unk));
        LQ_FAIL_IF(t->unk_id < 0, LQ_ERR_FORMAT, "%s: model.unk_token: \"%s\" is not in model.vocab", src,
                   json_string_value(unk));
    }
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    json_t *pf = json_object_get(model, "continuing_subword_prefix"), *sf = json_object_get(model, "end_of_word_suffix");
    if (json_is_string(pf) && json_string_length(pf))
        LQ_TRY(jdup(src, "model.continuing_subword_prefix", pf, &t->prefix, &t->prefix_len));
    if (json_is_string(sf) && json_string_length(sf))
        LQ_TRY(jdup(src, "model.end_of_word_suffix", sf, &t->suffix, &t->suffix_len));
    json_t *drop = json_object_get(model, "dropout");
    LQ_FAIL_IF(json_is_number(drop) && json_number_value(drop) > 0, LQ_ERR_UNSUPPORTED,
               "%s: model.dropout: BPE dropout %g is not supported (non-deterministic)", src, json_number_value(drop));
    /* merges */
    size_t nm = json_array_size(merges);
    LQ_FAIL_IF(merges && !json_is_array(merges), LQ_ERR_FORMAT, "%s: model.merges: expected an array", src);
    LQ_FAIL_IF(nm > INT32_MAX, LQ_ERR_FORMAT, "%s: model.merges: too many", src);
    LQ_TRY(pm_init(&t->merges, nm));
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = memchr(s, ' ', json_string_length(m));
            LQ_FAIL_IF(!sp, LQ_ERR_FORMAT, "%s: model.merges[%zu]: \"%s\" is not \"left right\"", src, i, s);
            a = s, al = (size_t)(sp - s), b = sp + 1, bl = json_string_length(m) - al - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)), bl = json_string_length(json_array_get(m, 1));
        } else {
            LQ_FAIL_IF(1, LQ_ERR_FORMAT, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", src, i);
        }
        int32_t ia = vocab_get(t, a, al), ib = vocab_get(t, b, bl);
        LQ_FAIL_IF(ia < 0 || ib < 0, LQ_ERR_FORMAT, "%s: model.merges[%zu]: token \"%.*s\" is not in model.vocab",
                   src, i, ia < 0 ? (int)al : (int)bl, ia < 0 ? a : b);
        /* merged = a + b without b's continuing_subword_prefix */
        if (t->prefix && bl >= t->prefix_len && !memcmp(b, t->prefix, t->prefix_len)) b += t->prefix_len, bl -= t->prefix_len;
        nb.n = 0;
        LQ_TRY(buf_add(&nb, a, al));
        LQ_TRY(buf_add(&nb, b, bl));
        int32_t id = vocab_get(t, nb.p, nb.n);
        LQ_FAIL_IF(id < 0, LQ_ERR_FORMAT, "%s: model.merges[%zu]: merged token \"%.*s\" is not in model.vocab", src,
                   i, (int)nb.n, nb.p);
        pm_put(&t->merges, ia, ib, (int32_t)i, id);
    }
fail:
    free(nb.p);
    return st;
}

/* bos/eos: the template's first/last special token, else well-known names */
static void guess_bos_eos(lq_tokenizer *t) {
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[CLS]"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|im_end|>",
                                            "[SEP]"};
    t->bos_id = t->n_post_pre ? t->post_pre[0] : -1;
    t->eos_id = t->n_post_post ? t->post_post[t->n_post_post - 1] : -1;
    for (size_t k = 0; t->bos_id < 0 && k < sizeof bos_names / sizeof *bos_names; k++)
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].special && !strcmp(t->added[i].content, bos_names[k])) {
                t->bos_id = t->added[i].id;
                break;
            }
    for (size_t k = 0; t->eos_id < 0 && k < sizeof eos_names / sizeof *eos_names; k++)
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].special && !strcmp(t->added[i].content, eos_names[k])) {
                t->eos_id = t->added[i].id;
                break;
            }
}

lq_status lq_tokenizer_from_json(const json_t *doc, const char *source, lq_tokenizer **out) {
    lq_status st = LQ_OK;
    *out = NULL;
    if (!source) source = "tokenizer.json";
    lq_tokenizer *t = calloc(1, sizeof *t);
    tk_ids pre = {0}, post = {0};
    LQ_FAIL_IF(!t, LQ_ERR_NOMEM, "%s: out of memory", source);
    t->source = strdup(source);
    LQ_FAIL_IF(!t->source, LQ_ERR_NOMEM, "%s: out of memory", source);
    const char *src = t->source;
    bytelevel_table(t);
    LQ_FAIL_IF(!json_is_object(doc), LQ_ERR_FORMAT, "%s: not a JSON object", src);

    /* model */
    json_t *model = json_object_get(doc, "model");
    LQ_FAIL_IF(!json_is_object(model), LQ_ERR_FORMAT, "%s: field 'model' missing or not an object", src);
    json_t *mt = json_object_get(model, "type");
    const char *mtype = json_is_string(mt) ? json_string_value(mt) : (json_object_get(model, "merges") ? "BPE" : "");
    LQ_FAIL_IF(strcmp(mtype, "BPE"), LQ_ERR_UNSUPPORTED, "%s: model.type: \"%s\" is not supported (only BPE)", src,
               mtype);
    json_t *vocab = json_object_get(model, "vocab");
    LQ_FAIL_IF(!json_is_object(vocab), LQ_ERR_FORMAT, "%s: model.vocab: missing or not an object", src);
    json_t *added = json_object_get(doc, "added_tokens");
    LQ_FAIL_IF(added && !json_is_array(added) && !json_is_null(added), LQ_ERR_FORMAT,
               "%s: added_tokens: expected an array", src);

    /* id range: refuse absurdly sparse ids (a fuzzed file must not make us
     * allocate gigabytes) */
    int64_t max_id = -1;
    size_t n_entries = json_object_size(vocab) + json_array_size(added);
    {
        const char *key;
        json_t *val;
        json_object_foreach(vocab, key, val) {
            LQ_FAIL_IF(!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > INT32_MAX - 1,
                       LQ_ERR_FORMAT, "%s: model.vocab[\"%s\"]: id must be a non-negative integer", src, key);
            if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
        }
    }
    t->n_added = json_array_size(added);
    t->added = calloc(t->n_added + 1, sizeof *t->added);
    LQ_FAIL_IF(!t->added, LQ_ERR_NOMEM, "%s: out of memory", src);
    for (size_t i = 0; i < t->n_added; i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id"), *c = json_object_get(a, "content");
        char f[64];
        snprintf(f, sizeof f, "added_tokens[%zu].content", i);
        LQ_FAIL_IF(!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX - 1,
                   LQ_ERR_FORMAT, "%s: added_tokens[%zu].id: must be a non-negative integer", src, i);
        LQ_TRY(jdup(src, f, c, &t->added[i].content, &t->added[i].len));
        tk_added *ad = &t->added[i];
        ad->id = (int32_t)json_integer_value(id);
        ad->special = jbool(a, "special", 0);
        ad->lstrip = jbool(a, "lstrip", 0);
        ad->rstrip = jbool(a, "rstrip", 0);
        ad->single_word = jbool(a, "single_word", 0);
        ad->normalized = jbool(a, "normalized", !ad->special);
        if (ad->id > max_id) max_id = ad->id;
    }
    LQ_FAIL_IF(max_id < 0, LQ_ERR_FORMAT, "%s: model.vocab is empty", src);
    LQ_FAIL_IF((uint64_t)max_id >= 4 * (uint64_t)n_entries + 1024, LQ_ERR_FORMAT,
               "%s: token id %lld is far beyond the %zu vocabulary entries", src, (long long)max_id, n_entries);
    t->n_ids = (int32_t)max_id + 1;
    t->id_str = calloc((size_t)t->n_ids, sizeof *t->id_str);
    t->id_len = calloc((size_t)t->n_ids, sizeof *t->id_len);
    t->id_special = calloc((size_t)t->n_ids, 1);
    LQ_FAIL_IF(!t->id_str || !t->id_len || !t->id_special, LQ_ERR_NOMEM, "%s: out of memory (%d ids)", src, t->n_ids);
    {
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach(vocab, key, klen, val) LQ_TRY(set_id(t, (int32_t)json_integer_value(val), key, klen, 0));
    }
    /* decode prefers the added token's content (HF's id_to_token order) */
    for (size_t i = 0; i < t->n_added; i++) {
        LQ_TRY(set_id(t, t->added[i].id, t->added[i].content, t->added[i].len, 1));
        t->id_special[t->added[i].id] = (uint8_t)t->added[i].special;
    }
    LQ_TRY(load_model(t, model));

    char f[32];
    json_t *j;
    if ((j = json_object_get(doc, "normalizer")) && !json_is_null(j)) {
        t->norm = calloc(1, sizeof *t->norm);
        LQ_FAIL_IF(!t->norm, LQ_ERR_NOMEM, "%s: out of memory", src);
        snprintf(f, sizeof f, "normalizer");
        LQ_TRY(norm_parse(t, f, j, t->norm, 0));
        int lower = 0;
        /* only create the locale when a Lowercase is used */
        const tk_norm *stack[64];
        size_t sp = 0;
        stack[sp++] = t->norm;
        while (sp) {
            const tk_norm *n = stack[--sp];
            if (n->kind == N_LOWER) lower = 1;
            for (size_t i = 0; i < n->n_sub && sp < 64; i++) stack[sp++] = &n->sub[i];
        }
        if (lower) t->lc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    if ((j = json_object_get(doc, "pre_tokenizer")) && !json_is_null(j)) {
        t->pre = calloc(1, sizeof *t->pre);
        LQ_FAIL_IF(!t->pre, LQ_ERR_NOMEM, "%s: out of memory", src);
        LQ_TRY(pre_parse(t, "pre_tokenizer", j, t->pre, 0));
    }
    if ((j = json_object_get(doc, "decoder")) && !json_is_null(j)) {
        t->dec = calloc(1, sizeof *t->dec);
        LQ_FAIL_IF(!t->dec, LQ_ERR_NOMEM, "%s: out of memory", src);
        LQ_TRY(dec_parse(t, "decoder", j, t->dec, 0));
    }
    if ((j = json_object_get(doc, "post_processor")) && !json_is_null(j)) {
        LQ_TRY(post_parse(t, "post_processor", j, &pre, &post, 0));
        t->post_pre = pre.p, t->n_post_pre = pre.n, pre.p = NULL;
        t->post_post = post.p, t->n_post_post = post.n, post.p = NULL;
    }
    /* regex_syntax's is_word_character (what HF's single_word uses): Unicode
     * \w = Alphabetic, marks, decimal digits, connector punctuation,
     * Join_Control; PCRE2's \w lacks the marks and joiners */
    {
        static const char wre[] = "[\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}\\x{200C}\\x{200D}]";
        LQ_TRY(rx_compile(src, "(internal word class)", wre, sizeof wre - 1, &t->word_re));
    }
    LQ_TRY(addset_build(t, 0, &t->raw_set));
    LQ_TRY(addset_build(t, 1, &t->norm_set));
    guess_bos_eos(t);
    *out = t;
    return LQ_OK;
fail:
    free(pre.p);
    free(post.p);
    lq_tokenizer_free(t);
    return st;
}

lq_status lq_tokenizer_load(const char *path, lq_tokenizer **out) {
    *out = NULL;
    char *buf = NULL;
    size_t n = 0;
    LQ_FORWARD(lq_read_file(path, &buf, &n));
    json_error_t e;
    json_t *doc = json_loadb(buf, n, 0, &e);
    free(buf);
    if (!doc)
        return lq_error(LQ_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", path, e.line, e.column, e.text);
    lq_status st = lq_tokenizer_from_json(doc, path, out);
    json_decref(doc);
    return st;
}

/* ------------------------------------------------------------------------ */
/* encode / decode                                                          */
/* ------------------------------------------------------------------------ */

static void ws_free(tk_ws *w) {
    rx_free(&w->rx);
    free(w->segs.p);
    list_free(&w->la);
    list_free(&w->lb);
    free(w->nb.p);
    free(w->tmp.p);
    free(w->sym);
    free(w->heap);
    sm_free(&w->cache);
    free(w->cache_ids.p);
}

/* pre-tokenize + BPE one normalized text run */
static lq_status encode_run(const lq_tokenizer *t, tk_ws *w, const char *s, size_t n, int first, tk_ids *out) {
    if (!n) return LQ_OK;
    if (!t->pre) return bpe_word(t, w, s, n, out);
    list_clear(&w->la);
    list_clear(&w->lb);
    LQ_FORWARD(list_push(&w->la, s, n, first));
    LQ_FORWARD(pre_apply(t, w, t->pre, &w->la, &w->lb));
    for (size_t i = 0; i < w->lb.n; i++) LQ_FORWARD(bpe_word(t, w, list_str(&w->lb, i), w->lb.p[i].len, out));
    return LQ_OK;
}

lq_status lq_tokenizer_encode(const lq_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n_ids) {
    lq_status st = LQ_OK;
    tk_ws w = {0};
    tk_ids out = {0};
    tk_buf clean = {0};
    tk_asegs segs = {0}, nsegs = {0};
    *ids = NULL;
    *n_ids = 0;
    LQ_FAIL_IF(!t || (!text && len), LQ_ERR_ARG, "lq_tokenizer_encode: NULL tokenizer or text");
    LQ_TRY(rx_init(&w.rx));
    const char *s = text ? text : "";
    if (!utf8_valid(s, len)) {
        LQ_TRY(utf8_lossy(s, len, &clean));
        s = clean.p, len = clean.n;
    }
    if (add_special)
        for (size_t i = 0; i < t->n_post_pre; i++) LQ_TRY(ids_push(&out, t->post_pre[i]));
    LQ_TRY(added_split(t, &w.rx, &t->raw_set, s, len, &segs));
    for (size_t k = 0; k < segs.n; k++) {
        if (segs.p[k].id >= 0) {
            LQ_TRY(ids_push(&out, segs.p[k].id));
            continue;
        }
        const char *p = s + segs.p[k].s;
        size_t n = segs.p[k].e - segs.p[k].s;
        int first = segs.p[k].s == 0;
        if (t->norm) {
            LQ_TRY(normalize(t, &w.rx, t->norm, p, n, &w.nb));
            p = w.nb.p ? w.nb.p : "", n = w.nb.n;
        }
        if (!t->norm_set.n) {
            LQ_TRY(encode_run(t, &w, p, n, first, &out));
            continue;
        }
        LQ_TRY(added_split(t, &w.rx, &t->norm_set, p, n, &nsegs));
        for (size_t q = 0; q < nsegs.n; q++) {
            if (nsegs.p[q].id >= 0) LQ_TRY(ids_push(&out, nsegs.p[q].id));
            else
                LQ_TRY(encode_run(t, &w, p + nsegs.p[q].s, nsegs.p[q].e - nsegs.p[q].s, first && nsegs.p[q].s == 0,
                                  &out));
        }
    }
    if (add_special)
        for (size_t i = 0; i < t->n_post_post; i++) LQ_TRY(ids_push(&out, t->post_post[i]));
    if (!out.p) LQ_TRY(grow((void **)&out.p, &out.cap, 1, sizeof *out.p));
    *ids = out.p;
    *n_ids = out.n;
    out.p = NULL;
fail:
    if (st != LQ_OK && t) lq_error_prefix(st, "%s: encode", t->source);
    free(out.p);
    free(clean.p);
    free(segs.p);
    free(nsegs.p);
    ws_free(&w);
    return st;
}

lq_status lq_tokenizer_decode(const lq_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special, char **out,
                              size_t *out_len) {
    lq_status st = LQ_OK;
    tk_list a = {0}, b = {0};
    tk_rx r = {0};
    *out = NULL;
    if (out_len) *out_len = 0;
    LQ_FAIL_IF(!t || (!ids && n_ids), LQ_ERR_ARG, "lq_tokenizer_decode: NULL tokenizer or ids");
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        LQ_FAIL_IF(id < 0 || id >= t->n_ids || !t->id_str[id], LQ_ERR_ARG,
                   "%s: decode: id %d at position %zu is not in the vocabulary (%d ids)", t->source, id, i, t->n_ids);
        if (skip_special && t->id_special[id]) continue;
        LQ_TRY(list_push(&a, t->id_str[id], t->id_len[id], 0));
    }
    tk_buf res = {0};
    if (t->dec) {
        LQ_TRY(rx_init(&r));
        LQ_TRY(dec_apply(t, &r, t->dec, &a, &b));
        for (size_t i = 0; st == LQ_OK && i < b.n; i++) st = buf_add(&res, list_str(&b, i), b.p[i].len);
    } else {
        for (size_t i = 0; st == LQ_OK && i < a.n; i++) {
            if (i) st = buf_add(&res, " ", 1);
            if (st == LQ_OK) st = buf_add(&res, list_str(&a, i), a.p[i].len);
        }
    }
    if (st == LQ_OK && !res.p) st = buf_add(&res, "", 0);
    if (st != LQ_OK) {
        free(res.p);
        goto fail;
    }
    *out = res.p;
    if (out_len) *out_len = res.n;
fail:
    list_free(&a);
    list_free(&b);
    rx_free(&r);
    return st;
}

int32_t lq_tokenizer_vocab_size(const lq_tokenizer *t) { return t ? t->n_ids : 0; }
int32_t lq_tokenizer_bos_id(const lq_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t lq_tokenizer_eos_id(const lq_tokenizer *t) { return t ? t->eos_id : -1; }

lq_status lq_tokenizer_set_bos_eos(lq_tokenizer *t, int32_t bos_id, int32_t eos_id) {
    LQ_RETURN_IF(!t, LQ_ERR_ARG, "lq_tokenizer_set_bos_eos: NULL tokenizer");
    LQ_RETURN_IF(bos_id < -1 || bos_id >= t->n_ids || eos_id < -1 || eos_id >= t->n_ids, LQ_ERR_ARG,
                 "%s: bos %d / eos %d outside the %d-id vocabulary", t->source, bos_id, eos_id, t->n_ids);
    t->bos_id = bos_id;
    t->eos_id = eos_id;
    return LQ_OK;
}

const char *lq_tokenizer_token(const lq_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids) return NULL;
    return t->id_str[id];
}
