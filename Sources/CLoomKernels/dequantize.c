// Dequantization of ggml block formats. Block layouts follow ggml's
// ggml-common.h; every format here is checked against values computed by
// the `gguf` Python package (Tests/Fixtures/dequant).
#include "CLoomKernels.h"
#include <string.h>

float loom_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: renormalize
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t loom_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;  // carries into exp correctly
    return (uint16_t)half;
}

static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return loom_f16_to_f32(h);
}

static void dq_q4_0(const uint8_t *b, float *y) {
    const float d = f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = ((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    const float d = f16(b), m = f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (qs[j] & 0x0f) * d + m;
        y[j + 16] = (qs[j] >> 4) * d + m;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    const float d = f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int lo = (qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
        const int hi = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
        y[j] = (lo - 16) * d;
        y[j + 16] = (hi - 16) * d;
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    const float d = f16(b), m = f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int lo = (qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
        const int hi = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
        y[j] = lo * d + m;
        y[j + 16] = hi * d + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y) {
    const float d = f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = qs[j] * d;
}

// The 12 bytes of K-quant scales pack eight 6-bit scales and eight 6-bit mins.
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dq_q4_K(const uint8_t *b, float *y) {
    const float d = f16(b), dmin = f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
}

static void dq_q5_K(const uint8_t *b, float *y) {
    const float d = f16(b), dmin = f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

static void dq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = f16(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

typedef void (*block_fn)(const uint8_t *, float *);

static int block_info(int type, int *block, int *bytes, block_fn *fn) {
    switch (type) {
    case LOOM_Q4_0: *block = 32; *bytes = 18; *fn = dq_q4_0; return 0;
    case LOOM_Q4_1: *block = 32; *bytes = 20; *fn = dq_q4_1; return 0;
    case LOOM_Q5_0: *block = 32; *bytes = 22; *fn = dq_q5_0; return 0;
    case LOOM_Q5_1: *block = 32; *bytes = 24; *fn = dq_q5_1; return 0;
    case LOOM_Q8_0: *block = 32; *bytes = 34; *fn = dq_q8_0; return 0;
    case LOOM_Q4_K: *block = 256; *bytes = 144; *fn = dq_q4_K; return 0;
    case LOOM_Q5_K: *block = 256; *bytes = 176; *fn = dq_q5_K; return 0;
    case LOOM_Q6_K: *block = 256; *bytes = 210; *fn = dq_q6_K; return 0;
    default: return -1;
    }
}

int64_t loom_row_bytes(int type, int64_t n) {
    switch (type) {
    case LOOM_F32: return n * 4;
    case LOOM_F16: case LOOM_BF16: return n * 2;
    default: {
        int block, bytes;
        block_fn fn;
        if (block_info(type, &block, &bytes, &fn) != 0) return -1;
        return n / block * bytes;
    }
    }
}

int loom_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    switch (type) {
    case LOOM_F32:
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    case LOOM_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16(p + 2 * i);
        return 0;
    case LOOM_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16;
            memcpy(dst + i, &bits, 4);
        }
        return 0;
    default: {
        int block, bytes;
        block_fn fn;
        if (block_info(type, &block, &bytes, &fn) != 0) return -1;
        for (int64_t i = 0; i < n / block; i++) fn(p + i * bytes, dst + i * block);
        return 0;
    }
    }
}
