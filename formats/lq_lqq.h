/* lq_lqq.h — the packed quantized model file (".lqq"): one file holding the
 * HF config, the tokenizer.json document, the quantization recipe of every
 * tensor, calibration provenance, and the tensors — quantized linears in the
 * packed layout of libquant/lq_quant.h (codes, fp16 scales, zero points,
 * g_idx) or, for 4-bit weights, the fused kernels' mma layout of
 * libquant/lq_w4a16.h; everything else as F32/F16/BF16.
 *
 * The byte layout is specified in formats/FORMAT.md: a 96-byte little-endian
 * header written field by field (magic "LQQF", version 1.0, header size,
 * alignment 64, flags, offsets), JSON metadata, a tensor table (name, dtype,
 * shape, offset, bytes, crc32), 64-byte-aligned blobs. CRC32 (zlib) covers
 * header+table, the metadata, and every tensor; all are checked on load.
 * Writes are atomic (temp file, fsync, rename).
 *
 * Loading through lq_checkpoint_open (which recognises the magic) gives an
 * lq_checkpoint whose quantized linears are dequantized to F32 with
 * lq_dequant_cpu, so every runtime (lq ppl, lq generate, the CUDA engine)
 * runs a packed file unchanged. The packed form stays reachable through
 * lq_lqq_open / lq_lqq_get_qweight (views into the mmap) for fused kernels.
 * Tested by tests/test_lqq.c. */
#ifndef LQ_LQQ_H
#define LQ_LQQ_H

#include <jansson.h>

#include "../libquant/lq_quant.h"
#include "lq_checkpoint.h"

#define LQ_LQQ_MAGIC "LQQF"
#define LQ_LQQ_VERSION_MAJOR 1
#define LQ_LQQ_VERSION_MINOR 1
#define LQ_LQQ_HEADER_SIZE 96
#define LQ_LQQ_ALIGN 64

/* Element types in the tensor table (the file's own codes, FORMAT.md). */
typedef enum {
    LQ_LQQ_F32 = 0,
    LQ_LQQ_F16 = 1,
    LQ_LQQ_BF16 = 2,
    LQ_LQQ_I32 = 3,
    LQ_LQQ_U32 = 4, /* packed codes */
    LQ_LQQ_U8 = 5,
    LQ_LQQ_DTYPE_COUNT
} lq_lqq_dtype;

const char *lq_lqq_dtype_name(lq_lqq_dtype t);
size_t lq_lqq_dtype_size(lq_lqq_dtype t);
/* lq_dtype -> file dtype (F32/F16/BF16/I32/U8); -1 when the file cannot hold it. */
int lq_lqq_dtype_from_lq(lq_dtype t);

/* ---- writing ---- */

typedef struct lq_lqq_writer lq_lqq_writer;

lq_status lq_lqq_writer_new(lq_lqq_writer **out);
void lq_lqq_writer_free(lq_lqq_writer *w); /* NULL is a no-op */
/* Add a tensor; data is borrowed until lq_lqq_write returns. Checks
 * dtype x shape == n_bytes and that the name is new. */
lq_status lq_lqq_writer_add(lq_lqq_writer *w, const char *name, lq_lqq_dtype dtype, int ndim, const int64_t *shape,
                            const void *data, size_t n_bytes);
/* Add the components of a quantized weight named `weight_name`
 * ("model.layers.0.mlp.down_proj.weight"): <base>.qweight, <base>.scales,
 * [<base>.qzeros], [<base>.g_idx] with base = weight_name minus ".weight".
 * Returns (in *recipe, a new JSON object) the entry for metadata
 * quantization.tensors[weight_name]; the caller may add fields (method,
 * errors, damping) before writing. */
lq_status lq_lqq_writer_add_qweight(lq_lqq_writer *w, const char *weight_name, const lq_qweight *q,
                                    json_t **recipe);

/* The same in the fused kernels' layout (packing "lq-mma-w4", FORMAT.md):
 * 4-bit weights that lq_w4a16_supported accepts (LQ_ERR_UNSUPPORTED with the
 * reason otherwise). The writer repacks (and owns the repacked copy); q is
 * borrowed only for g_idx, until lq_lqq_write returns. */
lq_status lq_lqq_writer_add_qweight_mma(lq_lqq_writer *w, const char *weight_name, const lq_qweight *q,
                                        json_t **recipe);

/* Called after each tensor is written; return non-zero to abort (the
 * temporary file is removed and nothing appears under path). */
typedef int (*lq_lqq_progress_fn)(void *ud, int done, int total, uint64_t bytes_done, uint64_t bytes_total);

/* Write header, metadata (a JSON object, serialized compactly), table and
 * tensors to path atomically. */
lq_status lq_lqq_write(lq_lqq_writer *w, const json_t *metadata, const char *path, lq_lqq_progress_fn progress,
                       void *progress_ud);

/* ---- reading ---- */

typedef struct {
    const char *name;
    lq_lqq_dtype dtype;
    int ndim;
    int64_t shape[LQ_MAX_DIMS];
    uint64_t offset, n_bytes;
    uint32_t crc32;
    const void *data; /* into the mmap */
} lq_lqq_tensor;

typedef struct lq_lqq lq_lqq;

/* Open flags. */
#define LQ_LQQ_SKIP_TENSOR_CRC 1u /* check header/table/metadata CRCs only */

/* mmap and validate: header fields, sizes against the file (a truncated file
 * is named as such), header+table and metadata CRCs, every table entry
 * (bounds, alignment, overlaps, dtype x shape), and — unless
 * LQ_LQQ_SKIP_TENSOR_CRC — every tensor's CRC (LQ_ERR_CHECKSUM naming the
 * tensor). An unknown major version is refused with LQ_ERR_UNSUPPORTED. */
lq_status lq_lqq_open(const char *path, unsigned flags, lq_lqq **out);
void lq_lqq_close(lq_lqq *f); /* NULL is a no-op */

void lq_lqq_version(const lq_lqq *f, int *major, int *minor);
const json_t *lq_lqq_metadata(const lq_lqq *f); /* borrowed */
int lq_lqq_n_tensors(const lq_lqq *f);
const lq_lqq_tensor *lq_lqq_tensor_at(const lq_lqq *f, int i);
const lq_lqq_tensor *lq_lqq_find(const lq_lqq *f, const char *name); /* NULL when absent */

/* Names of the quantized weights listed in metadata quantization.tensors. */
int lq_lqq_n_qweights(const lq_lqq *f);
const char *lq_lqq_qweight_name(const lq_lqq *f, int i);
/* The packed weight `weight_name`, valid while f is open; release it with
 * lq_qweight_free. Packing lq-bitstream-u32-le: a view (pointers into the
 * mmap, q->mem NULL). Packing lq-mma-w4: the reference unpack into an owned
 * bit-stream copy (checked: zero points, padding), with q->mma_* viewing the
 * file's mma layout for the GPU. */
lq_status lq_lqq_get_qweight(const lq_lqq *f, const char *weight_name, lq_qweight *q);

/* Open a .lqq file as an lq_checkpoint (format "lqq"): plain tensors point
 * into the mmap, quantized weights are dequantized to F32 "<base>.weight"
 * tensors; config and tokenizer come from the metadata. */
lq_status lq_lqq_load(const char *path, lq_checkpoint **out);
/* The same checkpoint without the quantized weights, over an open file: its
 * tensors point into f's mapping, so f must outlive it (lq_model_load builds
 * the fp32 model from it and dequantizes each packed weight straight into the
 * model: one fp32 copy of the weights, not two). */
lq_status lq_lqq_plain_checkpoint(const lq_lqq *f, lq_checkpoint **out);

#endif
