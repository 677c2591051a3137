/*
 * test_pipeline.c - the pipeline's queue bounds (queue_events and
 * queue_bytes) and its batch pool (reuse, release of unused batches),
 * with a file sink into a temp dir.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

static char tmpdir[64];

struct fixture {
    struct kwb_config cfg;
    struct kwb_metrics *m;
    struct kwb_pipeline *p;
    char events_path[128];
};

static int setup(struct fixture *f, size_t queue_events, size_t queue_bytes)
{
    char text[1024], err[512];
    const char *watch_ids[] = {"w0"};
    const char *sink_names[] = {"file"};
    struct kwb_pipeline_watch_init winit = {.committed = kwb_store_new()};
    int n;

    memset(f, 0, sizeof(*f));
    snprintf(f->events_path, sizeof(f->events_path), "%s/events.jsonl", tmpdir);
    n = snprintf(
        text, sizeof(text),
        "cluster = { name = \"c1\"; server = \"http://127.0.0.1:8080\"; };\n"
        "state = { dir = \"%s/state\"; };\n"
        "watches = ( { api = \"v1\"; resource = \"pods\"; } );\n"
        "sinks = ( { type = \"file\"; name = \"file\"; path = \"%s\";\n"
        "  fsync = false; } );\n"
        "pipeline = { queue_events = %zu; queue_bytes = %zu; };\n",
        tmpdir, f->events_path, queue_events, queue_bytes);
    if (n < 0 || (size_t)n >= sizeof(text) ||
        kwb_config_load_string(&f->cfg, text, (size_t)n, "test.conf", err,
                               sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", err);
        kwb_store_free(winit.committed);
        return -1;
    }
    f->m = kwb_metrics_new(watch_ids, 1, sink_names, 1);
    f->p = kwb_pipeline_new(&f->cfg, f->m, &winit, err, sizeof(err));
    if (!f->p) {
        fprintf(stderr, "pipeline: %s\n", err);
        kwb_store_free(winit.committed);
        return -1;
    }
    return 0;
}

static void teardown(struct fixture *f)
{
    kwb_pipeline_free(f->p);
    kwb_metrics_free(f->m);
    kwb_config_free(&f->cfg);
}

/* Append n events of about `size` JSON bytes each to b. */
static void fill(struct kwb_batch *b, size_t n, size_t size, size_t *seq)
{
    for (size_t i = 0; i < n; i++) {
        char uid[32], head[64];
        int hl =
            snprintf(head, sizeof(head), "{\"seq\":%zu,\"pad\":\"", (*seq)++);
        size_t len = size > (size_t)hl + 2 ? size : (size_t)hl + 2;
        char *w = kwb_batch_json_reserve(b, len + 1);
        struct kwb_item *it;

        if (!w) {
            abort();
        }
        memcpy(w, head, (size_t)hl);
        memset(w + hl, 'x', len - (size_t)hl - 2);
        memcpy(w + len - 2, "\"}\n", 3);
        it = kwb_batch_item(b);
        if (!it) {
            abort();
        }
        it->item_kind = KWB_ITEM_EVENT;
        it->json_off = (uint32_t)b->json_len;
        it->json_len = (uint32_t)len;
        b->json_len += len + 1;
        snprintf(uid, sizeof(uid), "uid-%zu", *seq);
        it->uid = kwb_batch_str(b, uid, strlen(uid));
        it->rv = kwb_batch_str(b, "1", 1);
        b->n_events++;
    }
}

static struct kwb_batch *make(size_t n, size_t size, size_t *seq)
{
    struct kwb_batch *b = kwb_batch_new(0);

    if (!b) {
        abort();
    }
    fill(b, n, size, seq);
    return b;
}

/* Both bounds, decided without a pipeline thread: a push that would
 * wait returns -ECANCELED at once because stop is already set. */
static void test_bounds(void)
{
    struct fixture f;
    atomic_int stop = 1;
    size_t seq = 0;

    if (setup(&f, 1000, 65536) < 0) {
        CHECK(0);
        return;
    }
    /* Larger than queue_bytes, but the pipeline is empty: passes. */
    struct kwb_batch *big = make(2, 50000, &seq);
    CHECK(kwb_batch_bytes(big) > 65536);
    CHECK_EQ_INT(kwb_pipeline_push(f.p, big, &stop), 0);
    /* Anything more would exceed the byte bound: refused. */
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(1, 100, &seq), &stop), -ECANCELED);
    teardown(&f);

    if (setup(&f, 1000, 65536) < 0) {
        CHECK(0);
        return;
    }
    struct kwb_batch *a = make(1, 30000, &seq);
    size_t abytes = kwb_batch_bytes(a);
    CHECK_EQ_INT(kwb_pipeline_push(f.p, a, &stop), 0);
    /* Fits below 64 KiB with the first one. */
    struct kwb_batch *b = make(1, 20000, &seq);
    CHECK(abytes + kwb_batch_bytes(b) <= 65536);
    CHECK_EQ_INT(kwb_pipeline_push(f.p, b, &stop), 0);
    /* Would cross 64 KiB: refused, though few events. */
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(1, 20000, &seq), &stop),
                 -ECANCELED);
    /* Still room for a small one. */
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(1, 1000, &seq), &stop), 0);
    CHECK_EQ_INT(atomic_load(&f.m->queue_events), 3);
    teardown(&f);

    /* The event bound still holds on its own. */
    if (setup(&f, 4, 1 << 20) < 0) {
        CHECK(0);
        return;
    }
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(3, 100, &seq), &stop), 0);
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(2, 100, &seq), &stop), -ECANCELED);
    CHECK_EQ_INT(kwb_pipeline_push(f.p, make(1, 100, &seq), &stop), 0);
    teardown(&f);
}

static size_t count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int c;

    if (!fp) {
        return 0;
    }
    while ((c = getc(fp)) != EOF) {
        n += c == '\n';
    }
    fclose(fp);
    return n;
}

/* Under backpressure every batch comes back to the pool: a worker that
 * takes its batches from kwb_pipeline_batch() allocates no more than what
 * can be in flight at once, and all events arrive. */
static void test_pool(void)
{
    struct fixture f;
    atomic_int stop = 0;
    size_t seq = 0, fresh = 0, per_batch = 0, fit;
    const size_t n_batches = 60, events_per_batch = 4;
    struct kwb_batch *b;

    if (setup(&f, 100000, 65536) < 0 || kwb_pipeline_start(f.p) < 0) {
        CHECK(0);
        teardown(&f);
        return;
    }
    for (size_t i = 0; i < n_batches; i++) {
        b = kwb_pipeline_batch(f.p, 0);
        CHECK(b != NULL);
        if (!b) {
            break;
        }
        CHECK_EQ_INT(b->n_items, 0);
        CHECK_EQ_INT(b->json_len, 0);
        /* No buffers until it needs room: an idle worker's holds none. */
        CHECK_EQ_INT(b->json_cap + b->str_cap + b->items_cap, 0);
        fill(b, events_per_batch, 4000, &seq);
        if (b->touched == 0) {
            fresh++; /* not a pooled batch's buffers: new allocations */
        }
        per_batch = kwb_batch_bytes(b);
        CHECK_EQ_INT(kwb_pipeline_push(f.p, b, &stop), 0);
    }
    fit = 65536 / per_batch;
    CHECK(fit >= 2 && fit < 10);
    /* At most `fit` batches in flight when the pool is empty, plus the one
     * being filled. */
    CHECK(fresh <= fit + 1);
    CHECK(fresh >= 1);
    CHECK_EQ_INT(kwb_pipeline_stop(f.p, kwb_now_ms() + 10000), 0);
    CHECK_EQ_INT(count_lines(f.events_path), n_batches * events_per_batch);
    CHECK_EQ_INT(atomic_load(&f.m->queue_events), 0);
    CHECK_EQ_INT(atomic_load(&f.m->sinks[0].acked),
                 n_batches * events_per_batch);

    /* Done: the pool holds at most queue_bytes of batches plus one (the
     * one watch's). */
    size_t recycled = 0, touched = 0;
    struct kwb_batch *held[32];
    size_t n_held = 0;
    while (n_held < 32) {
        b = kwb_pipeline_batch(f.p, 0);
        if (!b) {
            break;
        }
        held[n_held++] = b;
        CHECK(kwb_batch_json_reserve(b, 1) != NULL);
        if (b->touched == 0) {
            break;
        }
        recycled++;
        touched += b->touched;
    }
    CHECK(recycled >= 1);
    CHECK(recycled <= fit + 1);
    CHECK(touched <= 65536 + per_batch);
    for (size_t i = 0; i < n_held; i++) {
        kwb_batch_free(held[i]);
    }
    teardown(&f);
}

/* Pooled batches unused for KWB_POOL_IDLE_MS are freed: none before,
 * all after (the pipeline thread does this every 100 ms with the real
 * clock; here the clock is the argument). */
static void test_pool_trim(void)
{
    struct fixture f;
    atomic_int stop = 0;
    size_t seq = 0;
    int64_t t0, t1;
    struct kwb_batch *b;

    if (setup(&f, 100000, 65536) < 0 || kwb_pipeline_start(f.p) < 0) {
        CHECK(0);
        teardown(&f);
        return;
    }
    t0 = kwb_now_ms();
    for (size_t i = 0; i < 20; i++) {
        b = kwb_pipeline_batch(f.p, 0);
        CHECK(b != NULL);
        if (!b) {
            break;
        }
        fill(b, 4, 4000, &seq);
        CHECK_EQ_INT(kwb_pipeline_push(f.p, b, &stop), 0);
    }
    CHECK_EQ_INT(kwb_pipeline_stop(f.p, kwb_now_ms() + 10000), 0);
    t1 = kwb_now_ms();
    /* Every batch went into the pool at or after t0: none has waited. */
    CHECK_EQ_INT(kwb_pipeline_pool_trim(f.p, t0 + KWB_POOL_IDLE_MS - 1), 0);
    b = kwb_pipeline_batch(f.p, 0);
    CHECK(b && kwb_batch_json_reserve(b, 1) && b->touched > 0);
    kwb_batch_free(b);
    /* At t1 + KWB_POOL_IDLE_MS every one has: the pool is emptied. */
    CHECK(kwb_pipeline_pool_trim(f.p, t1 + KWB_POOL_IDLE_MS) >= 1);
    CHECK_EQ_INT(kwb_pipeline_pool_trim(f.p, t1 + KWB_POOL_IDLE_MS), 0);
    b = kwb_pipeline_batch(f.p, 0);
    CHECK(b && kwb_batch_json_reserve(b, 1) && b->touched == 0);
    kwb_batch_free(b);
    teardown(&f);
}

int main(void)
{
    char path[128];

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kwb-test-pipeline-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_bounds();
    test_pool();
    test_pool_trim();
    snprintf(path, sizeof(path), "%s/events.jsonl", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/state", tmpdir);
    rmdir(path);
    rmdir(tmpdir);
    return check_report();
}
