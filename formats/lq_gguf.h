/* lq_gguf.h — the GGUF file format (llama.cpp / ggml): a validating parser that
 * works on an in-memory buffer, ggml's quant block structs and their scalar
 * dequantizers, and the mapping to an lq_checkpoint in the Hugging Face layout
 * (lq_gguf_load, declared in lq_formats.h).
 *
 * Why a parser of our own: GGUF files come from anywhere, and every count,
 * length and offset in them is attacker-controlled. The parser checks each one
 * against the bytes that are really there (overflow-checked) before using it,
 * so that tests/fuzz/fuzz_gguf.c can throw arbitrary bytes at it.
 * Tested by tests/test_gguf.c (make test) and tests/fuzz/fuzz_gguf.c (make fuzz).
 *
 * ---- The format (versions 2 and 3; little-endian) ----
 *   u32  magic        "GGUF" (bytes 47 47 55 46)
 *   u32  version      2 or 3 (3 only added big-endian files, which we refuse;
 *                     version 1 used 32-bit counts and is refused by name)
 *   u64  n_tensors
 *   u64  n_kv
 *   n_kv x  { string key; u32 value_type; value }
 *   n_tensors x { string name; u32 n_dims (<= 4); u64 ne[n_dims];
 *                 u32 ggml_type; u64 offset }
 *   padding to `general.alignment` (a u32 key, default 32, a power of two)
 *   data section: each tensor at data_start + offset, offset % alignment == 0
 *
 *   string = u64 length + that many bytes (UTF-8, no terminator)
 *   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
 *                8 string, 9 array { u32 elem_type; u64 n; n x value },
 *                10 u64, 11 i64, 12 f64.
 *   ne[] is innermost-first: ne[0] is the contiguous dimension, so the
 *   row-major (HF/torch) shape is ne reversed. Block-quantized types pack
 *   blck_size consecutive elements of ne[0] into one block of type_size bytes,
 *   so ne[0] must be a multiple of blck_size.
 */
#ifndef LQ_GGUF_H
#define LQ_GGUF_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "lq_checkpoint.h"

/* ---- ggml tensor types (the numbers are the file format's) ---- */
typedef enum {
    LQ_GGML_F32 = 0,
    LQ_GGML_F16 = 1,
    LQ_GGML_Q4_0 = 2,
    LQ_GGML_Q4_1 = 3,
    /* 4, 5: Q4_2, Q4_3, removed from ggml long ago */
    LQ_GGML_Q5_0 = 6,
    LQ_GGML_Q5_1 = 7,
    LQ_GGML_Q8_0 = 8,
    LQ_GGML_Q8_1 = 9,
    LQ_GGML_Q2_K = 10,
    LQ_GGML_Q3_K = 11,
    LQ_GGML_Q4_K = 12,
    LQ_GGML_Q5_K = 13,
    LQ_GGML_Q6_K = 14,
    LQ_GGML_Q8_K = 15,
    LQ_GGML_IQ2_XXS = 16,
    LQ_GGML_IQ2_XS = 17,
    LQ_GGML_IQ3_XXS = 18,
    LQ_GGML_IQ1_S = 19,
    LQ_GGML_IQ4_NL = 20,
    LQ_GGML_IQ3_S = 21,
    LQ_GGML_IQ2_S = 22,
    LQ_GGML_IQ4_XS = 23,
    LQ_GGML_I8 = 24,
    LQ_GGML_I16 = 25,
    LQ_GGML_I32 = 26,
    LQ_GGML_I64 = 27,
    LQ_GGML_F64 = 28,
    LQ_GGML_IQ1_M = 29,
    LQ_GGML_BF16 = 30,
    /* 31..33: Q4_0_4_4 / 4_8 / 8_8, removed */
    LQ_GGML_TQ1_0 = 34,
    LQ_GGML_TQ2_0 = 35,
    /* 36..38: IQ4_NL_4_4 / 4_8 / 8_8, removed */
    LQ_GGML_MXFP4 = 39,
    LQ_GGML_TYPE_COUNT = 40
} lq_ggml_type;

/* Dequantize n_elems elements (a multiple of the type's block size) from src
 * (any alignment) to f32. */
typedef void (*lq_dequant_fn)(const void *src, float *dst, int64_t n_elems);

typedef struct {
    const char *name;      /* "Q4_1"; NULL for numbers that name no type */
    int64_t blck_size;     /* elements per block (1 for plain types) */
    size_t type_size;      /* bytes per block */
    lq_dequant_fn to_f32;  /* NULL when lq cannot dequantize this type */
} lq_ggml_traits;

/* NULL for an unknown type number (name == NULL entries included). */
const lq_ggml_traits *lq_ggml_type_traits(uint32_t type);
/* "Q4_1", or "?" for an unknown number. */
const char *lq_ggml_type_name(uint32_t type);

/* ---- quant blocks (ggml's definitions, byte for byte). Scales are IEEE fp16
 * bit patterns. The dequantizers copy each block out with memcpy, so src needs
 * no alignment (GGUF alignment can legally be 1). ---- */
#define LQ_QK4_0 32
#define LQ_QK4_1 32
#define LQ_QK5_0 32
#define LQ_QK5_1 32
#define LQ_QK8_0 32
#define LQ_QK_K 256
#define LQ_K_SCALE_SIZE 12

/* x = (q - 8) * d; qs[j] low nibble is element j, high nibble element j + 16.
 * 4.5 bits per weight. */
typedef struct {
    uint16_t d;
    uint8_t qs[LQ_QK4_0 / 2];
} lq_block_q4_0;
static_assert(sizeof(lq_block_q4_0) == 2 + LQ_QK4_0 / 2, "wrong q4_0 block size");

/* x = q * d + m; nibble order as Q4_0. 5 bits per weight. */
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qs[LQ_QK4_1 / 2];
} lq_block_q4_1;
static_assert(sizeof(lq_block_q4_1) == 4 + LQ_QK4_1 / 2, "wrong q4_1 block size");

/* x = (q - 16) * d, q = nibble | (bit j of qh) << 4. 5.5 bits per weight. */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[LQ_QK5_0 / 2];
} lq_block_q5_0;
static_assert(sizeof(lq_block_q5_0) == 2 + 4 + LQ_QK5_0 / 2, "wrong q5_0 block size");

/* x = q * d + m, q as Q5_0. 6 bits per weight. */
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[LQ_QK5_1 / 2];
} lq_block_q5_1;
static_assert(sizeof(lq_block_q5_1) == 4 + 4 + LQ_QK5_1 / 2, "wrong q5_1 block size");

/* x = q * d. 8.5 bits per weight. */
typedef struct {
    uint16_t d;
    int8_t qs[LQ_QK8_0];
} lq_block_q8_0;
static_assert(sizeof(lq_block_q8_0) == 2 + LQ_QK8_0, "wrong q8_0 block size");

/* 16 sub-blocks of 16: x = d*(sc&15)*q - dmin*(sc>>4), q 2 bits. 2.625 bpw. */
typedef struct {
    uint8_t scales[LQ_QK_K / 16];
    uint8_t qs[LQ_QK_K / 4];
    uint16_t d;
    uint16_t dmin;
} lq_block_q2_K;
static_assert(sizeof(lq_block_q2_K) == 2 * 2 + LQ_QK_K / 16 + LQ_QK_K / 4, "wrong q2_K block size");

/* 16 sub-blocks of 16: x = d*(sc-32)*(q-4·!hbit), sc 6 bits, q 2+1 bits.
 * 3.4375 bpw. */
typedef struct {
    uint8_t hmask[LQ_QK_K / 8];
    uint8_t qs[LQ_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} lq_block_q3_K;
static_assert(sizeof(lq_block_q3_K) == 2 + LQ_QK_K / 4 + LQ_QK_K / 8 + 12, "wrong q3_K block size");

/* 8 sub-blocks of 32: x = d*sc*q - dmin*m, sc/m 6 bits packed in 12 bytes,
 * q 4 bits. 4.5 bpw. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[LQ_K_SCALE_SIZE];
    uint8_t qs[LQ_QK_K / 2];
} lq_block_q4_K;
static_assert(sizeof(lq_block_q4_K) == 2 * 2 + LQ_K_SCALE_SIZE + LQ_QK_K / 2, "wrong q4_K block size");

/* As Q4_K with a fifth bit per weight in qh. 5.5 bpw. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[LQ_K_SCALE_SIZE];
    uint8_t qh[LQ_QK_K / 8];
    uint8_t qs[LQ_QK_K / 2];
} lq_block_q5_K;
static_assert(sizeof(lq_block_q5_K) == 2 * 2 + LQ_K_SCALE_SIZE + LQ_QK_K / 2 + LQ_QK_K / 8,
              "wrong q5_K block size");

/* 16 sub-blocks of 16: x = d*sc*(q-32), sc int8, q 4+2 bits. 6.5625 bpw. */
typedef struct {
    uint8_t ql[LQ_QK_K / 2];
    uint8_t qh[LQ_QK_K / 4];
    int8_t scales[LQ_QK_K / 16];
    uint16_t d;
} lq_block_q6_K;
static_assert(sizeof(lq_block_q6_K) == 2 + LQ_QK_K / 16 + 3 * LQ_QK_K / 4, "wrong q6_K block size");

/* x = d*q with an f32 d; bsums (sums of 16) only serve ggml's dot products.
 * 9.125 bpw. */
typedef struct {
    float d;
    int8_t qs[LQ_QK_K];
    int16_t bsums[LQ_QK_K / 16];
} lq_block_q8_K;
static_assert(sizeof(lq_block_q8_K) == 4 + LQ_QK_K + LQ_QK_K / 16 * 2, "wrong q8_K block size");

/* Scalar reference dequantizers, ggml's exact arithmetic (fp16 -> f32 via
 * lq_f16_to_f32, then the same float operations in the same order, so results
 * match ggml bit for bit). n_elems must be a multiple of the block size. */
void lq_dequant_f32_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_f16_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_bf16_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_f64_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q4_0_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q4_1_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q5_0_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q5_1_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q8_0_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q2_K_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q3_K_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q4_K_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q5_K_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q6_K_ref(const void *src, float *dst, int64_t n_elems);
void lq_dequant_q8_K_ref(const void *src, float *dst, int64_t n_elems);

/* ---- parsed GGUF ---- */
typedef enum {
    LQ_GGUF_U8 = 0,
    LQ_GGUF_I8 = 1,
    LQ_GGUF_U16 = 2,
    LQ_GGUF_I16 = 3,
    LQ_GGUF_U32 = 4,
    LQ_GGUF_I32 = 5,
    LQ_GGUF_F32 = 6,
    LQ_GGUF_BOOL = 7,
    LQ_GGUF_STRING = 8,
    LQ_GGUF_ARRAY = 9,
    LQ_GGUF_U64 = 10,
    LQ_GGUF_I64 = 11,
    LQ_GGUF_F64 = 12,
    LQ_GGUF_VTYPE_COUNT = 13
} lq_gguf_vtype;

const char *lq_gguf_vtype_name(uint32_t t); /* "u32", ..., "?" */

/* A string in the file: points into the parsed buffer, NOT NUL-terminated. */
typedef struct {
    const char *ptr;
    uint64_t len;
} lq_gguf_str;

typedef struct lq_gguf_value {
    lq_gguf_vtype type;
    /* scalars, widened: unsigned ints and bool in u, signed ints in i,
     * floats in f */
    uint64_t u;
    int64_t i;
    double f;
    lq_gguf_str str;                /* LQ_GGUF_STRING */
    /* LQ_GGUF_ARRAY */
    lq_gguf_vtype elem_type;
    uint64_t n;                     /* element count */
    const uint8_t *raw;             /* fixed-size elements, little-endian, in the buffer */
    lq_gguf_str *strs;              /* n strings (elem_type STRING; owned) */
    struct lq_gguf_value *items;    /* n nested arrays (elem_type ARRAY; owned) */
} lq_gguf_value;

typedef struct {
    char *key; /* owned, NUL-terminated (keys with NUL bytes are refused) */
    lq_gguf_value v;
} lq_gguf_kv;

typedef struct {
    char *name;           /* owned, NUL-terminated */
    uint32_t n_dims;      /* 0..4 */
    int64_t ne[4];        /* innermost first; 1 beyond n_dims */
    uint32_t type;        /* lq_ggml_type */
    uint64_t offset;      /* from the start of the data section */
    size_t n_bytes;
    int64_t n_elems;
    const uint8_t *data;  /* into the buffer; n_bytes are inside it */
} lq_gguf_tensor;

typedef struct {
    char *path;           /* for messages */
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;   /* start of the data section in the buffer */
    int64_t n_kv;
    lq_gguf_kv *kv;
    int64_t n_tensors;
    lq_gguf_tensor *tensors;
    lq_mmap map;          /* set by lq_gguf_open; unmapped by lq_gguf_free */
} lq_gguf;

/* Parse and validate a GGUF image of n bytes. *out points into buf, which must
 * outlive it; `path` names the input in error messages. Refuses (with the
 * file, the field and the value in the message): a bad magic, version 1 or >3,
 * counts that cannot fit in the file, strings or arrays running past the end,
 * unknown value types, nested arrays deeper than 8, duplicate keys or tensor
 * names, n_dims > 4, negative/overflowing dims, unknown tensor types (status
 * LQ_ERR_UNSUPPORTED), ne[0] not a multiple of the block size, a bad
 * general.alignment, misaligned, out-of-range or overlapping tensor data. */
lq_status lq_gguf_parse(const void *buf, size_t n, const char *path, lq_gguf **out);
/* mmap path and parse it; the map is released by lq_gguf_free. */
lq_status lq_gguf_open(const char *path, lq_gguf **out);
void lq_gguf_free(lq_gguf *g); /* NULL is a no-op */

/* ---- metadata accessors. All return LQ_ERR_NOTFOUND (naming the key) when
 * the key is absent and LQ_ERR_FORMAT (naming key and type) when the value has
 * the wrong type or does not fit. ---- */
const lq_gguf_value *lq_gguf_get(const lq_gguf *g, const char *key); /* NULL: absent */
/* Any integer type (or bool), checked to fit. */
lq_status lq_gguf_get_i64(const lq_gguf *g, const char *key, int64_t *out);
/* Any float or integer type. */
lq_status lq_gguf_get_f64(const lq_gguf *g, const char *key, double *out);
lq_status lq_gguf_get_bool(const lq_gguf *g, const char *key, int *out);
/* *out is a malloc'd NUL-terminated copy (embedded NULs refused). */
lq_status lq_gguf_get_str(const lq_gguf *g, const char *key, char **out);
/* An array of strings as n malloc'd NUL-terminated strings in one allocation:
 * free(*out) frees all. */
lq_status lq_gguf_get_str_array(const lq_gguf *g, const char *key, char ***out, size_t *n);
/* An array of numbers converted to float / int32 (malloc'd, caller frees). */
lq_status lq_gguf_get_f32_array(const lq_gguf *g, const char *key, float **out, size_t *n);
lq_status lq_gguf_get_i32_array(const lq_gguf *g, const char *key, int32_t **out, size_t *n);

const lq_gguf_tensor *lq_gguf_find_tensor(const lq_gguf *g, const char *name); /* NULL: absent */
/* Dequantize a whole tensor into dst (t->n_elems floats). LQ_ERR_UNSUPPORTED
 * for types lq cannot dequantize (IQ*, Q8_1, integers, ...). */
lq_status lq_gguf_tensor_to_f32(const lq_gguf *g, const lq_gguf_tensor *t, float *dst);

/* Build a checkpoint in the HF layout from a parsed GGUF: config.json from the
 * <arch>.* keys, tokenizer.json from tokenizer.ggml.* (via lq_tokjson_build),
 * and every tensor dequantized to F32 under its HF name, q/k rows permuted
 * back to rotate-half for the llama architecture. The checkpoint owns copies
 * of everything, so g may be freed afterwards. lq_gguf_load = open + this. */
lq_status lq_gguf_to_checkpoint(const lq_gguf *g, lq_checkpoint **out);

/* The HF name of a GGUF tensor name ("blk.3.attn_q.weight" ->
 * "model.layers.3.self_attn.q_proj.weight") into out; LQ_ERR_UNSUPPORTED when
 * the name has no HF counterpart. */
lq_status lq_gguf_hf_name(const char *gguf_name, char *out, size_t out_size);

#endif
