/*
 * test_metrics.c - Prometheus rendering, label escaping, ready/healthy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

/* The page contains `line` as a whole line. */
static int has_line(const char *page, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = page; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (len == n && memcmp(p, line, n) == 0) {
            return 1;
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

#define CHECK_LINE(page, line)                                                 \
    check_result(has_line((page), (line)), __FILE__, __LINE__, (line))

/* Number of lines starting with `prefix`. */
static int count_prefix(const char *page, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;

    for (const char *p = page; p && *p;) {
        const char *eol = strchr(p, '\n');

        if (strncmp(p, prefix, n) == 0) {
            count++;
        }
        p = eol ? eol + 1 : NULL;
    }
    return count;
}

static void test_render(void)
{
    const char *watches[] = {"v1/pods", "apps/v1/deployments@prod"};
    const char *sinks[] = {"file", "audit"};
    struct kwb_metrics *m = kwb_metrics_new(watches, 2, sinks, 2);
    struct kwb_watch_stats *w0, *w1;
    char *page;

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    w0 = &m->watches[0];
    w1 = &m->watches[1];
    atomic_store(&w0->received[KWB_EV_ADDED], 7);
    atomic_store(&w0->received[KWB_EV_TYPES], 2); /* ERROR */
    atomic_store(&w0->emitted[KWB_EV_MODIFIED][KWB_ORIGIN_LIST], 3);
    atomic_store(&w1->emitted[KWB_EV_DELETED][KWB_ORIGIN_WATCH], 4);
    atomic_store(&w0->duplicate, 5);
    atomic_store(&w0->reconnects[KWB_RECONNECT_STALL], 6);
    atomic_store(&w1->reconnects[KWB_RECONNECT_EXPIRED], 1);
    atomic_store(&w1->relists, 2);
    atomic_store(&w1->expired, 3);
    atomic_store(&w0->errors, 9);
    atomic_store(&w0->checkpoint_lag, 11);
    atomic_store(&w0->last_event_ms, 100000);
    atomic_store(&w1->last_event_ms, 101000);
    atomic_store(&w0->synced, 1);
    atomic_store(&w1->objects, 42);
    atomic_store(&m->sinks[0].acked, 1000);
    atomic_store(&m->sinks[1].retries, 12);
    atomic_store(&m->sinks[1].dead_letter, 2);
    atomic_store(&m->sinks[0].ready, 1);
    atomic_store(&m->queue_events, 17);
    atomic_store(&m->leader, 1);

    page = kwb_metrics_render(m, 102500);
    CHECK(page != NULL);
    if (!page) {
        kwb_metrics_free(m);
        return;
    }

    CHECK_LINE(page, "# TYPE kwb_events_received_total counter");
    CHECK_LINE(page,
               "kwb_events_received_total{watch=\"v1/pods\",type=\"ADDED\"} 7");
    CHECK_LINE(page,
               "kwb_events_received_total{watch=\"v1/pods\",type=\"ERROR\"} 2");
    CHECK_LINE(page, "kwb_events_received_total{watch=\"v1/pods\","
                     "type=\"MODIFIED\"} 0");
    CHECK_EQ_INT(count_prefix(page, "kwb_events_received_total{"), 8);
    CHECK_EQ_INT(count_prefix(page, "kwb_events_received_total{watch="
                                    "\"v1/pods\",type=\"BOOKMARK\""),
                 0);

    CHECK_LINE(page, "# TYPE kwb_events_emitted_total counter");
    CHECK_LINE(page, "kwb_events_emitted_total{watch=\"v1/pods\","
                     "type=\"MODIFIED\",origin=\"list\"} 3");
    CHECK_LINE(page, "kwb_events_emitted_total{watch=\"apps/v1/"
                     "deployments@prod\",type=\"DELETED\",origin=\"watch\"} 4");
    CHECK_EQ_INT(count_prefix(page, "kwb_events_emitted_total{"), 12);

    CHECK_LINE(page, "# TYPE kwb_events_duplicate_total counter");
    CHECK_LINE(page, "kwb_events_duplicate_total{watch=\"v1/pods\"} 5");
    CHECK_LINE(page, "# TYPE kwb_watch_reconnects_total counter");
    CHECK_LINE(page, "kwb_watch_reconnects_total{watch=\"v1/pods\","
                     "reason=\"stall\"} 6");
    CHECK_LINE(page, "kwb_watch_reconnects_total{watch=\"apps/v1/"
                     "deployments@prod\",reason=\"expired\"} 1");
    CHECK_LINE(page, "kwb_watch_reconnects_total{watch=\"v1/pods\","
                     "reason=\"timeout\"} 0");
    CHECK_LINE(page, "kwb_watch_reconnects_total{watch=\"v1/pods\","
                     "reason=\"error\"} 0");
    CHECK_LINE(page, "kwb_watch_relists_total{watch=\"apps/v1/"
                     "deployments@prod\"} 2");
    CHECK_LINE(page, "kwb_watch_expired_total{watch=\"apps/v1/"
                     "deployments@prod\"} 3");
    CHECK_LINE(page, "kwb_watch_errors_total{watch=\"v1/pods\"} 9");
    CHECK_LINE(page, "# TYPE kwb_checkpoint_lag_events gauge");
    CHECK_LINE(page, "kwb_checkpoint_lag_events{watch=\"v1/pods\"} 11");
    CHECK_LINE(page, "# TYPE kwb_watch_last_event_age_seconds gauge");
    CHECK_LINE(page,
               "kwb_watch_last_event_age_seconds{watch=\"v1/pods\"} 2.500");
    CHECK_LINE(page, "kwb_watch_last_event_age_seconds{watch=\"apps/v1/"
                     "deployments@prod\"} 1.500");
    CHECK_LINE(page, "kwb_watch_synced{watch=\"v1/pods\"} 1");
    CHECK_LINE(page, "kwb_watch_synced{watch=\"apps/v1/deployments@prod\"} 0");
    CHECK_LINE(page, "kwb_store_objects{watch=\"apps/v1/"
                     "deployments@prod\"} 42");

    CHECK_LINE(page, "# TYPE kwb_sink_acked_total counter");
    CHECK_LINE(page, "kwb_sink_acked_total{sink=\"file\"} 1000");
    CHECK_LINE(page, "kwb_sink_acked_total{sink=\"audit\"} 0");
    CHECK_LINE(page, "kwb_sink_retries_total{sink=\"audit\"} 12");
    CHECK_LINE(page, "kwb_sink_dead_letter_total{sink=\"audit\"} 2");
    CHECK_LINE(page, "kwb_sink_ready{sink=\"file\"} 1");
    CHECK_LINE(page, "kwb_sink_ready{sink=\"audit\"} 0");
    CHECK_LINE(page, "# TYPE kwb_pipeline_queue_events gauge");
    CHECK_LINE(page, "kwb_pipeline_queue_events 17");
    CHECK_LINE(page, "# TYPE kwb_leader gauge");
    CHECK_LINE(page, "kwb_leader 1");

    /* Every metric has exactly one HELP and one TYPE line. */
    CHECK_EQ_INT(count_prefix(page, "# HELP "), 17);
    CHECK_EQ_INT(count_prefix(page, "# TYPE "), 17);
    CHECK_EQ_INT(count_prefix(page, "# HELP kwb_leader "), 1);
    CHECK(page[strlen(page) - 1] == '\n');

    /* Clock before the last event (never negative). */
    free(page);
    page = kwb_metrics_render(m, 50000);
    CHECK(page != NULL);
    if (page) {
        CHECK_LINE(page,
                   "kwb_watch_last_event_age_seconds{watch=\"v1/pods\"} 0.000");
    }
    free(page);
    kwb_metrics_free(m);
}

static void test_escaping(void)
{
    const char *watches[] = {"ex\\am\"ple\nx"};
    const char *sinks[] = {"a\"b"};
    struct kwb_metrics *m = kwb_metrics_new(watches, 1, sinks, 1);
    char *page;

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    page = kwb_metrics_render(m, kwb_now_ms());
    CHECK(page != NULL);
    if (page) {
        CHECK_LINE(page, "kwb_events_duplicate_total{watch="
                         "\"ex\\\\am\\\"ple\\nx\"} 0");
        CHECK_LINE(page, "kwb_sink_acked_total{sink=\"a\\\"b\"} 0");
    }
    free(page);
    kwb_metrics_free(m);
}

static void test_no_watches(void)
{
    struct kwb_metrics *m = kwb_metrics_new(NULL, 0, NULL, 0);
    char *page;

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    page = kwb_metrics_render(m, kwb_now_ms());
    CHECK(page != NULL);
    if (page) {
        /* A series without labels yet shows its TYPE line alone. */
        CHECK_LINE(page, "# TYPE kwb_events_received_total counter");
        CHECK_EQ_INT(count_prefix(page, "kwb_events_received_total"), 0);
        CHECK_LINE(page, "kwb_leader 0");
    }
    free(page);
    kwb_metrics_free(m);
    kwb_metrics_free(NULL);
}

static void test_ready(void)
{
    const char *watches[] = {"v1/pods", "v1/configmaps"};
    const char *sinks[] = {"file"};
    struct kwb_metrics *m = kwb_metrics_new(watches, 2, sinks, 1);

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    CHECK_EQ_INT(kwb_metrics_ready(m), 0);
    atomic_store(&m->watches[0].synced, 1);
    atomic_store(&m->watches[1].synced, 1);
    CHECK_EQ_INT(kwb_metrics_ready(m), 0); /* sink not ready */
    atomic_store(&m->sinks[0].ready, 1);
    CHECK_EQ_INT(kwb_metrics_ready(m), 1);
    atomic_store(&m->watches[1].synced, 0);
    CHECK_EQ_INT(kwb_metrics_ready(m), 0);
    kwb_metrics_free(m);
}

static void test_healthy(void)
{
    int64_t start = kwb_now_ms();
    struct kwb_metrics *m = kwb_metrics_new(NULL, 0, NULL, 0);

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    /* Alive from allocation on. */
    CHECK(atomic_load(&m->heartbeat_ms) >= start);
    CHECK_EQ_INT(kwb_metrics_healthy(m, atomic_load(&m->heartbeat_ms)), 1);
    atomic_store(&m->heartbeat_ms, 1000);
    CHECK_EQ_INT(kwb_metrics_healthy(m, 1000 + KWB_METRICS_HEARTBEAT_MAX_MS),
                 1);
    CHECK_EQ_INT(
        kwb_metrics_healthy(m, 1000 + KWB_METRICS_HEARTBEAT_MAX_MS + 1), 0);
    kwb_metrics_free(m);
}

static void test_start_age(void)
{
    const char *watches[] = {"v1/pods"};
    struct kwb_metrics *m = kwb_metrics_new(watches, 1, NULL, 0);
    int64_t last;
    char *page;

    CHECK(m != NULL);
    if (!m) {
        return;
    }
    /* Before the worker runs, the age counts from allocation. */
    last = atomic_load(&m->watches[0].last_event_ms);
    CHECK(last > 0);
    page = kwb_metrics_render(m, last + 61234);
    CHECK(page != NULL);
    if (page) {
        CHECK_LINE(
            page, "kwb_watch_last_event_age_seconds{watch=\"v1/pods\"} 61.234");
    }
    free(page);
    kwb_metrics_free(m);
}

int main(void)
{
    test_render();
    test_escaping();
    test_no_watches();
    test_ready();
    test_healthy();
    test_start_age();
    return check_report();
}
