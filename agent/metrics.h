/*
 * metrics.h - the counters behind /metrics and /readyz.
 *
 * Every field is an atomic written by its owner thread (a watch worker or
 * the pipeline) and read by the HTTP thread (http.c), which renders the
 * Prometheus text format. Relaxed atomics: the numbers are statistics, not
 * synchronisation.
 */
#ifndef KWB_METRICS_H
#define KWB_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum kwb_ev_type {
    KWB_EV_ADDED = 0,
    KWB_EV_MODIFIED,
    KWB_EV_DELETED,
    KWB_EV_TYPES
};
enum kwb_origin { KWB_ORIGIN_WATCH = 0, KWB_ORIGIN_LIST, KWB_ORIGINS };
enum kwb_reconnect_reason {
    KWB_RECONNECT_TIMEOUT = 0, /* clean server close */
    KWB_RECONNECT_ERROR,
    KWB_RECONNECT_EXPIRED,
    KWB_RECONNECT_STALL,
    KWB_RECONNECT_REASONS,
};

/* The counters of a watch are written by that watch's worker thread only
 * (kwb_counter_add); the metrics endpoint reads them. */
struct kwb_watch_stats {
    const char *id; /* watch label value, borrowed from the config */
    /* received: watch-stream events by type; ERROR events counted too */
    atomic_uint_fast64_t received[KWB_EV_TYPES + 1]; /* +1: ERROR */
    atomic_uint_fast64_t emitted[KWB_EV_TYPES][KWB_ORIGINS];
    atomic_uint_fast64_t duplicate;
    atomic_uint_fast64_t reconnects[KWB_RECONNECT_REASONS];
    atomic_uint_fast64_t relists;
    atomic_uint_fast64_t expired;
    atomic_uint_fast64_t errors;        /* failed requests of any kind */
    atomic_int_fast64_t checkpoint_lag; /* emitted, not yet checkpointed */
    atomic_int_fast64_t last_event_ms;  /* CLOCK_MONOTONIC ms; start time
                                           before any event */
    atomic_int synced;                  /* initial sync finished */
    atomic_uint_fast64_t objects;       /* objects known to the store */
};

/* Written by the pipeline thread only (kwb_counter_add). */
struct kwb_sink_stats {
    const char *name; /* sink label value, borrowed */
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t retries;
    atomic_uint_fast64_t dead_letter;
    atomic_int ready; /* initialised and able to deliver */
};

struct kwb_metrics {
    struct kwb_watch_stats *watches;
    size_t n_watches;
    struct kwb_sink_stats *sinks;
    size_t n_sinks;
    atomic_int_fast64_t queue_events; /* events queued in the pipeline */
    atomic_int_fast64_t heartbeat_ms; /* pipeline loop's last turn, for
                                         /healthz */
    atomic_int leader;                /* 1 when this replica forwards */
};

/*
 * Add to a counter that one thread alone writes: a relaxed load and store,
 * no locked read-modify-write (the watch counts every event); readers still
 * see whole values.
 */
static inline void kwb_counter_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Allocate counters for n watches and n sinks; ids/names borrowed. */
struct kwb_metrics *kwb_metrics_new(const char *const *watch_ids,
                                    size_t n_watches,
                                    const char *const *sink_names,
                                    size_t n_sinks);
void kwb_metrics_free(struct kwb_metrics *m);

/* Render the Prometheus text format 0.0.4 into a malloc'd string (caller
 * frees); NULL on -ENOMEM. now_ms is CLOCK_MONOTONIC milliseconds. */
char *kwb_metrics_render(const struct kwb_metrics *m, int64_t now_ms);

/* 1 when every watch has synced and every sink is ready. */
int kwb_metrics_ready(const struct kwb_metrics *m);

/* The pipeline is considered stuck when its loop has not turned for longer
 * than this (/healthz answers 503). */
#define KWB_METRICS_HEARTBEAT_MAX_MS 30000

/* 1 when heartbeat_ms is at most KWB_METRICS_HEARTBEAT_MAX_MS before
 * now_ms (CLOCK_MONOTONIC ms). kwb_metrics_new sets heartbeat_ms to the
 * allocation time, so a starting agent counts as alive. */
int kwb_metrics_healthy(const struct kwb_metrics *m, int64_t now_ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t kwb_now_ms(void);
/* The same clock at the kernel tick's resolution (a few ms), for the
 * timestamps the hot path keeps per network read (stall detection, last
 * event age): several times cheaper to read. */
int64_t kwb_now_coarse_ms(void);

#endif
