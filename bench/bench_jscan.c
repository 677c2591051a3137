/*
 * bench_jscan.c - throughput of kwb_jscan_event() against cJSON_Parse() on
 * the same realistic ~3.6 KB pod watch lines (tests/unit/kube_samples.h).
 *
 * "stream" is the watch hot path: the lines joined with '\n', fed to the
 * framer in 16 KiB chunks (as libcurl hands them over) and each line
 * scanned.
 *
 * Usage: bench_jscan [seconds-per-run (default 2)]
 * Prints MB/s and events/s of each, single thread, per CPU second of the
 * thread (so other load on the host does not count against it).
 */
#include "framer.h"
#include "jscan.h"
#include "kube_samples.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NLINES 256

static double now(void)
{
    struct timespec ts;

    /* CPU time of this thread: the rate per core, even on a busy host */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *lines[NLINES];
static size_t lens[NLINES];

static int run_jscan(size_t i)
{
    struct kwb_jevent ev;
    struct kwb_jerr err;

    if (kwb_jscan_event(lines[i], lens[i], &ev, &err) != 0) {
        return -1;
    }
    return ev.object.uid.len > 0 ? 0 : -1;
}

static int run_cjson(size_t i)
{
    cJSON *root = cJSON_ParseWithLength(lines[i], lens[i]);
    int rc = root ? 0 : -1;

    cJSON_Delete(root);
    return rc;
}

static char *stream;
static size_t stream_len;

static int stream_line(void *opaque, const char *line, size_t len)
{
    struct kwb_jevent ev;
    struct kwb_jerr err;

    (void)opaque;
    return kwb_jscan_event(line, len, &ev, &err) != 0 || !ev.object.uid.len;
}

/* One pass over the whole stream; i is ignored (counted per line). */
static int run_stream(size_t i)
{
    static struct kwb_framer f;
    static int init;

    if (!init) {
        kwb_framer_init(&f, 1 << 20);
        init = 1;
    }
    if (i != 0) {
        return 0;
    }
    for (size_t off = 0; off < stream_len; off += 16384) {
        size_t k = stream_len - off < 16384 ? stream_len - off : 16384;

        if (kwb_framer_feed(&f, stream + off, k, stream_line, NULL, NULL)) {
            return -1;
        }
    }
    return kwb_framer_pending(&f) ? -1 : 0;
}

static void bench(const char *name, int (*fn)(size_t), double secs)
{
    double t0 = now(), t;
    unsigned long events = 0;
    size_t bytes = 0;

    do {
        for (size_t i = 0; i < NLINES; i++) {
            if (fn(i) != 0) {
                fprintf(stderr, "%s: line %zu failed\n", name, i);
                exit(1);
            }
            bytes += lens[i];
        }
        events += NLINES;
        t = now() - t0;
    } while (t < secs);
    printf("%-8s %9.1f MB/s %11.0f events/s  (%lu events, %.2f s)\n", name,
           (double)bytes / t / 1e6, (double)events / t, events, t);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    size_t total = 0;

    for (unsigned i = 0; i < NLINES; i++) {
        int n;

        lines[i] = malloc(8192);
        if (!lines[i]) {
            return 1;
        }
        n = sample_pod_event(lines[i], 8192, i % 3 ? "MODIFIED" : "ADDED",
                             i * 37 + 1);
        if (n < 0) {
            return 1;
        }
        lens[i] = (size_t)n;
        total += lens[i];
    }
    printf("%d pod lines, %.0f bytes average\n", NLINES,
           (double)total / NLINES);
    stream = malloc(total + NLINES);
    if (!stream) {
        return 1;
    }
    for (unsigned i = 0; i < NLINES; i++) {
        memcpy(stream + stream_len, lines[i], lens[i]);
        stream_len += lens[i];
        stream[stream_len++] = '\n';
    }
    bench("jscan", run_jscan, secs);
    bench("stream", run_stream, secs);
    bench("cJSON", run_cjson, secs);
    for (unsigned i = 0; i < NLINES; i++) {
        free(lines[i]);
    }
    free(stream);
    return 0;
}
