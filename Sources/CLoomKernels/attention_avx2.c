// AVX2/F16C attention for one query token and the heads that share one KV
// head. Every rounding step matches the portable loop in ops.c bit for bit:
// each dot is eight lanes of FMAs over head_dim, the lanes summed in order
// from zero; each output element accumulates w * v by FMA position by
// position. What changes is the work around that arithmetic: a key row is
// converted from half once for all heads, eight dots finish together with
// one transpose instead of eight horizontal sums, the output rows stay in
// registers across positions, and rows are walked without a division each.
#include "CLoomKernels.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

// Rows of K (or V) of one KV head in one layer, position after position.
typedef struct {
    const loom_kv_layout *kv;
    const int32_t *table;
    int64_t offset, block, slot;
    const uint16_t *base;
} kv_cursor;

static kv_cursor cursor_at_start(const loom_kv_layout *kv, const int32_t *table, int64_t layer, int value, int64_t column) {
    kv_cursor c = {kv, table, layer * kv->layer_stride + (value ? kv->block_size * kv->kv_dim : 0) + column, -1, 0, NULL};
    c.slot = kv->block_size;  // the first next() moves into block 0
    return c;
}

static inline const uint16_t *cursor_next(kv_cursor *c) {
    if (c->slot == c->kv->block_size) {
        c->block++;
        c->slot = 0;
        c->base = c->kv->base + c->table[c->block] * c->kv->block_stride + c->offset;
    }
    return c->base + c->slot++ * c->kv->kv_dim;
}

// KV rows of one sequence lie a block apart every few positions, a pattern
// the hardware prefetcher does not follow; batched decode reads every
// sequence's whole cache each step, mostly from DRAM. So each loop asks for
// the row this many positions ahead.
#define AHEAD 8

static inline void prefetch_row(kv_cursor *ahead, int64_t p, int64_t n_pos, int64_t bytes) {
    if (p + AHEAD >= n_pos) return;
    const char *row = (const char *)cursor_next(ahead);
    for (int64_t offset = 0; offset < bytes; offset += 64) _mm_prefetch(row + offset, _MM_HINT_T0);
}

static inline kv_cursor cursor_ahead(kv_cursor c, int64_t n_pos) {
    for (int64_t i = 0; i < AHEAD && i < n_pos; i++) cursor_next(&c);
    return c;
}

AVX2 static inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// scores[i * n_pos + p] = (q_i . k_p) * scale for heads i < nh (nh <= 8).
AVX2 static void scores_avx2(const float *qr, int64_t nh, kv_cursor keys, int64_t n_pos, int64_t hd,
                             float scale, float *scores) {
    float kf[512] __attribute__((aligned(32)));
    __m256 lanes[8][8];  // [head][position within the group of eight]
    kv_cursor ahead = cursor_ahead(keys, n_pos);
    for (int64_t p0 = 0; p0 < n_pos; p0 += 8) {
        const int64_t np = n_pos - p0 < 8 ? n_pos - p0 : 8;
        for (int64_t pp = 0; pp < 8; pp++) {
            if (pp >= np) {
                for (int64_t i = 0; i < nh; i++) lanes[i][pp] = _mm256_setzero_ps();
                continue;
            }
            prefetch_row(&ahead, p0 + pp, n_pos, hd * 2);
            const uint16_t *k = cursor_next(&keys);
            for (int64_t c = 0; c < hd; c += 8)
                _mm256_store_ps(kf + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + c))));
            for (int64_t i = 0; i < nh; i++) {
                const float *q = qr + i * hd;
                __m256 acc = _mm256_setzero_ps();
                for (int64_t c = 0; c < hd; c += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_load_ps(kf + c), acc);
                lanes[i][pp] = acc;
            }
        }
        for (int64_t i = 0; i < nh; i++) {
            transpose8(lanes[i]);
            __m256 sum = _mm256_setzero_ps();
            for (int l = 0; l < 8; l++) sum = _mm256_add_ps(sum, lanes[i][l]);
            float out[8];
            _mm256_storeu_ps(out, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
            memcpy(scores + i * n_pos + p0, out, (size_t)np * sizeof(float));
        }
    }
}

// out_i[c..c+16) = sum over p of w_ip * v_p[c..c+16) for up to four heads,
// accumulated in registers from zero in position order.
AVX2 static void values_avx2(const float *scores, int64_t nh, const loom_kv_layout *kv, const int32_t *table,
                             int64_t layer, int64_t column, int64_t n_pos, int64_t c, float *out, int64_t hd) {
    __m256 acc[4][2];
    for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    kv_cursor values = cursor_at_start(kv, table, layer, 1, column + c);
    kv_cursor ahead = cursor_ahead(values, n_pos);
    for (int64_t p = 0; p < n_pos; p++) {
        if (c == 0) prefetch_row(&ahead, p, n_pos, hd * 2);
        const uint16_t *v = cursor_next(&values);
        const __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)v));
        const __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8)));
        for (int i = 0; i < 4; i++) {
            if (i >= nh) break;
            const __m256 w = _mm256_set1_ps(scores[i * n_pos + p]);
            acc[i][0] = _mm256_fmadd_ps(w, v0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(w, v1, acc[i][1]);
        }
    }
    for (int64_t i = 0; i < nh && i < 4; i++) {
        _mm256_storeu_ps(out + i * hd + c, acc[i][0]);
        _mm256_storeu_ps(out + i * hd + c + 8, acc[i][1]);
    }
}

AVX2 static void round_to_half(const float *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = _cvtsh_ss(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT));
}

// Both round to nearest even, as loom_f32_to_f16 does.
AVX2 void loom_store_f16_avx2(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

AVX2 void loom_attend_group_avx2(const float *q, const loom_kv_layout *kv, int64_t layer,
                                 const int32_t *table, int64_t n_pos, int64_t h0, int64_t h1, int64_t g,
                                 int64_t hd, float scale, float *scores, float *out) {
    const int64_t nh = h1 - h0;
    float qr[8 * 512] __attribute__((aligned(32)));
    round_to_half(q + h0 * hd, qr, nh * hd);
    scores_avx2(qr, nh, cursor_at_start(kv, table, layer, 0, g * hd), n_pos, hd, scale, scores);
    for (int64_t i = 0; i < nh; i++) {
        float *s = scores + i * n_pos;
        loom_softmax(s, n_pos);
        round_to_half(s, s, n_pos);
    }
    for (int64_t i0 = 0; i0 < nh; i0 += 4)
        for (int64_t c = 0; c < hd; c += 16)
            values_avx2(scores + i0 * n_pos, nh - i0, kv, table, layer, g * hd, n_pos, c, out + (h0 + i0) * hd, hd);
}
#else
void loom_store_f16_avx2(uint16_t *dst, const float *src, int64_t n) { (void)dst; (void)src; (void)n; }
void loom_attend_group_avx2(const float *q, const loom_kv_layout *kv, int64_t layer,
                            const int32_t *table, int64_t n_pos, int64_t h0, int64_t h1, int64_t g,
                            int64_t hd, float scale, float *scores, float *out) {
    (void)q; (void)kv; (void)layer; (void)table; (void)n_pos; (void)h0; (void)h1; (void)g;
    (void)hd; (void)scale; (void)scores; (void)out;
}
#endif
