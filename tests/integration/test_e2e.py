"""End to end (issue 4): changes made on the test API server arrive in the
file sink exactly once each, in resourceVersion order per object, with
every SPEC envelope field right; paginated initial lists; all-namespaces,
namespaced + selector, group and CRD-style resources."""
import collections

from kwb import TestCase, main, pod, wait_for, watch_conf


class EndToEnd(TestCase):

    def test_changes_arrive_exactly_once_in_order(self):
        agent = self.agent().start()
        wait_for(lambda: any(r["path"].endswith("/pods") and
                             "watch" in r.get("query", "")
                             for r in self.api.request_log()),
                 what="the agent's watch")
        names = ["web-%d" % i for i in range(20)]
        for n in names:
            self.api.create("pods", pod(n))
        for n in names[:10]:
            self.api.patch("pods", n, {"metadata": {"labels": {"rev": "2"}}})
        for n in names[:5]:
            self.api.delete("pods", n)
        events = agent.wait_events(35)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 35)
        self.assertNoDuplicates(events)
        self.assertPerObjectOrder(events)
        for e in events:
            self.assertEnvelope(e)
            self.assertEqual(e["origin"], "watch")
            self.assertEqual((e["apiVersion"], e["kind"], e["resource"]),
                             ("v1", "Pod", "pods"))
            self.assertEqual(e["namespace"], "default")
        counts = collections.Counter(e["type"] for e in events)
        self.assertEqual(counts, {"ADDED": 20, "MODIFIED": 10,
                                  "DELETED": 5})
        modified = [e for e in events if e["type"] == "MODIFIED"]
        self.assertTrue(all(e["object"]["metadata"]["labels"]["rev"] == "2"
                            for e in modified))
        self.assertMatchesServer(events)

    def test_paginated_initial_list(self):
        self.api.bulk("create", 60, prefix="listed")
        agent = self.agent(watch_defaults={"list_page_size": 7,
                                           "watch_list": "off"}).start()
        events = agent.wait_events(60)
        agent.stop()
        events = agent.events()
        self.assertEqual(len(events), 60)
        self.assertNoDuplicates(events)
        self.assertTrue(all(e["type"] == "ADDED" and e["origin"] == "list"
                            for e in events))
        for e in events:
            self.assertEnvelope(e)
        lists = [r for r in self.api.request_log()
                 if r["path"] == "/api/v1/pods" and "watch" not in
                 r.get("query", "")]
        self.assertGreaterEqual(len(lists), 9, "one request per page")
        self.assertTrue(any("continue=" in r.get("query", "") for r in lists))
        self.assertMatchesServer(events)

    def test_all_namespaces_namespaced_selector_and_groups(self):
        for ns in ("team-a", "team-b"):
            for i in range(3):
                self.api.create("pods", pod("p%d" % i, namespace=ns),
                                namespace=ns)
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "team-a",
                         "labels": {"tier": "web"}}}, namespace="team-a")
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "db", "namespace": "team-a",
                         "labels": {"tier": "db"}}}, namespace="team-a")
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "team-b",
                         "labels": {"tier": "web"}}}, namespace="team-b")
        widgets = self.api.path("example.com/widgets", "team-a")
        self.assertTrue(widgets.startswith("/apis/example.com/v1/"))
        self.api.create("example.com/widgets", {
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "team-a"},
            "spec": {"size": 3}}, namespace="team-a")
        self.api.create("namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-c"}})
        agent = self.agent(watches=[
            watch_conf("v1", "pods"),
            watch_conf("v1", "configmaps", namespace="team-a",
                       label_selector="tier=web"),
            watch_conf("example.com/v1", "widgets"),
            watch_conf("v1", "namespaces"),
        ]).start()
        # 6 pods + 1 configmap + 1 widget + namespaces (team-c and any the
        # server made itself).
        wait_for(lambda: len([e for e in agent.events()
                              if e["kind"] == "Widget"]) == 1 and
                 len([e for e in agent.events() if e["kind"] == "Pod"]) == 6,
                 what="initial events")
        self.api.patch("example.com/widgets", "w1", {"spec": {"size": 4}},
                       namespace="team-a")
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web2", "namespace": "team-a",
                         "labels": {"tier": "web"}}}, namespace="team-a")
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "db2", "namespace": "team-a",
                         "labels": {"tier": "db"}}}, namespace="team-a")
        wait_for(lambda: len([e for e in agent.events()
                              if e["kind"] == "ConfigMap"]) >= 2 and
                 len([e for e in agent.events()
                      if e["kind"] == "Widget"]) >= 2, what="changes")
        agent.stop()
        events = agent.events()
        self.assertNoDuplicates(events)
        for e in events:
            self.assertEnvelope(e)
        pods = [e for e in events if e["kind"] == "Pod"]
        self.assertEqual(sorted((e["namespace"], e["name"]) for e in pods),
                         sorted((ns, "p%d" % i) for ns in ("team-a", "team-b")
                                for i in range(3)))
        cms = [e for e in events if e["kind"] == "ConfigMap"]
        self.assertEqual(sorted((e["namespace"], e["name"]) for e in cms),
                         [("team-a", "web"), ("team-a", "web2")])
        ws = [e for e in events if e["kind"] == "Widget"]
        self.assertEqual([(e["type"], e["apiVersion"], e["resource"])
                          for e in ws],
                         [("ADDED", "example.com/v1", "widgets"),
                          ("MODIFIED", "example.com/v1", "widgets")])
        self.assertEqual(ws[1]["object"]["spec"]["size"], 4)
        nss = [e for e in events if e["kind"] == "Namespace"]
        self.assertIn("team-c", [e["name"] for e in nss])
        self.assertTrue(all(e["namespace"] == "" for e in nss))


class FileSink(TestCase):

    def test_rotation_keeps_whole_lines_and_n_files(self):
        import os
        from kwb import read_events
        path = os.path.join(self.tmp, "rot.jsonl")
        agent = self.agent(sinks=[{"type": "file", "path": path,
                                   "rotate_bytes": 20000,
                                   "rotate_keep": 2}]).start()
        # Rounds, each waited for: a sink batch is never split across
        # files, and on a loaded machine 120 quick creates could arrive as
        # two or three big batches, too few rotations for this test.
        for r in range(6):
            for i in range(20 * r, 20 * r + 20):
                self.api.create("pods", pod("r-%03d" % i))
            last = "r-%03d" % (20 * r + 19)
            wait_for(lambda: any(e["name"] == last
                                 for e in read_events(path)),
                     what="event %s" % last)
        self.assertEqual(agent.stop(), 0)
        self.assertTrue(os.path.exists(path + ".1"))
        self.assertTrue(os.path.exists(path + ".2"))
        self.assertFalse(os.path.exists(path + ".3"), "rotate_keep = 2")
        for f in (path + ".2", path + ".1", path):
            data = open(f, "rb").read()
            self.assertTrue(data.endswith(b"\n"), "whole lines only")
        events = read_events(path)
        names = [e["name"] for e in events]
        # The kept files hold the newest events, contiguous and in order.
        self.assertGreater(len(names), 10)
        self.assertEqual(names, ["r-%03d" % i
                                 for i in range(120 - len(names), 120)])

if __name__ == "__main__":
    main()
