#include "loom_verbs.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

_Static_assert((int)LOOM_VERBS_WC_SUCCESS == (int)IBV_WC_SUCCESS, "status mapping");
_Static_assert((int)LOOM_VERBS_WC_FLUSHED == (int)IBV_WC_WR_FLUSH_ERR, "status mapping");
_Static_assert((int)LOOM_VERBS_WC_REMOTE_ACCESS == (int)IBV_WC_REM_ACCESS_ERR, "status mapping");
_Static_assert((int)LOOM_VERBS_WC_RETRY_EXCEEDED == (int)IBV_WC_RETRY_EXC_ERR, "status mapping");
_Static_assert((int)LOOM_VERBS_WC_RNR_RETRY_EXCEEDED == (int)IBV_WC_RNR_RETRY_EXC_ERR, "status mapping");

struct loom_verbs {
    struct ibv_context *context;
    struct ibv_pd *pd;
    struct ibv_comp_channel *channel;
    struct ibv_cq *cq;
    loom_verbs_port port;
};

struct loom_verbs_qp {
    struct ibv_qp *qp;
    loom_verbs *verbs;
    uint32_t psn;
    int mtu;
};

// Verbs set errno but a few providers return the error instead; either way
// the caller gets a negative errno, never 0 for a failure.
static int failure(int result) {
    if (result > 0) return -result;
    return errno ? -errno : -EIO;
}

int loom_verbs_list(char *names, int capacity) {
    int count = 0;
    // NULL (not an empty list) when the kernel has no RDMA support at all.
    struct ibv_device **devices = ibv_get_device_list(&count);
    if (!devices) return 0;
    for (int i = 0; i < count && i < capacity; i++) {
        snprintf(names + i * LOOM_VERBS_NAME_LENGTH, LOOM_VERBS_NAME_LENGTH, "%s", ibv_get_device_name(devices[i]));
    }
    ibv_free_device_list(devices);
    return count;
}

static struct ibv_context *open_named(const char *name, char *error, size_t error_length) {
    int count = 0;
    struct ibv_device **devices = ibv_get_device_list(&count);
    struct ibv_context *context = NULL;
    for (int i = 0; devices && i < count && !context; i++) {
        if (name && strcmp(ibv_get_device_name(devices[i]), name) != 0) continue;
        context = ibv_open_device(devices[i]);
        if (!context) snprintf(error, error_length, "ibv_open_device(%s): %s", ibv_get_device_name(devices[i]), strerror(errno));
        break;
    }
    if (!context && !error[0]) {
        snprintf(error, error_length, "no RDMA device%s%s (ibv_get_device_list found %d)", name ? " named " : "", name ? name : "", count);
    }
    if (devices) ibv_free_device_list(devices);
    return context;
}

static int query_port(loom_verbs *verbs, uint8_t port_num, int gid_index, char *error, size_t error_length) {
    struct ibv_port_attr attr;
    if (ibv_query_port(verbs->context, port_num, &attr)) {
        int result = failure(0);
        snprintf(error, error_length, "ibv_query_port(%u): %s", port_num, strerror(-result));
        return result;
    }
    if (attr.state != IBV_PORT_ACTIVE) {
        snprintf(error, error_length, "port %u of %s is not active (state %d)", port_num, verbs->port.device, attr.state);
        return -ENETDOWN;
    }
    union ibv_gid gid;
    if (ibv_query_gid(verbs->context, port_num, gid_index, &gid)) {
        int result = failure(0);
        snprintf(error, error_length, "ibv_query_gid(port %u, index %d): %s", port_num, gid_index, strerror(-result));
        return result;
    }
    verbs->port.port_num = port_num;
    verbs->port.lid = attr.lid;
    memcpy(verbs->port.gid, gid.raw, 16);
    verbs->port.gid_index = gid_index;
    verbs->port.active_mtu = attr.active_mtu;
    verbs->port.is_ethernet = attr.link_layer == IBV_LINK_LAYER_ETHERNET;
    return 0;
}

static int create_queues(loom_verbs *verbs, int cq_depth, char *error, size_t error_length) {
    const char *step = NULL;
    if (!(verbs->pd = ibv_alloc_pd(verbs->context))) step = "ibv_alloc_pd";
    else if (!(verbs->channel = ibv_create_comp_channel(verbs->context))) step = "ibv_create_comp_channel";
    else if (!(verbs->cq = ibv_create_cq(verbs->context, cq_depth, NULL, verbs->channel, 0))) step = "ibv_create_cq";
    if (step) {
        int result = failure(0);
        snprintf(error, error_length, "%s on %s: %s", step, verbs->port.device, strerror(-result));
        return result;
    }
    // Non-blocking, so a wake-up another reader took cannot hang the poller,
    // and the progress thread can look for async events between polls.
    int fds[] = {verbs->channel->fd, verbs->context->async_fd};
    for (int i = 0; i < 2; i++) {
        int flags = fcntl(fds[i], F_GETFL);
        if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) < 0) return failure(0);
    }
    return 0;
}

int loom_verbs_open(const char *name, uint8_t port_num, int gid_index, int cq_depth,
                    loom_verbs **out, loom_verbs_port *port, char *error, size_t error_length) {
    error[0] = 0;
    loom_verbs *verbs = calloc(1, sizeof *verbs);
    if (!verbs) return -ENOMEM;
    verbs->context = open_named(name, error, error_length);
    if (!verbs->context) {
        free(verbs);
        return -ENODEV;
    }
    snprintf(verbs->port.device, sizeof verbs->port.device, "%s", ibv_get_device_name(verbs->context->device));
    int result = query_port(verbs, port_num, gid_index, error, error_length);
    if (result == 0) result = create_queues(verbs, cq_depth, error, error_length);
    if (result != 0) {
        loom_verbs_close(verbs);
        return result;
    }
    *port = verbs->port;
    *out = verbs;
    return 0;
}

void loom_verbs_close(loom_verbs *verbs) {
    if (verbs->cq) ibv_destroy_cq(verbs->cq);
    if (verbs->channel) ibv_destroy_comp_channel(verbs->channel);
    if (verbs->pd) ibv_dealloc_pd(verbs->pd);
    if (verbs->context) ibv_close_device(verbs->context);
    free(verbs);
}

int loom_verbs_create_qp(loom_verbs *verbs, int send_depth, int receive_depth, loom_verbs_qp **out) {
    loom_verbs_qp *qp = calloc(1, sizeof *qp);
    if (!qp) return -ENOMEM;
    struct ibv_qp_init_attr attr = {
        .send_cq = verbs->cq,
        .recv_cq = verbs->cq,
        .cap = {.max_send_wr = send_depth, .max_recv_wr = receive_depth, .max_send_sge = 1, .max_recv_sge = 1},
        .qp_type = IBV_QPT_RC,
    };
    qp->qp = ibv_create_qp(verbs->pd, &attr);
    if (!qp->qp) {
        int result = failure(0);
        free(qp);
        return result;
    }
    qp->verbs = verbs;
    qp->mtu = verbs->port.active_mtu;
    // A random start, so packets of an earlier incarnation of this QP
    // number are not taken for this one's.
    if (getrandom(&qp->psn, sizeof qp->psn, 0) != sizeof qp->psn) qp->psn = (uint32_t)(uintptr_t)qp;
    qp->psn &= 0xffffff;
    *out = qp;
    return 0;
}

void loom_verbs_destroy_qp(loom_verbs_qp *qp) {
    ibv_destroy_qp(qp->qp);
    free(qp);
}

uint32_t loom_verbs_qp_num(const loom_verbs_qp *qp) { return qp->qp->qp_num; }
uint32_t loom_verbs_qp_psn(const loom_verbs_qp *qp) { return qp->psn; }

static int modify(loom_verbs_qp *qp, struct ibv_qp_attr *attr, int mask) {
    int result = ibv_modify_qp(qp->qp, attr, mask);
    return result ? failure(result) : 0;
}

int loom_verbs_to_init(loom_verbs_qp *qp) {
    struct ibv_qp_attr attr = {
        .qp_state = IBV_QPS_INIT,
        .pkey_index = 0,
        .port_num = qp->verbs->port.port_num,
        .qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
    };
    return modify(qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

int loom_verbs_to_rtr(loom_verbs_qp *qp, const loom_verbs_remote *remote) {
    int mtu = remote->mtu > 0 && remote->mtu < qp->mtu ? remote->mtu : qp->mtu;
    struct ibv_qp_attr attr = {
        .qp_state = IBV_QPS_RTR,
        .path_mtu = (enum ibv_mtu)mtu,
        .dest_qp_num = remote->qp_num,
        .rq_psn = remote->psn,
        .max_dest_rd_atomic = 1,
        // 12: wait 0.64 ms before retrying a write that found no receive.
        .min_rnr_timer = 12,
        .ah_attr = {.dlid = remote->lid, .sl = 0, .port_num = qp->verbs->port.port_num},
    };
    static const uint8_t zero[16];
    if (qp->verbs->port.is_ethernet || memcmp(remote->gid, zero, 16) != 0) {
        attr.ah_attr.is_global = 1;
        memcpy(attr.ah_attr.grh.dgid.raw, remote->gid, 16);
        attr.ah_attr.grh.sgid_index = (uint8_t)qp->verbs->port.gid_index;
        attr.ah_attr.grh.hop_limit = 64;
    }
    return modify(qp, &attr, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
}

int loom_verbs_to_rts(loom_verbs_qp *qp) {
    struct ibv_qp_attr attr = {
        .qp_state = IBV_QPS_RTS,
        // 14: 4.096 us * 2^14 = 67 ms per try; with 7 retries a dead peer
        // surfaces as IBV_WC_RETRY_EXC_ERR after about half a second.
        .timeout = 14,
        .retry_cnt = 7,
        // 7 = retry forever when the peer has no receive posted: receives
        // are re-posted as immediates arrive, so that wait is short.
        .rnr_retry = 7,
        .sq_psn = qp->psn,
        .max_rd_atomic = 1,
    };
    return modify(qp, &attr, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                 IBV_QP_MAX_QP_RD_ATOMIC);
}

int loom_verbs_to_error(loom_verbs_qp *qp) {
    struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
    return modify(qp, &attr, IBV_QP_STATE);
}

int loom_verbs_to_reset(loom_verbs_qp *qp) {
    struct ibv_qp_attr attr = {.qp_state = IBV_QPS_RESET};
    return modify(qp, &attr, IBV_QP_STATE);
}

int loom_verbs_register(loom_verbs *verbs, void *address, size_t length, int remote_write,
                        void **registration, uint32_t *lkey, uint32_t *rkey) {
    int access = IBV_ACCESS_LOCAL_WRITE | (remote_write ? IBV_ACCESS_REMOTE_WRITE : 0);
    struct ibv_mr *mr = ibv_reg_mr(verbs->pd, address, length, access);
    if (!mr) return failure(0);
    *registration = mr;
    *lkey = mr->lkey;
    *rkey = mr->rkey;
    return 0;
}

int loom_verbs_deregister(void *registration) {
    int result = ibv_dereg_mr(registration);
    return result ? failure(result) : 0;
}

int loom_verbs_post_write(loom_verbs_qp *qp, uint64_t wr_id, const void *local, uint32_t length, uint32_t lkey,
                          uint64_t remote_address, uint32_t rkey, int with_imm, uint32_t imm_data) {
    struct ibv_sge sge = {.addr = (uintptr_t)local, .length = length, .lkey = lkey};
    struct ibv_send_wr wr = {
        .wr_id = wr_id,
        .sg_list = length ? &sge : NULL,
        .num_sge = length ? 1 : 0,
        .opcode = with_imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE,
        // Every write is signalled: its completion is how Swift learns
        // that the send-queue slot and the source buffer are free again.
        .send_flags = IBV_SEND_SIGNALED,
        .imm_data = htobe32(imm_data),
        .wr.rdma = {.remote_addr = remote_address, .rkey = rkey},
    };
    struct ibv_send_wr *bad = NULL;
    int result = ibv_post_send(qp->qp, &wr, &bad);
    return result ? -result : 0;
}

int loom_verbs_post_receives(loom_verbs_qp *qp, uint64_t wr_id, int count) {
    for (int i = 0; i < count; i++) {
        struct ibv_recv_wr wr = {.wr_id = wr_id, .sg_list = NULL, .num_sge = 0};
        struct ibv_recv_wr *bad = NULL;
        int result = ibv_post_recv(qp->qp, &wr, &bad);
        if (result) return -result;
    }
    return 0;
}

static int drain(loom_verbs *verbs, loom_verbs_completion *out, int capacity) {
    struct ibv_wc wc[32];
    int want = capacity < 32 ? capacity : 32;
    int count = ibv_poll_cq(verbs->cq, want, wc);
    if (count < 0) return -EIO;
    for (int i = 0; i < count; i++) {
        out[i] = (loom_verbs_completion){
            .wr_id = wc[i].wr_id,
            .qp_num = wc[i].qp_num,
            .status = wc[i].status,
            .vendor_err = wc[i].vendor_err,
        };
        if (wc[i].status != IBV_WC_SUCCESS) continue;
        out[i].byte_len = wc[i].byte_len;
        if (wc[i].opcode == IBV_WC_RECV_RDMA_WITH_IMM && (wc[i].wc_flags & IBV_WC_WITH_IMM)) {
            out[i].is_receive_with_imm = 1;
            out[i].imm_data = be32toh(wc[i].imm_data);
        }
    }
    return count;
}

int loom_verbs_poll(loom_verbs *verbs, loom_verbs_completion *out, int capacity, int timeout_ms) {
    int count = drain(verbs, out, capacity);
    if (count != 0 || timeout_ms <= 0) return count;
    if (ibv_req_notify_cq(verbs->cq, 0)) return -EIO;
    // A completion that arrived before the notification was armed raises
    // no event: look once more before sleeping.
    if ((count = drain(verbs, out, capacity)) != 0) return count;
    struct pollfd fd = {.fd = verbs->channel->fd, .events = POLLIN};
    int ready = poll(&fd, 1, timeout_ms);
    if (ready < 0) return errno == EINTR ? 0 : -errno;
    if (ready == 0) return 0;
    struct ibv_cq *cq = NULL;
    void *context = NULL;
    if (ibv_get_cq_event(verbs->channel, &cq, &context) == 0) ibv_ack_cq_events(cq, 1);
    return drain(verbs, out, capacity);
}

const char *loom_verbs_status_string(int status) { return ibv_wc_status_str((enum ibv_wc_status)status); }

static int event_kind(enum ibv_event_type type) {
    switch (type) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
        return LOOM_VERBS_EVENT_QP_FAILED;
    case IBV_EVENT_PORT_ERR:
        return LOOM_VERBS_EVENT_PORT_DOWN;
    case IBV_EVENT_PORT_ACTIVE:
        return LOOM_VERBS_EVENT_PORT_UP;
    case IBV_EVENT_DEVICE_FATAL:
        return LOOM_VERBS_EVENT_DEVICE_FAILED;
    default:
        return LOOM_VERBS_EVENT_OTHER;
    }
}

int loom_verbs_next_event(loom_verbs *verbs, loom_verbs_event *out) {
    struct ibv_async_event event;
    if (ibv_get_async_event(verbs->context, &event)) return errno == EAGAIN ? 0 : failure(0);
    memset(out, 0, sizeof *out);
    out->kind = event_kind(event.event_type);
    if (out->kind == LOOM_VERBS_EVENT_QP_FAILED) out->qp_num = event.element.qp->qp_num;
    if (out->kind == LOOM_VERBS_EVENT_PORT_DOWN || out->kind == LOOM_VERBS_EVENT_PORT_UP) out->port_num = (uint8_t)event.element.port_num;
    snprintf(out->name, sizeof out->name, "%s", ibv_event_type_str(event.event_type));
    // Every event must be acknowledged, or destroying its QP blocks forever.
    ibv_ack_async_event(&event);
    return 1;
}
