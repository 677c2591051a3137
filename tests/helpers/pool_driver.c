/*
 * pool_driver.c - the pipeline's batch pool over real time, for
 * tests/integration/test_batch_pool.py (it sleeps, so it is not a unit
 * test).
 *
 *   pool_driver DIR
 *
 * A pipeline with a file sink into DIR gets a burst of large batches (as
 * a list hands over, 256 KB each, all in flight at once), then a trickle
 * of small ones (one 4 KB event every 100 ms for 3 s, as a watch hands
 * over in a quiet cluster). Then the pipeline stops and the batches left
 * in the pool are taken back out: every one must be small (the trickle
 * needs no more), and there must be at most two. Prints one line
 *   POOL recycled=N largest=BYTES burst=BYTES small=BYTES
 * and exits 0 when that holds, 1 when not, 2 on errors.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

/* Append n events of `size` JSON bytes to b. */
static int fill(struct kwb_batch *b, size_t n, size_t size, size_t *seq)
{
    for (size_t i = 0; i < n; i++) {
        char uid[32];
        char *w = kwb_batch_json_reserve(b, size + 1);
        struct kwb_item *it;
        int hl;

        if (!w) {
            return -1;
        }
        hl = snprintf(w, size, "{\"seq\":%zu,\"pad\":\"", (*seq)++);
        memset(w + hl, 'x', size - (size_t)hl - 2);
        memcpy(w + size - 2, "\"}\n", 3);
        it = kwb_batch_item(b);
        if (!it) {
            return -1;
        }
        it->item_kind = KWB_ITEM_EVENT;
        it->json_off = (uint32_t)b->json_len;
        it->json_len = (uint32_t)size;
        b->json_len += size + 1;
        snprintf(uid, sizeof(uid), "uid-%zu", *seq);
        it->uid = kwb_batch_str(b, uid, strlen(uid));
        it->rv = kwb_batch_str(b, "1", 1);
        b->n_events++;
    }
    return 0;
}

static int push(struct kwb_pipeline *p, size_t n, size_t size, size_t *seq,
                size_t *bytes)
{
    static atomic_int stop = 0;
    struct kwb_batch *b = kwb_pipeline_batch(p, 0);

    if (!b || fill(b, n, size, seq) < 0) {
        kwb_batch_free(b);
        return -1;
    }
    *bytes = kwb_batch_bytes(b);
    return kwb_pipeline_push(p, b, &stop);
}

int main(int argc, char **argv)
{
    char text[2048], err[512];
    const char *watch_ids[] = {"w0"};
    const char *sink_names[] = {"file"};
    struct kwb_pipeline_watch_init winit = {.committed = kwb_store_new()};
    struct kwb_config cfg;
    struct kwb_metrics *m;
    struct kwb_pipeline *p;
    size_t seq = 0, burst = 0, small = 0, recycled = 0, largest = 0;
    struct timespec tick = {0, 100 * 1000000L};
    int n;

    if (argc != 2) {
        fprintf(stderr, "usage: pool_driver DIR\n");
        return 2;
    }
    n = snprintf(
        text, sizeof(text),
        "cluster = { name = \"c1\"; server = \"http://127.0.0.1:1\"; };\n"
        "state = { dir = \"%s/state\"; };\n"
        "watches = ( { api = \"v1\"; resource = \"pods\"; } );\n"
        "sinks = ( { type = \"file\"; name = \"file\";\n"
        "  path = \"%s/events.jsonl\"; fsync = false; } );\n",
        argv[1], argv[1]);
    if (n < 0 || (size_t)n >= sizeof(text) || !winit.committed ||
        kwb_config_load_string(&cfg, text, (size_t)n, "pool.conf", err,
                               sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", err);
        return 2;
    }
    m = kwb_metrics_new(watch_ids, 1, sink_names, 1);
    p = m ? kwb_pipeline_new(&cfg, m, &winit, err, sizeof(err)) : NULL;
    if (!p || kwb_pipeline_start(p) < 0) {
        fprintf(stderr, "pipeline: %s\n", p ? "cannot start" : err);
        return 2;
    }
    for (int i = 0; i < 16; i++) {
        if (push(p, 64, 4000, &seq, &burst) < 0) {
            fprintf(stderr, "burst: out of memory\n");
            return 2;
        }
    }
    for (int i = 0; i < 30; i++) {
        nanosleep(&tick, NULL);
        if (push(p, 1, 4000, &seq, &small) < 0) {
            fprintf(stderr, "trickle: out of memory\n");
            return 2;
        }
    }
    if (kwb_pipeline_stop(p, kwb_now_ms() + 10000) != 0) {
        fprintf(stderr, "stop: events not acknowledged\n");
        return 2;
    }
    /* What the pool kept: take until a batch comes without pooled
     * buffers. */
    for (;;) {
        struct kwb_batch *b = kwb_pipeline_batch(p, 0);
        if (!b || !kwb_batch_json_reserve(b, 1)) {
            fprintf(stderr, "pool: out of memory\n");
            return 2;
        }
        size_t t = b->touched;
        kwb_batch_free(b);
        if (t == 0) {
            break;
        }
        recycled++;
        largest = t > largest ? t : largest;
    }
    printf("POOL recycled=%zu largest=%zu burst=%zu small=%zu\n", recycled,
           largest, burst, small);
    kwb_pipeline_free(p);
    kwb_metrics_free(m);
    kwb_config_free(&cfg);
    return recycled <= 2 && largest < burst / 2 ? 0 : 1;
}
