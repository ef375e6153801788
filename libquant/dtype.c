/* dtype.c — dtype names/sizes and fp16/bf16 <-> fp32 conversion.
 * Rounding: round-to-nearest-even for f32->f16 and f32->bf16 (matches torch's
 * .half() / .bfloat16()); NaN stays NaN. Tested by tests/test_common.c. */
#include "lq_dtype.h"

#include <string.h>

static const char *const names[LQ_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I8",
                                                   "U8",  "I16", "I32",  "I64", "BOOL"};
static const size_t sizes[LQ_DTYPE_COUNT] = {4, 2, 2, 8, 1, 1, 2, 4, 8, 1};

const char *lq_dtype_name(lq_dtype t) {
    return (unsigned)t < LQ_DTYPE_COUNT ? names[t] : "?";
}

int lq_dtype_from_name(const char *s) {
    for (int i = 0; i < LQ_DTYPE_COUNT; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

size_t lq_dtype_size(lq_dtype t) { return (unsigned)t < LQ_DTYPE_COUNT ? sizes[t] : 0; }

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t lq_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffff;
    if (a >= 0x7f800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) /* rounds to >= 65520 -> Inf */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) { /* below smallest normal (2^-14): subnormal or zero */
        /* value / 2^-24, rounded to nearest even, using float arithmetic which
         * is exact here: adding 0.5 (2^-1 scale) trick via magic number. */
        float v = u2f(a) * 16777216.0f; /* * 2^24 */
        /* nearest-even rounding of v (0 <= v < 1024) */
        float r = v + 8388608.0f; /* 2^23: forces integer rounding, RNE */
        uint32_t m = f2u(r) - 0x4b000000u;
        return (uint16_t)(sign | m);
    }
    uint32_t exp = (a >> 23) - 112;
    uint32_t man = a & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float lq_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t lq_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffff) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Elementwise, so the 16-bit conversions of large tensors (an 8B checkpoint
 * is 8 G elements) run on every core; the result does not depend on it. */
#define LQ_CONVERT_PAR_MIN ((size_t)1 << 20)

int lq_convert_to_f32(lq_dtype t, const void *src, float *dst, size_t n) {
    if (n == 0) return (unsigned)t < LQ_DTYPE_COUNT ? 0 : -1; /* src/dst may be NULL */
    switch (t) {
    case LQ_F32: memcpy(dst, src, n * 4); return 0;
    case LQ_F16: {
        const uint8_t *s = src;
#pragma omp parallel for schedule(static) if (n >= LQ_CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lq_f16_to_f32(h);
        }
        return 0;
    }
    case LQ_BF16: {
        const uint8_t *s = src;
#pragma omp parallel for schedule(static) if (n >= LQ_CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lq_bf16_to_f32(h);
        }
        return 0;
    }
    case LQ_F64: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    }
    case LQ_I8: for (size_t i = 0; i < n; i++) dst[i] = ((const int8_t *)src)[i]; return 0;
    case LQ_U8: for (size_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i]; return 0;
    case LQ_I32: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        return 0;
    }
    default: return -1;
    }
}

int lq_convert_from_f32(lq_dtype t, const float *src, void *dst, size_t n) {
    uint8_t *d = dst;
    if (n == 0) return t == LQ_F32 || t == LQ_F16 || t == LQ_BF16 ? 0 : -1;
    switch (t) {
    case LQ_F32: memcpy(dst, src, n * 4); return 0;
    case LQ_F16:
#pragma omp parallel for schedule(static) if (n >= LQ_CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h = lq_f32_to_f16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return 0;
    case LQ_BF16:
#pragma omp parallel for schedule(static) if (n >= LQ_CONVERT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            uint16_t h = lq_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return 0;
    default: return -1;
    }
}
