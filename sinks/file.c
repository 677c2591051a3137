/*
 * file.c - the file sink: JSON lines, acknowledged after write + fsync.
 *
 * Events submitted between two poll_acks() calls form one batch: one
 * writev (adjacent events coalesced into one iovec), one fsync, then every
 * token of the batch is acknowledged. A failed write is rolled back with
 * ftruncate so the file never keeps half a line, and retried later.
 * Size-based rotation: path -> path.1 -> ... -> path.<rotate_keep>.
 *
 * sync_interval_ms (default 1): at most one write + fsync begins per
 * interval; events that come sooner go into the next one. Syncing as soon
 * as each fsync returned (~2.5k fsyncs/s at 10k events/s) made the
 * benchmark machine's hypervisor stop the whole VM for ~8 ms every 100 ms,
 * which set the p99 (10-13 ms); one per ms (~900/s) the stalls were gone:
 * p99 2.4-5.9 ms, p50 0.65 -> 1.05 ms, less CPU (BENCHMARKS.md, Latency).
 * 0: sync as soon as a batch is ready.
 *
 * Once a batch is durable its pages are clean and we never read them again:
 * drop_cache (default on with fsync) hands them back to the kernel with
 * POSIX_FADV_DONTNEED. The page cache the sink fills then stays at about a
 * batch instead of growing with the file, which matters in a container
 * (page cache counts against the pod's memory cgroup) and saves the kernel
 * allocating fresh pages for every write (measured: about 4x less system
 * time per byte written on the benchmark machine; BENCHMARKS.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>

#include "sink.h"

#define MAX_PENDING 65536
#define RETRY_MS    1000
/* drop_cache hands pages back once this much is durable */
#define DROP_CHUNK ((off_t)4 << 20)

struct file_sink {
    struct kwb_sink_env env;
    char *name;
    char *path;
    long long rotate_bytes; /* 0: never */
    int rotate_keep;
    int do_fsync;
    int drop_cache;
    int64_t sync_gap_ns;  /* sync_interval_ms; 0: none */
    int64_t last_sync_ns; /* CLOCK_MONOTONIC: the last write + fsync began */
    int flushing;         /* file_flush: no sync_interval wait */
    off_t dropped;        /* pages before this offset were handed back */
    int fd;
    off_t size;

    struct iovec *iov;
    size_t n_iov, iov_cap;
    uint64_t *tokens;
    size_t n_tokens;
    size_t pending_bytes;
    int64_t next_try_ms;
    int failing;
};

static const char *const file_keys[] = {
    "path",       "rotate_bytes",     "rotate_keep", "fsync",
    "drop_cache", "sync_interval_ms", NULL};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void file_close(void *state);

static void *file_init(const config_setting_t *group,
                       const struct kwb_sink_env *env, char *errbuf,
                       size_t errsize)
{
    struct file_sink *f = calloc(1, sizeof(*f));
    const char *path = NULL;
    long long rb = 0;
    int keep = 5, fs = 1, drop = 1, gap_ms = 1;
    config_setting_t *s;

    if (!f) {
        snprintf(errbuf, errsize, "out of memory");
        return NULL;
    }
    f->fd = -1;
    if (!config_setting_lookup_string(group, "path", &path) || !path[0]) {
        snprintf(errbuf, errsize, "'path' is required (a string)");
        goto fail;
    }
    s = config_setting_get_member(group, "rotate_bytes");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_INT &&
            config_setting_type(s) != CONFIG_TYPE_INT64) {
            snprintf(errbuf, errsize, "'rotate_bytes' must be an integer");
            goto fail;
        }
        rb = config_setting_get_int64(s);
        if (config_setting_type(s) == CONFIG_TYPE_INT) {
            rb = config_setting_get_int(s);
        }
        if (rb < 0) {
            snprintf(errbuf, errsize, "'rotate_bytes' must be >= 0");
            goto fail;
        }
    } else {
        rb = 100ll * 1024 * 1024;
    }
    s = config_setting_get_member(group, "rotate_keep");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_INT) {
            snprintf(errbuf, errsize, "'rotate_keep' must be an integer");
            goto fail;
        }
        keep = config_setting_get_int(s);
        if (keep < 1 || keep > 1000) {
            snprintf(errbuf, errsize, "'rotate_keep' must be 1..1000");
            goto fail;
        }
    }
    s = config_setting_get_member(group, "fsync");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            snprintf(errbuf, errsize, "'fsync' must be true or false");
            goto fail;
        }
        fs = config_setting_get_bool(s);
    }
    s = config_setting_get_member(group, "drop_cache");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            snprintf(errbuf, errsize, "'drop_cache' must be true or false");
            goto fail;
        }
        drop = config_setting_get_bool(s);
    }
    s = config_setting_get_member(group, "sync_interval_ms");
    if (s) {
        if (config_setting_type(s) != CONFIG_TYPE_INT) {
            snprintf(errbuf, errsize, "'sync_interval_ms' must be an integer");
            goto fail;
        }
        gap_ms = config_setting_get_int(s);
        if (gap_ms < 0 || gap_ms > 1000) {
            snprintf(errbuf, errsize, "'sync_interval_ms' must be 0..1000");
            goto fail;
        }
    }
    f->env = *env;
    f->sync_gap_ns = (int64_t)gap_ms * 1000000;
    f->name = strdup(env->name);
    f->path = strdup(path);
    f->rotate_bytes = rb;
    f->rotate_keep = keep;
    f->do_fsync = fs;
    /* Without fsync the pages are still dirty: DONTNEED would only start
     * their writeback early, so it is off. */
    f->drop_cache = fs && drop;
    if (!f->name || !f->path) {
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    return f;
fail:
    file_close(f);
    return NULL;
}

static int file_open(struct file_sink *f)
{
    struct stat st;

    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (f->fd < 0) {
        return -errno;
    }
    if (fstat(f->fd, &st) < 0) {
        int rc = -errno;
        close(f->fd);
        f->fd = -1;
        return rc;
    }
    f->size = st.st_size;
    f->dropped = 0;
    return 0;
}

/*
 * A crash (SIGKILL, power loss) in the middle of a write can leave part of
 * a line at the end of the file. Those bytes were never acknowledged, so
 * the events will be delivered again: cut the partial line off so the
 * file stays valid JSON lines.
 */
static int repair_tail(struct file_sink *f)
{
    char buf[4096];
    off_t end = f->size, pos;
    ssize_t n;

    if (end == 0) {
        return 0;
    }
    if (pread(f->fd, buf, 1, end - 1) != 1) {
        return -errno;
    }
    if (buf[0] == '\n') {
        return 0;
    }
    pos = end;
    while (pos > 0) {
        size_t want = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
        n = pread(f->fd, buf, want, pos - (off_t)want);
        if (n != (ssize_t)want) {
            return n < 0 ? -errno : -EIO;
        }
        char *nl = memrchr(buf, '\n', want);
        if (nl) {
            pos = pos - (off_t)want + (nl - buf) + 1;
            break;
        }
        pos -= (off_t)want;
    }
    if (ftruncate(f->fd, pos) < 0) {
        return -errno;
    }
    f->env.log(2, f->name,
               "%s ended in a partial line (%lld bytes, left by a crash, "
               "never acknowledged): removed; those events are delivered "
               "again",
               f->path, (long long)(end - pos));
    f->size = pos;
    return 0;
}

static int file_start(void *state)
{
    struct file_sink *f = state;
    int rc = file_open(f);

    if (rc == 0) {
        rc = repair_tail(f);
    }
    if (rc < 0) {
        f->env.log(3, f->name, "cannot open %s: %s", f->path, strerror(-rc));
    }
    return rc;
}

static int file_ready(void *state)
{
    return ((struct file_sink *)state)->fd >= 0;
}

static int file_submit(void *state, const struct kwb_sink_event *ev,
                       uint64_t token)
{
    struct file_sink *f = state;
    size_t len = ev->json_len + 1; /* with its '\n' */

    if (f->n_tokens >= MAX_PENDING) {
        return -EAGAIN;
    }
    if (f->n_tokens == 0) {
        f->n_iov = 0;
    }
    if (f->n_iov > 0 && (const char *)f->iov[f->n_iov - 1].iov_base +
                                f->iov[f->n_iov - 1].iov_len ==
                            ev->json) {
        f->iov[f->n_iov - 1].iov_len += len;
    } else {
        if (f->n_iov == f->iov_cap) {
            size_t ncap = f->iov_cap ? f->iov_cap * 2 : 256;
            struct iovec *n = realloc(f->iov, ncap * sizeof(*n));
            if (!n) {
                return -EAGAIN;
            }
            f->iov = n;
            f->iov_cap = ncap;
        }
        f->iov[f->n_iov].iov_base = (void *)ev->json;
        f->iov[f->n_iov].iov_len = len;
        f->n_iov++;
    }
    if (!f->tokens) {
        f->tokens = malloc(MAX_PENDING * sizeof(*f->tokens));
        if (!f->tokens) {
            f->n_iov--; /* undo: nothing else references it yet */
            return -EAGAIN;
        }
    }
    f->tokens[f->n_tokens++] = token;
    f->pending_bytes += len;
    return 0;
}

static int rotate(struct file_sink *f)
{
    char from[PATH_MAX], to[PATH_MAX];

    if (f->do_fsync && fsync(f->fd) < 0) {
        return -errno;
    }
    close(f->fd);
    f->fd = -1;
    for (int i = f->rotate_keep; i >= 1; i--) {
        if (i == 1) {
            snprintf(from, sizeof(from), "%s", f->path);
        } else {
            snprintf(from, sizeof(from), "%s.%d", f->path, i - 1);
        }
        snprintf(to, sizeof(to), "%s.%d", f->path, i);
        if (rename(from, to) < 0 && errno != ENOENT) {
            return -errno;
        }
    }
    return file_open(f);
}

/* Write every pending iovec; on failure roll the file back. */
static int write_batch(struct file_sink *f)
{
    struct iovec *iov = f->iov;
    size_t n = f->n_iov;
    off_t start = f->size;
    int rc = 0;

    f->last_sync_ns = mono_ns();
    if (f->fd < 0 && (rc = file_open(f)) < 0) {
        return rc;
    }
    if (f->rotate_bytes > 0 && f->size > 0 &&
        f->size + (off_t)f->pending_bytes > f->rotate_bytes) {
        rc = rotate(f);
        if (rc < 0) {
            return rc;
        }
        start = f->size;
    }
    /* writev may be partial: walk the iovecs, never modifying the
     * pipeline's bytes (only our iovec copies). */
    size_t i = 0, off = 0;
    while (i < n) {
        struct iovec tmp[IOV_MAX];
        int cnt = 0;
        for (size_t j = i; j < n && cnt < IOV_MAX; j++, cnt++) {
            tmp[cnt] = iov[j];
            if (j == i) {
                tmp[cnt].iov_base = (char *)iov[j].iov_base + off;
                tmp[cnt].iov_len -= off;
            }
        }
        ssize_t w = writev(f->fd, tmp, cnt);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        size_t left = (size_t)w;
        while (left && i < n) {
            size_t rem = iov[i].iov_len - off;
            if (left >= rem) {
                left -= rem;
                i++;
                off = 0;
            } else {
                off += left;
                left = 0;
            }
        }
    }
    if (rc == 0 && f->do_fsync && fdatasync(f->fd) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        /* Never leave half a batch: a later retry writes it whole. */
        if (ftruncate(f->fd, start) < 0) {
            f->env.log(3, f->name, "cannot roll back %s: %s", f->path,
                       strerror(errno));
        }
        return rc;
    }
    f->size = start + (off_t)f->pending_bytes;
    if (f->drop_cache && f->size - f->dropped >= DROP_CHUNK) {
        /* From the page holding the last drop's end (it was partial
         * then); the kernel keeps the partial last page, which the next
         * batch appends to. Chunks of DROP_CHUNK keep the calls (and
         * their LRU drains) rare. Advice only: a failure changes
         * nothing. */
        off_t from = f->dropped & ~(off_t)4095;
        (void)posix_fadvise(f->fd, from, f->size - from, POSIX_FADV_DONTNEED);
        f->dropped = f->size & ~(off_t)4095;
    }
    return 0;
}

static int file_poll_acks(void *state, int timeout_ms)
{
    struct file_sink *f = state;
    size_t n;
    int rc;

    (void)timeout_ms;
    if (f->n_tokens == 0) {
        return 0;
    }
    if (f->failing && mono_ms() < f->next_try_ms) {
        return 0;
    }
    /* At most one fsync begins per sync_interval_ms; what comes meanwhile
     * waits for the next one (see the header comment). */
    if (f->do_fsync && f->sync_gap_ns > 0 && !f->flushing &&
        mono_ns() - f->last_sync_ns < f->sync_gap_ns) {
        return 0;
    }
    rc = write_batch(f);
    if (rc < 0) {
        if (!f->failing) {
            f->env.log(3, f->name, "cannot write %s: %s (retrying)", f->path,
                       strerror(-rc));
        }
        f->failing = 1;
        f->next_try_ms = mono_ms() + RETRY_MS;
        return 0;
    }
    if (f->failing) {
        f->env.log(1, f->name, "writing %s again", f->path);
        f->failing = 0;
    }
    n = f->n_tokens;
    f->n_tokens = 0;
    f->n_iov = 0;
    f->pending_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        f->env.ack(f->env.ack_opaque, f->tokens[i], KWB_ACK_OK, NULL);
    }
    return (int)n;
}

static int file_flush(void *state, int64_t deadline_ms)
{
    struct file_sink *f = state;

    f->flushing = 1;
    while (f->n_tokens > 0) {
        file_poll_acks(f, 0);
        if (f->n_tokens == 0 || mono_ms() >= deadline_ms) {
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    f->flushing = 0;
    return f->n_tokens ? -ETIMEDOUT : 0;
}

static void file_close(void *state)
{
    struct file_sink *f = state;

    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    free(f->iov);
    free(f->tokens);
    free(f->path);
    free(f->name);
    free(f);
}

const struct kwb_sink_ops kwb_sink_file = {
    .type = "file",
    .caps = KWB_SINK_CAP_BATCH,
    .keys = file_keys,
    .init = file_init,
    .start = file_start,
    .submit = file_submit,
    .poll_acks = file_poll_acks,
    .flush = file_flush,
    .ready = file_ready,
    .close = file_close,
};
