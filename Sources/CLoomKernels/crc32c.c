#include "CLoomKernels.h"
#include <string.h>

/* CRC-32C (Castagnoli), as iSCSI, ext4 and RocksDB use it: the SSE4.2
   instruction where the CPU has it (chosen at run time), a table otherwise.
   Both give the same value; the store checks every disk read with it. */

static uint32_t table[256];

/* Filled before main, so lookups from any thread never race its writes. */
__attribute__((constructor)) static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        table[i] = c;
    }
}

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc;
}

/* Multiplication modulo the polynomial, bit-reflected as the CRC is: the
   CRC of A followed by B is the CRC of A times x^(8|B|), plus the CRC of B
   (as zlib's crc32_combine). */
static uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
        if (a & bit) product ^= b;
        b = (b >> 1) ^ (0x82F63B78u & (0u - (b & 1u)));
    }
    return product;
}

/* x^(8n) modulo the polynomial, by squaring. */
static uint32_t x_to_8n(size_t n) {
    uint32_t result = 1u << 31, square = 1u << 23; /* x^0, x^8 */
    for (; n != 0; n >>= 1) {
        if (n & 1) result = multiply_mod_p(square, result);
        square = multiply_mod_p(square, square);
    }
    return result;
}

static uint32_t combine(uint32_t first, uint32_t second, size_t second_length) {
    return multiply_mod_p(x_to_8n(second_length), first) ^ second;
}

#if defined(__x86_64__)
/* The crc32 instruction takes three cycles and can start one per cycle,
   so three independent streams over three thirds of the buffer run three
   times as fast as one; the thirds are combined at the end. Below 3 KiB the
   combining costs more than it saves. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42_3way(uint32_t crc, const uint8_t *p, size_t n) {
    size_t third = (n / 3) & ~(size_t)7;
    const uint8_t *a = p, *b = p + third, *c = p + 2 * third;
    uint64_t ca = crc, cb = 0xFFFFFFFFu, cc = 0xFFFFFFFFu;
    for (size_t i = 0; i < third; i += 8) {
        uint64_t wa, wb, wc;
        memcpy(&wa, a + i, 8);
        memcpy(&wb, b + i, 8);
        memcpy(&wc, c + i, 8);
        ca = __builtin_ia32_crc32di(ca, wa);
        cb = __builtin_ia32_crc32di(cb, wb);
        cc = __builtin_ia32_crc32di(cc, wc);
    }
    /* Each stream as a finished CRC (inverted in, inverted out), so the
       thirds combine the way finished CRCs do. */
    uint32_t first = ~(uint32_t)ca, second = ~(uint32_t)cb, rest = ~(uint32_t)cc;
    uint32_t head = combine(combine(first, second, third), rest, third);
    return ~head;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t loom_crc32c(uint32_t crc, const void *data, size_t n, int allow_simd) {
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
#if defined(__x86_64__)
    if (allow_simd && __builtin_cpu_supports("sse4.2")) {
        if (n < 3072) return ~crc32c_sse42(crc, p, n);
        size_t done = 3 * ((n / 3) & ~(size_t)7);
        crc = crc32c_sse42_3way(crc, p, n);
        return ~crc32c_sse42(crc, p + done, n - done);
    }
#endif
    (void)allow_simd;
    return ~crc32c_table(crc, p, n);
}
