// e^x, and the two kernels built on it (SwiGLU and softmax), with one
// algorithm for the scalar and the AVX2 path so both give the same bits:
// glibc's expf cannot be vectorized, and calling it per element made these
// loops a tenth of a decode step. Cody-Waite reduction by ln 2 and Cephes'
// polynomial, each step an FMA or a multiply in both paths, as llama.cpp
// uses an exp of its own rather than the C library's.
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_X86 1
#endif

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
// Below -86 the result is under 2^-124 and is returned as 0; above 88 it
// is returned as inf. The clamps keep 2^n a normal float.
#define EXP_LOW -86.0f
#define EXP_HIGH 88.0f
static const float exp_poly[6] = {
    1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
    4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f,
};

float loom_expf(float x) {
    if (x != x) return x;
    if (x < EXP_LOW) return 0;
    if (x > EXP_HIGH) return INFINITY;
    const float n = nearbyintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = exp_poly[0];
    for (int i = 1; i < 6; i++) p = fmaf(p, r, exp_poly[i]);
    const float y = fmaf(p, r * r, r) + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

static void swiglu_generic(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + loom_expf(-g[i])) * u[i];
}

// Exponentiates x - max in place and returns the sum: eight double lanes,
// lane j taking elements i = j mod 8, the lanes then the tail added in order.
static double exp_sum_generic(float *x, int64_t n, float max) {
    double lanes[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            x[i + j] = loom_expf(x[i + j] - max);
            lanes[j] += (double)x[i + j];
        }
    double sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) {
        x[i] = loom_expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}

#ifdef LOOM_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x) {
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly[i]));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 out = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    out = _mm256_blendv_ps(out, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LOW), _CMP_LT_OQ));
    out = _mm256_blendv_ps(out, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(EXP_HIGH), _CMP_GT_OQ));
    return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

AVX2 static void swiglu_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_xor_ps(x, sign));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    swiglu_generic(g + i, u + i, n - i);
}

AVX2 static double exp_sum_avx2(float *x, int64_t n, float max) {
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    const __m256 m = _mm256_set1_ps(max);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[8], sum = 0;
    _mm256_storeu_pd(lanes, low);
    _mm256_storeu_pd(lanes + 4, high);
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < n; i++) {
        x[i] = loom_expf(x[i] - max);
        sum += (double)x[i];
    }
    return sum;
}
#endif

static int simd_allowed(int allow_simd) {
#ifdef LOOM_X86
    return allow_simd && loom_cpu_has_avx2();
#else
    (void)allow_simd;
    return 0;
#endif
}

void loom_swiglu_path(float *g, const float *u, int64_t n, int allow_simd) {
#ifdef LOOM_X86
    if (simd_allowed(allow_simd)) {
        swiglu_avx2(g, u, n);
        return;
    }
#endif
    swiglu_generic(g, u, n);
}

void loom_swiglu(float *g, const float *u, int64_t n) { loom_swiglu_path(g, u, n, 1); }

void loom_softmax_path(float *x, int64_t n, int allow_simd) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum;
#ifdef LOOM_X86
    if (simd_allowed(allow_simd)) sum = exp_sum_avx2(x, n, max);
    else
#endif
        sum = exp_sum_generic(x, n, max);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void loom_softmax(float *x, int64_t n) { loom_softmax_path(x, n, 1); }
