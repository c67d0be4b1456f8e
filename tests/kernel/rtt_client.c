/*
 * C reference client of tests/kernel/bench_rtt.py: round trips through /dev/rpmsgN.
 *
 * Written for this project. Built on the host with the system compiler; UML runs the host's
 * root file system, so the guest runs the same binary. It does what a plain C program would:
 * write() one message, read() the echo (mode "read": blocking read, two system calls per
 * round trip), or poll() for it first with a timeout as a library with timeouts must (mode
 * "poll": three). Each reply is compared with what was sent (a sequence number and a byte
 * pattern, as the Python clients send). Prints one JSON object with the same keys as the
 * Python clients.
 *
 *   rtt_client DEVICE SIZE COUNT WARMUP read|poll
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int round_trip(int fd, const uint8_t *msg, size_t size, uint8_t *buf, int use_poll) {
    if (write(fd, msg, size) != (ssize_t)size) return -1;
    if (use_poll) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1) return -1;
    }
    ssize_t n = read(fd, buf, 512);
    if (n < 0) return -1;
    return n == (ssize_t)size && memcmp(buf, msg, size) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: rtt_client DEVICE SIZE COUNT WARMUP read|poll\n");
        return 2;
    }
    size_t size = strtoul(argv[2], NULL, 10);
    long count = strtol(argv[3], NULL, 10), warm = strtol(argv[4], NULL, 10);
    int use_poll = !strcmp(argv[5], "poll");
    if (size < 4 || size > 496 || count < 1 || warm < 0) {
        fprintf(stderr, "rtt_client: size must be 4..496, count positive\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "rtt_client: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    uint8_t msg[512], buf[512];
    for (size_t i = 0; i < size; i++) msg[i] = (uint8_t)i;
    for (long i = 0; i < warm; i++)
        if (round_trip(fd, msg, size, buf, use_poll) < 0) {
            fprintf(stderr, "rtt_client: warm-up: %s\n", strerror(errno));
            return 1;
        }
    double *rtts = malloc(sizeof(double) * (size_t)count);
    if (!rtts) return 1;
    long errors = 0;
    double start = now();
    for (long seq = 0; seq < count; seq++) {
        uint32_t s = (uint32_t)seq;
        memcpy(msg, &s, 4); /* little-endian hosts, as the Python clients write it */
        double t0 = now();
        int r = round_trip(fd, msg, size, buf, use_poll);
        rtts[seq] = now() - t0;
        if (r < 0) {
            fprintf(stderr, "rtt_client: round trip %ld: %s\n", seq, strerror(errno));
            return 1;
        }
        errors += r;
    }
    double total = now() - start;
    close(fd);
    double sum = 0;
    for (long i = 0; i < count; i++) sum += rtts[i];
    qsort(rtts, (size_t)count, sizeof *rtts, cmp);
    long i50 = (long)(0.5 * (double)count), i99 = (long)(0.99 * (double)count);
    if (i99 >= count) i99 = count - 1;
    printf("{\"count\": %ld, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, "
           "\"msgs_per_s\": %.0f, \"errors\": %ld}\n", count, rtts[i50] * 1e6, rtts[i99] * 1e6,
           sum / (double)count * 1e6, (double)count / total, errors);
    free(rtts);
    return 0;
}
