/* checkpoint.c — the lq_checkpoint container (see lq_checkpoint.h) and
 * lq_checkpoint_open, which detects the input kind and calls its loader.
 * Tested by tests/test_formats.c. */
#include "lq_checkpoint.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lq_formats.h"
#include "lq_lqq.h"

lq_status lq_checkpoint_new(lq_checkpoint **out, const char *source, const char *format) {
    lq_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return lq_error(LQ_ERR_NOMEM, "out of memory");
    ck->source = strdup(source ? source : "");
    ck->format = strdup(format ? format : "");
    if (!ck->source || !ck->format) {
        lq_checkpoint_free(ck);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    *out = ck;
    return LQ_OK;
}

void lq_checkpoint_free(lq_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->n_tensors; i++) free(ck->tensors[i].name);
    free(ck->tensors);
    for (int i = 0; i < ck->n_maps; i++) lq_mmap_close(&ck->maps[i]);
    free(ck->maps);
    for (int i = 0; i < ck->n_bufs; i++) free(ck->bufs[i]);
    free(ck->bufs);
    if (ck->config) json_decref(ck->config);
    if (ck->tokenizer) json_decref(ck->tokenizer);
    if (ck->tmpdir) {
        lq_remove_tree(ck->tmpdir);
        free(ck->tmpdir);
    }
    free(ck->source);
    free(ck->format);
    free(ck);
}

static lq_status grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return LQ_OK;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return lq_error(LQ_ERR_NOMEM, "out of memory");
    *arr = p;
    *cap = ncap;
    return LQ_OK;
}

int64_t lq_tensor_numel(const lq_tensor_info *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

lq_status lq_checkpoint_add_tensor(lq_checkpoint *ck, const char *name, lq_dtype dtype, int ndim,
                                   const int64_t *shape, const void *data, size_t n_bytes) {
    LQ_RETURN_IF(ndim < 0 || ndim > LQ_MAX_DIMS, LQ_ERR_UNSUPPORTED,
                 "%s: tensor '%s' has %d dimensions (at most %d supported)", ck->source, name, ndim,
                 LQ_MAX_DIMS);
    LQ_RETURN_IF((unsigned)dtype >= LQ_DTYPE_COUNT, LQ_ERR_UNSUPPORTED, "%s: tensor '%s': bad dtype",
                 ck->source, name);
    size_t n = lq_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        LQ_RETURN_IF(shape[i] < 0, LQ_ERR_SHAPE, "%s: tensor '%s': negative dimension %lld",
                     ck->source, name, (long long)shape[i]);
        LQ_RETURN_IF(lq_mul_overflow(n, (size_t)shape[i], &n), LQ_ERR_SHAPE,
                     "%s: tensor '%s': shape overflows", ck->source, name);
    }
    LQ_RETURN_IF(n != n_bytes, LQ_ERR_SHAPE,
                 "%s: tensor '%s': dtype %s x shape gives %zu bytes but %zu are stored", ck->source,
                 name, lq_dtype_name(dtype), n, n_bytes);
    LQ_RETURN_IF(lq_checkpoint_find(ck, name) != NULL, LQ_ERR_FORMAT, "%s: duplicate tensor '%s'",
                 ck->source, name);
    LQ_FORWARD(grow((void **)&ck->tensors, &ck->cap_tensors, ck->n_tensors + 1, sizeof(lq_tensor_info)));
    lq_tensor_info *t = &ck->tensors[ck->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return lq_error(LQ_ERR_NOMEM, "out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->n_bytes = n_bytes;
    ck->n_tensors++;
    return LQ_OK;
}

lq_status lq_checkpoint_alloc(lq_checkpoint *ck, size_t n_bytes, void **out) {
    LQ_FORWARD(grow((void **)&ck->bufs, &ck->cap_bufs, ck->n_bufs + 1, sizeof(void *)));
    LQ_FORWARD(lq_malloc(out, n_bytes, "checkpoint tensor"));
    ck->bufs[ck->n_bufs++] = *out;
    return LQ_OK;
}

lq_status lq_checkpoint_keep_mmap(lq_checkpoint *ck, lq_mmap m) {
    lq_status st = grow((void **)&ck->maps, &ck->cap_maps, ck->n_maps + 1, sizeof(lq_mmap));
    if (st != LQ_OK) {
        lq_mmap_close(&m);
        return st;
    }
    ck->maps[ck->n_maps++] = m;
    return LQ_OK;
}

const lq_tensor_info *lq_checkpoint_find(const lq_checkpoint *ck, const char *name) {
    for (int i = 0; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i].name, name) == 0) return &ck->tensors[i];
    return NULL;
}

lq_status lq_tensor_to_f32(const lq_tensor_info *t, int64_t expect_elems, float **out) {
    int64_t n = lq_tensor_numel(t);
    LQ_RETURN_IF(expect_elems >= 0 && n != expect_elems, LQ_ERR_SHAPE,
                 "tensor '%s' has %lld elements, expected %lld", t->name, (long long)n,
                 (long long)expect_elems);
    float *buf;
    LQ_FORWARD(lq_malloc((void **)&buf, (size_t)n * sizeof(float), t->name));
    /* n == 0: nothing to convert, and t->data may be NULL (memcpy(dst, NULL, 0) is UB) */
    if (n > 0 && lq_convert_to_f32(t->dtype, t->data, buf, (size_t)n) != 0) {
        free(buf);
        return lq_error(LQ_ERR_UNSUPPORTED, "tensor '%s': cannot convert dtype %s to F32", t->name,
                        lq_dtype_name(t->dtype));
    }
    *out = buf;
    return LQ_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

lq_status lq_checkpoint_open(const char *path, lq_checkpoint **out) {
    *out = NULL;
    struct stat sb;
    LQ_RETURN_IF(stat(path, &sb) != 0, LQ_ERR_IO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) return lq_hf_dir_load(path, out);
    if (ends_with(path, ".tar") || ends_with(path, ".tar.gz") || ends_with(path, ".tgz") ||
        ends_with(path, ".tar.zst") || ends_with(path, ".tar.xz") || ends_with(path, ".zip"))
        return lq_archive_load(path, out);
    /* sniff the magic */
    lq_mmap m;
    LQ_FORWARD(lq_mmap_open(path, &m));
    const unsigned char *p = m.data;
    int is_gguf = m.n_bytes >= 4 && memcmp(p, "GGUF", 4) == 0;
    int is_lqq = m.n_bytes >= 4 && memcmp(p, LQ_LQQ_MAGIC, 4) == 0;
    int is_zip = m.n_bytes >= 4 && memcmp(p, "PK\x03\x04", 4) == 0;
    int is_gz = m.n_bytes >= 2 && p[0] == 0x1f && p[1] == 0x8b;
    int is_tar = m.n_bytes >= 262 && memcmp(p + 257, "ustar", 5) == 0;
    lq_mmap_close(&m);
    if (is_gguf) return lq_gguf_load(path, out);
    if (is_lqq) return lq_lqq_load(path, out);
    if (is_zip || is_gz || is_tar) return lq_archive_load(path, out);
    if (ends_with(path, ".safetensors")) return lq_hf_file_load(path, out);
    if (ends_with(path, ".bin")) return lq_llama2c_load(path, NULL, out);
    return lq_error(LQ_ERR_UNSUPPORTED,
                    "%s: unrecognised input (expected a directory with config.json, .safetensors, "
                    ".gguf, llama2.c .bin, lq packed .lqq, or .tar/.tar.gz/.tar.zst/.zip)",
                    path);
}
