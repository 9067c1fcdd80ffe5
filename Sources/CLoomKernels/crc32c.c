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

#if defined(__x86_64__)
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
    if (allow_simd && __builtin_cpu_supports("sse4.2")) return ~crc32c_sse42(crc, p, n);
#endif
    (void)allow_simd;
    return ~crc32c_table(crc, p, n);
}
