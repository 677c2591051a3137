/*
 * pipeline.c - sinks, acknowledgements, dead letters and checkpoints.
 * See pipeline.h.
 *
 * Ordering model:
 * - in-flight list: every batch in hand-off order; each sink walks it with
 *   its own cursor, so every sink sees the events in the same order.
 * - per-watch FIFO: the watch's batches in stream order. An item is
 *   applied to the watch's committed store (and moves its resume RV) only
 *   when it and every item before it are acknowledged by every sink: the
 *   checkpoint is a low-water mark, never a high one.
 * - tokens are item addresses: items never move after hand-off.
 */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cmstate.h"
#include "event.h"
#include "log.h"
#include "sink.h"

/* ---- batches (built on watch threads) ---------------------------------- */

struct kwb_batch *kwb_batch_new(size_t watch)
{
    struct kwb_batch *b = calloc(1, sizeof(*b));

    if (b) {
        b->watch = watch;
    }
    return b;
}

void kwb_batch_free(struct kwb_batch *b)
{
    if (!b) {
        return;
    }
    if (b->json) {
        munmap(b->json, b->json_cap);
    }
    free(b->str);
    free(b->items);
    free(b);
}

void kwb_batch_reset(struct kwb_batch *b)
{
    b->json_len = 0;
    b->str_len = 0;
    b->n_items = 0;
    b->n_events = 0;
    b->applied = 0;
    b->inflight = 0;
    b->next = b->prev = b->w_next = NULL;
}

size_t kwb_batch_bytes(const struct kwb_batch *b)
{
    return b->json_len + b->str_len + b->n_items * sizeof(struct kwb_item);
}

static void take_pooled(struct kwb_batch *b);

/* Capacity for `need` bytes: doubling up to 1 MiB, then by a quarter (a
 * batch is handed over at about 1 MiB: doubling would leave most of a
 * second MiB unused in every batch). */
static int grow_buf(char **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 4096;
    char *n;

    while (ncap < need) {
        ncap += ncap < ((size_t)1 << 20) ? ncap : ncap / 4;
    }
    if (ncap == *cap) {
        return 0;
    }
    n = realloc(*buf, ncap);
    if (!n) {
        return -ENOMEM;
    }
    *buf = n;
    *cap = ncap;
    return 0;
}

/*
 * The JSON buffer is a mapping of its own, not malloc memory: it grows by
 * mremap (no copy), and when the pool frees it the pages go back to the
 * system at once. From malloc, a thread's arena kept the freed batches at
 * its top, which malloc_trim() does not return (glibc trims only the
 * main arena's top): ~3 MB stayed resident in an idle agent.
 */
static int grow_json(struct kwb_batch *b, size_t need)
{
    size_t ncap = b->json_cap ? b->json_cap : 4096;
    void *n;

    while (ncap < need) {
        ncap += ncap < ((size_t)1 << 20) ? ncap : ncap / 4;
    }
    ncap = (ncap + 4095) & ~(size_t)4095;
    if (ncap == b->json_cap) {
        return 0;
    }
    n = b->json ? mremap(b->json, b->json_cap, ncap, MREMAP_MAYMOVE)
                : mmap(NULL, ncap, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (n == MAP_FAILED) {
        return -ENOMEM;
    }
    b->json = n;
    b->json_cap = ncap;
    return 0;
}

uint32_t kwb_batch_str(struct kwb_batch *b, const char *s, size_t len)
{
    uint32_t off;

    if (b->owner) {
        take_pooled(b);
    }
    if (b->str_len + len + 1 > UINT32_MAX - 1 ||
        grow_buf(&b->str, &b->str_cap, b->str_len + len + 1) < 0) {
        return KWB_NO_OFF;
    }
    off = (uint32_t)b->str_len;
    memcpy(b->str + off, s, len);
    b->str[off + len] = '\0';
    b->str_len += len + 1;
    return off;
}

char *kwb_batch_json_reserve(struct kwb_batch *b, size_t n)
{
    if (b->owner) {
        take_pooled(b);
    }
    if (grow_json(b, b->json_len + n) < 0) {
        return NULL;
    }
    return b->json + b->json_len;
}

struct kwb_item *kwb_batch_item(struct kwb_batch *b)
{
    struct kwb_item *it;

    if (b->owner) {
        take_pooled(b);
    }
    if (b->n_items == b->items_cap) {
        size_t ncap = b->items_cap ? b->items_cap * 2 : 64;
        struct kwb_item *n = realloc(b->items, ncap * sizeof(*n));
        if (!n) {
            return NULL;
        }
        b->items = n;
        b->items_cap = ncap;
    }
    it = &b->items[b->n_items++];
    memset(it, 0, sizeof(*it));
    it->uid = it->rv = it->name = it->ns = KWB_NO_OFF;
    it->kind = it->api_version = it->resume_rv = KWB_NO_OFF;
    return it;
}

int kwb_batch_mark(struct kwb_batch *b, const char *rv)
{
    struct kwb_item *it = kwb_batch_item(b);

    if (!it) {
        return -ENOMEM;
    }
    it->item_kind = KWB_ITEM_MARK;
    it->resume_rv = kwb_batch_str(b, rv, strlen(rv));
    if (it->resume_rv == KWB_NO_OFF) {
        b->n_items--;
        return -ENOMEM;
    }
    return 0;
}

/* ---- the pipeline ------------------------------------------------------ */

struct psink {
    const struct kwb_sink_ops *ops;
    void *state;
    const struct kwb_sink_conf *conf;
    struct kwb_sink_stats *stats;
    struct kwb_pipeline *p;
    int dl_fd;             /* dead-letter file, -1 when not configured */
    struct kwb_batch *cur; /* next item to submit: cur->items[cur_idx] */
    size_t cur_idx;
    int blocked;    /* last submit said -EAGAIN */
    size_t unacked; /* submitted, not acked */
    uint32_t bit;   /* this sink's bit in kwb_item.acked */
    /* After a failed delivery the cursor is rewound to the failed event and
     * nothing is submitted before resume_ms (backoff); then that event
     * alone (the probe) until it is acknowledged, then the rest in order. */
    int64_t resume_ms;
    struct kwb_item *probe;
    int probe_sent;
    double retry_delay_s;
};

struct pwatch {
    struct kwb_batch *head, *tail;
    struct kwb_store *committed;
    char *resume_rv;
    const char *next_rv; /* newer resume RV inside the head batch */
    int dirty;
    int64_t unckpt_events;
    /* In the checkpoint writer's round: the store and resume_rv are the
     * writer's to read, so acks are not applied to them meanwhile. */
    int ckpt_busy;
    int ckpt_rc; /* the writer's result for this watch */
    char ckpt_err[512];
};

struct kwb_pipeline {
    const struct kwb_config *cfg;
    struct kwb_metrics *metrics;

    /* guards q_head/q_tail, held, stopping, pool, bare and the ck_*
     * hand-off */
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* pipeline thread: work or a checkpoint result */
    pthread_cond_t space;   /* workers: room below the queue bounds */
    pthread_cond_t ck_wake; /* checkpoint writer: a round or quit */
    struct kwb_batch *q_head, *q_tail;
    uint64_t seq;           /* of the last batch taken in flight */
    size_t held;            /* items queued or in flight */
    size_t held_bytes;      /* their kwb_batch_bytes() */
    struct kwb_batch *pool; /* finished batches kept for reuse */
    struct kwb_batch *bare; /* pooled batches whose buffers were taken */
    size_t pool_len;
    size_t pool_bytes;  /* their `touched` */
    size_t pool_bigger; /* largest `touched` kept so far */
    int stopping;
    int64_t deadline_ms;
    int thread_started;
    pthread_t thread;
    int ck_request;     /* a round is waiting for the writer */
    int ck_done;        /* the writer finished a round */
    int ck_quit;        /* the writer ends after any requested round */
    int64_t ck_cost_ms; /* the writer's last_ckpt_cost_ms */

    /* pipeline thread only */
    struct kwb_batch *if_head, *if_tail;
    struct psink *sinks;
    size_t n_sinks;
    struct pwatch *watches;
    size_t n_watches;
    int64_t last_ckpt_ms;
    /* How long the last round's successful writes took: the cost of
     * writing the sets, not the wait for a hung or failing backend. */
    int64_t last_ckpt_cost_ms;
    pthread_t ck_thread;
    int ck_started;  /* the checkpoint writer runs */
    int ck_inflight; /* a round was handed to it and not collected yet */
    int unacked_at_stop;
    struct kwb_cmstate *cms; /* NULL: file backend */
    int64_t pool_checked_ms; /* last kwb_pipeline_pool_trim() */
    /* The largest batch released since fill_since_ms, and in the
     * KWB_POOL_IDLE_MS before: what the pool should be ready for. */
    size_t fill_now, fill_before;
    int64_t fill_since_ms;
};

static const char *item_str(const struct kwb_batch *b, uint32_t off)
{
    return off == KWB_NO_OFF ? "" : b->str + off;
}

static void sink_log(int level, const char *sink_name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sink_log(int level, const char *sink_name, const char *fmt, ...)
{
    va_list ap;
    const char *kv[] = {"sink", sink_name, NULL};

    if (!kwb_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    kwb_log_kvv(level, "sink", kv, fmt, ap);
    va_end(ap);
}

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                   const char *reason);

/* A sink retried n events internally (webhook 5xx, timeouts). */
static void on_retried(void *opaque, uint64_t n)
{
    struct psink *s = opaque;

    kwb_counter_add(&s->stats->retries, n);
}

struct kwb_pipeline *kwb_pipeline_new(const struct kwb_config *cfg,
                                      struct kwb_metrics *metrics,
                                      struct kwb_pipeline_watch_init *winit,
                                      char *errbuf, size_t errsize)
{
    struct kwb_pipeline *p = calloc(1, sizeof(*p));
    size_t i;

    if (!p) {
        snprintf(errbuf, errsize, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->metrics = metrics;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->space, NULL);
    pthread_cond_init(&p->ck_wake, NULL);
    p->n_sinks = cfg->n_sinks;
    p->n_watches = cfg->n_watches;
    p->sinks = calloc(p->n_sinks ? p->n_sinks : 1, sizeof(*p->sinks));
    p->watches = calloc(p->n_watches ? p->n_watches : 1, sizeof(*p->watches));
    for (i = 0; p->sinks && i < p->n_sinks; i++) {
        p->sinks[i].dl_fd = -1;
    }
    if (!p->sinks || !p->watches) {
        snprintf(errbuf, errsize, "out of memory");
        goto fail;
    }
    for (i = 0; i < p->n_sinks; i++) {
        const struct kwb_sink_conf *sc = &cfg->sinks[i];
        struct psink *s = &p->sinks[i];
        struct kwb_sink_env env = {
            .name = sc->name,
            .cluster = cfg->cluster_name,
            .ack = on_ack,
            .ack_opaque = s,
            .retried = on_retried,
            .log = sink_log,
            .conf_file = cfg->path,
        };
        char err[512] = "";

        s->p = p;
        s->conf = sc;
        s->stats = &metrics->sinks[i];
        s->retry_delay_s = cfg->sink_retry_initial_s;
        s->bit = (uint32_t)1 << i;
        s->ops = kwb_sink_find(sc->type);
        if (!s->ops) {
            snprintf(errbuf, errsize, "%s:%d: unknown sink type '%s'",
                     cfg->path, sc->line, sc->type);
            goto fail;
        }
        s->state = s->ops->init(sc->group, &env, err, sizeof(err));
        if (!s->state) {
            snprintf(errbuf, errsize, "%s:%d: sink '%s': %s", cfg->path,
                     sc->line, sc->name, err);
            goto fail;
        }
        if (sc->dead_letter_path) {
            s->dl_fd = open(sc->dead_letter_path,
                            O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (s->dl_fd < 0) {
                snprintf(errbuf, errsize, "%s:%d: sink '%s': %s: %s", cfg->path,
                         sc->line, sc->name, sc->dead_letter_path,
                         strerror(errno));
                goto fail;
            }
        }
    }
    for (i = 0; i < p->n_watches; i++) {
        p->watches[i].committed = winit[i].committed;
        if (winit[i].resume_rv) {
            p->watches[i].resume_rv = strdup(winit[i].resume_rv);
        }
    }
    /* Ownership of the stores moved only now that nothing can fail. */
    for (i = 0; i < p->n_watches; i++) {
        winit[i].committed = NULL;
    }
    return p;
fail:
    /* Nothing was taken from winit yet: freeing closes the sinks made so
     * far and their dead-letter files. */
    kwb_pipeline_free(p);
    return NULL;
}

/* Would taking n items and `bytes` bytes exceed a queue bound? Called
 * with p->lock held. Anything fits an empty pipeline. */
static int over_bounds(const struct kwb_pipeline *p, size_t n, size_t bytes)
{
    return p->held > 0 && (p->held + n > p->cfg->queue_events ||
                           p->held_bytes + bytes > p->cfg->queue_bytes);
}

int kwb_pipeline_push(struct kwb_pipeline *p, struct kwb_batch *b,
                      const atomic_int *stop)
{
    size_t bytes;

    if (b->n_items == 0) {
        kwb_batch_free(b);
        return 0;
    }
    bytes = kwb_batch_bytes(b);
    pthread_mutex_lock(&p->lock);
    /* Backpressure: wait while the pipeline holds too much. A batch larger
     * than a whole bound is still accepted when the pipeline is empty. */
    while (over_bounds(p, b->n_items, bytes) && !(stop && atomic_load(stop))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->space, &p->lock, &ts);
    }
    if (stop && atomic_load(stop) && over_bounds(p, b->n_items, bytes)) {
        pthread_mutex_unlock(&p->lock);
        kwb_batch_free(b);
        return -ECANCELED;
    }
    b->next = NULL;
    if (p->q_tail) {
        p->q_tail->next = b;
    } else {
        p->q_head = b;
    }
    p->q_tail = b;
    p->held += b->n_items;
    p->held_bytes += bytes;
    atomic_store_explicit(&p->metrics->queue_events, (int64_t)p->held,
                          memory_order_relaxed);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Take every queued batch into the in-flight list and the watch FIFOs. */
static int take_queued(struct kwb_pipeline *p)
{
    struct kwb_batch *b, *next;
    int n = 0;

    pthread_mutex_lock(&p->lock);
    b = p->q_head;
    p->q_head = p->q_tail = NULL;
    pthread_mutex_unlock(&p->lock);

    for (; b; b = next) {
        struct pwatch *w = &p->watches[b->watch];
        next = b->next;
        for (size_t i = 0; i < b->n_items; i++) {
            struct kwb_item *it = &b->items[i];
            it->batch = b;
            it->pending =
                it->item_kind == KWB_ITEM_EVENT ? (uint8_t)p->n_sinks : 0;
            it->acked = 0;
            it->dead = 0;
        }
        b->seq = ++p->seq;
        w->unckpt_events += (int64_t)b->n_events;
        atomic_store_explicit(&p->metrics->watches[b->watch].checkpoint_lag,
                              w->unckpt_events, memory_order_relaxed);
        b->next = NULL;
        b->prev = p->if_tail;
        if (p->if_tail) {
            p->if_tail->next = b;
        } else {
            p->if_head = b;
        }
        p->if_tail = b;
        b->w_next = NULL;
        if (w->tail) {
            w->tail->w_next = b;
        } else {
            w->head = b;
        }
        w->tail = b;
        for (size_t s = 0; s < p->n_sinks; s++) {
            if (!p->sinks[s].cur) {
                p->sinks[s].cur = b;
                p->sinks[s].cur_idx = 0;
            }
        }
        n++;
    }
    return n;
}

static void fill_sink_event(const struct kwb_pipeline *p,
                            const struct kwb_item *it,
                            struct kwb_sink_event *ev)
{
    const struct kwb_batch *b = it->batch;
    const struct kwb_watch_conf *wc = &p->cfg->watches[b->watch];

    ev->json = b->json + it->json_off;
    ev->json_len = it->json_len;
    ev->type = kwb_ev_type_names[it->type];
    ev->kind = item_str(b, it->kind);
    ev->api_version = item_str(b, it->api_version);
    ev->resource = wc->resource;
    ev->namespace_ = item_str(b, it->ns);
    ev->name = item_str(b, it->name);
    ev->uid = item_str(b, it->uid);
    ev->resource_version = item_str(b, it->rv);
    ev->cluster = p->cfg->cluster_name;
    ev->watch_id = wc->id;
}

/* Position of it in the in-flight order: before the sink's cursor? */
static int before_cursor(const struct psink *s, const struct kwb_item *it)
{
    const struct kwb_batch *b = it->batch;

    if (!s->cur) {
        return 1; /* the cursor is past everything */
    }
    if (b->seq != s->cur->seq) {
        return b->seq < s->cur->seq;
    }
    return (size_t)(it - b->items) < s->cur_idx;
}

/*
 * A delivery failed and the event must go again. Resubmitting it alone
 * while later events go on would let a later event of the same object
 * overtake it (SPEC promise 4), so the sink's cursor goes back to it:
 * after the backoff the sink gets this event alone, as often as it takes,
 * and once it is acknowledged everything after it again, in order. Events
 * the sink had already taken may so reach it twice (at-least-once; their
 * second acknowledgement is ignored), once per recovery, not once per
 * failed attempt.
 *
 * An event at or after the cursor is already on its way back: the cursor
 * went back to it or to an earlier event since it was submitted (a sink
 * hands back unsent what it held behind a failed event, or fails a run of
 * events at once). It goes again after that one anyway, so its failure is
 * no new failure of the sink: counted as a retry, no further backoff step.
 * Returns 1 when the cursor went back to it, 0 when it was already there.
 */
static int rewind_sink(struct psink *s, struct kwb_item *it)
{
    int64_t delay = (int64_t)(s->retry_delay_s * 1000.0);
    int64_t due = kwb_now_ms() + (delay > 0 ? delay : 1);
    double d = s->retry_delay_s;

    kwb_counter_add(&s->stats->retries, 1);
    if (!before_cursor(s, it)) {
        return 0;
    }
    s->cur = it->batch;
    s->cur_idx = (size_t)(it - it->batch->items);
    s->probe = it;
    s->probe_sent = 0;
    if (due > s->resume_ms) {
        s->resume_ms = due;
    }
    s->retry_delay_s = d * 2 > s->p->cfg->sink_retry_max_s
                           ? s->p->cfg->sink_retry_max_s
                           : d * 2;
    return 1;
}

static void item_acked(struct kwb_pipeline *p, struct kwb_item *it);

/* A permanent failure: to the dead letter when configured. 0 when the
 * event is now accounted for. */
static int dead_letter(struct psink *s, struct kwb_item *it, const char *reason)
{
    char head[1024];
    size_t pos = 0;
    struct kwb_batch *b = it->batch;
    const char *tail = "}\n";

    if (s->dl_fd < 0) {
        return -ENOENT;
    }
    memcpy(head, "{\"reason\":\"", 11);
    pos = 11;
    kwb_json_escape_append(head, sizeof(head) - 32, &pos,
                           reason ? reason : "unknown");
    {
        const char *mid = "\",\"sink\":\"";
        size_t ml = strlen(mid);
        memcpy(head + pos, mid, ml);
        pos += ml;
    }
    kwb_json_escape_append(head, sizeof(head) - 16, &pos, s->conf->name);
    memcpy(head + pos, "\",\"event\":", 10);
    pos += 10;

    /* One writev-like sequence; the record is complete only after fsync. */
    char *rec = malloc(pos + it->json_len + 2);
    if (!rec) {
        return -ENOMEM;
    }
    memcpy(rec, head, pos);
    memcpy(rec + pos, b->json + it->json_off, it->json_len);
    memcpy(rec + pos + it->json_len, tail, 2);
    size_t total = pos + it->json_len + 2, off = 0;
    int rc = 0;
    while (off < total) {
        ssize_t w = write(s->dl_fd, rec + off, total - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    free(rec);
    if (rc == 0 && fsync(s->dl_fd) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        const char *kv[] = {"sink", s->conf->name, NULL};
        kwb_log_kv(KWB_LOG_ERROR, "pipeline", kv,
                   "cannot write dead letter %s: %s", s->conf->dead_letter_path,
                   strerror(-rc));
    }
    return rc;
}

/* Sink s is done with it (delivered or dead-lettered): if it was the
 * probe after a failure, the events after it may follow. */
static void sink_done(struct psink *s, struct kwb_item *it)
{
    it->acked |= s->bit;
    if (s->probe == it) {
        s->probe = NULL;
    }
    item_acked(s->p, it);
}

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                   const char *reason)
{
    struct psink *s = opaque;
    struct kwb_pipeline *p = s->p;
    struct kwb_item *it = (struct kwb_item *)(uintptr_t)token;

    if (s->unacked > 0) {
        s->unacked--;
    }
    if (it->batch->inflight > 0) {
        it->batch->inflight--;
    }
    if (it->acked & s->bit) {
        /* Delivered before: this was a resubmission after a rewind. If it
         * failed, an older event of the object may now be the sink's last
         * word: rewind again (no dead letter: it was delivered). */
        if (status != KWB_ACK_OK) {
            rewind_sink(s, it);
        } else if (s->probe == it) {
            s->probe = NULL;
        }
        return;
    }
    if (status == KWB_ACK_OK) {
        kwb_counter_add(&s->stats->acked, 1);
        s->retry_delay_s = p->cfg->sink_retry_initial_s;
        sink_done(s, it);
        return;
    }
    if (status == KWB_ACK_FAIL && dead_letter(s, it, reason) == 0) {
        const char *kv[] = {"sink", s->conf->name,
                            "uid",  item_str(it->batch, it->uid),
                            "rv",   item_str(it->batch, it->rv),
                            NULL};
        kwb_log_kv(KWB_LOG_WARN, "pipeline", kv, "event dead-lettered: %s",
                   reason ? reason : "unknown");
        kwb_counter_add(&s->stats->dead_letter, 1);
        it->dead |= s->bit; /* never sent to this sink again (rewinds) */
        sink_done(s, it);
        return;
    }
    {
        const char *kv[] = {"sink", s->conf->name, "uid",
                            item_str(it->batch, it->uid), NULL};
        double delay_s = s->retry_delay_s;

        if (rewind_sink(s, it)) {
            kwb_log_kv(KWB_LOG_WARN, "pipeline", kv,
                       "delivery failed (%s), retrying in %.1fs: %s",
                       status == KWB_ACK_RETRY ? "transient"
                       : s->dl_fd < 0 ? "permanent, no dead_letter_path"
                                      : "permanent, dead letter not "
                                        "written",
                       delay_s, reason ? reason : "unknown");
        } else if (kwb_log_enabled(KWB_LOG_DEBUG)) {
            kwb_log_kv(KWB_LOG_DEBUG, "pipeline", kv,
                       "not delivered, goes again after the event before it "
                       "that failed: %s",
                       reason ? reason : "unknown");
        }
    }
}

/* Submit one item to sink s; returns 0, -EAGAIN, or handles rejection. */
static int submit_one(struct kwb_pipeline *p, struct psink *s,
                      struct kwb_item *it)
{
    struct kwb_sink_event ev;
    int rc;

    fill_sink_event(p, it, &ev);
    rc = s->ops->submit(s->state, &ev, (uint64_t)(uintptr_t)it);
    if (rc == 0) {
        s->unacked++;
        it->batch->inflight++;
        return 0;
    }
    if (rc == -EAGAIN) {
        return rc;
    }
    /* Rejected: never acked by the sink, so account for it here. */
    s->unacked++;
    it->batch->inflight++;
    on_ack(s, (uint64_t)(uintptr_t)it, KWB_ACK_FAIL, strerror(-rc));
    return 0;
}

static void submit_sink(struct kwb_pipeline *p, struct psink *s)
{
    int64_t now = kwb_now_ms();

    if (s->resume_ms > now || (s->probe && s->probe_sent)) {
        return; /* backing off, or waiting for the probe's outcome */
    }
    while (s->cur) {
        struct kwb_batch *b = s->cur;
        while (s->cur_idx < b->n_items) {
            struct kwb_item *it = &b->items[s->cur_idx++];
            if (it->item_kind != KWB_ITEM_EVENT || (it->dead & s->bit)) {
                continue;
            }
            if (submit_one(p, s, it) == -EAGAIN) {
                s->cur_idx--;
                s->blocked = 1;
                return;
            }
            if (s->resume_ms > now) {
                return; /* rejected at once: the cursor went back to it */
            }
            if (s->probe) {
                s->probe_sent = it == s->probe;
                return; /* the probe goes alone */
            }
        }
        if (!b->next) {
            return; /* stay at the end of the last batch */
        }
        s->cur = b->next;
        s->cur_idx = 0;
    }
    s->blocked = 0;
}

static int apply_item(struct pwatch *w, const struct kwb_item *it)
{
    const struct kwb_batch *b = it->batch;
    int rc = 0;

    if (it->item_kind != KWB_ITEM_MARK) {
        if (it->type == KWB_EV_DELETED) {
            kwb_store_del(w->committed, item_str(b, it->uid));
        } else {
            rc = kwb_store_put(w->committed, item_str(b, it->uid),
                               item_str(b, it->rv), item_str(b, it->name),
                               item_str(b, it->ns));
        }
        w->dirty = 1;
    }
    if (it->resume_rv != KWB_NO_OFF) {
        /* Copied out once per batch (commit_rv), not per event. */
        w->next_rv = b->str + it->resume_rv;
    }
    if (it->item_kind == KWB_ITEM_EVENT) {
        w->unckpt_events--;
    }
    return rc;
}

/* Recycled batches: the pool keeps up to queue_bytes of them (by the
 * bytes their buffers were filled with, i.e. about their resident
 * memory) plus one per watch, which covers every batch in flight and
 * each worker's batch in the making: in the steady state no batch is
 * malloc'd or freed. A batch that grew past POOL_BATCH_BYTES (one huge
 * object) is freed, not kept. */
#define POOL_BATCH_BYTES (8u << 20)

struct kwb_batch *kwb_pipeline_batch(struct kwb_pipeline *p, size_t watch)
{
    struct kwb_batch *b;

    pthread_mutex_lock(&p->lock);
    b = p->bare;
    if (b) {
        p->bare = b->next;
    }
    pthread_mutex_unlock(&p->lock);
    if (!b) {
        b = kwb_batch_new(watch);
        if (!b) {
            return NULL;
        }
    }
    kwb_batch_reset(b);
    b->watch = watch;
    b->owner = p;
    return b;
}

/* First need of room in a batch from kwb_pipeline_batch: move the buffers
 * of a pooled batch into it; the emptied struct is kept for the next
 * kwb_pipeline_batch. Without a pooled one, b grows its own. */
static void take_pooled(struct kwb_batch *b)
{
    struct kwb_pipeline *p = b->owner;
    struct kwb_batch *s;

    b->owner = NULL;
    if (b->json_cap || b->str_cap || b->items_cap) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    s = p->pool;
    if (s) {
        p->pool = s->next;
        p->pool_len--;
        p->pool_bytes -= s->touched;
        b->json = s->json;
        b->json_cap = s->json_cap;
        b->str = s->str;
        b->str_cap = s->str_cap;
        b->items = s->items;
        b->items_cap = s->items_cap;
        b->touched = s->touched;
        s->json = s->str = NULL;
        s->items = NULL;
        s->json_cap = s->str_cap = s->items_cap = 0;
        s->touched = 0;
        s->next = p->bare;
        p->bare = s;
    }
    pthread_mutex_unlock(&p->lock);
}

static void release_batch(struct kwb_pipeline *p, struct kwb_batch *b)
{
    size_t n = b->n_items, bytes = kwb_batch_bytes(b);
    int keep;

    for (size_t s = 0; s < p->n_sinks; s++) {
        if (p->sinks[s].cur == b) {
            p->sinks[s].cur = b->next;
            p->sinks[s].cur_idx = 0;
        }
    }
    if (b->prev) {
        b->prev->next = b->next;
    } else {
        p->if_head = b->next;
    }
    if (b->next) {
        b->next->prev = b->prev;
    } else {
        p->if_tail = b->prev;
    }
    if (b->touched < bytes) {
        b->touched = bytes; /* measured like held_bytes: see the pool */
    }
    if (p->fill_now < bytes) {
        p->fill_now = bytes;
    }
    pthread_mutex_lock(&p->lock);
    keep = b->json_cap + b->str_cap <= POOL_BATCH_BYTES;
    if (keep && p->pool_bigger < b->touched) {
        p->pool_bigger = b->touched;
    }
    keep = keep && p->pool_bytes + b->touched <=
                       p->cfg->queue_bytes + p->n_watches * p->pool_bigger;
    if (keep) {
        b->pooled_ms = kwb_now_ms();
        b->next = p->pool;
        p->pool = b;
        p->pool_len++;
        p->pool_bytes += b->touched;
    }
    p->held -= n;
    p->held_bytes -= bytes;
    atomic_store_explicit(&p->metrics->queue_events, (int64_t)p->held,
                          memory_order_relaxed);
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->lock);
    if (!keep) {
        kwb_batch_free(b);
    }
}

/* A pooled batch more than twice as large as any handed back lately, plus
 * this, is freed rather than kept (see kwb_pipeline_pool_trim). */
#define POOL_SLACK ((size_t)64 << 10)

/*
 * Two kinds of pooled batches go: those that waited KWB_POOL_IDLE_MS (not
 * needed for that long), and those much larger than any batch released in
 * the last one to two KWB_POOL_IDLE_MS: after a list, events trickling in
 * fill a few KB of a batch whose buffers the list had filled to 1 MiB,
 * and reusing it kept that MiB resident. Each freed batch unmaps its JSON
 * buffer at once; its malloc'd string and item arrays are handed back by
 * malloc_trim once the pool is empty.
 */
size_t kwb_pipeline_pool_trim(struct kwb_pipeline *p, int64_t now)
{
    struct kwb_batch **pp, *b, *old = NULL, *bare = NULL, *next;
    size_t n = 0, want;
    int idle;

    if (now - p->fill_since_ms >= KWB_POOL_IDLE_MS) {
        p->fill_before = p->fill_now;
        p->fill_now = 0;
        p->fill_since_ms = now;
    }
    want = 2 * (p->fill_now > p->fill_before ? p->fill_now : p->fill_before) +
           POOL_SLACK;
    pthread_mutex_lock(&p->lock);
    pp = &p->pool;
    while ((b = *pp)) {
        if (now - b->pooled_ms >= KWB_POOL_IDLE_MS || b->touched > want) {
            *pp = b->next;
            b->next = old;
            old = b;
            p->pool_len--;
            p->pool_bytes -= b->touched;
            n++;
        } else {
            pp = &b->next;
        }
    }
    idle = n > 0 && !p->pool;
    if (idle) {
        /* The empty batch structs go too. */
        bare = p->bare;
        p->bare = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    for (; old; old = next) {
        next = old->next;
        kwb_batch_free(old);
    }
    for (; bare; bare = next) {
        next = bare->next;
        kwb_batch_free(bare);
    }
    if (idle) {
        /* Not while events flow: it walks every arena under its lock,
         * and what it could return then (the freed batches' string and
         * item arrays) is small and soon reused. */
        malloc_trim(0);
    }
    return n;
}

/* Take the resume RV found in the head batch before it can go away. */
static int commit_rv(struct pwatch *w)
{
    char *rv;

    if (!w->next_rv) {
        return 0;
    }
    rv = strdup(w->next_rv);
    if (!rv) {
        return -ENOMEM;
    }
    free(w->resume_rv);
    w->resume_rv = rv;
    w->next_rv = NULL;
    w->dirty = 1;
    return 0;
}

/* Move the watch's low-water mark over every fully acked item. */
/* Does a sink still have items of b to submit (rewound into it)? */
static int cursor_inside(const struct kwb_pipeline *p,
                         const struct kwb_batch *b)
{
    for (size_t s = 0; s < p->n_sinks; s++) {
        if (p->sinks[s].cur == b && p->sinks[s].cur_idx < b->n_items) {
            return 1;
        }
    }
    return 0;
}

static void advance_watch(struct kwb_pipeline *p, size_t wi)
{
    struct pwatch *w = &p->watches[wi];

    if (w->ckpt_busy) {
        return; /* the checkpoint writer is reading the store */
    }
    while (w->head) {
        struct kwb_batch *b = w->head;
        while (b->applied < b->n_items && b->items[b->applied].pending == 0) {
            if (apply_item(w, &b->items[b->applied]) < 0) {
                KWB_ERROR("pipeline", "out of memory applying checkpoint "
                                      "state; will retry");
                return;
            }
            b->applied++;
        }
        if (commit_rv(w) < 0) {
            KWB_ERROR("pipeline", "out of memory moving the checkpoint; "
                                  "will retry");
            return;
        }
        /* A rewound sink may have items of b in flight a second time after
         * every sink acknowledged them, or still have to send them again:
         * keep b until those acks are in and every cursor is past it. */
        if (b->applied < b->n_items || b->inflight || cursor_inside(p, b)) {
            break;
        }
        /* A sink cursor may still be inside b only at its very end. */
        w->head = b->w_next;
        if (!w->head) {
            w->tail = NULL;
        }
        release_batch(p, b);
    }
    atomic_store_explicit(&p->metrics->watches[wi].checkpoint_lag,
                          w->unckpt_events, memory_order_relaxed);
}

static void item_acked(struct kwb_pipeline *p, struct kwb_item *it)
{
    (void)p;
    if (it->pending > 0) {
        it->pending--;
    }
}

/* ---- checkpoints ------------------------------------------------------ */

/* Write watch i's checkpoint. The caller has w->committed and w->resume_rv
 * to itself: the pipeline thread, or the writer while the watch is busy. */
static int write_one(struct kwb_pipeline *p, size_t i, char *err,
                     size_t errsize)
{
    struct pwatch *w = &p->watches[i];
    const char *id = p->cfg->watches[i].id;

    return p->cms ? kwb_cmstate_write(p->cms, id, w->resume_rv, w->committed,
                                      err, errsize)
                  : kwb_checkpoint_write(p->cfg->state_dir, id, w->resume_rv,
                                         w->committed, err, errsize);
}

/* Pipeline thread: the outcome of watch i's write. */
static void write_done(struct kwb_pipeline *p, size_t i, int rc,
                       const char *err)
{
    if (rc == -EAGAIN) {
        return; /* configmap backend backing off: stays dirty */
    }
    if (rc < 0) {
        const char *kv[] = {"watch", p->cfg->watches[i].id, NULL};
        kwb_log_kv(KWB_LOG_ERROR, "checkpoint", kv,
                   "cannot write checkpoint: %s", err);
        return;
    }
    p->watches[i].dirty = 0;
}

/*
 * The checkpoint writer. Serializing, writing and fsyncing a watch's
 * known objects takes milliseconds (10k objects) to seconds (1M); on the
 * pipeline thread that held up every event arriving meanwhile: at 10k
 * events/s a third of the slowest 1 % sat on the once-a-second checkpoint
 * (BENCHMARKS.md, Latency). Here it runs beside the pipeline [R bio.c]:
 * the watches of a round are marked busy, and the pipeline applies no acks
 * to their stores and moves no resume RV until the round is done, so the
 * writer reads them as they were, without a copy. Sinks keep delivering
 * meanwhile; the acked batches wait in the watch FIFO (and count against
 * queue_events) until the round ends.
 * Thread: its own; reads only busy watches, talks to the pipeline thread
 * through ck_* under p->lock.
 */
static void *ckpt_main(void *arg)
{
    struct kwb_pipeline *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->ck_request && !p->ck_quit) {
            pthread_cond_wait(&p->ck_wake, &p->lock);
        }
        if (!p->ck_request) {
            break;
        }
        p->ck_request = 0;
        pthread_mutex_unlock(&p->lock);

        int64_t cost = 0;
        for (size_t i = 0; i < p->n_watches; i++) {
            struct pwatch *w = &p->watches[i];
            if (w->ckpt_busy) {
                int64_t t0 = kwb_now_ms();
                w->ckpt_err[0] = '\0';
                w->ckpt_rc = write_one(p, i, w->ckpt_err, sizeof(w->ckpt_err));
                if (w->ckpt_rc == 0) {
                    cost += kwb_now_ms() - t0;
                }
            }
        }

        pthread_mutex_lock(&p->lock);
        p->ck_cost_ms = cost;
        p->ck_done = 1;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Pipeline thread: take the results of a finished round. */
static void ckpt_collect(struct kwb_pipeline *p)
{
    int done;
    int64_t cost;

    if (!p->ck_inflight) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    done = p->ck_done;
    p->ck_done = 0;
    cost = p->ck_cost_ms;
    pthread_mutex_unlock(&p->lock);
    if (!done) {
        return;
    }
    p->ck_inflight = 0;
    p->last_ckpt_cost_ms = cost;
    for (size_t i = 0; i < p->n_watches; i++) {
        struct pwatch *w = &p->watches[i];
        if (w->ckpt_busy) {
            w->ckpt_busy = 0;
            write_done(p, i, w->ckpt_rc, w->ckpt_err);
        }
    }
}

/* Pipeline thread: let the writer finish its round and end it. */
static void ckpt_stop(struct kwb_pipeline *p)
{
    if (!p->ck_started) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->ck_quit = 1;
    pthread_cond_signal(&p->ck_wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->ck_thread, NULL);
    p->ck_started = 0;
    ckpt_collect(p);
}

/* Once per loop turn [R beforeSleep]: start a round when one is due. With
 * the writer running the round is handed to it; `force` (the final
 * checkpoint, after ckpt_stop) or no writer: written here. */
static void write_checkpoints(struct kwb_pipeline *p, int force)
{
    int64_t now = kwb_now_ms();
    int any = 0;

    if (p->ck_inflight) {
        return;
    }
    /* Large known-object sets make a checkpoint expensive (1M objects
     * are ~100 MB): never spend more than ~5 % of the time writing them,
     * whatever the configured interval. */
    int64_t gap = p->cfg->checkpoint_interval_ms;
    if (gap < 20 * p->last_ckpt_cost_ms) {
        gap = 20 * p->last_ckpt_cost_ms;
    }
    if (!force && now - p->last_ckpt_ms < gap) {
        return;
    }
    p->last_ckpt_ms = now;
    if (p->ck_started && !force) {
        for (size_t i = 0; i < p->n_watches; i++) {
            struct pwatch *w = &p->watches[i];
            if (w->dirty && w->resume_rv) {
                w->ckpt_busy = 1;
                any = 1;
            }
        }
        if (any) {
            pthread_mutex_lock(&p->lock);
            p->ck_request = 1;
            pthread_cond_signal(&p->ck_wake);
            pthread_mutex_unlock(&p->lock);
            p->ck_inflight = 1;
        }
        return;
    }
    p->last_ckpt_cost_ms = 0;
    for (size_t i = 0; i < p->n_watches; i++) {
        struct pwatch *w = &p->watches[i];
        char err[512] = "";
        if (!w->dirty || !w->resume_rv) {
            continue;
        }
        int64_t t0 = kwb_now_ms();
        int rc = write_one(p, i, err, sizeof(err));
        if (rc == 0) {
            p->last_ckpt_cost_ms += kwb_now_ms() - t0;
        }
        write_done(p, i, rc, err);
    }
}

static int inflight_empty(const struct kwb_pipeline *p)
{
    return p->if_head == NULL;
}

static void *pipeline_main(void *arg)
{
    struct kwb_pipeline *p = arg;
    int flushed = 0;

    /* Without the writer thread checkpoints are written inline, as a
     * fallback: slower events, same guarantees. */
    p->ck_started = pthread_create(&p->ck_thread, NULL, ckpt_main, p) == 0;
    if (!p->ck_started) {
        KWB_WARN("pipeline", "cannot start the checkpoint writer; writing "
                             "checkpoints on the pipeline thread");
    }
    for (;;) {
        int stopping, work = 0, acks = 0;
        int64_t now = kwb_now_ms();

        atomic_store_explicit(&p->metrics->heartbeat_ms, now,
                              memory_order_relaxed);
        work += take_queued(p);
        for (size_t s = 0; s < p->n_sinks; s++) {
            submit_sink(p, &p->sinks[s]);
        }
        for (size_t s = 0; s < p->n_sinks; s++) {
            struct psink *ps = &p->sinks[s];
            int rc = ps->ops->poll_acks(ps->state, 0);
            if (rc > 0) {
                acks += rc;
            }
            /* A sink may become able to deliver later (brokers back). */
            if (ps->ops->ready) {
                atomic_store_explicit(&ps->stats->ready,
                                      ps->ops->ready(ps->state),
                                      memory_order_relaxed);
            }
        }
        ckpt_collect(p);
        for (size_t w = 0; w < p->n_watches; w++) {
            advance_watch(p, w);
        }
        pthread_mutex_lock(&p->lock);
        stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        write_checkpoints(p, 0);
        if (now - p->pool_checked_ms >= KWB_POOL_IDLE_MS / 10) {
            p->pool_checked_ms = now;
            kwb_pipeline_pool_trim(p, now);
        }

        if (stopping) {
            int queued;
            pthread_mutex_lock(&p->lock);
            queued = p->q_head != NULL;
            pthread_mutex_unlock(&p->lock);
            if (!queued && !flushed) {
                /* Everything is submitted: make the sinks send what they
                 * hold back (linger) and wait for its acks. */
                flushed = 1;
                for (size_t s = 0; s < p->n_sinks; s++) {
                    p->sinks[s].ops->flush(p->sinks[s].state, p->deadline_ms);
                }
                continue;
            }
            if ((!queued && inflight_empty(p)) ||
                kwb_now_ms() >= p->deadline_ms) {
                break;
            }
        }
        if (work || acks) {
            continue;
        }
        /* Idle: sleep until a batch arrives, briefly when sinks have
         * events in flight (their acks come through polling). */
        /* ... and no later than a sink's backoff ends. */
        int wait_ms = 50;
        int64_t backoff_ms = INT64_MAX;
        now = kwb_now_ms();
        for (size_t s = 0; s < p->n_sinks; s++) {
            int64_t left = p->sinks[s].resume_ms - now;
            if (p->sinks[s].unacked) {
                wait_ms = 2;
            }
            if (left > 0 && left < backoff_ms) {
                backoff_ms = left;
            }
        }
        if (backoff_ms < wait_ms) {
            wait_ms = (int)backoff_ms;
        }
        pthread_mutex_lock(&p->lock);
        if (!p->q_head && !p->stopping && !p->ck_done) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)wait_ms * 1000000L;
            while (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
    }

    /* Give the sinks the rest of the deadline, then account. */
    for (size_t s = 0; s < p->n_sinks; s++) {
        p->sinks[s].ops->flush(p->sinks[s].state, p->deadline_ms);
    }
    ckpt_stop(p);
    for (size_t w = 0; w < p->n_watches; w++) {
        advance_watch(p, w);
    }
    write_checkpoints(p, 1);
    p->unacked_at_stop = !inflight_empty(p);
    return NULL;
}

void kwb_pipeline_set_cmstate(struct kwb_pipeline *p, struct kwb_cmstate *cs)
{
    p->cms = cs;
}

int kwb_pipeline_start(struct kwb_pipeline *p)
{
    int rc;

    for (size_t i = 0; i < p->n_sinks; i++) {
        struct psink *s = &p->sinks[i];
        if (s->ops->start) {
            rc = s->ops->start(s->state);
            if (rc < 0) {
                const char *kv[] = {"sink", s->conf->name, NULL};
                kwb_log_kv(KWB_LOG_ERROR, "pipeline", kv,
                           "cannot start sink: %s", strerror(-rc));
                return rc;
            }
        }
        atomic_store(&s->stats->ready,
                     s->ops->ready ? s->ops->ready(s->state) : 1);
    }
    p->last_ckpt_ms = kwb_now_ms();
    p->pool_checked_ms = p->last_ckpt_ms;
    p->fill_since_ms = p->last_ckpt_ms;
    rc = pthread_create(&p->thread, NULL, pipeline_main, p);
    if (rc != 0) {
        return -rc;
    }
    p->thread_started = 1;
    return 0;
}

int kwb_pipeline_stop(struct kwb_pipeline *p, int64_t deadline_ms)
{
    if (!p || !p->thread_started) {
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    p->deadline_ms = deadline_ms;
    pthread_cond_signal(&p->wake);
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    p->thread_started = 0;
    return p->unacked_at_stop ? -ETIMEDOUT : 0;
}

void kwb_pipeline_free(struct kwb_pipeline *p)
{
    struct kwb_batch *b, *next;

    if (!p) {
        return;
    }
    for (size_t i = 0; p->sinks && i < p->n_sinks; i++) {
        if (p->sinks[i].ops && p->sinks[i].state) {
            p->sinks[i].ops->close(p->sinks[i].state);
        }
        if (p->sinks[i].dl_fd >= 0) {
            close(p->sinks[i].dl_fd);
        }
    }
    for (b = p->if_head; b; b = next) {
        next = b->next;
        kwb_batch_free(b);
    }
    for (b = p->q_head; b; b = next) {
        next = b->next;
        kwb_batch_free(b);
    }
    for (b = p->pool; b; b = next) {
        next = b->next;
        kwb_batch_free(b);
    }
    for (b = p->bare; b; b = next) {
        next = b->next;
        kwb_batch_free(b);
    }
    for (size_t i = 0; p->watches && i < p->n_watches; i++) {
        kwb_store_free(p->watches[i].committed);
        free(p->watches[i].resume_rv);
    }
    free(p->sinks);
    free(p->watches);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->space);
    pthread_cond_destroy(&p->ck_wake);
    free(p);
}
