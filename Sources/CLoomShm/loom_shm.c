#include "loom_shm.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// Another process operates on the same words, so the atomics must be
// lock-free: a lock-based fallback would take a lock that lives in this
// process only and protect nothing.
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free to work across processes");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to work across processes");
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8, "atomic words must have the plain layout");

uint32_t loom_shm_load_acquire_u32(const void *word) {
    return atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire);
}

uint64_t loom_shm_load_acquire_u64(const void *word) {
    return atomic_load_explicit((_Atomic uint64_t *)word, memory_order_acquire);
}

void loom_shm_store_release_u32(void *word, uint32_t value) {
    atomic_store_explicit((_Atomic uint32_t *)word, value, memory_order_release);
}

void loom_shm_store_release_u64(void *word, uint64_t value) {
    atomic_store_explicit((_Atomic uint64_t *)word, value, memory_order_release);
}

uint32_t loom_shm_fetch_add_u32(void *word, uint32_t delta) {
    return atomic_fetch_add_explicit((_Atomic uint32_t *)word, delta, memory_order_seq_cst);
}

void loom_shm_fence(void) {
    atomic_thread_fence(memory_order_seq_cst);
}

int loom_shm_futex_wait(void *word, uint32_t expected, int64_t timeout_ns) {
#if defined(__linux__)
    if (timeout_ns < 0) timeout_ns = 0;
    struct timespec timeout = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    // FUTEX_WAIT's timeout is relative, so a clock step cannot stretch it.
    long result = syscall(SYS_futex, word, FUTEX_WAIT, expected, &timeout, NULL, 0);
    return result == 0 ? 0 : errno;
#else
    (void)word; (void)expected; (void)timeout_ns;
    return ENOSYS;
#endif
}

int loom_shm_futex_wake_all(void *word) {
#if defined(__linux__)
    long result = syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    return result < 0 ? -errno : (int)result;
#else
    (void)word;
    return -ENOSYS;
#endif
}
