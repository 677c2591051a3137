#!/usr/bin/env python3
"""The Kafka sink inside the real agent, against the test API server and
librdkafka's mock cluster (kcat reads the topics back):

- every change reaches Kafka once, key = uid, the SPEC's headers, one
  object's changes in one partition in resourceVersion order, the same
  events as a file sink next to it;
- with every broker down the checkpoint does not move past undelivered
  events, and after recovery everything is there, once; brokers going
  down and up in the middle of a burst lose nothing;
- an event over message.max.bytes goes to the dead-letter file with
  librdkafka's error as the reason, is counted, and the agent goes on;
- SIGKILL while events wait for Kafka, then a restart: nothing lost;
- SIGTERM with every broker down: exit at the shutdown deadline, and the
  next run delivers the rest exactly once;
- a watch's own `topic` overrides the sink's topic (template);
- --check validates the sink's librdkafka properties offline, with quoted
  names, and names a bad one with FILE:LINE.
"""

import json
import os
import subprocess
import sys
import time

from kwb import (BINARY, MULT, TestCase, key, main, metric, pod, read_one,
                 wait_for, watch_conf)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402

TOPIC = "k8s.pods"


class KafkaAgent(TestCase):
    def setUp(self):
        super().setUp()
        self.mock = ku.KafkaMock(topics={TOPIC: 4})
        self.dead_letter = os.path.join(self.tmp, "kafka-dead.jsonl")
        self.files = os.path.join(self.tmp, "events.jsonl")

    def tearDown(self):
        self.mock.close()
        super().tearDown()

    def start(self, metrics=False, file_sink=True, **props):
        sink = {"type": "kafka", "brokers": self.mock.bootstrap,
                "topic": "k8s.{resource}",
                "dead_letter_path": self.dead_letter}
        if props:
            sink["properties"] = props
        sinks = [sink]
        if file_sink:
            sinks.insert(0, {"type": "file", "path": self.files})
        self.agent_ = self.agent(
            sinks=sinks,
            metrics=metrics,
            pipeline={"retry_initial_seconds": 0.2,
                      "retry_max_seconds": 1.0})
        self.agent_.start()
        wait_for(lambda: any(r["path"].endswith("/pods") and
                             "watch" in r.get("query", "")
                             for r in self.api.request_log()), 20,
                 what="the agent's watch")
        return self.agent_

    def kafka_events(self, expect=None, seconds=30):
        """Events in the topic, checked against their message: key = uid,
        headers = the event's fields. In partition/offset order."""
        msgs = ku.consume(self.mock.bootstrap, TOPIC, expect=expect,
                          seconds=seconds)
        events = []
        partition_of = {}
        for m in sorted(msgs, key=lambda x: (x["partition"], x["offset"])):
            e = json.loads(m["payload"])
            self.assertEqual(m["key"], e["uid"])
            self.assertEqual(m["header_list"][0::2],
                             ["type", "kind", "namespace", "cluster",
                              "resourceVersion"])
            h = m["headers"]
            self.assertEqual(h["type"], e["type"])
            self.assertEqual(h["kind"], "Pod")
            self.assertEqual(h["namespace"], e["namespace"])
            self.assertEqual(h["cluster"], "test-cluster")
            self.assertEqual(h["resourceVersion"], e["resourceVersion"])
            self.assertEqual(partition_of.setdefault(e["uid"],
                                                     m["partition"]),
                             m["partition"])
            events.append(e)
        return events

    def wait_kafka(self, n, seconds=30):
        evs = self.kafka_events(expect=n, seconds=seconds)
        if len(evs) < n:
            raise AssertionError("%d of %d events in Kafka; agent log:\n%s"
                                 % (len(evs), n, self.agent_.log()[-4000:]))
        return evs

    def dead_letters(self):
        return read_one(self.dead_letter)

    def make_changes(self, prefix, n, patch=0, delete=0):
        """n creates, then patches and deletes of the first ones. Returns
        the (uid, resourceVersion, type) of each change, from the server's
        answers."""
        names = ["%s-%d" % (prefix, i) for i in range(n)]
        changes = []

        def note(obj, type_):
            md = obj["metadata"]
            changes.append((md["uid"], md["resourceVersion"], type_))
        for name in names:
            note(self.api.create("pods", pod(name)), "ADDED")
        for name in names[:patch]:
            note(self.api.patch("pods", name,
                                {"metadata": {"labels": {"v": "2"}}}),
                 "MODIFIED")
        for name in names[:delete]:
            note(self.api.delete("pods", name), "DELETED")
        return changes

    def emitted(self, agent):
        ms = agent.metrics()
        return sum(v for (name, labels), v in ms.items()
                   if name == "kwb_events_emitted_total")

    def test_changes_reach_kafka_once_in_order(self):
        agent = self.start()
        changes = self.make_changes("web", 12, patch=6, delete=3)
        self.wait_kafka(len(changes))
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertEqual(sorted(map(key, events)), sorted(changes))
        self.assertNoDuplicates(events)
        self.assertPerObjectOrder(events)
        for e in events:
            self.assertEnvelope(e)
        self.assertMatchesServer(events)
        # The same events as the file sink.
        self.assertEqual(sorted(map(key, events)),
                         sorted(map(key, agent.events())))
        self.assertEqual(self.dead_letters(), [])

    def test_brokers_down_then_back(self):
        agent = self.start()
        self.wait_kafka(len(self.make_changes("before", 5)))
        ckpt_before = wait_for(lambda: agent.checkpoint(), 10,
                               what="a checkpoint")
        rv_before = int(self.api.resource_version())

        self.mock.cmd("all-down")
        changes = self.make_changes("during", 20, patch=5, delete=2)
        n = 5 + len(changes)
        agent.wait_events(n)  # the file sink has them all
        # Checkpoints keep being written, but never past an event Kafka
        # has not acknowledged.
        for _ in range(int(10 * MULT)):
            rv, _objs = agent.checkpoint()
            self.assertLessEqual(int(rv), rv_before)
            time.sleep(0.2)
        self.assertTrue(agent.alive())

        self.mock.cmd("all-up")
        events = self.wait_kafka(n, seconds=60)
        wait_for(lambda: int(agent.checkpoint()[0]) >
                 int(ckpt_before[0]), 20, what="the checkpoint to move")
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertEqual(len(events), n)
        self.assertNoDuplicates(events)
        self.assertPerObjectOrder(events)
        self.assertMatchesServer(events)
        self.assertTrue(set(changes) <= set(map(key, events)))
        self.assertEqual(sorted(map(key, events)),
                         sorted(map(key, agent.events())))
        self.assertIn("all brokers down", agent.log())

    def test_brokers_down_mid_burst(self):
        # The cluster goes away while events are being produced and comes
        # back while the burst goes on. Nothing is lost. (The mock cluster
        # only deduplicates transactional producers, so a batch whose
        # answer was cut off may be stored twice: at-least-once.)
        agent = self.start()
        changes = []
        for i in range(300):
            if i == 100:
                self.mock.cmd("all-down")
            if i == 200:
                self.mock.cmd("all-up")
            changes += self.make_changes("burst-%d" % i, 1)
            if i % 2:  # earlier objects change again, across the outage
                obj = self.api.patch("pods", "burst-%d-0" % (i // 2),
                                     {"metadata": {"labels": {"i": str(i)}}})
                changes.append((obj["metadata"]["uid"],
                                obj["metadata"]["resourceVersion"],
                                "MODIFIED"))
            time.sleep(0.005)
        agent.wait_events(len(changes))  # the file sink
        expected = set(changes)

        def all_there():
            return expected <= set(map(key, self.kafka_events()))
        wait_for(all_there, 60, interval=0.5,
                 what="every change of the burst in Kafka")
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertEqual(set(map(key, events)), expected)
        self.assertEqual(set(map(key, events)), set(map(key, agent.events())))
        # Per object, first deliveries are in resourceVersion order.
        first, seen = [], set()
        for e in events:
            if key(e) not in seen:
                seen.add(key(e))
                first.append(e)
        self.assertPerObjectOrder(first)
        self.assertMatchesServer(events)

    def test_too_large_goes_to_dead_letter(self):
        agent = self.start(metrics=True, message_max_bytes=20000)
        wait_for(lambda: agent.http_status("/readyz") == 200, 20,
                 what="/readyz 200 with the Kafka sink connected")
        big = pod("big")
        big["metadata"]["annotations"] = {"blob": "x" * 30000}
        self.api.create("pods", big)
        dl = wait_for(lambda: self.dead_letters(), 20, what="a dead letter")
        self.assertEqual(len(dl), 1)
        self.assertEqual(dl[0]["sink"], "kafka")
        self.assertIn("MSG_SIZE_TOO_LARGE", dl[0]["reason"])
        self.assertEqual(dl[0]["event"]["name"], "big")
        self.assertEqual(dl[0]["event"]["type"], "ADDED")
        # The agent goes on.
        total = 1 + len(self.make_changes("small", 4, patch=2))
        events = self.wait_kafka(total - 1)
        self.assertTrue(agent.alive())
        ms = agent.metrics()
        self.assertEqual(metric(ms, "kwb_sink_dead_letter_total",
                                sink="kafka"), 1)
        self.assertEqual(metric(ms, "kwb_sink_acked_total", sink="kafka"),
                         total - 1)
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertNoDuplicates(events)
        self.assertNotIn("big", [e["name"] for e in events])
        # Nothing lost: Kafka and the dead letter cover every change.
        self.assertEqual(sorted(map(key, events + [dl[0]["event"]])),
                         sorted(map(key, agent.events())))

    def test_sigkill_during_delivery_then_restart(self):
        # Kafka alone, so that nothing but its acks holds the checkpoint.
        agent = self.start(metrics=True, file_sink=False)
        first = self.make_changes("first", 5)
        self.wait_kafka(len(first))
        last_rv = max(int(rv) for _, rv, _ in first)
        wait_for(lambda: (agent.checkpoint() or ("0",))[0] and
                 int(agent.checkpoint()[0]) >= last_rv, 10,
                 what="the checkpoint past the delivered events")
        self.mock.cmd("all-down")
        pending = self.make_changes("pending", 10, patch=3, delete=1)
        n = len(first) + len(pending)
        wait_for(lambda: self.emitted(agent) >= n, 20,
                 what="the agent to emit every change")
        agent.kill()

        self.mock.cmd("all-up")
        # The killed agent delivered none of them.
        self.assertEqual(sorted(map(key, self.kafka_events(expect=5))),
                         sorted(first))
        agent.start()
        expected = set(first) | set(pending)

        def all_there():
            return expected <= set(map(key, self.kafka_events()))
        wait_for(all_there, 60, interval=0.5,
                 what="every change in Kafka after the restart")
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertTrue(expected <= set(map(key, events)))
        self.assertMatchesServer(events)
        # After a crash only events past the checkpoint may repeat: the
        # five delivered before the outage are not among them.
        counts = {}
        for k in map(key, events):
            counts[k] = counts.get(k, 0) + 1
        self.assertEqual([counts[k] for k in sorted(first)], [1] * 5)

    def test_sigterm_with_brokers_down_then_restart(self):
        # A graceful stop cannot flush to a dead cluster: the agent exits
        # at its shutdown deadline with the checkpoint before the
        # undelivered events, and the next run delivers them, once.
        sink = {"type": "kafka", "brokers": self.mock.bootstrap,
                "topic": "k8s.{resource}"}
        self.agent_ = agent = self.agent(
            sinks=[sink], metrics=True,
            pipeline={"shutdown_timeout_ms": 1500})
        agent.start()
        first = self.make_changes("first", 4)
        self.wait_kafka(len(first))
        self.mock.cmd("all-down")
        pending = self.make_changes("pending", 6, patch=2)
        wait_for(lambda: self.emitted(agent) >= len(first) + len(pending),
                 20, what="the agent to emit every change")
        agent.stop(timeout=20)
        self.assertIn("shutdown deadline", agent.log())

        self.mock.cmd("all-up")
        agent.start()
        expected = sorted(first + pending)
        wait_for(lambda: sorted(map(key, self.kafka_events())) == expected,
                 60, interval=0.5, what="every change once in Kafka")
        self.assertEqual(agent.stop(), 0)
        events = self.kafka_events()
        self.assertEqual(sorted(map(key, events)), expected)
        self.assertPerObjectOrder(events)
        self.assertMatchesServer(events)

    def test_watch_topic(self):
        sink = {"type": "kafka", "brokers": self.mock.bootstrap,
                "topic": "k8s.{resource}"}
        self.agent_ = agent = self.agent(
            watches=[watch_conf("v1", "pods"),
                     watch_conf("v1", "namespaces", topic="cluster-ns")],
            sinks=[sink]).start()
        self.api.create("namespaces", {"apiVersion": "v1",
                                       "kind": "Namespace",
                                       "metadata": {"name": "team-a"}})
        changes = self.make_changes("p", 3)
        self.wait_kafka(len(changes))
        nss = [json.loads(m["payload"]) for m in
               ku.consume(self.mock.bootstrap, "cluster-ns", expect=1)]
        self.assertEqual(agent.stop(), 0)
        self.assertIn("team-a", [e["name"] for e in nss])
        self.assertTrue(all(e["kind"] == "Namespace" for e in nss))
        self.assertEqual(sorted(map(key, self.kafka_events())),
                         sorted(changes))
        self.assertEqual(ku.consume(self.mock.bootstrap, "k8s.namespaces"),
                         [])

    def test_check_validates_properties(self):
        agent = self.agent(sinks=[{"type": "kafka",
                                   "brokers": self.mock.bootstrap,
                                   "topic": "k8s.{resource}"}])
        with open(agent.conf_path) as f:
            text = f.read()
        anchor = 'topic = "k8s.{resource}";'
        self.assertIn(anchor, text)

        def check(props):
            with open(agent.conf_path, "w") as f:
                f.write(text.replace(anchor, anchor + " properties = { %s };"
                                     % props))
            return subprocess.run([BINARY, "--config", agent.conf_path,
                                   "--check"], capture_output=True,
                                  text=True, timeout=30 * MULT)

        res = check('"linger.ms" = 20; "compression.type" = "zstd"; '
                    '"sasl.password" = "p4ss-w0rd-x"; acks = "all";')
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("p4ss-w0rd-x", res.stdout + res.stderr)

        res = check('"linger.ms" = 20;\n  "no.such.property" = "x";')
        self.assertNotEqual(res.returncode, 0)
        self.assertRegex(res.stderr, r"agent\.conf:\d+: ")
        self.assertIn("no.such.property", res.stderr)

        res = check('"enable.idempotence" = true; acks = 1;')
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("acks", res.stderr)
        # --check never contacted the brokers: nothing produced anywhere.
        self.assertEqual(ku.consume(self.mock.bootstrap, TOPIC), [])


if __name__ == "__main__":
    main()
