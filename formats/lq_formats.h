/* lq_formats.h — the individual loaders and writers behind lq_checkpoint_open
 * and `lq convert`. Each file format is documented at the top of its .c file.
 * Tested by tests/test_formats.c and tests/test_gguf.c. */
#ifndef LQ_FORMATS_H
#define LQ_FORMATS_H

#include "lq_checkpoint.h"

/* ---- safetensors (formats/safetensors.c) ---- */
/* Parse a safetensors image already in memory (buf, n bytes) and add its
 * tensors to ck, pointing into buf (which must outlive ck). `path` names the
 * file in errors. Validates: header length within the file, JSON well formed,
 * dtype known, offsets in the data area, no overlaps, dtype x shape = bytes. */
lq_status lq_safetensors_parse(lq_checkpoint *ck, const void *buf, size_t n, const char *path);
/* mmap a .safetensors file and add its tensors to ck. */
lq_status lq_safetensors_add_file(lq_checkpoint *ck, const char *path);
/* Load a bare .safetensors (no config) as a checkpoint (e.g. golden files). */
lq_status lq_safetensors_open(const char *path, lq_checkpoint **out);
/* Write tensors (all of ck's, converted to `dtype` when dtype is a float type
 * and the tensor is floating point; -1 keeps each tensor's dtype) atomically. */
lq_status lq_safetensors_write(const lq_checkpoint *ck, const char *path, int dtype);

/* ---- HF directory (formats/hf.c) ---- */
lq_status lq_hf_dir_load(const char *dir, lq_checkpoint **out);
lq_status lq_hf_file_load(const char *safetensors_path, lq_checkpoint **out);
/* Write config.json, tokenizer.json and model.safetensors into dir. */
lq_status lq_hf_dir_write(const lq_checkpoint *ck, const char *dir, int dtype);

/* ---- GGUF (formats/gguf.c) ---- */
lq_status lq_gguf_load(const char *path, lq_checkpoint **out);

/* ---- llama2.c (formats/llama2c.c) ---- */
/* tok_path NULL: look for tokenizer.bin or tok*.bin beside the checkpoint. */
lq_status lq_llama2c_load(const char *bin_path, const char *tok_path, lq_checkpoint **out);
/* Parse a llama2.c tokenizer.bin into a tokenizer.json document. */
lq_status lq_llama2c_tokenizer_json(const char *tok_path, int32_t vocab_size, json_t **out);

/* ---- archives (formats/archive.c) ---- */
/* Extract (refusing absolute paths, "..", links that escape) into a temp
 * directory, then load the checkpoint inside it. */
lq_status lq_archive_load(const char *path, lq_checkpoint **out);
/* rm -rf of a directory lq created. */
void lq_remove_tree(const char *dir);

/* Permute q/k rows between Meta's interleaved RoPE layout (llama2.c, GGUF) and
 * HF's rotate-half layout. w is [n_heads * head_dim, cols] f32. */
lq_status lq_permute_qk_to_hf(float *w, int n_heads, int head_dim, int64_t cols);

#endif
