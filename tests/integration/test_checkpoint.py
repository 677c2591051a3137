"""Checkpoints and restarts (issue 6, SPEC promises 1-3): graceful restarts
deliver the gap once and replay nothing; a 410 after the gap becomes a
list diff; SIGKILL in a burst loses nothing and repeats only what follows
the checkpoint in force; corrupt checkpoints are detected and relisted;
initial = "skip"."""
import collections
import os
import random
import threading
import time

from kwb import TestCase, key, main, pod, wait_for


class Checkpoints(TestCase):

    def test_graceful_restart_delivers_the_gap_once(self):
        agent = self.agent().start()
        for i in range(10):
            self.api.create("pods", pod("keep-%d" % i))
        agent.wait_events(10)
        self.assertEqual(agent.stop(), 0)
        before = agent.events()
        ckpt_rv, objs = agent.checkpoint()
        self.assertEqual(ckpt_rv, max((e["resourceVersion"] for e in before),
                                      key=int))
        self.assertEqual(len(objs), 10)

        # While the agent is down: 3 new, 3 changed, 2 deleted.
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
        self.assertPerObjectOrder(events)
        self.assertMatchesServer(events)
        self.assertIn("resuming from checkpoint", agent.log())

    def test_restart_after_compaction_is_a_list_diff(self):
        agent = self.agent().start()
        for i in range(6):
            self.api.create("pods", pod("p-%d" % i))
        agent.wait_events(6)
        self.assertEqual(agent.stop(), 0)

        self.api.create("pods", pod("born-while-down"))
        self.api.patch("pods", "p-0", {"metadata": {"labels": {"x": "1"}}})
        self.api.patch("pods", "p-0", {"metadata": {"labels": {"x": "2"}}})
        self.api.delete("pods", "p-5")
        # Forget history: the checkpoint's RV is now too old.
        self.api.compact()

        agent.start()
        agent.wait_events(9)
        time.sleep(0.5)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 9, [key(e) for e in events[6:]])
        diff = events[6:]
        self.assertTrue(all(e["origin"] == "list" for e in diff))
        by_type = {e["type"]: e for e in diff}
        self.assertEqual(sorted(by_type), ["ADDED", "DELETED", "MODIFIED"])
        self.assertEqual(by_type["ADDED"]["name"], "born-while-down")
        self.assertEqual(by_type["MODIFIED"]["name"], "p-0")
        self.assertEqual(by_type["MODIFIED"]["object"]["metadata"]["labels"]
                         ["x"], "2", "the current state, not each step")
        self.assertEqual(by_type["DELETED"]["name"], "p-5")
        self.assertEqual(by_type["DELETED"]["object"]["metadata"]["name"],
                         "p-5")
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)
        self.assertIn("expired", agent.log())

    def test_crash_loop_loses_nothing(self):
        rnd = random.Random(7)
        self.api.bulk("create", 200, prefix="base", size=1500)
        agent = self.agent().start()
        agent.wait_events(200)
        stop = threading.Event()

        def churn():
            while not stop.is_set():
                op = rnd.choice(["create", "modify", "modify", "delete"])
                self.api.bulk(op, 40, prefix="burst", size=1500)
                time.sleep(0.02)
        t = threading.Thread(target=churn)
        t.start()
        kills = []
        try:
            for _ in range(10):
                time.sleep(rnd.uniform(0.2, 0.8))
                agent.kill()
                ck = agent.checkpoint()
                kills.append((len(agent.events()),
                              int(ck[0]) if ck else None))
                agent.start()
        finally:
            stop.set()
            t.join()
        # Let it catch up with the final state, then stop cleanly.
        final_rv = self.api.resource_version()
        wait_for(lambda: (agent.checkpoint() or ("0",))[0] and
                 int(agent.checkpoint()[0]) >= final_rv, 60,
                 what="checkpoint to reach the server's RV")
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertMatchesServer(events)
        self.assertPerObjectOrder(
            [e for e in dedup_keep_first(events)])
        # Every repeat lies after the checkpoint in force at the kill
        # before it.
        seen = set()
        bounds = kills + [(len(events), None)]
        start = 0
        for n, (end, _) in enumerate(bounds):
            ckpt = kills[n - 1][1] if n > 0 else None
            for e in events[start:end]:
                k = key(e)
                if k in seen:
                    self.assertIsNotNone(ckpt, "duplicate before any kill")
                    self.assertGreater(int(e["resourceVersion"]), ckpt,
                                       "repeat of %r not after checkpoint"
                                       % (k,))
                seen.add(k)
            start = end

    def test_corrupt_checkpoint_relists(self):
        agent = self.agent().start()
        for i in range(5):
            self.api.create("pods", pod("c-%d" % i))
        agent.wait_events(5)
        self.assertEqual(agent.stop(), 0)
        path = os.path.join(agent.state_dir, "v1_pods.ckpt")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        self.api.create("pods", pod("after"))
        agent.start()
        # Everything again (nothing is known), nothing lost.
        agent.wait_events(11)
        agent.stop()
        log = agent.log()
        self.assertIn("checkpoint unusable", log)
        self.assertIn("truncated", log)
        events = agent.events()
        self.assertMatchesServer(events)
        relisted = events[5:]
        self.assertEqual(sorted(e["name"] for e in relisted),
                         sorted(["c-%d" % i for i in range(5)] + ["after"]))
        # The next start has a good checkpoint again.
        agent.start()
        time.sleep(1.0)
        agent.stop()
        self.assertEqual(len(agent.events()), 11)

    def test_initial_skip_records_without_emitting(self):
        for i in range(4):
            self.api.create("pods", pod("old-%d" % i))
        agent = self.agent(initial="skip").start()
        wait_for(lambda: agent.checkpoint() is not None,
                 what="first checkpoint")
        self.api.patch("pods", "old-1", {"metadata": {"labels": {"v": "2"}}})
        self.api.create("pods", pod("fresh"))
        events = agent.wait_events(2)
        agent.stop()
        agent.start()
        time.sleep(1.0)
        agent.stop()
        events = agent.events()
        self.assertEqual([(e["type"], e["name"]) for e in events],
                         [("MODIFIED", "old-1"), ("ADDED", "fresh")])
        self.assertEqual(len(agent.checkpoint()[1]), 5)


def dedup_keep_first(events):
    seen = set()
    for e in events:
        k = key(e)
        if k not in seen:
            seen.add(k)
            yield e


if __name__ == "__main__":
    main()
