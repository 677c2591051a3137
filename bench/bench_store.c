/*
 * bench_store.c - the dedup store (agent/store.c) on its own:
 *   bytes per tracked object at 100k and 1M objects: kwb_store_memory()
 *   and the process RSS delta (both divided by the count);
 *   relist diff of 100k objects: the work do_list() does per listed item
 *   (get_rv, compare, mark_seen or put) plus the vanished sweep, with
 *   1 % modified, 1 % deleted and 1 % new objects;
 *   one checkpoint write (agent/checkpoint.c: the whole store, fsync,
 *   rename) at each size: the pipeline does this every
 *   checkpoint_interval_ms while events flow.
 * Objects look like the streamed ones: UUID uids, 9-digit
 * resourceVersions, names like "payments-api-7d9f8c6b5-x7k2p", 50
 * namespaces.
 *
 * Usage: bench_store [N...]   (default 100000 1000000)
 * One JSON line per figure on stdout.
 */
#include "benchgen.h"
#include "checkpoint.h"
#include "store.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const apps[] = {"web", "payments-api", "search",
                                   "ingest-worker"};

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

/* VmHWM in bytes; reset_hwm() makes it the current RSS. */
static long hwm_bytes(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmHWM: %ld", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb * 1024;
}

static void reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");

    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static void obj(uint64_t k, uint64_t rvv, char uid[37], char rv[16],
                char name[64], char ns[32])
{
    static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t h = k * 0x9e3779b97f4a7c15ull;
    char sfx[6];

    for (int i = 0; i < 5; i++) {
        sfx[i] = b36[(h >> (i * 6)) % 36];
    }
    sfx[5] = '\0';
    kwb_bgen_uid(uid, k);
    snprintf(rv, 16, "%" PRIu64, rvv);
    snprintf(name, 64, "%s-7d9f8c6b5-%s", apps[k % 4], sfx);
    snprintf(ns, 32, "team-%02u", (unsigned)(k % 50));
}

static struct kwb_store *fill(uint64_t n)
{
    struct kwb_store *s = kwb_store_new();
    char uid[37], rv[16], name[64], ns[32];

    for (uint64_t k = 0; s && k < n; k++) {
        obj(k, 100000000 + k, uid, rv, name, ns);
        if (kwb_store_put(s, uid, rv, name, ns) < 0) {
            kwb_store_free(s);
            return NULL;
        }
    }
    return s;
}

static int bytes_per_object(uint64_t n)
{
    long r0 = rss_bytes();
    double t0 = kwb_bgen_mono();
    struct kwb_store *s = fill(n);
    double t1 = kwb_bgen_mono();
    long r1 = rss_bytes();

    if (!s) {
        return -1;
    }
    {
        char dir[] = "/tmp/kwb-bench-ckpt-XXXXXX", err[256];
        struct timespec c0, c1;
        double w0, w1;
        if (mkdtemp(dir)) {
            char path[512];
            long rss0;
            reset_hwm();
            rss0 = rss_bytes();
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
            w0 = kwb_bgen_mono();
            int rc = kwb_checkpoint_write(dir, "v1/pods", "123456789", s, err,
                                          sizeof(err));
            w1 = kwb_bgen_mono();
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
            if (rc == 0) {
                printf("{\"figure\":\"checkpoint_write\",\"objects\":%" PRIu64
                       ",\"wall_s\":%.4f,\"cpu_s\":%.4f,"
                       "\"rss_peak_growth_bytes\":%ld}\n",
                       n, w1 - w0,
                       (double)(c1.tv_sec - c0.tv_sec) +
                           (double)(c1.tv_nsec - c0.tv_nsec) / 1e9,
                       hwm_bytes() - rss0);
            } else {
                fprintf(stderr, "checkpoint: %s\n", err);
            }
            /* The checkpoint module owns the names inside: remove all. */
            DIR *d = opendir(dir);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] != '.') {
                    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                    unlink(path);
                }
            }
            if (d) {
                closedir(d);
            }
            rmdir(dir);
        }
    }
    printf("{\"figure\":\"store_bytes\",\"objects\":%" PRIu64
           ",\"store_memory_per_object\":%.1f,\"rss_delta_per_object\":%.1f,"
           "\"insert_s\":%.3f}\n",
           n, (double)kwb_store_memory(s) / (double)n,
           (double)(r1 - r0) / (double)n, t1 - t0);
    fflush(stdout);
    kwb_store_free(s);
    return 0;
}

struct sweep {
    char **uids;
    size_t n, cap;
};

static int collect(void *opaque, const struct kwb_store_entry *e)
{
    struct sweep *v = opaque;

    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 64;
        char **p = realloc(v->uids, ncap * sizeof(*p));
        if (!p) {
            return 1;
        }
        v->uids = p;
        v->cap = ncap;
    }
    v->uids[v->n] = strdup(e->uid);
    if (!v->uids[v->n]) {
        return 1;
    }
    v->n++;
    return 0;
}

static int relist(uint64_t n)
{
    struct kwb_store *s = fill(n);
    char uid[37], rv[16], name[64], ns[32];
    struct sweep v = {0};
    uint64_t changed = 0, added = 0;
    long r0 = rss_bytes();
    double t0, t1;

    if (!s) {
        return -1;
    }
    t0 = kwb_bgen_mono();
    kwb_store_begin_mark(s);
    for (uint64_t k = 0; k < n + n / 100; k++) {
        const char *known;
        if (k < n && k % 100 == 1) {
            continue; /* deleted during the gap */
        }
        obj(k, k % 100 == 2 ? 900000000 + k : 100000000 + k, uid, rv, name, ns);
        known = kwb_store_get_rv(s, uid);
        if (known && strcmp(known, rv) == 0) {
            kwb_store_mark_seen(s, uid);
            continue;
        }
        if (kwb_store_put(s, uid, rv, name, ns) < 0) {
            return -1;
        }
        if (known) {
            changed++;
        } else {
            added++;
        }
    }
    kwb_store_foreach(s, 1, collect, &v);
    for (size_t i = 0; i < v.n; i++) {
        kwb_store_del(s, v.uids[i]);
        free(v.uids[i]);
    }
    t1 = kwb_bgen_mono();
    printf("{\"figure\":\"store_relist\",\"objects\":%" PRIu64
           ",\"modified\":%" PRIu64 ",\"added\":%" PRIu64
           ",\"deleted\":%zu,\"seconds\":%.4f,\"rss_delta_bytes\":%ld}\n",
           n, changed, added, v.n, t1 - t0, rss_bytes() - r0);
    free(v.uids);
    kwb_store_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t sizes[8] = {100000, 1000000};
    int nsizes = 2;

    if (argc > 1) {
        nsizes = 0;
        for (int i = 1; i < argc && nsizes < 8; i++) {
            sizes[nsizes++] = strtoull(argv[i], NULL, 10);
        }
    }
    for (int i = 0; i < nsizes; i++) {
        if (bytes_per_object(sizes[i]) < 0) {
            return 1;
        }
    }
    return relist(sizes[0]) < 0;
}
