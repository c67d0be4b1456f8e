/*
 * C reference device (remote) of `rpmsg bench shm`: serves "bench-echo" and "bench-sink".
 *
 * Written for this project; see shm_bench.h for the layout and the benchmark protocol. It
 * creates the shared-memory file, writes the resource table, listens on the kick socket,
 * accepts one driver, waits for DRIVER_OK, announces both services (if the driver accepted
 * the name-service feature) and serves until the driver resets the status byte or closes
 * the socket; then it removes the file and the socket and exits 0. Rings are used as OpenAMP's
 * device role does (spec §3.5): every buffer goes back with the head id it came with, received
 * buffers with their descriptor length, and notifications follow the peer's flags. Like the
 * Python transport it polls the rings for --spin microseconds after work before it sleeps.
 *
 *   shm_device --shm NAME [--socket PATH] [--spin US] [--timeout S]
 */
#include "shm_bench.h"

#define ECHO_ADDR 1024u
#define SINK_ADDR 1025u

struct dev {
    uint8_t *mem;
    int sock;
    struct vring tx; /* vq0: device -> driver */
    struct vring rx; /* vq1: driver -> device */
    uint16_t tx_last_avail, tx_used_idx, rx_last_avail, rx_used_idx;
    int tx_unpublished, rx_unpublished;
    int gone;
    /* sink */
    uint64_t expected, next, bad_seq, bytes;
    uint32_t crc;
    /* statistics */
    uint64_t kicks_sent, wakeups, messages;
};

static void dev_flush(struct dev *d) {
    int want = 0;
    if (d->tx_unpublished) {
        st16(USED_IDX(&d->tx), d->tx_used_idx);
        d->tx_unpublished = 0;
        fence();
        want |= !(ld16(AVAIL_FLAGS(&d->tx)) & AVAIL_F_NO_INTERRUPT);
    }
    if (d->rx_unpublished) {
        st16(USED_IDX(&d->rx), d->rx_used_idx);
        d->rx_unpublished = 0;
        fence();
        want |= !(ld16(AVAIL_FLAGS(&d->rx)) & AVAIL_F_NO_INTERRUPT);
    }
    if (want) {
        kick(d->sock);
        d->kicks_sent++;
    }
}

static int driver_ok(const struct dev *d) {
    return __atomic_load_n(d->mem + STATUS_AT, __ATOMIC_ACQUIRE) & STATUS_DRIVER_OK;
}

/* A buffer the driver made available on vq0, waiting (and letting it know) if there is none. */
static uint16_t take_tx(struct dev *d) {
    while (ld16(AVAIL_IDX(&d->tx)) == d->tx_last_avail) {
        dev_flush(d);
        set_flag(USED_FLAGS(&d->tx), USED_F_NO_NOTIFY, 0);
        fence();
        if (ld16(AVAIL_IDX(&d->tx)) == d->tx_last_avail) {
            int r = wait_kick(d->sock, 100);
            d->wakeups += r > 0;
            if (r < 0 || !driver_ok(d)) {
                d->gone = 1;
                set_flag(USED_FLAGS(&d->tx), USED_F_NO_NOTIFY, 1);
                return 0xFFFF;
            }
        }
        set_flag(USED_FLAGS(&d->tx), USED_F_NO_NOTIFY, 1);
    }
    uint16_t head = ld16(AVAIL_RING(&d->tx, d->tx_last_avail));
    d->tx_last_avail++;
    if (head >= d->tx.num) fail("vq0: avail ring names a descriptor out of range");
    return head;
}

static void dev_send(struct dev *d, uint32_t src, uint32_t dst, const uint8_t *data,
                     uint32_t len) {
    uint16_t head = take_tx(d);
    if (head == 0xFFFF) return; /* the driver went away */
    const uint8_t *desc = DESC(&d->tx, head);
    uint64_t addr = rd64(desc);
    uint32_t blen = rd32(desc + 8);
    if (addr > SHM_SIZE || blen > SHM_SIZE - addr || blen < HDR_SIZE + len)
        fail("vq0: a receive buffer of the driver is outside the file or too small");
    uint8_t *buf = d->mem + addr;
    uint8_t hdr[HDR_SIZE] = {0};
    wr32(hdr, src);
    wr32(hdr + 4, dst);
    hdr[12] = (uint8_t)len;
    hdr[13] = (uint8_t)(len >> 8);
    memcpy(buf, hdr, HDR_SIZE);
    memcpy(buf + HDR_SIZE, data, len);
    uint8_t *elem = USED_ELEM(&d->tx, d->tx_used_idx);
    wr32(elem, head);
    wr32(elem + 4, HDR_SIZE + len);
    d->tx_used_idx++;
    d->tx_unpublished++;
}

static void announce(struct dev *d, const char *name, uint32_t addr) {
    uint8_t ns[NS_MSG_SIZE] = {0};
    strncpy((char *)ns, name, 31);
    wr32(ns + 32, addr);
    wr32(ns + 36, NS_CREATE);
    dev_send(d, addr, NS_ADDR, ns, NS_MSG_SIZE);
}

static void sink(struct dev *d, uint32_t src, const uint8_t *p, uint32_t len) {
    if (len < SEQ_SIZE) { /* control: expect N messages */
        char num[SEQ_SIZE + 1] = {0};
        memcpy(num, p, len);
        d->expected = strtoull(num, NULL, 10);
        d->next = d->bad_seq = d->bytes = 0;
        d->crc = 0;
        dev_send(d, SINK_ADDR, src, (const uint8_t *)"ok", 2);
        return;
    }
    uint64_t seq = rd64(p);
    if (seq != d->next) d->bad_seq++;
    d->next = seq + 1;
    d->crc = crc32_update(d->crc, p, len);
    d->bytes += len;
    if (d->next == d->expected) {
        char report[200];
        int n = snprintf(report, sizeof report,
                         "{\"received\": %llu, \"bad_seq\": %llu, \"crc\": %u, \"bytes\": %llu}",
                         (unsigned long long)d->next, (unsigned long long)d->bad_seq, d->crc,
                         (unsigned long long)d->bytes);
        dev_send(d, SINK_ADDR, src, (const uint8_t *)report, (uint32_t)n);
    }
}

/* Everything the driver queued on vq1: handle it and give each buffer back. */
static int dev_process(struct dev *d) {
    int n = 0;
    uint16_t avail = ld16(AVAIL_IDX(&d->rx));
    if ((uint16_t)(avail - d->rx_last_avail) > d->rx.num)
        fail("vq1: avail index moved by more than the ring size");
    while (d->rx_last_avail != avail && !d->gone) {
        uint16_t head = ld16(AVAIL_RING(&d->rx, d->rx_last_avail));
        d->rx_last_avail++;
        if (head >= d->rx.num) fail("vq1: avail ring names a descriptor out of range");
        const uint8_t *desc = DESC(&d->rx, head);
        uint64_t addr = rd64(desc);
        uint32_t blen = rd32(desc + 8);
        uint16_t flags = ld16(desc + 12);
        if (flags & (DESC_F_NEXT | DESC_F_INDIRECT)) fail("vq1: chained or indirect descriptor");
        if (addr > SHM_SIZE || blen > SHM_SIZE - addr || blen < HDR_SIZE)
            fail("vq1: a message buffer is outside the file or shorter than the header");
        const uint8_t *buf = d->mem + addr;
        uint32_t src = rd32(buf), dst = rd32(buf + 4);
        uint32_t len = (uint32_t)buf[12] | (uint32_t)buf[13] << 8;
        if (len > blen - HDR_SIZE) fail("vq1: header length exceeds the buffer");
        if (dst == ECHO_ADDR)
            dev_send(d, ECHO_ADDR, src, buf + HDR_SIZE, len);
        else if (dst == SINK_ADDR)
            sink(d, src, buf + HDR_SIZE, len);
        uint8_t *elem = USED_ELEM(&d->rx, d->rx_used_idx);
        wr32(elem, head);
        wr32(elem + 4, blen);
        d->rx_used_idx++;
        d->rx_unpublished++;
        n++;
        if (d->rx_last_avail == avail) avail = ld16(AVAIL_IDX(&d->rx));
    }
    d->messages += (uint64_t)n;
    dev_flush(d);
    return n;
}

static int listen_on(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) fail("socket path too long");
    strcpy(sa.sun_path, path);
    unlink(path);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) die(path);
    if (listen(s, 1) < 0) die("listen");
    return s;
}

static void write_table(uint8_t *mem) {
    memset(mem, 0, RSC_TABLE_SIZE);
    wr32(mem + 0, 1);            /* ver */
    wr32(mem + 4, 1);            /* num */
    wr32(mem + 16, RSC_VDEV_AT); /* offset[0] */
    uint8_t *v = mem + RSC_VDEV_AT;
    wr32(v + 0, 3);    /* RSC_VDEV */
    wr32(v + 4, 7);    /* VIRTIO_ID_RPMSG */
    wr32(v + 8, 0);    /* notifyid */
    wr32(v + 12, F_NS);/* dfeatures */
    v[25] = 2;         /* num_of_vrings */
    const uint32_t da[2] = {VRING0_DA, VRING1_DA};
    for (uint32_t i = 0; i < 2; i++) {
        uint8_t *r = mem + VRING_ENTRY_AT(i);
        wr32(r + 0, da[i]);
        wr32(r + 4, VRING_ALIGN);
        wr32(r + 8, VRING_NUM);
        wr32(r + 12, i + 1); /* notifyid */
    }
}

static void vring_from_table(struct dev *d, struct vring *vr, uint32_t i) {
    const uint8_t *r = d->mem + VRING_ENTRY_AT(i);
    uint32_t da = rd32(r), align = rd32(r + 4), num = rd32(r + 8);
    if (!num || num > 32768 || (num & (num - 1)) || !align || (align & (align - 1)))
        fail("resource table: vring size or alignment is not a power of two");
    if (da > SHM_SIZE || vring_size(num, align) > SHM_SIZE - da)
        fail("resource table: vring outside the file");
    vring_at(vr, d->mem, da, num, align);
}

int main(int argc, char **argv) {
    const char *name = NULL, *sock_path = NULL;
    double spin = 50e-6, timeout = 30.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shm")) name = argv[i + 1];
        else if (!strcmp(argv[i], "--socket")) sock_path = argv[i + 1];
        else if (!strcmp(argv[i], "--spin")) spin = atof(argv[i + 1]) * 1e-6;
        else if (!strcmp(argv[i], "--timeout")) timeout = atof(argv[i + 1]);
        else fail("usage: shm_device --shm NAME [--socket PATH] [--spin US] [--timeout S]");
    }
    if (!name) fail("usage: shm_device --shm NAME [--socket PATH] [--spin US] [--timeout S]");
    char path[4096], default_sock[4200];
    shm_file(path, sizeof path, name);
    if (!sock_path) {
        const char *base = strrchr(path, '/') + 1;
        snprintf(default_sock, sizeof default_sock, "/tmp/%s.event.0", base);
        sock_path = default_sock;
    }
    crc32_init();
    struct dev d = {0};
    d.mem = map_file(path, 1);
    memset(d.mem, 0, SHM_SIZE);
    write_table(d.mem);
    int ls = listen_on(sock_path);
    struct pollfd lp = {.fd = ls, .events = POLLIN};
    if (poll(&lp, 1, (int)(timeout * 1000)) <= 0) fail("no driver connected in time");
    d.sock = accept(ls, NULL, NULL);
    if (d.sock < 0) die("accept");
    close(ls);
    unlink(sock_path); /* one driver at a time, as the Python device does */
    double deadline = now() + timeout;
    while (!driver_ok(&d)) {
        if (now() > deadline) fail("no DRIVER_OK in time");
        if (wait_kick(d.sock, 1) < 0) fail("the driver left before DRIVER_OK");
    }
    vring_from_table(&d, &d.tx, 0);
    vring_from_table(&d, &d.rx, 1);
    d.tx_used_idx = ld16(USED_IDX(&d.tx));
    d.rx_used_idx = ld16(USED_IDX(&d.rx));
    set_flag(USED_FLAGS(&d.tx), USED_F_NO_NOTIFY, 1); /* OpenAMP: disable_cb(vq0) */
    set_flag(USED_FLAGS(&d.rx), USED_F_NO_NOTIFY, 1); /* polling now; armed before sleeping */
    uint32_t features = rd32(d.mem + RSC_VDEV_AT + 12) & rd32(d.mem + GFEATURES_AT);
    if (features & F_NS) {
        announce(&d, ECHO_NAME, ECHO_ADDR);
        announce(&d, SINK_NAME, SINK_ADDR);
        dev_flush(&d);
    }
    double until = now() + spin;
    while (!d.gone) {
        if (dev_process(&d)) {
            until = now() + spin;
            continue;
        }
        if (!driver_ok(&d)) break;
        if (now() < until) {
            sched_yield();
            continue;
        }
        set_flag(USED_FLAGS(&d.rx), USED_F_NO_NOTIFY, 0);
        fence();
        if (ld16(AVAIL_IDX(&d.rx)) == d.rx_last_avail) {
            int r = wait_kick(d.sock, 100);
            if (r < 0) break;
            d.wakeups += r > 0;
        }
        set_flag(USED_FLAGS(&d.rx), USED_F_NO_NOTIFY, 1);
        until = now() + spin;
    }
    fprintf(stderr, "rpmsg-bench-c device: %llu messages, %llu kicks sent, %llu wakeups\n",
            (unsigned long long)d.messages, (unsigned long long)d.kicks_sent,
            (unsigned long long)d.wakeups);
    close(d.sock);
    munmap(d.mem, SHM_SIZE);
    unlink(path);
    return 0;
}
