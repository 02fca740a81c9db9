/*
 * stderr-flood: a stand-in daemon that floods stderr, for the "never stop
 * draining the daemon's output" tests.
 *
 * Usage:
 *   stderr-flood [--bytes N] [--seed S] [--long-every K] [--long-bytes L]
 *                [--tail-bytes T] [--print-ready] [--linger]
 *
 *   --bytes N       write at least N bytes of numbered lines (default 209715200);
 *                   stops at the first line boundary at or after N.
 *   --seed S        PRNG seed, output is reproducible for a given seed (default 1).
 *   --long-every K  every K-th line (n % K == K-1) is a long line (default 50, 0 = never).
 *   --long-bytes L  payload size of a long line (default 1048576); it is written
 *                   in 64 KiB pieces, so the reader sees a long run without a
 *                   newline that is only terminated later.
 *   --tail-bytes T  after the summary line, write T more bytes with NO newline
 *                   (default 1048576, 0 = none); the reader only gets them at EOF.
 *   --print-ready   first print the C virtiofsd readiness line
 *                   "virtio_session_mount: Waiting for vhost-user socket connection..."
 *   --linger        after everything, stay alive (pause()) until killed.
 *
 * stderr format (every numbered line; <len> = payload bytes after the header):
 *   #<n> <len> <payload>\n          payload = 'a'..'z' cycling from (n % 26)
 * then the summary line
 *   flood-done lines=<count> bytes=<b> long=<k> max_write_block_us=<m> total_write_block_us=<t> seed=<s>\n
 *   (<count> numbered lines #0..#count-1, <b> bytes of them, <k> long ones;
 *    write timings are measured with CLOCK_MONOTONIC around each write())
 * then the unterminated tail "#tail <T> xxxx..." (T bytes in total).
 * Finally the same summary, now including the tail's write, goes to stdout.
 *
 * Exit status: 0 on success, 2 on usage error, 3 if a write to stderr fails
 * (e.g. EPIPE; SIGPIPE is ignored); the reason is then printed on stdout.
 *
 * Build: cc -O2 -Wall -o build/helpers/stderr-flood test/helpers/stderr-flood.c
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SHORT_LINE 65536u /* max random payload length */
#define PIECE 65536u          /* write size for long lines / tail */

static uint64_t max_block_ns;
static uint64_t total_block_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Write all of buf to fd 2, timing every write() call. Exits 3 on failure. */
static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        uint64_t t0 = now_ns();
        ssize_t w = write(STDERR_FILENO, buf, len);
        uint64_t dt = now_ns() - t0;
        if (dt > max_block_ns) {
            max_block_ns = dt;
        }
        total_block_ns += dt;
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            printf("flood-error write: %s\n", strerror(errno));
            fflush(stdout);
            exit(3);
        }
        buf += w;
        len -= (size_t)w;
    }
}

/* splitmix64: small, seedable, good enough for test data. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_payload(char *p, size_t len, uint64_t n)
{
    unsigned c = (unsigned)(n % 26u);
    for (size_t i = 0; i < len; i++) {
        p[i] = (char)('a' + c);
        if (++c == 26u) {
            c = 0;
        }
    }
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: stderr-flood [--bytes N] [--seed S] [--long-every K] [--long-bytes L] "
                    "[--tail-bytes T] [--print-ready] [--linger]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t total = 209715200u, seed = 1, long_every = 50, long_bytes = 1048576u, tail_bytes = 1048576u;
    int print_ready = 0, linger = 0;

    for (int i = 1; i < argc; i++) {
        uint64_t *target = NULL;
        if (strcmp(argv[i], "--print-ready") == 0) {
            print_ready = 1;
            continue;
        } else if (strcmp(argv[i], "--linger") == 0) {
            linger = 1;
            continue;
        } else if (strcmp(argv[i], "--bytes") == 0) {
            target = &total;
        } else if (strcmp(argv[i], "--seed") == 0) {
            target = &seed;
        } else if (strcmp(argv[i], "--long-every") == 0) {
            target = &long_every;
        } else if (strcmp(argv[i], "--long-bytes") == 0) {
            target = &long_bytes;
        } else if (strcmp(argv[i], "--tail-bytes") == 0) {
            target = &tail_bytes;
        } else {
            fprintf(stderr, "stderr-flood: unknown argument '%s'\n", argv[i]);
            usage();
        }
        if (i + 1 >= argc || parse_u64(argv[i + 1], target) != 0) {
            fprintf(stderr, "stderr-flood: %s needs a non-negative integer\n", argv[i]);
            usage();
        }
        i++;
    }

    signal(SIGPIPE, SIG_IGN);
    rng_state = seed;

    /* One buffer big enough for header + the largest short line + newline. */
    size_t bufsize = 64 + MAX_SHORT_LINE + 1;
    if (bufsize < 64 + PIECE) {
        bufsize = 64 + PIECE;
    }
    char *buf = malloc(bufsize);
    if (buf == NULL) {
        perror("malloc");
        return 1;
    }

    if (print_ready) {
        static const char ready[] = "virtio_session_mount: Waiting for vhost-user socket connection...\n";
        write_all(ready, sizeof ready - 1);
    }

    uint64_t written = 0, n = 0, nlong = 0;
    while (written < total) {
        int is_long = long_every > 0 && n % long_every == long_every - 1;
        uint64_t len;
        if (is_long) {
            len = long_bytes;
        } else if (rng_next() & 1u) {
            len = rng_next() % 256u; /* many short lines: exercises the hot path */
        } else {
            len = rng_next() % (MAX_SHORT_LINE + 1u); /* 0 .. 64 KiB */
        }
        int hl = snprintf(buf, 64, "#%" PRIu64 " %" PRIu64 " ", n, len);
        if (!is_long) {
            fill_payload(buf + hl, (size_t)len, n);
            buf[(size_t)hl + (size_t)len] = '\n';
            write_all(buf, (size_t)hl + (size_t)len + 1);
        } else {
            /* Header, then the payload in 64 KiB pieces, then the newline. */
            write_all(buf, (size_t)hl);
            uint64_t off = 0;
            while (off < len) {
                size_t piece = (size_t)(len - off < PIECE ? len - off : PIECE);
                /* keep the a..z cycle continuous across pieces */
                fill_payload(buf, piece, n + off);
                write_all(buf, piece);
                off += piece;
            }
            write_all("\n", 1);
            nlong++;
        }
        written += (uint64_t)hl + len + 1;
        n++;
    }

    char summary[256];
    int sl = snprintf(summary, sizeof summary,
                      "flood-done lines=%" PRIu64 " bytes=%" PRIu64 " long=%" PRIu64
                      " max_write_block_us=%" PRIu64 " total_write_block_us=%" PRIu64 " seed=%" PRIu64 "\n",
                      n, written, nlong, max_block_ns / 1000u, total_block_ns / 1000u, seed);
    write_all(summary, (size_t)sl);

    if (tail_bytes > 0) {
        int hl = snprintf(buf, 64, "#tail %" PRIu64 " ", tail_bytes);
        uint64_t left = tail_bytes > (uint64_t)hl ? tail_bytes - (uint64_t)hl : 0;
        write_all(buf, tail_bytes < (uint64_t)hl ? (size_t)tail_bytes : (size_t)hl);
        while (left > 0) {
            size_t piece = (size_t)(left < PIECE ? left : PIECE);
            memset(buf, 'x', piece);
            write_all(buf, piece);
            left -= piece;
        }
    }

    printf("flood-done lines=%" PRIu64 " bytes=%" PRIu64 " long=%" PRIu64
           " max_write_block_us=%" PRIu64 " total_write_block_us=%" PRIu64 " seed=%" PRIu64
           " tail=%" PRIu64 "\n",
           n, written, nlong, max_block_ns / 1000u, total_block_ns / 1000u, seed, tail_bytes);
    fflush(stdout);
    free(buf);

    if (linger) {
        for (;;) {
            pause();
        }
    }
    return 0;
}
