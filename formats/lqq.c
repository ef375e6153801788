/* lqq.c — write and read the packed quantized model file (.lqq). The byte
 * layout is specified in formats/FORMAT.md; the API in lq_lqq.h.
 *
 * Reading validates everything computed from file data before use: header
 * fields, the file size against the header (a truncated file says so),
 * offsets and sizes (overflow-checked, inside the file, aligned, no
 * overlaps), dtype x shape == bytes, CRC32 of header+table, metadata and each
 * tensor, the recipe of each quantized weight against its components.
 * Tested by tests/test_lqq.c. */
#include "lq_lqq.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../libquant/lq_dtype.h"
#include "../libquant/lq_w4a16.h"
#include "lq_formats.h"

#define ENTRY_FIXED 64 /* bytes of a table entry before its name */

static const char *const dt_names[LQ_LQQ_DTYPE_COUNT] = {"F32", "F16", "BF16", "I32", "U32", "U8"};
static const size_t dt_sizes[LQ_LQQ_DTYPE_COUNT] = {4, 2, 2, 4, 4, 1};

const char *lq_lqq_dtype_name(lq_lqq_dtype t) { return (unsigned)t < LQ_LQQ_DTYPE_COUNT ? dt_names[t] : "?"; }
size_t lq_lqq_dtype_size(lq_lqq_dtype t) { return (unsigned)t < LQ_LQQ_DTYPE_COUNT ? dt_sizes[t] : 0; }

int lq_lqq_dtype_from_lq(lq_dtype t) {
    switch (t) {
    case LQ_F32: return LQ_LQQ_F32;
    case LQ_F16: return LQ_LQQ_F16;
    case LQ_BF16: return LQ_LQQ_BF16;
    case LQ_I32: return LQ_LQQ_I32;
    case LQ_U8: return LQ_LQQ_U8;
    default: return -1;
    }
}

static int lq_from_lqq_dtype(lq_lqq_dtype t) {
    switch (t) {
    case LQ_LQQ_F32: return LQ_F32;
    case LQ_LQQ_F16: return LQ_F16;
    case LQ_LQQ_BF16: return LQ_BF16;
    case LQ_LQQ_I32: return LQ_I32;
    case LQ_LQQ_U8: return LQ_U8;
    default: return -1;
    }
}

/* Fuzzing builds (tests/fuzz/run_fuzz.sh defines the libFuzzer convention
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) still compute every CRC but do not
 * stop at a mismatch, so that mutated inputs reach the parsers behind them. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_BAD(c, want) ((void)(c), (void)(want), 0)
#else
#define CRC_BAD(c, want) ((c) != (want))
#endif

/* zlib's crc32 takes a 32-bit length: feed big buffers in pieces. */
static uint32_t crc32_buf(uint32_t crc, const void *p, uint64_t n) {
    const Bytef *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ---------------- writer ---------------- */

typedef struct {
    char *name;
    lq_lqq_dtype dtype;
    int ndim;
    int64_t shape[LQ_MAX_DIMS];
    const void *data;
    uint64_t n_bytes, offset;
    uint32_t crc;
    void *owned; /* data the writer allocated (mma repacks), freed with it */
} wentry;

struct lq_lqq_writer {
    wentry *e;
    int n, cap;
};

lq_status lq_lqq_writer_new(lq_lqq_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? LQ_OK : lq_error(LQ_ERR_NOMEM, "out of memory");
}

void lq_lqq_writer_free(lq_lqq_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].owned);
    }
    free(w->e);
    free(w);
}

lq_status lq_lqq_writer_add(lq_lqq_writer *w, const char *name, lq_lqq_dtype dtype, int ndim, const int64_t *shape,
                            const void *data, size_t n_bytes) {
    LQ_RETURN_IF((unsigned)dtype >= LQ_LQQ_DTYPE_COUNT, LQ_ERR_ARG, "lqq writer: tensor '%s': bad dtype %d", name,
                 (int)dtype);
    LQ_RETURN_IF(ndim < 0 || ndim > LQ_MAX_DIMS, LQ_ERR_ARG, "lqq writer: tensor '%s': %d dimensions", name, ndim);
    size_t len = strlen(name);
    LQ_RETURN_IF(len == 0 || len > 65535, LQ_ERR_ARG, "lqq writer: tensor name of %zu bytes", len);
    size_t nb = lq_lqq_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        LQ_RETURN_IF(shape[i] < 0, LQ_ERR_ARG, "lqq writer: tensor '%s': negative dimension", name);
        LQ_RETURN_IF(lq_mul_overflow(nb, (size_t)shape[i], &nb), LQ_ERR_ARG, "lqq writer: tensor '%s': overflow", name);
    }
    LQ_RETURN_IF(nb != n_bytes, LQ_ERR_SHAPE, "lqq writer: tensor '%s': %s x shape is %zu bytes, got %zu", name,
                 lq_lqq_dtype_name(dtype), nb, n_bytes);
    for (int i = 0; i < w->n; i++)
        LQ_RETURN_IF(!strcmp(w->e[i].name, name), LQ_ERR_ARG, "lqq writer: duplicate tensor '%s'", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        wentry *ne = realloc(w->e, sizeof *ne * (size_t)nc);
        LQ_RETURN_IF(!ne, LQ_ERR_NOMEM, "out of memory");
        w->e = ne;
        w->cap = nc;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    LQ_RETURN_IF(!e->name, LQ_ERR_NOMEM, "out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->n_bytes = n_bytes;
    w->n++;
    return LQ_OK;
}

/* "<base>.weight" -> "<base>" + suffix */
static void component_name(char *buf, size_t n, const char *weight_name, const char *suffix) {
    size_t len = strlen(weight_name);
    if (len > 7 && !strcmp(weight_name + len - 7, ".weight")) len -= 7;
    snprintf(buf, n, "%.*s%s", (int)len, weight_name, suffix);
}

lq_status lq_lqq_writer_add_qweight(lq_lqq_writer *w, const char *weight_name, const lq_qweight *q, json_t **recipe) {
    *recipe = NULL;
    LQ_FORWARD(lq_qweight_validate(q, weight_name));
    char nq[512], ns[512], nz[512], ng[512];
    component_name(nq, sizeof nq, weight_name, ".qweight");
    component_name(ns, sizeof ns, weight_name, ".scales");
    component_name(nz, sizeof nz, weight_name, ".qzeros");
    component_name(ng, sizeof ng, weight_name, ".g_idx");
    const int b = q->p.bits;
    int64_t sq[2] = {q->rows, lq_packed_words(q->cols, b)}, ss[2] = {q->rows, q->n_groups},
            sz[2] = {q->rows, lq_packed_words(q->n_groups, b)}, sg[1] = {q->cols};
    LQ_FORWARD(lq_lqq_writer_add(w, nq, LQ_LQQ_U32, 2, sq, q->qweight, lq_qweight_qweight_bytes(q->rows, q->cols, b)));
    LQ_FORWARD(lq_lqq_writer_add(w, ns, LQ_LQQ_F16, 2, ss, q->scales, lq_qweight_scales_bytes(q->rows, q->n_groups)));
    if (q->qzeros)
        LQ_FORWARD(lq_lqq_writer_add(w, nz, LQ_LQQ_U32, 2, sz, q->qzeros,
                                     lq_qweight_qzeros_bytes(q->rows, q->n_groups, b)));
    if (q->g_idx) LQ_FORWARD(lq_lqq_writer_add(w, ng, LQ_LQQ_I32, 1, sg, q->g_idx, sizeof(int32_t) * (size_t)q->cols));
    json_t *r = json_pack("{s:s, s:i, s:I, s:I, s:b, s:[I, I], s:s, s:s}", "packing", "lq-bitstream-u32-le", "bits", b,
                          "group_size", (json_int_t)q->group_size, "n_groups", (json_int_t)q->n_groups, "sym",
                          q->p.sym, "shape", (json_int_t)q->rows, (json_int_t)q->cols, "qweight", nq, "scales", ns);
    LQ_RETURN_IF(!r, LQ_ERR_NOMEM, "out of memory");
    if (q->qzeros) json_object_set_new(r, "qzeros", json_string(nz));
    if (q->g_idx) json_object_set_new(r, "g_idx", json_string(ng));
    *recipe = r;
    return LQ_OK;
}

lq_status lq_lqq_writer_add_qweight_mma(lq_lqq_writer *w, const char *weight_name, const lq_qweight *q,
                                        json_t **recipe) {
    *recipe = NULL;
    LQ_FORWARD(lq_w4a16_supported(q, weight_name));
    lq_w4a16_shape s;
    LQ_FORWARD(lq_w4a16_shape_of(&q, 1, &s));
    char nq[512], ns[512], nz[512], ng[512];
    component_name(nq, sizeof nq, weight_name, ".qweight");
    component_name(ns, sizeof ns, weight_name, ".scales");
    component_name(nz, sizeof nz, weight_name, ".qzeros");
    component_name(ng, sizeof ng, weight_name, ".g_idx");
    const size_t qb = lq_w4a16_qw_words(&s) * sizeof(uint32_t), gb = lq_w4a16_group_elems(&s) * sizeof(uint16_t);
    uint32_t *qw = NULL;
    uint16_t *sc = NULL, *zr = NULL;
    LQ_FORWARD(lq_malloc((void **)&qw, qb, "mma repack (codes)"));
    lq_status st = lq_malloc((void **)&sc, gb, "mma repack (scales)");
    if (st == LQ_OK && !s.sym) st = lq_malloc((void **)&zr, gb, "mma repack (zeros)");
    if (st != LQ_OK) {
        free(qw);
        free(sc);
        return st;
    }
    lq_w4a16_repack(&q, 1, &s, qw, sc, zr);
    int64_t sq[4] = {s.Np / 16, s.Kp / 64, 32, 4}, ss[2] = {s.n_groups, s.Np}, sg[1] = {q->cols};
    /* the writer owns each buffer from the moment its entry exists */
    st = lq_lqq_writer_add(w, nq, LQ_LQQ_U32, 4, sq, qw, qb);
    if (st == LQ_OK) w->e[w->n - 1].owned = qw, qw = NULL;
    if (st == LQ_OK) st = lq_lqq_writer_add(w, ns, LQ_LQQ_F16, 2, ss, sc, gb);
    if (st == LQ_OK) w->e[w->n - 1].owned = sc, sc = NULL;
    if (st == LQ_OK && zr) st = lq_lqq_writer_add(w, nz, LQ_LQQ_F16, 2, ss, zr, gb);
    if (st == LQ_OK && zr) w->e[w->n - 1].owned = zr, zr = NULL;
    free(qw);
    free(sc);
    free(zr);
    LQ_FORWARD(st);
    if (q->g_idx) LQ_FORWARD(lq_lqq_writer_add(w, ng, LQ_LQQ_I32, 1, sg, q->g_idx, sizeof(int32_t) * (size_t)q->cols));
    json_t *r = json_pack("{s:s, s:i, s:I, s:I, s:b, s:[I, I], s:[I, I], s:s, s:s}", "packing", "lq-mma-w4", "bits", 4,
                          "group_size", (json_int_t)q->group_size, "n_groups", (json_int_t)q->n_groups, "sym",
                          q->p.sym, "shape", (json_int_t)q->rows, (json_int_t)q->cols, "padded_shape",
                          (json_int_t)s.Np, (json_int_t)s.Kp, "qweight", nq, "scales", ns);
    LQ_RETURN_IF(!r, LQ_ERR_NOMEM, "out of memory");
    if (!s.sym) json_object_set_new(r, "qzeros", json_string(nz));
    if (q->g_idx) json_object_set_new(r, "g_idx", json_string(ng));
    *recipe = r;
    return LQ_OK;
}

lq_status lq_lqq_write(lq_lqq_writer *w, const json_t *metadata, const char *path, lq_lqq_progress_fn progress,
                       void *ud) {
    lq_status st = LQ_OK;
    char *meta = NULL;
    uint8_t *table = NULL;
    lq_atomic_file af = {-1, NULL, NULL};
    int opened = 0;
    static const uint8_t zeros[LQ_LQQ_ALIGN] = {0};
    LQ_FAIL_IF(!json_is_object(metadata), LQ_ERR_ARG, "lqq writer: metadata is not a JSON object");
    meta = json_dumps(metadata, JSON_COMPACT | JSON_SORT_KEYS);
    LQ_FAIL_IF(!meta, LQ_ERR_NOMEM, "lqq writer: cannot serialize metadata");
    uint64_t meta_size = strlen(meta);
    uint64_t table_off = align_up(LQ_LQQ_HEADER_SIZE + meta_size, 8), table_size = 0;
    for (int i = 0; i < w->n; i++) table_size += ENTRY_FIXED + align_up(strlen(w->e[i].name), 8);
    uint64_t data_off = align_up(table_off + table_size, LQ_LQQ_ALIGN), off = data_off, total_bytes = 0;
    for (int i = 0; i < w->n; i++) {
        wentry *e = &w->e[i];
        e->offset = off;
        e->crc = crc32_buf((uint32_t)crc32(0, Z_NULL, 0), e->data, e->n_bytes);
        off = align_up(off + e->n_bytes, LQ_LQQ_ALIGN);
        total_bytes += e->n_bytes;
    }
    uint64_t file_size = w->n ? w->e[w->n - 1].offset + w->e[w->n - 1].n_bytes : data_off;

    LQ_TRY(lq_calloc((void **)&table, 1, (size_t)(table_size ? table_size : 1), "lqq table"));
    uint8_t *tp = table;
    for (int i = 0; i < w->n; i++) {
        const wentry *e = &w->e[i];
        size_t len = strlen(e->name);
        put16(tp, (uint16_t)len);
        tp[2] = (uint8_t)e->dtype;
        tp[3] = (uint8_t)e->ndim;
        put32(tp + 4, e->crc);
        for (int d = 0; d < LQ_MAX_DIMS; d++) put64(tp + 8 + 8 * d, d < e->ndim ? (uint64_t)e->shape[d] : 0);
        put64(tp + 40, e->offset);
        put64(tp + 48, e->n_bytes);
        put64(tp + 56, 0);
        memcpy(tp + ENTRY_FIXED, e->name, len);
        tp += ENTRY_FIXED + align_up(len, 8);
    }

    uint8_t h[LQ_LQQ_HEADER_SIZE] = {0};
    memcpy(h, LQ_LQQ_MAGIC, 4);
    put16(h + 4, LQ_LQQ_VERSION_MAJOR);
    put16(h + 6, LQ_LQQ_VERSION_MINOR);
    put32(h + 8, LQ_LQQ_HEADER_SIZE);
    put32(h + 12, LQ_LQQ_ALIGN);
    put64(h + 16, 0); /* flags */
    put64(h + 24, file_size);
    put64(h + 32, LQ_LQQ_HEADER_SIZE);
    put64(h + 40, meta_size);
    put64(h + 48, table_off);
    put64(h + 56, table_size);
    put64(h + 64, (uint64_t)w->n);
    put64(h + 72, data_off);
    put32(h + 80, crc32_buf((uint32_t)crc32(0, Z_NULL, 0), meta, meta_size));
    /* header CRC: the header with this field zero, then the table */
    uint32_t hc = crc32_buf((uint32_t)crc32(0, Z_NULL, 0), h, LQ_LQQ_HEADER_SIZE);
    hc = crc32_buf(hc, table, table_size);
    put32(h + 84, hc);

    LQ_TRY(lq_atomic_open(&af, path));
    opened = 1;
    uint64_t pos = 0;
#define WRITE(buf, n)                                                                                                  \
    do {                                                                                                               \
        LQ_TRY(lq_atomic_write(&af, (buf), (size_t)(n)));                                                              \
        pos += (n);                                                                                                    \
    } while (0)
#define PAD_TO(target)                                                                                                 \
    do {                                                                                                               \
        while (pos < (target)) {                                                                                       \
            uint64_t k = (target) - pos > LQ_LQQ_ALIGN ? LQ_LQQ_ALIGN : (target) - pos;                                \
            WRITE(zeros, k);                                                                                           \
        }                                                                                                              \
    } while (0)
    WRITE(h, LQ_LQQ_HEADER_SIZE);
    WRITE(meta, meta_size);
    PAD_TO(table_off);
    WRITE(table, table_size);
    uint64_t done_bytes = 0;
    for (int i = 0; i < w->n; i++) {
        PAD_TO(w->e[i].offset);
        WRITE(w->e[i].data, w->e[i].n_bytes);
        done_bytes += w->e[i].n_bytes;
        if (progress && progress(ud, i + 1, w->n, done_bytes, total_bytes))
            LQ_FAIL_IF(1, LQ_ERR_IO, "%s: write aborted after %d of %d tensors", path, i + 1, w->n);
    }
    PAD_TO(file_size);
#undef WRITE
#undef PAD_TO
    opened = 0;
    LQ_TRY(lq_atomic_commit(&af));
fail:
    if (opened) lq_atomic_abort(&af);
    free(meta);
    free(table);
    return st;
}

/* ---------------- reader ---------------- */

struct lq_lqq {
    char *path;
    lq_mmap map;
    int major, minor;
    uint64_t flags;
    json_t *meta;
    lq_lqq_tensor *t;
    int n;
    const char **qnames; /* keys of quantization.tensors (borrowed from meta) */
    int n_q;
};

void lq_lqq_close(lq_lqq *f) {
    if (!f) return;
    if (f->t)
        for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    free(f->qnames);
    if (f->meta) json_decref(f->meta);
    lq_mmap_close(&f->map);
    free(f->path);
    free(f);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} range;
static int range_cmp(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

lq_status lq_lqq_open(const char *path, unsigned flags, lq_lqq **out) {
    lq_status st = LQ_OK;
    lq_lqq *f = NULL;
    range *ranges = NULL;
    *out = NULL;
    LQ_TRY(lq_calloc((void **)&f, 1, sizeof *f, "lqq"));
    f->path = strdup(path);
    LQ_FAIL_IF(!f->path, LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(lq_mmap_open(path, &f->map));
    const uint8_t *p = f->map.data;
    const uint64_t fsz = f->map.n_bytes;
    LQ_FAIL_IF(fsz < 8 || memcmp(p, LQ_LQQ_MAGIC, 4) != 0, LQ_ERR_FORMAT,
               "%s: not an lq packed model (magic is not \"" LQ_LQQ_MAGIC "\")", path);
    f->major = get16(p + 4);
    f->minor = get16(p + 6);
    LQ_FAIL_IF(f->major != LQ_LQQ_VERSION_MAJOR, LQ_ERR_UNSUPPORTED,
               "%s: packed model format version %d.%d is not supported: this lq reads version %d.x (%s)", path,
               f->major, f->minor, LQ_LQQ_VERSION_MAJOR,
               f->major > LQ_LQQ_VERSION_MAJOR ? "the file was written by a newer lq; upgrade lq" : "re-quantize");
    LQ_FAIL_IF(fsz < LQ_LQQ_HEADER_SIZE, LQ_ERR_FORMAT,
               "%s: truncated: the file is %llu bytes, shorter than the %d-byte header", path,
               (unsigned long long)fsz, LQ_LQQ_HEADER_SIZE);
    uint32_t hsize = get32(p + 8), align = get32(p + 12);
    f->flags = get64(p + 16);
    uint64_t file_size = get64(p + 24), meta_off = get64(p + 32), meta_size = get64(p + 40),
             table_off = get64(p + 48), table_size = get64(p + 56), count = get64(p + 64), data_off = get64(p + 72);
    uint32_t meta_crc = get32(p + 80), head_crc = get32(p + 84);
    LQ_FAIL_IF(hsize < LQ_LQQ_HEADER_SIZE || hsize > fsz, LQ_ERR_FORMAT, "%s: header_size %u is invalid (file %llu bytes)",
               path, hsize, (unsigned long long)fsz);
    LQ_FAIL_IF(align == 0 || (align & (align - 1)) != 0 || align > (1u << 20), LQ_ERR_FORMAT,
               "%s: alignment %u is not a power of two <= 1 MiB", path, align);
    /* Required-feature flags live in the low 32 bits; v1.0 defines none. */
    LQ_FAIL_IF((f->flags & 0xffffffffull) != 0, LQ_ERR_UNSUPPORTED,
               "%s: the file needs features this lq does not know (flags 0x%llx)", path,
               (unsigned long long)f->flags);
    LQ_FAIL_IF(fsz < file_size, LQ_ERR_FORMAT,
               "%s: truncated: the header says the file has %llu bytes but it has %llu (an interrupted copy or "
               "download?)",
               path, (unsigned long long)file_size, (unsigned long long)fsz);
    LQ_FAIL_IF(fsz > file_size, LQ_ERR_FORMAT, "%s: the file has %llu bytes but its header says %llu", path,
               (unsigned long long)fsz, (unsigned long long)file_size);
    LQ_FAIL_IF(meta_off < hsize || meta_off > fsz || meta_size > fsz - meta_off, LQ_ERR_FORMAT,
               "%s: metadata [%llu, +%llu) lies outside the file (%llu bytes)", path, (unsigned long long)meta_off,
               (unsigned long long)meta_size, (unsigned long long)fsz);
    LQ_FAIL_IF(table_off < hsize || table_off > fsz || table_size > fsz - table_off, LQ_ERR_FORMAT,
               "%s: tensor table [%llu, +%llu) lies outside the file (%llu bytes)", path,
               (unsigned long long)table_off, (unsigned long long)table_size, (unsigned long long)fsz);
    LQ_FAIL_IF(data_off > fsz || data_off < table_off + table_size, LQ_ERR_FORMAT, "%s: data offset %llu is invalid",
               path, (unsigned long long)data_off);
    LQ_FAIL_IF(count > table_size / ENTRY_FIXED, LQ_ERR_FORMAT,
               "%s: tensor_count %llu cannot fit in a %llu-byte table", path, (unsigned long long)count,
               (unsigned long long)table_size);
    {
        uint8_t h[LQ_LQQ_HEADER_SIZE];
        memcpy(h, p, LQ_LQQ_HEADER_SIZE);
        put32(h + 84, 0);
        uint32_t c = crc32_buf((uint32_t)crc32(0, Z_NULL, 0), h, LQ_LQQ_HEADER_SIZE);
        c = crc32_buf(c, p + LQ_LQQ_HEADER_SIZE, hsize - LQ_LQQ_HEADER_SIZE); /* future header fields */
        c = crc32_buf(c, p + table_off, table_size);
        LQ_FAIL_IF(CRC_BAD(c, head_crc), LQ_ERR_CHECKSUM,
                   "%s: header/tensor table checksum mismatch (stored %08x, computed %08x): the file is corrupt", path,
                   head_crc, c);
        uint32_t mc = crc32_buf((uint32_t)crc32(0, Z_NULL, 0), p + meta_off, meta_size);
        LQ_FAIL_IF(CRC_BAD(mc, meta_crc), LQ_ERR_CHECKSUM,
                   "%s: metadata checksum mismatch (stored %08x, computed %08x): the file is corrupt", path, meta_crc,
                   mc);
    }
    json_error_t jerr;
    f->meta = json_loadb((const char *)p + meta_off, (size_t)meta_size, JSON_REJECT_DUPLICATES, &jerr);
    LQ_FAIL_IF(!f->meta || !json_is_object(f->meta), LQ_ERR_FORMAT, "%s: metadata is not a JSON object (%s)", path,
               f->meta ? "wrong type" : jerr.text);

    LQ_TRY(lq_calloc((void **)&f->t, (size_t)(count ? count : 1), sizeof *f->t, "lqq tensors"));
    LQ_TRY(lq_calloc((void **)&ranges, (size_t)(count ? count : 1), sizeof *ranges, "lqq ranges"));
    const uint8_t *tp = p + table_off, *tend = tp + table_size;
    for (uint64_t i = 0; i < count; i++) {
        LQ_FAIL_IF((uint64_t)(tend - tp) < ENTRY_FIXED, LQ_ERR_FORMAT, "%s: tensor table ends inside entry %llu", path,
                   (unsigned long long)i);
        uint16_t len = get16(tp);
        uint64_t esz = ENTRY_FIXED + align_up(len, 8);
        LQ_FAIL_IF(len == 0 || (uint64_t)(tend - tp) < esz, LQ_ERR_FORMAT,
                   "%s: tensor table entry %llu has a bad name length %u", path, (unsigned long long)i, len);
        lq_lqq_tensor *t = &f->t[i];
        char *name = malloc((size_t)len + 1);
        LQ_FAIL_IF(!name, LQ_ERR_NOMEM, "out of memory");
        memcpy(name, tp + ENTRY_FIXED, len);
        name[len] = 0;
        t->name = name;
        f->n = (int)i + 1;
        LQ_FAIL_IF(strlen(name) != len, LQ_ERR_FORMAT, "%s: tensor table entry %llu: name contains a NUL byte", path,
                   (unsigned long long)i);
        t->dtype = (lq_lqq_dtype)tp[2];
        t->ndim = tp[3];
        t->crc32 = get32(tp + 4);
        t->offset = get64(tp + 40);
        t->n_bytes = get64(tp + 48);
        LQ_FAIL_IF((unsigned)t->dtype >= LQ_LQQ_DTYPE_COUNT, LQ_ERR_FORMAT, "%s: tensor '%s': unknown dtype code %u",
                   path, name, tp[2]);
        LQ_FAIL_IF(t->ndim > LQ_MAX_DIMS, LQ_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", path, name,
                   t->ndim, LQ_MAX_DIMS);
        size_t nb = lq_lqq_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            uint64_t s = get64(tp + 8 + 8 * d);
            LQ_FAIL_IF(s > (uint64_t)INT64_MAX || lq_mul_overflow(nb, (size_t)s, &nb), LQ_ERR_FORMAT,
                       "%s: tensor '%s': shape overflows", path, name);
            t->shape[d] = (int64_t)s;
        }
        LQ_FAIL_IF(nb != t->n_bytes, LQ_ERR_FORMAT, "%s: tensor '%s': %s x shape is %zu bytes but %llu are stored",
                   path, name, lq_lqq_dtype_name(t->dtype), nb, (unsigned long long)t->n_bytes);
        LQ_FAIL_IF(t->offset < data_off || t->offset > fsz || t->n_bytes > fsz - t->offset, LQ_ERR_FORMAT,
                   "%s: tensor '%s': data [%llu, +%llu) lies outside the data area [%llu, %llu)", path, name,
                   (unsigned long long)t->offset, (unsigned long long)t->n_bytes, (unsigned long long)data_off,
                   (unsigned long long)fsz);
        LQ_FAIL_IF(t->offset % align != 0, LQ_ERR_FORMAT, "%s: tensor '%s': offset %llu is not %u-byte aligned", path,
                   name, (unsigned long long)t->offset, align);
        t->data = p + t->offset;
        ranges[i].begin = t->offset;
        ranges[i].end = t->offset + t->n_bytes;
        ranges[i].idx = (int)i;
        for (uint64_t j = 0; j < i; j++)
            LQ_FAIL_IF(!strcmp(f->t[j].name, name), LQ_ERR_FORMAT, "%s: duplicate tensor '%s'", path, name);
        tp += esz;
    }
    qsort(ranges, (size_t)count, sizeof *ranges, range_cmp);
    for (uint64_t i = 1; i < count; i++)
        LQ_FAIL_IF(ranges[i].begin < ranges[i - 1].end && ranges[i].begin != ranges[i].end, LQ_ERR_FORMAT,
                   "%s: tensors '%s' and '%s' overlap", path, f->t[ranges[i - 1].idx].name, f->t[ranges[i].idx].name);
    if (!(flags & LQ_LQQ_SKIP_TENSOR_CRC))
        for (int i = 0; i < f->n; i++) {
            uint32_t c = crc32_buf((uint32_t)crc32(0, Z_NULL, 0), f->t[i].data, f->t[i].n_bytes);
            LQ_FAIL_IF(CRC_BAD(c, f->t[i].crc32), LQ_ERR_CHECKSUM,
                       "%s: tensor '%s': checksum mismatch (stored %08x, computed %08x): the file is corrupt", path,
                       f->t[i].name, f->t[i].crc32, c);
        }

    json_t *qt = json_object_get(json_object_get(f->meta, "quantization"), "tensors");
    if (qt) {
        LQ_FAIL_IF(!json_is_object(qt), LQ_ERR_FORMAT, "%s: metadata quantization.tensors is not an object", path);
        LQ_TRY(lq_calloc((void **)&f->qnames, json_object_size(qt) + 1, sizeof(char *), "lqq recipe names"));
        const char *k;
        json_t *v;
        json_object_foreach(qt, k, v) f->qnames[f->n_q++] = k;
    }
    *out = f;
    f = NULL;
fail:
    free(ranges);
    lq_lqq_close(f);
    return st;
}

void lq_lqq_version(const lq_lqq *f, int *major, int *minor) {
    *major = f->major;
    *minor = f->minor;
}
const json_t *lq_lqq_metadata(const lq_lqq *f) { return f->meta; }
int lq_lqq_n_tensors(const lq_lqq *f) { return f->n; }
const lq_lqq_tensor *lq_lqq_tensor_at(const lq_lqq *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }
const lq_lqq_tensor *lq_lqq_find(const lq_lqq *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}
int lq_lqq_n_qweights(const lq_lqq *f) { return f->n_q; }
const char *lq_lqq_qweight_name(const lq_lqq *f, int i) { return i >= 0 && i < f->n_q ? f->qnames[i] : NULL; }

static lq_status recipe_int(const lq_lqq *f, const json_t *r, const char *w, const char *key, int64_t *out) {
    json_t *v = json_object_get(r, key);
    LQ_RETURN_IF(!json_is_integer(v), LQ_ERR_FORMAT, "%s: quantized weight '%s': recipe field '%s' missing or not an integer",
                 f->path, w, key);
    *out = json_integer_value(v);
    return LQ_OK;
}

static lq_status component(const lq_lqq *f, const json_t *r, const char *w, const char *key, lq_lqq_dtype dt,
                           int ndim, const int64_t *shape, const void **data) {
    *data = NULL;
    json_t *v = json_object_get(r, key);
    LQ_RETURN_IF(!json_is_string(v), LQ_ERR_FORMAT, "%s: quantized weight '%s': recipe field '%s' missing", f->path, w,
                 key);
    const lq_lqq_tensor *t = lq_lqq_find(f, json_string_value(v));
    LQ_RETURN_IF(!t, LQ_ERR_FORMAT, "%s: quantized weight '%s': component tensor '%s' is missing", f->path, w,
                 json_string_value(v));
    int ok = t->dtype == dt && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    LQ_RETURN_IF(!ok, LQ_ERR_FORMAT, "%s: quantized weight '%s': component '%s' has dtype %s / %d dims, expected %s [%lld%s%lld]",
                 f->path, w, t->name, lq_lqq_dtype_name(t->dtype), t->ndim, lq_lqq_dtype_name(dt), (long long)shape[0],
                 ndim > 1 ? ", " : "", ndim > 1 ? (long long)shape[1] : 0LL);
    *data = t->data;
    return LQ_OK;
}

/* Packing "lq-mma-w4": q holds the recipe's shape and params; unpack the
 * file's mma layout into an owned bit-stream copy and keep views of it. */
static lq_status get_qweight_mma(const lq_lqq *f, const json_t *r, const char *w, lq_qweight *q) {
    LQ_RETURN_IF(q->p.bits != 4, LQ_ERR_FORMAT, "%s: quantized weight '%s': packing lq-mma-w4 with %d bits", f->path, w,
                 q->p.bits);
    LQ_RETURN_IF(q->n_groups > 1 && q->group_size % 32 != 0, LQ_ERR_FORMAT,
                 "%s: quantized weight '%s': packing lq-mma-w4 with group size %lld (not a multiple of 32)", f->path, w,
                 (long long)q->group_size);
    const lq_qweight *qp = q;
    lq_w4a16_shape s;
    LQ_FORWARD(lq_w4a16_shape_of(&qp, 1, &s));
    const void *dq, *ds, *dz = NULL, *dg = NULL;
    int64_t sq[4] = {s.Np / 16, s.Kp / 64, 32, 4}, ss[2] = {s.n_groups, s.Np}, sg[1] = {s.K};
    LQ_FORWARD(component(f, r, w, "qweight", LQ_LQQ_U32, 4, sq, &dq));
    LQ_FORWARD(component(f, r, w, "scales", LQ_LQQ_F16, 2, ss, &ds));
    if (!s.sym) LQ_FORWARD(component(f, r, w, "qzeros", LQ_LQQ_F16, 2, ss, &dz));
    if (json_object_get(r, "g_idx")) LQ_FORWARD(component(f, r, w, "g_idx", LQ_LQQ_I32, 1, sg, &dg));
    lq_quant_params p = q->p;
    LQ_FORWARD(lq_qweight_alloc(q, s.N, s.K, &p, dg != NULL));
    char what[640];
    snprintf(what, sizeof what, "%s: quantized weight '%s'", f->path, w);
    lq_status st = lq_w4a16_unpack(&s, (const uint32_t *)dq, (const uint16_t *)ds, (const uint16_t *)dz, q, what);
    if (st == LQ_OK && dg) memcpy(q->g_idx, dg, sizeof(int32_t) * (size_t)s.K);
    if (st == LQ_OK) st = lq_qweight_validate(q, w);
    if (st == LQ_OK) st = lq_w4a16_supported(q, what) == LQ_OK
                              ? LQ_OK
                              : lq_error(LQ_ERR_FORMAT, "%s: packing lq-mma-w4 but g_idx is not k / G", what);
    if (st != LQ_OK) {
        lq_qweight_free(q);
        return st;
    }
    q->mma_qw = (const uint32_t *)dq;
    q->mma_scales = (const uint16_t *)ds;
    q->mma_zeros = (const uint16_t *)dz;
    return LQ_OK;
}

lq_status lq_lqq_get_qweight(const lq_lqq *f, const char *w, lq_qweight *q) {
    memset(q, 0, sizeof *q);
    json_t *r = json_object_get(json_object_get(json_object_get(f->meta, "quantization"), "tensors"), w);
    LQ_RETURN_IF(!json_is_object(r), LQ_ERR_NOTFOUND, "%s: no quantized weight '%s'", f->path, w);
    const char *packing = json_string_value(json_object_get(r, "packing"));
    const int mma = packing && !strcmp(packing, "lq-mma-w4");
    LQ_RETURN_IF(!packing || (!mma && strcmp(packing, "lq-bitstream-u32-le") != 0), LQ_ERR_UNSUPPORTED,
                 "%s: quantized weight '%s': packing '%s' is not supported (lq-bitstream-u32-le, lq-mma-w4)", f->path,
                 w, packing ? packing : "(none)");
    int64_t bits = 0, G = 0, ng = 0;
    LQ_FORWARD(recipe_int(f, r, w, "bits", &bits));
    LQ_FORWARD(recipe_int(f, r, w, "group_size", &G));
    LQ_FORWARD(recipe_int(f, r, w, "n_groups", &ng));
    json_t *sh = json_object_get(r, "shape");
    json_t *sym = json_object_get(r, "sym");
    LQ_RETURN_IF(!json_is_array(sh) || json_array_size(sh) != 2 || !json_is_integer(json_array_get(sh, 0)) ||
                     !json_is_integer(json_array_get(sh, 1)) || !json_is_boolean(sym),
                 LQ_ERR_FORMAT, "%s: quantized weight '%s': recipe needs shape [N, K] and sym", f->path, w);
    int64_t N = json_integer_value(json_array_get(sh, 0)), K = json_integer_value(json_array_get(sh, 1));
    LQ_RETURN_IF(bits < LQ_QUANT_MIN_BITS || bits > LQ_QUANT_MAX_BITS || N < 1 || K < 1 || N > (1ll << 40) ||
                     K > (1ll << 40) || G < 1 || G > K || ng != (K + G - 1) / G,
                 LQ_ERR_FORMAT, "%s: quantized weight '%s': inconsistent recipe (bits %lld, shape [%lld, %lld], group %lld, %lld groups)",
                 f->path, w, (long long)bits, (long long)N, (long long)K, (long long)G, (long long)ng);
    q->rows = N;
    q->cols = K;
    q->p.bits = (int)bits;
    q->p.group_size = (int)G;
    q->p.sym = json_is_true(sym);
    q->group_size = G;
    q->n_groups = ng;
    const void *d;
    if (mma) return get_qweight_mma(f, r, w, q);
    int64_t s2[2] = {N, lq_packed_words(K, (int)bits)};
    LQ_FORWARD(component(f, r, w, "qweight", LQ_LQQ_U32, 2, s2, &d));
    q->qweight = (uint32_t *)d;
    s2[1] = ng;
    LQ_FORWARD(component(f, r, w, "scales", LQ_LQQ_F16, 2, s2, &d));
    q->scales = (uint16_t *)d;
    if (!q->p.sym) {
        s2[1] = lq_packed_words(ng, (int)bits);
        LQ_FORWARD(component(f, r, w, "qzeros", LQ_LQQ_U32, 2, s2, &d));
        q->qzeros = (uint32_t *)d;
    }
    if (json_object_get(r, "g_idx")) {
        int64_t s1[1] = {K};
        LQ_FORWARD(component(f, r, w, "g_idx", LQ_LQQ_I32, 1, s1, &d));
        q->g_idx = (int32_t *)d;
    }
    return lq_qweight_validate(q, w);
}

/* Is `name` a component (qweight/scales/qzeros/g_idx) of some quantized weight? */
static int is_component(const lq_lqq *f, const char *name) {
    json_t *qt = json_object_get(json_object_get(f->meta, "quantization"), "tensors");
    static const char *const keys[] = {"qweight", "scales", "qzeros", "g_idx"};
    for (int i = 0; i < f->n_q; i++) {
        json_t *r = json_object_get(qt, f->qnames[i]);
        for (int k = 0; k < 4; k++) {
            const char *s = json_string_value(json_object_get(r, keys[k]));
            if (s && !strcmp(s, name)) return 1;
        }
    }
    return 0;
}

/* The metadata and plain tensors of an open file as a checkpoint (tensors point into f's mapping). */
static lq_status plain_checkpoint(const lq_lqq *f, const char *path, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    *out = NULL;
    LQ_TRY(lq_checkpoint_new(&ck, path, "lqq"));
    json_t *cfg = json_object_get(f->meta, "config");
    LQ_FAIL_IF(!json_is_object(cfg), LQ_ERR_FORMAT, "%s: metadata has no 'config' object", path);
    ck->config = json_incref(cfg);
    json_t *tok = json_object_get(f->meta, "tokenizer");
    if (json_is_object(tok)) ck->tokenizer = json_incref(tok);
    for (int i = 0; i < f->n; i++) {
        const lq_lqq_tensor *t = &f->t[i];
        if (is_component(f, t->name)) continue;
        int dt = lq_from_lqq_dtype(t->dtype);
        LQ_FAIL_IF(dt < 0, LQ_ERR_FORMAT, "%s: tensor '%s' has dtype %s but is not part of a quantized weight", path,
                   t->name, lq_lqq_dtype_name(t->dtype));
        LQ_TRY(lq_checkpoint_add_tensor(ck, t->name, (lq_dtype)dt, t->ndim, t->shape, t->data, (size_t)t->n_bytes));
    }
    *out = ck;
    ck = NULL;
fail:
    lq_checkpoint_free(ck);
    return st;
}

lq_status lq_lqq_plain_checkpoint(const lq_lqq *f, lq_checkpoint **out) { return plain_checkpoint(f, f->path, out); }

lq_status lq_lqq_load(const char *path, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_lqq *f = NULL;
    lq_checkpoint *ck = NULL;
    *out = NULL;
    LQ_TRY(lq_lqq_open(path, 0, &f));
    LQ_TRY(plain_checkpoint(f, path, &ck));
    for (int i = 0; i < f->n_q; i++) {
        lq_qweight q;
        LQ_TRY(lq_lqq_get_qweight(f, f->qnames[i], &q));
        size_t nb;
        void *buf = NULL;
        st = lq_mul_overflow((size_t)q.rows * sizeof(float), (size_t)q.cols, &nb)
                 ? lq_error(LQ_ERR_FORMAT, "%s: '%s' is too large", path, f->qnames[i])
                 : lq_checkpoint_alloc(ck, nb, &buf);
        if (st == LQ_OK) lq_dequant_cpu(&q, buf);
        int64_t shape[2] = {q.rows, q.cols};
        lq_qweight_free(&q); /* an mma file's unpacked copy; views: nothing to free */
        if (st != LQ_OK) goto fail;
        LQ_TRY(lq_checkpoint_add_tensor(ck, f->qnames[i], LQ_F32, 2, shape, buf, nb));
    }
    /* the checkpoint now owns the mapping (plain tensors point into it) */
    lq_mmap m = f->map;
    f->map.data = NULL;
    f->map.n_bytes = 0;
    LQ_TRY(lq_checkpoint_keep_mmap(ck, m)); /* closes m itself on failure */
    *out = ck;
    ck = NULL;
fail:
    lq_checkpoint_free(ck);
    lq_lqq_close(f);
    return st;
}
