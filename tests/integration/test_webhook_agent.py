#!/usr/bin/env python3
"""The webhook sink inside the real agent: changes made on the test API
server reach an HTTPS receiver (HMAC-signed, bearer token) exactly once
each, in order per object; a batch answered 400 lands in the dead-letter
file with the status in its reason and the agent goes on; 5xx answers are
retried until a 2xx and then everything is delivered once."""

import json
import os

from kwb import TestCase, main, metric, pod, read_one, wait_for, key
from webhook_receiver import Receiver, make_certs
from webhook_testlib import delivered, events_of

SECRET = b"agent-hmac-secret"
TOKEN = "agent-bearer-token"


class WebhookAgent(TestCase):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(os.path.join(self.tmp, "certs"))
        self.secret_file = os.path.join(self.tmp, "hmac")
        with open(self.secret_file, "wb") as f:
            f.write(SECRET + b"\n")
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.dead_letter = os.path.join(self.tmp, "dead.jsonl")
        self.rx = None

    def tearDown(self):
        if self.rx:
            self.rx.stop()
        super().tearDown()

    def start(self, script=None, metrics=False, pipeline=None, **sink_keys):
        self.rx = Receiver(tls=self.certs, secret=SECRET, token=TOKEN,
                           script=script)
        self.rx.start()
        sink = {"type": "webhook", "url": self.rx.url,
                "ca_file": self.certs["ca"],
                "hmac_secret_file": self.secret_file,
                "bearer_token_file": self.token_file,
                "linger_ms": 20, "retry_initial_ms": 100,
                "retry_max_ms": 500, "dead_letter_path": self.dead_letter}
        sink.update(sink_keys)
        sink = {k: v for k, v in sink.items() if v is not None}
        agent = self.agent(sinks=[sink], metrics=metrics,
                           pipeline=pipeline).start()
        wait_for(lambda: any(r["path"].endswith("/pods") and
                             "watch" in r.get("query", "")
                             for r in self.api.request_log()),
                 what="the agent's watch")
        return agent

    def received(self):
        """Events of the requests answered 2xx, in order."""
        return delivered(self.rx.requests())

    def dead_letters(self):
        return read_one(self.dead_letter)

    def assert_no_secrets_logged(self, agent):
        log = agent.log()
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(SECRET.decode(), log)
        for r in self.rx.requests():
            self.assertNotIn(r["headers"]["x-kwb-signature"], log)

    def test_events_reach_receiver_once(self):
        agent = self.start()
        names = ["web-%d" % i for i in range(12)]
        for n in names:
            self.api.create("pods", pod(n))
        for n in names[:6]:
            self.api.patch("pods", n, {"metadata": {"labels": {"v": "2"}}})
        for n in names[:3]:
            self.api.delete("pods", n)
        wait_for(lambda: len(self.received()) >= 21, 30,
                 what="21 events at the receiver")
        self.assertEqual(agent.stop(), 0)
        events = self.received()
        self.assertEqual(len(events), 21)
        self.assertNoDuplicates(events)
        self.assertPerObjectOrder(events)
        for e in events:
            self.assertEnvelope(e)
        self.assertMatchesServer(events)
        reqs = self.rx.requests()
        self.assertTrue(all(r["sig_ok"] and r["token_ok"] for r in reqs))
        self.assertTrue(all(r["status"] == 200 for r in reqs))
        self.assertEqual(self.dead_letters(), [])
        self.assert_no_secrets_logged(agent)

    def test_400_goes_to_dead_letter_and_agent_continues(self):
        agent = self.start(script=[{"status": 400,
                                    "body": "rejected by schema v7"}])
        self.api.create("pods", pod("first"))
        dl = wait_for(lambda: self.dead_letters(), 20,
                      what="a dead letter")
        self.assertEqual(len(dl), 1)
        self.assertEqual(dl[0]["sink"], "webhook")
        self.assertIn("400", dl[0]["reason"])
        self.assertIn("rejected by schema v7", dl[0]["reason"])
        self.assertEqual(dl[0]["event"]["name"], "first")
        self.assertEqual(dl[0]["event"]["type"], "ADDED")
        # The agent goes on: later changes are delivered.
        for n in ("second", "third"):
            self.api.create("pods", pod(n))
        self.api.patch("pods", "first", {"metadata": {"labels": {"v": "2"}}})
        wait_for(lambda: len(self.received()) >= 3, 20,
                 what="later events at the receiver")
        self.assertEqual(agent.stop(), 0)
        events = self.received()
        self.assertNoDuplicates(events)
        self.assertEqual(sorted((e["name"], e["type"]) for e in events),
                         [("first", "MODIFIED"), ("second", "ADDED"),
                          ("third", "ADDED")])
        self.assertEqual(len(self.dead_letters()), 1)
        # Nothing lost: dead letters and deliveries cover every change.
        all_keys = {key(e) for e in events} | {key(d["event"]) for d in dl}
        self.assertEqual(len(all_keys), 4)
        ms = [r for r in agent.log_records() if r.get("level") == "error"
              and "HTTP 400" in r.get("msg", "")]
        self.assertTrue(ms, agent.log()[-3000:])

    def start_rejecting(self, script, dead_letter_path=None, **kw):
        """An agent whose webhook answers by `script`, one event per
        request, without a dead-letter file unless given: failed events
        are retried by the pipeline (after 0.3 s, doubling up to 1 s)."""
        return self.start(script=script, dead_letter_path=dead_letter_path,
                          batch_max_events=1,
                          pipeline={"retry_initial_seconds": 0.3,
                                    "retry_max_seconds": 1.0}, **kw)

    def change(self, name, versions):
        """Create pod `name`, wait for its ADDED event at the receiver,
        then patch it `versions` - 1 times; the server's RVs in order."""
        created = self.api.create("pods", pod(name))
        rvs = [int(created["metadata"]["resourceVersion"])]
        wait_for(lambda: len(self.received()) >= 1, 20,
                 what="the ADDED event")
        for v in range(2, versions + 1):
            obj = self.api.patch("pods", name,
                                 {"metadata": {"labels": {"v": str(v)}}})
            rvs.append(int(obj["metadata"]["resourceVersion"]))
        return rvs

    def answered(self):
        """(status, [resourceVersion...]) of every request, in order."""
        return [(r["status"],
                 [int(e["resourceVersion"]) for e in
                  events_of(r["body"], r["headers"]["content-type"])])
                for r in self.rx.requests()]

    def test_permanent_failure_without_dead_letter_keeps_object_order(self):
        # No dead_letter_path: the failed event is resubmitted alone after
        # the pipeline's backoff, as often as it takes, and the changes
        # after it follow in order once it is through.
        # The first 400 comes after a second, so that the next change is
        # queued in the sink behind it (the sink holds one batch besides
        # the one in flight). The sink must not send it: it hands it back
        # unsent, and the pipeline sends it after the failed one. (The old
        # sink sent it - the 200 of the third request - before the failed
        # change was through, and again after it.) The change after that
        # then fails twice (the 400s of the script's end).
        agent = self.start_rejecting([{"status": 200},
                                      {"status": 400, "body": "not now",
                                       "delay": 1.0},
                                      {"status": 200},
                                      {"status": 400, "body": "not yet"},
                                      {"status": 400, "body": "still not"}],
                                     metrics=True)
        server_rvs = self.change("x", 5)
        newest = max(server_rvs)
        wait_for(lambda: (self.received() and
                          int(self.received()[-1]["resourceVersion"]) ==
                          newest and
                          len([r for r in self.rx.requests()
                               if r["status"] == 400]) == 3), 30,
                 what="the newest change last, after three 400s")
        ms = agent.metrics()
        self.assertEqual(agent.stop(), 0)
        answered = self.answered()
        acked = [rv for status, rvs in answered if status == 200
                 for rv in rvs]
        # What the receiver acknowledged: every change once, in order.
        self.assertEqual(acked, sorted(server_rvs), answered)
        # No change after a failed one was acknowledged before it.
        for i, (status, rvs) in enumerate(answered):
            if status != 400:
                continue
            failed = rvs[0]
            through = min(j for j, (st, r) in enumerate(answered)
                          if st == 200 and failed in r)
            early = [rv for st, r in answered[i:through] if st == 200
                     for rv in r if rv > failed]
            self.assertEqual(early, [], answered)
        # Retried alone, no resend storm: x@2 once, x@3 twice.
        x1, x2, x3 = server_rvs[:3]
        self.assertEqual([rvs for status, rvs in answered if status == 400],
                         [[x2], [x3], [x3]], answered)
        self.assertEqual(answered[:3], [(200, [x1]), (400, [x2]),
                                        (200, [x2])], answered)
        self.assertEqual(self.dead_letters(), [])
        records = agent.log_records()
        # The sink said so when it handed the queued change back.
        self.assertTrue(any("not sent" in r.get("msg", "")
                            for r in records), agent.log()[-3000:])
        # One warning and one backoff step per failed request; the events
        # handed back unsent are resubmitted quietly, each counted once
        # as a retry (x@3 behind x@2, and x@4 when it was queued behind
        # x@3 by the time its 400 came).
        warned = [r for r in records if "delivery failed" in r.get("msg", "")]
        self.assertEqual(len(warned), 3, warned)
        self.assertTrue(all("no dead_letter_path" in r["msg"]
                            for r in warned), warned)
        retries = metric(ms, "kwb_sink_retries_total", sink="webhook")
        self.assertIn(retries, (4, 5), ms)

    def test_failed_resend_after_recovery_is_sent_again(self):
        # The dead-letter file cannot be written (a full disk: /dev/full),
        # so a 400 is retried as without dead_letter_path; but a sink with
        # a dead-letter path goes on after a permanent failure, so the
        # change queued behind it went out meanwhile. The re-send of that
        # change after the failed one fails too (after it had been
        # delivered once): the pipeline goes back to it again, so the
        # receiver does not end on the older change it got in between.
        agent = self.start_rejecting([{"status": 200},
                                      {"status": 400, "body": "not now",
                                       "delay": 1.0},
                                      {"status": 200},
                                      {"status": 200},
                                      {"status": 400,
                                       "body": "resend fails"}],
                                     dead_letter_path="/dev/full")
        server_rvs = self.change("y", 3)
        newest = max(server_rvs)
        wait_for(lambda: (self.received() and
                          int(self.received()[-1]["resourceVersion"]) ==
                          newest and
                          len([r for r in self.rx.requests()
                               if r["status"] == 400]) == 2), 30,
                 what="the newest change last, after both failures")
        self.assertEqual(agent.stop(), 0)
        rvs = [int(e["resourceVersion"]) for e in self.received()]
        statuses = self.answered()
        first, second, third = server_rvs
        # 200 y@1; 400 y@2; 200 y@3 (queued behind it); 200 y@2 (probe);
        # 400 y@3 (its re-send); then y@3 alone until it is through.
        self.assertEqual(statuses[:5], [(200, [first]), (400, [second]),
                                        (200, [third]), (200, [second]),
                                        (400, [third])], statuses)
        self.assertEqual(rvs[-1], third)
        self.assertEqual(rvs, [first, third, second, third], statuses)
        self.assertTrue(any("cannot write dead letter" in r.get("msg", "")
                            for r in agent.log_records()),
                        agent.log()[-3000:])

    def test_5xx_then_success_delivers_everything_once(self):
        agent = self.start(script=[{"status": 500}, {"status": 503},
                                   {"status": 502, "retry_after": "1"}])
        for i in range(8):
            self.api.create("pods", pod("p-%d" % i))
        wait_for(lambda: len(self.received()) >= 8, 30,
                 what="8 events at the receiver")
        for i in range(8, 12):
            self.api.create("pods", pod("p-%d" % i))
        wait_for(lambda: len(self.received()) >= 12, 30,
                 what="12 events at the receiver")
        self.assertEqual(agent.stop(), 0)
        reqs = self.rx.requests()
        self.assertEqual([r["status"] for r in reqs[:3]], [500, 503, 502])
        # The retried batch is the same bytes each time.
        self.assertEqual(reqs[0]["body"], reqs[1]["body"])
        self.assertEqual(reqs[0]["body"], reqs[3]["body"])
        self.assertGreaterEqual(reqs[3]["time"] - reqs[2]["time"], 0.95)
        events = self.received()
        self.assertEqual(len(events), 12)
        self.assertNoDuplicates(events)
        self.assertMatchesServer(events)
        self.assertEqual(self.dead_letters(), [])

    def test_graceful_stop_delivers_lingering_batch_restart_is_clean(self):
        # linger_ms keeps the events in the open batch; a graceful stop
        # must still deliver them (before the shutdown deadline) and a
        # restart must not deliver them again. (The linger is kept below
        # the shutdown timeout: the pipeline calls flush() only once its
        # deadline has passed.)
        agent = self.start(metrics=True, linger_ms=4000,
                           batch_max_events=1000)
        for i in range(3):
            self.api.create("pods", pod("lg-%d" % i))
        wait_for(lambda: metric(agent.metrics(), "kwb_events_emitted_total",
                                watch="v1/pods", type="ADDED",
                                origin="watch") >= 3, 20,
                 what="3 events emitted")
        self.assertEqual(self.rx.requests(), [], "held by linger_ms")
        self.assertEqual(agent.stop(), 0)
        events = self.received()
        self.assertEqual(sorted(e["name"] for e in events),
                         ["lg-0", "lg-1", "lg-2"])
        self.assertEqual(len(self.rx.requests()), 1)
        # Restart: the checkpoint covers them; only the new change comes.
        seen = len(self.api.request_log())
        agent.start()
        wait_for(lambda: any(r["path"].endswith("/pods") and
                             "watch" in r.get("query", "")
                             for r in self.api.request_log()[seen:]),
                 what="the restarted agent's watch")
        self.api.create("pods", pod("after"))
        wait_for(lambda: len(self.received()) >= 4, 20,
                 what="the change after the restart")
        self.assertEqual(agent.stop(), 0)
        events = self.received()
        self.assertNoDuplicates(events)
        self.assertEqual(sorted(e["name"] for e in events),
                         ["after", "lg-0", "lg-1", "lg-2"])

    def test_cloudevents_from_the_agent(self):
        agent = self.start(format="cloudevents")
        self.api.create("pods", pod("ce-a"))
        self.api.create("pods", pod("ce-b"))
        self.api.patch("pods", "ce-a", {"metadata": {"labels": {"v": "2"}}})
        wait_for(lambda: len(self.received()) >= 3, 20,
                 what="3 CloudEvents")
        self.assertEqual(agent.stop(), 0)
        ces = [ce for r in self.rx.requests() if r["status"] == 200
               for ce in json.loads(r["body"])]
        self.assertEqual(len(ces), 3)
        for ce in ces:
            ev = ce["data"]
            self.assertEnvelope(ev)
            self.assertEqual(ce["specversion"], "1.0")
            self.assertEqual(ce["id"], "%s:%s:%s" % key(ev))
            self.assertEqual(ce["source"], "test-cluster/v1/pods")
            self.assertEqual(ce["type"], "io.k8s.watch." + ev["type"].lower())
            self.assertEqual(ce["subject"], "default/" + ev["name"])
            self.assertEqual(ce["time"], ev["observedAt"])
        self.assertEqual([ce["type"] for ce in ces],
                         ["io.k8s.watch.added", "io.k8s.watch.added",
                          "io.k8s.watch.modified"])


if __name__ == "__main__":
    main()
