#!/usr/bin/env python3
"""The real agent's metrics endpoint (SPEC "Metrics and probes"): /readyz
turns 200 after the initial sync, /healthz answers, /metrics carries every
series the SPEC names with the right TYPE, and the counters match what the
API server sent and the file sink got; reconnects are counted by reason,
one per watch request after the first."""
import collections
import re
import urllib.error
import urllib.request

from kwb import TestCase, main, metric, pod, wait_for

WATCH = "v1/pods"
SINK = "file"

SERIES = {
    "kwb_events_received_total": "counter",
    "kwb_events_emitted_total": "counter",
    "kwb_events_duplicate_total": "counter",
    "kwb_watch_reconnects_total": "counter",
    "kwb_watch_relists_total": "counter",
    "kwb_watch_expired_total": "counter",
    "kwb_watch_errors_total": "counter",
    "kwb_sink_acked_total": "counter",
    "kwb_sink_retries_total": "counter",
    "kwb_sink_dead_letter_total": "counter",
    "kwb_pipeline_queue_events": "gauge",
    "kwb_checkpoint_lag_events": "gauge",
    "kwb_watch_last_event_age_seconds": "gauge",
    "kwb_watch_synced": "gauge",
    "kwb_store_objects": "gauge",
    "kwb_sink_ready": "gauge",
    "kwb_leader": "gauge",
}


def fetch(agent, path, method="GET"):
    """(status, content type, body) of one request to the agent."""
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (agent.metrics_port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


class MetricsEndpoint(TestCase):

    def ready_agent(self, **kw):
        agent = self.agent(metrics=True, **kw).start()

        def up():
            try:
                return agent.http_status("/readyz") == 200
            except OSError:
                return False   # not listening yet
        wait_for(up, 20, what="/readyz 200")
        return agent

    def watch_requests(self):
        return [r for r in self.api.request_log()
                if r["path"] == "/api/v1/pods" and
                re.search(r"(^|&)watch=(1|true)", r.get("query", ""))]

    def test_series_counts_and_probes(self):
        self.api.create("pods", pod("listed-a"))
        self.api.create("pods", pod("listed-b"))
        agent = self.ready_agent()
        self.assertEqual(agent.http_status("/healthz"), 200)

        status, ctype, body = fetch(agent, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        for name, typ in SERIES.items():
            self.assertIn("\n# TYPE %s %s\n" % (name, typ), "\n" + body,
                          name)
            self.assertIn("# HELP %s " % name, body, name)
        ms = agent.metrics()
        self.assertEqual(metric(ms, "kwb_watch_synced", watch=WATCH), 1)
        self.assertEqual(metric(ms, "kwb_sink_ready", sink=SINK), 1)
        self.assertEqual(metric(ms, "kwb_leader"), 1)

        # Changes over the watch.
        self.api.create("pods", pod("watched-c"))
        self.api.patch("pods", "listed-a",
                       {"metadata": {"labels": {"rev": "2"}}})
        self.api.delete("pods", "listed-b")
        events = agent.wait_events(5)
        self.assertNoDuplicates(events)

        wait_for(lambda: metric(agent.metrics(), "kwb_sink_acked_total",
                                sink=SINK) == len(events),
                 what="acked == events in the file")
        wait_for(lambda: metric(agent.metrics(), "kwb_checkpoint_lag_events",
                                watch=WATCH) == 0,
                 what="checkpoint lag 0")
        ms = agent.metrics()
        by = collections.Counter((e["type"], e["origin"]) for e in events)
        self.assertEqual(by[("ADDED", "list")], 2)
        for t in ("ADDED", "MODIFIED", "DELETED"):
            for o in ("watch", "list"):
                self.assertEqual(
                    metric(ms, "kwb_events_emitted_total", watch=WATCH,
                           type=t, origin=o), by[(t, o)], (t, o))
            # Listed items are not stream events; bookmarks are not counted.
            self.assertEqual(metric(ms, "kwb_events_received_total",
                                    watch=WATCH, type=t), by[(t, "watch")], t)
        self.assertEqual(metric(ms, "kwb_events_received_total", watch=WATCH,
                                type="ERROR"), 0)
        self.assertEqual(metric(ms, "kwb_events_duplicate_total",
                                watch=WATCH), 0)
        self.assertEqual(metric(ms, "kwb_store_objects", watch=WATCH), 2)
        self.assertEqual(metric(ms, "kwb_pipeline_queue_events"), 0)
        for name in ("kwb_watch_relists_total", "kwb_watch_expired_total",
                     "kwb_watch_errors_total"):
            self.assertEqual(metric(ms, name, watch=WATCH), 0, name)
        for reason in ("timeout", "error", "expired", "stall"):
            self.assertEqual(metric(ms, "kwb_watch_reconnects_total",
                                    watch=WATCH, reason=reason), 0, reason)
        for name in ("kwb_sink_retries_total", "kwb_sink_dead_letter_total"):
            self.assertEqual(metric(ms, name, sink=SINK), 0, name)
        age = metric(ms, "kwb_watch_last_event_age_seconds", watch=WATCH)
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 60)

        # The other answers of the endpoint.
        self.assertEqual(agent.http_status("/nope"), 404)
        self.assertEqual(fetch(agent, "/metrics", method="POST")[0], 405)
        self.assertEqual(fetch(agent, "/readyz", method="HEAD")[0], 200)
        self.assertEqual(agent.stop(), 0)

    def test_reconnects_by_reason(self):
        agent = self.ready_agent(
            watch_defaults={"stall_timeout_seconds": 1})

        def reconnects(reason):
            return metric(agent.metrics(), "kwb_watch_reconnects_total",
                          watch=WATCH, reason=reason)

        wait_for(lambda: len(self.watch_requests()) == 1,
                 what="the first watch")
        # A clean close by the server: timeout.
        self.api.drop_watches(mode="clean")
        wait_for(lambda: reconnects("timeout") == 1, what="timeout 1")
        wait_for(lambda: len(self.watch_requests()) == 2,
                 what="second watch")

        # A connection cut mid-stream: error.
        self.api.drop_watches(mode="between", rst=True)
        wait_for(lambda: reconnects("error") == 1, what="error 1")
        self.assertGreaterEqual(metric(agent.metrics(),
                                       "kwb_watch_errors_total",
                                       watch=WATCH), 1)

        # 410 Gone on the re-watch: expired, then a relist.
        wait_for(lambda: len(self.watch_requests()) == 3, what="third watch")
        self.api.fail_next(count=1, code=410, watch=True, reason="Expired",
                           message="too old resource version")
        self.api.drop_watches(mode="clean")
        wait_for(lambda: reconnects("expired") == 1, what="expired 1")
        # The relist (a streamed list) completes just after the reconnect.
        wait_for(lambda: metric(agent.metrics(), "kwb_watch_relists_total",
                                watch=WATCH) == 1, what="relist")
        ms = agent.metrics()
        self.assertEqual(metric(ms, "kwb_watch_expired_total", watch=WATCH), 1)
        self.assertEqual(metric(ms, "kwb_watch_relists_total", watch=WATCH), 1)
        self.assertEqual(metric(ms, "kwb_watch_reconnects_total",
                                watch=WATCH, reason="timeout"), 2)

        # No byte for longer than stall_timeout_seconds: stall.
        self.api.stall_watches(seconds=2)
        wait_for(lambda: reconnects("stall") >= 1, 10, what="stall")
        self.api.unstall_watches()

        # Every watch request after the first is exactly one reconnect.
        def consistent():
            ms = agent.metrics()
            total = sum(metric(ms, "kwb_watch_reconnects_total", watch=WATCH,
                               reason=r)
                        for r in ("timeout", "error", "expired", "stall"))
            return total == len(self.watch_requests()) - 1 or None
        wait_for(consistent, what="reconnects == watch requests - 1")
        self.assertEqual(agent.http_status("/readyz"), 200)
        self.assertEqual(agent.stop(), 0)
        self.assertNoDuplicates(agent.events())


if __name__ == "__main__":
    main()
