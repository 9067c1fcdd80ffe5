#include "loom_fabric.h"

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef LOOM_FABRIC_POLL_SPIN_US
#define LOOM_FABRIC_POLL_SPIN_US 20
#endif
#ifndef LOOM_FABRIC_POLL_MAX_SLEEP_NS
#define LOOM_FABRIC_POLL_MAX_SLEEP_NS 1000000
#endif

struct loom_fabric {
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_cq *cq;
    struct fid_av *av;
    struct fid_ep *ep;
    int cq_waits;
    // shm: a write completes at the writer before its bytes are placed
    // unless it asks for delivery completion, so every write asks for it.
    int force_delivery;
};

// The provider's scratch space for one operation (FI_CONTEXT2 mode), then
// the caller's token; freed when the operation's completion is read.
typedef struct loom_op {
    struct fi_context2 context;
    uint64_t token;
} loom_op;

static struct fi_info *query(const char *provider, const char *node, uint64_t order, int *result) {
    struct fi_info *hints = fi_allocinfo();
    if (!hints) {
        *result = -FI_ENOMEM;
        return NULL;
    }
    hints->caps = FI_RMA | FI_WRITE | FI_REMOTE_WRITE;
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    hints->ep_attr->type = FI_EP_RDM;
    // Every mode Loom can live with; the provider keeps the ones it needs.
    hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_SAFE;
    hints->tx_attr->msg_order = order;
    hints->rx_attr->msg_order = order;
    hints->fabric_attr->prov_name = strdup(provider);
    struct fi_info *info = NULL;
    *result = fi_getinfo(FI_VERSION(1, 9), node, node ? "0" : NULL, node ? FI_SOURCE : 0, hints, &info);
    fi_freeinfo(hints);
    return *result == 0 ? info : NULL;
}

static int fail(loom_fabric *fabric, int result, const char *step, char *error, size_t error_length) {
    snprintf(error, error_length, "%s: %s", step, fi_strerror(-result));
    loom_fabric_close(fabric);
    return result;
}

int loom_fabric_open(const char *provider, const char *node, loom_fabric **out,
                     loom_fabric_caps *caps, char *error, size_t error_length) {
    loom_fabric *fabric = calloc(1, sizeof *fabric);
    if (!fabric) return -FI_ENOMEM;
    int result = 0;
    // shm has no network address: a node names its endpoint's region, so
    // two processes given the same host would collide (EBUSY at fi_enable).
    if (strcmp(provider, "shm") == 0) node = NULL;
    // Ask for write-after-write ordering first: with it the immediate can
    // ride on a write's last segment instead of waiting for the others.
    fabric->info = query(provider, node, FI_ORDER_RMA_WAW | FI_ORDER_WAW, &result);
    if (!fabric->info) fabric->info = query(provider, node, 0, &result);
    if (!fabric->info) {
        snprintf(error, error_length, "no RDM endpoint with remote writes from provider \"%s\"%s%s: %s",
                 provider, node ? " on " : "", node ? node : "", fi_strerror(-result));
        free(fabric);
        return result;
    }
    struct fi_info *info = fabric->info;
    if ((result = fi_fabric(info->fabric_attr, &fabric->fabric, NULL))) return fail(fabric, result, "fi_fabric", error, error_length);
    if ((result = fi_domain(fabric->fabric, info, &fabric->domain, NULL))) return fail(fabric, result, "fi_domain", error, error_length);
    struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_DATA, .wait_obj = FI_WAIT_UNSPEC};
    if (fi_cq_open(fabric->domain, &cq_attr, &fabric->cq, NULL) == 0) {
        fabric->cq_waits = 1;
        // shm turns FI_WAIT_UNSPEC into FI_WAIT_YIELD, whose fi_cq_sread
        // (libfabric 1.17) spins in sched_yield and ignores its timeout: it
        // returns only when a completion arrives. Poll such a queue instead,
        // and shm's whatever it reports (a version that no longer writes
        // the wait object back would otherwise hang every close).
        if (cq_attr.wait_obj == FI_WAIT_YIELD || strcmp(info->fabric_attr->prov_name, "shm") == 0) {
            fi_close(&fabric->cq->fid);
            fabric->cq = NULL;
            fabric->cq_waits = 0;
            cq_attr.wait_obj = FI_WAIT_NONE;
            if ((result = fi_cq_open(fabric->domain, &cq_attr, &fabric->cq, NULL))) return fail(fabric, result, "fi_cq_open", error, error_length);
        }
    } else {
        cq_attr.wait_obj = FI_WAIT_NONE;
        if ((result = fi_cq_open(fabric->domain, &cq_attr, &fabric->cq, NULL))) return fail(fabric, result, "fi_cq_open", error, error_length);
    }
    struct fi_av_attr av_attr = {.type = info->domain_attr->av_type};
    if ((result = fi_av_open(fabric->domain, &av_attr, &fabric->av, NULL))) return fail(fabric, result, "fi_av_open", error, error_length);
    if ((result = fi_endpoint(fabric->domain, info, &fabric->ep, NULL))) return fail(fabric, result, "fi_endpoint", error, error_length);
    if ((result = fi_ep_bind(fabric->ep, &fabric->av->fid, 0))) return fail(fabric, result, "fi_ep_bind(av)", error, error_length);
    if ((result = fi_ep_bind(fabric->ep, &fabric->cq->fid, FI_TRANSMIT | FI_RECV))) return fail(fabric, result, "fi_ep_bind(cq)", error, error_length);
    if ((result = fi_enable(fabric->ep))) return fail(fabric, result, "fi_enable", error, error_length);

    memset(caps, 0, sizeof *caps);
    snprintf(caps->provider, sizeof caps->provider, "%s", info->fabric_attr->prov_name);
    snprintf(caps->fabric, sizeof caps->fabric, "%s", info->fabric_attr->name ? info->fabric_attr->name : "");
    snprintf(caps->domain, sizeof caps->domain, "%s", info->domain_attr->name ? info->domain_attr->name : "");
    caps->mr_mode = (uint64_t)info->domain_attr->mr_mode;
    caps->virt_addr = (info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0;
    caps->local_mr = (info->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
    caps->ordered_writes = (info->tx_attr->msg_order & (FI_ORDER_RMA_WAW | FI_ORDER_WAW)) != 0;
    caps->cq_data_size = info->domain_attr->cq_data_size;
    caps->tx_size = info->tx_attr->size;
    size_t segments = info->tx_attr->iov_limit < info->tx_attr->rma_iov_limit ? info->tx_attr->iov_limit : info->tx_attr->rma_iov_limit;
    caps->max_segments = segments < 1 ? 1 : segments > 8 ? 8 : segments;
    // shm: the target copies (or process_vm_readv's) the bytes in its own
    // fi_cq_read. Without FI_DELIVERY_COMPLETE a write of <= 4 KiB completes
    // at once, before placement, even to a dead peer or a closed key.
    fabric->force_delivery = strcmp(info->fabric_attr->prov_name, "shm") == 0;
    // shm reports neither a dead peer nor an unknown key to the writer: a
    // delivery-complete write then never completes (no error either).
    caps->silent_failures = fabric->force_delivery;
    caps->empty_writes_complete = !fabric->force_delivery;
    *out = fabric;
    return 0;
}

void loom_fabric_close(loom_fabric *fabric) {
    if (!fabric) return;
    if (fabric->ep) fi_close(&fabric->ep->fid);
    if (fabric->av) fi_close(&fabric->av->fid);
    if (fabric->cq) fi_close(&fabric->cq->fid);
    if (fabric->domain) fi_close(&fabric->domain->fid);
    if (fabric->fabric) fi_close(&fabric->fabric->fid);
    if (fabric->info) fi_freeinfo(fabric->info);
    free(fabric);
}

int loom_fabric_address(loom_fabric *fabric, void *buffer, size_t *length) {
    return fi_getname(&fabric->ep->fid, buffer, length);
}

int loom_fabric_insert_peer(loom_fabric *fabric, const void *address, uint64_t *peer) {
    fi_addr_t inserted = FI_ADDR_NOTAVAIL;
    int count = fi_av_insert(fabric->av, address, 1, &inserted, 0, NULL);
    if (count < 0) return count;
    if (count != 1 || inserted == FI_ADDR_NOTAVAIL) return -FI_EADDRNOTAVAIL;
    *peer = inserted;
    return 0;
}

int loom_fabric_remove_peer(loom_fabric *fabric, uint64_t peer) {
    fi_addr_t address = peer;
    return fi_av_remove(fabric->av, &address, 1, 0);
}

int loom_fabric_register(loom_fabric *fabric, void *buffer, size_t length, int remote_write,
                         uint64_t requested_key, void **registration, uint64_t *key, void **descriptor) {
    struct fid_mr *mr = NULL;
    uint64_t access = remote_write ? FI_REMOTE_WRITE : FI_WRITE;
    int result = fi_mr_reg(fabric->domain, buffer, length, access, 0, requested_key, 0, &mr, NULL);
    if (result) return result;
    if (fabric->info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
        result = fi_mr_bind(mr, &fabric->ep->fid, 0);
        if (!result) result = fi_mr_enable(mr);
        if (result) {
            fi_close(&mr->fid);
            return result;
        }
    }
    *registration = mr;
    *key = fi_mr_key(mr);
    *descriptor = fi_mr_desc(mr);
    return 0;
}

void loom_fabric_deregister(void *registration) {
    if (registration) fi_close(&((struct fid_mr *)registration)->fid);
}

ssize_t loom_fabric_write(loom_fabric *fabric, const loom_fabric_segment *segments, size_t count,
                          uint64_t peer, uint64_t data, int flags, uint64_t token) {
    enum { most = 8 };
    if (count == 0 || count > most) return -FI_EINVAL;
    loom_op *op = calloc(1, sizeof *op);
    if (!op) return -FI_ENOMEM;
    op->token = token;
    struct iovec iov[most];
    void *desc[most];
    struct fi_rma_iov rma[most];
    for (size_t i = 0; i < count; i++) {
        iov[i] = (struct iovec){.iov_base = (void *)segments[i].buffer, .iov_len = segments[i].length};
        desc[i] = segments[i].descriptor;
        rma[i] = (struct fi_rma_iov){.addr = segments[i].remote_address, .len = segments[i].length, .key = segments[i].key};
    }
    struct fi_msg_rma message = {
        .msg_iov = iov, .desc = desc, .iov_count = count, .addr = peer,
        .rma_iov = rma, .rma_iov_count = count, .context = op, .data = data,
    };
    uint64_t op_flags = FI_COMPLETION;
    if (flags & LOOM_FABRIC_WITH_DATA) op_flags |= FI_REMOTE_CQ_DATA;
    if ((flags & LOOM_FABRIC_DELIVERY_COMPLETE) || fabric->force_delivery) op_flags |= FI_DELIVERY_COMPLETE;
    ssize_t result = fi_writemsg(fabric->ep, &message, op_flags);
    if (result) free(op);
    return result;
}

static void take(loom_fabric_completion *out, void *context, uint64_t flags, uint64_t data) {
    memset(out, 0, sizeof *out);
    // A peer's write into our memory has no context of ours.
    if ((flags & FI_REMOTE_WRITE) || !context) {
        out->remote_data = (flags & FI_REMOTE_CQ_DATA) != 0;
        out->data = data;
        return;
    }
    loom_op *op = context;
    out->token = op->token;
    free(op);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

ssize_t loom_fabric_poll(loom_fabric *fabric, loom_fabric_completion *out, size_t count, int timeout_ms) {
    struct fi_cq_data_entry entries[32];
    if (count > 32) count = 32;
    ssize_t read;
    if (fabric->cq_waits && timeout_ms > 0) {
        read = fi_cq_sread(fabric->cq, entries, count, NULL, timeout_ms);
    } else {
        // No blocking wait: read (which also drives the provider's manual
        // progress, e.g. shm placing peers' writes) with short sleeps between.
        // Spin for LOOM_FABRIC_POLL_SPIN_US, then sleep 10 us doubling to
        // LOOM_FABRIC_POLL_MAX_SLEEP_NS: ~2% of a core when idle, while a
        // completion after a quiet spell is seen within about that cap.
        double start = now_ms(), deadline = start + (timeout_ms > 0 ? timeout_ms : 0);
        long sleep_ns = 10000;
        while ((read = fi_cq_read(fabric->cq, entries, count)) == -FI_EAGAIN && timeout_ms > 0) {
            double now = now_ms();
            if (now >= deadline) break;
            if (now - start < LOOM_FABRIC_POLL_SPIN_US / 1e3) continue;
            nanosleep(&(struct timespec){.tv_nsec = sleep_ns}, NULL);
            sleep_ns = sleep_ns * 2 < LOOM_FABRIC_POLL_MAX_SLEEP_NS ? sleep_ns * 2 : LOOM_FABRIC_POLL_MAX_SLEEP_NS;
        }
    }
    if (read == -FI_EAGAIN || read == -FI_ETIMEDOUT) return 0;
    if (read == -FI_EAVAIL) {
        struct fi_cq_err_entry failure;
        memset(&failure, 0, sizeof failure);
        ssize_t result = fi_cq_readerr(fabric->cq, &failure, 0);
        if (result == -FI_EAGAIN) return 0;
        if (result < 0) return result;
        take(&out[0], failure.op_context, failure.flags, failure.data);
        out[0].error = failure.err ? failure.err : FI_EOTHER;
        out[0].prov_errno = failure.prov_errno;
        return 1;
    }
    if (read < 0) return read;
    for (ssize_t i = 0; i < read; i++) take(&out[i], entries[i].op_context, entries[i].flags, entries[i].data);
    return read;
}

const char *loom_fabric_strerror(int error) { return fi_strerror(error < 0 ? -error : error); }

int loom_fabric_eagain(void) { return FI_EAGAIN; }
