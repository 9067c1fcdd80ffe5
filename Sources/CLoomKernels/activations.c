// Activation rounding matching ggml's vec_dot_type conversions, so Loom's
// logits agree with llama.cpp's to well within the fidelity tolerance.
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

// Q8_0 and Q8_1 per 32 values: d = amax / 127, values x * (1 / d) rounded
// half-to-even and scaled back by d stored as a half. Q8_1 also keeps
// s = half(d * sum(q)), which ggml multiplies by the weight block's min;
// `sum_fix` receives s - half(d) * sum(q) per block, the amount by which a
// plain dot with the rounded values misses that term.
static void round_q8_0(const float *x, float *out, int64_t n, float *sum_fix) {
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b + j]));
        const float d = amax / 127.f;
        const float id = d != 0 ? 1.f / d : 0;
        const float d16 = loom_f16_to_f32(loom_f32_to_f16(d));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const float q = nearbyintf(x[b + j] * id);
            sum += (int)q;
            out[b + j] = q * d16;
        }
        if (sum_fix) sum_fix[b / 32] = loom_f16_to_f32(loom_f32_to_f16(d * (float)sum)) - d16 * (float)sum;
    }
}

// Q8_K per 256 values: the scale comes from the signed value of largest
// magnitude and stays a float.
static void round_q8_K(const float *x, float *out, int64_t n) {
    for (int64_t b = 0; b < n; b += 256) {
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++) {
            const float ax = fabsf(x[b + j]);
            if (ax > amax) { amax = ax; max = x[b + j]; }
        }
        if (amax == 0) {
            memset(out + b, 0, 256 * sizeof(float));
            continue;
        }
        const float iscale = -127.f / max;
        const float d = 1 / iscale;
        for (int j = 0; j < 256; j++) {
            float v = nearbyintf(iscale * x[b + j]);
            out[b + j] = (v > 127 ? 127 : v) * d;
        }
    }
}

static void round_bf16(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            bits |= 0x00400000;  // keep NaN a NaN
        } else {
            bits += 0x7fff + ((bits >> 16) & 1);
        }
        bits &= 0xffff0000u;
        memcpy(out + i, &bits, 4);
    }
}

void loom_round_activations(int weight_type, const float *x, float *out, int64_t n, float *sum_fix) {
    switch (weight_type) {
    case LOOM_Q4_0: case LOOM_Q5_0: case LOOM_Q8_0:
        round_q8_0(x, out, n, NULL);
        return;
    case LOOM_Q4_1: case LOOM_Q5_1:
        round_q8_0(x, out, n, sum_fix);
        return;
    case LOOM_Q4_K: case LOOM_Q5_K: case LOOM_Q6_K:
        round_q8_K(x, out, n);
        return;
    case LOOM_F16:
        for (int64_t i = 0; i < n; i++) out[i] = loom_f16_to_f32(loom_f32_to_f16(x[i]));
        return;
    case LOOM_BF16:
        round_bf16(x, out, n);
        return;
    default:
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    }
}
