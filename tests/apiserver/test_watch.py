#!/usr/bin/env python3
"""WATCH semantics: initial events, resume, 410, bookmarks, timeouts,
watch-list, selectors, concurrent watch counters."""

import threading
import time
import unittest

from testlib import (ApiServer, ApiError, MULT, RawWatch, make_pod, name_of,
                     rv_of)


def cm(name, **labels):
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


class WatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer(bookmark_interval=0.2, history_size=50).start()

    @classmethod
    def tearDownClass(cls):
        log_ok = cls.api.server_log()
        cls.api.stop()
        bad = [ln for ln in log_ok.splitlines()
               if '"internal error"' in ln or '"handler error"' in ln or
               "Traceback" in ln]
        if bad:
            raise AssertionError("server errors: %s" % bad[:5])

    def test_initial_and_live_events(self):
        api = self.api
        api.create("configmaps", cm("a"), namespace="w1")
        api.create("configmaps", cm("b"), namespace="w1")
        api.create("configmaps", cm("elsewhere"), namespace="w1-other")
        with RawWatch(api, "configmaps", "w1") as w:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers.get("transfer-encoding"), "chunked")
            evs = [w.event(), w.event()]
            self.assertEqual([(e["type"], name_of(e)) for e in evs],
                             [("ADDED", "a"), ("ADDED", "b")])
            self.assertEqual(evs[0]["object"]["kind"], "ConfigMap")
            self.assertEqual(evs[0]["object"]["apiVersion"], "v1")
            self.assertEqual(w.read(0.3)[0], "timeout")  # no bookmarks asked
            c = api.create("configmaps", cm("c"), namespace="w1")
            api.create("configmaps", cm("x"), namespace="w1-other")
            api.patch("configmaps", "c", {"data": {"k": "2"}},
                      namespace="w1")
            d = api.delete("configmaps", "c", namespace="w1")
            got = [w.event() for _ in range(3)]
            self.assertEqual([(e["type"], name_of(e)) for e in got],
                             [("ADDED", "c"), ("MODIFIED", "c"),
                              ("DELETED", "c")])
            rvs = [rv_of(e) for e in got]
            self.assertEqual(rvs, sorted(set(rvs)))
            self.assertEqual(rvs[0], int(c["metadata"]["resourceVersion"]))
            # DELETED carries the last state with a new resourceVersion
            self.assertEqual(got[2]["object"]["data"], {"k": "2"})
            self.assertEqual(got[2]["object"]["metadata"]["uid"],
                             d["details"]["uid"])
            self.assertGreater(rvs[2], rvs[1])
        # resume from an RV: only later events, no synthetic ADDED
        with RawWatch(api, "configmaps", "w1",
                      resourceVersion=str(rvs[0])) as w:
            got = [w.event(), w.event()]
            self.assertEqual([(e["type"], rv_of(e)) for e in got],
                             [("MODIFIED", rvs[1]), ("DELETED", rvs[2])])
            self.assertEqual(w.read(0.3)[0], "timeout")
        # resourceVersion=0 also starts with the current state
        with RawWatch(api, "configmaps", "w1", resourceVersion="0") as w:
            self.assertEqual(sorted(name_of(w.event()) for _ in range(2)),
                             ["a", "b"])

    def test_too_old_resource_version(self):
        api = self.api
        old = api.create("configmaps", cm("old"), namespace="w2")
        old_rv = int(old["metadata"]["resourceVersion"])
        api.bulk("create", 60, resource="configmaps", namespace="w2-fill")
        with RawWatch(api, "configmaps", resourceVersion=str(old_rv)) as w:
            self.assertEqual(w.status, 200)
            ev = w.event()
            self.assertEqual(ev["type"], "ERROR")
            st = ev["object"]
            self.assertEqual((st["kind"], st["code"], st["reason"]),
                             ("Status", 410, "Expired"))
            self.assertIn("too old resource version: %d" % old_rv,
                          st["message"])
            self.assertEqual(w.read(2)[0], "end")
        # forced compaction: history up to now is gone
        rv = api.resource_version()
        api.create("configmaps", cm("after"), namespace="w2")
        with RawWatch(api, "configmaps", "w2", resourceVersion=str(rv)) as w:
            self.assertEqual(name_of(w.event()), "after")
        api.compact()
        with RawWatch(api, "configmaps", "w2", resourceVersion=str(rv)) as w:
            self.assertEqual(w.event()["object"]["code"], 410)
        now = api.resource_version()
        with RawWatch(api, "configmaps", "w2", resourceVersion=str(now)) as w:
            api.create("configmaps", cm("post"), namespace="w2")
            self.assertEqual(name_of(w.event()), "post")

    def test_future_resource_version(self):
        api = self.api
        api.create("configmaps", cm("before"), namespace="w8")
        nxt = api.resource_version() + 1

        def later():
            api.create("configmaps", cm("fut1"), namespace="w8")  # = nxt
            api.create("configmaps", cm("fut2"), namespace="w8")
        # the answer waits for the revision (headers included)
        t = threading.Timer(0.3, later)
        t.start()
        with RawWatch(api, "configmaps", "w8",
                      resourceVersion=str(nxt)) as w:
            t.join()
            ev = w.event()  # events strictly after nxt
            self.assertEqual((ev["type"], name_of(ev), rv_of(ev)),
                             ("ADDED", "fut2", nxt + 1))
        # too far ahead: after ~3 s an ERROR event with a 504 Status
        far = api.resource_version() + 1000
        t0 = time.monotonic()
        with RawWatch(api, "configmaps", "w8",
                      resourceVersion=str(far)) as w:
            self.assertEqual(w.status, 200)
            ev = w.event(6)
            self.assertEqual(ev["type"], "ERROR")
            self.assertEqual((ev["object"]["code"], ev["object"]["reason"]),
                             (504, "Timeout"))
            self.assertEqual(w.read(2)[0], "end")
        self.assertGreater(time.monotonic() - t0, 2.5)

    def test_bookmarks_and_timeout(self):
        api = self.api
        api.create("configmaps", cm("bm"), namespace="w3")
        t0 = time.monotonic()
        with RawWatch(api, "configmaps", "w3", allowWatchBookmarks="true",
                      timeoutSeconds="1") as w:
            self.assertEqual(w.event()["type"], "ADDED")
            marks = []
            while True:
                kind, data = w.read(3)
                if kind != "line":
                    break
                ev = __import__("json").loads(data)
                self.assertEqual(ev["type"], "BOOKMARK")
                marks.append((time.monotonic(), ev))
            took = time.monotonic() - t0
        self.assertEqual(kind, "end")          # clean close after timeout
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5 * MULT)
        self.assertTrue(3 <= len(marks) <= 6, len(marks))
        obj = marks[0][1]["object"]
        self.assertEqual(set(obj), {"kind", "apiVersion", "metadata"})
        self.assertEqual(list(obj["metadata"]), ["resourceVersion"])
        self.assertEqual(obj["kind"], "ConfigMap")
        gaps = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
        self.assertTrue(all(0.1 < g < 0.5 * MULT for g in gaps), gaps)
        # bookmark interval is a runtime setting too
        api.configure(bookmark_interval=0.05)
        try:
            with RawWatch(api, "configmaps", "w3",
                          resourceVersion=str(api.resource_version()),
                          allowWatchBookmarks="1", timeoutSeconds="1") as w:
                n = 0
                while w.read(3)[0] == "line":
                    n += 1
                self.assertGreater(n, 8)
        finally:
            api.configure(bookmark_interval=0.2)

    def test_watch_list(self):
        api = self.api
        for i in range(3):
            api.create("configmaps", cm("wl-%d" % i), namespace="w4")
        with RawWatch(api, "configmaps", "w4", sendInitialEvents="true",
                      resourceVersionMatch="NotOlderThan",
                      allowWatchBookmarks="true") as w:
            evs = [w.event() for _ in range(4)]
            self.assertEqual([e["type"] for e in evs],
                             ["ADDED"] * 3 + ["BOOKMARK"])
            md = evs[3]["object"]["metadata"]
            self.assertEqual(md["annotations"],
                             {"k8s.io/initial-events-end": "true"})
            self.assertGreaterEqual(int(md["resourceVersion"]),
                                    max(rv_of(e) for e in evs[:3]))
            api.create("configmaps", cm("wl-live"), namespace="w4")
            live = w.events_until(lambda e: e["type"] == "ADDED")
            self.assertEqual(name_of(live[-1]), "wl-live")
        # NotOlderThan a future revision: the state waits for it
        nxt = api.resource_version() + 1
        t = threading.Timer(0.3, lambda: api.create(
            "configmaps", cm("wl-fut"), namespace="w4"))
        t.start()
        with RawWatch(api, "configmaps", "w4", sendInitialEvents="true",
                      resourceVersionMatch="NotOlderThan",
                      resourceVersion=str(nxt),
                      allowWatchBookmarks="true") as w:
            t.join()
            evs = w.events_until(lambda e: e["type"] == "BOOKMARK")
            self.assertIn("wl-fut", [name_of(e) for e in evs])
            self.assertGreaterEqual(rv_of(evs[-1]), nxt)
        # invalid combinations are 422
        for q in ({"sendInitialEvents": "true",
                   "allowWatchBookmarks": "true"},
                  {"sendInitialEvents": "true",
                   "resourceVersionMatch": "NotOlderThan"},
                  {"resourceVersionMatch": "NotOlderThan"}):
            with self.assertRaises(ApiError) as c:
                api.watch("configmaps", "w4", **q)
            self.assertEqual(c.exception.status, 422)

    def test_watch_list_switched_off(self):
        api = self.api
        api.create("configmaps", cm("off"), namespace="w5")
        q = {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
             "resourceVersionMatch": "NotOlderThan"}
        api.configure(watch_list="reject")
        try:
            with self.assertRaises(ApiError) as c:
                api.watch("configmaps", "w5", **q)
            self.assertEqual(c.exception.status, 422)
            self.assertIn("WatchList feature gate", c.exception.body[
                "message"])
            api.configure(watch_list="ignore")
            with RawWatch(api, "configmaps", "w5",
                          resourceVersion=str(api.resource_version()),
                          **q) as w:
                # plain watch from the RV: no initial events, no end mark
                api.create("configmaps", cm("off-2"), namespace="w5")
                evs = w.events_until(lambda e: e["type"] == "ADDED")
                self.assertEqual(name_of(evs[-1]), "off-2")
                self.assertFalse(any(
                    e["object"]["metadata"].get("annotations")
                    for e in evs if e["type"] == "BOOKMARK"))
        finally:
            api.configure(watch_list="on")

    def test_selector_transitions(self):
        api = self.api
        api.create("configmaps", cm("s1", tier="web"), namespace="w6")
        with RawWatch(api, "configmaps", "w6", labelSelector="tier=web",
                      resourceVersion=str(api.resource_version())) as w:
            api.create("configmaps", cm("s2", tier="db"), namespace="w6")
            api.patch("configmaps", "s1", {"metadata": {"labels": {
                "tier": "db"}}}, namespace="w6")
            api.patch("configmaps", "s2", {"metadata": {"labels": {
                "tier": "web"}}}, namespace="w6")
            got = [(e["type"], name_of(e)) for e in (w.event(), w.event())]
            self.assertEqual(got, [("DELETED", "s1"), ("ADDED", "s2")])
        with RawWatch(api, "configmaps", "w6",
                      fieldSelector="metadata.name=s2") as w:
            self.assertEqual(name_of(w.event()), "s2")
            self.assertEqual(w.read(0.3)[0], "timeout")
        # the legacy /watch/ prefix path
        st, _, _ = api.raw("GET", "/api/v1/watch/namespaces/w6/configmaps",
                           query={"timeoutSeconds": "1"})
        self.assertEqual(st, 200)

    def test_watch_counts(self):
        api = self.api
        api.reset_watch_max()
        ws = [RawWatch(api, "pods"), RawWatch(api, "pods", "ns1"),
              RawWatch(api, "apps/deployments", "x")]
        try:
            c = api.wait_for(lambda: api.watch_counts()["current"] == {
                "pods": 2, "apps/deployments": 1} and api.watch_counts())
            self.assertTrue(c, api.watch_counts())
            self.assertEqual(c["max"].get("pods"), 2)
        finally:
            for w in ws:
                w.close()
        # closed connections are noticed without any event being written
        self.assertTrue(api.wait_for(
            lambda: api.watch_counts()["current"] == {}, 5),
            api.watch_counts())
        self.assertEqual(api.watch_counts()["max"]["pods"], 2)
        api.reset_watch_max()
        self.assertNotIn("pods", {k: v for k, v in api.watch_counts()[
            "max"].items() if v})
        log = [e for e in api.request_log() if e["watch"]]
        self.assertTrue(any(e["path"] == "/apis/apps/v1/namespaces/x/"
                            "deployments" and e["verb"] == "watch" and
                            e["resource"] == "apps/deployments"
                            for e in log))

    def test_concurrent_watchers_and_writers(self):
        api = self.api
        rv = str(api.resource_version())
        ws = [RawWatch(api, "pods", "conc", resourceVersion=rv)
              for _ in range(12)]
        errors = []

        def writer(k):
            try:
                for i in range(30):
                    n = "c-%d-%d" % (k, i)
                    api.create("pods", {"metadata": {"name": n},
                                        "spec": {}}, namespace="conc")
                    api.patch("pods", n, {"metadata": {"labels": {
                        "i": str(i)}}}, namespace="conc")
                    api.delete("pods", n, namespace="conc")
            except Exception as e:  # reported below
                errors.append(e)
        ts = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        try:
            for w in ws:
                evs = [w.event() for _ in range(360)]
                rvs = [rv_of(e) for e in evs]
                self.assertEqual(rvs, sorted(set(rvs)))
                per = {}
                for e in evs:
                    per.setdefault(name_of(e), []).append(e["type"])
                self.assertEqual(len(per), 120)
                self.assertTrue(all(v == ["ADDED", "MODIFIED", "DELETED"]
                                    for v in per.values()))
        finally:
            for w in ws:
                w.close()

    def test_pod_watch_all_namespaces(self):
        api = self.api
        rv = str(api.resource_version())
        with RawWatch(api, "pods", resourceVersion=rv) as w:
            api.create("pods", make_pod("p1", "w7a"), namespace="w7a")
            api.create("pods", make_pod("p2", "w7b"), namespace="w7b")
            evs = w.events_until(lambda e: name_of(e) == "p2")
            self.assertEqual([name_of(e) for e in evs], ["p1", "p2"])
            self.assertEqual(evs[0]["object"]["status"]["phase"], "Pending")


if __name__ == "__main__":
    unittest.main(verbosity=2)
