/*
 * The C reference of `rpmsg bench shm`: what the C driver and C device share.
 *
 * Written for this project. It speaks the same wire and the same conventions as the Python
 * `shm:` transport (shared/spec/rpmsg-virtio.md §3, §4, §7): the OpenAMP Linux-machine layout
 * (0x80000-byte file, resource table at 0 with the status byte at 0x2C, vring 0 at 0x4000 and
 * vring 1 at 0x8000, 256 entries, alignment 0x1000, 512-byte buffers: 256 RX from 0x10000 and
 * 256 TX from 0x30000), split rings with flag-based notification suppression, and a UNIX
 * stream socket carrying one byte per kick (any byte means "scan both rings").
 *
 * The benchmark protocol (the same as rpmsg/bench/shm_proto.py, which is its definition):
 * the device announces "bench-echo" and "bench-sink" by name service; echo returns each
 * message to its sender; the sink takes a message shorter than 8 bytes as "expect N messages"
 * (ASCII decimal, answered "ok"), then checks that each message starts with its u64 LE
 * sequence number, keeps a CRC-32 over the payloads, and answers a JSON report after N.
 *
 * Little-endian hosts only (the layout is little-endian; all supported boards are).
 */
#ifndef RPMSG_SHM_BENCH_H
#define RPMSG_SHM_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Layout of the OpenAMP Linux machine (spec §7.2). */
#define SHM_SIZE 0x80000u
#define RSC_VDEV_AT 20u /* header (16) + one offset (4) */
#define STATUS_AT (RSC_VDEV_AT + 24u)   /* 0x2C */
#define GFEATURES_AT (RSC_VDEV_AT + 16u)
#define VRING_ENTRY_AT(i) (RSC_VDEV_AT + 28u + 20u * (i))
#define RSC_TABLE_SIZE (RSC_VDEV_AT + 28u + 2u * 20u) /* 88 */
#define VRING0_DA 0x4000u
#define VRING1_DA 0x8000u
#define VRING_NUM 256u
#define VRING_ALIGN 0x1000u
#define BUF_SIZE 512u
#define RX_BUFS_AT 0x10000u
#define TX_BUFS_AT 0x30000u
#define HDR_SIZE 16u
#define MTU (BUF_SIZE - HDR_SIZE)

#define STATUS_ACK 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define DESC_F_NEXT 1u
#define DESC_F_WRITE 2u
#define DESC_F_INDIRECT 4u
#define AVAIL_F_NO_INTERRUPT 1u
#define USED_F_NO_NOTIFY 1u
#define F_NS 1u

#define NS_ADDR 53u
#define NS_MSG_SIZE 40u
#define NS_CREATE 0u
#define ADDR_ANY 0xFFFFFFFFu
#define ECHO_NAME "bench-echo"
#define SINK_NAME "bench-sink"
#define SEQ_SIZE 8u

/* ---- small helpers ----------------------------------------------------------------------- */

static inline void die(const char *what) {
    fprintf(stderr, "rpmsg-bench-c: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(2);
}

static inline void fail(const char *msg) {
    fprintf(stderr, "rpmsg-bench-c: %s\n", msg);
    exit(3);
}

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint16_t ld16(const volatile void *p) {
    return __atomic_load_n((const volatile uint16_t *)p, __ATOMIC_ACQUIRE);
}
static inline void st16(volatile void *p, uint16_t v) {
    __atomic_store_n((volatile uint16_t *)p, v, __ATOMIC_RELEASE);
}
static inline void fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* CRC-32 (IEEE, reflected 0xEDB88320), the same as Python's zlib.crc32; slicing by 8 so that
 * the check costs the C side about what zlib costs the Python side. */
static uint32_t crc_table[8][256];
static inline void crc32_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}
static inline uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = rd32(p) ^ crc, hi = rd32(p + 4);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* Bench payloads: the u64 LE sequence number, then bytes 0, 1, 2, ... (mod 256). */
static inline void fill_payload(uint8_t *p, uint32_t size, uint64_t seq) {
    for (uint32_t i = SEQ_SIZE; i < size; i++) p[i] = (uint8_t)(i - SEQ_SIZE);
    if (size >= SEQ_SIZE) wr64(p, seq);
}

/* ---- split rings ----------------------------------------------------------------------- */

struct vring {
    uint32_t num;
    uint8_t *desc;            /* 16 bytes each: u64 addr, u32 len, u16 flags, u16 next */
    uint8_t *avail;           /* u16 flags, u16 idx, u16 ring[num] */
    uint8_t *used;            /* u16 flags, u16 idx, {u32 id, u32 len} ring[num] */
};

static inline void vring_at(struct vring *vr, uint8_t *base, uint32_t da, uint32_t num,
                            uint32_t align) {
    uint32_t used_off = (16u * num + 6u + 2u * num + align - 1u) & ~(align - 1u);
    vr->num = num;
    vr->desc = base + da;
    vr->avail = base + da + 16u * num;
    vr->used = base + da + used_off;
}

static inline uint32_t vring_size(uint32_t num, uint32_t align) {
    return ((16u * num + 6u + 2u * num + align - 1u) & ~(align - 1u)) + 8u * num + 6u;
}

#define AVAIL_FLAGS(vr) ((vr)->avail)
#define AVAIL_IDX(vr) ((vr)->avail + 2)
#define AVAIL_RING(vr, i) ((vr)->avail + 4 + 2 * ((i) & ((vr)->num - 1)))
#define USED_FLAGS(vr) ((vr)->used)
#define USED_IDX(vr) ((vr)->used + 2)
#define USED_ELEM(vr, i) ((vr)->used + 4 + 8 * ((i) & ((vr)->num - 1)))
#define DESC(vr, i) ((vr)->desc + 16 * (i))

static inline void set_flag(uint8_t *flags, uint16_t bit, int on) {
    uint16_t v = ld16(flags);
    st16(flags, on ? (uint16_t)(v | bit) : (uint16_t)(v & ~bit));
}

/* ---- kicks ----------------------------------------------------------------------------- */

static inline void kick(int fd) {
    static const uint8_t one = 1;
    if (send(fd, &one, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
        fprintf(stderr, "rpmsg-bench-c: kick: %s\n", strerror(errno));
        exit(4);
    }
}

/* Block up to timeout_ms for a kick; returns 1 if kicked, 0 on timeout, -1 if the peer left. */
static inline int wait_kick(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return 0;
    uint8_t buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN ? 1 : -1;
    return 1;
}

/* Path of the shared-memory file: /dev/shm/NAME for a name, the path itself for a file. */
static inline void shm_file(char *out, size_t size, const char *name) {
    const char *slash = strrchr(name, '/');
    if (name[0] == '/' && slash != name)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
}

static inline uint8_t *map_file(const char *path, int create) {
    int fd = open(path, O_RDWR | (create ? O_CREAT : 0), 0600);
    if (fd < 0) die(path);
    if (create && ftruncate(fd, SHM_SIZE) < 0) die("ftruncate");
    struct stat st;
    if (fstat(fd, &st) < 0) die("fstat");
    if ((size_t)st.st_size < SHM_SIZE) fail("shared-memory file is smaller than the layout");
    uint8_t *mem = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) die("mmap");
    close(fd);
    return mem;
}

/* Latency samples -> the same percentile rule as rpmsg/bench/report.py. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline void print_percentiles(FILE *out, double *s, size_t n) {
    qsort(s, n, sizeof *s, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    size_t i50 = (size_t)(0.5 * (double)n), i99 = (size_t)(0.99 * (double)n);
    if (i50 >= n) i50 = n - 1;
    if (i99 >= n) i99 = n - 1;
    fprintf(out, "{\"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"count\": %zu}",
            s[i50] * 1e6, s[i99] * 1e6, sum / (double)n * 1e6, n);
}

#endif
