// Q4_0/Q4_1/Q8_0 matmul over weights re-laid out in groups of eight rows. In
// ggml's layout one register holds 32 values of one row, so every block of
// every row-token pair costs a multiply-add, a widening, a conversion, an
// FMA and, per row and token, a horizontal sum. Here one register holds four
// bytes (eight 4-bit values) of each of eight rows: eight byte products per
// block add up in 16-bit lanes (at most 8 * 2 * 15 * 127 = 30480, no
// overflow), one widening and one FMA per block then serve eight rows, and
// the eight outputs land side by side in y with no horizontal sum.
//
// A packed group, block after block: d of the 8 rows (halves), m of the 8
// rows (halves, Q4_1 only), then 4 x 32 bytes where bytes [32j + 4r, +4)
// are row r's quant bytes [4j, 4j + 4). A byte's low nibble is value k and
// its high nibble value k + 16, as in the source block, so a group takes
// exactly the bytes of its eight source rows. Q8_0 groups hold d of the 8
// rows, then 8 x 32 bytes laid out the same way, one byte per value.
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_X86 1
#endif

static inline int64_t group_block_bytes(int type) {
    return type == LOOM_Q8_0 ? 272 : type == LOOM_Q4_1 ? 160 : 144;
}

int loom_can_pack(int type, int64_t rows, int64_t cols) {
    return (type == LOOM_Q4_0 || type == LOOM_Q4_1 || type == LOOM_Q8_0) && rows > 0 && rows % 8 == 0 && cols % 32 == 0;
}

static void pack_q8(const uint8_t *src, int64_t rows, int64_t blocks, uint8_t *dst) {
    for (int64_t g = 0; g < rows / 8; g++)
        for (int64_t b = 0; b < blocks; b++) {
            uint8_t *blk = dst + (g * blocks + b) * 272;
            for (int r = 0; r < 8; r++) {
                const uint8_t *s = src + ((g * 8 + r) * blocks + b) * 34;
                memcpy(blk + 2 * r, s, 2);
                for (int j = 0; j < 8; j++) memcpy(blk + 16 + 32 * j + 4 * r, s + 2 + 4 * j, 4);
            }
        }
}

void loom_pack(int type, const void *w, int64_t rows, int64_t cols, void *out) {
    if (type == LOOM_Q8_0) {
        pack_q8(w, rows, cols / 32, out);
        return;
    }
    const int has_min = type == LOOM_Q4_1;
    const int64_t blocks = cols / 32, src_block = has_min ? 20 : 18, src_qs = has_min ? 4 : 2;
    const int64_t scales = has_min ? 32 : 16;
    const uint8_t *src = w;
    uint8_t *dst = out;
    for (int64_t g = 0; g < rows / 8; g++) {
        for (int64_t b = 0; b < blocks; b++) {
            uint8_t *blk = dst + (g * blocks + b) * group_block_bytes(type);
            for (int r = 0; r < 8; r++) {
                const uint8_t *s = src + ((g * 8 + r) * blocks + b) * src_block;
                memcpy(blk + 2 * r, s, 2);
                if (has_min) memcpy(blk + 16 + 2 * r, s + 2, 2);
                for (int j = 0; j < 4; j++) memcpy(blk + scales + 32 * j + 4 * r, s + src_qs + 4 * j, 4);
            }
        }
    }
}

void loom_unpack_row(int type, const void *packed, int64_t cols, int64_t row, void *out) {
    const int64_t blocks = cols / 32, gb = group_block_bytes(type);
    const int64_t src_block = type == LOOM_Q8_0 ? 34 : type == LOOM_Q4_1 ? 20 : 18;
    const int64_t src_qs = type == LOOM_Q4_1 ? 4 : 2, scales = type == LOOM_Q4_1 ? 32 : 16;
    const int vectors = type == LOOM_Q8_0 ? 8 : 4;
    const uint8_t *group = (const uint8_t *)packed + (row / 8) * blocks * gb;
    const int r = (int)(row % 8);
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *blk = group + b * gb;
        uint8_t *dst = (uint8_t *)out + b * src_block;
        memcpy(dst, blk + 2 * r, 2);
        if (type == LOOM_Q4_1) memcpy(dst + 2, blk + 16 + 2 * r, 2);
        for (int j = 0; j < vectors; j++) memcpy(dst + src_qs + 4 * j, blk + scales + 32 * j + 4 * r, 4);
    }
}

static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return loom_f16_to_f32(h);
}

// The arithmetic of the vector kernel one row at a time: exact integer block
// sums, then the same products and FMAs in the same order.
// Row r's exact integer dot with x over one block.
static int32_t block_sum(int type, const uint8_t *blk, int r, const loom_q8_block *xb) {
    int32_t sum = 0;
    if (type == LOOM_Q8_0) {
        for (int k = 0; k < 32; k++) sum += (int8_t)blk[16 + 32 * (k / 4) + 4 * r + k % 4] * xb->qs[k];
        return sum;
    }
    const int64_t scales = type == LOOM_Q4_1 ? 32 : 16;
    for (int k = 0; k < 16; k++) {
        const uint8_t q = blk[scales + 32 * (k / 4) + 4 * r + k % 4];
        sum += (q & 15) * xb->qs[k] + (q >> 4) * xb->qs[k + 16];
    }
    return type == LOOM_Q4_0 ? sum - 8 * xb->sum : sum;
}

static void packed_generic(int type, const uint8_t *packed, int64_t blocks, const loom_q8_block *x,
                           int64_t ntok, float *y, int64_t ldy, int64_t row0, int64_t row1) {
    const int has_min = type == LOOM_Q4_1;
    const int64_t gb = group_block_bytes(type);
    for (int64_t row = row0; row < row1; row++) {
        const uint8_t *group = packed + (row / 8) * blocks * gb;
        const int r = (int)(row % 8);
        for (int64_t t = 0; t < ntok; t++) {
            float acc = 0;
            for (int64_t b = 0; b < blocks; b++) {
                const uint8_t *blk = group + b * gb;
                const loom_q8_block *xb = x + t * blocks + b;
                const int32_t sum = block_sum(type, blk, r, xb);
                acc = fmaf(half_at(blk + 2 * r) * xb->d, (float)sum, acc);
                if (has_min) acc = fmaf(half_at(blk + 16 + 2 * r), xb->s, acc);
            }
            y[t * ldy + row] = acc;
        }
    }
}

#ifdef LOOM_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define TOKENS 8

AVX2 static inline __m256i broadcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Eight rows (one group) against up to TOKENS tokens. Each 32-byte slice of
// weights is unpacked once and used for every token before the next, so
// only two weight registers are live next to the tokens' 16-bit sums.
AVX2 __attribute__((always_inline)) static inline void group_tokens(
        int type, const uint8_t *group, int64_t blocks, const loom_q8_block *x, int64_t nt, float *y, int64_t ldy) {
    const int has_min = type == LOOM_Q4_1;
    const int64_t gb = group_block_bytes(type), scales = has_min ? 32 : 16;
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 acc[TOKENS];
    for (int t = 0; t < TOKENS; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *blk = group + b * gb;
        __m256i s16[TOKENS];
        for (int t = 0; t < nt; t++) s16[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + scales + 32 * j));
            const __m256i lo = _mm256_and_si256(v, low);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            for (int t = 0; t < nt; t++) {
                const int8_t *qs = x[t * blocks + b].qs;
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, broadcast4(qs + 4 * j)));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, broadcast4(qs + 16 + 4 * j)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const __m256 m = has_min ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))) : _mm256_setzero_ps();
        for (int t = 0; t < nt; t++) {
            const loom_q8_block *xb = x + t * blocks + b;
            __m256i s32 = _mm256_madd_epi16(s16[t], ones);
            if (!has_min) s32 = _mm256_sub_epi32(s32, _mm256_set1_epi32(8 * xb->sum));
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(xb->d));
            acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s32), acc[t]);
            if (has_min) acc[t] = _mm256_fmadd_ps(m, _mm256_set1_ps(xb->s), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Q8_0: signed bytes, so products go through |w| and x with w's sign (as
// ggml does), and each 16-bit pair sum (up to 2 * 127 * 127) is widened at
// once because two of them could overflow.
AVX2 __attribute__((always_inline)) static inline void group_tokens_q8(
        const uint8_t *group, int64_t blocks, const loom_q8_block *x, int64_t nt, float *y, int64_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[TOKENS];
    for (int t = 0; t < TOKENS; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *blk = group + b * 272;
        const __m256i *w = (const __m256i *)(blk + 16);
        __m256i s32[TOKENS];
        for (int t = 0; t < nt; t++) s32[t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i v = _mm256_loadu_si256(w + j);
            const __m256i av = _mm256_sign_epi8(v, v);
            for (int t = 0; t < nt; t++) {
                const __m256i sx = _mm256_sign_epi8(broadcast4(x[t * blocks + b].qs + 4 * j), v);
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(av, sx), ones));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        for (int t = 0; t < nt; t++) {
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(x[t * blocks + b].d));
            acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s32[t]), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Token tiles whose activations stay in L2 while every group of the slice
// passes over them; inside a tile, each group (a few KiB) stays in L1 while
// the tile's tokens pass.
AVX2 __attribute__((always_inline)) static inline void packed_tiles(
        int type, const uint8_t *packed, int64_t blocks, const loom_q8_block *x,
        int64_t ntok, float *y, int64_t ldy, int64_t row0, int64_t row1) {
    const int64_t gb = group_block_bytes(type);
    int64_t tile = (128 * 1024) / (blocks * (int64_t)sizeof(loom_q8_block));
    tile = tile < TOKENS ? TOKENS : tile / TOKENS * TOKENS;
    for (int64_t t0 = 0; t0 < ntok; t0 += tile) {
        const int64_t t1 = t0 + tile < ntok ? t0 + tile : ntok;
        for (int64_t r = row0; r < row1; r += 8) {
            const uint8_t *group = packed + (r / 8) * blocks * gb;
            for (int64_t t = t0; t < t1; t += TOKENS) {
                const int64_t nt = t1 - t < TOKENS ? t1 - t : TOKENS;
                const loom_q8_block *xt = x + t * blocks;
                float *yt = y + t * ldy + r;
                // A constant count for full tiles and for single-token decode
                // lets the token loops unroll and the sums live in registers.
                if (type == LOOM_Q8_0) {
                    if (nt == TOKENS) group_tokens_q8(group, blocks, xt, TOKENS, yt, ldy);
                    else if (nt == 1) group_tokens_q8(group, blocks, xt, 1, yt, ldy);
                    else group_tokens_q8(group, blocks, xt, nt, yt, ldy);
                } else if (nt == TOKENS) {
                    group_tokens(type, group, blocks, xt, TOKENS, yt, ldy);
                } else if (nt == 1) {
                    group_tokens(type, group, blocks, xt, 1, yt, ldy);
                } else {
                    group_tokens(type, group, blocks, xt, nt, yt, ldy);
                }
            }
        }
    }
}

AVX2 static void packed_avx2(int type, const uint8_t *packed, int64_t blocks, const loom_q8_block *x,
                             int64_t ntok, float *y, int64_t ldy, int64_t row0, int64_t row1) {
    switch (type) {
    case LOOM_Q4_1: packed_tiles(LOOM_Q4_1, packed, blocks, x, ntok, y, ldy, row0, row1); return;
    case LOOM_Q4_0: packed_tiles(LOOM_Q4_0, packed, blocks, x, ntok, y, ldy, row0, row1); return;
    default: packed_tiles(LOOM_Q8_0, packed, blocks, x, ntok, y, ldy, row0, row1); return;
    }
}
#endif

void loom_matmul_packed(int type, const void *packed, int64_t cols,
                        const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                        int64_t row0, int64_t row1, int allow_simd) {
    const int64_t blocks = cols / 32;
#ifdef LOOM_X86
    if (allow_simd && loom_cpu_has_avx2()) {
        packed_avx2(type, packed, blocks, x, ntok, y, ldy, row0, row1);
        return;
    }
#endif
    (void)allow_simd;
    packed_generic(type, packed, blocks, x, ntok, y, ldy, row0, row1);
}
