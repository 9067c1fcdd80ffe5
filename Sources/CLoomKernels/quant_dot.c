// Integer dot products of quantized weights with activations quantized once
// per matmul into Q8 blocks. Rounding and summation order follow ggml's AVX2
// kernels (ggml_vec_dot_q4_1_q8_1, _q4_0_q8_0, _q8_0_q8_0): per block, eight
// float lanes each gain d_w*d_x times a sum of four int products by FMA,
// then one horizontal sum, plus m*s for types with a minimum. The portable
// path does the same arithmetic lane by lane so both paths agree bit for bit.
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_X86 1
#endif

// Quantizes like activations.c (d = amax/127, q = round-half-even(x / d),
// d stored as a half, s = half(d * sum q)), so the integer path sees exactly
// the values the float path dots with.
static void quantize_q8_generic(const float *x, loom_q8_block *out, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *v = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / 127.f;
        const float id = d != 0 ? 1.f / d : 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int q = (int)nearbyintf(v[j] * id);
            out[b].qs[j] = (int8_t)q;
            sum += q;
        }
        out[b].d = loom_f16_to_f32(loom_f32_to_f16(d));
        out[b].s = loom_f16_to_f32(loom_f32_to_f16(d * (float)sum));
        out[b].sum = sum;
    }
}

#ifdef LOOM_X86
// The same arithmetic eight lanes at a time: max is exact in any order,
// the product and round-to-nearest-even are per element, the integer sum is
// exact, and F16C rounds to nearest even like loom_f32_to_f16.
__attribute__((target("avx2,f16c"))) static void quantize_q8_avx2(const float *x, loom_q8_block *out, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *v = x + b * 32;
        __m256 xs[4], m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            xs[j] = _mm256_loadu_ps(v + 8 * j);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, xs[j]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127.f;
        const __m256 id = _mm256_set1_ps(d != 0 ? 1.f / d : 0);
        __m256i q[4];
        for (int j = 0; j < 4; j++)
            q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(xs[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        const int sum = _mm_cvtsi128_si32(s4);
        // packs work within 128-bit lanes; the permute restores element order.
        const __m256i w8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)out[b].qs, _mm256_permutevar8x32_epi32(w8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        out[b].d = _cvtsh_ss(_cvtss_sh(d, 0));
        out[b].s = _cvtsh_ss(_cvtss_sh(d * (float)sum, 0));
        out[b].sum = sum;
    }
}
#endif

void loom_quantize_q8_path(const float *x, loom_q8_block *out, int64_t n, int allow_simd) {
#ifdef LOOM_X86
    if (allow_simd && loom_cpu_has_avx2()) {
        quantize_q8_avx2(x, out, n);
        return;
    }
#endif
    (void)allow_simd;
    quantize_q8_generic(x, out, n);
}

void loom_quantize_q8(const float *x, loom_q8_block *out, int64_t n) {
    loom_quantize_q8_path(x, out, n, 1);
}

int loom_has_int_dot(int type) {
    return type == LOOM_Q4_0 || type == LOOM_Q4_1 || type == LOOM_Q8_0;
}

static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return loom_f16_to_f32(h);
}

// ---- portable path -------------------------------------------------------

static inline float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

// Weight block `b` of a row as 32 signed or unsigned ints, plus its scale
// and minimum (0 for symmetric types).
static inline void unpack_block(int type, const uint8_t *row, int64_t b, int q[32], float *d, float *m) {
    if (type == LOOM_Q8_0) {
        const uint8_t *blk = row + b * 34;
        *d = half_at(blk);
        *m = 0;
        for (int j = 0; j < 32; j++) q[j] = (int8_t)blk[2 + j];
        return;
    }
    const int has_min = type == LOOM_Q4_1;
    const uint8_t *blk = row + b * (has_min ? 20 : 18);
    const uint8_t *qs = blk + (has_min ? 4 : 2);
    *d = half_at(blk);
    *m = has_min ? half_at(blk + 2) : 0;
    const int off = has_min ? 0 : 8;
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 15) - off;
        q[j + 16] = (qs[j] >> 4) - off;
    }
}

static void rows_generic(int type, const uint8_t *w, int64_t row_bytes, int64_t blocks,
                         const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                         int64_t row0, int64_t row1) {
    for (int64_t r = row0; r < row1; r++) {
        const uint8_t *row = w + r * row_bytes;
        for (int64_t t = 0; t < ntok; t++) {
            const loom_q8_block *xt = x + t * blocks;
            float acc[8] = {0}, summs = 0;
            for (int64_t b = 0; b < blocks; b++) {
                int q[32];
                float d, m;
                unpack_block(type, row, b, q, &d, &m);
                const float dd = d * xt[b].d;
                summs += m * xt[b].s;
                for (int l = 0; l < 8; l++) {
                    int s = 0;
                    for (int k = 0; k < 4; k++) s += q[4 * l + k] * xt[b].qs[4 * l + k];
                    acc[l] = fmaf(dd, (float)s, acc[l]);
                }
            }
            y[t * ldy + r] = hsum8(acc) + summs;
        }
    }
}

// ---- AVX2 path -----------------------------------------------------------
#ifdef LOOM_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum_avx(__m256 x) {
    __m128 r = _mm256_extractf128_ps(x, 1);
    r = _mm_add_ps(r, _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

// Unsigned weight bytes times signed activation bytes, four at a time, as
// eight float lanes (ggml's mul_sum_us8_pairs_float).
AVX2 static inline __m256 mul_sum_us8(__m256i ux, __m256i sy) {
    const __m256i dot16 = _mm256_maddubs_epi16(ux, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
}

// Signed times signed via |x| and sign-transferred y (ggml's mul_sum_i8_pairs_float).
AVX2 static inline __m256 mul_sum_i8(__m256i x, __m256i y) {
    return mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

AVX2 static inline __m256i nibbles(const uint8_t *qs) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(lo), _mm_srli_epi16(lo, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

AVX2 static inline float half_avx(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// Up to eight tokens against one weight row, so each unpacked weight block is
// reused from registers; every token's accumulation order is unchanged.
#define TOKENS 8
AVX2 __attribute__((always_inline)) static inline void row_tokens_avx2(int type, const uint8_t *row, int64_t blocks,
                                  const loom_q8_block *x, int64_t nt, float *y, int64_t ldy) {
    __m256 acc[TOKENS];
    float summs[TOKENS];
    for (int t = 0; t < TOKENS; t++) { acc[t] = _mm256_setzero_ps(); summs[t] = 0; }
    const int64_t bb = type == LOOM_Q8_0 ? 34 : type == LOOM_Q4_1 ? 20 : 18;
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *blk = row + b * bb;
        const float d = half_avx(blk);
        __m256i qw;
        float m = 0;
        if (type == LOOM_Q8_0) {
            qw = _mm256_loadu_si256((const __m256i *)(blk + 2));
        } else if (type == LOOM_Q4_1) {
            m = half_avx(blk + 2);
            qw = nibbles(blk + 4);
        } else {
            qw = _mm256_sub_epi8(nibbles(blk + 2), _mm256_set1_epi8(8));
        }
        for (int t = 0; t < nt; t++) {
            const loom_q8_block *xb = x + t * blocks + b;
            const __m256i qx = _mm256_loadu_si256((const __m256i *)xb->qs);
            const __m256 dd = _mm256_set1_ps(d * xb->d);
            const __m256 p = type == LOOM_Q4_1 ? mul_sum_us8(qw, qx) : mul_sum_i8(qw, qx);
            acc[t] = _mm256_fmadd_ps(dd, p, acc[t]);
            if (type == LOOM_Q4_1) summs[t] += m * xb->s;
        }
    }
    for (int t = 0; t < nt; t++) y[t * ldy] = hsum_avx(acc[t]) + summs[t];
}

// Tiles of rows x tokens sized so a tile's activations stay in L1/L2 while
// every row of the tile passes over them: prefill and batched decode read
// each weight row once per token tile instead of once per token.
AVX2 __attribute__((always_inline)) static inline void tiles_avx2(
        int type, const uint8_t *w, int64_t row_bytes, int64_t blocks, const loom_q8_block *x,
        int64_t ntok, float *y, int64_t ldy, int64_t row0, int64_t row1) {
    int64_t tile = (16 * 1024) / (blocks * (int64_t)sizeof(loom_q8_block));
    tile = tile < TOKENS ? TOKENS : tile / TOKENS * TOKENS;
    for (int64_t t0 = 0; t0 < ntok; t0 += tile) {
        const int64_t t1 = t0 + tile < ntok ? t0 + tile : ntok;
        for (int64_t r = row0; r < row1; r++) {
            const uint8_t *row = w + r * row_bytes;
            for (int64_t t = t0; t < t1; t += TOKENS) {
                const int64_t nt = t1 - t < TOKENS ? t1 - t : TOKENS;
                row_tokens_avx2(type, row, blocks, x + t * blocks, nt, y + t * ldy + r, ldy);
            }
        }
    }
}

// One instantiation per type (the type is a constant inside each), so the
// inner loops carry no per-block branches on it.
AVX2 static void rows_avx2(int type, const uint8_t *w, int64_t row_bytes, int64_t blocks,
                           const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                           int64_t row0, int64_t row1) {
    switch (type) {
    case LOOM_Q4_0: tiles_avx2(LOOM_Q4_0, w, row_bytes, blocks, x, ntok, y, ldy, row0, row1); return;
    case LOOM_Q4_1: tiles_avx2(LOOM_Q4_1, w, row_bytes, blocks, x, ntok, y, ldy, row0, row1); return;
    default: tiles_avx2(LOOM_Q8_0, w, row_bytes, blocks, x, ntok, y, ldy, row0, row1); return;
    }
}
#endif

static int use_avx2 = -1;

int loom_cpu_has_avx2(void) {
#ifdef LOOM_X86
    if (__atomic_load_n(&use_avx2, __ATOMIC_RELAXED) < 0) {
        __builtin_cpu_init();
        const int yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&use_avx2, yes, __ATOMIC_RELAXED);
    }
    return use_avx2;
#else
    return 0;
#endif
}

void loom_matmul_q8(int type, const void *w, int64_t row_bytes, int64_t cols,
                    const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                    int64_t row0, int64_t row1, int allow_simd) {
    const int64_t blocks = cols / 32;
#ifdef LOOM_X86
    if (allow_simd && loom_cpu_has_avx2()) {
        rows_avx2(type, (const uint8_t *)w, row_bytes, blocks, x, ntok, y, ldy, row0, row1);
        return;
    }
#endif
    (void)allow_simd;
    rows_generic(type, (const uint8_t *)w, row_bytes, blocks, x, ntok, y, ldy, row0, row1);
}
