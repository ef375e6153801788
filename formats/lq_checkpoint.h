/* lq_checkpoint.h — a loaded checkpoint in the Hugging Face layout, whatever
 * it came from (safetensors directory or file, sharded safetensors, GGUF,
 * llama2.c, or an archive of these).
 *
 * Every loader produces the same thing: an HF config.json document, an HF
 * tokenizer.json document (or NULL), and a table of tensors with HF names
 * ("model.layers.3.self_attn.q_proj.weight") in the HF layout (q/k rows in
 * rotate-half order, linear weights [out, in]). So `lq convert` is just
 * "open, then write safetensors", and the runtime only knows HF names.
 *
 * Tensor data either points into an mmap (safetensors, kept read-only) or
 * into buffers the checkpoint owns (GGUF dequantized tensors, llama2.c).
 * Tested by tests/test_formats.c. */
#ifndef LQ_CHECKPOINT_H
#define LQ_CHECKPOINT_H

#include <jansson.h>

#include "../libquant/lq_common.h"
#include "../libquant/lq_dtype.h"

#define LQ_MAX_DIMS 4

typedef struct {
    char *name;                   /* HF tensor name, owned */
    lq_dtype dtype;
    int ndim;
    int64_t shape[LQ_MAX_DIMS];   /* row-major, outermost first */
    const void *data;             /* n_bytes of little-endian elements */
    size_t n_bytes;
} lq_tensor_info;

typedef struct lq_checkpoint {
    char *source;        /* path given to lq_checkpoint_open */
    char *format;        /* "safetensors", "gguf", "llama2c", ... */
    json_t *config;      /* HF config.json (owned reference) */
    json_t *tokenizer;   /* HF tokenizer.json (owned reference), NULL if none */
    lq_tensor_info *tensors;
    int n_tensors, cap_tensors;
    /* owned storage */
    lq_mmap *maps;
    int n_maps, cap_maps;
    void **bufs;
    int n_bufs, cap_bufs;
    char *tmpdir;        /* extracted archive; removed by lq_checkpoint_free */
} lq_checkpoint;

/* Open any supported input: a directory (config.json + model.safetensors or
 * model.safetensors.index.json [+ tokenizer.json]), a .safetensors file (with
 * config.json beside it), a .gguf file, a llama2.c .bin (tokenizer.bin or
 * tok*.bin beside it), or a .tar/.tar.gz/.tar.zst/.zip of a directory. */
lq_status lq_checkpoint_open(const char *path, lq_checkpoint **out);
void lq_checkpoint_free(lq_checkpoint *ck); /* NULL is a no-op */

/* NULL when absent. */
const lq_tensor_info *lq_checkpoint_find(const lq_checkpoint *ck, const char *name);

/* Convert a tensor to a freshly malloc'd f32 array (caller frees). Checks that
 * the element count equals expect_elems when expect_elems >= 0. */
lq_status lq_tensor_to_f32(const lq_tensor_info *t, int64_t expect_elems, float **out);
int64_t lq_tensor_numel(const lq_tensor_info *t);

/* ---- for loaders ---- */
lq_status lq_checkpoint_new(lq_checkpoint **out, const char *source, const char *format);
/* Adds a tensor; copies name. Fails with LQ_ERR_FORMAT on a duplicate name and
 * LQ_ERR_SHAPE when dtype x shape != n_bytes. */
lq_status lq_checkpoint_add_tensor(lq_checkpoint *ck, const char *name, lq_dtype dtype, int ndim,
                                   const int64_t *shape, const void *data, size_t n_bytes);
/* A buffer owned (and freed) by the checkpoint. */
lq_status lq_checkpoint_alloc(lq_checkpoint *ck, size_t n_bytes, void **out);
/* Keep an mmap alive for the checkpoint's lifetime. */
lq_status lq_checkpoint_keep_mmap(lq_checkpoint *ck, lq_mmap m);

#endif
