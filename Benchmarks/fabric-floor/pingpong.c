// The floor under issue 7's latency goal: a 64-byte RMA write with remote
// completion data, ping-ponged between two processes over a libfabric
// provider, with both sides busy-polling their completion queue and no
// Swift, threads or locks of Loom's on the path. It opens the endpoint with
// Loom's own C layer (Sources/CLoomFabric), so provider, hints and queue
// setup are what the fabric backend uses.
//
//   pingpong server DIR ITERATIONS MODE [PROVIDER]    (start first)
//   pingpong client DIR ITERATIONS MODE [PROVIDER]
//
// DIR is a directory both can write, for the address exchange. MODE is
//   transmit  the write completes once the provider sent it (what
//             fi_pingpong's sends use)
//   delivery  FI_DELIVERY_COMPLETE, and each side waits for its write's
//             completion before it waits for the answer: the semantics
//             Loom's transport.write promises (done means placed)
// The client prints {"bench":"fabric_floor","mode":..,"one_way_us":..}:
// the p50 of half round trips, the first tenth left out as warm-up.
// PROVIDER defaults to tcp;ofi_rxm.
#include "loom_fabric.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    size_t length;
    unsigned char address[256];
    uint64_t key;
    uint64_t base;
} card;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long remote_seen, local_done;

static void poll_once(loom_fabric *fabric) {
    loom_fabric_completion completions[16];
    ssize_t count = loom_fabric_poll(fabric, completions, 16, 0);
    if (count < 0) {
        fprintf(stderr, "poll failed: %s\n", loom_fabric_strerror((int)count));
        exit(1);
    }
    for (ssize_t i = 0; i < count; i++) {
        if (completions[i].error) {
            fprintf(stderr, "write failed: %s\n", loom_fabric_strerror(completions[i].error));
            exit(1);
        }
        if (completions[i].remote_data) remote_seen++; else local_done++;
    }
}

static void publish(const char *dir, const char *name, const card *mine) {
    char path[512], temporary[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(temporary, sizeof temporary, "%s/%s.partial", dir, name);
    FILE *out = fopen(temporary, "w");
    if (!out || fwrite(mine, sizeof *mine, 1, out) != 1) { perror(temporary); exit(1); }
    fclose(out);
    rename(temporary, path);
}

static card await_card(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    card peer;
    for (int tries = 0; tries < 3000; tries++) {
        FILE *in = fopen(path, "r");
        if (in) {
            size_t read = fread(&peer, sizeof peer, 1, in);
            fclose(in);
            if (read == 1) return peer;
        }
        usleep(10000);
    }
    fprintf(stderr, "no %s within 30 s\n", path);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: pingpong server|client DIR ITERATIONS transmit|delivery [PROVIDER]\n"); return 2; }
    const char *provider = argc == 6 ? argv[5] : "tcp;ofi_rxm";
    int server = strcmp(argv[1], "server") == 0, iterations = atoi(argv[3]);
    int delivery = strcmp(argv[4], "delivery") == 0;
    loom_fabric *fabric;
    loom_fabric_caps caps;
    char error[256];
    if (loom_fabric_open(provider, "127.0.0.1", &fabric, &caps, error, sizeof error)) { fprintf(stderr, "%s\n", error); return 1; }
    static char buffer[4096] __attribute__((aligned(4096)));
    void *registration, *descriptor;
    card mine = {.length = sizeof mine.address, .base = (uint64_t)buffer};
    if (loom_fabric_register(fabric, buffer, sizeof buffer, 1, 1, &registration, &mine.key, &descriptor)) { fprintf(stderr, "register failed\n"); return 1; }
    loom_fabric_address(fabric, mine.address, &mine.length);
    publish(argv[2], server ? "server" : "client", &mine);
    card peer = await_card(argv[2], server ? "client" : "server");
    uint64_t address;
    if (loom_fabric_insert_peer(fabric, peer.address, &address)) { fprintf(stderr, "insert peer failed\n"); return 1; }
    loom_fabric_segment segment = {.buffer = buffer, .length = 64, .descriptor = descriptor,
                                   .remote_address = caps.virt_addr ? peer.base : 0, .key = peer.key};
    int flags = LOOM_FABRIC_WITH_DATA | (delivery ? LOOM_FABRIC_DELIVERY_COMPLETE : 0);
    double *halves = calloc(iterations, sizeof *halves);
    for (int i = 1; i <= iterations; i++) {
        double start = now_us();
        if (server) while (remote_seen < i) poll_once(fabric);
        ssize_t result;
        while ((result = loom_fabric_write(fabric, &segment, 1, address, i, flags, i)) == -loom_fabric_eagain()) poll_once(fabric);
        if (result) { fprintf(stderr, "write: %s\n", loom_fabric_strerror((int)result)); return 1; }
        if (delivery) while (local_done < i) poll_once(fabric);
        if (!server) {
            while (remote_seen < i) poll_once(fabric);
            halves[i - 1] = (now_us() - start) / 2;
        }
    }
    if (!server) {
        int skip = iterations / 10;
        qsort(halves + skip, iterations - skip, sizeof *halves, compare);
        printf("{\"bench\":\"fabric_floor\",\"provider\":\"%s\",\"mode\":\"%s\",\"one_way_us\":%.2f}\n", provider, argv[4], halves[skip + (iterations - skip) / 2]);
    }
    // Let the last completions drain before the peer's endpoint closes.
    for (double end = now_us() + 100000; now_us() < end;) poll_once(fabric);
    loom_fabric_close(fabric);
    return 0;
}
