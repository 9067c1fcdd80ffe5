#ifndef LOOM_SHM_H
#define LOOM_SHM_H

// What Swift cannot do portably on memory shared between processes: C11
// atomics on words inside a mapping (Swift's own atomics live in Swift
// values, not at an address another process also maps), and futex waits and
// wakes that reach other processes (so never FUTEX_PRIVATE_FLAG). Every
// `word` must be naturally aligned and inside a MAP_SHARED mapping.

#include <stdint.h>

uint32_t loom_shm_load_acquire_u32(const void *word);
uint64_t loom_shm_load_acquire_u64(const void *word);
void loom_shm_store_release_u32(void *word, uint32_t value);
void loom_shm_store_release_u64(void *word, uint64_t value);
/// Sequentially consistent; returns the value before the addition.
uint32_t loom_shm_fetch_add_u32(void *word, uint32_t delta);
/// A sequentially consistent fence: orders a store before it against a load
/// after it, which release and acquire alone do not.
void loom_shm_fence(void);

/// Sleeps while `*word == expected`, for at most `timeout_ns` nanoseconds.
/// Returns 0 when woken (or spuriously), else ETIMEDOUT, EAGAIN (the word
/// had already changed), EINTR, or ENOSYS where there is no futex.
int loom_shm_futex_wait(void *word, uint32_t expected, int64_t timeout_ns);
/// Wakes every waiter on `word`; returns how many, or a negative errno.
int loom_shm_futex_wake_all(void *word);

#endif
