/* safetensors.c — read and write the safetensors format.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian
 * u64 N = header length; N bytes of UTF-8 JSON: an object mapping tensor name
 * -> {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
 * "data_offsets": [begin, end]} (offsets relative to the data area that
 * starts at 8 + N), plus an optional "__metadata__" object of strings.
 *
 * Validation (every check names the file and the tensor): N fits in the file
 * and is below 100 MB; the JSON parses and is an object; each entry has a
 * known dtype, a shape of non-negative integers (at most 4 dims) whose
 * product x dtype size equals end - begin without overflow; 0 <= begin <=
 * end <= data size; no two tensors overlap (zero-size tensors overlap
 * nothing); no name repeats, within the file or across the files (shards)
 * of one checkpoint.
 * Tested by tests/test_formats.c and fuzzed by tests/fuzz/fuzz_safetensors.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lq_formats.h"

#define ST_MAX_HEADER (100u << 20)

typedef struct {
    size_t begin, end;
    const char *name;
} st_range;

static int range_cmp(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

lq_status lq_safetensors_parse(lq_checkpoint *ck, const void *buf, size_t n, const char *path) {
    lq_status st = LQ_OK;
    json_t *root = NULL;
    st_range *ranges = NULL;
    const uint8_t *p = buf;
    LQ_RETURN_IF(n < 8, LQ_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                 path, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    LQ_RETURN_IF(hlen > n - 8, LQ_ERR_FORMAT,
                 "%s: header length %llu exceeds the file size (%zu bytes)", path,
                 (unsigned long long)hlen, n);
    LQ_RETURN_IF(hlen > ST_MAX_HEADER, LQ_ERR_FORMAT, "%s: header length %llu is absurd (> %u)",
                 path, (unsigned long long)hlen, ST_MAX_HEADER);
    const uint8_t *data = p + 8 + hlen;
    size_t data_n = n - 8 - (size_t)hlen;

    json_error_t jerr;
    root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    LQ_FAIL_IF(!root, LQ_ERR_FORMAT, "%s: header JSON is malformed at byte %d: %s", path,
               jerr.position, jerr.text);
    LQ_FAIL_IF(!json_is_object(root), LQ_ERR_FORMAT, "%s: header JSON is not an object", path);

    size_t n_entries = json_object_size(root);
    LQ_TRY(lq_calloc((void **)&ranges, n_entries ? n_entries : 1, sizeof *ranges, "tensor ranges"));
    size_t n_ranges = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            LQ_FAIL_IF(!json_is_object(val), LQ_ERR_FORMAT, "%s: __metadata__ is not an object", path);
            continue;
        }
        LQ_FAIL_IF(!json_is_object(val), LQ_ERR_FORMAT, "%s: tensor '%s': entry is not an object",
                   path, key);
        json_t *jd = json_object_get(val, "dtype");
        json_t *js = json_object_get(val, "shape");
        json_t *jo = json_object_get(val, "data_offsets");
        LQ_FAIL_IF(!json_is_string(jd), LQ_ERR_FORMAT, "%s: tensor '%s': field 'dtype' missing or not a string", path, key);
        LQ_FAIL_IF(!json_is_array(js), LQ_ERR_FORMAT, "%s: tensor '%s': field 'shape' missing or not an array", path, key);
        LQ_FAIL_IF(!json_is_array(jo) || json_array_size(jo) != 2, LQ_ERR_FORMAT,
                   "%s: tensor '%s': field 'data_offsets' must be [begin, end]", path, key);
        int dt = lq_dtype_from_name(json_string_value(jd));
        LQ_FAIL_IF(dt < 0, LQ_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", path, key,
                   json_string_value(jd));
        size_t ndim = json_array_size(js);
        LQ_FAIL_IF(ndim > LQ_MAX_DIMS, LQ_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)",
                   path, key, ndim, LQ_MAX_DIMS);
        int64_t shape[LQ_MAX_DIMS];
        size_t bytes = lq_dtype_size((lq_dtype)dt);
        for (size_t i = 0; i < ndim; i++) {
            json_t *d = json_array_get(js, i);
            LQ_FAIL_IF(!json_is_integer(d) || json_integer_value(d) < 0, LQ_ERR_FORMAT,
                       "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, key, i);
            shape[i] = json_integer_value(d);
            LQ_FAIL_IF(lq_mul_overflow(bytes, (size_t)shape[i], &bytes), LQ_ERR_FORMAT,
                       "%s: tensor '%s': shape overflows", path, key);
        }
        json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
        LQ_FAIL_IF(!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
                       json_integer_value(je) < json_integer_value(jb),
                   LQ_ERR_FORMAT, "%s: tensor '%s': data_offsets are not 0 <= begin <= end", path, key);
        size_t b = (size_t)json_integer_value(jb), e = (size_t)json_integer_value(je);
        LQ_FAIL_IF(e > data_n, LQ_ERR_FORMAT,
                   "%s: tensor '%s': data_offsets end %zu is past the data area (%zu bytes)", path,
                   key, e, data_n);
        LQ_FAIL_IF(e - b != bytes, LQ_ERR_SHAPE,
                   "%s: tensor '%s': %s x shape needs %zu bytes but data_offsets span %zu", path,
                   key, json_string_value(jd), bytes, e - b);
        /* Zero-size tensors occupy no bytes and so overlap nothing (the
         * reference implementation accepts them at any offset in range). */
        if (e > b) {
            ranges[n_ranges].begin = b;
            ranges[n_ranges].end = e;
            ranges[n_ranges].name = key;
            n_ranges++;
        }
        /* a name already defined by another file of the same checkpoint (shards) */
        LQ_FAIL_IF(lq_checkpoint_find(ck, key) != NULL, LQ_ERR_FORMAT,
                   "%s: tensor '%s' is a duplicate (already defined by another file of %s)", path, key,
                   ck->source);
        LQ_TRY(lq_checkpoint_add_tensor(ck, key, (lq_dtype)dt, (int)ndim, shape, data + b, bytes));
    }
    qsort(ranges, n_ranges, sizeof *ranges, range_cmp);
    for (size_t i = 1; i < n_ranges; i++)
        LQ_FAIL_IF(ranges[i].begin < ranges[i - 1].end, LQ_ERR_FORMAT,
                   "%s: tensors '%s' and '%s' overlap in the data area", path, ranges[i - 1].name,
                   ranges[i].name);
fail:
    free(ranges);
    if (root) json_decref(root);
    return st;
}

lq_status lq_safetensors_add_file(lq_checkpoint *ck, const char *path) {
    lq_mmap m;
    LQ_FORWARD(lq_mmap_open(path, &m));
    lq_status st = lq_checkpoint_keep_mmap(ck, m);
    if (st != LQ_OK) return st;
    return lq_safetensors_parse(ck, m.data, m.n_bytes, path);
}

lq_status lq_safetensors_open(const char *path, lq_checkpoint **out) {
    lq_checkpoint *ck = NULL;
    LQ_FORWARD(lq_checkpoint_new(&ck, path, "safetensors"));
    lq_status st = lq_safetensors_add_file(ck, path);
    if (st != LQ_OK) {
        lq_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return LQ_OK;
}

static int is_float(lq_dtype t) { return t == LQ_F32 || t == LQ_F16 || t == LQ_BF16 || t == LQ_F64; }

lq_status lq_safetensors_write(const lq_checkpoint *ck, const char *path, int dtype) {
    lq_status st = LQ_OK;
    json_t *hdr = json_object();
    char *hjson = NULL;
    float *tmp = NULL;
    void *conv = NULL;
    lq_atomic_file af = {.fd = -1};
    int opened = 0;
    LQ_FAIL_IF(!hdr, LQ_ERR_NOMEM, "out of memory");
    LQ_FAIL_IF(dtype >= 0 && dtype != LQ_F32 && dtype != LQ_F16 && dtype != LQ_BF16, LQ_ERR_ARG,
               "safetensors output dtype must be F32, F16 or BF16");
    /* pass 1: header */
    size_t off = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        const lq_tensor_info *t = &ck->tensors[i];
        lq_dtype od = (dtype >= 0 && is_float(t->dtype)) ? (lq_dtype)dtype : t->dtype;
        size_t nb = (size_t)lq_tensor_numel(t) * lq_dtype_size(od);
        json_t *e = json_object(), *sh = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "dtype", json_string(lq_dtype_name(od)));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(hdr, t->name, e);
        off += nb;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(meta, "producer", json_string("lq"));
    json_object_set_new(hdr, "__metadata__", meta);
    hjson = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    LQ_FAIL_IF(!hjson, LQ_ERR_NOMEM, "out of memory");
    size_t hl = strlen(hjson);
    size_t padded = (hl + 7) & ~(size_t)7; /* align the data area to 8 bytes */
    LQ_TRY(lq_atomic_open(&af, path));
    opened = 1;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    LQ_TRY(lq_atomic_write(&af, lenb, 8));
    LQ_TRY(lq_atomic_write(&af, hjson, hl));
    LQ_TRY(lq_atomic_write(&af, "        ", padded - hl));
    for (int i = 0; i < ck->n_tensors; i++) {
        const lq_tensor_info *t = &ck->tensors[i];
        lq_dtype od = (dtype >= 0 && is_float(t->dtype)) ? (lq_dtype)dtype : t->dtype;
        if (od == t->dtype) {
            LQ_TRY(lq_atomic_write(&af, t->data, t->n_bytes));
            continue;
        }
        size_t ne = (size_t)lq_tensor_numel(t);
        LQ_TRY(lq_tensor_to_f32(t, -1, &tmp));
        LQ_TRY(lq_malloc(&conv, ne * lq_dtype_size(od), t->name));
        lq_convert_from_f32(od, tmp, conv, ne);
        LQ_TRY(lq_atomic_write(&af, conv, ne * lq_dtype_size(od)));
        free(tmp);
        free(conv);
        tmp = NULL;
        conv = NULL;
    }
    st = lq_atomic_commit(&af);
    opened = 0;
fail:
    if (opened) lq_atomic_abort(&af);
    free(tmp);
    free(conv);
    free(hjson);
    if (hdr) json_decref(hdr);
    return st;
}
