/* hf.c — the Hugging Face checkpoint directory: config.json, tokenizer.json,
 * and model.safetensors or a sharded set described by
 * model.safetensors.index.json ({"weight_map": {tensor: "model-0000x-of-0000y.safetensors"}}).
 * Also the writer used by `lq convert`. Tested by tests/test_formats.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lq_formats.h"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static lq_status load_json(const char *path, json_t **out) {
    json_error_t e;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!*out) {
        if (!file_exists(path)) return lq_error(LQ_ERR_IO, "%s: cannot open", path);
        return lq_error(LQ_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", path, e.line,
                        e.column, e.text);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return lq_error(LQ_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    return LQ_OK;
}

/* Load config.json and (if present) tokenizer.json from dir into ck. */
static lq_status load_side_files(lq_checkpoint *ck, const char *dir) {
    lq_status st = LQ_OK;
    char *cfg = join(dir, "config.json"), *tok = join(dir, "tokenizer.json");
    LQ_FAIL_IF(!cfg || !tok, LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(load_json(cfg, &ck->config));
    if (file_exists(tok)) LQ_TRY(load_json(tok, &ck->tokenizer));
fail:
    free(cfg);
    free(tok);
    return st;
}

static lq_status load_sharded(lq_checkpoint *ck, const char *dir, const char *index_path) {
    lq_status st = LQ_OK;
    json_t *idx = NULL;
    char **files = NULL;
    size_t n_files = 0;
    LQ_TRY(load_json(index_path, &idx));
    json_t *wm = json_object_get(idx, "weight_map");
    LQ_FAIL_IF(!json_is_object(wm), LQ_ERR_FORMAT, "%s: field 'weight_map' missing or not an object",
               index_path);
    size_t cap = json_object_size(wm);
    LQ_TRY(lq_calloc((void **)&files, cap ? cap : 1, sizeof(char *), "shard list"));
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        LQ_FAIL_IF(!json_is_string(v), LQ_ERR_FORMAT, "%s: weight_map['%s'] is not a string",
                   index_path, key);
        const char *f = json_string_value(v);
        /* shard names are plain file names: refuse paths that leave the directory */
        LQ_FAIL_IF(strchr(f, '/') || strcmp(f, "..") == 0 || strcmp(f, ".") == 0 || !*f,
                   LQ_ERR_FORMAT, "%s: weight_map['%s'] = '%s' is not a plain file name",
                   index_path, key, f);
        size_t j;
        for (j = 0; j < n_files; j++)
            if (strcmp(files[j], f) == 0) break;
        if (j == n_files) files[n_files++] = (char *)f;
    }
    for (size_t j = 0; j < n_files; j++) {
        char *p = join(dir, files[j]);
        LQ_FAIL_IF(!p, LQ_ERR_NOMEM, "out of memory");
        st = lq_safetensors_add_file(ck, p);
        free(p);
        if (st != LQ_OK) {
            /* say which index sent us there (a missing shard is an IO error on the shard alone) */
            lq_error_prefix(st, "%s: shard '%s' listed in weight_map", index_path, files[j]);
            goto fail;
        }
    }
    json_object_foreach(wm, key, v) {
        LQ_FAIL_IF(!lq_checkpoint_find(ck, key), LQ_ERR_FORMAT,
                   "%s: tensor '%s' is listed in weight_map but not found in shard '%s'",
                   index_path, key, json_string_value(v));
    }
fail:
    free(files);
    if (idx) json_decref(idx);
    return st;
}

lq_status lq_hf_dir_load(const char *dir, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    char *single = join(dir, "model.safetensors"), *index = join(dir, "model.safetensors.index.json");
    LQ_FAIL_IF(!single || !index, LQ_ERR_NOMEM, "out of memory");
    char *cfg = join(dir, "config.json");
    int has_cfg = cfg && file_exists(cfg);
    free(cfg);
    /* (A directory holding only a .gguf or llama2.c .bin is not a checkpoint
     * here: open the file itself. Archives do that search in archive.c.) */
    LQ_FAIL_IF(!has_cfg, LQ_ERR_FORMAT,
               "%s: directory has no config.json (expected a Hugging Face checkpoint directory)", dir);
    LQ_TRY(lq_checkpoint_new(&ck, dir, "safetensors"));
    LQ_TRY(load_side_files(ck, dir));
    if (file_exists(index)) {
        LQ_TRY(load_sharded(ck, dir, index));
    } else if (file_exists(single)) {
        LQ_TRY(lq_safetensors_add_file(ck, single));
    } else {
        LQ_FAIL_IF(1, LQ_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json found", dir);
    }
    *out = ck;
    ck = NULL;
fail:
    lq_checkpoint_free(ck);
    free(single);
    free(index);
    return st;
}

lq_status lq_hf_file_load(const char *path, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    lq_checkpoint *ck = NULL;
    char *dir = strdup(path);
    LQ_FAIL_IF(!dir, LQ_ERR_NOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else strcpy(dir, ".");
    LQ_TRY(lq_checkpoint_new(&ck, path, "safetensors"));
    LQ_TRY(load_side_files(ck, dir));
    LQ_TRY(lq_safetensors_add_file(ck, path));
    *out = ck;
    ck = NULL;
fail:
    lq_checkpoint_free(ck);
    free(dir);
    return st;
}

static lq_status write_json(const json_t *doc, const char *path) {
    lq_status st = LQ_OK;
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    lq_atomic_file af;
    LQ_RETURN_IF(!s, LQ_ERR_NOMEM, "out of memory serialising %s", path);
    st = lq_atomic_open(&af, path);
    if (st == LQ_OK) {
        st = lq_atomic_write(&af, s, strlen(s));
        if (st == LQ_OK) st = lq_atomic_write(&af, "\n", 1);
        if (st == LQ_OK) st = lq_atomic_commit(&af);
        else lq_atomic_abort(&af);
    }
    free(s);
    return st;
}

lq_status lq_hf_dir_write(const lq_checkpoint *ck, const char *dir, int dtype) {
    lq_status st = LQ_OK;
    char *p = NULL;
    json_t *cfg = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lq_error(LQ_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    LQ_RETURN_IF(!ck->config, LQ_ERR_FORMAT, "%s: checkpoint has no config", ck->source);
    cfg = json_deep_copy(ck->config);
    LQ_FAIL_IF(!cfg, LQ_ERR_NOMEM, "out of memory");
    if (dtype >= 0) {
        const char *td = dtype == LQ_F16 ? "float16" : dtype == LQ_BF16 ? "bfloat16" : "float32";
        json_object_set_new(cfg, "torch_dtype", json_string(td));
    }
    p = join(dir, "model.safetensors");
    LQ_FAIL_IF(!p, LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(lq_safetensors_write(ck, p, dtype));
    free(p);
    p = join(dir, "config.json");
    LQ_FAIL_IF(!p, LQ_ERR_NOMEM, "out of memory");
    LQ_TRY(write_json(cfg, p));
    if (ck->tokenizer) {
        free(p);
        p = join(dir, "tokenizer.json");
        LQ_FAIL_IF(!p, LQ_ERR_NOMEM, "out of memory");
        LQ_TRY(write_json(ck->tokenizer, p));
    }
fail:
    free(p);
    if (cfg) json_decref(cfg);
    return st;
}
