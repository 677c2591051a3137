/*
 * metrics.c - counters and their Prometheus text rendering. See metrics.h.
 *
 * Thread: kwb_metrics_new/free on the main thread; the counters are written
 * by their owners; render/ready/healthy run on the HTTP thread and only
 * load atomics.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The rendered page never grows past this; a page this big means a bug. */
#define RENDER_MAX (64u * 1024 * 1024)

static const char *const ev_type_names[KWB_EV_TYPES + 1] = {"ADDED", "MODIFIED",
                                                            "DELETED", "ERROR"};
static const char *const origin_names[KWB_ORIGINS] = {"watch", "list"};
static const char *const reason_names[KWB_RECONNECT_REASONS] = {
    "timeout", "error", "expired", "stall"};

int64_t kwb_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kwb_now_coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void watch_stats_init(struct kwb_watch_stats *w, const char *id,
                             int64_t now_ms)
{
    w->id = id;
    for (int t = 0; t <= KWB_EV_TYPES; t++) {
        atomic_init(&w->received[t], 0);
    }
    for (int t = 0; t < KWB_EV_TYPES; t++) {
        for (int o = 0; o < KWB_ORIGINS; o++) {
            atomic_init(&w->emitted[t][o], 0);
        }
    }
    atomic_init(&w->duplicate, 0);
    for (int r = 0; r < KWB_RECONNECT_REASONS; r++) {
        atomic_init(&w->reconnects[r], 0);
    }
    atomic_init(&w->relists, 0);
    atomic_init(&w->expired, 0);
    atomic_init(&w->errors, 0);
    atomic_init(&w->checkpoint_lag, 0);
    /* The worker overwrites this with its start time; until then the age
     * counts from allocation, which is the agent's start. */
    atomic_init(&w->last_event_ms, now_ms);
    atomic_init(&w->synced, 0);
    atomic_init(&w->objects, 0);
}

static void sink_stats_init(struct kwb_sink_stats *s, const char *name)
{
    s->name = name;
    atomic_init(&s->acked, 0);
    atomic_init(&s->retries, 0);
    atomic_init(&s->dead_letter, 0);
    atomic_init(&s->ready, 0);
}

struct kwb_metrics *kwb_metrics_new(const char *const *watch_ids,
                                    size_t n_watches,
                                    const char *const *sink_names,
                                    size_t n_sinks)
{
    struct kwb_metrics *m = NULL;
    int64_t now_ms = kwb_now_ms();

    m = calloc(1, sizeof(*m));
    if (!m) {
        goto fail;
    }
    if (n_watches > 0) {
        m->watches = calloc(n_watches, sizeof(*m->watches));
        if (!m->watches) {
            goto fail;
        }
    }
    if (n_sinks > 0) {
        m->sinks = calloc(n_sinks, sizeof(*m->sinks));
        if (!m->sinks) {
            goto fail;
        }
    }
    m->n_watches = n_watches;
    m->n_sinks = n_sinks;
    for (size_t i = 0; i < n_watches; i++) {
        watch_stats_init(&m->watches[i], watch_ids[i], now_ms);
    }
    for (size_t i = 0; i < n_sinks; i++) {
        sink_stats_init(&m->sinks[i], sink_names[i]);
    }
    atomic_init(&m->queue_events, 0);
    /* Alive from the start: the pipeline's first turn may take a while. */
    atomic_init(&m->heartbeat_ms, now_ms);
    atomic_init(&m->leader, 0);
    return m;

fail:
    kwb_metrics_free(m);
    return NULL;
}

void kwb_metrics_free(struct kwb_metrics *m)
{
    if (!m) {
        return;
    }
    free(m->watches);
    free(m->sinks);
    free(m);
}

int kwb_metrics_ready(const struct kwb_metrics *m)
{
    for (size_t i = 0; i < m->n_watches; i++) {
        if (!atomic_load_explicit(&m->watches[i].synced,
                                  memory_order_relaxed)) {
            return 0;
        }
    }
    for (size_t i = 0; i < m->n_sinks; i++) {
        if (!atomic_load_explicit(&m->sinks[i].ready, memory_order_relaxed)) {
            return 0;
        }
    }
    return 1;
}

int kwb_metrics_healthy(const struct kwb_metrics *m, int64_t now_ms)
{
    int64_t beat = atomic_load_explicit(&m->heartbeat_ms, memory_order_relaxed);

    return now_ms - beat <= KWB_METRICS_HEARTBEAT_MAX_MS;
}

/* Growable output buffer; `failed` sticks after the first error so the
 * render functions need not check every append. */
struct outbuf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
};

static int outbuf_reserve(struct outbuf *b, size_t extra)
{
    size_t want;
    char *p;

    if (b->failed) {
        return -1;
    }
    if (extra > RENDER_MAX || b->len + extra + 1 > RENDER_MAX) {
        b->failed = 1;
        return -1;
    }
    want = b->len + extra + 1;
    if (want <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        cap *= 2;
    }
    if (cap > RENDER_MAX) {
        cap = RENDER_MAX;
    }
    p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void outbuf_add(struct outbuf *b, const char *s, size_t n)
{
    if (outbuf_reserve(b, n) < 0) {
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void outbuf_puts(struct outbuf *b, const char *s)
{
    outbuf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
outbuf_printf(struct outbuf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        outbuf_add(b, small, (size_t)n);
        return;
    }
    if (outbuf_reserve(b, (size_t)n) < 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A label value per the text format: backslash, double quote and line feed
 * escaped; everything else verbatim. */
static void outbuf_label_value(struct outbuf *b, const char *v)
{
    const char *run = v;

    for (; v && *v; v++) {
        const char *esc = NULL;

        if (*v == '\\') {
            esc = "\\\\";
        } else if (*v == '"') {
            esc = "\\\"";
        } else if (*v == '\n') {
            esc = "\\n";
        }
        if (esc) {
            outbuf_add(b, run, (size_t)(v - run));
            outbuf_add(b, esc, 2);
            run = v + 1;
        }
    }
    if (run) {
        outbuf_add(b, run, strlen(run));
    }
}

static void header(struct outbuf *b, const char *name, const char *type,
                   const char *help)
{
    outbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{k1="v1",k2="v2"} ` for up to three labels; NULL keys end early. */
static void series(struct outbuf *b, const char *name, const char *k1,
                   const char *v1, const char *k2, const char *v2,
                   const char *k3, const char *v3)
{
    const char *keys[3] = {k1, k2, k3};
    const char *vals[3] = {v1, v2, v3};

    outbuf_puts(b, name);
    for (int i = 0; i < 3 && keys[i]; i++) {
        outbuf_puts(b, i == 0 ? "{" : ",");
        outbuf_puts(b, keys[i]);
        outbuf_puts(b, "=\"");
        outbuf_label_value(b, vals[i]);
        outbuf_puts(b, "\"");
        if (i == 2 || !keys[i + 1]) {
            outbuf_puts(b, "}");
        }
    }
    outbuf_puts(b, " ");
}

static void value_u64(struct outbuf *b, uint_fast64_t v)
{
    outbuf_printf(b, "%" PRIuFAST64 "\n", v);
}

static void value_i64(struct outbuf *b, int_fast64_t v)
{
    outbuf_printf(b, "%" PRIdFAST64 "\n", v);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* One series per watch of a per-watch scalar counter or gauge. */
#define PER_WATCH(b, m, metric, type, help, field, valfn)                      \
    do {                                                                       \
        header((b), (metric), (type), (help));                                 \
        for (size_t i_ = 0; i_ < (m)->n_watches; i_++) {                       \
            const struct kwb_watch_stats *w_ = &(m)->watches[i_];              \
            series((b), (metric), "watch", w_->id, NULL, NULL, NULL, NULL);    \
            valfn((b), LOAD(w_->field));                                       \
        }                                                                      \
    } while (0)

#define PER_SINK(b, m, metric, type, help, field, valfn)                       \
    do {                                                                       \
        header((b), (metric), (type), (help));                                 \
        for (size_t i_ = 0; i_ < (m)->n_sinks; i_++) {                         \
            const struct kwb_sink_stats *s_ = &(m)->sinks[i_];                 \
            series((b), (metric), "sink", s_->name, NULL, NULL, NULL, NULL);   \
            valfn((b), LOAD(s_->field));                                       \
        }                                                                      \
    } while (0)

static void render_watches(struct outbuf *b, const struct kwb_metrics *m,
                           int64_t now_ms)
{
    const char *name;

    name = "kwb_events_received_total";
    header(b, name, "counter",
           "Watch-stream events received from the API server by type "
           "(bookmarks excluded).");
    for (size_t i = 0; i < m->n_watches; i++) {
        const struct kwb_watch_stats *w = &m->watches[i];
        for (int t = 0; t <= KWB_EV_TYPES; t++) {
            series(b, name, "watch", w->id, "type", ev_type_names[t], NULL,
                   NULL);
            value_u64(b, LOAD(w->received[t]));
        }
    }

    name = "kwb_events_emitted_total";
    header(b, name, "counter",
           "Events handed to the sinks after deduplication.");
    for (size_t i = 0; i < m->n_watches; i++) {
        const struct kwb_watch_stats *w = &m->watches[i];
        for (int t = 0; t < KWB_EV_TYPES; t++) {
            for (int o = 0; o < KWB_ORIGINS; o++) {
                series(b, name, "watch", w->id, "type", ev_type_names[t],
                       "origin", origin_names[o]);
                value_u64(b, LOAD(w->emitted[t][o]));
            }
        }
    }

    PER_WATCH(b, m, "kwb_events_duplicate_total", "counter",
              "Events dropped as already seen.", duplicate, value_u64);

    name = "kwb_watch_reconnects_total";
    header(b, name, "counter",
           "Watch requests after a watch's first, by reason.");
    for (size_t i = 0; i < m->n_watches; i++) {
        const struct kwb_watch_stats *w = &m->watches[i];
        for (int r = 0; r < KWB_RECONNECT_REASONS; r++) {
            series(b, name, "watch", w->id, "reason", reason_names[r], NULL,
                   NULL);
            value_u64(b, LOAD(w->reconnects[r]));
        }
    }

    PER_WATCH(b, m, "kwb_watch_relists_total", "counter",
              "Lists after a watch's initial list.", relists, value_u64);
    PER_WATCH(b, m, "kwb_watch_expired_total", "counter",
              "Watches or lists answered with 410 Gone.", expired, value_u64);
    PER_WATCH(b, m, "kwb_watch_errors_total", "counter",
              "Failed API requests of any kind.", errors, value_u64);
    PER_WATCH(b, m, "kwb_checkpoint_lag_events", "gauge",
              "Events emitted but not yet checkpointed.", checkpoint_lag,
              value_i64);

    name = "kwb_watch_last_event_age_seconds";
    header(b, name, "gauge",
           "Seconds since the watch's last event (since its start before "
           "any event).");
    for (size_t i = 0; i < m->n_watches; i++) {
        const struct kwb_watch_stats *w = &m->watches[i];
        int64_t age = now_ms - (int64_t)LOAD(w->last_event_ms);

        if (age < 0) {
            age = 0;
        }
        series(b, name, "watch", w->id, NULL, NULL, NULL, NULL);
        outbuf_printf(b, "%" PRId64 ".%03d\n", age / 1000, (int)(age % 1000));
    }

    PER_WATCH(b, m, "kwb_watch_synced", "gauge",
              "1 once the watch finished its initial sync.", synced, value_i64);
    PER_WATCH(b, m, "kwb_store_objects", "gauge",
              "Objects known to the watch's store.", objects, value_u64);
}

static void render_sinks(struct outbuf *b, const struct kwb_metrics *m)
{
    PER_SINK(b, m, "kwb_sink_acked_total", "counter",
             "Events the sink acknowledged as delivered.", acked, value_u64);
    PER_SINK(b, m, "kwb_sink_retries_total", "counter",
             "Events resubmitted to the sink after a failure.", retries,
             value_u64);
    PER_SINK(b, m, "kwb_sink_dead_letter_total", "counter",
             "Events written to the sink's dead-letter file.", dead_letter,
             value_u64);
    PER_SINK(b, m, "kwb_sink_ready", "gauge",
             "1 once the sink is initialised and able to deliver.", ready,
             value_i64);
}

char *kwb_metrics_render(const struct kwb_metrics *m, int64_t now_ms)
{
    struct outbuf b = {0};

    render_watches(&b, m, now_ms);
    render_sinks(&b, m);

    header(&b, "kwb_pipeline_queue_events", "gauge",
           "Events queued in the pipeline.");
    outbuf_puts(&b, "kwb_pipeline_queue_events ");
    value_i64(&b, LOAD(m->queue_events));

    header(&b, "kwb_leader", "gauge", "1 when this replica forwards events.");
    outbuf_puts(&b, "kwb_leader ");
    value_i64(&b, LOAD(m->leader));

    if (b.failed) {
        free(b.data);
        errno = ENOMEM;
        return NULL;
    }
    return b.data;
}
