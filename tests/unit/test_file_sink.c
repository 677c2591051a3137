/*
 * test_file_sink.c - the file sink through its ops table: events become
 * lines, every token is acknowledged once after the write, and with
 * drop_cache the durable pages leave the page cache (mincore) while
 * drop_cache = false keeps them; sync_interval_ms holds a batch back until
 * the interval since the last fsync is over (flush does not wait). No
 * network, no sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>

#include "check.h"
#include "sink.h"

#define N_EVENTS     6000
#define LINE_LEN     1000 /* with the newline: 6 MB, above a drop chunk */
#define TMPFS_MAGIC_ 0x01021994

static char dir[64];
static uint64_t acked[N_EVENTS + 1];
static size_t n_acked;
static int n_bad_acks;

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status st,
                   const char *reason)
{
    (void)opaque;
    (void)reason;
    if (st != KWB_ACK_OK || n_acked >= N_EVENTS) {
        n_bad_acks++;
        return;
    }
    acked[n_acked++] = token;
}

static void on_log(int level, const char *sink, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "log %d %s: ", level, sink);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A sink from a config text; errbuf gets init's message on failure. */
static void *make_sink(config_t *cfg, const char *text, char *err,
                       size_t errsize)
{
    struct kwb_sink_env env = {.name = "file",
                               .cluster = "test",
                               .ack = on_ack,
                               .log = on_log,
                               .conf_file = "test.conf"};
    config_setting_t *g;

    config_init(cfg);
    if (config_read_string(cfg, text) != CONFIG_TRUE) {
        snprintf(err, errsize, "parse: %s", config_error_text(cfg));
        return NULL;
    }
    g = config_lookup(cfg, "s");
    return kwb_sink_file.init(g, &env, err, errsize);
}

/* Pages of `path` in the page cache, and how many pages it has. */
static long resident_pages(const char *path, long *total)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    long ps = sysconf(_SC_PAGESIZE), n, in = 0;
    unsigned char *vec;
    void *map;

    *total = 0;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    n = (st.st_size + ps - 1) / ps;
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    vec = calloc((size_t)n, 1);
    if (map == MAP_FAILED || !vec ||
        mincore(map, (size_t)st.st_size, vec) < 0) {
        in = -1;
    } else {
        for (long i = 0; i < n; i++) {
            in += vec[i] & 1;
        }
    }
    if (map != MAP_FAILED) {
        munmap(map, (size_t)st.st_size);
    }
    free(vec);
    close(fd);
    *total = n;
    return in;
}

/* Write N_EVENTS events of one batch (adjacent in memory, like the
 * pipeline's) and drive the sink until all are acknowledged. */
static void write_events(const char *conf, const char *path, int drop)
{
    config_t cfg;
    char err[256] = "";
    char *buf = malloc((size_t)N_EVENTS * LINE_LEN);
    void *s = make_sink(&cfg, conf, err, sizeof(err));
    long total = 0, in;

    CHECK(s != NULL);
    CHECK(buf != NULL);
    if (!s || !buf) {
        fprintf(stderr, "    %s\n", err);
        goto out;
    }
    CHECK_EQ_INT(kwb_sink_file.start(s), 0);
    for (int i = 0; i < N_EVENTS; i++) {
        char *line = buf + (size_t)i * LINE_LEN;
        int h = snprintf(line, LINE_LEN, "{\"n\":%d,\"pad\":\"", i);

        memset(line + h, 'a' + i % 26, LINE_LEN - h - 3);
        memcpy(line + LINE_LEN - 3, "\"}\n", 3);
        struct kwb_sink_event ev = {
            .json = line, .json_len = LINE_LEN - 1, .type = "ADDED"};
        CHECK_EQ_INT(kwb_sink_file.submit(s, &ev, (uint64_t)i + 1), 0);
    }
    n_acked = 0;
    for (int tries = 0; n_acked < N_EVENTS && tries < 100; tries++) {
        CHECK(kwb_sink_file.poll_acks(s, 0) >= 0);
    }
    CHECK_EQ_INT(n_acked, N_EVENTS);
    CHECK_EQ_INT(n_bad_acks, 0);
    for (size_t i = 0; i < n_acked; i++) {
        CHECK_EQ_INT(acked[i], i + 1);
    }

    /* Before anything reads the file back. */
    in = resident_pages(path, &total);
    CHECK(in >= 0);
    {
        struct statfs sf;

        if (statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC_) {
            fprintf(stderr,
                    "note: %s is on tmpfs, page cache residency "
                    "not checked\n",
                    path);
        } else if (drop) {
            /* Every page but the partial last one was dropped. */
            CHECK(in <= 1);
        } else {
            CHECK_EQ_INT(in, total);
        }
    }
    /* The file holds exactly the lines, in order. */
    {
        FILE *fp = fopen(path, "r");
        char *got = malloc((size_t)N_EVENTS * LINE_LEN + 1);
        size_t n =
            fp && got ? fread(got, 1, (size_t)N_EVENTS * LINE_LEN + 1, fp) : 0;

        CHECK_EQ_INT(n, (size_t)N_EVENTS * LINE_LEN);
        CHECK(n == (size_t)N_EVENTS * LINE_LEN && memcmp(got, buf, n) == 0);
        free(got);
        if (fp) {
            fclose(fp);
        }
    }

out:
    kwb_sink_file.close(s);
    config_destroy(&cfg);
    free(buf);
}

static void test_drop_cache(void)
{
    char conf[512], path[128];

    snprintf(path, sizeof(path), "%s/drop.jsonl", dir);
    snprintf(conf, sizeof(conf),
             "s = { type = \"file\"; path = \"%s\"; rotate_bytes = 0; };",
             path);
    write_events(conf, path, 1);

    snprintf(path, sizeof(path), "%s/keep.jsonl", dir);
    snprintf(conf, sizeof(conf),
             "s = { type = \"file\"; path = \"%s\"; rotate_bytes = 0; "
             "drop_cache = false; };",
             path);
    write_events(conf, path, 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Submit line n and poll once; returns what poll_acks said. */
static int one_event(void *s, int n)
{
    static char lines[8][32];
    int len = snprintf(lines[n], sizeof(lines[n]), "{\"n\":%d}\n", n);
    struct kwb_sink_event ev = {
        .json = lines[n], .json_len = (size_t)len - 1, .type = "ADDED"};

    CHECK_EQ_INT(kwb_sink_file.submit(s, &ev, (uint64_t)n), 0);
    return kwb_sink_file.poll_acks(s, 0);
}

/* A started file sink at dir/file with `extra` settings; acks counted
 * from zero. */
static void *start_sink(config_t *cfg, const char *file, const char *extra)
{
    char conf[512], path[128], err[256] = "";
    void *s;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(conf, sizeof(conf), "s = { type = \"file\"; path = \"%s\"; %s };",
             path, extra);
    s = make_sink(cfg, conf, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(kwb_sink_file.start(s), 0);
        n_acked = 0;
    }
    return s;
}

/* sync_interval_ms: a batch ready sooner than that after the last fsync
 * began waits (no ack yet); flush writes it at once. 0: no wait. */
static void test_sync_interval(void)
{
    config_t cfg;
    void *s;

    s = start_sink(&cfg, "interval.jsonl", "sync_interval_ms = 1000;");
    if (s) {
        CHECK_EQ_INT(one_event(s, 1), 1); /* the first one at once */
        CHECK_EQ_INT(one_event(s, 2), 0); /* within the second: waits */
        CHECK_EQ_INT(kwb_sink_file.poll_acks(s, 0), 0);
        CHECK_EQ_INT(n_acked, 1);
        CHECK_EQ_INT(kwb_sink_file.flush(s, now_ms() + 5000), 0);
        CHECK_EQ_INT(n_acked, 2);
        CHECK_EQ_INT(acked[1], 2);
    }
    kwb_sink_file.close(s);
    config_destroy(&cfg);

    s = start_sink(&cfg, "nointerval.jsonl", "sync_interval_ms = 0;");
    if (s) {
        CHECK_EQ_INT(one_event(s, 3), 1);
        CHECK_EQ_INT(one_event(s, 4), 1);
        CHECK_EQ_INT(n_acked, 2);
    }
    kwb_sink_file.close(s);
    config_destroy(&cfg);
}

static void test_config_errors(void)
{
    config_t cfg;
    char err[256] = "";
    void *s;

    s = make_sink(&cfg,
                  "s = { type = \"file\"; path = \"/x\"; "
                  "drop_cache = \"yes\"; };",
                  err, sizeof(err));
    CHECK(s == NULL);
    CHECK(strstr(err, "'drop_cache' must be true or false") != NULL);
    kwb_sink_file.close(s);
    config_destroy(&cfg);

    s = make_sink(&cfg,
                  "s = { type = \"file\"; path = \"/x\"; "
                  "sync_interval_ms = -1; };",
                  err, sizeof(err));
    CHECK(s == NULL);
    CHECK(strstr(err, "'sync_interval_ms' must be 0..1000") != NULL);
    kwb_sink_file.close(s);
    config_destroy(&cfg);
}

int main(void)
{
    char cmd[128];

    snprintf(dir, sizeof(dir), "test_file_sink.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_drop_cache();
    test_sync_interval();
    test_config_errors();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
    return check_report();
}
