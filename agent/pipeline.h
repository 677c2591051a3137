/*
 * pipeline.h - owns the sinks, the acknowledgements and the checkpoints.
 *
 * Data flows one way: watch workers build batches of serialized events and
 * hand them over with kwb_pipeline_push(); the pipeline thread submits
 * every event to every sink, collects acks, and moves each watch's
 * checkpoint over the prefix of its items that every sink acknowledged.
 * Each sink gets the events in stream order through its own cursor; after
 * a failed delivery the cursor goes back to that event (sent alone until
 * it is through, then the rest again), so per object a sink's last word
 * is always the newest change. A failure of an event the cursor already
 * went back to or before (one a sink hands back unsent because an earlier
 * event failed) is counted as a retry but adds no backoff step.
 *
 * Thread: kwb_pipeline_push/kwb_batch_* run on watch workers; everything
 * else of the pipeline runs on its own thread, started by
 * kwb_pipeline_start, which writes checkpoints through a writer thread of
 * its own (so a checkpoint never holds up events). Locks: pipeline->lock
 * guards the hand-off queue, the in-flight event count and the hand-off
 * to the checkpoint writer only; never held across I/O.
 */
#ifndef KWB_PIPELINE_H
#define KWB_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "store.h"

enum kwb_item_kind {
    KWB_ITEM_EVENT = 0, /* delivered to the sinks */
    KWB_ITEM_STATE,     /* only recorded in the committed store (skip) */
    KWB_ITEM_MARK,      /* only moves the resume resourceVersion */
};

#define KWB_NO_OFF UINT32_MAX

/* One entry of a batch. Offsets index the batch's json or str buffer. */
struct kwb_item {
    uint32_t json_off, json_len; /* event JSON in batch->json, then '\n' */
    uint32_t uid, rv, name, ns, kind, api_version; /* in batch->str */
    uint32_t resume_rv;      /* in batch->str, or KWB_NO_OFF */
    uint8_t item_kind;       /* enum kwb_item_kind */
    uint8_t type;            /* enum kwb_ev_type */
    uint8_t origin;          /* enum kwb_origin */
    uint8_t pending;         /* sinks that have not acked yet (pipeline) */
    uint32_t acked;          /* bit s: sink s acknowledged it (pipeline) */
    uint32_t dead;           /* bit s: sink s dead-lettered it (pipeline) */
    struct kwb_batch *batch; /* back pointer, set at hand-off */
};

/*
 * A batch: events of one watch in stream order. Built by its worker, then
 * immutable once pushed; freed by the pipeline when every item is acked
 * and applied to the checkpoint.
 */
struct kwb_batch {
    struct kwb_batch *next;   /* pipeline queue / in-flight list */
    struct kwb_batch *prev;   /* in-flight list */
    struct kwb_batch *w_next; /* the watch's FIFO */
    size_t watch;             /* index into cfg->watches */
    char *json;
    size_t json_len, json_cap;
    char *str;
    size_t str_len, str_cap;
    struct kwb_item *items;
    size_t n_items, items_cap;
    size_t n_events;   /* items of kind EVENT */
    size_t applied;    /* items applied to the watch's checkpoint state */
    size_t touched;    /* most bytes its buffers held so far (pool) */
    int64_t pooled_ms; /* when it last went into the pool (pipeline) */
    uint64_t seq;      /* hand-off order (pipeline) */
    size_t inflight;   /* submissions of its items not yet acked */
    /* From kwb_pipeline_batch: takes a pooled batch's buffers when it
     * first needs any (then NULL), so an idle worker's empty batch holds
     * none. */
    struct kwb_pipeline *owner;
};

struct kwb_batch *kwb_batch_new(size_t watch);
void kwb_batch_free(struct kwb_batch *b); /* NULL-safe */
/* Clear for reuse by the same watch. */
void kwb_batch_reset(struct kwb_batch *b);
/* Append a NUL-terminated copy of [s, s+len) to b->str; returns its offset
 * or KWB_NO_OFF on -ENOMEM. */
uint32_t kwb_batch_str(struct kwb_batch *b, const char *s, size_t len);
/* Reserve room for n more JSON bytes; pointer to write at, or NULL. */
char *kwb_batch_json_reserve(struct kwb_batch *b, size_t n);
/* A new zeroed item (offsets KWB_NO_OFF); NULL on -ENOMEM. */
struct kwb_item *kwb_batch_item(struct kwb_batch *b);
/* Append a MARK item carrying resume rv. 0 or -ENOMEM. */
int kwb_batch_mark(struct kwb_batch *b, const char *rv);

struct kwb_pipeline;

/* Per-watch start state handed to the pipeline: it takes `committed`
 * (the store as of the checkpoint) and copies `resume_rv`. */
struct kwb_pipeline_watch_init {
    struct kwb_store *committed;
    const char *resume_rv; /* NULL when there was no checkpoint */
};

/*
 * Create the pipeline: initialises every configured sink (no network I/O)
 * and opens dead-letter files. On error returns NULL with errbuf set.
 * `winit` has cfg->n_watches entries; ownership of each committed store
 * moves to the pipeline on success only.
 */
struct kwb_pipeline *kwb_pipeline_new(const struct kwb_config *cfg,
                                      struct kwb_metrics *metrics,
                                      struct kwb_pipeline_watch_init *winit,
                                      char *errbuf, size_t errsize);
struct kwb_cmstate;
/* state.backend "configmap": checkpoints go to ConfigMaps through cs
 * instead of files under state.dir. Before kwb_pipeline_start; cs is
 * borrowed and used only by the pipeline thread until kwb_pipeline_stop. */
void kwb_pipeline_set_cmstate(struct kwb_pipeline *p, struct kwb_cmstate *cs);

/* Start the sinks' I/O and the pipeline thread. 0 or negative errno. */
int kwb_pipeline_start(struct kwb_pipeline *p);

/* Bytes a batch holds for the queue_bytes bound: its JSON, strings and
 * items. */
size_t kwb_batch_bytes(const struct kwb_batch *b);

/*
 * Hand a batch over (ownership moves to the pipeline). Blocks while the
 * pipeline holds queue_events events or queue_bytes bytes (see
 * kwb_batch_bytes) or more (backpressure; a batch larger than a bound
 * still passes when the pipeline holds nothing) unless *stop becomes
 * nonzero; returns 0, or -ECANCELED when stopped while
 * waiting (the batch is then freed). Empty batches are freed at once.
 */
int kwb_pipeline_push(struct kwb_pipeline *p, struct kwb_batch *b,
                      const atomic_int *stop);

/*
 * An empty batch for watch `watch`, recycled from one the pipeline is done
 * with when possible (its buffers keep their memory: no page faults and
 * no mmap churn per batch; they are taken when the batch first needs
 * room, so an empty batch waiting for events holds none). The pool keeps up to
 * queue_bytes of finished batches plus one per watch, enough for all that can
 * be in flight; a batch that stays in it unused for KWB_POOL_IDLE_MS is
 * freed (kwb_pipeline_pool_trim). Any thread; NULL on -ENOMEM.
 */
#define KWB_POOL_IDLE_MS 1000
struct kwb_batch *kwb_pipeline_batch(struct kwb_pipeline *p, size_t watch);

/*
 * Free the pooled batches that have not been used for KWB_POOL_IDLE_MS at
 * `now` (kwb_now_ms()), and those more than twice as large as any batch
 * released lately (plus 64 KiB); when that empties the pool, give the
 * memory of the malloc arenas back too (malloc_trim). After a burst (a list)
 * the pool holds as many batches as were in flight at its peak, each filled to
 * ~1 MiB; events trickling in afterwards need one or two batches of a few KB,
 * and the rest is freed instead of staying resident for as long as events keep
 * coming. Returns the batches freed. The pipeline thread calls it every
 * KWB_POOL_IDLE_MS / 10; exposed for tests (call it only while that
 * thread does not run).
 */
size_t kwb_pipeline_pool_trim(struct kwb_pipeline *p, int64_t now);

/*
 * Stop: no more pushes are expected; drain what is queued, wait for the
 * sinks until deadline_ms (CLOCK_MONOTONIC ms), write the final
 * checkpoints, join the thread, close the sinks. Returns 0 when everything
 * was acknowledged, -ETIMEDOUT when some events were left unacked (they
 * are after the final checkpoint and will be delivered again).
 */
int kwb_pipeline_stop(struct kwb_pipeline *p, int64_t deadline_ms);
void kwb_pipeline_free(struct kwb_pipeline *p); /* NULL-safe */

#endif
