#!/usr/bin/env python3
"""LIST semantics: paging, continue tokens, resourceVersion, selectors."""

import threading
import time
import unittest

from testlib import ApiServer, ApiError, MULT, make_pod


class ListTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer().start()

    @classmethod
    def tearDownClass(cls):
        log_ok = cls.api.server_log()
        cls.api.stop()
        bad = [ln for ln in log_ok.splitlines()
               if '"internal error"' in ln or '"handler error"' in ln or
               "Traceback" in ln]
        if bad:
            raise AssertionError("server errors: %s" % bad[:5])

    def test_bulk_10k(self):
        api = self.api
        t0 = time.monotonic()
        out = api.bulk("create", 10000, namespace="big")
        took = time.monotonic() - t0
        self.assertEqual(out["count"], 10000)
        self.assertLess(took, 8.0 * MULT, "bulk of 10k pods too slow")
        first = api.list("pods", "big", limit=500)
        self.assertEqual(first["kind"], "PodList")
        self.assertEqual(first["apiVersion"], "v1")
        self.assertEqual(len(first["items"]), 500)
        self.assertNotIn("kind", first["items"][0])
        self.assertNotIn("apiVersion", first["items"][0])
        self.assertEqual(first["metadata"]["remainingItemCount"], 9500)
        size = len(api.raw("GET", api.path("pods", "big"),
                           query={"limit": 1})[2])
        self.assertGreater(size, 2500)
        self.assertLess(size, 5000)
        m = api.bulk("modify", 50, namespace="big")
        self.assertEqual(m["count"], 50)
        self.assertEqual(m["lastResourceVersion"] - m[
            "firstResourceVersion"], 49)
        d = api.bulk("delete", 10000, namespace="big")
        self.assertEqual(d["count"], 10000)
        self.assertEqual(api.list("pods", "big")["items"], [])

    def test_paging_is_a_consistent_snapshot(self):
        api = self.api
        api.bulk("create", 1200, resource="configmaps", namespace="pg")
        first = api.list("configmaps", "pg", limit=100)
        self.assertEqual(len(first["items"]), 100)
        self.assertEqual(first["metadata"]["remainingItemCount"], 1100)
        rv0 = first["metadata"]["resourceVersion"]
        # changes after the first page stay invisible to the continuation
        victim = first["items"][-1]["metadata"]["name"]
        late = "zzz-late"
        api.delete("configmaps", victim, namespace="pg")
        api.create("configmaps", {"metadata": {"name": late}},
                   namespace="pg")
        api.patch("configmaps", first["items"][0]["metadata"]["name"],
                  {"data": {"changed": "yes"}}, namespace="pg")
        later = api.list("configmaps", "pg", limit=5)["items"][-1]
        api.delete("configmaps", later["metadata"]["name"], namespace="pg")
        items, pages = list(first["items"]), 1
        cont = first["metadata"]["continue"]
        while cont:
            page = api.list("configmaps", "pg", limit=100,
                            **{"continue": cont})
            self.assertEqual(page["metadata"]["resourceVersion"], rv0)
            items += page["items"]
            pages += 1
            cont = page["metadata"].get("continue")
        self.assertEqual(pages, 12)
        names = [i["metadata"]["name"] for i in items]
        self.assertEqual(len(set(names)), 1200)
        self.assertNotIn(late, names)
        self.assertIn(later["metadata"]["name"], names)
        self.assertEqual(names, sorted(names))
        # a fresh list sees the changes
        now, rv, pages = api.list_all("configmaps", "pg", limit=500)
        self.assertEqual(pages, 3)
        names = {i["metadata"]["name"] for i in now}
        self.assertEqual(len(names), 1199)
        self.assertIn(late, names)
        self.assertNotIn(victim, names)
        self.assertGreater(int(rv), int(rv0))

    def test_page_cap(self):
        api = self.api
        api.bulk("create", 25, namespace="cap")
        api.configure(page_cap=10)
        try:
            page = api.list("pods", "cap")
            self.assertEqual(len(page["items"]), 10)
            self.assertIn("continue", page["metadata"])
            page = api.list("pods", "cap", limit=100)
            self.assertEqual(len(page["items"]), 10)
            items, _, pages = api.list_all("pods", "cap")
            self.assertEqual((len(items), pages), (25, 3))
        finally:
            api.configure(page_cap=0)
        self.assertEqual(len(api.list("pods", "cap")["items"]), 25)
        # resourceVersion=0 is served whole, limit ignored
        whole = api.list("pods", "cap", limit=10, resourceVersion="0")
        self.assertEqual(len(whole["items"]), 25)
        self.assertNotIn("continue", whole["metadata"])

    def test_expired_continue(self):
        api = self.api
        api.bulk("create", 6, namespace="exp")
        page = api.list("pods", "exp", limit=2)
        cont = page["metadata"]["continue"]
        api.list("pods", "exp", limit=2, **{"continue": cont})  # still fine
        api.expire_continue()
        with self.assertRaises(ApiError) as cm:
            api.list("pods", "exp", limit=2, **{"continue": cont})
        e = cm.exception
        self.assertEqual(e.status, 410)
        self.assertEqual(e.body["kind"], "Status")
        self.assertEqual(e.body["reason"], "Expired")
        self.assertEqual(e.body["code"], 410)
        self.assertIn("continue", e.body["metadata"])
        # compaction past the token's resourceVersion expires it as well
        page = api.list("pods", "exp", limit=2)
        api.create("configmaps", {"metadata": {"name": "bump-exp"}})
        api.compact()
        with self.assertRaises(ApiError) as cm:
            api.list("pods", "exp", limit=2,
                     **{"continue": page["metadata"]["continue"]})
        self.assertEqual(cm.exception.reason, "Expired")
        with self.assertRaises(ApiError) as cm:
            api.list("pods", "exp", limit=2, **{"continue": "garbage!"})
        self.assertEqual(cm.exception.status, 400)

    def test_resource_version_semantics(self):
        api = self.api
        a = api.create("configmaps", {"metadata": {"name": "rv-a"}},
                       namespace="rv")
        rv_a = int(a["metadata"]["resourceVersion"])
        api.delete("configmaps", "rv-a", namespace="rv")
        # Exact at the old revision still has the object
        old = api.list("configmaps", "rv", resourceVersion=str(rv_a),
                       resourceVersionMatch="Exact")
        self.assertEqual([i["metadata"]["name"] for i in old["items"]],
                         ["rv-a"])
        self.assertEqual(old["metadata"]["resourceVersion"], str(rv_a))
        cur = api.list("configmaps", "rv", resourceVersion=str(rv_a),
                       resourceVersionMatch="NotOlderThan")
        self.assertEqual(cur["items"], [])
        self.assertGreater(int(cur["metadata"]["resourceVersion"]), rv_a)
        # NotOlderThan a future revision waits for it
        fut = api.resource_version() + 1
        t = threading.Timer(0.3, lambda: api.create(
            "configmaps", {"metadata": {"name": "rv-b"}}, namespace="rv"))
        t.start()
        got = api.list("configmaps", "rv", resourceVersion=str(fut),
                       resourceVersionMatch="NotOlderThan")
        t.join()
        self.assertGreaterEqual(int(got["metadata"]["resourceVersion"]), fut)
        # with limit and no match, an RV is exact (legacy rule)
        old = api.list("configmaps", "rv", resourceVersion=str(rv_a),
                       limit=10)
        self.assertEqual(old["metadata"]["resourceVersion"], str(rv_a))
        self.assertEqual(len(old["items"]), 1)
        # Exact below the compaction point: 410
        api.compact()
        with self.assertRaises(ApiError) as cm:
            api.list("configmaps", "rv", resourceVersion=str(rv_a), limit=10)
        self.assertEqual(cm.exception.status, 410)
        with self.assertRaises(ApiError) as cm:
            api.list("configmaps", "rv", resourceVersion=str(rv_a),
                     resourceVersionMatch="Exact")
        self.assertEqual((cm.exception.status, cm.exception.reason),
                         (410, "Expired"))
        # invalid combinations: 422 Status of ListOptions
        for q in ({"resourceVersionMatch": "Exact"},
                  {"resourceVersionMatch": "Exact", "resourceVersion": "0"},
                  {"resourceVersionMatch": "Sometimes",
                   "resourceVersion": "5"}):
            with self.assertRaises(ApiError) as cm:
                api.list("configmaps", "rv", **q)
            self.assertEqual(cm.exception.status, 422)
            self.assertEqual(cm.exception.reason, "Invalid")

    def test_selectors(self):
        api = self.api
        for i, labels in enumerate([{"app": "a", "env": "prod"},
                                    {"app": "b", "env": "dev"},
                                    {"app": "c"}]):
            api.create("pods", make_pod("sel-%d" % i, "sel", labels=labels),
                       namespace="sel")
        api.create("pods", make_pod("sel-x", "sel-other"),
                   namespace="sel-other")

        def names(**q):
            return sorted(i["metadata"]["name"]
                          for i in api.list("pods", "sel", **q)["items"])
        self.assertEqual(names(labelSelector="app=a"), ["sel-0"])
        self.assertEqual(names(labelSelector="app==b"), ["sel-1"])
        self.assertEqual(names(labelSelector="app!=a"), ["sel-1", "sel-2"])
        self.assertEqual(names(labelSelector="app in (a, c)"),
                         ["sel-0", "sel-2"])
        self.assertEqual(names(labelSelector="app notin (a,c)"), ["sel-1"])
        self.assertEqual(names(labelSelector="env"), ["sel-0", "sel-1"])
        self.assertEqual(names(labelSelector="!env"), ["sel-2"])
        self.assertEqual(names(labelSelector="env,app=b,release=stable"),
                         ["sel-1"])
        self.assertEqual(names(fieldSelector="metadata.name=sel-2"),
                         ["sel-2"])
        self.assertEqual(names(fieldSelector="metadata.name!=sel-2,"
                               "metadata.namespace==sel"),
                         ["sel-0", "sel-1"])
        self.assertEqual(names(fieldSelector="status.phase=Pending"),
                         ["sel-0", "sel-1", "sel-2"])
        allns = api.list("pods", None, fieldSelector="metadata.namespace="
                         "sel-other")["items"]
        self.assertEqual([i["metadata"]["name"] for i in allns], ["sel-x"])
        # selectors with paging: limit counts matching items
        page = api.list("pods", "sel", labelSelector="env", limit=1)
        self.assertEqual(len(page["items"]), 1)
        self.assertNotIn("remainingItemCount", page["metadata"])
        for bad in ({"fieldSelector": "spec.bogus=1"},
                    {"labelSelector": "a in b"}):
            with self.assertRaises(ApiError) as cm:
                api.list("pods", "sel", **bad)
            self.assertEqual(cm.exception.status, 400)

    def test_kinds_and_scopes(self):
        api = self.api
        api.create("example.com/widgets", {"metadata": {"name": "w"},
                                           "spec": {"size": 1}})
        lst = api.list("example.com/widgets", "default")
        self.assertEqual(lst["kind"], "WidgetList")
        self.assertEqual(lst["apiVersion"], "example.com/v1")
        # custom resources list items carry kind/apiVersion (unstructured)
        self.assertEqual(lst["items"][0]["kind"], "Widget")
        ns = api.list("namespaces")
        self.assertEqual(ns["kind"], "NamespaceList")
        names = [i["metadata"]["name"] for i in ns["items"]]
        self.assertIn("kube-system", names)
        for key, kind in (("apps/deployments", "DeploymentList"),
                          ("events.k8s.io/events", "EventList"),
                          ("coordination.k8s.io/leases", "LeaseList"),
                          ("events", "EventList"),
                          ("secrets", "SecretList")):
            self.assertEqual(api.list(key)["kind"], kind)
            api.bulk("create", 2, resource=key, namespace="kinds")
            self.assertEqual(len(api.list(key, "kinds")["items"]), 2)
        with self.assertRaises(ApiError) as cm:
            api.request("GET", "/api/v1/nonsense")
        self.assertEqual(cm.exception.status, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
