#ifndef LOOM_VERBS_H
#define LOOM_VERBS_H

// A thin layer over libibverbs for Loom's `verbs` transfer backend: one
// device context with its protection domain and one completion queue, RC
// queue pairs, memory registration, RDMA WRITE (WITH IMM) and receives for
// immediates, and completion polling. It exists because the verbs data path
// (ibv_post_send, ibv_poll_cq) is inline calls through ops tables and the
// work-request structs are nests of unions that Swift imports poorly. All
// policy (state transitions, accounting, retries) lives in Swift.
//
// Errors are errno values, negated. Never run on RDMA hardware: the
// machines this was written on have none.

#include <stddef.h>
#include <stdint.h>

enum { LOOM_VERBS_NAME_LENGTH = 64 };

typedef struct loom_verbs loom_verbs;
typedef struct loom_verbs_qp loom_verbs_qp;

/// The local port, as a peer needs it to address us.
typedef struct loom_verbs_port {
    char device[LOOM_VERBS_NAME_LENGTH];
    uint8_t port_num;
    uint16_t lid;
    /// The GID at `gid_index`; all zero on InfiniBand without a GRH.
    uint8_t gid[16];
    int gid_index;
    /// An `enum ibv_mtu` value (1 = 256 bytes ... 5 = 4096).
    int active_mtu;
    /// RoCE (Ethernet link layer): every packet needs a GRH, so peers are
    /// addressed by GID, never by LID.
    int is_ethernet;
} loom_verbs_port;

/// What moving a queue pair to RTR needs to know about the peer's.
typedef struct loom_verbs_remote {
    uint32_t qp_num;
    uint32_t psn;
    uint16_t lid;
    uint8_t gid[16];
    int mtu;
} loom_verbs_remote;

typedef struct loom_verbs_completion {
    uint64_t wr_id;
    uint32_t qp_num;
    /// An `enum ibv_wc_status`; when not IBV_WC_SUCCESS, only wr_id, qp_num
    /// and vendor_err are meaningful.
    int status;
    int is_receive_with_imm;
    /// The peer's immediate in host byte order (on a receive with imm).
    uint32_t imm_data;
    uint32_t byte_len;
    uint32_t vendor_err;
} loom_verbs_completion;

/// Names of the RDMA devices present, at most `capacity` of them, each in
/// LOOM_VERBS_NAME_LENGTH bytes of `names`; returns how many exist (0 when
/// there is no device or no kernel RDMA support).
int loom_verbs_list(char *names, int capacity);

/// Opens `name` (NULL: the first device), queries `port_num` and the GID at
/// `gid_index`, and creates a protection domain and a completion queue of
/// `cq_depth` entries with a completion channel to wait on.
int loom_verbs_open(const char *name, uint8_t port_num, int gid_index, int cq_depth,
                    loom_verbs **out, loom_verbs_port *port, char *error, size_t error_length);
void loom_verbs_close(loom_verbs *verbs);

/// Creates an RC queue pair in RESET on the device's completion queue,
/// with a random 24-bit starting PSN.
int loom_verbs_create_qp(loom_verbs *verbs, int send_depth, int receive_depth, loom_verbs_qp **out);
void loom_verbs_destroy_qp(loom_verbs_qp *qp);
uint32_t loom_verbs_qp_num(const loom_verbs_qp *qp);
uint32_t loom_verbs_qp_psn(const loom_verbs_qp *qp);

int loom_verbs_to_init(loom_verbs_qp *qp);
int loom_verbs_to_rtr(loom_verbs_qp *qp, const loom_verbs_remote *remote);
int loom_verbs_to_rts(loom_verbs_qp *qp);
int loom_verbs_to_error(loom_verbs_qp *qp);
int loom_verbs_to_reset(loom_verbs_qp *qp);

/// Registers memory for local use (a write's source), and with
/// `remote_write` for peers' RDMA WRITEs into it.
int loom_verbs_register(loom_verbs *verbs, void *address, size_t length, int remote_write,
                        void **registration, uint32_t *lkey, uint32_t *rkey);
int loom_verbs_deregister(void *registration);

/// Posts one signalled RDMA WRITE, or RDMA WRITE WITH IMM when `with_imm`.
/// `length` 0 sends no bytes (an immediate alone). Returns -ENOMEM when the
/// send queue is full.
int loom_verbs_post_write(loom_verbs_qp *qp, uint64_t wr_id, const void *local, uint32_t length, uint32_t lkey,
                          uint64_t remote_address, uint32_t rkey, int with_imm, uint32_t imm_data);

/// Posts `count` zero-length receives, each consumed by one incoming
/// RDMA WRITE WITH IMM, all with `wr_id`.
int loom_verbs_post_receives(loom_verbs_qp *qp, uint64_t wr_id, int count);

/// Reads up to `capacity` completions; when there are none, waits up to
/// `timeout_ms` on the completion channel. Returns how many, or -errno.
int loom_verbs_poll(loom_verbs *verbs, loom_verbs_completion *out, int capacity, int timeout_ms);

const char *loom_verbs_status_string(int status);

/// What an asynchronous event concerns, as Loom acts on it.
enum {
    /// One queue pair broke outside any work request (`qp_num`).
    LOOM_VERBS_EVENT_QP_FAILED = 1,
    LOOM_VERBS_EVENT_PORT_DOWN = 2,
    LOOM_VERBS_EVENT_PORT_UP = 3,
    /// The whole device is gone; nothing on it works again.
    LOOM_VERBS_EVENT_DEVICE_FAILED = 4,
    /// Informational (path migration, SRQ limits, ...): nothing to do.
    LOOM_VERBS_EVENT_OTHER = 5,
};

typedef struct loom_verbs_event {
    int kind;
    uint32_t qp_num;
    uint8_t port_num;
    /// ibv_event_type_str's name, for logs and errors.
    char name[48];
} loom_verbs_event;

/// Takes one pending asynchronous event without blocking: 1 when one was
/// read into `out`, 0 when none is pending, or -errno.
int loom_verbs_next_event(loom_verbs *verbs, loom_verbs_event *out);

/// The status values Swift maps by name.
enum {
    LOOM_VERBS_WC_SUCCESS = 0,
    LOOM_VERBS_WC_FLUSHED = 5,
    LOOM_VERBS_WC_REMOTE_ACCESS = 10,
    LOOM_VERBS_WC_RETRY_EXCEEDED = 12,
    LOOM_VERBS_WC_RNR_RETRY_EXCEEDED = 13,
};

#endif
