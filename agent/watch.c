/*
 * watch.c - the watch worker. See watch.h.
 *
 * State machine, one request at a time (so never two watches of one
 * resource):
 *
 *   no resume RV ──> LIST (paginated) ──> diff against the live store ──┐
 *        ^                                                               v
 *        └── 410 Expired / oversize line ◄── WATCH from RV (bookmarks) ◄─┘
 *                                               │  clean close: re-watch
 *                                               │  at once from last RV
 *                                               └─ error: backoff, re-watch
 *
 * Every event that reaches the pipeline carries the RV a watch may resume
 * from once it is acknowledged; a list diff ends with a MARK carrying the
 * list's RV. Dedup: an event whose (uid, RV) the live store already has is
 * dropped.
 */
#include "watch.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "event.h"
#include "framer.h"
#include "jscan.h"
#include "kube.h"
#include "kubeconfig.h"
#include "log.h"

/* Hand a batch over once it holds this many items or JSON bytes, even in
 * the middle of a network read. */
#define BATCH_ITEMS 1024
#define BATCH_BYTES (1u << 20)
/* ... and in the middle of a network read when it has waited HANDOVER_US
 * and the stream brought fewer than HANDOVER_RATE events per second over
 * the last RATE_WINDOW_US, or when it has waited HANDOVER_MAX_US (see
 * on_data). */
#define HANDOVER_US     1000
#define HANDOVER_RATE   50000
#define HANDOVER_MAX_US 10000
#define RATE_WINDOW_US  100000
#define URL_MAX         8192
#define LIST_BODY_MAX   ((size_t)2 << 30)

enum end_reason {
    END_NONE = 0,
    END_TIMEOUT, /* clean close */
    END_ERROR,
    END_EXPIRED,
    END_STALL,
};

struct kwb_watch {
    const struct kwb_config *cfg;
    const struct kwb_watch_conf *wc;
    size_t idx;
    struct kwb_kube_auth *auth;
    struct kwb_pipeline *pipeline;
    struct kwb_watch_stats *stats;
    struct kwb_kube *kube;
    struct kwb_store *live;
    struct kwb_event_ctx ectx;
    struct kwb_backoff backoff;
    struct kwb_framer framer;
    struct kwb_batch *batch;
    int64_t batch_us; /* CLOCK_MONOTONIC us: on_data first saw it non-empty */
    unsigned data_calls; /* on_data calls (a fast stream: clock every 32nd) */
    int64_t win_us;      /* the stream's rate: window start, 0: none yet */
    int64_t win_events;  /* events in the window so far */
    int64_t win_blocked; /* us of it spent waiting in kwb_pipeline_push */
    int slow;            /* the last window had < HANDOVER_RATE events/s */
    char *rv;            /* last RV seen: event, bookmark or list */
    size_t rv_cap;
    int first_start;
    int need_list;
    int list_skip;    /* this sync records state only (initial = skip) */
    int wl_supported; /* watch-list (sendInitialEvents) usable */
    int initial_sync; /* inside a watch-list's initial events */
    size_t initial_items;
    int syncs;    /* completed lists (paginated or streamed) */
    char *bad_rv; /* RV at which the last unparsable line came */
    int requests; /* watch requests made */
    atomic_int stop;
    pthread_t thread;
    int started;

    /* per-stream state */
    enum end_reason end;
    int stream_events;
    char errmsg[1024];
};

static void wlog(const struct kwb_watch *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wlog(const struct kwb_watch *w, int level, const char *fmt, ...)
{
    va_list ap;
    const char *kv[] = {"watch", w->wc->id, NULL};

    if (!kwb_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    kwb_log_kvv(level, "watch", kv, fmt, ap);
    va_end(ap);
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Called for every event: reuses its buffer instead of allocating. */
static int set_rv(struct kwb_watch *w, const char *rv)
{
    size_t len = strlen(rv);

    if (len + 1 > w->rv_cap) {
        size_t cap = len + 1 < 64 ? 64 : len + 1;
        char *n = malloc(cap);
        if (!n) {
            return -ENOMEM;
        }
        free(w->rv);
        w->rv = n;
        w->rv_cap = cap;
    }
    memcpy(w->rv, rv, len + 1);
    return 0;
}

/* Hand the current batch to the pipeline (blocks on backpressure). */
static int flush_batch(struct kwb_watch *w)
{
    struct kwb_batch *b = w->batch;
    int rc;

    if (!b || b->n_items == 0) {
        return 0;
    }
    w->batch = kwb_pipeline_batch(w->pipeline, w->idx);
    w->batch_us = 0;
    int64_t t0 = now_us();
    rc = kwb_pipeline_push(w->pipeline, b, &w->stop);
    w->win_blocked += now_us() - t0; /* backpressure is not a slow stream */
    if (!w->batch) {
        return -ENOMEM;
    }
    return rc;
}

static int maybe_flush(struct kwb_watch *w)
{
    if (w->batch->n_items >= BATCH_ITEMS || w->batch->json_len >= BATCH_BYTES) {
        return flush_batch(w);
    }
    return 0;
}

static void count_emitted(struct kwb_watch *w, enum kwb_ev_type t,
                          enum kwb_origin o)
{
    kwb_counter_add(&w->stats->emitted[t][o], 1);
}

/* The initial sync is done (for /readyz). */
static void mark_synced(struct kwb_watch *w)
{
    atomic_store_explicit(&w->stats->synced, 1, memory_order_relaxed);
}

/* A list (paginated or streamed) completed: every one after the first
 * sync of a fresh start is a relist. */
static void list_done(struct kwb_watch *w)
{
    if (w->syncs > 0 || !w->first_start) {
        kwb_counter_add(&w->stats->relists, 1);
    }
    w->syncs++;
    w->need_list = 0;
    mark_synced(w);
    /* A list's page bodies and batches were large and are gone now: give
     * the memory back instead of keeping the peak for the agent's life. */
    malloc_trim(0);
}

static void update_objects(struct kwb_watch *w)
{
    atomic_store_explicit(&w->stats->objects, kwb_store_count(w->live),
                          memory_order_relaxed);
}

static int sleep_ms(struct kwb_watch *w, int64_t ms)
{
    int64_t end = kwb_now_ms() + ms;

    while (!atomic_load(&w->stop)) {
        int64_t left = end - kwb_now_ms();
        if (left <= 0) {
            return 0;
        }
        struct timespec ts = {0, (long)(left > 100 ? 100 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -ECANCELED;
}

static int append_query(char *url, size_t size, const char *key,
                        const char *value)
{
    char esc[4096];
    size_t len = strlen(url);
    int n;

    if (kwb_kube_escape(value, esc, sizeof(esc)) < 0) {
        return -1;
    }
    n = snprintf(url + len, size - len, "%c%s=%s", strchr(url, '?') ? '&' : '?',
                 key, esc);
    return (n < 0 || (size_t)n >= size - len) ? -1 : 0;
}

static int add_selectors(const struct kwb_watch *w, char *url, size_t size)
{
    if (w->wc->label_selector &&
        append_query(url, size, "labelSelector", w->wc->label_selector)) {
        return -1;
    }
    if (w->wc->field_selector &&
        append_query(url, size, "fieldSelector", w->wc->field_selector)) {
        return -1;
    }
    return 0;
}

/* Log a failed request once, with what the operator needs to act. */
static void log_failure(struct kwb_watch *w, const char *what,
                        const struct kwb_kube_resp *r)
{
    if (r->status == 401) {
        wlog(w, KWB_LOG_WARN, "%s: 401 Unauthorized (%s); re-reading the token",
             what, r->errmsg[0] ? r->errmsg : "no message");
        kwb_kube_auth_invalidate(w->auth);
    } else if (r->status == 403) {
        wlog(w, KWB_LOG_ERROR,
             "%s: 403 Forbidden: RBAC must allow verbs list and watch on "
             "resource '%s' (group '%s') %s%s: %s",
             what, w->wc->resource, w->wc->group,
             w->wc->namespace_ ? "in namespace " : "in all namespaces",
             w->wc->namespace_ ? w->wc->namespace_ : "", r->errmsg);
    } else if (r->status && r->status != 200) {
        wlog(w, KWB_LOG_WARN, "%s: HTTP %ld %s: %s", what, r->status, r->reason,
             r->errmsg[0] ? r->errmsg : "no message");
    } else {
        wlog(w, KWB_LOG_WARN, "%s: %s", what,
             r->errmsg[0] ? r->errmsg : "transport error");
    }
}

/* ---- list + diff -------------------------------------------------------- */

struct vanished {
    struct kwb_watch *w;
    char **uids;
    size_t n, cap;
    int rc;
};

static int collect_vanished(void *opaque, const struct kwb_store_entry *e)
{
    struct vanished *v = opaque;
    struct kwb_watch *w = v->w;
    int rc;

    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 64;
        char **n = realloc(v->uids, ncap * sizeof(*n));
        if (!n) {
            v->rc = -ENOMEM;
            return 1;
        }
        v->uids = n;
        v->cap = ncap;
    }
    v->uids[v->n] = strdup(e->uid);
    if (!v->uids[v->n]) {
        v->rc = -ENOMEM;
        return 1;
    }
    v->n++;
    rc = kwb_event_append_vanished(w->batch, &w->ectx, e);
    if (rc < 0) {
        v->rc = rc;
        return 1;
    }
    count_emitted(w, KWB_EV_DELETED, KWB_ORIGIN_LIST);
    return 0;
}

/* One listed object against the live store. */
static int diff_item(struct kwb_watch *w, const struct kwb_jobj *o, int skip)
{
    char uid[512], rv[512], name[512], ns[512], err[256];
    struct kwb_store_pos pos;
    const char *known;
    int rc;

    if (kwb_event_span_str(&o->uid, uid, sizeof(uid)) < 0 ||
        kwb_event_span_str(&o->resource_version, rv, sizeof(rv)) < 0 ||
        kwb_event_span_str(&o->name, name, sizeof(name)) < 0 ||
        kwb_event_span_str(&o->namespace_, ns, sizeof(ns)) < 0 || !uid[0] ||
        !rv[0]) {
        wlog(w, KWB_LOG_ERROR,
             "listed object without usable uid/"
             "resourceVersion skipped");
        return 0;
    }
    known = kwb_store_find(w->live, uid, &pos);
    if (known && strcmp(known, rv) == 0) {
        kwb_store_mark_seen(w->live, uid);
        return 0;
    }
    if (skip) {
        rc = kwb_event_append_state(w->batch, uid, rv, name, ns, 0);
    } else {
        rc = kwb_event_append(w->batch, &w->ectx,
                              known ? KWB_EV_MODIFIED : KWB_EV_ADDED,
                              KWB_ORIGIN_LIST, o, NULL, err, sizeof(err));
        if (rc == -EINVAL) {
            wlog(w, KWB_LOG_ERROR, "listed object %s skipped: %s", uid, err);
            return 0;
        }
        if (rc == 0) {
            count_emitted(w, known ? KWB_EV_MODIFIED : KWB_EV_ADDED,
                          KWB_ORIGIN_LIST);
        }
    }
    if (rc == 0) {
        rc = kwb_store_put_at(w->live, &pos, rv, name, ns);
    }
    return rc;
}

/*
 * LIST every page and diff against the live store: ADDED for new objects,
 * MODIFIED for changed ones, DELETED for vanished ones, nothing for the
 * unchanged; then a MARK with the list's RV. 0, -EAGAIN (retry with
 * backoff; *r says why), -ECANCELED.
 */
/*
 * The end of a list (paginated or streamed): objects we knew that the list
 * no longer has were deleted during the gap: emit them and forget them;
 * then a MARK with the list's RV, the resume point once all is acked.
 */
static int finish_list(struct kwb_watch *w, const char *list_rv,
                       size_t *n_vanished)
{
    struct vanished v = {.w = w};
    int rc;

    kwb_store_foreach(w->live, 1, collect_vanished, &v);
    rc = v.rc;
    if (rc == 0) {
        for (size_t i = 0; i < v.n; i++) {
            kwb_store_del(w->live, v.uids[i]);
        }
        rc = kwb_batch_mark(w->batch, list_rv);
    }
    if (rc == 0) {
        rc = set_rv(w, list_rv);
    }
    if (rc == 0) {
        rc = flush_batch(w);
    }
    *n_vanished = v.n;
    for (size_t i = 0; i < v.n; i++) {
        free(v.uids[i]);
    }
    free(v.uids);
    update_objects(w);
    return rc;
}

static int do_list(struct kwb_watch *w, int skip, struct kwb_kube_resp *r)
{
    char base[URL_MAX], url[URL_MAX], list_rv[512] = "";
    char *cont = NULL;
    int rc = 0, pages = 0;
    size_t items = 0, vanished = 0;

    if (kwb_kube_collection_url(w->kube, w->wc, base, sizeof(base)) < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "URL too long");
        return -EAGAIN;
    }
restart:
    kwb_store_begin_mark(w->live);
    free(cont);
    cont = NULL;
    do {
        struct kwb_jlist list;
        struct kwb_jobj obj;
        struct kwb_jerr jerr = {0, NULL};
        char lim[32];

        snprintf(url, sizeof(url), "%s", base);
        snprintf(lim, sizeof(lim), "%d", w->cfg->list_page_size);
        if (append_query(url, sizeof(url), "limit", lim) ||
            (cont && append_query(url, sizeof(url), "continue", cont)) ||
            add_selectors(w, url, sizeof(url))) {
            snprintf(r->errmsg, sizeof(r->errmsg), "URL too long");
            rc = -EAGAIN;
            goto out;
        }
        rc = kwb_kube_get(w->kube, url, LIST_BODY_MAX, &w->stop, r);
        if (atomic_load(&w->stop)) {
            rc = -ECANCELED;
            goto out;
        }
        if (rc < 0) {
            rc = -EAGAIN;
            goto out;
        }
        if (r->status == 410 && cont) {
            /* The continue token expired mid-list: start over. What was
             * already emitted is in the live store and is not repeated. */
            wlog(w, KWB_LOG_WARN,
                 "continue token expired after %d pages; listing again", pages);
            goto restart;
        }
        if (r->status != 200) {
            rc = -EAGAIN;
            goto out;
        }
        if (kwb_jscan_list(r->body, r->body_len, &list, &jerr) < 0) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "invalid list response at byte %zu: %s", jerr.offset,
                     jerr.msg ? jerr.msg : "?");
            rc = -EAGAIN;
            goto out;
        }
        if (list.kind.p) {
            kwb_event_ctx_set_list_kind(&w->ectx, list.kind.p, list.kind.len);
        }
        if (kwb_event_span_str(&list.resource_version, list_rv,
                               sizeof(list_rv)) < 0 ||
            (!list_rv[0] && pages == 0)) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "list response without metadata.resourceVersion");
            rc = -EAGAIN;
            goto out;
        }
        while ((rc = kwb_jscan_list_next(&list, &obj, &jerr)) == 1) {
            rc = diff_item(w, &obj, skip);
            if (rc < 0) {
                snprintf(r->errmsg, sizeof(r->errmsg), "%s", strerror(-rc));
                rc = -EAGAIN;
                goto out;
            }
            items++;
            if ((rc = maybe_flush(w)) < 0) {
                goto out;
            }
        }
        if (rc < 0) {
            snprintf(r->errmsg, sizeof(r->errmsg), "invalid list item");
            rc = -EAGAIN;
            goto out;
        }
        free(cont);
        cont = NULL;
        if (list.continue_.p && list.continue_.len) {
            cont = malloc(list.continue_.len + 1);
            if (!cont || kwb_event_span_str(&list.continue_, cont,
                                            list.continue_.len + 1) < 0) {
                rc = -EAGAIN;
                goto out;
            }
        }
        pages++;
        if ((rc = flush_batch(w)) < 0) {
            goto out;
        }
    } while (cont);

    rc = finish_list(w, list_rv, &vanished);
    if (rc == 0) {
        wlog(w, KWB_LOG_INFO,
             "listed %zu objects in %d pages at resourceVersion %s, %zu "
             "vanished",
             items, pages, list_rv, vanished);
    } else if (rc != -ECANCELED) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", strerror(-rc));
        rc = -EAGAIN;
    }
out:
    free(cont);
    /* The page body buffer (~2 MB for 500 pods) served every page of the
     * list; the watch does not need it. */
    kwb_kube_resp_drop_body(r);
    update_objects(w);
    return rc;
}

/* ---- watch stream ------------------------------------------------------- */

static int stream_fail(struct kwb_watch *w, enum end_reason why,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int stream_fail(struct kwb_watch *w, enum end_reason why,
                       const char *fmt, ...)
{
    va_list ap;

    w->end = why;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
    va_end(ap);
    return 1;
}

static int ev_type(const struct kwb_jspan *t)
{
    if (kwb_jspan_eq(t, "ADDED")) {
        return KWB_EV_ADDED;
    }
    if (kwb_jspan_eq(t, "MODIFIED")) {
        return KWB_EV_MODIFIED;
    }
    if (kwb_jspan_eq(t, "DELETED")) {
        return KWB_EV_DELETED;
    }
    return -1;
}

static int on_line(void *opaque, const char *line, size_t len)
{
    struct kwb_watch *w = opaque;
    struct kwb_jevent ev;
    struct kwb_jerr jerr = {0, NULL};
    char uid[512], rv[512], name[512], ns[512], err[256];
    struct kwb_store_pos pos;
    const char *known;
    int t, rc;

    if (kwb_jscan_event(line, len, &ev, &jerr) < 0) {
        const char *at = w->rv ? w->rv : "";
        if (w->bad_rv && strcmp(w->bad_rv, at) == 0) {
            /* The same place fails again: the server keeps sending it.
             * A relist gets the current state past the poison line. */
            w->need_list = 1;
            return stream_fail(w, END_ERROR,
                               "invalid watch event (%zu bytes) at byte "
                               "%zu: %s; again after resourceVersion %s, "
                               "relisting",
                               len, jerr.offset, jerr.msg ? jerr.msg : "?", at);
        }
        free(w->bad_rv);
        w->bad_rv = strdup(at);
        return stream_fail(w, END_ERROR,
                           "invalid watch event (%zu bytes) at byte %zu: %s",
                           len, jerr.offset, jerr.msg ? jerr.msg : "?");
    }
    if (kwb_jspan_eq(&ev.type, "BOOKMARK")) {
        if (kwb_event_span_str(&ev.object.resource_version, rv, sizeof(rv)) <
                0 ||
            !rv[0]) {
            return stream_fail(w, END_ERROR,
                               "BOOKMARK without resourceVersion");
        }
        if (w->initial_sync) {
            size_t gone = 0;
            if (!ev.object.initial_events_end) {
                /* A server that ignores sendInitialEvents sends plain
                 * bookmarks and never the end marker: use LIST instead. */
                w->wl_supported = 0;
                return stream_fail(w, END_ERROR,
                                   "server ignores sendInitialEvents (no "
                                   "initial-events-end bookmark); using "
                                   "paginated LIST");
            }
            w->initial_sync = 0;
            if (finish_list(w, rv, &gone) < 0) {
                return stream_fail(w, END_ERROR, "cannot finish the list");
            }
            list_done(w);
            wlog(w, KWB_LOG_INFO,
                 "streamed %zu objects at resourceVersion %s (watch-list), "
                 "%zu vanished",
                 w->initial_items, rv, gone);
            return 0;
        }
        /* A bookmark moves the resume point; it is never emitted. */
        if (set_rv(w, rv) < 0 || kwb_batch_mark(w->batch, rv) < 0) {
            return stream_fail(w, END_ERROR, "out of memory");
        }
        return maybe_flush(w) < 0;
    }
    if (kwb_jspan_eq(&ev.type, "ERROR")) {
        kwb_counter_add(&w->stats->received[KWB_EV_TYPES], 1);
        char msg[256] = "", reason[64] = "";
        kwb_event_span_str(&ev.object.message, msg, sizeof(msg));
        kwb_event_span_str(&ev.object.reason, reason, sizeof(reason));
        if (ev.object.status_code == 410 || strcmp(reason, "Expired") == 0 ||
            strcmp(reason, "Gone") == 0) {
            return stream_fail(w, END_EXPIRED, "410 %s: %s", reason, msg);
        }
        return stream_fail(w, END_ERROR, "ERROR event %d %s: %s",
                           ev.object.status_code, reason, msg);
    }
    t = ev_type(&ev.type);
    if (w->initial_sync && t == KWB_EV_ADDED) {
        /* The initial state of a watch-list: diffed like a LIST page. */
        if (!w->ectx.kind && ev.object.kind.p) {
            w->ectx.kind = strndup(ev.object.kind.p, ev.object.kind.len);
        }
        w->initial_items++;
        if (diff_item(w, &ev.object, w->list_skip) < 0) {
            return stream_fail(w, END_ERROR, "out of memory");
        }
        return maybe_flush(w) < 0;
    }
    if (w->initial_sync && t >= 0) {
        return stream_fail(w, END_ERROR,
                           "%s event before the end of the initial "
                           "events",
                           kwb_ev_type_names[t]);
    }
    if (t < 0) {
        char tname[64] = "";
        kwb_event_span_str(&ev.type, tname, sizeof(tname));
        wlog(w, KWB_LOG_ERROR, "unknown watch event type '%s' ignored", tname);
        return 0;
    }
    kwb_counter_add(&w->stats->received[t], 1);
    if (kwb_event_span_str(&ev.object.uid, uid, sizeof(uid)) < 0 ||
        kwb_event_span_str(&ev.object.resource_version, rv, sizeof(rv)) < 0 ||
        kwb_event_span_str(&ev.object.name, name, sizeof(name)) < 0 ||
        kwb_event_span_str(&ev.object.namespace_, ns, sizeof(ns)) < 0 ||
        !uid[0] || !rv[0]) {
        /* Without uid/RV the event cannot be placed; resynchronise by a
         * relist so nothing it described is lost. */
        w->need_list = 1;
        return stream_fail(w, END_ERROR,
                           "%s event without metadata.uid/resourceVersion",
                           kwb_ev_type_names[t]);
    }
    w->stream_events++;
    known = kwb_store_find(w->live, uid, &pos);
    if (known && strcmp(known, rv) == 0) {
        /* Already delivered (a replay after a reconnect): drop it, but the
         * resume point still moves. */
        kwb_counter_add(&w->stats->duplicate, 1);
        if (set_rv(w, rv) < 0 || kwb_batch_mark(w->batch, rv) < 0) {
            return stream_fail(w, END_ERROR, "out of memory");
        }
        return maybe_flush(w) < 0;
    }
    rc = kwb_event_append(w->batch, &w->ectx, (enum kwb_ev_type)t,
                          KWB_ORIGIN_WATCH, &ev.object, rv, err, sizeof(err));
    if (rc < 0) {
        w->need_list = 1;
        return stream_fail(w, END_ERROR, "cannot build event for %s: %s", uid,
                           err);
    }
    count_emitted(w, (enum kwb_ev_type)t, KWB_ORIGIN_WATCH);
    if (t == KWB_EV_DELETED) {
        kwb_store_del_at(w->live, &pos);
    } else if (kwb_store_put_at(w->live, &pos, rv, name, ns) < 0) {
        return stream_fail(w, END_ERROR, "out of memory");
    }
    if (set_rv(w, rv) < 0) {
        return stream_fail(w, END_ERROR, "out of memory");
    }
    return maybe_flush(w) < 0;
}

static int on_oversize(void *opaque, size_t len_so_far)
{
    struct kwb_watch *w = opaque;

    /* Skip it and relist: the list shows the object's current state (or
     * fails again loudly), and no buffer grows without bound. */
    w->need_list = 1;
    if (w->initial_sync) {
        /* A streamed list would send the same object again, forever:
         * this watch lists by paginated LIST from now on. */
        w->wl_supported = 0;
        return stream_fail(w, END_ERROR,
                           "object in the streamed list larger than "
                           "max_event_bytes (%zu bytes so far); relisting "
                           "by paginated LIST from now on",
                           len_so_far);
    }
    return stream_fail(w, END_ERROR,
                       "watch event larger than max_event_bytes (%zu bytes "
                       "so far); skipping it and relisting",
                       len_so_far);
}

/*
 * curl keeps reading (up to 100 reads) while the socket stays readable and
 * calls this for each chunk, i.e. each event; on_idle runs only after that.
 * A slow stream on a busy machine (10k events/s, the worker a little behind)
 * always has the next event there, so events waited up to ~10 ms in the
 * worker's batch (the largest part of the p99 at 10k/s; BENCHMARKS.md,
 * Latency). So in a slow stream a batch that has waited HANDOVER_US goes
 * over now. A fast stream keeps batching by size (a batch fills in 2-3 ms
 * at the benchmark's rates): handing it over every millisecond cost 25-35 %
 * more CPU per event (a write and an fsync per smaller batch), and so did
 * telling the two apart by a batch's own age and size, which a worker
 * preempted for a few ms at a batch's start mistakes for a slow stream;
 * the rate over RATE_WINDOW_US (less the time spent waiting for room in the
 * pipeline) does not. Any batch goes after HANDOVER_MAX_US.
 */
static int on_data(void *opaque, const char *data, size_t len)
{
    struct kwb_watch *w = opaque;

    if (!w->need_list) {
        /* Resumed from a checkpoint: in sync once the watch streams. */
        mark_synced(w);
    }

    /* One clock read per network read, not per event: the events in it
     * were all observed now. */
    int before = w->stream_events;
    kwb_event_ctx_stamp(&w->ectx);
    int rc = kwb_framer_feed(&w->framer, data, len, on_line, on_oversize, w);
    kwb_event_ctx_unstamp(&w->ectx);
    if (w->stream_events != before) {
        atomic_store_explicit(&w->stats->last_event_ms, kwb_now_coarse_ms(),
                              memory_order_relaxed);
    }
    if (rc != 0) {
        return 1;
    }
    w->win_events += w->stream_events - before;
    if (w->batch->n_items == 0 || (!w->slow && ++w->data_calls % 32 != 0)) {
        return 0;
    }
    int64_t now = now_us();
    if (w->win_us == 0) {
        w->win_us = now;
        w->win_events = 0;
        w->win_blocked = 0;
    } else if (now - w->win_us >= RATE_WINDOW_US) {
        w->slow = w->win_events * 1000000 <
                  (int64_t)HANDOVER_RATE * (now - w->win_us - w->win_blocked);
        w->win_us = now;
        w->win_events = 0;
        w->win_blocked = 0;
    }
    if (w->batch_us == 0) {
        w->batch_us = now;
        return 0;
    }
    if ((w->slow && now - w->batch_us >= HANDOVER_US) ||
        now - w->batch_us >= HANDOVER_MAX_US) {
        return flush_batch(w) < 0;
    }
    return 0;
}

static int on_idle(void *opaque)
{
    struct kwb_watch *w = opaque;

    update_objects(w);
    return flush_batch(w) == -ECANCELED;
}

static const char *reason_name(enum end_reason e)
{
    switch (e) {
    case END_TIMEOUT:
        return "timeout";
    case END_EXPIRED:
        return "expired";
    case END_STALL:
        return "stall";
    default:
        return "error";
    }
}

static enum kwb_reconnect_reason reason_metric(enum end_reason e)
{
    switch (e) {
    case END_TIMEOUT:
        return KWB_RECONNECT_TIMEOUT;
    case END_EXPIRED:
        return KWB_RECONNECT_EXPIRED;
    case END_STALL:
        return KWB_RECONNECT_STALL;
    default:
        return KWB_RECONNECT_ERROR;
    }
}

/* One WATCH request from w->rv; sets w->end. */
static void do_watch(struct kwb_watch *w, struct kwb_kube_resp *r,
                     enum end_reason prev)
{
    char url[URL_MAX], tmo[32];
    int span = w->cfg->watch_timeout_max_s - w->cfg->watch_timeout_min_s;
    int rc;

    if (w->requests++ > 0) {
        kwb_counter_add(&w->stats->reconnects[reason_metric(prev)], 1);
    }
    /* A random server-side timeout, as client-go asks, spreads
     * reconnects of many agents over time. */
    snprintf(tmo, sizeof(tmo), "%d",
             w->cfg->watch_timeout_min_s +
                 (span > 0 ? (int)(kwb_backoff_rand(&w->backoff) *
                                   (double)(span + 1))
                           : 0));
    if (kwb_kube_collection_url(w->kube, w->wc, url, sizeof(url)) < 0 ||
        append_query(url, sizeof(url), "watch", "1") ||
        append_query(url, sizeof(url), "allowWatchBookmarks", "true") ||
        (w->initial_sync
             /* watch-list: the current state as ADDED events, then a
              * bookmark marking its end, then changes. */
             ? (append_query(url, sizeof(url), "sendInitialEvents", "true") ||
                append_query(url, sizeof(url), "resourceVersionMatch",
                             "NotOlderThan"))
             : append_query(url, sizeof(url), "resourceVersion", w->rv)) ||
        append_query(url, sizeof(url), "timeoutSeconds", tmo) ||
        add_selectors(w, url, sizeof(url))) {
        w->end = END_ERROR;
        snprintf(w->errmsg, sizeof(w->errmsg), "URL too long");
        return;
    }
    w->end = END_NONE;
    w->errmsg[0] = '\0';
    w->stream_events = 0;
    kwb_framer_reset(&w->framer);
    rc = kwb_kube_stream(w->kube, url, w->cfg->stall_timeout_s, on_data,
                         on_idle, w, &w->stop, r);
    /* Whatever was parsed before the end is handed over. */
    flush_batch(w);
    if (atomic_load(&w->stop)) {
        return;
    }
    if (w->end != END_NONE) {
        return; /* the stream handler decided */
    }
    if (r->status == 410) {
        w->end = END_EXPIRED;
        snprintf(w->errmsg, sizeof(w->errmsg), "HTTP 410 %s: %s", r->reason,
                 r->errmsg);
        return;
    }
    if (r->status != 200 && r->status != 0) {
        w->end = END_ERROR;
        return;
    }
    if (r->stalled || rc == -ETIMEDOUT) {
        w->end = END_STALL;
        snprintf(w->errmsg, sizeof(w->errmsg), "%s", r->errmsg);
        return;
    }
    if (rc < 0) {
        w->end = END_ERROR;
        return;
    }
    if (kwb_framer_pending(&w->framer)) {
        w->end = END_ERROR;
        snprintf(w->errmsg, sizeof(w->errmsg),
                 "stream ended inside an event (%zu bytes dropped; resuming "
                 "from the last complete event)",
                 kwb_framer_pending(&w->framer));
        return;
    }
    w->end = END_TIMEOUT;
}

static void *watch_main(void *arg)
{
    struct kwb_watch *w = arg;
    struct kwb_kube_resp r = {0};
    enum end_reason prev = END_NONE;

    atomic_store(&w->stats->last_event_ms, kwb_now_ms());
    w->need_list = w->rv == NULL;
    w->wl_supported = w->cfg->watch_list != 0;
    while (!atomic_load(&w->stop)) {
        if (w->need_list) {
            w->list_skip = w->first_start && w->syncs == 0 &&
                           w->cfg->initial == KWB_INITIAL_SKIP;
            if (w->wl_supported) {
                /* The list happens inside the next watch request. */
                w->initial_sync = 1;
                w->initial_items = 0;
                kwb_store_begin_mark(w->live);
            } else {
                int rc = do_list(w, w->list_skip, &r);
                if (rc == -ECANCELED) {
                    break;
                }
                if (rc < 0) {
                    kwb_counter_add(&w->stats->errors, 1);
                    log_failure(w, "list", &r);
                    if (sleep_ms(w, kwb_backoff_next(&w->backoff, kwb_now_ms(),
                                                     r.retry_after_s)) < 0) {
                        break;
                    }
                    continue;
                }
                list_done(w);
            }
        }
        int64_t started = kwb_now_ms();
        do_watch(w, &r, prev);
        if (atomic_load(&w->stop)) {
            break;
        }
        prev = w->end;
        if (w->initial_sync) {
            /* The watch-list did not complete. A server without the
             * feature rejects the parameters: fall back to LIST at once. */
            w->initial_sync = 0;
            if (w->cfg->watch_list < 0 &&
                (r.status == 400 || r.status == 422)) {
                w->wl_supported = 0;
                wlog(w, KWB_LOG_INFO,
                     "server does not support streaming lists (HTTP %ld: "
                     "%s); using paginated LIST",
                     r.status, r.errmsg);
                continue;
            }
        }
        switch (w->end) {
        case END_TIMEOUT:
            /* Normal: the server's timeoutSeconds. Re-watch at once from
             * the last RV, unless the server closes at once every time. */
            wlog(w, KWB_LOG_DEBUG,
                 "watch closed by the server after %d "
                 "events; resuming at %s",
                 w->stream_events, w->rv ? w->rv : "(list)");
            if (kwb_now_ms() - started < 1000 && w->stream_events == 0 &&
                sleep_ms(w, kwb_backoff_next(&w->backoff, kwb_now_ms(), 0)) <
                    0) {
                goto out;
            }
            break;
        case END_EXPIRED:
            kwb_counter_add(&w->stats->expired, 1);
            wlog(w, KWB_LOG_WARN, "resourceVersion %s expired (%s); relisting",
                 w->rv ? w->rv : "(none)", w->errmsg);
            w->need_list = 1;
            break;
        default:
            kwb_counter_add(&w->stats->errors, 1);
            if (w->errmsg[0]) {
                wlog(w, KWB_LOG_WARN, "watch %s: %s; reconnecting",
                     reason_name(w->end), w->errmsg);
            } else {
                log_failure(w, "watch", &r);
            }
            if (sleep_ms(w, kwb_backoff_next(&w->backoff, kwb_now_ms(),
                                             r.retry_after_s)) < 0) {
                goto out;
            }
            break;
        }
    }
out:
    flush_batch(w);
    kwb_kube_resp_reset(&r);
    return NULL;
}

struct kwb_watch *kwb_watch_new(const struct kwb_config *cfg, size_t idx,
                                struct kwb_kube_auth *auth,
                                struct kwb_pipeline *pipeline,
                                struct kwb_watch_stats *stats,
                                struct kwb_store *live, const char *resume_rv,
                                int first_start, const unsigned char *hash_key,
                                size_t hash_key_len)
{
    struct kwb_watch *w = calloc(1, sizeof(*w));
    const struct kwb_watch_conf *wc = &cfg->watches[idx];
    int trim;

    if (!w) {
        return NULL;
    }
    w->cfg = cfg;
    w->wc = wc;
    w->idx = idx;
    w->auth = auth;
    w->pipeline = pipeline;
    w->stats = stats;
    w->first_start = first_start;
    trim = wc->trim_managed_fields >= 0 ? wc->trim_managed_fields
                                        : cfg->trim_managed_fields;
    kwb_backoff_init(&w->backoff, cfg->backoff_initial_s, cfg->backoff_factor,
                     cfg->backoff_jitter, cfg->backoff_max_s,
                     cfg->backoff_reset_s,
                     (uint64_t)kwb_now_ms() * 2654435761u + idx + 1);
    kwb_framer_init(&w->framer, cfg->max_event_bytes);
    w->kube = kwb_kube_new(auth, cfg);
    w->batch = kwb_batch_new(idx);
    if (!w->kube || !w->batch ||
        kwb_event_ctx_init(&w->ectx, cfg->cluster_name, wc->resource, wc->api,
                           trim, hash_key, hash_key_len) < 0 ||
        kwb_event_ctx_set_redact_paths(&w->ectx, wc->redact_paths
                                                     ? wc->redact_paths
                                                     : cfg->redact_paths) < 0 ||
        (resume_rv && set_rv(w, resume_rv) < 0)) {
        kwb_watch_free(w);
        return NULL;
    }
    w->live = live; /* taken only on success */
    return w;
}

int kwb_watch_start(struct kwb_watch *w)
{
    int rc = pthread_create(&w->thread, NULL, watch_main, w);

    if (rc != 0) {
        return -rc;
    }
    w->started = 1;
    return 0;
}

void kwb_watch_request_stop(struct kwb_watch *w)
{
    atomic_store(&w->stop, 1);
}

void kwb_watch_join(struct kwb_watch *w)
{
    if (w && w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
}

void kwb_watch_free(struct kwb_watch *w)
{
    if (!w) {
        return;
    }
    kwb_watch_join(w);
    kwb_kube_free(w->kube);
    kwb_store_free(w->live);
    kwb_event_ctx_free(&w->ectx);
    kwb_framer_free(&w->framer);
    kwb_batch_free(w->batch);
    free(w->rv);
    free(w->bad_rv);
    free(w);
}
