"""Bad input from the API server (issue 11, SPEC promises 5 and 6): every
kind of malformed answer gets one clear log line and loses nothing. Each
test changes pods around the fault and then checks the file sink event by
event against the server: every change exactly once, in order, and the
last event per object matching the server's state.

The test API server's control calls make the faults: raw answers (HTML,
protobuf, empty, headers only) via fail_next(body=..., headers_only=...),
crafted lines via inject_garbage/inject_event, and a sticky line re-sent
after every reconnect via poison()."""

from kwb import TestCase, main, metric, pod, wait_for

HTML = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
        "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def watch_reqs(api):
    return [r for r in api.request_log()
            if r.get("watch") and r["path"] == "/api/v1/pods"]


def list_reqs(api):
    return [r for r in api.request_log()
            if not r.get("watch") and r["path"] == "/api/v1/pods" and
            "limit=" in r["query"]]


def status_event(code, reason, message="injected"):
    return {"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "code": code}}


class BadInput(TestCase):
    api_options = {"bookmark_interval": 0.3}

    # -- helpers

    def start(self, **kw):
        kw.setdefault("metrics", True)
        agent = self.agent(**kw).start()
        wait_for(lambda: watch_reqs(self.api), what="first watch")
        return agent

    def change(self, tag):
        """Create, modify and delete pods: 4 events."""
        self.api.create("pods", pod("%s-a" % tag))
        self.api.create("pods", pod("%s-b" % tag))
        self.api.patch("pods", "%s-a" % tag,
                       {"metadata": {"labels": {"rev": "2"}}})
        self.api.delete("pods", "%s-b" % tag)
        return 4

    def seed(self, tag):
        """Pods that exist before the agent starts: 2 listed ADDED."""
        self.api.create("pods", pod("%s-a" % tag))
        self.api.create("pods", pod("%s-b" % tag))
        return 2

    def wait_names(self, agent, names):
        want = set(names)

        def have():
            return want <= {e["name"] for e in agent.events()}
        try:
            wait_for(have, 30, what="events of %s" % sorted(want))
        except AssertionError:
            raise AssertionError("missing %s; agent log tail:\n%s" % (
                sorted(want - {e["name"] for e in agent.events()}),
                agent.log()[-3000:]))

    def finish(self, agent, n=None):
        """Stop the agent; check the sink event by event: every change
        on the server exactly once, in order, matching the server."""
        self.assertTrue(agent.alive(), "agent died:\n" + agent.log()[-2000:])
        if n is not None:
            agent.wait_events(n, timeout=30)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        if n is not None:
            self.assertEqual(len(events), n, [(e["type"], e["name"])
                                              for e in events])
        for e in events:
            self.assertEnvelope(e)
        self.assertNoDuplicates(events)
        self.assertPerObjectOrder(events)
        self.assertMatchesServer(events)
        self.assertLessEqual(self.api.watch_counts()["max"].get("pods", 0),
                             1, "never two parallel watches")
        return events

    def assertLog(self, agent, *needles):
        log = agent.log()
        for n in needles:
            self.assertIn(n, log, "log lacks %r; tail:\n%s" %
                          (n, log[-3000:]))

    # -- error bodies and content types

    def test_html_error_body_on_watch(self):
        n = self.seed("pre")
        agent = self.start()
        agent.wait_events(n)
        before = len(watch_reqs(self.api))
        self.api.fail_next(1, code=502, watch=True, body=HTML,
                           content_type="text/html")
        self.api.drop_watches("between")
        n += self.change("during")
        wait_for(lambda: len(watch_reqs(self.api)) >= before + 2,
                 what="the 502 and the next watch")
        self.wait_names(agent, ["during-a", "during-b"])
        self.finish(agent, n)
        # One line naming the status and what the body was.
        self.assertLog(agent, "HTTP 502", "non-Status body",
                       "502 Bad Gateway")

    def test_html_error_body_on_list(self):
        n = self.seed("pre")
        self.api.fail_next(2, code=503, verb="list", body=HTML,
                           content_type="text/html")
        agent = self.start(watch_defaults={"watch_list": "off"})
        agent.wait_events(n)
        self.assertGreaterEqual(len(list_reqs(self.api)), 3)
        n += self.change("post")
        agent.wait_events(n)
        self.finish(agent, n)
        self.assertLog(agent, "list: HTTP 503", "non-Status body")

    def test_wrong_content_type_on_watch(self):
        """200 with an HTML page (a captive portal) or a protobuf body
        instead of a JSON watch stream."""
        agent = self.start()
        n = 0
        for i, (body, ctype) in enumerate((
                (HTML, "text/html"),
                (b"k8s\x00\n\x0b\n\x02v1\x12\x05Event\x12\x04\x08\x01\xff",
                 "application/vnd.kubernetes.protobuf;stream=watch"))):
            before = len(watch_reqs(self.api))
            self.api.fail_next(1, code=200, watch=True, body=body,
                               content_type=ctype)
            self.api.drop_watches("between")
            wait_for(lambda: len(watch_reqs(self.api)) >= before + 2,
                     what="the bad 200 and the next watch")
            n += self.change("round%d" % i)
            self.wait_names(agent, ["round%d-a" % i, "round%d-b" % i])
        self.finish(agent, n)
        # Refused before parsing, naming what came instead of JSON.
        self.assertLog(agent, "watch: GET /api/v1/pods?watch=1: unexpected "
                       "Content-Type text/html (want application/json)",
                       "unexpected Content-Type application/vnd.kubernetes."
                       "protobuf;stream=watch")
        self.assertNotIn("invalid watch event", agent.log())

    def test_wrong_content_type_until_cleared(self):
        """A proxy answers every watch with 200 text/html for a while:
        each attempt is one log line naming the Content-Type and the path
        (never the query), retried with backoff; once the proxy is gone
        the watch resumes from the last event and every change made
        meanwhile arrives exactly once, in the server's order."""
        agent = self.start(watch_defaults={
            "backoff": {"initial_seconds": 0.2, "max_seconds": 1.0}})

        def changes(tag):
            a, b = "%s-a" % tag, "%s-b" % tag
            return [("ADDED", a), ("ADDED", b), ("MODIFIED", a),
                    ("DELETED", b)]
        expected = changes("pre")
        n = self.change("pre")
        agent.wait_events(n)
        before = len(watch_reqs(self.api))
        self.api.fail_next(1000, code=200, watch=True, path="/api/v1/pods",
                           body=HTML, content_type="text/html")
        self.api.drop_watches("between")
        for i in range(3):
            n += self.change("during%d" % i)
            expected += changes("during%d" % i)
        want = ("watch: GET /api/v1/pods?watch=1: unexpected Content-Type "
                "text/html (want application/json)")
        wait_for(lambda: agent.log().count(want) >= 4, 30,
                 what="four refused watches")
        refused = len(watch_reqs(self.api)) - before
        self.assertEqual(len(agent.events()), 4, "nothing during the fault")
        self.api.clear_faults()
        n += self.change("post")
        expected += changes("post")
        events = self.finish(agent, n)
        self.assertEqual([(e["type"], e["name"]) for e in events], expected)
        rvs = [int(e["resourceVersion"]) for e in events]
        self.assertEqual(rvs, sorted(set(rvs)), "in the server's order")
        self.assertEqual({e["origin"] for e in events}, {"watch"},
                         "resumed by watch, no relist")
        # Backoff between attempts (0.2 s doubling to 1 s), not a loop.
        self.assertLessEqual(refused, 12)
        lines = [ln for ln in agent.log().splitlines() if want in ln]
        for ln in lines:
            for q in ("resourceVersion=", "timeoutSeconds", "allowWatch"):
                self.assertNotIn(q, ln, "query in the log line: " + ln)

    def test_wrong_content_type_on_list(self):
        n = self.seed("pre")
        self.api.fail_next(1, code=200, verb="list",
                           body=b"k8s\x00\n\x0c\n\x02v1\x12\x07PodList",
                           content_type="application/vnd.kubernetes."
                                        "protobuf")
        agent = self.start(watch_defaults={"watch_list": "off"})
        agent.wait_events(n)
        n += self.change("post")
        agent.wait_events(n)
        self.finish(agent, n)
        self.assertLog(agent, "list: GET /api/v1/pods: unexpected Content-Type "
                       "application/vnd.kubernetes.protobuf (want "
                       "application/json)")

    def test_empty_200_list_body(self):
        n = self.seed("pre")
        self.api.fail_next(1, code=200, verb="list", body=b"",
                           content_type="application/json")
        agent = self.start(watch_defaults={"watch_list": "off"})
        agent.wait_events(n)
        self.assertGreaterEqual(len(list_reqs(self.api)), 2)
        n += self.change("post")
        agent.wait_events(n)
        self.finish(agent, n)
        self.assertLog(agent, "invalid list response")

    # -- stream lines

    def oversize(self, watch_list):
        """A pod whose JSON line exceeds max_event_bytes: skipped with an
        error, a relist delivers its state; other objects still flow."""
        n = self.seed("pre")
        agent = self.start(watch_defaults={"max_event_bytes": 20000,
                                           "watch_list": watch_list})
        agent.wait_events(n)
        big = pod("big")
        big["metadata"]["annotations"] = {"blob": "x" * 30000}
        self.api.create("pods", big)
        n += 1
        # A relist collapses what happened before it: changes after it
        # arrive one by one.
        self.wait_names(agent, ["big"])
        n += self.change("after")
        self.wait_names(agent, ["after-a", "after-b"])
        ms = agent.metrics()
        events = self.finish(agent, n)
        self.assertLog(agent, "larger than max_event_bytes")
        if watch_list == "on":
            self.assertLog(agent, "by paginated LIST from now on")
        self.assertGreaterEqual(metric(ms, "kwb_watch_relists_total",
                                       watch="v1/pods"), 1)
        bigs = [e for e in events if e["name"] == "big"]
        self.assertEqual(len(bigs), 1)
        self.assertEqual(bigs[0]["origin"], "list")
        self.assertEqual(len(bigs[0]["object"]["metadata"]["annotations"]
                             ["blob"]), 30000)

    def test_line_over_max_event_bytes_list(self):
        self.oversize("off")

    def test_line_over_max_event_bytes_watch_list(self):
        self.oversize("on")

    def test_huge_line_is_never_buffered(self):
        """A 32 MiB line (no newline until its end) against
        max_event_bytes = 20000: the agent stops at the limit and relists;
        its peak memory grows by far less than the line."""
        agent = self.start(watch_defaults={"max_event_bytes": 20000})
        n = self.change("pre")
        agent.wait_events(n)

        def peak_kib():
            with open("/proc/%d/status" % agent.proc.pid) as f:
                for ln in f:
                    if ln.startswith("VmHWM:"):
                        return int(ln.split()[1])
            raise AssertionError("no VmHWM")
        before = peak_kib()
        huge = ('{"type":"ADDED","object":{"metadata":{"annotations":'
                '{"a":"%s"}}}}' % ("x" * (32 << 20)))
        self.api.inject_garbage(huge)
        wait_for(lambda: "larger than max_event_bytes" in agent.log(), 60,
                 what="the oversize error")
        wait_for(lambda: metric(agent.metrics(), "kwb_watch_relists_total",
                                watch="v1/pods") >= 1, what="the relist")
        n += self.change("post")
        agent.wait_events(n)
        grown = peak_kib() - before
        self.assertLess(grown, 8 << 10, "peak RSS grew by %d KiB" % grown)
        self.finish(agent, n)

    def test_invalid_utf8_line(self):
        """An event whose strings are not UTF-8 is refused with a clear
        error (like any unparsable line: the watch resumes from the last
        good RV); the sink never sees invalid UTF-8."""
        agent = self.start()
        n = self.change("pre")
        agent.wait_events(n)
        rv = self.api.resource_version()
        bad = ('{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1",'
               '"metadata":{"name":"utf8","namespace":"default",'
               '"uid":"0badbad0-0000-4000-8000-000000000001",'
               '"resourceVersion":"%d","labels":{"x":"LABEL"}},'
               '"spec":{}}}' % rv).encode()
        bad = bad.replace(b"LABEL", b"\xff\xfe\xc3(")
        before = len(watch_reqs(self.api))
        self.api.inject_garbage(bad)
        n += self.change("post")
        self.wait_names(agent, ["post-a", "post-b"])
        self.assertTrue(agent.alive())
        self.assertEqual(agent.stop(), 0)
        raw = open(agent.events_path, "rb").read()
        raw.decode("utf-8")     # the sink is valid UTF-8 throughout
        events = [e for e in agent.events() if e["name"] != "utf8"]
        self.assertEqual(len(events), n)
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)
        # refused as a whole, with the reason, and the watch resumed
        self.assertNotIn(b"0badbad0", raw)
        self.assertLog(agent, "invalid UTF-8")
        self.assertGreater(len(watch_reqs(self.api)), before)

    def test_missing_metadata_fields(self):
        """An event without uid or resourceVersion cannot be placed: the
        agent says so and relists; nothing is lost or repeated."""
        agent = self.start()
        n = self.change("pre")
        agent.wait_events(n)
        for i, drop in enumerate(("uid", "resourceVersion")):
            obj = pod("nometa-%d" % i)
            obj["metadata"]["uid"] = "11111111-2222-4333-8444-55555555555%d" % i
            obj["metadata"]["resourceVersion"] = str(
                self.api.resource_version())
            del obj["metadata"][drop]
            self.api.inject_event({"type": "MODIFIED", "object": obj})
            # The relist it triggers collapses what happens meanwhile
            # (by design): change after it, one by one.
            wait_for(lambda: metric(agent.metrics(), "kwb_watch_relists_total",
                                    watch="v1/pods") >= i + 1,
                     what="relist %d" % (i + 1))
            n += self.change("m%d" % i)
            self.wait_names(agent, ["m%d-a" % i, "m%d-b" % i])
        ms = agent.metrics()
        events = self.finish(agent, n)
        self.assertFalse([e for e in events if e["name"].startswith("nometa")])
        self.assertLog(agent, "without metadata.uid/resourceVersion")
        self.assertGreaterEqual(metric(ms, "kwb_watch_relists_total",
                                       watch="v1/pods"), 2)

    def test_unknown_event_type(self):
        agent = self.start()
        n = self.change("pre")
        agent.wait_events(n)
        obj = pod("weird")
        obj["metadata"].update({"uid": "0d0d0d0d-0000-4000-8000-00000000000d",
                                "resourceVersion": str(
                                    self.api.resource_version())})
        before = len(watch_reqs(self.api))
        self.api.inject_event({"type": "EXPLODED", "object": obj})
        n += self.change("post")
        self.wait_names(agent, ["post-a", "post-b"])
        events = self.finish(agent, n)
        self.assertFalse([e for e in events if e["name"] == "weird"])
        self.assertLog(agent, "unknown watch event type 'EXPLODED'")
        # ignored in place: the stream went on
        self.assertEqual(len(watch_reqs(self.api)), before)

    def test_status_error_event_of_every_code(self):
        # The agent closes each stream itself; the server notices a closed
        # watch within 0.2 s: back off longer, so its count of parallel
        # watches stays exact.
        agent = self.start(watch_defaults={
            "backoff": {"initial_seconds": 0.5, "max_seconds": 1.0}})
        n = 0
        codes = ((400, "BadRequest"), (401, "Unauthorized"),
                 (403, "Forbidden"), (404, "NotFound"), (409, "Conflict"),
                 (410, "Expired"), (422, "Invalid"),
                 (429, "TooManyRequests"), (500, "InternalError"),
                 (503, "ServiceUnavailable"), (504, "Timeout"))
        for code, reason in codes:
            before = len(watch_reqs(self.api))
            self.api.inject_event(status_event(
                code, reason, "injected status %d" % code))
            wait_for(lambda: len(watch_reqs(self.api)) > before,
                     what="reconnect after ERROR %d" % code)
            n += self.change("c%d" % code)
            self.wait_names(agent, ["c%d-a" % code, "c%d-b" % code])
        ms = agent.metrics()
        self.finish(agent, n)
        for code, reason in codes:
            if code == 410:
                self.assertLog(agent, "410 Expired: injected status 410",
                               "relisting")
            else:
                self.assertLog(agent, "ERROR event %d %s: injected status %d"
                               % (code, reason, code))
        self.assertEqual(metric(ms, "kwb_watch_expired_total",
                                watch="v1/pods"), 1)
        self.assertEqual(metric(ms, "kwb_watch_reconnects_total",
                                watch="v1/pods", reason="expired"), 1)
        self.assertGreaterEqual(metric(ms, "kwb_watch_reconnects_total",
                                       watch="v1/pods", reason="error"),
                                len(codes) - 1)

    # -- silent servers

    def test_watch_headers_then_nothing(self):
        agent = self.start(watch_defaults={"stall_timeout_seconds": 2})
        n = self.change("pre")
        agent.wait_events(n)
        before = len(watch_reqs(self.api))
        self.api.fail_next(1, code=200, watch=True, headers_only=True,
                           hold=60)
        self.api.drop_watches("between")
        n += self.change("during")
        self.wait_names(agent, ["during-a", "during-b"])
        self.assertGreaterEqual(len(watch_reqs(self.api)), before + 2)
        ms = agent.metrics()
        self.finish(agent, n)
        self.assertLog(agent, "watch stall: no data for 2 s")
        self.assertGreaterEqual(metric(ms, "kwb_watch_reconnects_total",
                                       watch="v1/pods", reason="stall"), 1)

    def test_list_headers_then_nothing(self):
        n = self.seed("pre")
        self.api.fail_next(1, code=200, verb="list", headers_only=True,
                           hold=60)
        agent = self.start(watch_defaults={"watch_list": "off",
                                           "stall_timeout_seconds": 2})
        agent.wait_events(n, timeout=30)
        self.assertGreaterEqual(len(list_reqs(self.api)), 2)
        n += self.change("post")
        agent.wait_events(n)
        self.finish(agent, n)
        self.assertLog(agent, "no data for 2 s (stalled)")

    # -- a line the server sends again after every reconnect

    def test_poison_line_resent_after_every_reconnect(self):
        """The server re-sends an unreadable line at the same position on
        every re-watch from the last good RV. The agent must not loop on
        it forever: it gives up on resuming, relists (which starts past
        the poison) and says so."""
        agent = self.start(watch_defaults={
            "backoff": {"initial_seconds": 0.1, "max_seconds": 0.5}})
        n = self.change("pre")
        agent.wait_events(n)
        before = len(watch_reqs(self.api))
        out = self.api.poison('{"type":"ADDED","object":{"kind":"Pod",'
                              '"metadata":{"name":"poisoned"')
        # the object whose event the poison line stands for
        created = self.api.create("pods", pod("poisoned"))
        self.assertEqual(int(created["metadata"]["resourceVersion"]),
                         out["resourceVersion"])
        n += 1
        self.wait_names(agent, ["poisoned"])
        ms = agent.metrics()
        self.assertGreaterEqual(metric(ms, "kwb_watch_relists_total",
                                       watch="v1/pods"), 1)
        n += self.change("post")
        self.wait_names(agent, ["post-a", "post-b"])
        events = self.finish(agent, n)
        self.assertEqual([e["origin"] for e in events
                          if e["name"] == "poisoned"], ["list"])
        self.assertLog(agent, "invalid watch event", "relisting")
        # a few tries, not a loop
        self.assertLessEqual(len(watch_reqs(self.api)) - before, 6)


if __name__ == "__main__":
    main()
