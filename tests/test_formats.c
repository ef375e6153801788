/* test_formats.c — the loaders and writers of formats/ against malformed and
 * valid inputs: safetensors (built byte by byte here), Hugging Face
 * directories (single file and sharded), llama2.c .bin, archives (.tar,
 * .tar.gz, .tar.zst, .zip written with libarchive's writer), the atomic
 * writer, and the real stories260K checkpoint in both of its layouts.
 *
 * Why so many malformed cases: every loader reads untrusted bytes. Each bad
 * input must fail with the right lq_status and a message that names the file
 * and the offending tensor or field — and never crash (run it under ASan with
 * `make asan`; the same parsers are fuzzed by tests/fuzz/fuzz_*.c).
 *
 * Run: make test, or `make build/tests/test_formats && build/tests/test_formats`.
 * The stories260K tests need ../shared (or $LQ_SHARED) and skip without it.
 * Scratch files live in a private directory under $TMPDIR that is removed at
 * the end; archive extraction is pointed at a sub-directory of it (TMPDIR is
 * overridden for the suite) so the tests can check that nothing is left. */
#include "lq_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

#include "../formats/lq_formats.h"

/* ------------------------------------------------------------------------ */
/* scratch directory and small file helpers                                  */

static char g_root[480];     /* private scratch directory for this run */
static char g_xtmp[600];     /* TMPDIR for archive extraction (must stay empty) */
static char *g_old_tmpdir;   /* TMPDIR before the suite, restored at the end */

static int group_setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    g_old_tmpdir = t ? strdup(t) : NULL;
    snprintf(g_root, sizeof g_root, "%s/lq-test-formats-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_root)) return -1;
    snprintf(g_xtmp, sizeof g_xtmp, "%s/xtmp", g_root);
    if (mkdir(g_xtmp, 0700) != 0) return -1;
    setenv("TMPDIR", g_xtmp, 1);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    lq_remove_tree(g_root);
    if (g_old_tmpdir) setenv("TMPDIR", g_old_tmpdir, 1);
    else unsetenv("TMPDIR");
    free(g_old_tmpdir);
    return 0;
}

/* "<g_root>/<rel>" (printf-style rel) */
static void scratch(char *buf, size_t n, const char *fmt, ...) {
    char rel[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(buf, n, "%s/%s", g_root, rel);
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (n) assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}
static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static int path_exists(const char *p) {
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static void make_dir(const char *p) {
    if (mkdir(p, 0755) != 0) fail_msg("mkdir %s failed", p);
}

/* Number of entries (other than . and ..) in a directory; -1 when unreadable. */
static int dir_count(const char *p) {
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Any entry whose name contains needle? */
static int dir_has(const char *p, const char *needle) {
    DIR *d = opendir(p);
    if (!d) return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, needle)) found = 1;
    closedir(d);
    return found;
}

/* Archive extraction must never leave anything behind in its TMPDIR. */
static void assert_xtmp_empty(void) {
    int n = dir_count(g_xtmp);
    if (n != 0) fail_msg("%d entries left behind in the extraction TMPDIR %s", n, g_xtmp);
}

/* ------------------------------------------------------------------------ */
/* status + message checks                                                   */

/* Assert that `got` is `want` and that lq_last_error() contains each needle
 * (the file, the tensor/field, the value). */
static void expect_err_(lq_status got, lq_status want, const char *file, int line, const char *expr,
                        const char *const *needles) {
    const char *msg = lq_last_error();
    if (got != want)
        fail_msg("%s:%d: %s returned %s, expected %s (message: \"%s\")", file, line, expr,
                 lq_status_name(got), lq_status_name(want), msg);
    for (int i = 0; needles[i]; i++)
        if (!strstr(msg, needles[i]))
            fail_msg("%s:%d: %s: message \"%s\" does not mention \"%s\"", file, line, expr, msg, needles[i]);
}
#define EXPECT_ERR(expr, want, ...)                                                                \
    expect_err_((expr), (want), __FILE__, __LINE__, #expr, (const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------------------ */
/* safetensors images built by hand                                          */

/* 8-byte little-endian header length `hlen`, then hdr (strlen bytes), then
 * n_data bytes of data (copied from data, zeros when data is NULL). */
static uint8_t *st_image_len(uint64_t hlen, const char *hdr, const void *data, size_t n_data, size_t *n_out) {
    size_t hl = strlen(hdr), n = 8 + hl + n_data;
    uint8_t *b = calloc(1, n);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, hdr, hl);
    if (data && n_data) memcpy(b + 8 + hl, data, n_data);
    *n_out = n;
    return b;
}
static uint8_t *st_image(const char *hdr, const void *data, size_t n_data, size_t *n_out) {
    return st_image_len(strlen(hdr), hdr, data, n_data, n_out);
}

/* The valid reference file: four tensors of four dtypes, one of them a
 * scalar, in an order that differs from their offsets. */
static const char ST_VALID_HDR[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
    "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[40,44]}}";
static const float ST_W[6] = {0.5f, -1.25f, 3.0f, 0.0f, 1e-3f, -7.5f};
static const float ST_H[4] = {1.0f, -2.0f, 0.5f, 65504.0f};   /* exact in f16 */
static const float ST_B[4] = {1.0f, -1.0f, 3.0f, 0.25f};      /* exact in bf16 */
static const int32_t ST_I = -123456;

static uint8_t *st_valid(size_t *n_out) {
    uint8_t data[44];
    memcpy(data, ST_W, 24);
    for (int i = 0; i < 4; i++) {
        uint16_t h = lq_f32_to_f16(ST_H[i]), b = lq_f32_to_bf16(ST_B[i]);
        memcpy(data + 24 + 2 * i, &h, 2);
        memcpy(data + 32 + 2 * i, &b, 2);
    }
    memcpy(data + 40, &ST_I, 4);
    return st_image(ST_VALID_HDR, data, sizeof data, n_out);
}

/* Parse exactly n bytes from a fresh heap copy (so ASan sees any over-read). */
static lq_status st_parse_copy(const uint8_t *img, size_t n, const char *name, int *n_tensors) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, img, n);
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_new(&ck, name, "safetensors"), LQ_OK);
    lq_status st = lq_safetensors_parse(ck, copy, n, name);
    if (n_tensors) *n_tensors = ck->n_tensors;
    lq_checkpoint_free(ck);
    free(copy);
    return st;
}

/* Build an image from hdr with 64 zero data bytes, then check that both the
 * in-memory parser and the file loader fail with `want` and a message holding
 * the file name and every needle. */
static void st_expect_(const char *hdr, lq_status want, const char *file, int line, const char *const *needles) {
    size_t n;
    uint8_t *img = st_image(hdr, NULL, 64, &n);
    const char *mem_name = "mem-case.safetensors";
    lq_status st = st_parse_copy(img, n, mem_name, NULL);
    const char *with_mem[16] = {mem_name};
    int k = 1;
    for (int i = 0; needles[i] && k < 15; i++) with_mem[k++] = needles[i];
    with_mem[k] = NULL;
    expect_err_(st, want, file, line, hdr, with_mem);

    char path[1024];
    scratch(path, sizeof path, "case.safetensors");
    write_file(path, img, n);
    lq_checkpoint *ck = NULL;
    st = lq_safetensors_open(path, &ck);
    assert_null(ck);
    with_mem[0] = path;
    expect_err_(st, want, file, line, hdr, with_mem);
    free(img);
}
#define ST_EXPECT(hdr, want, ...)                                                                  \
    st_expect_((hdr), (want), __FILE__, __LINE__, (const char *const[]){__VA_ARGS__, NULL})

/* A small F32 checkpoint built in memory (names, shapes, random values). */
typedef struct {
    lq_checkpoint *ck;
    float *vals[8];
} mem_ck;

static void mem_ck_add(mem_ck *m, int idx, const char *name, int ndim, const int64_t *shape, uint64_t *seed) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    void *buf;
    assert_int_equal(lq_checkpoint_alloc(m->ck, (size_t)n * 4, &buf), LQ_OK);
    lq_test_fill(seed, buf, (size_t)n, -2.0f, 2.0f);
    m->vals[idx] = buf;
    assert_int_equal(lq_checkpoint_add_tensor(m->ck, name, LQ_F32, ndim, shape, buf, (size_t)n * 4), LQ_OK);
}

/* Tensors are the same (name, dtype, shape, bytes) in both checkpoints. */
static void assert_same_tensors(const lq_checkpoint *a, const lq_checkpoint *b) {
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const lq_tensor_info *x = &a->tensors[i], *y = lq_checkpoint_find(b, x->name);
        if (!y) fail_msg("tensor '%s' missing", x->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++) assert_int_equal(x->shape[d], y->shape[d]);
        assert_int_equal(x->n_bytes, y->n_bytes);
        if (x->n_bytes && memcmp(x->data, y->data, x->n_bytes) != 0) fail_msg("tensor '%s' differs", x->name);
    }
}

/* ------------------------------------------------------------------------ */
/* safetensors: valid input                                                  */

static void test_formats_safetensors_parse_valid(void **state) {
    (void)state;
    size_t n;
    uint8_t *img = st_valid(&n);
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_new(&ck, "valid.safetensors", "safetensors"), LQ_OK);
    assert_int_equal(lq_safetensors_parse(ck, img, n, "valid.safetensors"), LQ_OK);
    assert_int_equal(ck->n_tensors, 4);
    const uint8_t *data = img + n - 44;

    const lq_tensor_info *w = lq_checkpoint_find(ck, "w");
    assert_non_null(w);
    assert_int_equal(w->dtype, LQ_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_ptr_equal(w->data, data);
    assert_int_equal(w->n_bytes, 24);

    const lq_tensor_info *i = lq_checkpoint_find(ck, "i");
    assert_non_null(i);
    assert_int_equal(i->ndim, 0); /* a scalar: shape [] */
    assert_int_equal(lq_tensor_numel(i), 1);
    assert_ptr_equal(i->data, data + 40);

    struct {
        const char *name;
        const float *want;
        size_t n;
    } cases[] = {{"w", ST_W, 6}, {"h", ST_H, 4}, {"b", ST_B, 4}};
    for (size_t c = 0; c < 3; c++) {
        float *f = NULL;
        const lq_tensor_info *t = lq_checkpoint_find(ck, cases[c].name);
        assert_non_null(t);
        assert_int_equal(lq_tensor_to_f32(t, (int64_t)cases[c].n, &f), LQ_OK);
        assert_memory_equal(f, cases[c].want, cases[c].n * 4);
        free(f);
    }
    float *f = NULL;
    assert_int_equal(lq_tensor_to_f32(i, 1, &f), LQ_OK);
    assert_true(f[0] == (float)ST_I);
    free(f);
    /* wrong expected element count names the tensor */
    EXPECT_ERR(lq_tensor_to_f32(w, 7, &f), LQ_ERR_SHAPE, "'w'", "6", "7");
    assert_null(lq_checkpoint_find(ck, "__metadata__"));
    lq_checkpoint_free(ck);
    free(img);
}

static void test_formats_safetensors_empty_and_zero_size(void **state) {
    (void)state;
    int nt = -1;
    size_t n;
    uint8_t *img = st_image("{}", NULL, 0, &n);
    assert_int_equal(st_parse_copy(img, n, "empty.safetensors", &nt), LQ_OK);
    assert_int_equal(nt, 0);
    free(img);
    /* only metadata, and trailing spaces (writers pad the header to 8 bytes) */
    img = st_image("{\"__metadata__\":{\"a\":\"b\"}}      ", NULL, 0, &n);
    assert_int_equal(st_parse_copy(img, n, "meta.safetensors", &nt), LQ_OK);
    assert_int_equal(nt, 0);
    free(img);
    /* zero-size tensors occupy no bytes: they overlap nothing, wherever they sit */
    img = st_image("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"y\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[4,4]},"
                   "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                   NULL, 8, &n);
    lq_status st = st_parse_copy(img, n, "zero.safetensors", &nt);
    if (st != LQ_OK) fail_msg("zero-size tensors refused: %s", lq_last_error());
    assert_int_equal(nt, 4);
    free(img);
    /* four dimensions is the supported maximum */
    img = st_image("{\"t\":{\"dtype\":\"BF16\",\"shape\":[1,2,1,3],\"data_offsets\":[0,12]}}", NULL, 12, &n);
    assert_int_equal(st_parse_copy(img, n, "4d.safetensors", &nt), LQ_OK);
    free(img);
}

/* ------------------------------------------------------------------------ */
/* safetensors: malformed input                                              */

static void test_formats_safetensors_every_truncation_fails(void **state) {
    (void)state;
    size_t n;
    uint8_t *img = st_valid(&n);
    char path[1024];
    scratch(path, sizeof path, "trunc.safetensors");
    write_file(path, img, n);
    for (size_t len = n; len-- > 0;) { /* downwards: truncate() only shrinks */
        lq_status st = st_parse_copy(img, len, "trunc-mem.safetensors", NULL);
        if (st == LQ_OK) fail_msg("truncation to %zu of %zu bytes was accepted", len, n);
        if (!strstr(lq_last_error(), "trunc-mem.safetensors"))
            fail_msg("truncated to %zu: message \"%s\" does not name the file", len, lq_last_error());
        /* the same through the file loader (mmap of a short file) */
        assert_int_equal(truncate(path, (off_t)len), 0);
        lq_checkpoint *ck = NULL;
        st = lq_safetensors_open(path, &ck);
        if (st == LQ_OK) fail_msg("file truncated to %zu bytes was accepted", len);
        assert_null(ck);
        if (!strstr(lq_last_error(), path))
            fail_msg("truncated file %zu: message \"%s\" does not name the file", len, lq_last_error());
        if (len == 0 || len == 7) EXPECT_ERR(st, LQ_ERR_FORMAT, path, "too short");
        if (len == 8 || len == 100) EXPECT_ERR(st, LQ_ERR_FORMAT, path, "header length");
    }
    /* cut in the data area: the last tensor by offset ('i') runs past the end */
    write_file(path, img, n - 1);
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_safetensors_open(path, &ck), LQ_ERR_FORMAT, path, "'i'", "data_offsets");
    free(img);
}

static void test_formats_safetensors_bitflips_never_crash(void **state) {
    (void)state;
    /* Every single-bit flip of the valid file: any status is fine, but the
     * parser must not crash or over-read (ASan), and an error must say where. */
    size_t n;
    uint8_t *img = st_valid(&n);
    int n_ok = 0, n_err = 0;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) {
            img[i] ^= (uint8_t)(1u << b);
            int nt = 0;
            lq_status st = st_parse_copy(img, n, "flip.safetensors", &nt);
            if (st == LQ_OK) n_ok++;
            else {
                n_err++;
                if (!strstr(lq_last_error(), "flip.safetensors"))
                    fail_msg("flip byte %zu bit %d: message \"%s\" does not name the file", i, b, lq_last_error());
            }
            img[i] ^= (uint8_t)(1u << b);
        }
    print_message("bit flips: %d accepted, %d refused\n", n_ok, n_err);
    assert_true(n_err > 0);
    free(img);
}

static void test_formats_safetensors_lying_header_length(void **state) {
    (void)state;
    char path[1024];
    scratch(path, sizeof path, "lying.safetensors");
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    const uint64_t lies[] = {strlen(hdr) + 8 + 1, strlen(hdr) + 1000, 1ull << 40, UINT64_MAX, UINT64_MAX - 7,
                             (uint64_t)INT64_MAX + 1};
    for (size_t k = 0; k < sizeof lies / sizeof lies[0]; k++) {
        size_t n;
        uint8_t *img = st_image_len(lies[k], hdr, NULL, 8, &n);
        write_file(path, img, n);
        lq_checkpoint *ck = NULL;
        char val[32];
        snprintf(val, sizeof val, "%llu", (unsigned long long)lies[k]);
        EXPECT_ERR(lq_safetensors_open(path, &ck), LQ_ERR_FORMAT, path, "header length", val);
        assert_int_not_equal(st_parse_copy(img, n, "lying-mem", NULL), LQ_OK);
        free(img);
    }
    /* shorter than the JSON: the header is cut in the middle */
    size_t n;
    uint8_t *img = st_image_len(strlen(hdr) - 10, hdr, NULL, 8, &n);
    write_file(path, img, n);
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_safetensors_open(path, &ck), LQ_ERR_FORMAT, path, "JSON");
    free(img);
    /* within a (sparse) file but absurd: > 100 MB of JSON is refused before parsing */
    const uint64_t big = (100ull << 20) + 1;
    img = st_image_len(big, "{", NULL, 0, &n);
    write_file(path, img, n);
    assert_int_equal(truncate(path, (off_t)(8 + big + 16)), 0);
    EXPECT_ERR(lq_safetensors_open(path, &ck), LQ_ERR_FORMAT, path, "header length", "absurd");
    assert_int_equal(truncate(path, 0), 0);
    free(img);
}

static void test_formats_safetensors_overlapping_tensors(void **state) {
    (void)state;
    ST_EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              LQ_ERR_FORMAT, "'a'", "'b'", "overlap");
    /* the same range twice */
    ST_EXPECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]},"
              "\"b\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[16,32]}}",
              LQ_ERR_FORMAT, "'a'", "'b'", "overlap");
    /* one inside another, listed first */
    ST_EXPECT("{\"in\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[5,6]},"
              "\"out\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
              LQ_ERR_FORMAT, "'in'", "'out'", "overlap");
}

static void test_formats_safetensors_offsets_out_of_range(void **state) {
    (void)state;
    /* the data area is 64 bytes */
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[17],\"data_offsets\":[0,68]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets", "68");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[64,68]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4611686018427387904,4611686018427387912]}}",
              LQ_ERR_FORMAT, "'w'", "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,8]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8.0]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", LQ_ERR_FORMAT,
              "'w'", "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", LQ_ERR_FORMAT, "'w'",
              "data_offsets");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", LQ_ERR_FORMAT, "'w'", "data_offsets");
}

static void test_formats_safetensors_unknown_dtype(void **state) {
    (void)state;
    ST_EXPECT("{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,8]}}", LQ_ERR_UNSUPPORTED, "'w'",
              "dtype", "Q4_K");
    ST_EXPECT("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", LQ_ERR_UNSUPPORTED, "'w'",
              "'f32'");
    ST_EXPECT("{\"w\":{\"dtype\":\"\",\"shape\":[2],\"data_offsets\":[0,8]}}", LQ_ERR_UNSUPPORTED, "'w'",
              "dtype");
    ST_EXPECT("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'", "'dtype'");
    ST_EXPECT("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'", "'dtype'");
}

static void test_formats_safetensors_size_mismatch(void **state) {
    (void)state;
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", LQ_ERR_SHAPE, "'w'", "24",
              "20");
    ST_EXPECT("{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", LQ_ERR_SHAPE, "'w'", "8",
              "16");
    ST_EXPECT("{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[4,8]}}",
              LQ_ERR_SHAPE, "'w'", "BF16");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,4]}}", LQ_ERR_SHAPE, "'w'");
    /* a shape whose byte count overflows 64 bits */
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
              LQ_ERR_FORMAT, "'w'", "overflow");
    ST_EXPECT("{\"w\":{\"dtype\":\"I8\",\"shape\":[9223372036854775807,3],\"data_offsets\":[0,8]}}",
              LQ_ERR_FORMAT, "'w'", "overflow");
}

static void test_formats_safetensors_bad_json(void **state) {
    (void)state;
    const char *bad[] = {
        "{\"w\":{\"dtype\":\"F32\",",                     /* cut */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],}}",     /* trailing comma */
        "{'w':1}",                                         /* single quotes */
        "",                                                /* empty */
        "   ",                                             /* blank */
        "{\"w\":{\"dtype\":\"F32\"}} garbage",             /* trailing garbage */
        "{\"\xff\xfe\":{}}",                               /* invalid UTF-8 */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e999],\"data_offsets\":[0,4]}}", /* number overflow */
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) ST_EXPECT(bad[i], LQ_ERR_FORMAT, "JSON");
    /* a NUL byte inside the header */
    char path[1024];
    scratch(path, sizeof path, "nul.safetensors");
    const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t n;
    uint8_t *img = st_image(hdr, NULL, 4, &n);
    img[8 + 5] = 0;
    write_file(path, img, n);
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_safetensors_open(path, &ck), LQ_ERR_FORMAT, path, "JSON");
    free(img);
}

static void test_formats_safetensors_duplicate_keys(void **state) {
    (void)state;
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              LQ_ERR_FORMAT, "duplicate", "w");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", LQ_ERR_FORMAT,
              "duplicate", "dtype");
    /* the same tensor name in two files of one checkpoint (shards) */
    char p1[1024], p2[1024];
    scratch(p1, sizeof p1, "dup1.safetensors");
    scratch(p2, sizeof p2, "dup2.safetensors");
    size_t n;
    uint8_t *img = st_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", NULL, 4, &n);
    write_file(p1, img, n);
    write_file(p2, img, n);
    free(img);
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_new(&ck, "two-files", "safetensors"), LQ_OK);
    assert_int_equal(lq_safetensors_add_file(ck, p1), LQ_OK);
    EXPECT_ERR(lq_safetensors_add_file(ck, p2), LQ_ERR_FORMAT, p2, "'w'", "duplicate");
    assert_int_equal(ck->n_tensors, 1);
    lq_checkpoint_free(ck);
}

static void test_formats_safetensors_non_object_header(void **state) {
    (void)state;
    const char *bad[] = {"[1,2,3]", "\"tensors\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        uint8_t *img = st_image(bad[i], NULL, 8, &n);
        lq_status st = st_parse_copy(img, n, "nonobj.safetensors", NULL);
        /* jansson refuses bare scalars without JSON_DECODE_ANY: either message is fine */
        EXPECT_ERR(st, LQ_ERR_FORMAT, "nonobj.safetensors");
        assert_true(strstr(lq_last_error(), "not an object") || strstr(lq_last_error(), "JSON"));
        free(img);
    }
    ST_EXPECT("[{\"w\":1}]", LQ_ERR_FORMAT, "not an object");
    ST_EXPECT("{\"w\":[0,4]}", LQ_ERR_FORMAT, "'w'", "not an object");
    ST_EXPECT("{\"w\":\"F32\"}", LQ_ERR_FORMAT, "'w'", "not an object");
    ST_EXPECT("{\"__metadata__\":[\"x\"]}", LQ_ERR_FORMAT, "__metadata__");
}

static void test_formats_safetensors_bad_shape_entries(void **state) {
    (void)state;
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", LQ_ERR_FORMAT, "'w'",
              "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,-3],\"data_offsets\":[0,4]}}", LQ_ERR_FORMAT, "'w'",
              "shape[1]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", LQ_ERR_FORMAT, "'w'",
              "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'",
              "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'",
              "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'",
              "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[-9223372036854775808],\"data_offsets\":[0,8]}}",
              LQ_ERR_FORMAT, "'w'", "shape[0]");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'", "'shape'");
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", LQ_ERR_FORMAT, "'w'", "'shape'");
}

static void test_formats_safetensors_too_many_dims(void **state) {
    (void)state;
    ST_EXPECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", LQ_ERR_UNSUPPORTED,
              "'w'", "5 dimensions");
    ST_EXPECT("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
              "\"data_offsets\":[0,1]}}",
              LQ_ERR_UNSUPPORTED, "'w'", "33 dimensions");
}

/* ------------------------------------------------------------------------ */
/* safetensors writer                                                        */

/* Bit-exact, treating any two NaNs as equal. */
static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, 4) == 0;
}

static void test_formats_safetensors_write_round_trip(void **state) {
    (void)state;
    uint64_t seed = lq_test_seed();
    lq_checkpoint *src = NULL;
    assert_int_equal(lq_checkpoint_new(&src, "mem", "test"), LQ_OK);
    /* F32 values with the edge cases of the conversions: signed zero, f16
     * subnormals and overflow, bf16 rounding ties, NaN, Inf. */
    float edge[16] = {0.0f, -0.0f, 1e-7f, -3e-6f, 70000.0f, -1e30f, NAN, INFINITY,
                      -INFINITY, 1.00390625f, 1.01171875f, 65504.0f, 65520.0f, 6.1e-5f, 5.96e-8f, 1.0f};
    float rnd[5 * 7]; /* (5, 7) */
    lq_test_fill(&seed, rnd, 35, -3.0f, 3.0f);
    int64_t s_edge[1] = {16}, s_rnd[2] = {5, 7}, s_i[2] = {2, 3}, s_h[3] = {2, 1, 2}, s_scalar[1] = {0};
    int32_t ivals[6] = {1, -2, 3, INT32_MAX, INT32_MIN, 0};
    uint16_t hvals[4];
    const float hsrc[4] = {1.5f, -0.25f, 1000.0f, 3e-5f};
    for (int i = 0; i < 4; i++) hvals[i] = lq_f32_to_f16(hsrc[i]);
    float scalar = 42.0f;
    assert_int_equal(lq_checkpoint_add_tensor(src, "edge", LQ_F32, 1, s_edge, edge, sizeof edge), LQ_OK);
    assert_int_equal(lq_checkpoint_add_tensor(src, "rnd", LQ_F32, 2, s_rnd, rnd, sizeof rnd), LQ_OK);
    assert_int_equal(lq_checkpoint_add_tensor(src, "ints", LQ_I32, 2, s_i, ivals, sizeof ivals), LQ_OK);
    assert_int_equal(lq_checkpoint_add_tensor(src, "half", LQ_F16, 3, s_h, hvals, sizeof hvals), LQ_OK);
    assert_int_equal(lq_checkpoint_add_tensor(src, "scalar", LQ_F32, 0, s_scalar, &scalar, 4), LQ_OK);
    assert_int_equal(lq_checkpoint_add_tensor(src, "empty", LQ_F32, 1, s_scalar, NULL, 0), LQ_OK);

    const int outs[4] = {-1, LQ_F32, LQ_F16, LQ_BF16};
    for (int o = 0; o < 4; o++) {
        char path[1024];
        scratch(path, sizeof path, "rt-%d.safetensors", o);
        assert_int_equal(lq_safetensors_write(src, path, outs[o]), LQ_OK);
        /* header length is a multiple of 8 so the data area stays aligned */
        lq_mmap m;
        assert_int_equal(lq_mmap_open(path, &m), LQ_OK);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | ((const uint8_t *)m.data)[i];
        assert_int_equal(hl % 8, 0);
        assert_non_null(memmem((const char *)m.data + 8, (size_t)hl, "__metadata__", 12));
        lq_mmap_close(&m);

        lq_checkpoint *rt = NULL;
        lq_status st = lq_safetensors_open(path, &rt);
        if (st != LQ_OK) fail_msg("reading back %s: %s", path, lq_last_error());
        assert_int_equal(rt->n_tensors, src->n_tensors);
        for (int i = 0; i < src->n_tensors; i++) {
            const lq_tensor_info *a = &src->tensors[i], *b = lq_checkpoint_find(rt, a->name);
            assert_non_null(b);
            int is_float = a->dtype != LQ_I32;
            lq_dtype want = outs[o] >= 0 && is_float ? (lq_dtype)outs[o] : a->dtype;
            if (b->dtype != want)
                fail_msg("%s out %d: tensor '%s' has dtype %s, want %s", path, outs[o], a->name,
                         lq_dtype_name(b->dtype), lq_dtype_name(want));
            assert_int_equal(a->ndim, b->ndim);
            for (int d = 0; d < a->ndim; d++) assert_int_equal(a->shape[d], b->shape[d]);
            if (!is_float) {
                assert_memory_equal(a->data, b->data, a->n_bytes);
                continue;
            }
            int64_t ne = lq_tensor_numel(a);
            float *fa = NULL, *fb = NULL;
            assert_int_equal(lq_tensor_to_f32(a, ne, &fa), LQ_OK);
            assert_int_equal(lq_tensor_to_f32(b, ne, &fb), LQ_OK);
            for (int64_t k = 0; k < ne; k++) {
                /* the written value is exactly the scalar reference conversion */
                float want_v = fa[k];
                if (want == LQ_F16) want_v = lq_f16_to_f32(lq_f32_to_f16(fa[k]));
                if (want == LQ_BF16) want_v = lq_bf16_to_f32(lq_f32_to_bf16(fa[k]));
                if (!same_float(fb[k], want_v))
                    fail_msg("%s: '%s'[%lld] = %.9g, want %.9g (from %.9g)", path, a->name, (long long)k,
                             fb[k], want_v, fa[k]);
            }
            if (strcmp(a->name, "rnd") == 0) {
                /* and close to the original: half-ulp of the format */
                double rtol = want == LQ_F16 ? 1.0 / 2048 : want == LQ_BF16 ? 1.0 / 256 : 0;
                assert_int_equal(lq_test_compare(a->name, fb, fa, (size_t)ne, 1e-7, rtol), 0);
            }
            free(fa);
            free(fb);
        }
        lq_checkpoint_free(rt);
    }
    /* an integer output dtype is refused, and nothing is written */
    char path[1024];
    scratch(path, sizeof path, "rt-i32.safetensors");
    EXPECT_ERR(lq_safetensors_write(src, path, LQ_I32), LQ_ERR_ARG, "dtype");
    assert_false(path_exists(path));
    lq_checkpoint_free(src);
}

static void test_formats_hf_dir_write_round_trip(void **state) {
    (void)state;
    uint64_t seed = lq_test_seed();
    mem_ck m = {0};
    assert_int_equal(lq_checkpoint_new(&m.ck, "mem", "test"), LQ_OK);
    int64_t s1[2] = {4, 8}, s2[1] = {8};
    mem_ck_add(&m, 0, "model.embed_tokens.weight", 2, s1, &seed);
    mem_ck_add(&m, 1, "model.norm.weight", 1, s2, &seed);
    m.ck->config = json_pack("{s:s,s:i}", "model_type", "llama", "hidden_size", 8);
    m.ck->tokenizer = json_pack("{s:s}", "version", "1.0");
    char dir[1024];
    scratch(dir, sizeof dir, "hfout");
    lq_status st = lq_hf_dir_write(m.ck, dir, LQ_BF16);
    if (st != LQ_OK) fail_msg("lq_hf_dir_write: %s", lq_last_error());
    lq_checkpoint *back = NULL;
    st = lq_checkpoint_open(dir, &back);
    if (st != LQ_OK) fail_msg("reopen %s: %s", dir, lq_last_error());
    assert_string_equal(back->format, "safetensors");
    assert_int_equal(back->n_tensors, 2);
    assert_string_equal(json_string_value(json_object_get(back->config, "torch_dtype")), "bfloat16");
    assert_int_equal(json_integer_value(json_object_get(back->config, "hidden_size")), 8);
    assert_true(json_equal(back->tokenizer, m.ck->tokenizer));
    const lq_tensor_info *t = lq_checkpoint_find(back, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, LQ_BF16);
    float *f = NULL;
    assert_int_equal(lq_tensor_to_f32(t, 32, &f), LQ_OK);
    assert_int_equal(lq_test_compare("embed bf16", f, m.vals[0], 32, 0, 1.0 / 256), 0);
    free(f);
    lq_checkpoint_free(back);
    /* a checkpoint without config cannot be written as an HF directory */
    json_decref(m.ck->config);
    m.ck->config = NULL;
    scratch(dir, sizeof dir, "hfout-nocfg");
    EXPECT_ERR(lq_hf_dir_write(m.ck, dir, -1), LQ_ERR_FORMAT, "config");
    lq_checkpoint_free(m.ck);
}

/* ------------------------------------------------------------------------ */
/* Hugging Face directories                                                  */

static const char TINY_CONFIG[] =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":8,"
    "\"intermediate_size\":12,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"vocab_size\":16,\"tie_word_embeddings\":true}";

/* Write one safetensors file holding the named F32 tensors (n x 4 each,
 * values base + index) with lq_safetensors_write. */
static void write_shard(const char *path, const char *const *names, int n, float base) {
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_new(&ck, path, "test"), LQ_OK);
    for (int i = 0; i < n; i++) {
        float *buf;
        assert_int_equal(lq_checkpoint_alloc(ck, 16, (void **)&buf), LQ_OK);
        for (int k = 0; k < 4; k++) buf[k] = base + (float)(i * 4 + k);
        int64_t shape[1] = {4};
        assert_int_equal(lq_checkpoint_add_tensor(ck, names[i], LQ_F32, 1, shape, buf, 16), LQ_OK);
    }
    lq_status st = lq_safetensors_write(ck, path, -1);
    if (st != LQ_OK) fail_msg("write %s: %s", path, lq_last_error());
    lq_checkpoint_free(ck);
}

/* A fresh directory "<g_root>/<name>" with config.json. */
static void hf_dir(char *dir, size_t n, const char *name) {
    scratch(dir, n, "%s", name);
    make_dir(dir);
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, TINY_CONFIG);
}

static void write_index(const char *dir, const char *weight_map_json) {
    char p[1100], *doc = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    assert_true(asprintf(&doc, "{\"metadata\":{\"total_size\":0},\"weight_map\":%s}", weight_map_json) > 0);
    write_text(p, doc);
    free(doc);
}

static void test_formats_hf_single_file_loads(void **state) {
    (void)state;
    char dir[1024], p[1100];
    hf_dir(dir, sizeof dir, "hf-single");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    const char *names[] = {"a", "b"};
    write_shard(p, names, 2, 0.0f);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_text(p, "{\"model\":{\"type\":\"BPE\"}}");
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(dir, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_int_equal(ck->n_tensors, 2);
    assert_non_null(ck->config);
    assert_non_null(ck->tokenizer);
    assert_string_equal(ck->source, dir);
    lq_checkpoint_free(ck);
    /* the .safetensors file on its own, with config.json beside it */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st = lq_checkpoint_open(p, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_int_equal(ck->n_tensors, 2);
    assert_non_null(ck->config);
    lq_checkpoint_free(ck);
}

static void test_formats_hf_sharded_loads_all_tensors(void **state) {
    (void)state;
    char dir[1024], p[1100];
    hf_dir(dir, sizeof dir, "hf-sharded");
    const char *s1[] = {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"};
    const char *s2[] = {"model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_shard(p, s1, 2, 0.0f);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_shard(p, s2, 3, 100.0f);
    write_index(dir, "{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
                     "\"model.layers.0.mlp.up_proj.weight\":\"model-00001-of-00002.safetensors\","
                     "\"model.layers.0.mlp.down_proj.weight\":\"model-00002-of-00002.safetensors\","
                     "\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
                     "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}");
    /* a stray model.safetensors must be ignored when the index exists */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_text(p, "garbage");
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(dir, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_int_equal(ck->n_tensors, 5);
    for (int i = 0; i < 3; i++) {
        const lq_tensor_info *t = lq_checkpoint_find(ck, s2[i]);
        assert_non_null(t);
        const float *v = t->data;
        for (int k = 0; k < 4; k++) assert_true(v[k] == 100.0f + (float)(i * 4 + k));
    }
    assert_non_null(lq_checkpoint_find(ck, s1[1]));
    lq_checkpoint_free(ck);
}

static void test_formats_hf_sharded_missing_shard(void **state) {
    (void)state;
    char dir[1024], p[1100];
    hf_dir(dir, sizeof dir, "hf-missing-shard");
    const char *s1[] = {"a"};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_shard(p, s1, 1, 0.0f);
    write_index(dir, "{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}");
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_IO, "model-00002-of-00002.safetensors",
               "model.safetensors.index.json");
    assert_null(ck);
    /* a tensor listed in weight_map but absent from its shard */
    write_index(dir, "{\"a\":\"model-00001-of-00002.safetensors\",\"ghost\":\"model-00001-of-00002.safetensors\"}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "'ghost'", "model-00001-of-00002.safetensors",
               "index.json");
    /* a corrupt shard names the shard */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_file(p, "\x10\0\0\0\0\0\0\0{\"b\": broken}  ", 24);
    write_index(dir, "{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p, "JSON");
    /* the same tensor in two shards */
    const char *s2[] = {"a"};
    write_shard(p, s2, 1, 5.0f);
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "'a'", "model-00002-of-00002.safetensors");
}

static void test_formats_hf_shard_names_escaping_dir(void **state) {
    (void)state;
    char dir[1024], p[1100];
    hf_dir(dir, sizeof dir, "hf-escape");
    const char *s1[] = {"a"};
    snprintf(p, sizeof p, "%s/model-00001-of-00001.safetensors", dir);
    write_shard(p, s1, 1, 0.0f);
    /* a real safetensors file one level up that an escaping name would reach */
    scratch(p, sizeof p, "outside.safetensors");
    write_shard(p, s1, 1, 9.0f);
    const char *bad[] = {"../outside.safetensors", "sub/model.safetensors", "/etc/passwd", "..", ".",
                         "./model-00001-of-00001.safetensors", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char wm[256], quoted[64];
        snprintf(wm, sizeof wm, "{\"a\":\"%s\"}", bad[i]);
        write_index(dir, wm);
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        lq_checkpoint *ck = NULL;
        EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "model.safetensors.index.json", quoted,
                   "plain file name");
        assert_null(ck);
    }
    /* structural errors of the index itself */
    lq_checkpoint *ck = NULL;
    write_index(dir, "[\"model-00001-of-00001.safetensors\"]");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "index.json", "'weight_map'");
    write_index(dir, "{\"a\":7}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "index.json", "weight_map['a']");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"metadata\":{}}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "index.json", "'weight_map'");
    write_text(p, "{\"weight_map\":{\"a\":\"x\",}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, "index.json", "malformed JSON");
}

static void test_formats_hf_missing_or_bad_config(void **state) {
    (void)state;
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "hf-nocfg");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    const char *s1[] = {"a"};
    write_shard(p, s1, 1, 0.0f);
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, dir, "config.json");
    assert_null(ck);
    /* config.json that is a directory */
    snprintf(p, sizeof p, "%s/config.json", dir);
    make_dir(p);
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, dir, "config.json");
    assert_int_equal(rmdir(p), 0);
    /* malformed JSON: names the file and the line */
    write_text(p, "{\n  \"hidden_size\": 8,\n  \"vocab_size\": ,\n}\n");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p, "line 3");
    write_text(p, "");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p, "JSON");
    write_text(p, "[1, 2]");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p, "not a JSON object");
    write_text(p, "{\"a\":1,\"a\":2}");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p, "duplicate");
    /* same checks for the .safetensors-file entry point */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    EXPECT_ERR(lq_checkpoint_open(p, &ck), LQ_ERR_FORMAT, "config.json");
    /* a bad tokenizer.json is an error too (not silently dropped) */
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, TINY_CONFIG);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_text(p, "{\"model\": [");
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_FORMAT, p);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(lq_checkpoint_open(dir, &ck), LQ_OK);
    assert_null(ck->tokenizer);
    lq_checkpoint_free(ck);
    ck = NULL;
    /* neither weights file */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    assert_int_equal(unlink(p), 0);
    EXPECT_ERR(lq_checkpoint_open(dir, &ck), LQ_ERR_IO, dir, "model.safetensors");
    /* a .safetensors file with no config.json beside it */
    scratch(p, sizeof p, "lonely");
    make_dir(p);
    scratch(p, sizeof p, "lonely/x.safetensors");
    write_shard(p, s1, 1, 0.0f);
    EXPECT_ERR(lq_checkpoint_open(p, &ck), LQ_ERR_IO, "config.json");
    assert_int_equal(lq_safetensors_open(p, &ck), LQ_OK); /* the bare loader needs no config */
    assert_null(ck->config);
    lq_checkpoint_free(ck);
    /* inputs lq does not recognise */
    EXPECT_ERR(lq_checkpoint_open("/nonexistent/lq/model", &ck), LQ_ERR_IO, "/nonexistent/lq/model");
    scratch(p, sizeof p, "notes.txt");
    write_text(p, "hello");
    EXPECT_ERR(lq_checkpoint_open(p, &ck), LQ_ERR_UNSUPPORTED, p);
}

/* ------------------------------------------------------------------------ */
/* llama2.c                                                                  */

typedef struct {
    int32_t dim, hidden, L, nh, nkv, vocab, seq; /* vocab < 0: separate classifier */
} l2c_hdr;

static const l2c_hdr L2C_TINY = {8, 12, 2, 2, 1, 16, 4};

/* The tensors in llama2.c file order (run.c's memory_map_weights), with the
 * HF name each becomes; rows/cols for one layer; qk = heads to permute. */
typedef struct {
    const char *hf;
    int per_layer;
    int64_t rows, cols;
    int qk;
} l2c_slot;

static int l2c_slots(const l2c_hdr *h, l2c_slot *s) {
    int64_t hs = h->dim / h->nh, kv = hs * h->nkv, V = h->vocab < 0 ? -h->vocab : h->vocab;
    int n = 0;
    s[n++] = (l2c_slot){"model.embed_tokens.weight", 0, V, h->dim, 0};
    s[n++] = (l2c_slot){"model.layers.%d.input_layernorm.weight", 1, h->dim, 0, 0};
    s[n++] = (l2c_slot){"model.layers.%d.self_attn.q_proj.weight", 1, h->dim, h->dim, h->nh};
    s[n++] = (l2c_slot){"model.layers.%d.self_attn.k_proj.weight", 1, kv, h->dim, h->nkv};
    s[n++] = (l2c_slot){"model.layers.%d.self_attn.v_proj.weight", 1, kv, h->dim, 0};
    s[n++] = (l2c_slot){"model.layers.%d.self_attn.o_proj.weight", 1, h->dim, h->dim, 0};
    s[n++] = (l2c_slot){"model.layers.%d.post_attention_layernorm.weight", 1, h->dim, 0, 0};
    s[n++] = (l2c_slot){"model.layers.%d.mlp.gate_proj.weight", 1, h->hidden, h->dim, 0}; /* w1 */
    s[n++] = (l2c_slot){"model.layers.%d.mlp.down_proj.weight", 1, h->dim, h->hidden, 0}; /* w2 */
    s[n++] = (l2c_slot){"model.layers.%d.mlp.up_proj.weight", 1, h->hidden, h->dim, 0};   /* w3 */
    s[n++] = (l2c_slot){"model.norm.weight", 0, h->dim, 0, 0};
    s[n++] = (l2c_slot){NULL, 0, h->seq, hs, 0}; /* freq_cis_real + imag */
    if (h->vocab < 0) s[n++] = (l2c_slot){"lm_head.weight", 0, V, h->dim, 0};
    return n;
}

static size_t l2c_n_floats(const l2c_hdr *h) {
    l2c_slot s[16];
    int n = l2c_slots(h, s);
    size_t tot = 0;
    for (int i = 0; i < n; i++) tot += (size_t)(s[i].rows * (s[i].cols ? s[i].cols : 1)) * (s[i].per_layer ? (size_t)h->L : 1);
    return tot;
}

/* Header + data where float k of the data area is k (exact below 2^24), so
 * every value says where it came from. */
static uint8_t *l2c_image(const l2c_hdr *h, size_t *n_out) {
    size_t nf = l2c_n_floats(h), n = 28 + nf * 4;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    memcpy(b, h, 28);
    for (size_t k = 0; k < nf; k++) {
        float v = (float)k;
        memcpy(b + 28 + 4 * k, &v, 4);
    }
    *n_out = n;
    return b;
}

/* Check every tensor of ck against the layout of h (values = file position),
 * including the q/k permutation: HF row (head, j*half + i) is interleaved
 * row (head, 2i + j). */
static void l2c_check_values(const lq_checkpoint *ck, const l2c_hdr *h) {
    l2c_slot s[16];
    int n = l2c_slots(h, s);
    int64_t hs = h->dim / h->nh, half = hs / 2;
    size_t base = 0;
    int n_named = 0;
    for (int i = 0; i < n; i++) {
        int64_t cols = s[i].cols ? s[i].cols : 1, ne = s[i].rows * cols;
        int reps = s[i].per_layer ? h->L : 1;
        for (int l = 0; l < reps; l++, base += (size_t)ne) {
            if (!s[i].hf) continue;
            char name[128];
            snprintf(name, sizeof name, s[i].hf, l);
            const lq_tensor_info *t = lq_checkpoint_find(ck, name);
            if (!t) fail_msg("tensor %s missing", name);
            n_named++;
            assert_int_equal(t->dtype, LQ_F32);
            assert_int_equal(t->ndim, s[i].cols ? 2 : 1);
            assert_int_equal(t->shape[0], s[i].rows);
            if (s[i].cols) assert_int_equal(t->shape[1], s[i].cols);
            const float *v = t->data;
            for (int64_t r = 0; r < s[i].rows; r++) {
                int64_t src_row = r;
                if (s[i].qk) {
                    int64_t head = r / hs, w = r % hs, j = w / half, ii = w % half;
                    src_row = head * hs + 2 * ii + j;
                }
                for (int64_t c = 0; c < cols; c++) {
                    float want = (float)(base + (size_t)(src_row * cols + c));
                    if (v[r * cols + c] != want)
                        fail_msg("%s[%lld,%lld] = %g, want %g", name, (long long)r, (long long)c, v[r * cols + c],
                                 want);
                }
            }
        }
    }
    assert_int_equal(ck->n_tensors, n_named);
}

static void test_formats_llama2c_tiny_loads_and_permutes(void **state) {
    (void)state;
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "l2c-tiny");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/model.bin", dir);
    const l2c_hdr hdrs[2] = {L2C_TINY, {8, 12, 2, 2, 1, -16, 4}}; /* shared, separate classifier */
    for (int k = 0; k < 2; k++) {
        size_t n;
        uint8_t *img = l2c_image(&hdrs[k], &n);
        write_file(p, img, n);
        free(img);
        lq_checkpoint *ck = NULL;
        lq_status st = lq_checkpoint_open(p, &ck);
        if (st != LQ_OK) fail_msg("%s", lq_last_error());
        assert_string_equal(ck->format, "llama2c");
        assert_int_equal(ck->n_tensors, 2 + 9 * hdrs[k].L + (k == 1));
        assert_null(ck->tokenizer); /* none beside it */
        l2c_check_values(ck, &hdrs[k]);
        json_t *c = ck->config;
        assert_int_equal(json_integer_value(json_object_get(c, "hidden_size")), 8);
        assert_int_equal(json_integer_value(json_object_get(c, "intermediate_size")), 12);
        assert_int_equal(json_integer_value(json_object_get(c, "num_hidden_layers")), 2);
        assert_int_equal(json_integer_value(json_object_get(c, "num_attention_heads")), 2);
        assert_int_equal(json_integer_value(json_object_get(c, "num_key_value_heads")), 1);
        assert_int_equal(json_integer_value(json_object_get(c, "vocab_size")), 16);
        assert_int_equal(json_integer_value(json_object_get(c, "max_position_embeddings")), 4);
        assert_int_equal(json_is_true(json_object_get(c, "tie_word_embeddings")), k == 0);
        lq_checkpoint_free(ck);
    }
}

static void test_formats_llama2c_every_truncation_fails(void **state) {
    (void)state;
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "l2c-trunc");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/model.bin", dir);
    size_t n;
    uint8_t *img = l2c_image(&L2C_TINY, &n);
    write_file(p, img, n);
    free(img);
    for (size_t len = n; len-- > 0;) { /* downwards: truncate() only shrinks */
        assert_int_equal(truncate(p, (off_t)len), 0);
        lq_checkpoint *ck = NULL;
        lq_status st = lq_llama2c_load(p, NULL, &ck);
        if (st != LQ_OK) {
            if (st != LQ_ERR_FORMAT || !strstr(lq_last_error(), p))
                fail_msg("truncated to %zu: %s \"%s\"", len, lq_status_name(st), lq_last_error());
        } else {
            fail_msg("llama2.c file truncated to %zu of %zu bytes was accepted", len, n);
        }
        assert_null(ck);
        if (len == 27) EXPECT_ERR(st, LQ_ERR_FORMAT, p, "too short");
        if (len == 28 || len == n - 4) EXPECT_ERR(st, LQ_ERR_FORMAT, p, "truncated");
    }
}

static void test_formats_llama2c_absurd_header(void **state) {
    (void)state;
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "l2c-hdr");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/model.bin", dir);
    size_t n;
    uint8_t *img = l2c_image(&L2C_TINY, &n);
    const char *field[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    const int32_t bad[] = {0, -1, -7, INT32_MAX, INT32_MIN, 1 << 30};
    for (int f = 0; f < 7; f++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            if (f == 5 && (bad[b] == -1 || bad[b] == -7)) continue; /* negative vocab = separate classifier */
            int32_t h[7];
            memcpy(h, &L2C_TINY, 28);
            h[f] = bad[b];
            memcpy(img, h, 28);
            write_file(p, img, n);
            lq_checkpoint *ck = NULL;
            char val[32];
            snprintf(val, sizeof val, "= %d", (int)bad[b]);
            EXPECT_ERR(lq_llama2c_load(p, NULL, &ck), LQ_ERR_FORMAT, p, field[f], val);
            assert_null(ck);
        }
    /* in range but inconsistent */
    struct {
        l2c_hdr h;
        const char *needle;
    } cases[] = {
        {{8, 12, 2, 3, 1, 16, 4}, "divisible"},        /* dim % n_heads */
        {{8, 12, 2, 2, 3, 16, 4}, "divisible"},        /* n_heads % n_kv_heads */
        {{6, 12, 2, 2, 1, 16, 4}, "odd"},              /* head size 3 */
        {{16, 12, 2, 2, 1, 16, 4}, "truncated"},       /* bigger model than the file */
        {{8, 12, 1, 2, 1, 16, 4}, "header says"},      /* smaller model than the file */
        {{8, 12, 2, 2, 1, -16, 4}, "separate classifier"}, /* lm_head claimed but absent */
        {{65536, 1 << 20, 1024, 1024, 1024, 1 << 22, 1 << 24}, "truncated"}, /* every field at its limit */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(img, &cases[c].h, 28);
        write_file(p, img, n);
        lq_checkpoint *ck = NULL;
        EXPECT_ERR(lq_llama2c_load(p, NULL, &ck), LQ_ERR_FORMAT, p, cases[c].needle);
        assert_null(ck);
    }
    /* extra bytes after the last tensor */
    memcpy(img, &L2C_TINY, 28);
    write_file(p, img, n);
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
    lq_checkpoint *ck = NULL;
    char sz[64];
    snprintf(sz, sizeof sz, "%zu bytes", n + 4);
    EXPECT_ERR(lq_llama2c_load(p, NULL, &ck), LQ_ERR_FORMAT, p, sz, "header says");
    /* a newer llama2.c export (magic "ak42" then a version) is refused, not misread */
    const uint8_t v1[8] = {'4', '2', 'k', 'a', 1, 0, 0, 0};
    memcpy(img, v1, 8);
    write_file(p, img, n);
    EXPECT_ERR(lq_llama2c_load(p, NULL, &ck), LQ_ERR_FORMAT, p, "dim");
    free(img);
    EXPECT_ERR(lq_llama2c_load("/nonexistent/lq/model.bin", NULL, &ck), LQ_ERR_IO, "/nonexistent/lq/model.bin");
}

/* ------------------------------------------------------------------------ */
/* stories260K: the real checkpoint, both layouts                            */

static void test_formats_stories260k_hf_loads(void **state) {
    (void)state;
    char p[1024];
    LQ_SKIP_IF_NO_SHARED(p, "models/stories260K/model.safetensors");
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(p, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    /* 5 layers x 9 + embed + final norm; tied, so no lm_head (the header has
     * 48 entries: these 47 and __metadata__) */
    print_message("stories260K: %d tensors\n", ck->n_tensors);
    assert_int_equal(ck->n_tensors, 47);
    assert_null(lq_checkpoint_find(ck, "lm_head.weight"));
    assert_non_null(ck->tokenizer);
    assert_int_equal(json_integer_value(json_object_get(ck->config, "hidden_size")), 64);
    int64_t total = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        assert_int_equal(ck->tensors[i].dtype, LQ_F32);
        total += lq_tensor_numel(&ck->tensors[i]);
    }
    print_message("stories260K: %lld parameters\n", (long long)total);
    const lq_tensor_info *q = lq_checkpoint_find(ck, "model.layers.4.self_attn.k_proj.weight");
    assert_non_null(q);
    assert_int_equal(q->shape[0], 32);
    assert_int_equal(q->shape[1], 64);
    lq_checkpoint_free(ck);
}

static void test_formats_stories260k_llama2c_matches_hf(void **state) {
    (void)state;
    char p[1024], q[1024];
    LQ_SKIP_IF_NO_SHARED(p, "models/stories260K/model.safetensors");
    LQ_SKIP_IF_NO_SHARED(q, "models/stories260K/llama2c/stories260K.bin");
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_checkpoint *hf = NULL, *l2c = NULL;
    lq_status st = lq_checkpoint_open(p, &hf);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    st = lq_checkpoint_open(q, &l2c);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_string_equal(l2c->format, "llama2c");
    assert_int_equal(l2c->n_tensors, hf->n_tensors);
    /* the HF safetensors were made from this .bin: every tensor, q/k included
     * after the permutation, must be identical to fp32 precision */
    int n_exact = 0;
    for (int i = 0; i < hf->n_tensors; i++) {
        const lq_tensor_info *a = &hf->tensors[i], *b = lq_checkpoint_find(l2c, a->name);
        if (!b) fail_msg("llama2.c checkpoint lacks '%s'", a->name);
        assert_int_equal(b->dtype, a->dtype);
        assert_int_equal(b->ndim, a->ndim);
        for (int d = 0; d < a->ndim; d++) assert_int_equal(b->shape[d], a->shape[d]);
        size_t ne = (size_t)lq_tensor_numel(a);
        if (memcmp(a->data, b->data, ne * 4) == 0) {
            n_exact++;
            continue;
        }
        assert_int_equal(lq_test_compare(a->name, b->data, a->data, ne, 0, 1.2e-7), 0);
    }
    print_message("stories260K: %d/%d tensors bit-identical between llama2.c and HF\n", n_exact, hf->n_tensors);
    /* the config the llama2.c loader synthesizes agrees with config.json */
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "vocab_size", "max_position_embeddings"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (json_integer_value(json_object_get(hf->config, keys[k])) !=
            json_integer_value(json_object_get(l2c->config, keys[k])))
            fail_msg("config '%s' differs", keys[k]);
    assert_int_equal(json_is_true(json_object_get(l2c->config, "tie_word_embeddings")), 1);
    lq_checkpoint_free(hf);
    lq_checkpoint_free(l2c);
}

/* ------------------------------------------------------------------------ */
/* archives                                                                  */

typedef struct {
    const char *name;
    char type; /* 'f' file, 'd' directory, 's' symlink, 'h' hard link */
    const void *data;
    size_t n;
    const char *link;
} ar_entry;

/* Write an archive with libarchive's writer. format "tar" (pax) or "zip";
 * filter NULL, "gzip" or "zstd". Returns 0, or -1 when this libarchive cannot
 * write that combination (the test then skips). */
static int make_archive(const char *path, const char *format, const char *filter, const ar_entry *e, int n) {
    struct archive *a = archive_write_new();
    assert_non_null(a);
    int r = strcmp(format, "zip") == 0 ? archive_write_set_format_zip(a) : archive_write_set_format_pax_restricted(a);
    if (r == ARCHIVE_OK && filter)
        r = strcmp(filter, "gzip") == 0   ? archive_write_add_filter_gzip(a)
            : strcmp(filter, "zstd") == 0 ? archive_write_add_filter_zstd(a)
                                          : ARCHIVE_FATAL;
    if (r != ARCHIVE_OK) {
        print_message("libarchive cannot write %s%s%s: %s\n", format, filter ? "+" : "", filter ? filter : "",
                      archive_error_string(a));
        archive_write_free(a);
        return -1;
    }
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, e[i].name);
        archive_entry_set_mtime(en, 1700000000, 0);
        switch (e[i].type) {
        case 'd':
            archive_entry_set_filetype(en, AE_IFDIR);
            archive_entry_set_perm(en, 0755);
            break;
        case 's':
            archive_entry_set_filetype(en, AE_IFLNK);
            archive_entry_set_perm(en, 0777);
            archive_entry_set_symlink(en, e[i].link);
            break;
        case 'h':
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_perm(en, 0644);
            archive_entry_set_hardlink(en, e[i].link);
            break;
        default:
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_perm(en, 0644);
            archive_entry_set_size(en, (la_int64_t)e[i].n);
        }
        r = archive_write_header(a, en);
        if (r != ARCHIVE_OK) fail_msg("archive_write_header(%s): %s", e[i].name, archive_error_string(a));
        if (e[i].type == 'f' && e[i].n)
            assert_int_equal(archive_write_data(a, e[i].data, e[i].n), (la_ssize_t)e[i].n);
        archive_entry_free(en);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return 0;
}

/* The files of a tiny HF checkpoint, as archive entries under `prefix`
 * ("" for the archive's top level). */
typedef struct {
    char names[4][128];
    char *model;
    size_t n_model;
    ar_entry e[4];
} tiny_hf;

static void tiny_hf_make(tiny_hf *t, const char *prefix) {
    char p[1024];
    scratch(p, sizeof p, "tiny-model.safetensors");
    const char *names[] = {"model.embed_tokens.weight", "model.norm.weight", "x"};
    write_shard(p, names, 3, 1.0f);
    assert_int_equal(lq_read_file(p, &t->model, &t->n_model), LQ_OK);
    static const char tok[] = "{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\"}}";
    snprintf(t->names[0], 128, "%s", prefix);
    snprintf(t->names[1], 128, "%sconfig.json", prefix);
    snprintf(t->names[2], 128, "%smodel.safetensors", prefix);
    snprintf(t->names[3], 128, "%stokenizer.json", prefix);
    t->e[0] = (ar_entry){t->names[0], 'd', NULL, 0, NULL};
    t->e[1] = (ar_entry){t->names[1], 'f', TINY_CONFIG, strlen(TINY_CONFIG), NULL};
    t->e[2] = (ar_entry){t->names[2], 'f', t->model, t->n_model, NULL};
    t->e[3] = (ar_entry){t->names[3], 'f', tok, strlen(tok), NULL};
}

static void check_tiny_loaded(const lq_checkpoint *ck, const char *archive) {
    assert_string_equal(ck->source, archive);
    assert_int_equal(ck->n_tensors, 3);
    assert_non_null(ck->config);
    assert_non_null(ck->tokenizer);
    const lq_tensor_info *t = lq_checkpoint_find(ck, "model.norm.weight");
    assert_non_null(t);
    const float *v = t->data;
    for (int k = 0; k < 4; k++) assert_true(v[k] == 1.0f + (float)(4 + k));
}

static void archive_round_trip(const char *fname, const char *format, const char *filter, const char *prefix) {
    tiny_hf t;
    tiny_hf_make(&t, prefix);
    char path[1024];
    scratch(path, sizeof path, "%s", fname);
    int first = prefix[0] ? 0 : 1; /* no directory entry at the top level */
    if (make_archive(path, format, filter, t.e + first, 4 - first) != 0) {
        free(t.model);
        skip();
    }
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(path, &ck);
    if (st != LQ_OK) fail_msg("%s: %s", path, lq_last_error());
    check_tiny_loaded(ck, path);
    assert_int_equal(dir_count(g_xtmp), 1); /* extracted while the checkpoint lives */
    lq_checkpoint_free(ck);
    assert_xtmp_empty();
    free(t.model);
}

static void test_formats_archive_tar_gz_loads(void **state) {
    (void)state;
    archive_round_trip("tiny.tar.gz", "tar", "gzip", "tiny/");
}
static void test_formats_archive_zip_loads(void **state) {
    (void)state;
    archive_round_trip("tiny.zip", "zip", NULL, "tiny/");
}
static void test_formats_archive_tar_zst_loads(void **state) {
    (void)state;
    archive_round_trip("tiny.tar.zst", "tar", "zstd", "tiny/");
}
static void test_formats_archive_plain_tar_top_level_loads(void **state) {
    (void)state;
    archive_round_trip("flat.tar", "tar", NULL, "");
    archive_round_trip("nested.tar", "tar", NULL, "a/b/");
    /* a .tar.gz under a name without a known extension is recognised by its magic */
    archive_round_trip("tiny-archive-no-ext", "tar", "gzip", "tiny/");
}

static void test_formats_archive_llama2c_inside(void **state) {
    (void)state;
    size_t n;
    uint8_t *img = l2c_image(&L2C_TINY, &n);
    ar_entry e[2] = {{"stories/", 'd', NULL, 0, NULL}, {"stories/model.bin", 'f', img, n, NULL}};
    char path[1024];
    scratch(path, sizeof path, "l2c.tar.gz");
    assert_int_equal(make_archive(path, "tar", "gzip", e, 2), 0);
    free(img);
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(path, &ck);
    if (st != LQ_OK) fail_msg("%s", lq_last_error());
    assert_string_equal(ck->format, "llama2c");
    assert_string_equal(ck->source, path);
    l2c_check_values(ck, &L2C_TINY);
    lq_checkpoint_free(ck);
    assert_xtmp_empty();
}

/* An archive holding the tiny checkpoint plus one bad entry must be refused
 * with a message naming the archive and the entry, and write nothing. */
static void expect_bad_archive(const char *fname, const char *format, ar_entry bad, lq_status want,
                               const char *needle) {
    tiny_hf t;
    tiny_hf_make(&t, "tiny/");
    ar_entry e[5];
    memcpy(e, t.e, sizeof t.e);
    e[4] = bad;
    char path[1024];
    scratch(path, sizeof path, "%s", fname);
    assert_int_equal(make_archive(path, format, NULL, e, 5), 0);
    lq_checkpoint *ck = NULL;
    char quoted[300]; /* no closing quote: libarchive may append '/' to directory names */
    snprintf(quoted, sizeof quoted, "'%s", bad.name);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), want, path, quoted, needle);
    assert_null(ck);
    assert_xtmp_empty();
    free(t.model);
}

static void test_formats_archive_path_escape_refused(void **state) {
    (void)state;
    static const char evil[] = "pwned";
    expect_bad_archive("dotdot.tar", "tar", (ar_entry){"../escape.txt", 'f', evil, 5, NULL}, LQ_ERR_FORMAT,
                       "escapes");
    expect_bad_archive("dotdot2.tar", "tar", (ar_entry){"tiny/../../escape2.txt", 'f', evil, 5, NULL},
                       LQ_ERR_FORMAT, "escapes");
    expect_bad_archive("dotdot-dir.tar", "tar", (ar_entry){"tiny/..", 'd', NULL, 0, NULL}, LQ_ERR_FORMAT,
                       "escapes");
    expect_bad_archive("dotdot.zip", "zip", (ar_entry){"../escape3.txt", 'f', evil, 5, NULL}, LQ_ERR_FORMAT,
                       "escapes");
    /* where the escaping entries would have landed (the extraction dir's parent) */
    const char *landed[] = {"escape.txt", "escape2.txt", "escape3.txt"};
    for (int i = 0; i < 3; i++) {
        char q[1024];
        snprintf(q, sizeof q, "%s/%s", g_xtmp, landed[i]);
        assert_false(path_exists(q));
    }
    char abs[512];
    snprintf(abs, sizeof abs, "%s/abs-escape.txt", g_root);
    expect_bad_archive("abs.tar", "tar", (ar_entry){abs, 'f', evil, 5, NULL}, LQ_ERR_FORMAT, "absolute");
    assert_false(path_exists(abs));
}

static void test_formats_archive_links_refused(void **state) {
    (void)state;
    expect_bad_archive("symlink.tar", "tar", (ar_entry){"tiny/evil", 's', NULL, 0, "/etc/passwd"}, LQ_ERR_FORMAT,
                       "link");
    expect_bad_archive("symlink-rel.tar", "tar", (ar_entry){"tiny/up", 's', NULL, 0, ".."}, LQ_ERR_FORMAT,
                       "link");
    expect_bad_archive("hardlink.tar", "tar", (ar_entry){"tiny/hard", 'h', NULL, 0, "tiny/config.json"},
                       LQ_ERR_FORMAT, "link");
    /* a symlink in front of a file written through it: refused at the link */
    char path[1024];
    scratch(path, sizeof path, "symlink-then-file.tar");
    static const char data[] = "x";
    ar_entry e[3] = {{"d/", 'd', NULL, 0, NULL}, {"d/l", 's', NULL, 0, g_root}, {"d/l/owned.txt", 'f', data, 1, NULL}};
    assert_int_equal(make_archive(path, "tar", NULL, e, 3), 0);
    lq_checkpoint *ck = NULL;
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path, "'d/l'", "link");
    assert_false(dir_has(g_root, "owned"));
    assert_xtmp_empty();
}

static void test_formats_archive_truncated_tar_gz(void **state) {
    (void)state;
    tiny_hf t;
    tiny_hf_make(&t, "tiny/");
    char full[1024], path[1024];
    scratch(full, sizeof full, "full.tar.gz");
    scratch(path, sizeof path, "cut.tar.gz");
    assert_int_equal(make_archive(full, "tar", "gzip", t.e, 4), 0);
    free(t.model);
    char *img = NULL;
    size_t n = 0;
    assert_int_equal(lq_read_file(full, &img, &n), LQ_OK);
    int n_err = 0, n_cases = 0;
    size_t step = n / 64 ? n / 64 : 1;
    for (size_t len = 0; len < n; len += step) {
        write_file(path, img, len);
        lq_checkpoint *ck = NULL;
        lq_status st = lq_checkpoint_open(path, &ck);
        n_cases++;
        if (st != LQ_OK) {
            n_err++;
            if (!strstr(lq_last_error(), path))
                fail_msg("cut at %zu: message \"%s\" does not name the archive", len, lq_last_error());
            assert_null(ck);
        } else {
            /* only acceptable if everything needed was already complete */
            check_tiny_loaded(ck, path);
            lq_checkpoint_free(ck);
        }
        assert_xtmp_empty();
    }
    print_message("truncated .tar.gz: %d of %d cuts refused\n", n_err, n_cases);
    /* cut in the middle of the compressed stream: must fail */
    write_file(path, img, n / 2);
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(path, &ck);
    assert_int_not_equal(st, LQ_OK);
    EXPECT_ERR(st, LQ_ERR_FORMAT, path);
    assert_xtmp_empty();
    free(img);
}

static void test_formats_archive_empty_or_useless(void **state) {
    (void)state;
    char path[1024];
    lq_checkpoint *ck = NULL;
    /* a tar with no entries at all */
    scratch(path, sizeof path, "empty.tar");
    assert_int_equal(make_archive(path, "tar", NULL, NULL, 0), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path);
    assert_null(ck);
    assert_xtmp_empty();
    scratch(path, sizeof path, "empty.tar.gz");
    assert_int_equal(make_archive(path, "tar", "gzip", NULL, 0), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path);
    assert_xtmp_empty();
    scratch(path, sizeof path, "empty.zip");
    assert_int_equal(make_archive(path, "zip", NULL, NULL, 0), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path);
    assert_xtmp_empty();
    /* a zero-byte file and garbage, named like archives */
    scratch(path, sizeof path, "zero.tar.zst");
    write_file(path, "", 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path);
    assert_xtmp_empty();
    scratch(path, sizeof path, "garbage.zip");
    write_text(path, "PK\x03\x04 this is not really a zip file at all");
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path);
    assert_xtmp_empty();
    /* well-formed archives without a checkpoint inside */
    static const char txt[] = "hello";
    ar_entry e1[1] = {{"readme.txt", 'f', txt, 5, NULL}};
    scratch(path, sizeof path, "readme.tar");
    assert_int_equal(make_archive(path, "tar", NULL, e1, 1), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path, "no checkpoint");
    assert_xtmp_empty();
    ar_entry e2[2] = {{"a/", 'd', NULL, 0, NULL}, {"b/", 'd', NULL, 0, NULL}};
    scratch(path, sizeof path, "two-dirs.tar");
    assert_int_equal(make_archive(path, "tar", NULL, e2, 2), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path, "no checkpoint");
    assert_xtmp_empty();
    /* a checkpoint inside whose files are broken: the error names the archive */
    ar_entry e3[2] = {{"config.json", 'f', TINY_CONFIG, strlen(TINY_CONFIG), NULL},
                      {"model.safetensors", 'f', "\x02\0\0\0\0\0\0\0[]", 10, NULL}};
    scratch(path, sizeof path, "broken-inside.tar");
    assert_int_equal(make_archive(path, "tar", NULL, e3, 2), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path, "model.safetensors", "not an object");
    assert_xtmp_empty();
    /* a path component longer than the file system allows (NAME_MAX): the
     * error names the archive and the entry, not only the temp directory */
    char longname[400];
    memset(longname, 'n', 300);
    snprintf(longname + 300, sizeof longname - 300, "/config.json");
    ar_entry e5[1] = {{longname, 'f', TINY_CONFIG, strlen(TINY_CONFIG), NULL}};
    scratch(path, sizeof path, "longname.tar");
    assert_int_equal(make_archive(path, "tar", NULL, e5, 1), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_IO, path, "'nnnnnnnn", "cannot create");
    assert_xtmp_empty();
    /* the same file twice */
    ar_entry e4[3] = {{"config.json", 'f', TINY_CONFIG, strlen(TINY_CONFIG), NULL},
                      {"model.safetensors", 'f', "x", 1, NULL},
                      {"config.json", 'f', "{}", 2, NULL}};
    scratch(path, sizeof path, "dup.tar");
    assert_int_equal(make_archive(path, "tar", NULL, e4, 3), 0);
    EXPECT_ERR(lq_checkpoint_open(path, &ck), LQ_ERR_FORMAT, path, "'config.json'", "duplicate");
    assert_xtmp_empty();
}

static void test_formats_archive_size_limit(void **state) {
    (void)state;
    tiny_hf t;
    tiny_hf_make(&t, "tiny/");
    char path[1024];
    scratch(path, sizeof path, "limit.tar.gz");
    assert_int_equal(make_archive(path, "tar", "gzip", t.e, 4), 0);
    free(t.model);
    setenv("LQ_ARCHIVE_MAX_BYTES", "100", 1);
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(path, &ck);
    unsetenv("LQ_ARCHIVE_MAX_BYTES");
    EXPECT_ERR(st, LQ_ERR_FORMAT, path, "LQ_ARCHIVE_MAX_BYTES");
    assert_xtmp_empty();
}

/* ------------------------------------------------------------------------ */
/* atomic writes                                                             */

static void test_formats_atomic_abort_leaves_no_file(void **state) {
    (void)state;
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "atomic");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/out.safetensors", dir);
    lq_atomic_file af;
    assert_int_equal(lq_atomic_open(&af, p), LQ_OK);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s", af.tmp_path);
    assert_true(path_exists(tmp));
    assert_int_equal(lq_atomic_write(&af, "half a file", 11), LQ_OK);
    lq_atomic_abort(&af);
    assert_false(path_exists(p));
    assert_false(path_exists(tmp));
    assert_int_equal(dir_count(dir), 0);
    lq_atomic_abort(&af); /* twice is harmless */
    /* over an existing file: the old contents survive an abort */
    write_text(p, "old contents");
    assert_int_equal(lq_atomic_open(&af, p), LQ_OK);
    assert_int_equal(lq_atomic_write(&af, "new", 3), LQ_OK);
    lq_atomic_abort(&af);
    char *back = NULL;
    assert_int_equal(lq_read_file(p, &back, NULL), LQ_OK);
    assert_string_equal(back, "old contents");
    free(back);
    assert_int_equal(dir_count(dir), 1);
    /* and a commit replaces it */
    assert_int_equal(lq_atomic_open(&af, p), LQ_OK);
    assert_int_equal(lq_atomic_write(&af, "new", 3), LQ_OK);
    assert_int_equal(lq_atomic_commit(&af), LQ_OK);
    assert_int_equal(lq_read_file(p, &back, NULL), LQ_OK);
    assert_string_equal(back, "new");
    free(back);
    assert_int_equal(dir_count(dir), 1);
}

static void test_formats_atomic_unwritable_dir(void **state) {
    (void)state;
    /* a "directory" that is a regular file: creation fails even for root */
    char file[1024], p[1100];
    scratch(file, sizeof file, "not-a-dir");
    write_text(file, "x");
    snprintf(p, sizeof p, "%s/out.safetensors", file);
    lq_atomic_file af;
    EXPECT_ERR(lq_atomic_open(&af, p), LQ_ERR_IO, p);
    mem_ck m = {0};
    uint64_t seed = 1;
    assert_int_equal(lq_checkpoint_new(&m.ck, "mem", "test"), LQ_OK);
    int64_t s[1] = {16};
    mem_ck_add(&m, 0, "w", 1, s, &seed);
    EXPECT_ERR(lq_safetensors_write(m.ck, p, -1), LQ_ERR_IO, p);
    assert_false(path_exists(p));
    m.ck->config = json_pack("{s:s}", "model_type", "llama");
    snprintf(p, sizeof p, "%s/sub", file);
    EXPECT_ERR(lq_hf_dir_write(m.ck, p, -1), LQ_ERR_IO, p);
    /* a read-only directory (permissions do not bind root: skip that part) */
    if (geteuid() != 0) {
        char ro[1024];
        scratch(ro, sizeof ro, "readonly");
        make_dir(ro);
        assert_int_equal(chmod(ro, 0555), 0);
        snprintf(p, sizeof p, "%s/out.safetensors", ro);
        EXPECT_ERR(lq_safetensors_write(m.ck, p, -1), LQ_ERR_IO, ro);
        assert_int_equal(dir_count(ro), 0);
        chmod(ro, 0755);
    } else {
        print_message("running as root: the read-only directory case is not checked\n");
    }
    lq_checkpoint_free(m.ck);
}

static void test_formats_atomic_interrupted_write(void **state) {
    (void)state;
    /* A write that fails half way (here: the file size limit, as a full disk
     * would) leaves neither a partial file under the final name nor a
     * temporary file, and an existing file keeps its old contents. */
    char dir[1024], p[1100];
    scratch(dir, sizeof dir, "interrupted");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    mem_ck m = {0};
    uint64_t seed = 2;
    assert_int_equal(lq_checkpoint_new(&m.ck, "mem", "test"), LQ_OK);
    int64_t s[2] = {64, 64}; /* 16 KiB, over the 4 KiB limit below */
    mem_ck_add(&m, 0, "w", 2, s, &seed);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    lq_status st1 = lq_safetensors_write(m.ck, p, -1);
    int existed_after_1 = path_exists(p);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

    write_text(p, "previous model");
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    lq_status st2 = lq_safetensors_write(m.ck, p, LQ_F16); /* 8 KiB: still too big */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_sig);

    EXPECT_ERR(st1, LQ_ERR_IO, "write failed");
    assert_false(existed_after_1);
    EXPECT_ERR(st2, LQ_ERR_IO, "write failed");
    char *back = NULL;
    assert_int_equal(lq_read_file(p, &back, NULL), LQ_OK);
    assert_string_equal(back, "previous model");
    free(back);
    assert_int_equal(dir_count(dir), 1);
    assert_false(dir_has(dir, ".tmp."));
    /* without the limit the same write succeeds */
    assert_int_equal(lq_safetensors_write(m.ck, p, -1), LQ_OK);
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_safetensors_open(p, &ck), LQ_OK);
    assert_same_tensors(m.ck, ck);
    lq_checkpoint_free(ck);
    lq_checkpoint_free(m.ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_safetensors_parse_valid),
        cmocka_unit_test(test_formats_safetensors_empty_and_zero_size),
        cmocka_unit_test(test_formats_safetensors_every_truncation_fails),
        cmocka_unit_test(test_formats_safetensors_bitflips_never_crash),
        cmocka_unit_test(test_formats_safetensors_lying_header_length),
        cmocka_unit_test(test_formats_safetensors_overlapping_tensors),
        cmocka_unit_test(test_formats_safetensors_offsets_out_of_range),
        cmocka_unit_test(test_formats_safetensors_unknown_dtype),
        cmocka_unit_test(test_formats_safetensors_size_mismatch),
        cmocka_unit_test(test_formats_safetensors_bad_json),
        cmocka_unit_test(test_formats_safetensors_duplicate_keys),
        cmocka_unit_test(test_formats_safetensors_non_object_header),
        cmocka_unit_test(test_formats_safetensors_bad_shape_entries),
        cmocka_unit_test(test_formats_safetensors_too_many_dims),
        cmocka_unit_test(test_formats_safetensors_write_round_trip),
        cmocka_unit_test(test_formats_hf_dir_write_round_trip),
        cmocka_unit_test(test_formats_hf_single_file_loads),
        cmocka_unit_test(test_formats_hf_sharded_loads_all_tensors),
        cmocka_unit_test(test_formats_hf_sharded_missing_shard),
        cmocka_unit_test(test_formats_hf_shard_names_escaping_dir),
        cmocka_unit_test(test_formats_hf_missing_or_bad_config),
        cmocka_unit_test(test_formats_llama2c_tiny_loads_and_permutes),
        cmocka_unit_test(test_formats_llama2c_every_truncation_fails),
        cmocka_unit_test(test_formats_llama2c_absurd_header),
        cmocka_unit_test(test_formats_stories260k_hf_loads),
        cmocka_unit_test(test_formats_stories260k_llama2c_matches_hf),
        cmocka_unit_test(test_formats_archive_tar_gz_loads),
        cmocka_unit_test(test_formats_archive_zip_loads),
        cmocka_unit_test(test_formats_archive_tar_zst_loads),
        cmocka_unit_test(test_formats_archive_plain_tar_top_level_loads),
        cmocka_unit_test(test_formats_archive_llama2c_inside),
        cmocka_unit_test(test_formats_archive_path_escape_refused),
        cmocka_unit_test(test_formats_archive_links_refused),
        cmocka_unit_test(test_formats_archive_truncated_tar_gz),
        cmocka_unit_test(test_formats_archive_empty_or_useless),
        cmocka_unit_test(test_formats_archive_size_limit),
        cmocka_unit_test(test_formats_atomic_abort_leaves_no_file),
        cmocka_unit_test(test_formats_atomic_unwritable_dir),
        cmocka_unit_test(test_formats_atomic_interrupted_write),
    };
    lq_test_filter();
    return cmocka_run_group_tests_name("formats", tests, group_setup, group_teardown);
}
