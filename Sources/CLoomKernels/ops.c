// Element-wise and attention kernels. Written as plain loops with several
// independent accumulators so -O3 vectorizes them without -ffast-math
// (which would change summation order unpredictably between builds).
#include "CLoomKernels.h"
#include <math.h>
#include <string.h>

static float f16_table[65536];
static int f16_table_ready = 0;

// Attention converts every cached half each step; a table lookup is several
// times faster than the bit-twiddling conversion on machines without F16C.
static void init_f16_table(void) {
    if (__atomic_load_n(&f16_table_ready, __ATOMIC_ACQUIRE)) return;
    for (uint32_t i = 0; i < 65536; i++) f16_table[i] = loom_f16_to_f32((uint16_t)i);
    __atomic_store_n(&f16_table_ready, 1, __ATOMIC_RELEASE);
}

float loom_dot_f32(const float *a, const float *b, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += a[i + k] * b[i + k];
    float sum = 0;
    for (; i < n; i++) sum += a[i] * b[i];
    for (int k = 0; k < 16; k++) sum += acc[k];
    return sum;
}

void loom_matmul_rows(int type, const void *w, int64_t row_bytes, int64_t cols,
                      const float *x, int64_t ldx, int64_t ntok,
                      float *y, int64_t ldy, int64_t row0, int64_t row1,
                      float *scratch, const float *sum_fix) {
    const uint8_t *base = (const uint8_t *)w;
    const int has_min = (type == LOOM_Q4_1 || type == LOOM_Q5_1) && sum_fix;
    const int64_t blocks = cols / 32, block_bytes = type == LOOM_Q4_1 ? 20 : 24;
    for (int64_t r = row0; r < row1; r++) {
        const uint8_t *src = base + r * row_bytes;
        const float *row = scratch;
        if (type == LOOM_F32) {
            row = (const float *)src;
        } else {
            loom_dequantize_row(type, src, scratch, cols);
        }
        for (int64_t t = 0; t < ntok; t++) {
            float sum = loom_dot_f32(row, x + t * ldx, cols);
            if (has_min) {
                const float *fix = sum_fix + t * blocks;
                for (int64_t b = 0; b < blocks; b++) {
                    uint16_t m;
                    memcpy(&m, src + b * block_bytes + 2, 2);
                    sum += loom_f16_to_f32(m) * fix[b];
                }
            }
            y[t * ldy + r] = sum;
        }
    }
}

void loom_rmsnorm(const float *x, const float *weight, float *out, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void loom_rope(float *x, int64_t nheads, int64_t head_dim, int64_t rope_dim,
               int64_t pos, float freq_base, float freq_scale, int neox,
               const float *freq_factors) {
    const int64_t half = rope_dim / 2;
    // Angles are built the way ggml builds them (float, one multiplication
    // per pair) because at long positions its rounding is visible in logits.
    const float theta_scale = powf(freq_base, -2.0f / (float)rope_dim);
    float theta_base = (float)pos;
    for (int64_t i = 0; i < half; i++, theta_base *= theta_scale) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float theta = freq_scale * (theta_base / ff);
        const float c = cosf(theta), s = sinf(theta);
        const int64_t a = neox ? i : 2 * i;
        const int64_t b = neox ? i + half : 2 * i + 1;
        for (int64_t h = 0; h < nheads; h++) {
            float *v = x + h * head_dim;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void loom_store_f16_path(uint16_t *dst, const float *src, int64_t n, int allow_simd) {
    if (allow_simd && loom_cpu_has_avx2()) {
        loom_store_f16_avx2(dst, src, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = loom_f32_to_f16(src[i]);
}

void loom_store_f16(uint16_t *dst, const float *src, int64_t n) { loom_store_f16_path(dst, src, n, 1); }

static inline const uint16_t *kv_at(const loom_kv_layout *kv, int64_t layer, const int32_t *table,
                                    int64_t pos, int value) {
    const int64_t block = table[pos / kv->block_size];
    const int64_t slot = pos % kv->block_size;
    return kv->base + block * kv->block_stride + layer * kv->layer_stride
        + (value ? kv->block_size * kv->kv_dim : 0) + slot * kv->kv_dim;
}

static float dot_f16(const float *q, const uint16_t *k, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] = fmaf(q[i + j], f16_table[k[i + j]], acc[j]);
    float sum = 0;
    for (; i < n; i++) sum = fmaf(q[i], f16_table[k[i]], sum);
    for (int j = 0; j < 8; j++) sum += acc[j];
    return sum;
}

// Heads [h0, h1) share KV head g: each key and value row is read once for
// all of them. llama.cpp multiplies f16 keys by the query rounded to f16, and
// f16 values by the attention weights rounded to f16; so do we.
static void attend_group(const float *q, const loom_kv_layout *kv, int64_t layer,
                         const int32_t *table, int64_t n_pos, int64_t h0, int64_t h1, int64_t g,
                         int64_t head_dim, float scale, float *scores, float *out) {
    const int64_t nh = h1 - h0;
    float qr[8 * 512];
    for (int64_t i = 0; i < nh; i++)
        for (int64_t d = 0; d < head_dim; d++)
            qr[i * head_dim + d] = f16_table[loom_f32_to_f16(q[(h0 + i) * head_dim + d])];
    for (int64_t p = 0; p < n_pos; p++) {
        const uint16_t *k = kv_at(kv, layer, table, p, 0) + g * head_dim;
        for (int64_t i = 0; i < nh; i++)
            scores[i * n_pos + p] = dot_f16(qr + i * head_dim, k, head_dim) * scale;
    }
    for (int64_t i = 0; i < nh; i++) {
        float *s = scores + i * n_pos;
        loom_softmax(s, n_pos);
        for (int64_t p = 0; p < n_pos; p++) s[p] = f16_table[loom_f32_to_f16(s[p])];
        memset(out + (h0 + i) * head_dim, 0, (size_t)head_dim * sizeof(float));
    }
    for (int64_t p = 0; p < n_pos; p++) {
        const uint16_t *v = kv_at(kv, layer, table, p, 1) + g * head_dim;
        for (int64_t i = 0; i < nh; i++) {
            float *oh = out + (h0 + i) * head_dim;
            const float w = scores[i * n_pos + p];
            for (int64_t d = 0; d < head_dim; d++) oh[d] = fmaf(w, f16_table[v[d]], oh[d]);
        }
    }
}

void loom_attention(const float *q, const loom_kv_layout *kv, int64_t layer,
                    const int32_t *block_table, int64_t n_pos,
                    int64_t head_begin, int64_t head_end,
                    int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                    float scale, float *scores, float *out) {
    loom_attention_path(q, kv, layer, block_table, n_pos, head_begin, head_end, n_heads, n_kv_heads,
                        head_dim, scale, scores, out, 1);
}

void loom_attention_path(const float *q, const loom_kv_layout *kv, int64_t layer,
                         const int32_t *block_table, int64_t n_pos,
                         int64_t head_begin, int64_t head_end,
                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                         float scale, float *scores, float *out, int allow_simd) {
    init_f16_table();
    const int simd = allow_simd && loom_cpu_has_avx2() && head_dim % 16 == 0 && head_dim <= 512;
    const int64_t group = n_heads / n_kv_heads;
    for (int64_t h = head_begin; h < head_end;) {
        const int64_t g = h / group;
        int64_t h1 = (g + 1) * group < head_end ? (g + 1) * group : head_end;
        if (h1 - h > 8) h1 = h + 8;  // qr holds 8 heads
        (simd ? loom_attend_group_avx2 : attend_group)(
            q, kv, layer, block_table, n_pos, h, h1, g, head_dim, scale, scores, out);
        h = h1;
    }
}
