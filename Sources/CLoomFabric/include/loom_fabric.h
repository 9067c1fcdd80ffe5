#ifndef LOOM_FABRIC_H
#define LOOM_FABRIC_H

// A thin layer over libfabric for Loom's `fabric` transfer backend: one RDM
// endpoint with its address vector and completion queue, memory
// registration, RMA writes with remote completion data, and completion
// polling. It exists because libfabric's API is macros and inline calls
// through ops tables, and because the provider's per-operation context
// (FI_CONTEXT2) is easiest to manage here. All policy lives in Swift.

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct loom_fabric loom_fabric;

typedef struct loom_fabric_caps {
    char provider[64];
    char fabric[128];
    char domain[64];
    uint64_t mr_mode;
    /// Remote writes name a registration's bytes by virtual address, not offset.
    int virt_addr;
    /// Local buffers must be registered before a write reads them (FI_MR_LOCAL).
    int local_mr;
    /// Writes to one peer are placed in the order they were posted (WAW).
    int ordered_writes;
    size_t cq_data_size;
    size_t tx_size;
    /// Segments one write may gather: the smaller of the provider's iov
    /// limits, at most 8.
    size_t max_segments;
    /// A write to a dead peer or a closed registration gets no completion
    /// at all (shm): callers must time writes out themselves.
    int silent_failures;
    /// A write of no bytes that asks for delivery completion completes
    /// (not on shm, where the target sees it but the writer never hears).
    int empty_writes_complete;
} loom_fabric_caps;

typedef struct loom_fabric_completion {
    /// The token passed to loom_fabric_write; 0 for a peer's remote write.
    uint64_t token;
    uint64_t data;
    /// A peer's write carrying completion data landed in our memory.
    int remote_data;
    /// 0, or the positive libfabric error of a failed operation.
    int error;
    int prov_errno;
} loom_fabric_completion;

enum {
    LOOM_FABRIC_WITH_DATA = 1,
    LOOM_FABRIC_DELIVERY_COMPLETE = 2,
};

/// Opens an RDM endpoint of `provider` bound to `node` (an address of this
/// host; NULL lets the provider choose). Returns 0 or a negative libfabric
/// error, with a message in `error`.
int loom_fabric_open(const char *provider, const char *node, loom_fabric **out,
                     loom_fabric_caps *caps, char *error, size_t error_length);
void loom_fabric_close(loom_fabric *fabric);

/// Our endpoint's address; `length` in: capacity, out: size.
int loom_fabric_address(loom_fabric *fabric, void *buffer, size_t *length);
int loom_fabric_insert_peer(loom_fabric *fabric, const void *address, uint64_t *peer);
int loom_fabric_remove_peer(loom_fabric *fabric, uint64_t peer);

/// Registers memory. `remote_write` allows peers to write into it; otherwise
/// it is registered for local use as a write's source.
int loom_fabric_register(loom_fabric *fabric, void *buffer, size_t length, int remote_write,
                         uint64_t requested_key, void **registration, uint64_t *key, void **descriptor);
void loom_fabric_deregister(void *registration);

/// One piece of a write: local bytes and where they go.
typedef struct loom_fabric_segment {
    const void *buffer;
    size_t length;
    /// The local registration's descriptor, or NULL.
    void *descriptor;
    uint64_t remote_address;
    uint64_t key;
} loom_fabric_segment;

/// Posts one RMA write of up to `max_segments` (see caps) segments to one
/// peer, completed as one. Returns 0, -FI_EAGAIN when the send queue is
/// full (progress and retry), or another negative error.
ssize_t loom_fabric_write(loom_fabric *fabric, const loom_fabric_segment *segments, size_t count,
                          uint64_t peer, uint64_t data, int flags, uint64_t token);

/// Reads up to `count` completions, waiting up to `timeout_ms` when the
/// completion queue supports waiting. Failed operations come back as
/// completions with `error` set. Returns the number read or a negative error.
ssize_t loom_fabric_poll(loom_fabric *fabric, loom_fabric_completion *out, size_t count, int timeout_ms);

const char *loom_fabric_strerror(int error);
int loom_fabric_eagain(void);

#endif
