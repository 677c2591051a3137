#!/usr/bin/env python3
"""Fault injection through the control interface."""

import json
import time
import unittest

from testlib import ApiServer, ApiError, RawWatch, name_of


def cm(name):
    return {"metadata": {"name": name}, "data": {"k": "v"}}


class FaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer(bookmark_interval=0.2).start()

    @classmethod
    def tearDownClass(cls):
        log_ok = cls.api.server_log()
        cls.api.stop()
        bad = [ln for ln in log_ok.splitlines()
               if '"internal error"' in ln or '"handler error"' in ln or
               "Traceback" in ln]
        if bad:
            raise AssertionError("server errors: %s" % bad[:5])

    def tearDown(self):
        self.api.clear_faults()

    def live_watch(self, ns, **kw):
        """One configmap watch from now, once earlier ones are gone."""
        cur = lambda: self.api.watch_counts()["current"]  # noqa: E731
        self.assertTrue(self.api.wait_for(lambda: not cur().get(
            "configmaps")))
        w = RawWatch(self.api, "configmaps", ns,
                     resourceVersion=str(self.api.resource_version()), **kw)
        self.assertTrue(self.api.wait_for(lambda: cur().get(
            "configmaps") == 1))
        return w

    def test_drop_between_events(self):
        api = self.api
        with self.live_watch("f1") as w:
            api.create("configmaps", cm("one"), namespace="f1")
            self.assertEqual(name_of(w.event()), "one")
            self.assertEqual(api.drop_watches("between")["watches"], 1)
            self.assertEqual(w.read(3), ("eof", None))
        self.assertTrue(api.wait_for(
            lambda: not api.watch_counts()["current"]))
        with self.live_watch("f1") as w:
            api.drop_watches("between", rst=True)
            kind, _ = w.read(3)
            self.assertIn(kind, ("eof",))

    def test_drop_mid_event(self):
        api = self.api
        with self.live_watch("f2") as w:
            self.assertEqual(api.drop_watches("mid_event")["watches"], 1)
            api.create("configmaps", cm("cut"), namespace="f2")
            kind, data = w.read(3)
            self.assertEqual(kind, "partial")
            self.assertTrue(data.startswith(b'{"type":"ADDED"'))
            self.assertNotIn(b"\n", data)
            with self.assertRaises(ValueError):
                json.loads(data)

    def test_drop_mid_chunk(self):
        api = self.api
        with self.live_watch("f3", allowWatchBookmarks="true") as w:
            api.drop_watches("mid_chunk")
            # the armed drop hits the next write, here a bookmark
            kind, data = w.read(3)
            self.assertEqual(kind, "short_chunk")
            self.assertTrue(data.startswith(b'{"type":"BOOKMARK"'))

    def test_clean_close(self):
        api = self.api
        with self.live_watch("f3b") as w:
            api.drop_watches("clean")
            self.assertEqual(w.read(3), ("end", None))

    def test_garbage_line(self):
        api = self.api
        with self.live_watch("f4") as w:
            api.inject_garbage("<html>oops</html>")
            kind, data = w.read(3)
            self.assertEqual((kind, data), ("line", b"<html>oops</html>\n"))
            api.create("configmaps", cm("after-garbage"), namespace="f4")
            self.assertEqual(name_of(w.event()), "after-garbage")

    def test_replay_and_crafted_event(self):
        api = self.api
        with self.live_watch("f10") as w:
            api.create("configmaps", cm("r1"), namespace="f10")
            api.create("configmaps", cm("r2"), namespace="f10")
            first = [w.event(), w.event()]
            self.assertEqual(api.replay(2)["watches"], 1)
            again = [w.event(), w.event()]
            self.assertEqual(again, first)
            api.inject_event({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "InternalError",
                "code": 500}})
            ev = w.event()
            self.assertEqual((ev["type"], ev["object"]["code"]),
                             ("ERROR", 500))
            api.create("configmaps", cm("r3"), namespace="f10")
            self.assertEqual(name_of(w.event()), "r3")

    def test_stall(self):
        api = self.api
        with self.live_watch("f5", allowWatchBookmarks="true") as w:
            self.assertEqual(w.event()["type"], "BOOKMARK")
            api.stall_watches()
            api.create("configmaps", cm("during-stall"), namespace="f5")
            self.assertEqual(w.read(0.8)[0], "timeout")  # no bookmarks
            api.unstall_watches()
            evs = w.events_until(lambda e: e["type"] == "ADDED", 3)
            self.assertEqual(name_of(evs[-1]), "during-stall")
            api.stall_watches(seconds=0.6)
            t0 = time.monotonic()
            w.read(0.1)  # drain a bookmark sent just before
            api.create("configmaps", cm("timed-stall"), namespace="f5")
            evs = w.events_until(lambda e: e["type"] == "ADDED", 3)
            self.assertGreater(time.monotonic() - t0, 0.4)

    def test_fail_next(self):
        api = self.api
        path = api.path("configmaps", "f6")
        for code, reason in ((500, "InternalError"),
                             (503, "ServiceUnavailable"),
                             (429, "TooManyRequests"),
                             (401, "Unauthorized"), (403, "Forbidden"),
                             (410, "Expired"), (504, "Timeout")):
            api.fail_next(2, code=code, verb="list",
                          retry_after=3 if code == 503 else None)
            for _ in range(2):
                st, hdrs, body = api.raw("GET", path)
                self.assertEqual(st, code)
                body = json.loads(body)
                self.assertEqual((body["kind"], body["code"],
                                  body["reason"]), ("Status", code, reason))
                if code == 429:
                    self.assertEqual(hdrs.get("Retry-After"), "1")
                if code == 503:
                    self.assertEqual(hdrs.get("Retry-After"), "3")
                    self.assertEqual(body["details"]["retryAfterSeconds"], 3)
            self.assertEqual(api.raw("GET", path)[0], 200)
        # filters: only watches, only a path
        api.fail_next(1, code=500, watch=True)
        self.assertEqual(api.raw("GET", path)[0], 200)
        with self.assertRaises(ApiError) as c:
            api.watch("configmaps", "f6")
        self.assertEqual(c.exception.status, 500)
        api.fail_next(1, code=503, path="/namespaces/other/")
        self.assertEqual(api.raw("GET", path)[0], 200)
        self.assertEqual(api.raw("GET", api.path("pods", "other"))[0], 503)
        api.fail_next(1, code=500, method="POST")
        with self.assertRaises(ApiError):
            api.create("configmaps", cm("x"), namespace="f6")
        api.create("configmaps", cm("x"), namespace="f6")
        log = api.request_log()
        fails = [e for e in log if e["status"] == 500 and
                 e["method"] == "POST"]
        self.assertEqual(len(fails), 1)

    def test_raw_answers(self):
        api = self.api
        path = api.path("configmaps", "f11")
        html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        api.fail_next(1, code=502, verb="list", body=html,
                      content_type="text/html")
        st, hdrs, body = api.raw("GET", path)
        self.assertEqual((st, hdrs.get("Content-Type"), body),
                         (502, "text/html", html.encode()))
        api.fail_next(1, code=200, verb="list", body=b"")
        st, hdrs, body = api.raw("GET", path)
        self.assertEqual((st, hdrs.get("Content-Length"), body),
                         (200, "0", b""))
        api.fail_next(1, code=200, verb="list", body=b"\x08\x01\xff",
                      content_type="application/vnd.kubernetes.protobuf")
        st, hdrs, body = api.raw("GET", path)
        self.assertEqual((st, body), (200, b"\x08\x01\xff"))
        self.assertEqual(api.raw("GET", path)[0], 200)
        # headers only: the body never comes, the connection stays open
        api.fail_next(1, code=200, watch=True, headers_only=True, hold=5)
        w = RawWatch(api, "configmaps", "f11")
        with w:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers.get("transfer-encoding"), "chunked")
            self.assertEqual(w.read(0.6), ("timeout", None))
        # logged once the held connection ended
        statuses = lambda: [e["status"] for e in api.request_log()  # noqa
                            if e["path"] == path][-5:]
        self.assertTrue(api.wait_for(lambda: len(statuses()) == 5))
        self.assertEqual(statuses(), [502, 200, 200, 200, 200])

    def test_garbage_bytes(self):
        api = self.api
        with self.live_watch("f12") as w:
            api.inject_garbage(b'{"type":"ADDED","x":"\xff\xfe"}')
            self.assertEqual(w.read(3),
                             ("line", b'{"type":"ADDED","x":"\xff\xfe"}\n'))

    def test_poison_line(self):
        api = self.api
        with self.live_watch("f13") as w:
            out = api.poison("poisoned {{{", resource="configmaps")
            self.assertEqual(out["watches"], 1)
            self.assertEqual(w.read(3), ("line", b"poisoned {{{\n"))
        start = str(api.resource_version())
        # a watch starting before the poison's revision gets it again
        with RawWatch(api, "configmaps", "f13",
                      resourceVersion=start) as w:
            self.assertEqual(w.read(3), ("line", b"poisoned {{{\n"))
            api.create("configmaps", cm("p1"), namespace="f13")
            ev = w.event()
            self.assertEqual(name_of(ev), "p1")
        # from the poison's revision on, it is gone
        rv1 = ev["object"]["metadata"]["resourceVersion"]
        self.assertGreaterEqual(int(rv1), out["resourceVersion"])
        with RawWatch(api, "configmaps", "f13", resourceVersion=rv1) as w:
            api.create("configmaps", cm("p2"), namespace="f13")
            self.assertEqual(name_of(w.event()), "p2")
        api.clear_faults()
        with RawWatch(api, "configmaps", "f13", resourceVersion=start) as w:
            self.assertEqual(name_of(w.event()), "p1")

    def test_forbid(self):
        api = self.api
        api.forbid("pods", ["list", "watch"])
        with self.assertRaises(ApiError) as c:
            api.list("pods", "f7")
        b = c.exception.body
        self.assertEqual((b["code"], b["reason"]), (403, "Forbidden"))
        self.assertIn('cannot list resource "pods"', b["message"])
        with self.assertRaises(ApiError) as c:
            api.watch("pods")
        self.assertEqual(c.exception.status, 403)
        api.list("configmaps", "f7")
        api.create("pods", {"metadata": {"name": "ok"}, "spec": {}},
                   namespace="f7")  # create still allowed
        api.allow("pods")
        api.list("pods", "f7")

    def test_request_log(self):
        api = self.api
        api.clear_request_log()
        api.list("configmaps", "f8", limit=5)
        with RawWatch(api, "configmaps", "f8", timeoutSeconds="1") as w:
            w.read(3)
        self.assertTrue(api.wait_for(lambda: len(api.request_log()) == 2))
        log = api.request_log()
        lst, wat = log
        self.assertEqual((lst["method"], lst["path"], lst["query"],
                          lst["status"], lst["watch"]),
                         ("GET", "/api/v1/namespaces/f8/configmaps",
                          "limit=5", 200, False))
        self.assertTrue(wat["watch"])
        self.assertIn("watch=1", wat["query"])
        self.assertIsInstance(wat["time"], float)
        nxt = api.control("requests", {}, method="GET")["next"]
        api.list("configmaps", "f8")
        # a request is logged just after its answer went out
        self.assertTrue(api.wait_for(
            lambda: len(api.request_log(since=nxt)) == 1))

    def test_bulk_and_churn(self):
        api = self.api
        rv = api.resource_version()
        with RawWatch(api, "pods", "churn", resourceVersion=str(rv)) as w:
            api.churn(50, namespaces=["churn"], target=5)
            try:
                types = set()
                deadline = time.monotonic() + 8
                while len(types) < 3 and time.monotonic() < deadline:
                    types.add(w.event()["type"])
            finally:
                api.churn(0)
            self.assertEqual(types, {"ADDED", "MODIFIED", "DELETED"})
        b = api.bulk("create", 3, resource="secrets", namespace="f9",
                     names=True)
        self.assertEqual(len(b["names"]), 3)
        s = api.get("secrets", b["names"][0], namespace="f9")
        self.assertIn("password", s["data"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
