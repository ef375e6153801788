/* lq_dtype.h — element types lq reads and writes, and the scalar fp16/bf16
 * conversions (round-to-nearest-even, as IEEE and torch do).
 *
 * GGUF's block-quantized types (Q8_0, Q4_0, Q4_1, K-quants) are not lq_dtypes:
 * the GGUF loader dequantizes them to F32 (formats/lq_gguf.h has their block
 * structs and dequantizers). Tested by tests/test_common.c. */
#ifndef LQ_DTYPE_H
#define LQ_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LQ_F32 = 0,
    LQ_F16,
    LQ_BF16,
    LQ_F64,
    LQ_I8,
    LQ_U8,
    LQ_I16,
    LQ_I32,
    LQ_I64,
    LQ_BOOL,
    LQ_DTYPE_COUNT
} lq_dtype;

/* "F32", "F16", "BF16", ... (the safetensors spelling). */
const char *lq_dtype_name(lq_dtype t);
/* Parse the safetensors spelling; returns -1 when unknown. */
int lq_dtype_from_name(const char *s);
/* Bytes per element. */
size_t lq_dtype_size(lq_dtype t);

float lq_f16_to_f32(uint16_t h);
uint16_t lq_f32_to_f16(float f);
float lq_bf16_to_f32(uint16_t h);
uint16_t lq_f32_to_bf16(float f);

/* Convert n elements of src (dtype t) to f32. Only float dtypes and integer
 * dtypes are accepted; returns 0 on success, -1 for a dtype it cannot convert. */
int lq_convert_to_f32(lq_dtype t, const void *src, float *dst, size_t n);
/* Convert n f32 values to F32/F16/BF16. Returns -1 for other dtypes. */
int lq_convert_from_f32(lq_dtype t, const float *src, void *dst, size_t n);

#endif
