// AVX2/F16C inner loops of attention. They keep the portable loops' eight
// lanes and mul-then-add (no FMA), so both paths give the same bits.
#include "CLoomKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,f16c")))

AVX2 float loom_dot_f16_avx2(const float *q, const uint16_t *k, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + i), kv));
    }
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, acc);
    for (; i < n; i++) sum += q[i] * loom_f16_to_f32(k[i]);
    for (int j = 0; j < 8; j++) sum += lanes[j];
    return sum;
}

AVX2 void loom_axpy_f16_avx2(float *y, float w, const uint16_t *v, int64_t n) {
    const __m256 wv = _mm256_set1_ps(w);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i)));
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(wv, x)));
    }
    for (; i < n; i++) y[i] += w * loom_f16_to_f32(v[i]);
}
#else
float loom_dot_f16_avx2(const float *q, const uint16_t *k, int64_t n) { (void)q; (void)k; (void)n; return 0; }
void loom_axpy_f16_avx2(float *y, float w, const uint16_t *v, int64_t n) { (void)y; (void)w; (void)v; (void)n; }
#endif
