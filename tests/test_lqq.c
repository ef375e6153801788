/* test_lqq.c — the packed model file (formats/lq_lqq.h, formats/FORMAT.md):
 * write/read round trip of plain and quantized tensors and metadata, the
 * header as documented, lq_checkpoint_open dispatch with dequantization, a
 * flipped byte (tensor, table, metadata) -> LQ_ERR_CHECKSUM naming what is
 * corrupt, truncation -> a clear error, an unknown major version refused,
 * and interrupted writes (aborted, or the writer SIGKILLed mid-file) leaving
 * nothing under the output name; the opt-in 4-bit head (lq quantize
 * --lm-head) on stories260K: in memory, through a file (full and packed-only
 * loads, both packings), corrupt / truncated / wrong-shape heads, the CLI.
 * Run: make test (or build/tests/test_lqq; LQ_TEST_FILTER='*lm_head*'). */
#include "lq_test.h"

#include <signal.h>
#include <sys/wait.h>

#include "../formats/lq_checkpoint.h"
#include "../formats/lq_lqq.h"
#include "../libquant/lq_dtype.h"
#include "../libquant/lq_engine.h"
#include "../libquant/lq_eval.h"
#include "../libquant/lq_model.h"

static char g_lq[1024] = "build/lq";

typedef struct {
    char dir[256], path[320];
    float wf32[6 * 5];
    uint16_t wf16[7];
    int32_t wi32[3];
    float lin[24 * 70];     /* a linear weight (24, 70): 3 groups of 32 (last partial) */
    lq_qweight q_sym, q_asym;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lq_test_lqq.%ld", (long)getpid());
    mkdir(f->dir, 0755);
    snprintf(f->path, sizeof f->path, "%s/m.lqq", f->dir);
    uint64_t rng = 12345;
    lq_test_fill(&rng, f->wf32, 30, -2, 2);
    for (int i = 0; i < 7; i++) f->wf16[i] = lq_f32_to_f16((float)i * 0.25f);
    for (int i = 0; i < 3; i++) f->wi32[i] = -i * 1000;
    lq_test_fill(&rng, f->lin, 24 * 70, -0.1f, 0.1f);
    lq_quant_params ps = {4, 32, 1}, pa = {3, 32, 0};
    if (lq_rtn_quantize_packed(f->lin, 24, 70, &ps, &f->q_sym) != LQ_OK) return -1;
    lq_qweight tmp;
    if (lq_rtn_quantize_packed(f->lin, 24, 70, &pa, &tmp) != LQ_OK) return -1;
    /* asymmetric with a g_idx component (as act-order writes it) */
    if (lq_qweight_alloc(&f->q_asym, 24, 70, &pa, 1) != LQ_OK) return -1;
    memcpy(f->q_asym.qweight, tmp.qweight, lq_qweight_qweight_bytes(24, 70, 3));
    memcpy(f->q_asym.scales, tmp.scales, lq_qweight_scales_bytes(24, 3));
    memcpy(f->q_asym.qzeros, tmp.qzeros, lq_qweight_qzeros_bytes(24, 3, 3));
    lq_qweight_free(&tmp);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    lq_qweight_free(&f->q_sym);
    lq_qweight_free(&f->q_asym);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) print_message("could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static json_t *make_meta(void) {
    json_t *cfg = json_pack("{s:[s], s:i, s:i, s:i, s:i, s:i, s:i}", "architectures", "LlamaForCausalLM", "hidden_size",
                            70, "intermediate_size", 24, "num_hidden_layers", 1, "num_attention_heads", 2,
                            "vocab_size", 6, "max_position_embeddings", 16);
    return json_pack("{s:s, s:o, s:n, s:{s:s, s:{}}}", "lq_version", "test", "config", cfg, "tokenizer", "quantization",
                     "method", "rtn", "tensors");
}

/* Writes the fixture's file; returns the metadata (caller decrefs). */
static json_t *write_fixture(fixture *f, const char *path, lq_lqq_progress_fn fn, void *ud, lq_status *st_out) {
    lq_lqq_writer *w;
    assert_int_equal(lq_lqq_writer_new(&w), LQ_OK);
    int64_t s2[2] = {6, 5}, s1[1] = {7}, s3[1] = {3};
    assert_int_equal(lq_lqq_writer_add(w, "model.embed_tokens.weight", LQ_LQQ_F32, 2, s2, f->wf32, sizeof f->wf32), LQ_OK);
    assert_int_equal(lq_lqq_writer_add(w, "model.norm.weight", LQ_LQQ_F16, 1, s1, f->wf16, sizeof f->wf16), LQ_OK);
    assert_int_equal(lq_lqq_writer_add(w, "extra.ints", LQ_LQQ_I32, 1, s3, f->wi32, sizeof f->wi32), LQ_OK);
    /* a wrong size and a duplicate are refused */
    assert_int_equal(lq_lqq_writer_add(w, "bad", LQ_LQQ_F32, 1, s1, f->wf32, 4), LQ_ERR_SHAPE);
    assert_int_equal(lq_lqq_writer_add(w, "model.norm.weight", LQ_LQQ_F16, 1, s1, f->wf16, sizeof f->wf16), LQ_ERR_ARG);
    json_t *meta = make_meta();
    json_t *qt = json_object_get(json_object_get(meta, "quantization"), "tensors");
    json_t *r1, *r2;
    assert_int_equal(lq_lqq_writer_add_qweight(w, "model.layers.0.mlp.down_proj.weight", &f->q_sym, &r1), LQ_OK);
    assert_int_equal(lq_lqq_writer_add_qweight(w, "model.layers.0.mlp.up_proj.weight", &f->q_asym, &r2), LQ_OK);
    json_object_set_new(qt, "model.layers.0.mlp.down_proj.weight", r1);
    json_object_set_new(qt, "model.layers.0.mlp.up_proj.weight", r2);
    *st_out = lq_lqq_write(w, meta, path, fn, ud);
    lq_lqq_writer_free(w);
    return meta;
}

static void test_lqq_round_trip(void **state) {
    fixture *f = *state;
    lq_status st;
    json_t *meta = write_fixture(f, f->path, NULL, NULL, &st);
    assert_int_equal(st, LQ_OK);
    lq_lqq *r = NULL;
    assert_int_equal(lq_lqq_open(f->path, 0, &r), LQ_OK);
    int maj, min;
    lq_lqq_version(r, &maj, &min);
    assert_int_equal(maj, 1);
    assert_int_equal(min, LQ_LQQ_VERSION_MINOR);
    assert_true(json_equal((json_t *)lq_lqq_metadata(r), meta));
    const lq_lqq_tensor *t = lq_lqq_find(r, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, LQ_LQQ_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 6);
    assert_int_equal(t->shape[1], 5);
    assert_memory_equal(t->data, f->wf32, sizeof f->wf32);
    assert_int_equal((uintptr_t)t->data % LQ_LQQ_ALIGN, 0);
    t = lq_lqq_find(r, "extra.ints");
    assert_memory_equal(t->data, f->wi32, sizeof f->wi32);
    assert_null(lq_lqq_find(r, "nope"));
    /* 3 plain + 2 (sym: qweight, scales) + 4 (asym: + qzeros, g_idx) */
    assert_int_equal(lq_lqq_n_tensors(r), 9);
    assert_int_equal(lq_lqq_n_qweights(r), 2);
    lq_qweight v;
    assert_int_equal(lq_lqq_get_qweight(r, "model.layers.0.mlp.up_proj.weight", &v), LQ_OK);
    assert_int_equal(v.p.bits, 3);
    assert_int_equal(v.p.sym, 0);
    assert_int_equal(v.n_groups, 3);
    assert_non_null(v.g_idx);
    assert_null(v.mem);
    assert_memory_equal(v.qweight, f->q_asym.qweight, lq_qweight_qweight_bytes(24, 70, 3));
    assert_memory_equal(v.qzeros, f->q_asym.qzeros, lq_qweight_qzeros_bytes(24, 3, 3));
    lq_qweight_free(&v); /* a view: no-op */
    assert_int_equal(lq_lqq_get_qweight(r, "model.norm.weight", &v), LQ_ERR_NOTFOUND);
    lq_lqq_close(r);
    lq_lqq_close(NULL);

    /* through lq_checkpoint_open: quantized weights come back dequantized to F32 */
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_open(f->path, &ck), LQ_OK);
    assert_string_equal(ck->format, "lqq");
    assert_non_null(ck->config);
    assert_null(ck->tokenizer);
    assert_int_equal(ck->n_tensors, 5);
    const lq_tensor_info *ti = lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.weight");
    assert_non_null(ti);
    assert_int_equal(ti->dtype, LQ_F32);
    float want[24 * 70];
    lq_dequant_ref(&f->q_sym, want);
    assert_memory_equal(ti->data, want, sizeof want);
    assert_null(lq_checkpoint_find(ck, "model.layers.0.mlp.down_proj.qweight"));
    ti = lq_checkpoint_find(ck, "model.norm.weight");
    assert_int_equal(ti->dtype, LQ_F16);
    assert_memory_equal(ti->data, f->wf16, sizeof f->wf16);
    lq_checkpoint_free(ck);
    json_decref(meta);
}

static uint8_t *slurp(const char *path, size_t *n) {
    char *b;
    assert_int_equal(lq_read_file(path, &b, n), LQ_OK);
    return (uint8_t *)b;
}
static void spit(const char *path, const uint8_t *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}
static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void test_lqq_header_layout(void **state) {
    fixture *f = *state;
    lq_status st;
    json_decref(write_fixture(f, f->path, NULL, NULL, &st));
    size_t n;
    uint8_t *b = slurp(f->path, &n);
    assert_memory_equal(b, "LQQF", 4);
    assert_int_equal(b[4] | b[5] << 8, 1);                 /* major */
    assert_int_equal(b[8] | b[9] << 8, LQ_LQQ_HEADER_SIZE); /* header size */
    assert_int_equal(b[12] | b[13] << 8, 64);               /* alignment */
    assert_int_equal(le64(b + 24), n);                      /* file size */
    assert_int_equal(le64(b + 32), LQ_LQQ_HEADER_SIZE);     /* metadata right after the header */
    assert_int_equal(le64(b + 64), 9);                      /* tensor count */
    assert_int_equal(le64(b + 72) % 64, 0);                 /* data offset aligned */
    assert_int_equal(b[96], '{');                           /* JSON metadata */
    free(b);
}

static void test_lqq_flipped_byte_names_tensor(void **state) {
    fixture *f = *state;
    lq_status st;
    json_decref(write_fixture(f, f->path, NULL, NULL, &st));
    lq_lqq *r;
    assert_int_equal(lq_lqq_open(f->path, 0, &r), LQ_OK);
    const lq_lqq_tensor *t = lq_lqq_find(r, "model.layers.0.mlp.down_proj.scales");
    uint64_t off = t->offset + 5;
    lq_lqq_close(r);
    size_t n;
    uint8_t *b = slurp(f->path, &n);
    b[off] ^= 0x10;
    char bad[400];
    snprintf(bad, sizeof bad, "%s/flipped.lqq", f->dir);
    spit(bad, b, n);
    assert_int_equal(lq_lqq_open(bad, 0, &r), LQ_ERR_CHECKSUM);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "model.layers.0.mlp.down_proj.scales"));
    lq_checkpoint *ck;
    assert_int_equal(lq_checkpoint_open(bad, &ck), LQ_ERR_CHECKSUM);
    /* skipping tensor CRCs opens it (the header is intact) */
    assert_int_equal(lq_lqq_open(bad, LQ_LQQ_SKIP_TENSOR_CRC, &r), LQ_OK);
    lq_lqq_close(r);
    /* a flipped byte in the table or in the metadata */
    b[off] ^= 0x10;
    uint64_t table = le64(b + 48), meta = le64(b + 32);
    b[table + 70] ^= 1;
    spit(bad, b, n);
    assert_int_equal(lq_lqq_open(bad, 0, &r), LQ_ERR_CHECKSUM);
    assert_non_null(strstr(lq_last_error(), "table"));
    b[table + 70] ^= 1;
    b[meta + 3] ^= 1;
    spit(bad, b, n);
    assert_int_equal(lq_lqq_open(bad, 0, &r), LQ_ERR_CHECKSUM);
    assert_non_null(strstr(lq_last_error(), "metadata"));
    free(b);
}

static void test_lqq_truncated_file(void **state) {
    fixture *f = *state;
    lq_status st;
    json_decref(write_fixture(f, f->path, NULL, NULL, &st));
    size_t n;
    uint8_t *b = slurp(f->path, &n);
    char bad[400];
    snprintf(bad, sizeof bad, "%s/trunc.lqq", f->dir);
    size_t cuts[] = {0, 3, 50, 96, 200, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        spit(bad, b, cuts[i]);
        lq_lqq *r = NULL;
        lq_status s = lq_lqq_open(bad, 0, &r);
        assert_int_equal(s, LQ_ERR_FORMAT);
        assert_null(r);
        if (cuts[i] >= 8) assert_non_null(strstr(lq_last_error(), "truncated"));
        if (i == 5) print_message("%s\n", lq_last_error());
    }
    free(b);
}

static void test_lqq_unknown_major_refused(void **state) {
    fixture *f = *state;
    lq_status st;
    json_decref(write_fixture(f, f->path, NULL, NULL, &st));
    size_t n;
    uint8_t *b = slurp(f->path, &n);
    b[4] = 2; /* version 2.x */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/v2.lqq", f->dir);
    spit(bad, b, n);
    lq_lqq *r;
    assert_int_equal(lq_lqq_open(bad, 0, &r), LQ_ERR_UNSUPPORTED);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "version 2."));
    assert_non_null(strstr(lq_last_error(), "upgrade lq"));
    free(b);
}

static int abort_after_first(void *ud, int done, int total, uint64_t bd, uint64_t bt) {
    (void)ud, (void)total, (void)bd, (void)bt;
    return done >= 1;
}
static int kill_after_first(void *ud, int done, int total, uint64_t bd, uint64_t bt) {
    (void)ud, (void)total, (void)bd, (void)bt;
    if (done >= 2) raise(SIGKILL);
    return 0;
}

static void test_lqq_interrupted_write_leaves_no_file(void **state) {
    fixture *f = *state;
    char out[400];
    snprintf(out, sizeof out, "%s/interrupted.lqq", f->dir);
    unlink(out);
    /* aborted by the progress callback: no final file, no temporary left */
    lq_status st;
    json_decref(write_fixture(f, out, abort_after_first, NULL, &st));
    assert_int_equal(st, LQ_ERR_IO);
    struct stat sb;
    assert_int_not_equal(stat(out, &sb), 0);
    char tmp[480];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    assert_int_not_equal(stat(tmp, &sb), 0);
    /* killed mid-write (SIGKILL, no cleanup runs): still nothing under the final name */
    for (int existing = 0; existing < 2; existing++) {
        if (existing) spit(out, (const uint8_t *)"old", 3); /* an older file survives untouched */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            lq_status s2;
            json_t *m = write_fixture(f, out, kill_after_first, NULL, &s2);
            (void)m;
            _exit(0); /* not reached */
        }
        int ws;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
        if (existing) {
            size_t n;
            uint8_t *b = slurp(out, &n);
            assert_int_equal(n, 3);
            free(b);
        } else {
            assert_int_not_equal(stat(out, &sb), 0);
        }
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)pid);
        assert_int_equal(stat(tmp, &sb), 0); /* the partial temporary is all that is left */
        unlink(tmp);
    }
}

static void test_lqq_not_lqq_and_bad_recipe(void **state) {
    fixture *f = *state;
    char bad[400];
    snprintf(bad, sizeof bad, "%s/garbage.lqq", f->dir);
    spit(bad, (const uint8_t *)"GGUFxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 40);
    lq_lqq *r;
    assert_int_equal(lq_lqq_open(bad, 0, &r), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "magic"));
    /* a recipe that disagrees with its component's shape */
    lq_lqq_writer *w;
    assert_int_equal(lq_lqq_writer_new(&w), LQ_OK);
    json_t *meta = make_meta(), *rec;
    assert_int_equal(lq_lqq_writer_add_qweight(w, "x.weight", &f->q_sym, &rec), LQ_OK);
    json_object_set_new(rec, "shape", json_pack("[i, i]", 24, 100));
    json_object_set_new(json_object_get(json_object_get(meta, "quantization"), "tensors"), "x.weight", rec);
    assert_int_equal(lq_lqq_write(w, meta, bad, NULL, NULL), LQ_OK);
    lq_lqq_writer_free(w);
    json_decref(meta);
    lq_checkpoint *ck;
    assert_int_not_equal(lq_checkpoint_open(bad, &ck), LQ_OK);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "x.weight"));
}

/* ---------------- the opt-in 4-bit head (lq quantize --lm-head) on stories260K ---------------- */

/* stories260K ties its embeddings, so every case below also checks the untying. */
#define NEED_STORIES(p)                                                                                       \
    do {                                                                                                      \
        LQ_SKIP_IF_NO_SHARED(p, "models/stories260K/config.json");                                            \
        lq_test_shared_path(p, sizeof p, "models/stories260K");                                               \
    } while (0)

static lq_model *load_model(const char *path, unsigned flags) {
    lq_model *m = NULL;
    lq_status st = lq_model_load_ex(path, flags, &m);
    if (st != LQ_OK) print_message("load %s: %s\n", path, lq_last_error());
    assert_int_equal(st, LQ_OK);
    return m;
}

/* The first T tokens of the TinyStories sample (real text; T <= its length), or, without it, a fixed pattern. */
static int32_t *head_tokens(const lq_model *m, int T) {
    char p[1024];
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
    char *text = NULL;
    size_t n = 0, n_ids = 0;
    int32_t *ids = NULL;
    if (lq_test_shared_path(p, sizeof p, "datasets/tinystories/sample.txt") && lq_read_file(p, &text, &n) == LQ_OK &&
        lq_tokenizer_encode(m->tok, text, n, 1, &ids, &n_ids) == LQ_OK && n_ids >= (size_t)T) {
        memcpy(tok, ids, sizeof(int32_t) * (size_t)T);
    } else {
        for (int t = 0; t < T; t++) tok[t] = (int32_t)((t * 2654435761u) % (unsigned)m->cfg.vocab_size);
    }
    free(ids);
    free(text);
    return tok;
}

/* CPU reference logits (T, V) of one sequence; xn (T, D), the final-normed hidden states, when asked. */
static float *head_logits(const lq_model *m, const int32_t *tok, int T, float **xn) {
    lq_runstate *rs = NULL;
    assert_int_equal(lq_runstate_new(m, 1, T, T, &rs), LQ_OK);
    assert_int_equal(lq_forward(m, rs, tok, 1, T, 0, 0), LQ_OK);
    const size_t V = (size_t)m->cfg.vocab_size, D = (size_t)m->cfg.dim;
    float *out = malloc(sizeof(float) * (size_t)T * V);
    memcpy(out, rs->logits, sizeof(float) * (size_t)T * V);
    if (xn) { /* lq_forward leaves rmsnorm(x, final_norm) of every row in xb */
        *xn = malloc(sizeof(float) * (size_t)T * D);
        memcpy(*xn, rs->xb, sizeof(float) * (size_t)T * D);
    }
    lq_runstate_free(rs);
    return out;
}

static void assert_same_qweight(const lq_qweight *a, const lq_qweight *b) {
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    assert_int_equal(a->p.bits, b->p.bits);
    assert_int_equal(a->group_size, b->group_size);
    assert_int_equal(a->p.sym, b->p.sym);
    assert_memory_equal(a->qweight, b->qweight, lq_qweight_qweight_bytes(a->rows, a->cols, a->p.bits));
    assert_memory_equal(a->scales, b->scales, lq_qweight_scales_bytes(a->rows, a->n_groups));
    assert_int_equal(a->qzeros == NULL, b->qzeros == NULL);
    if (a->qzeros) assert_memory_equal(a->qzeros, b->qzeros, lq_qweight_qzeros_bytes(a->rows, a->n_groups, a->p.bits));
}

/* In memory: lq_model_quantize_head_rtn unties the head (the embeddings keep their bits), packs it exactly as
 * lq_rtn_quantize_packed does and leaves its dequantized values in w.lm_head. The logits of the float model
 * with only the head quantized obey the RTN bound: symmetric RTN moves each weight by at most half a step
 * (s/2; lq_quant.h: the codes never clip, |w| <= amax and amax / s rounds to 7 or less), so
 * |Δlogit[t][v]| = |xn[t] · (ŵ[v] - w[v])| <= Σ_k |xn[t][k]| s[v][k/G] / 2, plus float summation noise —
 * a bound of the arithmetic, not a tuned number. The fully quantized model's logits are finite. */
static void test_lqq_lm_head_in_memory(void **state) {
    (void)state;
    char p[1024];
    NEED_STORIES(p);
    lq_model *mf = load_model(p, 0), *mh = load_model(p, 0), *mq = load_model(p, 0);
    assert_true(mh->cfg.tie_embeddings);
    assert_ptr_equal(mh->w.lm_head, mh->w.embed);
    const int V = mh->cfg.vocab_size, D = mh->cfg.dim, T = 64;
    const size_t nw = (size_t)V * D;
    const lq_quant_params qp = {4, 32, 1};
    assert_int_equal(lq_model_quantize_head_rtn(mh, &qp), LQ_OK);
    assert_non_null(mh->qhead);
    assert_null(mh->qw);
    assert_false(mh->cfg.tie_embeddings);
    assert_true(mh->w.lm_head != mh->w.embed);
    assert_memory_equal(mh->w.embed, mf->w.embed, nw * sizeof(float)); /* the embedding table is untouched */
    assert_int_equal(lq_model_n_params(mh), lq_model_n_params(mf) + (int64_t)nw); /* the head counts on its own */
    lq_qweight want;
    assert_int_equal(lq_rtn_quantize_packed(mf->w.embed, V, D, &qp, &want), LQ_OK);
    assert_same_qweight(mh->qhead, &want);
    float *dq = malloc(nw * sizeof(float));
    lq_dequant_ref(mh->qhead, dq);
    assert_memory_equal(mh->w.lm_head, dq, nw * sizeof(float)); /* bit for bit */
    assert_int_equal(lq_model_quantize_head_rtn(mh, &qp), LQ_ERR_ARG); /* twice is refused */
    lq_clear_error();

    int32_t *tok = head_tokens(mf, T);
    float *xf = NULL, *xh = NULL;
    float *lf = head_logits(mf, tok, T, &xf), *lh = head_logits(mh, tok, T, &xh);
    assert_memory_equal(xh, xf, sizeof(float) * (size_t)T * D); /* same layers, same embeddings */
    double worst = 0, ratio = 0;
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) {
            double bound = 0, mag = 0;
            for (int k = 0; k < D; k++) {
                const double s = lq_f16_to_f32(want.scales[(size_t)v * want.n_groups + k / want.group_size]);
                bound += fabs(xf[(size_t)t * D + k]) * s / 2;
                mag += fabs(xf[(size_t)t * D + k]) * fabs(mf->w.embed[(size_t)v * D + k]);
            }
            const double d = fabs((double)lh[(size_t)t * V + v] - lf[(size_t)t * V + v]);
            const double slack = 1e-5 * mag + 1e-6; /* fp32 sums of D = 64 products, in either model */
            if (!(d <= bound + slack)) fail_msg("logit [%d][%d]: |Δ| %.6g exceeds the RTN bound %.6g", t, v, d, bound);
            if (d > worst) worst = d;
            if (bound > 0 && d / bound > ratio) ratio = d / bound;
        }
    print_message("head-only RTN-4 g32: max |Δlogit| %.4f, at most %.2f of the RTN bound\n", worst, ratio);
    assert_true(worst > 0); /* the head did change */

    /* every linear and the head: finite logits */
    assert_int_equal(lq_model_quantize_rtn(mq, &qp), LQ_OK);
    assert_int_equal(lq_model_quantize_head_rtn(mq, &qp), LQ_OK);
    assert_memory_equal(mq->w.embed, mf->w.embed, nw * sizeof(float));
    float *lq = head_logits(mq, tok, T, NULL);
    for (size_t i = 0; i < (size_t)T * V; i++)
        if (!isfinite(lq[i])) fail_msg("logit %zu is not finite: %g", i, lq[i]);
    print_message("all linears + head RTN-4 g32: max |Δlogit| vs float %.4f\n",
                  lq_test_max_abs(lq, lf, (size_t)T * V));
    lq_qweight_free(&want);
    free(dq);
    free(tok);
    free(xf);
    free(xh);
    free(lf);
    free(lh);
    free(lq);
    lq_model_free(mf);
    lq_model_free(mh);
    lq_model_free(mq);
}

static int run_quiet(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define NEED_LQ()                                                                  \
    do {                                                                           \
        if (access(g_lq, X_OK) != 0) {                                             \
            print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);           \
            skip();                                                                \
        }                                                                          \
    } while (0)

/* --compute on the commands that run a model: an unknown dtype is a usage error (exit 2) naming the flag;
 * f32 is accepted and, on the CPU (whose runtime is fp32 anyway), changes nothing. */
static void test_lqq_cli_compute_flag(void **state) {
    (void)state;
    char p[1024], text[1200], cmd[4096];
    NEED_STORIES(p);
    NEED_LQ();
    lq_test_shared_path(text, sizeof text, "datasets/tinystories/sample.txt");
    const char *bad[3] = {"ppl '%s' '%s' --ctx 16 --device cpu --compute f8", "eval '%s' '%s' '%s' --ctx 16 --device cpu --compute x",
                          "generate '%s' --prompt hi -n 1 --device cpu --compute 32"};
    for (int i = 0; i < 3; i++) {
        char sub[1200];
        if (i == 0) snprintf(sub, sizeof sub, bad[i], p, text);
        if (i == 1) snprintf(sub, sizeof sub, bad[i], p, p, text);
        if (i == 2) snprintf(sub, sizeof sub, bad[i], p);
        snprintf(cmd, sizeof cmd, "'%s' %s > /dev/null 2>&1", g_lq, sub);
        assert_int_equal(run_quiet(cmd), 2);
    }
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' '%s' --ctx 16 --device cpu --compute f8 2>&1 | grep -q 'bad --compute'", g_lq,
             p, text);
    assert_int_equal(run_quiet(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' '%s' --ctx 64 --max-windows 2 --device cpu --compute f32 --json --quiet > /dev/null",
             g_lq, p, text);
    assert_int_equal(run_quiet(cmd), 0);
}

/* lq quantize --lm-head (RTN 4-bit g128 sym) into dir/name; returns the path in out. */
static void quantize_file(const char *model, const char *out, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 4 --group 128 --sym %s --quiet > /dev/null",
             g_lq, model, out, extra);
    assert_int_equal(run_quiet(cmd), 0);
}

/* Through a file: the packed head of `lq quantize --lm-head` loads as the in-memory RTN model's (the same
 * bytes, w.lm_head and logits bit for bit), from the kernels' layout and from the bit stream, and
 * packed-only (no fp32 head); the embeddings stay the float table; a file without the head loads tied as before. */
static void test_lqq_lm_head_file_round_trip(void **state) {
    fixture *f = *state;
    char p[1024], fh[400], fb[400], fn[400];
    NEED_STORIES(p);
    NEED_LQ();
    snprintf(fh, sizeof fh, "%s/head.lqq", f->dir);
    snprintf(fb, sizeof fb, "%s/head_bits.lqq", f->dir);
    snprintf(fn, sizeof fn, "%s/nohead.lqq", f->dir);
    quantize_file(p, fh, "--lm-head");
    quantize_file(p, fb, "--lm-head --packing bitstream");
    quantize_file(p, fn, "");
    lq_model *mf = load_model(p, 0), *mm = load_model(p, 0);
    const lq_quant_params qp = {4, 128, 1};
    assert_int_equal(lq_model_quantize_rtn(mm, &qp), LQ_OK);
    assert_int_equal(lq_model_quantize_head_rtn(mm, &qp), LQ_OK);
    const int V = mf->cfg.vocab_size, D = mf->cfg.dim, T = 48;
    const size_t nw = (size_t)V * D;
    int32_t *tok = head_tokens(mf, T);
    float *lm = head_logits(mm, tok, T, NULL);
    const char *files[2] = {fh, fb};
    for (int i = 0; i < 2; i++) {
        lq_model *m = load_model(files[i], 0);
        assert_non_null(m->qhead);
        assert_true((m->qhead->mma_qw != NULL) == (i == 0)); /* auto packing: the kernels' layout */
        assert_false(m->cfg.tie_embeddings);
        assert_true(m->w.lm_head != m->w.embed);
        assert_same_qweight(m->qhead, mm->qhead);
        assert_memory_equal(m->w.lm_head, mm->w.lm_head, nw * sizeof(float));
        assert_memory_equal(m->w.embed, mf->w.embed, nw * sizeof(float));
        assert_int_equal(lq_model_n_params(m), lq_model_n_params(mm));
        float *l = head_logits(m, tok, T, NULL);
        assert_memory_equal(l, lm, sizeof(float) * (size_t)T * V);
        free(l);
        lq_model_free(m);
        /* packed-only: the head has no fp32 copy, the packed bytes are the same */
        m = load_model(files[i], LQ_LOAD_PACKED_ONLY);
        assert_true(m->packed_only);
        assert_null(m->w.lm_head);
        assert_non_null(m->qhead);
        assert_same_qweight(m->qhead, mm->qhead);
        assert_memory_equal(m->w.embed, mf->w.embed, nw * sizeof(float));
        lq_model_free(m);
    }
    /* the dequantized checkpoint view (lq inspect, lq convert) has an untied config and the head's values */
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_open(fh, &ck), LQ_OK);
    assert_true(json_is_false(json_object_get(ck->config, "tie_word_embeddings")));
    const lq_tensor_info *th = lq_checkpoint_find(ck, "lm_head.weight");
    assert_non_null(th);
    assert_int_equal(th->dtype, LQ_F32);
    assert_memory_equal(th->data, mm->w.lm_head, nw * sizeof(float));
    lq_checkpoint_free(ck);
    /* without --lm-head: tied and floating point, as before */
    lq_model *m = load_model(fn, 0);
    assert_null(m->qhead);
    assert_true(m->cfg.tie_embeddings);
    assert_ptr_equal(m->w.lm_head, m->w.embed);
    lq_model_free(m);
    m = load_model(fn, LQ_LOAD_PACKED_ONLY);
    assert_null(m->qhead);
    assert_ptr_equal(m->w.lm_head, m->w.embed);
    lq_model_free(m);
    free(tok);
    free(lm);
    lq_model_free(mf);
    lq_model_free(mm);
}

/* A copy of the .lqq src at dst with every tensor and the metadata as they are, except: head != NULL replaces
 * the packed head by that weight (bit stream), tie >= 0 sets config.tie_word_embeddings. */
static void rewrite_lqq(const char *src, const char *dst, const lq_qweight *head, int tie) {
    lq_lqq *f = NULL;
    assert_int_equal(lq_lqq_open(src, 0, &f), LQ_OK);
    lq_lqq_writer *w = NULL;
    assert_int_equal(lq_lqq_writer_new(&w), LQ_OK);
    json_t *meta = json_deep_copy(lq_lqq_metadata(f));
    json_t *qt = json_object_get(json_object_get(meta, "quantization"), "tensors");
    for (int i = 0; i < lq_lqq_n_tensors(f); i++) {
        const lq_lqq_tensor *t = lq_lqq_tensor_at(f, i);
        if (head && !strncmp(t->name, "lm_head.", 8)) continue; /* the head's components */
        assert_int_equal(lq_lqq_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->n_bytes), LQ_OK);
    }
    if (head) {
        json_t *rec = NULL;
        assert_int_equal(lq_lqq_writer_add_qweight(w, "lm_head.weight", head, &rec), LQ_OK);
        json_object_set_new(qt, "lm_head.weight", rec);
    }
    if (tie >= 0) json_object_set_new(json_object_get(meta, "config"), "tie_word_embeddings", json_boolean(tie));
    assert_int_equal(lq_lqq_write(w, meta, dst, NULL, NULL), LQ_OK);
    json_decref(meta);
    lq_lqq_writer_free(w);
    lq_lqq_close(f);
}

/* Bad heads: a flipped byte in the head's codes (checksum error naming lm_head.qweight), a truncated file, a
 * head of the wrong shape (LQ_ERR_SHAPE naming lm_head.weight, full and packed-only; lq ppl exits non-zero
 * with that message). A hand-made file whose config says tied still runs its packed head. */
static void test_lqq_lm_head_bad_files(void **state) {
    fixture *f = *state;
    char p[1024], fh[400], bad[400], cmd[4096];
    NEED_STORIES(p);
    NEED_LQ();
    snprintf(fh, sizeof fh, "%s/head2.lqq", f->dir);
    snprintf(bad, sizeof bad, "%s/head_bad.lqq", f->dir);
    quantize_file(p, fh, "--lm-head");
    size_t n;
    uint8_t *b = slurp(fh, &n);
    lq_lqq *r = NULL;
    assert_int_equal(lq_lqq_open(fh, 0, &r), LQ_OK);
    const lq_lqq_tensor *t = lq_lqq_find(r, "lm_head.qweight");
    assert_non_null(t);
    const uint64_t off = t->offset + t->n_bytes / 2;
    lq_lqq_close(r);
    lq_model *m = NULL;
    b[off] ^= 0x40;
    spit(bad, b, n);
    assert_int_equal(lq_model_load(bad, &m), LQ_ERR_CHECKSUM);
    assert_null(m);
    print_message("%s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "lm_head.qweight"));
    b[off] ^= 0x40;
    spit(bad, b, off); /* cut inside the head */
    assert_int_equal(lq_model_load_ex(bad, LQ_LOAD_PACKED_ONLY, &m), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "truncated"));
    free(b);

    /* a head of [V/2, D] where the config says [V, D] */
    lq_model *mf = load_model(p, 0);
    const int V = mf->cfg.vocab_size, D = mf->cfg.dim;
    const lq_quant_params qp = {4, 128, 1};
    lq_qweight half;
    assert_int_equal(lq_rtn_quantize_packed(mf->w.embed, V / 2, D, &qp, &half), LQ_OK);
    rewrite_lqq(fh, bad, &half, -1);
    for (int po = 0; po < 2; po++) {
        assert_int_equal(lq_model_load_ex(bad, po ? LQ_LOAD_PACKED_ONLY : 0, &m), LQ_ERR_SHAPE);
        assert_null(m);
        print_message("%s\n", lq_last_error());
        assert_non_null(strstr(lq_last_error(), "lm_head.weight"));
    }
    char text[1024];
    if (!lq_test_shared_path(text, sizeof text, "datasets/tinystories/sample.txt")) snprintf(text, sizeof text, "%s", fh);
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' '%s' --ctx 16 --device cpu 2>&1", g_lq, bad, text);
    FILE *pp = popen(cmd, "r");
    assert_non_null(pp);
    char msg[4096] = {0};
    size_t nr = fread(msg, 1, sizeof msg - 1, pp);
    msg[nr] = 0;
    const int st = pclose(pp);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    if (!strstr(msg, "lm_head.weight")) fail_msg("lq ppl on a wrong-shape head: unexpected output: %s", msg);
    lq_qweight_free(&half);

    /* the config says tied, the file has a packed head: the head is the packed one */
    rewrite_lqq(fh, bad, NULL, 1);
    lq_model *mt = load_model(bad, 0), *mh = load_model(fh, 0);
    assert_non_null(mt->qhead);
    assert_false(mt->cfg.tie_embeddings);
    assert_memory_equal(mt->w.lm_head, mh->w.lm_head, sizeof(float) * (size_t)V * D);
    assert_memory_equal(mt->w.embed, mf->w.embed, sizeof(float) * (size_t)V * D);
    lq_model_free(mt);
    lq_model_free(mh);
    lq_model_free(mf);
}

static json_t *run_json(const char *cmd) {
    FILE *pp = popen(cmd, "r");
    assert_non_null(pp);
    json_error_t err;
    json_t *o = json_loadf(pp, JSON_DISABLE_EOF_CHECK, &err);
    const int st = pclose(pp);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) fail_msg("failed: %s", cmd);
    if (!o) fail_msg("no JSON from %s: %s", cmd, err.text);
    return o;
}

/* The CLI end to end: lq quantize --method gptq --lm-head (the head's GPTQ on the final-normed hidden states),
 * lq inspect (the recipe says how the head was quantized; the config is untied), lq ppl (the same perplexity
 * as the file scored in this process) and lq eval (a KLD against the original). */
static void test_lqq_lm_head_cli(void **state) {
    fixture *f = *state;
    char p[1024], c4[1024], text[1024], out[400], cmd[4096];
    NEED_STORIES(p);
    NEED_LQ();
    LQ_SKIP_IF_NO_SHARED(c4, "datasets/c4/c4_validation_2k.jsonl.gz");
    LQ_SKIP_IF_NO_SHARED(text, "datasets/tinystories/sample.txt");
    snprintf(out, sizeof out, "%s/gptq_head.lqq", f->dir);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method gptq --bits 4 --group 128 --sym --lm-head --calib '%s' "
             "--nsamples 16 --seqlen 64 --seed 0 --quiet --json", g_lq, p, out, c4);
    json_t *o = run_json(cmd);
    assert_true(json_is_true(json_object_get(o, "lm_head")));
    json_t *ts = json_object_get(o, "tensors");
    assert_int_equal(json_array_size(ts), 5 * 7 + 1);
    json_t *last = json_array_get(ts, 5 * 7);
    assert_string_equal(json_string_value(json_object_get(last, "name")), "lm_head.weight");
    assert_string_equal(json_string_value(json_object_get(last, "method")), "gptq");
    /* measured on the calibration inputs: GPTQ's output error below RTN's */
    const double er = json_real_value(json_object_get(last, "rel_err_rtn")),
                 eg = json_real_value(json_object_get(last, "rel_err_gptq"));
    print_message("lm_head rel. output error: RTN %.5f, GPTQ %.5f\n", er, eg);
    assert_true(eg > 0 && eg < er);
    json_decref(o);

    snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", g_lq, out);
    o = run_json(cmd);
    assert_int_equal(json_integer_value(json_object_get(o, "n_quantized")), 5 * 7 + 1);
    assert_true(json_is_false(json_object_get(json_object_get(o, "config"), "tie_word_embeddings")));
    json_t *h = json_object_get(json_object_get(o, "quantization"), "lm_head");
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "method")), "gptq");
    assert_int_equal(json_integer_value(json_object_get(h, "bits")), 4);
    assert_true(json_is_true(json_object_get(h, "untied_from_embeddings")));
    json_decref(o);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", g_lq, out);
    FILE *pp = popen(cmd, "r");
    char txt[8192] = {0};
    size_t nr = fread(txt, 1, sizeof txt - 1, pp);
    txt[nr] = 0;
    assert_int_equal(pclose(pp), 0);
    if (!strstr(txt, "lm_head:     quantized (gptq 4-bit")) fail_msg("lq inspect does not show the head: %s", txt);

    /* lq ppl of the file = the file scored here on the CPU reference */
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' '%s' --ctx 128 --device cpu --json 2>/dev/null", g_lq, out, text);
    o = run_json(cmd);
    const double ppl_cli = json_real_value(json_object_get(o, "ppl"));
    json_decref(o);
    lq_model *m = load_model(out, 0);
    assert_non_null(m->qhead);
    char *buf = NULL;
    size_t nb = 0, n_ids = 0;
    int32_t *ids = NULL;
    assert_int_equal(lq_read_file(text, &buf, &nb), LQ_OK);
    assert_int_equal(lq_tokenizer_encode(m->tok, buf, nb, 1, &ids, &n_ids), LQ_OK);
    lq_engine *e = NULL;
    assert_int_equal(lq_engine_cpu_new(m, 4, 128, &e), LQ_OK);
    lq_ppl_opts po = {128, 0, 4, NULL, NULL};
    lq_ppl_result pr;
    assert_int_equal(lq_ppl_eval(e, ids, n_ids, &po, &pr), LQ_OK);
    print_message("GPTQ-4 g128 sym + head: ppl %.6f (lq ppl %.6f)\n", pr.ppl, ppl_cli);
    assert_true(isfinite(pr.ppl) && pr.ppl > 1);
    assert_true(fabs(ppl_cli / pr.ppl - 1) < 1e-7); /* printed with 9 digits */
    lq_engine_free(e);
    lq_model_free(m);
    free(ids);
    free(buf);

    /* lq eval: both models over the same windows; the quantized head makes a real KLD */
    snprintf(cmd, sizeof cmd, "'%s' eval '%s' '%s' '%s' --ctx 128 --device cpu --json 2>/dev/null", g_lq, p, out, text);
    o = run_json(cmd);
    const double kld = json_real_value(json_object_get(o, "kld_mean")),
                 pq = json_real_value(json_object_get(o, "ppl_quant"));
    print_message("lq eval: ppl_quant %.6f, mean KLD %.5f\n", pq, kld);
    assert_true(kld > 0 && isfinite(kld));
    assert_true(fabs(pq / ppl_cli - 1) < 1e-7);
    json_decref(o);
}

int main(int argc, char **argv) {
    (void)argc;
    lq_test_lq_binary(argv[0], g_lq, sizeof g_lq);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lqq_round_trip),
        cmocka_unit_test(test_lqq_header_layout),
        cmocka_unit_test(test_lqq_flipped_byte_names_tensor),
        cmocka_unit_test(test_lqq_truncated_file),
        cmocka_unit_test(test_lqq_unknown_major_refused),
        cmocka_unit_test(test_lqq_interrupted_write_leaves_no_file),
        cmocka_unit_test(test_lqq_not_lqq_and_bad_recipe),
        cmocka_unit_test(test_lqq_lm_head_in_memory),
        cmocka_unit_test(test_lqq_lm_head_file_round_trip),
        cmocka_unit_test(test_lqq_lm_head_bad_files),
        cmocka_unit_test(test_lqq_lm_head_cli),
        cmocka_unit_test(test_lqq_cli_compute_flag),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
