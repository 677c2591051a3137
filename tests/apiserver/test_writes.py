#!/usr/bin/env python3
"""Write semantics: POST/PUT/PATCH/DELETE, preconditions, Status errors."""

import unittest

from testlib import ApiServer, ApiError, RawWatch, make_pod, name_of


class WriteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer().start()

    @classmethod
    def tearDownClass(cls):
        log = cls.api.server_log()
        cls.api.stop()
        if "Traceback" in log or '"internal error"' in log:
            raise AssertionError("server errors: %s" % log[-2000:])

    def status_of(self, fn, *a, **kw):
        with self.assertRaises(ApiError) as c:
            fn(*a, **kw)
        b = c.exception.body
        self.assertEqual(b["kind"], "Status")
        self.assertEqual(b["status"], "Failure")
        self.assertEqual(b["code"], c.exception.status)
        return c.exception.status, b["reason"], b

    def test_create(self):
        api = self.api
        o = api.create("configmaps", {"metadata": {"name": "c1"},
                                      "data": {"a": "1"}}, namespace="wr1")
        md = o["metadata"]
        self.assertEqual((o["kind"], o["apiVersion"]), ("ConfigMap", "v1"))
        for k in ("uid", "resourceVersion", "creationTimestamp",
                  "generation", "namespace"):
            self.assertIn(k, md)
        self.assertEqual(md["generation"], 1)
        self.assertRegex(md["creationTimestamp"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(api.get("configmaps", "c1", namespace="wr1"), o)
        # the namespace was created on the fly
        self.assertEqual(api.get("namespaces", "wr1")["status"]["phase"],
                         "Active")
        self.assertEqual(self.status_of(
            api.create, "configmaps", {"metadata": {"name": "c1"}},
            namespace="wr1")[:2], (409, "AlreadyExists"))
        self.assertEqual(self.status_of(
            api.create, "configmaps", {"metadata": {"name": "Bad_Name"}},
            namespace="wr1")[:2], (422, "Invalid"))
        self.assertEqual(self.status_of(
            api.create, "configmaps", {"metadata": {}},
            namespace="wr1")[:2], (422, "Invalid"))
        self.assertEqual(self.status_of(
            api.create, "configmaps", {"metadata": {
                "name": "c2", "namespace": "other"}},
            namespace="wr1")[:2], (400, "BadRequest"))
        self.assertEqual(self.status_of(
            api.create, "configmaps", {"kind": "Secret", "metadata": {
                "name": "c2"}}, namespace="wr1")[:2], (400, "BadRequest"))
        g = api.create("configmaps", {"metadata": {"generateName": "gen-"}},
                       namespace="wr1")
        self.assertRegex(g["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        # dryRun stores nothing
        api.request("POST", api.path("configmaps", "wr1"),
                    {"metadata": {"name": "dry"}}, query={"dryRun": "All"})
        self.assertEqual(self.status_of(api.get, "configmaps", "dry",
                                        namespace="wr1")[:2],
                         (404, "NotFound"))
        # pods start Pending whatever status was sent
        p = api.create("pods", make_pod("p1", "wr1"), namespace="wr1")
        self.assertEqual(p["status"]["phase"], "Pending")
        # cluster-scoped
        n = api.create("namespaces", {"metadata": {"name": "wr1-ns"}},
                       namespace=None)
        self.assertNotIn("namespace", n["metadata"])

    def test_update_and_conflict(self):
        api = self.api
        o = api.create("configmaps", {"metadata": {"name": "u1"},
                                      "data": {"a": "1"}}, namespace="wr2")
        o["data"]["a"] = "2"
        o2 = api.update("configmaps", o, namespace="wr2")
        self.assertGreater(int(o2["metadata"]["resourceVersion"]),
                           int(o["metadata"]["resourceVersion"]))
        self.assertEqual(o2["metadata"]["generation"], 2)
        self.assertEqual(o2["metadata"]["uid"], o["metadata"]["uid"])
        # stale resourceVersion -> 409 Conflict
        o["data"]["a"] = "3"
        code, reason, body = self.status_of(api.update, "configmaps", o,
                                            namespace="wr2")
        self.assertEqual((code, reason), (409, "Conflict"))
        self.assertIn("the object has been modified", body["message"])
        # unchanged PUT: no new resourceVersion
        same = api.update("configmaps", o2, namespace="wr2")
        self.assertEqual(same["metadata"]["resourceVersion"],
                         o2["metadata"]["resourceVersion"])
        # without resourceVersion: unconditional
        del o2["metadata"]["resourceVersion"]
        o2["data"]["b"] = "x"
        api.update("configmaps", o2, namespace="wr2")
        self.assertEqual(self.status_of(
            api.update, "configmaps", {"metadata": {"name": "missing"}},
            namespace="wr2")[:2], (404, "NotFound"))
        # status is a subresource for pods
        p = api.create("pods", make_pod("sp", "wr2"), namespace="wr2")
        p["status"] = {"phase": "Running"}
        p["metadata"]["labels"]["x"] = "y"
        p2 = api.update("pods", p, namespace="wr2")
        self.assertEqual(p2["status"]["phase"], "Pending")
        self.assertEqual(p2["metadata"]["labels"]["x"], "y")
        self.assertEqual(p2["metadata"]["generation"], 1)  # metadata only
        p2["status"] = {"phase": "Running"}
        p3 = api.update_status("pods", p2, namespace="wr2")
        self.assertEqual(p3["status"]["phase"], "Running")
        # leases may be created by PUT
        lease = {"metadata": {"name": "l1"}, "spec": {"holderIdentity": "a"}}
        st, _, _ = api.raw("PUT", api.path("coordination.k8s.io/leases",
                                           "wr2", "l1"), lease)
        self.assertEqual(st, 201)

    def test_patches(self):
        api = self.api
        api.create("pods", make_pod("pp", "wr3"), namespace="wr3")
        o = api.patch("pods", "pp", {"metadata": {"labels": {
            "new": "1", "tier": None}}}, namespace="wr3")
        self.assertEqual(o["metadata"]["labels"]["new"], "1")
        self.assertNotIn("tier", o["metadata"]["labels"])
        o = api.patch("pods", "pp", {"spec": {"containers": [
            {"name": "app", "image": "img:2"},
            {"name": "side", "image": "side:1"}]}},
            namespace="wr3", patch_type="strategic")
        cs = o["spec"]["containers"]
        self.assertEqual([c["name"] for c in cs], ["app", "side"])
        self.assertEqual(cs[0]["image"], "img:2")
        self.assertIn("resources", cs[0])         # merged by name
        o = api.patch("pods", "pp", {"spec": {"containers": [
            {"name": "side", "$patch": "delete"}]}}, namespace="wr3",
            patch_type="strategic")
        self.assertEqual(len(o["spec"]["containers"]), 1)
        o = api.patch("pods", "pp", [
            {"op": "add", "path": "/metadata/annotations/j", "value": "1"},
            {"op": "replace", "path": "/spec/containers/0/image",
             "value": "img:3"},
            {"op": "test", "path": "/metadata/name", "value": "pp"}],
            namespace="wr3", patch_type="json")
        self.assertEqual(o["metadata"]["annotations"]["j"], "1")
        self.assertEqual(o["spec"]["containers"][0]["image"], "img:3")
        self.assertEqual(self.status_of(
            api.patch, "pods", "pp", [{"op": "test", "path": "/metadata/name",
                                       "value": "zz"}], namespace="wr3",
            patch_type="json")[:2], (422, "Invalid"))
        # a resourceVersion in the patch is a precondition
        self.assertEqual(self.status_of(
            api.patch, "pods", "pp", {"metadata": {"resourceVersion": "1"}},
            namespace="wr3")[:2], (409, "Conflict"))
        self.assertEqual(self.status_of(
            api.patch, "pods", "nope", {"a": 1}, namespace="wr3")[:2],
            (404, "NotFound"))
        st, _, _ = api.raw("PATCH", api.path("pods", "wr3", "pp"), "{}",
                           content_type="application/json")
        self.assertEqual(st, 415)
        # server-side apply creates, then merges
        a = api.patch("example.com/widgets", "w1", {
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"size": 1}},
            namespace="wr3", patch_type="apply",
            query={"fieldManager": "test"})
        self.assertEqual(a["spec"], {"size": 1})
        a = api.patch("example.com/widgets", "w1", {
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"color": "red"}},
            namespace="wr3", patch_type="apply",
            query={"fieldManager": "test"})
        self.assertEqual(a["spec"], {"size": 1, "color": "red"})
        self.assertEqual(a["metadata"]["generation"], 2)
        # status subresource patch
        s = api.patch("example.com/widgets", "w1", {"status": {"ok": True}},
                      namespace="wr3", sub="status")
        self.assertEqual(s["status"], {"ok": True})
        self.assertEqual(s["metadata"]["generation"], 2)

    def test_delete(self):
        api = self.api
        c = api.create("configmaps", {"metadata": {"name": "d1"}},
                       namespace="wr4")
        self.assertEqual(self.status_of(
            api.delete, "configmaps", "d1", namespace="wr4",
            preconditions={"uid": "nope"})[:2], (409, "Conflict"))
        self.assertEqual(self.status_of(
            api.delete, "configmaps", "d1", namespace="wr4",
            preconditions={"resourceVersion": "1"})[:2], (409, "Conflict"))
        st = api.delete("configmaps", "d1", namespace="wr4",
                        preconditions={"uid": c["metadata"]["uid"]})
        self.assertEqual((st["kind"], st["status"]), ("Status", "Success"))
        self.assertEqual(st["details"]["uid"], c["metadata"]["uid"])
        self.assertEqual(self.status_of(
            api.delete, "configmaps", "d1", namespace="wr4")[:2],
            (404, "NotFound"))
        p = api.create("pods", make_pod("dp", "wr4"), namespace="wr4")
        gone = api.delete("pods", "dp", namespace="wr4")
        self.assertEqual(gone["kind"], "Pod")   # pods answer the object
        self.assertGreater(int(gone["metadata"]["resourceVersion"]),
                           int(p["metadata"]["resourceVersion"]))
        # collection delete with a selector
        for i in range(4):
            api.create("configmaps", {"metadata": {
                "name": "col-%d" % i, "labels": {"odd": str(i % 2)}}},
                namespace="wr4")
        out = api.request("DELETE", api.path("configmaps", "wr4"),
                          query={"labelSelector": "odd=1"})
        self.assertEqual(len(out["items"]), 2)
        left = api.list("configmaps", "wr4")["items"]
        self.assertEqual(sorted(i["metadata"]["name"] for i in left),
                         ["col-0", "col-2"])
        # deleting a namespace deletes its content first, each an event
        rv = str(api.resource_version())
        with RawWatch(api, "configmaps", resourceVersion=rv) as w:
            api.delete("namespaces", "wr4", namespace=None)
            evs = [w.event(), w.event()]
            self.assertEqual(sorted((e["type"], name_of(e)) for e in evs),
                             [("DELETED", "col-0"), ("DELETED", "col-2")])
        self.assertEqual(api.list("configmaps", "wr4")["items"], [])

    def test_strict_namespaces(self):
        api = self.api
        api.configure(strict_namespaces=True)
        try:
            code, reason, body = self.status_of(
                api.create, "configmaps", {"metadata": {"name": "s"}},
                namespace="nowhere")
            self.assertEqual((code, reason), (404, "NotFound"))
            self.assertIn('namespaces "nowhere" not found', body["message"])
        finally:
            api.configure(strict_namespaces=False)


if __name__ == "__main__":
    unittest.main(verbosity=2)
