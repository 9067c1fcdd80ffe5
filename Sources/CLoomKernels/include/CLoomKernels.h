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

#ifndef CLOOM_KERNELS_OPS_H
#define CLOOM_KERNELS_OPS_H
#ifdef __cplusplus
extern "C" {
#endif

/* Dot product of two float vectors. */
float loom_dot_f32(const float *a, const float *b, int64_t n);

/* y[t * ldy + r] = dot(W[r], x[t * ldx]) for rows r in [row0, row1) and
   tokens t in [0, ntok). W rows are `cols` elements of `type`, `row_bytes`
   apart. `scratch` holds `cols` floats (one dequantized row). */
void loom_matmul_rows(int type, const void *w, int64_t row_bytes, int64_t cols,
                      const float *x, int64_t ldx, int64_t ntok,
                      float *y, int64_t ldy, int64_t row0, int64_t row1,
                      float *scratch, const float *sum_fix);

/* out = x / rms(x) * weight, over n elements. */
void loom_rmsnorm(const float *x, const float *weight, float *out, int64_t n, float eps);

/* Rotates `nheads` heads of `head_dim` at `x` for position `pos`. Only the
   first `rope_dim` dims of each head rotate. `neox` pairs dim i with
   i + rope_dim/2 (GPT-NeoX/Qwen); otherwise adjacent pairs (original llama).
   `freq_factors` (rope_dim/2 entries) divides each pair's frequency, or NULL. */
void loom_rope(float *x, int64_t nheads, int64_t head_dim, int64_t rope_dim,
               int64_t pos, float freq_base, float freq_scale, int neox,
               const float *freq_factors);

/* g[i] = silu(g[i]) * u[i] */
void loom_swiglu(float *g, const float *u, int64_t n);

/* In-place softmax; returns nothing. */
void loom_softmax(float *x, int64_t n);
/* e^x as exp.c computes it (within 2 ulp of expf; 0 below -86, inf above 88). */
float loom_expf(float x);
/* loom_swiglu and loom_softmax; `allow_simd` = 0 forces the portable path. */
void loom_swiglu_path(float *g, const float *u, int64_t n, int allow_simd);
void loom_softmax_path(float *x, int64_t n, int allow_simd);

/* Stores n floats as IEEE half. */
void loom_store_f16(uint16_t *dst, const float *src, int64_t n);
/* The same; `allow_simd` = 0 forces the portable path (for tests). */
void loom_store_f16_path(uint16_t *dst, const float *src, int64_t n, int allow_simd);
/* loom_store_f16's F16C path; call only when loom_cpu_has_avx2(). */
void loom_store_f16_avx2(uint16_t *dst, const float *src, int64_t n);

/* Geometry of a paged KV pool: `block_size` token slots per block; a block
   holds, for each layer, K then V, each block_size x kv_dim halves. */
typedef struct {
    uint16_t *base;
    int64_t block_stride;   /* halves per block */
    int64_t layer_stride;   /* halves per layer within a block */
    int64_t block_size;
    int64_t kv_dim;
} loom_kv_layout;

/* Attention for one query token: `q` holds n_heads x head_dim; keys and
   values are positions [0, n_pos) of one sequence in `layer`, found through
   `block_table`. Query head h reads KV head h / (n_heads / n_kv_heads).
   Heads sharing a KV head are done together, reading each KV row once, so
   `scores` holds n_pos x (n_heads / n_kv_heads) floats of scratch. Writes
   heads [head_begin, head_end) of head_dim floats each into out. */
void loom_attention(const float *q, const loom_kv_layout *kv, int64_t layer,
                    const int32_t *block_table, int64_t n_pos,
                    int64_t head_begin, int64_t head_end,
                    int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                    float scale, float *scores, float *out);
/* The same; `allow_simd` = 0 forces the portable path (for tests). */
void loom_attention_path(const float *q, const loom_kv_layout *kv, int64_t layer,
                         const int32_t *block_table, int64_t n_pos,
                         int64_t head_begin, int64_t head_end,
                         int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                         float scale, float *scores, float *out, int allow_simd);

#ifdef __cplusplus
}
#endif
#endif

#ifndef CLOOM_KERNELS_ACT_H
#define CLOOM_KERNELS_ACT_H
#ifdef __cplusplus
extern "C" {
#endif
/* Rounds activations the way llama.cpp's CPU backend does before a dot
   product with weights of `weight_type`: Q8_0 blocks for Q4_0/Q5_0/Q8_0,
   Q8_1 for Q4_1/Q5_1, Q8_K for K-quants, halves for F16, bfloat for BF16.
   Writes the dequantized result, so a float dot with dequantized weights
   gives llama.cpp's value up to summation order. For Q4_1/Q5_1, `sum_fix`
   (n / 32 floats, or NULL) receives each block's Q8_1 sum correction, which
   loom_matmul_rows adds times the weight block's min. */
void loom_round_activations(int weight_type, const float *x, float *out, int64_t n, float *sum_fix);
#ifdef __cplusplus
}
#endif
#endif

#ifndef CLOOM_KERNELS_QDOT_H
#define CLOOM_KERNELS_QDOT_H
#ifdef __cplusplus
extern "C" {
#endif
/* 32 activations quantized to int8: value j is qs[j] * d, where d is the
   half-rounded scale (kept as a float so kernels skip the conversion) and
   s = half(d * sum(qs)), the Q8_1 sum that types with a minimum need;
   `sum` is sum(qs) exactly, which the packed Q4_0 kernel subtracts 8 times. */
typedef struct {
    float d;
    float s;
    int8_t qs[32];
    int32_t sum;
} loom_q8_block;

/* 1 if loom_matmul_q8 handles weights of `type` (Q4_0, Q4_1, Q8_0). */
int loom_has_int_dot(int type);
int loom_cpu_has_avx2(void);

/* loom_attention's AVX2/F16C path for heads [h0, h1) (at most 8) of KV
   head g; call only when loom_cpu_has_avx2() and head_dim % 16 == 0. */
void loom_attend_group_avx2(const float *q, const loom_kv_layout *kv, int64_t layer,
                            const int32_t *table, int64_t n_pos, int64_t h0, int64_t h1, int64_t g,
                            int64_t head_dim, float scale, float *scores, float *out);

/* Quantizes n floats (a multiple of 32) the way loom_round_activations
   rounds them for Q4_0/Q4_1/Q8_0 weights. */
void loom_quantize_q8(const float *x, loom_q8_block *out, int64_t n);
/* The same; `allow_simd` = 0 forces the portable path (for tests). */
void loom_quantize_q8_path(const float *x, loom_q8_block *out, int64_t n, int allow_simd);

/* y[t * ldy + r] = W[r] . x[t] for rows [row0, row1) and tokens [0, ntok),
   with x[t] the cols/32 blocks at x + t * cols/32. `allow_simd` = 0 forces
   the portable path (tests compare the two). */
void loom_matmul_q8(int type, const void *w, int64_t row_bytes, int64_t cols,
                    const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                    int64_t row0, int64_t row1, int allow_simd);
/* Q4_0, Q4_1 and Q8_0 matrices re-laid out at load in groups of eight
   rows, for a kernel that computes eight rows per register (quant_gemm.c).
   The packed matrix has the same size as the original. 1 if `type` x rows
   x cols can be packed (rows a multiple of 8). */
int loom_can_pack(int type, int64_t rows, int64_t cols);
void loom_pack(int type, const void *w, int64_t rows, int64_t cols, void *out);
/* Row `row` of a packed matrix back in the source layout (row bytes of it). */
void loom_unpack_row(int type, const void *packed, int64_t cols, int64_t row, void *out);
/* y[t * ldy + r] = W[r] . x[t] like loom_matmul_q8, over packed weights;
   row0 and row1 are multiples of 8. Each row sums whole blocks exactly in
   integers, then accumulates d_w * d_x * sum (+ m_w * s_x) by FMA. */
void loom_matmul_packed(int type, const void *packed, int64_t cols,
                        const loom_q8_block *x, int64_t ntok, float *y, int64_t ldy,
                        int64_t row0, int64_t row1, int allow_simd);
#ifdef __cplusplus
}
#endif
#endif

#ifndef CLOOM_KERNELS_POOL_H
#define CLOOM_KERNELS_POOL_H
#ifdef __cplusplus
extern "C" {
#endif
/* A persistent thread pool: `threads` - 1 workers plus the calling thread. */
typedef struct loom_pool loom_pool;
typedef void (*loom_task_fn)(void *ctx, int64_t part);

loom_pool *loom_pool_create(int threads);
void loom_pool_destroy(loom_pool *pool);
int loom_pool_threads(const loom_pool *pool);

/* Calls fn(ctx, part) for every part in [0, parts) across the pool and
   returns when all have returned. Calls from several threads are serialized;
   a call from inside a part runs inline. */
void loom_pool_run(loom_pool *pool, loom_task_fn fn, void *ctx, int64_t parts);
#ifdef __cplusplus
}
#endif
#endif

#ifndef CLOOM_KERNELS_CRC32C_H
#define CLOOM_KERNELS_CRC32C_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* CRC-32C of `n` bytes, continuing from `crc` (0 to start). With
   allow_simd 0 the portable table is used, for testing the two agree. */
uint32_t loom_crc32c(uint32_t crc, const void *data, size_t n, int allow_simd);
#ifdef __cplusplus
}
#endif
#endif
