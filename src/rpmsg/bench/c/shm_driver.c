/*
 * C reference driver (host) of `rpmsg bench shm`: measures a device and prints JSON.
 *
 * Written for this project; see shm_bench.h for the layout and the benchmark protocol. It
 * connects to the device's kick socket, maps the file, reads the resource table, zeroes both
 * rings, queues all 256 receive buffers on vq0, takes transmit buffers from 0x30000 up, writes
 * gfeatures and DRIVER_OK and kicks, as Linux and OpenAMP drivers do (spec §3.4, §4.4, §7.6).
 * It learns the service addresses from the device's name-service announcements, then
 * measures, with the same workloads and the same result keys as the Python driver:
 *
 *   rtt_SIZE           round trips through bench-echo, one in flight (latency percentiles)
 *   echo_wW_SIZE       pipelined echo with W messages in flight (round trips per second),
 *                      for at least --echo messages and --min-seconds seconds
 *   stream_SIZE        one-way stream into bench-sink, checked by the device (seq + CRC-32)
 *
 * It runs single-threaded: it polls the rings for --spin microseconds before it sleeps on the
 * kick socket, with the device's interrupts suppressed (VRING_AVAIL_F_NO_INTERRUPT) except
 * while it sleeps. On exit it resets the status byte and kicks, as Linux does on removal.
 *
 *   shm_driver --shm NAME [--socket PATH] [--spin US] [--timeout S] [--rounds N]
 *              [--echo N] [--min-seconds S] [--stream N] [--burst N] [--sizes 16,496]
 *              [--windows 1,16,64]
 *   shm_driver --floor ROUNDS [--spin US]     1-byte ping-pong over a socket pair, no rings
 */
#include "shm_bench.h"

#include <sys/wait.h>

#define MY_ADDR 1024u
#define MAX_LIST 8

struct drv {
    uint8_t *mem;
    int sock;
    double spin, timeout;
    struct vring rx; /* vq0: device -> driver */
    struct vring tx; /* vq1: driver -> device */
    uint16_t rx_avail_idx, rx_last_used, tx_avail_idx, tx_last_used;
    uint8_t rx_out[32768], tx_out[32768]; /* descriptors the device holds */
    uint16_t tx_free[32768];
    uint32_t n_free, tx_unpublished, rx_bufs;
    uint32_t echo_addr, sink_addr;
    /* replies */
    uint64_t received, replies, echo_expect, echo_bad;
    int echo_mode;
    char last[BUF_SIZE + 1];
    uint32_t last_len;
    /* statistics */
    uint64_t kicks_sent, wakeups;
};

static void handle(struct drv *d, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len) {
    d->received++;
    if (dst == NS_ADDR) {
        if (len != NS_MSG_SIZE || (rd32(p + 36) & 1)) return;
        char name[33] = {0};
        memcpy(name, p, 32);
        if (!strcmp(name, ECHO_NAME)) d->echo_addr = rd32(p + 32);
        if (!strcmp(name, SINK_NAME)) d->sink_addr = rd32(p + 32);
        return;
    }
    (void)src;
    if (dst != MY_ADDR) return;
    if (d->echo_mode && len >= SEQ_SIZE) {
        if (rd64(p) != d->echo_expect) d->echo_bad++;
        d->echo_expect = rd64(p) + 1;
    } else {
        memcpy(d->last, p, len);
        d->last[len] = 0;
        d->last_len = len;
    }
    d->replies++;
}

/* Deliver what the device returned on vq0 and give the buffers back. */
static int poll_rx(struct drv *d) {
    int n = 0;
    uint16_t used = ld16(USED_IDX(&d->rx));
    if ((uint16_t)(used - d->rx_last_used) > d->rx.num)
        fail("vq0: used index moved by more than the ring size");
    while (d->rx_last_used != used) {
        const uint8_t *elem = USED_ELEM(&d->rx, d->rx_last_used);
        uint32_t id = rd32(elem), ulen = rd32(elem + 4);
        d->rx_last_used++;
        if (id >= d->rx_bufs || !d->rx_out[id]) fail("vq0: used id is not a head we queued");
        if (ulen < HDR_SIZE || ulen > BUF_SIZE) fail("vq0: used length outside 16..512");
        d->rx_out[id] = 0;
        const uint8_t *buf = d->mem + RX_BUFS_AT + BUF_SIZE * id;
        uint32_t len = (uint32_t)buf[12] | (uint32_t)buf[13] << 8;
        if (len > ulen - HDR_SIZE) fail("vq0: header length exceeds the used length");
        handle(d, rd32(buf), rd32(buf + 4), buf + HDR_SIZE, len);
        st16(AVAIL_RING(&d->rx, d->rx_avail_idx), (uint16_t)id);
        d->rx_avail_idx++;
        d->rx_out[id] = 1;
        n++;
        if (d->rx_last_used == used) used = ld16(USED_IDX(&d->rx));
    }
    if (n) {
        st16(AVAIL_IDX(&d->rx), d->rx_avail_idx);
        fence();
        if (!(ld16(USED_FLAGS(&d->rx)) & USED_F_NO_NOTIFY)) {
            kick(d->sock);
            d->kicks_sent++;
        }
    }
    return n;
}

static void reclaim_tx(struct drv *d) {
    uint16_t used = ld16(USED_IDX(&d->tx));
    if ((uint16_t)(used - d->tx_last_used) > d->tx.num)
        fail("vq1: used index moved by more than the ring size");
    while (d->tx_last_used != used) {
        uint32_t id = rd32(USED_ELEM(&d->tx, d->tx_last_used));
        d->tx_last_used++;
        if (id >= d->tx.num || !d->tx_out[id]) fail("vq1: used id is not a head we sent");
        d->tx_out[id] = 0;
        d->tx_free[d->n_free++] = (uint16_t)id;
    }
}

static void flush_tx(struct drv *d) {
    if (!d->tx_unpublished) return;
    st16(AVAIL_IDX(&d->tx), d->tx_avail_idx);
    d->tx_unpublished = 0;
    fence();
    if (!(ld16(USED_FLAGS(&d->tx)) & USED_F_NO_NOTIFY)) {
        kick(d->sock);
        d->kicks_sent++;
    }
}

/* Wait until *counter > seen (replies) or a transmit buffer is free (counter NULL). */
static void wait_for(struct drv *d, const uint64_t *counter, uint64_t seen) {
    double deadline = now() + d->timeout;
    for (;;) {
        double until = now() + d->spin;
        for (;;) {
            poll_rx(d);
            if (counter ? *counter > seen : (reclaim_tx(d), d->n_free > 0)) return;
            if (now() >= until) break;
            sched_yield();
        }
        set_flag(AVAIL_FLAGS(&d->rx), AVAIL_F_NO_INTERRUPT, 0);
        if (!counter) set_flag(AVAIL_FLAGS(&d->tx), AVAIL_F_NO_INTERRUPT, 0);
        fence();
        int idle = ld16(USED_IDX(&d->rx)) == d->rx_last_used &&
                   (counter || ld16(USED_IDX(&d->tx)) == d->tx_last_used);
        if (idle) {
            int r = wait_kick(d->sock, 100);
            if (r < 0) fail("the device closed the kick socket");
            d->wakeups += r > 0;
        }
        set_flag(AVAIL_FLAGS(&d->rx), AVAIL_F_NO_INTERRUPT, 1);
        set_flag(AVAIL_FLAGS(&d->tx), AVAIL_F_NO_INTERRUPT, 1);
        if (now() > deadline) fail("timed out waiting for the device");
    }
}

/* Copy one message into a transmit buffer and queue it (published by flush_tx). */
static void queue_msg(struct drv *d, uint32_t dst, const uint8_t *data, uint32_t len) {
    if (!d->n_free) reclaim_tx(d);
    if (!d->n_free) {
        flush_tx(d);
        wait_for(d, NULL, 0);
    }
    uint16_t id = d->tx_free[--d->n_free];
    uint8_t *desc = DESC(&d->tx, id);
    uint8_t *buf = d->mem + rd64(desc);
    uint8_t hdr[HDR_SIZE] = {0};
    wr32(hdr, MY_ADDR);
    wr32(hdr + 4, dst);
    hdr[12] = (uint8_t)len;
    hdr[13] = (uint8_t)(len >> 8);
    memcpy(buf, hdr, HDR_SIZE);
    memcpy(buf + HDR_SIZE, data, len);
    wr32(desc + 8, HDR_SIZE + len);
    st16(AVAIL_RING(&d->tx, d->tx_avail_idx), id);
    d->tx_avail_idx++;
    d->tx_out[id] = 1;
    d->tx_unpublished++;
}

static void send_msg(struct drv *d, uint32_t dst, const uint8_t *data, uint32_t len) {
    queue_msg(d, dst, data, len);
    flush_tx(d);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int connect_to(const char *path, double timeout) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) fail("socket path too long");
    strcpy(sa.sun_path, path);
    double deadline = now() + timeout;
    for (;;) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0) die("socket");
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) return s;
        close(s);
        if (now() > deadline) die(path);
        usleep(10000);
    }
}

static void handshake(struct drv *d) {
    uint8_t *m = d->mem;
    if (rd32(m) != 1 || rd32(m + 4) < 1 || rd32(m + 16) != RSC_VDEV_AT)
        fail("resource table: not the OpenAMP Linux-machine table");
    uint8_t *v = m + RSC_VDEV_AT;
    if (rd32(v) != 3 || rd32(v + 4) != 7 || v[25] != 2) fail("resource table: no rpmsg vdev");
    struct vring *rings[2] = {&d->rx, &d->tx};
    const uint32_t preset[2] = {VRING0_DA, VRING1_DA};
    for (uint32_t i = 0; i < 2; i++) {
        uint8_t *r = m + VRING_ENTRY_AT(i);
        uint32_t da = rd32(r), align = rd32(r + 4), num = rd32(r + 8);
        if (da == ADDR_ANY) { /* Linux writes the final da back (spec §4.1) */
            da = preset[i];
            wr32(r, da);
        }
        if (!num || num > VRING_NUM || (num & (num - 1)) || !align || (align & (align - 1)))
            fail("resource table: vring size or alignment unusable");
        if (da < RSC_TABLE_SIZE || vring_size(num, align) > RX_BUFS_AT - da)
            fail("resource table: vring overlaps the table or the buffers");
        vring_at(rings[i], m, da, num, align);
        memset(rings[i]->desc, 0, vring_size(num, align));
    }
    d->rx_bufs = d->rx.num;
    for (uint32_t i = 0; i < d->rx.num; i++) {
        uint8_t *desc = DESC(&d->rx, i);
        wr64(desc, RX_BUFS_AT + BUF_SIZE * i);
        wr32(desc + 8, BUF_SIZE);
        st16(desc + 12, DESC_F_WRITE);
        memset(m + RX_BUFS_AT + BUF_SIZE * i, 0, BUF_SIZE);
        st16(AVAIL_RING(&d->rx, i), (uint16_t)i);
        d->rx_out[i] = 1;
    }
    d->rx_avail_idx = (uint16_t)d->rx.num;
    st16(AVAIL_IDX(&d->rx), d->rx_avail_idx);
    for (uint32_t i = 0; i < d->tx.num; i++) {
        wr64(DESC(&d->tx, i), TX_BUFS_AT + BUF_SIZE * i);
        d->tx_free[d->tx.num - 1 - i] = (uint16_t)i; /* address order, as Linux takes them */
    }
    d->n_free = d->tx.num;
    set_flag(AVAIL_FLAGS(&d->tx), AVAIL_F_NO_INTERRUPT, 1);
    set_flag(AVAIL_FLAGS(&d->rx), AVAIL_F_NO_INTERRUPT, 1);
    m[STATUS_AT] = STATUS_ACK | STATUS_DRIVER;
    wr32(m + GFEATURES_AT, rd32(v + 12) & F_NS);
    fence();
    __atomic_store_n(m + STATUS_AT, STATUS_ACK | STATUS_DRIVER | STATUS_DRIVER_OK,
                     __ATOMIC_RELEASE);
    kick(d->sock);
}

/* ---- measurements ------------------------------------------------------------------------ */

static void rtt(struct drv *d, FILE *out, uint32_t size, int rounds) {
    uint8_t payload[MTU] = {0};
    double *s = malloc(sizeof(double) * (size_t)rounds);
    if (!s) die("malloc");
    d->echo_mode = 0;
    for (int i = 0; i < rounds; i++) {
        double t0 = now();
        uint64_t seen = d->replies;
        send_msg(d, d->echo_addr, payload, size);
        wait_for(d, &d->replies, seen);
        s[i] = now() - t0;
    }
    int skip = rounds / 10;
    fprintf(out, "\"rtt_%u\": ", size);
    print_percentiles(out, s + skip, (size_t)(rounds - skip));
    free(s);
}

static void echo(struct drv *d, FILE *out, uint32_t size, uint32_t window, uint64_t count,
                 double min_seconds) {
    uint8_t payload[MTU];
    fill_payload(payload, size, 0);
    d->echo_mode = 1;
    d->echo_expect = 0;
    d->echo_bad = 0;
    uint64_t base = d->replies, sent = 0, handled = 0;
    double t0 = now();
    for (; sent < window && sent < count; sent++) {
        wr64(payload, sent);
        queue_msg(d, d->echo_addr, payload, size);
    }
    flush_tx(d);
    /* Keep the window full until `count` messages went and at least `min_seconds` passed. */
    while (handled < sent) {
        wait_for(d, &d->replies, base + handled);
        uint64_t got = d->replies - base;
        int more_time = now() - t0 < min_seconds;
        for (; handled < got; handled++) {
            if (sent < count || more_time) {
                wr64(payload, sent++);
                queue_msg(d, d->echo_addr, payload, size);
            }
        }
        flush_tx(d);
    }
    double dt = now() - t0;
    d->echo_mode = 0;
    fprintf(out, "\"echo_w%u_%u\": {\"window\": %u, \"payload\": %u, \"messages\": %llu, "
            "\"seconds\": %.4f, \"msgs_per_s\": %.0f, \"in_order\": %s}", window, size, window,
            size, (unsigned long long)handled, dt, (double)handled / dt,
            d->echo_bad || d->echo_expect != handled ? "false" : "true");
}

static uint64_t json_u64(const char *doc, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(doc, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : (uint64_t)-1;
}

static void stream(struct drv *d, FILE *out, uint32_t size, uint64_t count, uint32_t burst) {
    char ctrl[24];
    int n = snprintf(ctrl, sizeof ctrl, "%llu", (unsigned long long)count);
    if (n >= (int)SEQ_SIZE) fail("stream count too large for the control message");
    uint64_t seen = d->replies;
    send_msg(d, d->sink_addr, (const uint8_t *)ctrl, (uint32_t)n);
    wait_for(d, &d->replies, seen);
    if (strcmp(d->last, "ok")) fail("the sink did not acknowledge the stream");
    uint8_t payload[MTU];
    fill_payload(payload, size, 0);
    uint32_t crc = 0;
    seen = d->replies;
    double t0 = now();
    for (uint64_t seq = 0; seq < count; seq++) {
        wr64(payload, seq);
        crc = crc32_update(crc, payload, size);
        queue_msg(d, d->sink_addr, payload, size);
        if (d->tx_unpublished >= burst) flush_tx(d);
    }
    flush_tx(d);
    wait_for(d, &d->replies, seen);
    double dt = now() - t0;
    uint64_t received = json_u64(d->last, "received"), bad = json_u64(d->last, "bad_seq");
    int crc_ok = json_u64(d->last, "crc") == crc;
    fprintf(out, "\"stream_%u\": {\"messages\": %llu, \"payload\": %u, \"seconds\": %.4f, "
            "\"msgs_per_s\": %.0f, \"mb_per_s\": %.2f, \"received\": %llu, \"bad_seq\": %llu, "
            "\"crc_match\": %s, \"complete_in_order\": %s}", size, (unsigned long long)count,
            size, dt, (double)count / dt, (double)count * size / dt / 1e6,
            (unsigned long long)received, (unsigned long long)bad, crc_ok ? "true" : "false",
            received == count && bad == 0 && crc_ok ? "true" : "false");
}

/* ---- the floor: 1-byte ping-pong over a socket pair, blocking and with the same spin ---- */

static int spin_wait(int fd, double spin) {
    double until = now() + spin;
    uint8_t b[64];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n > 0) return 1;
        if (n == 0) return -1;
        if (now() >= until) return wait_kick(fd, -1);
        sched_yield();
    }
}

static void floor_one(FILE *out, const char *key, int rounds, double spin) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(sv[0]);
        while (spin_wait(sv[1], spin) > 0) kick(sv[1]);
        _exit(0);
    }
    close(sv[1]);
    double *s = malloc(sizeof(double) * (size_t)rounds);
    if (!s) die("malloc");
    for (int i = 0; i < rounds; i++) {
        double t0 = now();
        kick(sv[0]);
        if (spin_wait(sv[0], spin) < 0) fail("floor: the child went away");
        s[i] = now() - t0;
    }
    close(sv[0]);
    waitpid(pid, NULL, 0);
    int skip = rounds / 10;
    fprintf(out, "\"%s\": ", key);
    print_percentiles(out, s + skip, (size_t)(rounds - skip));
    free(s);
}

static int parse_list(const char *s, uint32_t *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        out[n++] = (uint32_t)strtoul(s, (char **)&s, 10);
        if (*s == ',') s++;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *name = NULL, *sock_path = NULL;
    double spin = 50e-6, timeout = 30.0, min_seconds = 0.2;
    int rounds = 2000, floor_rounds = 0;
    uint64_t echo_count = 20000, stream_count = 200000;
    uint32_t burst = 128, sizes[MAX_LIST] = {16, 496}, windows[MAX_LIST] = {1, 16, 64};
    int n_sizes = 2, n_windows = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--shm")) name = v;
        else if (!strcmp(k, "--socket")) sock_path = v;
        else if (!strcmp(k, "--spin")) spin = atof(v) * 1e-6;
        else if (!strcmp(k, "--timeout")) timeout = atof(v);
        else if (!strcmp(k, "--rounds")) rounds = atoi(v);
        else if (!strcmp(k, "--echo")) echo_count = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--stream")) stream_count = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--burst")) burst = (uint32_t)atoi(v);
        else if (!strcmp(k, "--min-seconds")) min_seconds = atof(v);
        else if (!strcmp(k, "--sizes")) n_sizes = parse_list(v, sizes);
        else if (!strcmp(k, "--windows")) n_windows = parse_list(v, windows);
        else if (!strcmp(k, "--floor")) floor_rounds = atoi(v);
        else fail("unknown option (see the comment at the top of shm_driver.c)");
    }
    for (int i = 0; i < n_sizes; i++)
        if (sizes[i] < SEQ_SIZE || sizes[i] > MTU) fail("sizes must be within 8..496");
    if (rounds < 1 || burst < 1 || echo_count < 1 || stream_count < 1)
        fail("rounds, burst, echo and stream must be positive");
    if (floor_rounds > 0) {
        printf("{");
        floor_one(stdout, "rtt_1", floor_rounds, 0);
        printf(", ");
        floor_one(stdout, "rtt_1_spin", floor_rounds, spin);
        printf("}\n");
        return 0;
    }
    if (!name) fail("usage: shm_driver --shm NAME ... (or --floor ROUNDS)");
    char path[4096], default_sock[4200];
    shm_file(path, sizeof path, name);
    if (!sock_path) {
        snprintf(default_sock, sizeof default_sock, "/tmp/%s.event.0", strrchr(path, '/') + 1);
        sock_path = default_sock;
    }
    crc32_init();
    static struct drv d;
    d.spin = spin;
    d.timeout = timeout;
    d.echo_addr = d.sink_addr = ADDR_ANY;
    d.sock = connect_to(sock_path, timeout);
    d.mem = map_file(path, 0);
    handshake(&d);
    double deadline = now() + timeout;
    while (d.echo_addr == ADDR_ANY || d.sink_addr == ADDR_ANY) {
        if (now() > deadline) fail("the device announced no bench-echo / bench-sink");
        wait_for(&d, &d.received, d.received); /* NS messages arrive through poll_rx */
    }
    FILE *out = stdout;
    fprintf(out, "{\"api\": \"c\", \"echo_addr\": %u, \"sink_addr\": %u", d.echo_addr,
            d.sink_addr);
    for (int i = 0; i < n_sizes; i++) {
        fprintf(out, ", ");
        rtt(&d, out, sizes[i], rounds);
    }
    for (int i = 0; i < n_sizes; i++)
        for (int w = 0; w < n_windows; w++) {
            fprintf(out, ", ");
            echo(&d, out, sizes[i], windows[w], echo_count, min_seconds);
        }
    for (int i = 0; i < n_sizes; i++) {
        fprintf(out, ", ");
        stream(&d, out, sizes[i], stream_count, burst);
    }
    fprintf(out, ", \"host_stats\": {\"kicks_sent\": %llu, \"wakeups\": %llu}}\n",
            (unsigned long long)d.kicks_sent, (unsigned long long)d.wakeups);
    fflush(out);
    __atomic_store_n(d.mem + STATUS_AT, 0, __ATOMIC_RELEASE); /* reset, as Linux on removal */
    kick(d.sock);
    close(d.sock);
    return 0;
}
