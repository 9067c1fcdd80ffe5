// e^x, and the two kernels built on it (SwiGLU and softmax), with one
// algorithm for the scalar and the AVX2 path so both give the same bits:
// glibc's expf cannot be vectorized, and calling it per element made these
// loops a tenth of a decode step. The work is done in double and rounded to
// float once, which makes the result the correctly rounded e^x in all but
// rare cases, as glibc's is. That matters: attention rounds its softmax
// weights to halves, so a float exp off by an ulp or two flips some of those
// roundings, and a first version in float arithmetic (within 2 ulp) moved
// the worst logprob of the llama.cpp fidelity test from 0.34 to 0.52.
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define LOOM_X86 1
#endif

#define LOG2E 1.4426950408889634
#define LN2 0.6931471805599453
// e^x underflows a float below -104 and overflows above 89; between them
// 2^n is a normal double and the final rounding gives denormals and inf.
#define EXP_LOW -104.0f
#define EXP_HIGH 89.0f
// Taylor coefficients 1/8! ... 1/0! of e^r for |r| <= ln2 / 2: the first
// omitted term is under 3e-10 relative, far below a float's half ulp.
static const double exp_poly[9] = {
    1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0,
};

float loom_expf(float x) {
    if (x != x) return x;
    if (x < EXP_LOW) return 0;
    if (x > EXP_HIGH) return INFINITY;
    const double n = nearbyint((double)x * LOG2E);
    const double r = fma(n, -LN2, (double)x);
    double p = exp_poly[0];
    for (int i = 1; i < 9; i++) p = fma(p, r, exp_poly[i]);
    const uint64_t bits = (uint64_t)((int64_t)n + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, 8);
    return (float)(p * scale);
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

// Four lanes of loom_expf's double arithmetic. 2^n is built from n's bits:
// adding 1.5 * 2^52 leaves n as the low bits of the double.
AVX2 static inline __m256d exp4(__m256d x) {
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d r = _mm256_fmadd_pd(n, _mm256_set1_pd(-LN2), x);
    __m256d p = _mm256_set1_pd(exp_poly[0]);
    for (int i = 1; i < 9; i++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(exp_poly[i]));
    const __m256i k = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(k, _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
}

AVX2 static inline __m256 exp8(__m256 x) {
    // Clamped lanes compute garbage safely and are replaced below.
    const __m256 safe = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LOW)), _mm256_set1_ps(EXP_HIGH));
    const __m128 low = _mm256_cvtpd_ps(exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(safe))));
    const __m128 high = _mm256_cvtpd_ps(exp4(_mm256_cvtps_pd(_mm256_extractf128_ps(safe, 1))));
    __m256 out = _mm256_insertf128_ps(_mm256_castps128_ps256(low), high, 1);
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
