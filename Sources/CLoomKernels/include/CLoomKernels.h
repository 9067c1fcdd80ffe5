#ifndef CLOOM_KERNELS_H
#define CLOOM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml type numbers, as stored in GGUF files. */
enum loom_type {
    LOOM_F32 = 0, LOOM_F16 = 1, LOOM_Q4_0 = 2, LOOM_Q4_1 = 3, LOOM_Q5_0 = 6,
    LOOM_Q5_1 = 7, LOOM_Q8_0 = 8, LOOM_Q4_K = 12, LOOM_Q5_K = 13,
    LOOM_Q6_K = 14, LOOM_BF16 = 30
};

float loom_f16_to_f32(uint16_t h);
uint16_t loom_f32_to_f16(float f);

/* Dequantizes `n` elements (a multiple of the type's block size) starting at
   `src` into `dst`. Returns 0, or -1 for a type this library cannot read. */
int loom_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Bytes taken by `n` elements of `type`, or -1 if unsupported. */
int64_t loom_row_bytes(int type, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
