"""The configmap state backend (issue 9): checkpoints in ConfigMaps
(state.backend = "configmap") in namespace kwb-state, name prefix kwb-it.

- A graceful restart delivers the gap once, resumed by watch; the ConfigMap
  holds the file backend's text (SHA-256 trailer valid) at the last RV with
  every known object, data.objects "included"; no checkpoint file appears.
- A corrupted ConfigMap is detected: everything is relisted, nothing lost,
  and the next checkpoint is good again.
- A known-object set too large for a ConfigMap (> 900 KiB of text) keeps
  only the resourceVersion (data.objects "omitted", count 0). A restart
  resumes by watch from it (the gap once); a restart after the RV expired
  relists against an empty set: every live object again as ADDED, and an
  object deleted during the downtime is not reported (the documented
  trade-off).
- Two replicas with leader election share the state: after kill -9 the new
  leader resumes from the old leader's checkpoint (deletions during the gap
  are delivered, no relist); after SIGTERM nothing at all is repeated.
"""
import collections
import os
import time

from agentpair import (CM_NAMESPACE, LEASE_S, RETRY_S, cm_checkpoint,
                       cm_replica, wait_leader, wait_standby)
from kwb import TestCase, main, pod, wait_for


class ConfigMapState(TestCase):

    def test_graceful_restart_delivers_the_gap_once(self):
        agent = cm_replica(self, "solo", leader=False).start()
        for i in range(10):
            self.api.create("pods", pod("keep-%d" % i))
        agent.wait_events(10)
        self.assertEqual(agent.stop(), 0)
        before = agent.events()
        cm, rv, objs, ok = cm_checkpoint(self.api)
        self.assertTrue(ok, "SHA-256 trailer of data.checkpoint")
        # Bookmarks may carry it past the last event (the ConfigMap writes
        # themselves are revisions of the server).
        self.assertGreaterEqual(int(rv), max(int(e["resourceVersion"])
                                             for e in before))
        self.assertEqual(objs, {e["uid"]: e["resourceVersion"]
                                for e in before})
        self.assertEqual(cm["data"]["objects"], "included")
        self.assertEqual(cm["metadata"]["namespace"], CM_NAMESPACE)
        self.assertEqual(cm["metadata"]["name"], "kwb-it-v1-pods")
        self.assertEqual(cm["metadata"]["labels"]
                         ["app.kubernetes.io/component"], "checkpoint")
        self.assertEqual(cm["metadata"]["annotations"]
                         ["kube-watch-bridge/watch"], "v1/pods")
        self.assertTrue(cm["data"]["checkpoint"].startswith(
            "KWB-CHECKPOINT 1\nwatch v1/pods\nrv %s\ncount 10\n" % rv))

        for i in range(3):
            self.api.create("pods", pod("new-%d" % i))
        for i in range(3):
            self.api.patch("pods", "keep-%d" % i,
                           {"metadata": {"labels": {"rev": "2"}}})
        for i in range(8, 10):
            self.api.delete("pods", "keep-%d" % i)

        agent.start()
        agent.wait_events(18)
        time.sleep(0.5)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 18, "the gap's 8 changes, once each")
        after = events[10:]
        self.assertTrue(all(e["origin"] == "watch" for e in after),
                        "resumed by watch: nothing replayed by a list")
        self.assertEqual(collections.Counter(e["type"] for e in after),
                         {"ADDED": 3, "MODIFIED": 3, "DELETED": 2})
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)
        self.assertIn("resuming from checkpoint", agent.log())
        _, rv, objs, ok = cm_checkpoint(self.api)
        self.assertTrue(ok)
        self.assertEqual(len(objs), 11)
        self.assertGreaterEqual(int(rv), int(events[-1]["resourceVersion"]))
        self.assertFalse(os.path.exists(os.path.join(agent.state_dir,
                                                     "v1_pods.ckpt")),
                         "no checkpoint file with the configmap backend")

    def test_corrupt_configmap_relists(self):
        agent = cm_replica(self, "solo", leader=False).start()
        for i in range(5):
            self.api.create("pods", pod("c-%d" % i))
        agent.wait_events(5)
        self.assertEqual(agent.stop(), 0)
        cm = cm_checkpoint(self.api)[0]
        text = cm["data"]["checkpoint"]
        # One object's resourceVersion changed: the trailer no longer
        # matches.
        i = text.index("\t") + 1
        cm["data"]["checkpoint"] = text[:i] + "9" + text[i + 1:]
        self.api.update("configmaps", cm, namespace=CM_NAMESPACE)
        self.assertFalse(cm_checkpoint(self.api)[3])
        self.api.create("pods", pod("after"))

        agent.start()
        agent.wait_events(11)
        wait_for(lambda: cm_checkpoint(self.api)[3] and
                 len(cm_checkpoint(self.api)[2]) == 6, 10,
                 what="a good checkpoint again")
        self.assertEqual(agent.stop(), 0)
        log = agent.log()
        self.assertIn("checkpoint unusable", log)
        self.assertIn("checksum mismatch", log)
        events = agent.events()
        self.assertMatchesServer(events)
        relisted = events[5:]
        self.assertEqual(sorted(e["name"] for e in relisted),
                         sorted(["c-%d" % i for i in range(5)] + ["after"]))
        self.assertTrue(all(e["origin"] == "list" and e["type"] == "ADDED"
                            for e in relisted))
        # The next start resumes from the good checkpoint: nothing again.
        agent.start()
        time.sleep(1.0)
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(len(agent.events()), 11)

    def test_oversized_set_keeps_the_rv_only(self):
        # ~3400 pods with ~240-character names: ~1 MB of checkpoint text.
        n = 3400
        self.api.bulk("create", n, prefix="p" + "x" * 229, size=600)
        agent = cm_replica(self, "solo", leader=False).start()
        agent.wait_events(n, timeout=40)

        def rv_only():
            ck = cm_checkpoint(self.api)
            return ck if ck and ck[0]["data"]["objects"] == "omitted" \
                else None
        cm, rv, objs, ok = wait_for(rv_only, 20, what="an RV-only checkpoint")
        self.assertTrue(ok)
        self.assertEqual(objs, {})
        self.assertIn("\ncount 0\n", cm["data"]["checkpoint"])
        self.assertIn("keeps the resourceVersion only", agent.log())
        self.assertEqual(agent.stop(), 0)
        cm, rv, objs, ok = cm_checkpoint(self.api)
        self.assertGreaterEqual(int(rv), max(int(e["resourceVersion"])
                                             for e in agent.events()))

        # Down: three changes; the RV is still in the window, so the
        # restart resumes by watch and delivers exactly them.
        victims = sorted(e["name"] for e in agent.events())[:3]
        self.api.create("pods", pod("small-new"))
        self.api.patch("pods", victims[0], {"metadata": {"labels":
                                                         {"v": "2"}}})
        self.api.delete("pods", victims[1])
        agent.start()
        agent.wait_events(n + 3)
        time.sleep(0.5)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), n + 3)
        self.assertEqual([(e["type"], e["origin"]) for e in events[n:]],
                         [("ADDED", "watch"), ("MODIFIED", "watch"),
                          ("DELETED", "watch")])
        self.assertIn("without its known-object set", agent.log())

        # Since that resume the known set holds only what the watch saw
        # (small-new and victims[0] now): it fits and is stored again.
        seen = {e["uid"]: e["resourceVersion"] for e in events[n:]
                if e["type"] != "DELETED"}
        _, _, objs, _ = wait_for(lambda: cm_checkpoint(self.api), 5)
        self.assertEqual(objs, seen)

        # Down again, then the history is compacted: the RV expires and
        # the relist diffs against that known set.
        self.api.delete("pods", victims[2])
        self.api.create("pods", pod("born-while-down"))
        self.api.compact()
        live = {o["metadata"]["uid"] for o in self.api.list_all("pods")[0]}
        unknown = live - set(seen)
        agent.start()
        agent.wait_events(n + 3 + len(unknown), timeout=40)
        time.sleep(0.5)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        relisted = events[n + 3:]
        self.assertEqual(len(relisted), len(unknown))
        self.assertEqual({e["uid"] for e in relisted}, unknown,
                         "every live object not known at its version "
                         "again")
        self.assertTrue(all(e["type"] == "ADDED" and e["origin"] == "list"
                            for e in relisted))
        # The trade-off: the deletion during the downtime is not reported.
        self.assertNotIn(victims[2], [e["name"] for e in relisted])
        self.assertFalse([e for e in events if e["name"] == victims[2] and
                          e["type"] == "DELETED"])

    def test_concurrent_writer_and_deletion(self):
        """Optimistic concurrency: a ConfigMap changed behind the agent's
        back makes its PUT conflict (409): it re-reads and retries once. A
        ConfigMap deleted behind its back is created again."""
        agent = cm_replica(self, "solo", leader=False).start()
        self.api.create("pods", pod("w-0"))
        agent.wait_events(1)
        cm = wait_for(lambda: cm_checkpoint(self.api), 10)[0]
        cm["metadata"].setdefault("labels", {})["touched"] = "by-test"
        self.api.clear_request_log()
        self.api.update("configmaps", cm, namespace=CM_NAMESPACE)
        self.api.create("pods", pod("w-1"))
        agent.wait_events(2)
        wait_for(lambda: len(cm_checkpoint(self.api)[2]) == 2, 10,
                 what="checkpoint with both pods after the conflict")
        self.assertIn("was changed by someone else", agent.log())
        reqs = [(r["method"], r["status"])
                for r in self.api.request_log()
                if "(checkpoint)" in (r.get("userAgent") or "")]
        i = reqs.index(("PUT", 409))
        self.assertEqual(reqs[i:i + 3],
                         [("PUT", 409), ("GET", 200), ("PUT", 200)])

        self.api.delete("configmaps", cm["metadata"]["name"],
                        namespace=CM_NAMESPACE)
        self.api.create("pods", pod("w-2"))
        agent.wait_events(3)
        wait_for(lambda: (cm_checkpoint(self.api) or (0, 0, {}))[2] and
                 len(cm_checkpoint(self.api)[2]) == 3, 10,
                 what="the ConfigMap created again")
        self.assertEqual(agent.stop(), 0)
        self.assertTrue(cm_checkpoint(self.api)[3])

    def test_failing_writes_back_off(self):
        """Writes that fail are not repeated every checkpoint interval
        (200 ms here): after a failure the backend waits 1 s, 2 s, ...;
        once the API server accepts them again the checkpoint catches up."""
        agent = cm_replica(self, "solo", leader=False).start()
        self.api.create("pods", pod("b-0"))
        agent.wait_events(1)
        wait_for(lambda: cm_checkpoint(self.api), 10)
        self.api.forbid("configmaps", ["update"])
        self.api.clear_request_log()
        start = time.monotonic()
        for i in range(1, 13):
            self.api.create("pods", pod("b-%d" % i))
            time.sleep(0.25)
        agent.wait_events(13)
        tried = [r for r in self.api.request_log()
                 if "(checkpoint)" in (r.get("userAgent") or "")]
        elapsed = time.monotonic() - start
        self.assertTrue(tried and all(r["status"] == 403 for r in tried))
        # 1 + 2 + 4 s of waiting: at most 3 attempts in ~3.2 s (vs ~16
        # without backing off).
        self.assertLessEqual(len(tried), 3 if elapsed < 7 else 4, tried)
        self.assertIn("needs get, create and update on configmaps",
                      agent.log())
        self.api.allow("configmaps")
        wait_for(lambda: len(cm_checkpoint(self.api)[2]) == 13, 20,
                 what="the checkpoint to catch up")
        self.assertEqual(agent.stop(), 0)

    def test_unreadable_configmap_at_start(self):
        """Transient errors reading the checkpoint are retried; when the
        API server keeps failing the agent exits non-zero instead of
        starting over (which would overwrite a good checkpoint)."""
        agent = cm_replica(self, "solo", leader=False).start()
        self.api.create("pods", pod("u-0"))
        agent.wait_events(1)
        self.assertEqual(agent.stop(), 0)
        good = cm_checkpoint(self.api)

        self.api.fail_next(2, code=503, path="/configmaps/", verb="get")
        self.api.create("pods", pod("u-1"))
        agent.start()
        agent.wait_events(2)
        self.assertEqual(agent.stop(), 0)
        self.assertIn("cannot read checkpoint (attempt 2 of 5)", agent.log())
        self.assertEqual([e["origin"] for e in agent.events()],
                         ["list", "watch"], "resumed, not relisted")

        good = cm_checkpoint(self.api)
        self.api.fail_next(100, code=500, path="/configmaps/", verb="get")
        agent.start()
        rc = agent.proc.wait(30)
        agent.proc = None
        self.assertEqual(rc, 1)
        self.assertIn("cannot read checkpoint", agent.log())
        self.api.clear_faults()
        self.assertEqual(cm_checkpoint(self.api)[1], good[1],
                         "the checkpoint was left alone")
        self.assertEqual(len(agent.events()), 2)

        self.api.forbid("configmaps")
        agent.start()
        rc = agent.proc.wait(30)
        agent.proc = None
        self.assertEqual(rc, 1)
        self.assertIn("needs get, create and update on configmaps in "
                      "namespace kwb-state", agent.log())

    def start_pair(self):
        for i in range(6):
            self.api.create("pods", pod("base-%d" % i))
        a = cm_replica(self, "a").start()
        wait_leader(a, 10)
        b = cm_replica(self, "b").start()
        wait_standby(b)
        a.wait_events(6)
        self.api.patch("pods", "base-0", {"metadata": {"labels": {"v": "1"}}})
        a.wait_events(7)
        return a, b

    def test_takeover_after_kill_resumes_from_shared_state(self):
        a, b = self.start_pair()
        # The checkpoint catches up with what a delivered.
        last = int(a.events()[-1]["resourceVersion"])
        wait_for(lambda: int((cm_checkpoint(self.api) or (0, "0"))[1]) >=
                 last, 10, what="a's checkpoint at its last event")
        a.kill()
        _, ckpt_rv, _, ok = cm_checkpoint(self.api)
        self.assertTrue(ok)
        # While nobody leads: a deletion, a creation, a change.
        self.api.delete("pods", "base-1")
        self.api.create("pods", pod("gap-0"))
        self.api.patch("pods", "base-2", {"metadata": {"labels": {"v": "2"}}})
        wait_leader(b, LEASE_S + RETRY_S * 1.2 + 3, "b to take over")
        eb = b.wait_events(3)
        time.sleep(0.5)
        self.assertEqual(b.stop(), 0)
        eb = b.events()
        self.assertEqual([(e["type"], e["name"], e["origin"]) for e in eb],
                         [("DELETED", "base-1", "watch"),
                          ("ADDED", "gap-0", "watch"),
                          ("MODIFIED", "base-2", "watch")],
                         "resumed from a's checkpoint: the gap, nothing else")
        self.assertTrue(all(int(e["resourceVersion"]) > int(ckpt_rv)
                            for e in eb))
        self.assertIn("resuming from checkpoint", b.log())
        self.assertMatchesServer(a.events() + eb)

    def test_sigterm_handover_repeats_nothing(self):
        a, b = self.start_pair()
        self.assertEqual(a.stop(), 0)
        wait_leader(b, RETRY_S * 1.2 + 2, "b to take over after release")
        self.api.create("pods", pod("after-0"))
        self.api.delete("pods", "base-3")
        b.wait_events(2)
        time.sleep(0.5)
        self.assertEqual(b.stop(), 0)
        ea, eb = a.events(), b.events()
        self.assertEqual(len(ea), 7)
        self.assertEqual([(e["type"], e["name"]) for e in eb],
                         [("ADDED", "after-0"), ("DELETED", "base-3")])
        self.assertNoDuplicates(ea + eb)
        self.assertMatchesServer(ea + eb)
        self.assertGreaterEqual(int(cm_checkpoint(self.api)[1]),
                                int(eb[-1]["resourceVersion"]))


if __name__ == "__main__":
    main()
