/*
 * anchors.c - the reference points the agent is compared with, on the
 * same bytes streamd serves (same generator, same seeds):
 *   parse      cJSON_ParseWithLength of every event line (in memory)
 *   print      cJSON parse + PrintUnformatted + write to a file (256 KiB
 *              buffered writes), one fsync at the end
 *   io         read the watch stream from streamd (the socket, framing
 *              included) + write every read to a file, one fsync at the
 *              end: the I/O floor
 *   synclat    the latency floor of this machine's disk and scheduler:
 *              lines fall due at --rate per second; every millisecond the
 *              due lines are appended with one write and one fdatasync.
 *              Latency of a line = fdatasync's return - its due time.
 *              Prints p50/p99/p99.9/max (ms). Only with --only synclat.
 *
 * Usage: anchors --kind pods|events --events N --dir DIR [--port P]
 *                [--pool N] [--only parse|print|io|synclat] [--rate R]
 * (--port: a running streamd serving --count >= N without --gate and no
 * other watch; without it the io anchor is skipped.)
 * One JSON line per anchor on stdout: wall and CPU seconds (process CPU,
 * CLOCK_PROCESS_CPUTIME_ID), events/s, CPU seconds per 100k events.
 */
#include "benchgen.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NLINES 2000 /* distinct lines cycled over (a multiple of 20) */
#define WBUF   (256 * 1024)

static struct kwb_bgen gen;
static char *lines[NLINES];
static size_t lens[NLINES];
static uint64_t pool = 10000;

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *name, uint64_t n, double wall, double cpu,
                   uint64_t bytes)
{
    printf("{\"anchor\":\"%s\",\"kind\":\"%s\",\"events\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"wall_s\":%.4f,\"cpu_s\":%.4f,"
           "\"events_per_s\":%.0f,\"cpu_s_per_100k\":%.4f}\n",
           name, gen.resource, n, bytes, wall, cpu, (double)n / wall,
           cpu * 100000.0 / (double)n);
    fflush(stdout);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int anchor_parse(uint64_t n)
{
    double w0 = kwb_bgen_mono(), c0 = cpu_now();
    uint64_t bytes = 0;

    for (uint64_t i = 0; i < n; i++) {
        cJSON *root =
            cJSON_ParseWithLength(lines[i % NLINES], lens[i % NLINES]);
        if (!root) {
            fprintf(stderr, "cJSON rejected line %" PRIu64 "\n", i);
            return -1;
        }
        bytes += lens[i % NLINES];
        cJSON_Delete(root);
    }
    report("parse", n, kwb_bgen_mono() - w0, cpu_now() - c0, bytes);
    return 0;
}

static int anchor_print(uint64_t n, const char *dir)
{
    char path[4096];
    char *buf = malloc(WBUF);
    size_t have = 0;
    uint64_t bytes = 0;
    int fd, rc = -1;
    double w0, c0;

    snprintf(path, sizeof(path), "%s/anchor-print.jsonl", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || !buf) {
        perror(path);
        goto out;
    }
    w0 = kwb_bgen_mono();
    c0 = cpu_now();
    for (uint64_t i = 0; i < n; i++) {
        cJSON *root =
            cJSON_ParseWithLength(lines[i % NLINES], lens[i % NLINES]);
        char *s = root ? cJSON_PrintUnformatted(root) : NULL;
        size_t len;

        if (!s) {
            cJSON_Delete(root);
            goto out;
        }
        len = strlen(s);
        if (have + len + 1 > WBUF) {
            if (write_all(fd, buf, have) < 0) {
                free(s);
                cJSON_Delete(root);
                goto out;
            }
            have = 0;
        }
        if (len + 1 > WBUF) {
            free(s);
            cJSON_Delete(root);
            goto out;
        }
        memcpy(buf + have, s, len);
        buf[have + len] = '\n';
        have += len + 1;
        bytes += len + 1;
        free(s);
        cJSON_Delete(root);
    }
    if (write_all(fd, buf, have) < 0 || fsync(fd) < 0) {
        goto out;
    }
    report("print", n, kwb_bgen_mono() - w0, cpu_now() - c0, bytes);
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(buf);
    return rc;
}

static int anchor_io(uint64_t n, const char *dir, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    char path[4096], req[256];
    char *buf = malloc(WBUF);
    uint64_t want = 0, got = 0;
    int fd = -1, sock = -1, rc = -1;
    double w0, c0;

    for (uint64_t s = 0; s < n; s++) {
        want += kwb_bgen_chunk_len(&gen, s, pool);
    }
    snprintf(path, sizeof(path), "%s/anchor-io.out", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    sock = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || sock < 0 || !buf ||
        connect(sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("anchor io");
        goto out;
    }
    snprintf(req, sizeof(req),
             "GET /api/v1/%s?watch=1&resourceVersion=0 HTTP/1.1\r\n"
             "Host: 127.0.0.1\r\n\r\n",
             gen.resource);
    w0 = kwb_bgen_mono();
    c0 = cpu_now();
    if (write_all(sock, req, strlen(req)) < 0) {
        goto out;
    }
    {
        /* The response header is not counted. */
        size_t hl = 0;
        char *e = NULL;
        while (!e) {
            ssize_t r = read(sock, buf + hl, WBUF - hl);
            if (r <= 0) {
                goto out;
            }
            hl += (size_t)r;
            e = memmem(buf, hl, "\r\n\r\n", 4);
        }
        got = hl - (size_t)(e + 4 - buf);
        if (write_all(fd, e + 4, got) < 0) {
            goto out;
        }
    }
    while (got < want) {
        ssize_t r = read(sock, buf, WBUF);
        if (r <= 0 || write_all(fd, buf, (size_t)r) < 0) {
            goto out;
        }
        got += (uint64_t)r;
    }
    if (fsync(fd) < 0) {
        goto out;
    }
    report("io", n, kwb_bgen_mono() - w0, cpu_now() - c0, got);
    rc = 0;
out:
    if (sock >= 0) {
        close(sock);
    }
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(buf);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double pctl(const double *v, uint64_t n, double p)
{
    uint64_t i = (uint64_t)(p / 100.0 * (double)(n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

/* n lines at `rate` per second, written and fdatasync'd each millisecond. */
static int anchor_synclat(uint64_t n, const char *dir, uint64_t rate)
{
    char path[4096];
    double *lat = malloc(n * sizeof(*lat));
    char *buf = malloc(WBUF);
    int fd = -1, rc = -1;
    uint64_t done = 0, k = 0;
    double t0;

    snprintf(path, sizeof(path), "%s/anchor-synclat.jsonl", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0 || !lat || !buf) {
        goto out;
    }
    t0 = kwb_bgen_mono();
    while (done < n) {
        double now = kwb_bgen_mono();
        /* lines done..due-1 are due by now */
        uint64_t due = (uint64_t)((now - t0) * (double)rate) + 1;
        size_t len = 0;
        uint64_t first = done;

        if (due > n) {
            due = n;
        }
        while (done < due && len + lens[k % NLINES] <= WBUF) {
            memcpy(buf + len, lines[k % NLINES], lens[k % NLINES]);
            len += lens[k % NLINES];
            k++;
            done++;
        }
        if (len) {
            if (write_all(fd, buf, len) < 0 || fdatasync(fd) < 0) {
                goto out;
            }
            now = kwb_bgen_mono();
            for (uint64_t i = first; i < done; i++) {
                lat[i] = (now - (t0 + (double)i / (double)rate)) * 1000.0;
            }
        }
        /* to the next millisecond */
        {
            double next =
                t0 + (double)((uint64_t)((now - t0) * 1000.0) + 1) / 1000.0;
            double wait = next - kwb_bgen_mono();

            if (wait > 0) {
                struct timespec ts = {0, (long)(wait * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
    }
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf("{\"anchor\":\"synclat\",\"kind\":\"%s\",\"events\":%" PRIu64
           ",\"rate\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
           gen.resource, n, rate, pctl(lat, n, 50), pctl(lat, n, 99),
           pctl(lat, n, 99.9), lat[n - 1]);
    fflush(stdout);
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    free(lat);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"kind", 1, NULL, 'k'}, {"events", 1, NULL, 'n'},
        {"dir", 1, NULL, 'd'},  {"port", 1, NULL, 'p'},
        {"pool", 1, NULL, 'P'}, {"only", 1, NULL, 'o'},
        {"rate", 1, NULL, 'r'}, {NULL, 0, NULL, 0}};
    const char *kind = "pods", *dir = ".", *only = NULL;
    uint64_t n = 100000, rate = 10000;
    int port = 0, c, rc = 0;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            kind = optarg;
            break;
        case 'n':
            n = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'P':
            pool = strtoull(optarg, NULL, 10);
            break;
        case 'o':
            only = optarg;
            break;
        case 'r':
            rate = strtoull(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: anchors --kind pods|events --events N "
                            "--dir DIR [--port P] [--only A]\n");
            return 2;
        }
    }
    if (kwb_bgen_init(&gen, kind) < 0 || n == 0 || pool == 0 || rate == 0) {
        fprintf(stderr, "anchors: bad arguments\n");
        return 2;
    }
    for (int i = 0; i < NLINES; i++) {
        lines[i] = malloc(16384);
        lens[i] = lines[i] ? kwb_bgen_line(&gen, lines[i], 16384, (uint64_t)i,
                                           pool, 0)
                           : 0;
        if (!lens[i]) {
            return 1;
        }
    }
    if (!only || strcmp(only, "parse") == 0) {
        rc |= anchor_parse(n);
    }
    if (!only || strcmp(only, "print") == 0) {
        rc |= anchor_print(n, dir);
    }
    if (port && (!only || strcmp(only, "io") == 0)) {
        rc |= anchor_io(n, dir, port);
    }
    if (only && strcmp(only, "synclat") == 0) {
        rc |= anchor_synclat(n, dir, rate);
    }
    for (int i = 0; i < NLINES; i++) {
        free(lines[i]);
    }
    kwb_bgen_free(&gen);
    return rc ? 1 : 0;
}
