// A persistent pool of worker threads with a run-to-completion barrier.
// Threads are created once; each op only bumps a generation counter. Workers
// spin briefly between ops (a forward pass issues hundreds of ops per token,
// microseconds apart, and a futex wake-up costs as much as a small matmul)
// then sleep on a condition variable so an idle pool burns no CPU.
#include "CLoomKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_ITERATIONS 20000

struct loom_pool {
    int workers;                 // threads besides the caller
    pthread_t *threads;
    pthread_mutex_t run_lock;    // one op at a time, whoever calls
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    // The op in flight: written by the caller before `ticket` moves to a new
    // generation (release). A worker reads them only after claiming a part
    // of that generation, and the caller cannot move on while a claimed part
    // is unfinished, so a worker that wakes late never sees a torn op.
    // The part count lives in the ticket itself: a late worker that compared
    // an old generation's exhausted counter against a new op's count could
    // otherwise claim a part that does not exist.
    loom_task_fn fn;
    void *ctx;
    uint64_t ticket;             // atomic: generation << 32 | parts << 16 | next part
    int64_t done;                // atomic: parts finished this generation
    int stop;                    // atomic
};

// A body that itself calls the pool runs its inner op inline: the workers
// are all busy with the outer op, and waiting for them would deadlock.
static __thread int inside_pool = 0;

// Claims parts of generation `gen` until none are left or the generation
// is over (a worker that woke late finds the ticket moved on and stops).
static void run_parts(struct loom_pool *p, uint64_t gen) {
    uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        const uint64_t part = t & 0xffff, parts = (t >> 16) & 0xffff;
        if (t >> 32 != gen || part >= parts) return;
        if (!__atomic_compare_exchange_n(&p->ticket, &t, t + 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        p->fn(p->ctx, (int64_t)part);
        __atomic_fetch_add(&p->done, 1, __ATOMIC_RELEASE);
        t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    }
}

static uint64_t await_generation(struct loom_pool *p, uint64_t seen) {
    for (int i = 0; i < SPIN_ITERATIONS; i++) {
        const uint64_t g = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE) >> 32;
        if (g != seen || __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return g;
        CPU_RELAX();
    }
    pthread_mutex_lock(&p->sleep_lock);
    uint64_t g;
    while ((g = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE) >> 32) == seen && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->wake, &p->sleep_lock);
    pthread_mutex_unlock(&p->sleep_lock);
    return g;
}

static void *worker_main(void *arg) {
    struct loom_pool *p = arg;
    inside_pool = 1;
    uint64_t seen = 0;
    for (;;) {
        seen = await_generation(p, seen);
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
        run_parts(p, seen);
    }
}

loom_pool *loom_pool_create(int threads) {
    struct loom_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->workers = threads > 1 ? threads - 1 : 0;
    p->threads = calloc((size_t)(p->workers ? p->workers : 1), sizeof(pthread_t));
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->sleep_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < p->workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            p->workers = i;  // run with the threads we got
            break;
        }
    }
    return p;
}

void loom_pool_destroy(loom_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->sleep_lock);
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->sleep_lock);
    for (int i = 0; i < p->workers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->sleep_lock);
    pthread_mutex_destroy(&p->run_lock);
    free(p->threads);
    free(p);
}

int loom_pool_threads(const loom_pool *p) { return p->workers + 1; }

void loom_pool_run(loom_pool *p, loom_task_fn fn, void *ctx, int64_t parts) {
    if (parts <= 0) return;
    // Part counts past the ticket's 16 bits run inline; callers split work
    // into a few slices per thread, far below that.
    if (inside_pool || p->workers == 0 || parts == 1 || parts > 0xffff) {
        for (int64_t i = 0; i < parts; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    p->fn = fn;
    p->ctx = ctx;
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    const uint64_t gen = (__atomic_load_n(&p->ticket, __ATOMIC_RELAXED) >> 32) + 1;
    pthread_mutex_lock(&p->sleep_lock);
    __atomic_store_n(&p->ticket, gen << 32 | (uint64_t)parts << 16, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->sleep_lock);
    inside_pool = 1;
    run_parts(p, gen);
    inside_pool = 0;
    // Only parts a worker claimed and has not finished are waited for; on a
    // machine shared with other work that worker may be descheduled, so
    // after a short spin yield the core to it rather than burn it.
    for (int i = 0; __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < parts; i++) {
        if (i < SPIN_ITERATIONS) CPU_RELAX(); else sched_yield();
    }
    pthread_mutex_unlock(&p->run_lock);
}
