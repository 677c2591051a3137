"""Watch resilience (issue 5, SPEC promises 1, 2, 4, 5): every failure
keeps the watch alive with exactly one reconnect, backoff grows with
jitter and honours Retry-After, server timeouts resume from the last RV
(bookmarks included) without replay, 410 relists with a diff, stalls are
detected, 401 re-reads a rotated token, 403 says what RBAC must allow."""
import os
import time

from kwb import TestCase, main, metric, pod, wait_for


def watches(api, resource="/api/v1/pods"):
    return [r for r in api.request_log()
            if r.get("watch") and r["path"] == resource]


class Resilience(TestCase):
    api_options = {"bookmark_interval": 0.3}

    def make_and_wait(self, agent, name, n):
        self.api.create("pods", pod(name))
        agent.wait_events(n)

    def test_every_failure_keeps_the_watch_alive(self):
        agent = self.agent(metrics=True).start()
        wait_for(lambda: watches(self.api), what="first watch")
        n = 0
        faults = [
            lambda: self.api.drop_watches("between"),
            lambda: self.api.drop_watches("mid_event"),
            lambda: self.api.drop_watches("mid_chunk"),
            lambda: self.api.drop_watches("between", rst=True),
            lambda: self.api.inject_garbage(),
            lambda: self.api.inject_garbage('{"type":"ADDED","object":{"a":'),
            lambda: (self.api.fail_next(1, code=500, verb="watch"),
                     self.api.drop_watches("between")),
            lambda: (self.api.fail_next(1, code=503, verb="watch",
                                        retry_after=1),
                     self.api.drop_watches("between")),
            lambda: (self.api.fail_next(1, code=429, verb="watch"),
                     self.api.drop_watches("between")),
            lambda: (self.api.fail_next(2, code=504, verb="watch",
                                        hang=0.5),
                     self.api.drop_watches("clean")),
        ]
        for i, fault in enumerate(faults):
            before = len(watches(self.api))
            fault()
            n += 1
            self.make_and_wait(agent, "after-fault-%d" % i, n)
            wait_for(lambda: len(watches(self.api)) > before,
                     what="reconnect after fault %d" % i)
        ms = agent.metrics()
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), len(faults))
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)
        self.assertLessEqual(self.api.watch_counts()["max"].get("pods", 0), 1,
                             "never two parallel watches of one resource")
        reqs = len(watches(self.api))
        total = sum(metric(ms, "kwb_watch_reconnects_total",
                           watch="v1/pods", reason=r)
                    for r in ("timeout", "error", "expired", "stall"))
        self.assertGreaterEqual(total, len(faults))
        self.assertLessEqual(total, reqs - 1)
        log = agent.log()
        self.assertIn("invalid watch event", log)
        self.assertIn("503", log)

    def test_backoff_grows_and_honours_retry_after(self):
        agent = self.agent(watch_defaults={
            "backoff": {"initial_seconds": 0.2, "factor": 2.0,
                        "jitter": 0.0, "max_seconds": 1.0}}).start()
        wait_for(lambda: watches(self.api), what="first watch")
        self.api.clear_request_log()
        self.api.fail_next(5, code=500, verb="watch")
        self.api.drop_watches("between")
        wait_for(lambda: len([r for r in watches(self.api)
                              if r["status"] == 200]) >= 1, 20,
                 what="recovery")
        ts = [r["time"] for r in watches(self.api)]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        # Delays 0.2, 0.4, 0.8, 1.0 (cap), 1.0 between the six requests.
        want = [0.2, 0.4, 0.8, 1.0, 1.0]
        self.assertGreaterEqual(len(gaps), 5, ts)
        for g, w in zip(gaps, want):
            self.assertGreaterEqual(g, w * 0.9, (gaps, want))
        # Retry-After is a lower bound on the next attempt.
        self.api.clear_request_log()
        self.api.fail_next(1, code=429, verb="watch", retry_after=2)
        self.api.drop_watches("between")
        wait_for(lambda: len(watches(self.api)) >= 2, 20, what="retry")
        ts = [r["time"] for r in watches(self.api)]
        self.assertGreaterEqual(ts[1] - ts[0], 1.9)
        self.make_and_wait(agent, "alive", 1)
        agent.stop()

    def test_server_timeouts_resume_from_last_rv_without_replay(self):
        for i in range(5):
            self.api.create("pods", pod("old-%d" % i))
        agent = self.agent(metrics=True, watch_defaults={
            "timeout_min_seconds": 1, "timeout_max_seconds": 1}).start()
        agent.wait_events(5)
        # A few clean server closes (timeoutSeconds=1), with bookmarks and
        # some changes in between.
        for i in range(3):
            time.sleep(1.2)
            self.api.create("pods", pod("new-%d" % i))
        agent.wait_events(8)
        # A change elsewhere moves the global RV: only a bookmark can
        # carry it to the pods watch.
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "elsewhere", "namespace": "default"}})
        time.sleep(2.5)
        ms = agent.metrics()
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 8)
        self.assertNoDuplicates(events)
        self.assertTrue(all(e["origin"] == "watch" for e in events[5:]))
        ws = watches(self.api)
        self.assertGreaterEqual(len(ws), 4)
        syncs = [r for r in self.api.request_log()
                 if r["path"] == "/api/v1/pods" and
                 ("limit=" in r["query"] or
                  "sendInitialEvents=true" in r["query"])]
        self.assertEqual(len(syncs), 1, "a timeout never relists")
        ws = [r for r in ws if "sendInitialEvents" not in r["query"]]
        for r in ws:
            self.assertIn("allowWatchBookmarks=true", r["query"])
            self.assertIn("timeoutSeconds=1", r["query"])
            self.assertRegex(r["query"], r"resourceVersion=\d+")
        rvs = [int(r["query"].split("resourceVersion=")[1].split("&")[0])
               for r in ws]
        self.assertEqual(rvs, sorted(rvs))
        self.assertGreater(rvs[-1], max(int(e["resourceVersion"])
                                        for e in events),
                           "bookmarks moved the resume point")
        self.assertGreaterEqual(metric(ms, "kwb_watch_reconnects_total",
                                       watch="v1/pods", reason="timeout"), 3)

    def test_410_during_a_gap_relists_with_a_diff(self):
        for i in range(6):
            self.api.create("pods", pod("p-%d" % i))
        agent = self.agent(metrics=True).start()
        agent.wait_events(6)
        # The agent sees nothing while history moves on and is compacted.
        self.api.stall_watches()
        time.sleep(0.3)
        self.api.create("pods", pod("born"))
        self.api.patch("pods", "p-1", {"metadata": {"labels": {"v": "2"}}})
        self.api.delete("pods", "p-2")
        self.api.compact()
        self.api.unstall_watches()
        self.api.drop_watches("between")
        agent.wait_events(9)
        time.sleep(0.5)
        ms = agent.metrics()
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 9)
        self.assertNoDuplicates(events)
        diff = sorted((e["type"], e["name"], e["origin"])
                      for e in events[6:])
        self.assertEqual(diff, [("ADDED", "born", "list"),
                                ("DELETED", "p-2", "list"),
                                ("MODIFIED", "p-1", "list")])
        self.assertMatchesServer(events)
        self.assertEqual(metric(ms, "kwb_watch_expired_total",
                                watch="v1/pods"), 1)
        self.assertEqual(metric(ms, "kwb_watch_relists_total",
                                watch="v1/pods"), 1)

    def test_stalled_watch_is_restarted(self):
        agent = self.agent(metrics=True, watch_defaults={
            "stall_timeout_seconds": 2}).start()
        wait_for(lambda: watches(self.api), what="first watch")
        self.api.stall_watches(seconds=3)
        self.api.create("pods", pod("during-stall"))
        agent.wait_events(1, timeout=20)
        ms = agent.metrics()
        agent.stop()
        self.assertGreaterEqual(metric(ms, "kwb_watch_reconnects_total",
                                       watch="v1/pods", reason="stall"), 1)
        self.assertIn("stall", agent.log())

    def test_401_rereads_rotated_token(self):
        self.api.stop()
        self.api = type(self.api)(token="first-secret-token",
                                  bookmark_interval=0.3).start()
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write("first-secret-token\n")
        agent = self.agent(cluster_extra={"token_file": token_file}).start()
        self.make_and_wait(agent, "a", 1)
        # Rotation: the server accepts only the new token; the file is
        # rewritten, and the open watch is cut.
        with open(token_file + ".new", "w") as f:
            f.write("second-secret-token\n")
        os.rename(token_file + ".new", token_file)
        self.api.set_token("second-secret-token")
        self.api.drop_watches("between")
        self.make_and_wait(agent, "b", 2)
        agent.stop()
        self.assertEqual([e["name"] for e in agent.events()], ["a", "b"])
        log = agent.log()
        self.assertNotIn("first-secret-token", log)
        self.assertNotIn("second-secret-token", log)

    def test_connect_failure_retries_until_the_server_is_up(self):
        from kwb import free_port
        port = free_port()
        self.api.stop()
        # Nothing listens yet: connection refused, logged, retried.
        self.api = type(self.api)(port=port, bookmark_interval=0.3)
        self.api.port = port
        agent = self.agent(metrics=True)
        agent.start()
        wait_for(lambda: "Connection refused" in agent.log() or
                 "Couldn't connect" in agent.log(), what="connect error")
        time.sleep(1.0)
        self.assertTrue(agent.alive())
        self.api.start()
        self.api.create("pods", pod("hello"))
        agent.wait_events(1, timeout=30)
        self.assertEqual(agent.stop(), 0)
        self.assertEqual([e["name"] for e in agent.events()], ["hello"])

    def test_403_names_what_rbac_must_allow_and_recovers(self):
        self.api.forbid("pods", verbs=["list", "watch"])
        agent = self.agent().start()
        wait_for(lambda: "403" in agent.log(), what="403 logged")
        time.sleep(0.5)
        self.api.create("pods", pod("x"))
        self.assertEqual(agent.events(), [])
        log = agent.log()
        self.assertIn("list and watch", log)
        self.assertIn("'pods'", log)
        self.assertIn("all namespaces", log)
        self.api.allow()
        agent.wait_events(1, timeout=30)
        self.assertTrue(agent.alive())
        agent.stop()


if __name__ == "__main__":
    main()
