/* test_lqq.c — the packed model file (formats/lq_lqq.h, formats/FORMAT.md):
 * write/read round trip of plain and quantized tensors and metadata, the
 * header as documented, lq_checkpoint_open dispatch with dequantization, a
 * flipped byte (tensor, table, metadata) -> LQ_ERR_CHECKSUM naming what is
 * corrupt, truncation -> a clear error, an unknown major version refused,
 * and interrupted writes (aborted, or the writer SIGKILLed mid-file) leaving
 * nothing under the output name. Run: make test (or build/tests/test_lqq). */
#include "lq_test.h"

#include <signal.h>
#include <sys/wait.h>

#include "../formats/lq_checkpoint.h"
#include "../formats/lq_lqq.h"
#include "../libquant/lq_dtype.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lqq_round_trip),
        cmocka_unit_test(test_lqq_header_layout),
        cmocka_unit_test(test_lqq_flipped_byte_names_tensor),
        cmocka_unit_test(test_lqq_truncated_file),
        cmocka_unit_test(test_lqq_unknown_major_refused),
        cmocka_unit_test(test_lqq_interrupted_write_leaves_no_file),
        cmocka_unit_test(test_lqq_not_lqq_and_bad_recipe),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
