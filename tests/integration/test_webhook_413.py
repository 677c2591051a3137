#!/usr/bin/env python3
"""Webhook sink, 413 Payload Too Large: the batch is sent again in two
halves, first half first, recursively, every event exactly once and in
order; the sink remembers lower batch limits for later batches; one event
too large even alone fails by itself (dead-lettered by the agent) and the
rest is delivered (without dead_letter_path the rest is handed back unsent
instead, to go after it); each split is logged as one warning and counted
in kwb_sink_retries_total.

The receiver (webhook_receiver.Receiver, max_body) answers 413 to any body
of more than N bytes."""

import os

from kwb import TestCase, metric, pod, read_one, wait_for
from webhook_receiver import Receiver, make_certs
from webhook_testlib import (WebhookTest, delivered, events_of, run_driver,
                             seqs, sink_config)

CONTENT_TYPES = {"ndjson": "application/x-ndjson",
                 "json": "application/json",
                 "cloudevents": "application/cloudevents-batch+json"}


def split_logs(res):
    return [r for r in res.logs() if r.get("level") == "warn" and
            "413" in r.get("msg", "") and "halves" in r.get("msg", "")]


class TestWebhook413Driver(WebhookTest):
    """The sink alone, driven by tests/helpers/webhook_sink_driver.c."""

    def check_requests(self, rx, limit, fmt):
        """Every request answered 2xx is within the limit, its
        X-KWB-Events matches its body, and has a batch id of its own (a
        receiver that drops repeated batch ids must not drop a half)."""
        ok = [r for r in rx.requests() if r["status"] == 200]
        for r in ok:
            self.assertLessEqual(len(r["body"].encode()), limit)
            self.assertTrue(r["headers"]["content-type"].startswith(
                CONTENT_TYPES[fmt]))
            n = len(events_of(r["body"], r["headers"]["content-type"]))
            self.assertEqual(int(r["headers"]["x-kwb-events"]), n)
        ids = [r["headers"]["x-kwb-batch-id"] for r in rx.requests()]
        self.assertEqual(len(ids), len(set(ids)), ids)
        return ok

    def test_split_in_order_and_single_event_fails_alone(self):
        # Events are about 450 bytes: 10 of them (~4.5 kB) get 413 from a
        # receiver taking 2000 bytes, so do the halves of 5; parts of at
        # most 4 events get through. The event padded to 3000 bytes gets
        # 413 even alone.
        limit = 2000
        for fmt in ("ndjson", "json", "cloudevents"):
            with self.subTest(format=fmt):
                rx = self.receiver(max_body=limit, secret=self.SECRET)
                conf = sink_config(**self.base_conf(
                    rx, batch_max_events=10, linger_ms=2000, format=fmt,
                    hmac_secret_file=self.secret_file,
                    dead_letter_path=self.dead_letter_path()))
                res = run_driver(conf, ["submit 20", "size 3000", "submit 1",
                                        "size 0", "submit 19",
                                        "flush 30000"])
                self.assert_clean(res)
                self.assertEqual(res.summary["submitted"], 40)
                # Every token acked once (assert_clean: no dup, no
                # unknown); only the big one (token 21) failed.
                self.assertEqual(sorted(res.tokens("OK") + res.tokens("FAIL")),
                                 list(range(1, 41)))
                self.assertEqual(res.tokens("FAIL"), [21])
                reason = [a[2] for a in res.acks if a[0] == 21][0]
                self.assertIn("413", reason)
                self.assertRegex(reason, r"event of \d{4} bytes")
                self.assertIn("payload too large", reason)
                # OK acks come in token order.
                self.assertEqual(res.tokens("OK"),
                                 [t for t in range(1, 41) if t != 21])
                # The receiver got each event exactly once, in order.
                ok = self.check_requests(rx, limit, fmt)
                self.assertEqual(seqs(delivered(rx.requests())),
                                 [s for s in range(40) if s != 20])
                self.assertTrue(all(r["sig_ok"] for r in rx.requests()))
                self.assertGreater(len(ok), 8)
                # The first batch (10 events) got 413, then its halves.
                reqs = rx.requests()
                self.assertEqual(reqs[0]["status"], 413)
                self.assertEqual(reqs[0]["headers"]["x-kwb-events"], "10")
                big = [r for r in reqs if r["status"] == 413 and
                       r["headers"]["x-kwb-events"] == "1"]
                self.assertEqual(len(big), 1)
                self.assertEqual(seqs(events_of(
                    big[0]["body"], big[0]["headers"]["content-type"])), [20])
                # One warning per split, naming the sink and both limits.
                splits = split_logs(res)
                n_split = sum(1 for r in reqs if r["status"] == 413 and
                              r["headers"]["x-kwb-events"] != "1")
                self.assertEqual(len(splits), n_split, res.err)
                self.assertGreaterEqual(n_split, 1)
                self.assertEqual(splits[0]["sink"], "webhook")
                self.assertRegex(
                    splits[0]["msg"],
                    r"10 events, \d+ bytes\).*two halves of 5 and 5 events.*"
                    r"lowered from 10 events/1048576 bytes to 5 events/\d+ "
                    r"bytes")
                self.assertNotIn(self.SECRET.decode(), res.err)
                self.assertTrue(any(
                    r.get("level") == "error" and "413" in r["msg"] and
                    "too large even alone" in r["msg"] for r in res.logs()),
                    res.err)
                # The events sent again count as retries.
                self.assertGreaterEqual(res.summary["retried"], 10)
                rx.stop()

    def test_lower_limit_is_remembered(self):
        # After one split, later batches are formed within the lowered
        # limit: no further 413 for events of the same size.
        rx = self.receiver(max_body=3000)
        conf = sink_config(**self.base_conf(rx, batch_max_events=50,
                                            linger_ms=2000))
        res = run_driver(conf, ["submit 12", "flush 20000", "submit 60",
                                "flush 30000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("OK"), list(range(1, 73)))
        reqs = rx.requests()
        self.assertEqual(reqs[0]["status"], 413)
        later = [r for r in reqs if int(r["headers"]["x-kwb-events"]) > 0
                 and seqs(events_of(r["body"],
                                    r["headers"]["content-type"]))[0] >= 12]
        self.assertTrue(later)
        self.assertTrue(all(r["status"] == 200 for r in later),
                        [(r["status"], len(r["body"])) for r in later])
        self.assertEqual(seqs(delivered(reqs)), list(range(72)))
        self.assertEqual(len(split_logs(res)), 1, res.err)

    def test_transient_failure_of_a_half_keeps_order(self):
        # The first half gets a 503 (the receiver's script only answers
        # bodies within the limit): it is retried before the second half
        # is sent.
        rx = self.receiver(max_body=3000, script=[{"status": 503}])
        conf = sink_config(**self.base_conf(
            rx, batch_max_events=10, linger_ms=2000, retry_initial_ms=50,
            retry_max_ms=100))
        res = run_driver(conf, ["submit 10", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("OK"), list(range(1, 11)))
        reqs = rx.requests()
        self.assertEqual([r["status"] for r in reqs], [413, 503, 200, 200])
        self.assertEqual(reqs[1]["body"], reqs[2]["body"])
        self.assertEqual(reqs[1]["headers"]["x-kwb-batch-id"],
                         reqs[2]["headers"]["x-kwb-batch-id"])
        self.assertEqual(reqs[2]["headers"]["x-kwb-attempt"], "2")
        self.assertEqual(seqs(delivered(reqs)), list(range(10)))

    def dead_letter_path(self):
        """For the sink's group: the pipeline's key (the driver writes no
        dead letters), which tells the sink a FAIL ends the event."""
        return os.path.join(self.tmp, "dead.jsonl")

    def test_other_4xx_of_a_half_fails_that_half_only(self):
        rx = self.receiver(max_body=3000, script=[{"status": 422,
                                                   "body": "schema"}])
        conf = sink_config(**self.base_conf(
            rx, batch_max_events=10, linger_ms=2000,
            dead_letter_path=self.dead_letter_path()))
        res = run_driver(conf, ["submit 10", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("FAIL"), [1, 2, 3, 4, 5])
        self.assertEqual(res.tokens("OK"), [6, 7, 8, 9, 10])
        self.assertIn("422", res.acks[0][2])
        self.assertEqual(seqs(delivered(rx.requests())), [5, 6, 7, 8, 9])

    def test_other_4xx_of_a_half_without_dead_letter_holds_the_rest(self):
        # Without dead_letter_path the pipeline sends the failed half
        # again first: the second half is not sent but handed back.
        rx = self.receiver(max_body=3000, script=[{"status": 422,
                                                   "body": "schema"}])
        conf = sink_config(**self.base_conf(rx, batch_max_events=10,
                                            linger_ms=2000))
        res = run_driver(conf, ["submit 10", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual([(t, s) for t, s, _ in res.acks],
                         [(t, "FAIL") for t in range(1, 6)] +
                         [(t, "RETRY") for t in range(6, 11)])
        self.assertEqual([r["status"] for r in rx.requests()], [413, 422])
        self.assertEqual(delivered(rx.requests()), [])
        # Only the split counts as sending again, not the handing back.
        self.assertEqual(res.summary["retried"], 10)

    def test_single_event_413_without_dead_letter_holds_the_rest(self):
        # Six events, the third too large alone: [1..3] and [4..6] after
        # the first 413, [1] and [2, 3], then [2] and [3]: 3 fails, and
        # 4-6 are handed back unsent, in order.
        rx = self.receiver(max_body=2000)
        conf = sink_config(**self.base_conf(rx, batch_max_events=10,
                                            linger_ms=2000))
        res = run_driver(conf, ["submit 2", "size 3000", "submit 1",
                                "size 0", "submit 3", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual([(t, s) for t, s, _ in res.acks],
                         [(1, "OK"), (2, "OK"), (3, "FAIL"), (4, "RETRY"),
                          (5, "RETRY"), (6, "RETRY")])
        self.assertIn("413", res.acks[2][2])
        self.assertIn("HTTP 413", res.acks[3][2])
        self.assertEqual(seqs(delivered(rx.requests())), [0, 1])
        self.assertEqual(
            [(r["status"], r["headers"]["x-kwb-events"])
             for r in rx.requests()],
            [(413, "6"), (413, "3"), (200, "1"), (413, "2"), (200, "1"),
             (413, "1")])

    def test_limit_grows_back_after_a_run_of_successes(self):
        # Two events (~890 bytes) fit, three (~1330) do not. The first
        # batch of 4 gets 413: the limit drops to 2 events and the larger
        # half's bytes; it grows by a quarter after each
        # KWB_WEBHOOK_GROW_AFTER (64) 2xx answers in a row until a batch
        # of 3 gets 413 again and brings it down; nothing is lost.
        rx = self.receiver(tls=None, max_body=1000)
        conf = sink_config(**self.base_conf(rx, batch_max_events=4,
                                            linger_ms=2000))
        res = run_driver(conf, ["submit 300", "flush 60000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("OK"), list(range(1, 301)))
        self.assertEqual(seqs(delivered(rx.requests())), list(range(300)))
        raised = [r["msg"] for r in res.logs() if r.get("level") == "info"
                  and "raised to" in r.get("msg", "")]
        self.assertGreaterEqual(len(raised), 2, res.err)
        self.assertRegex(raised[0], r"in 64 requests: batch limit raised to "
                         r"3 events/\d+ bytes \(configured 4/1048576\)")
        splits = split_logs(res)
        self.assertGreaterEqual(len(splits), 2, res.err)
        self.assertIn("lowered from 4 events/1048576 bytes to 2 events/",
                      splits[0]["msg"])
        self.assertRegex(splits[1]["msg"], r"\(3 events, .*two halves of 1 "
                         r"and 2 events.*to 2 events/")
        reqs = rx.requests()
        n3 = [r for r in reqs if r["headers"]["x-kwb-events"] == "3"]
        self.assertTrue(n3 and all(r["status"] == 413 for r in n3))
        # Between the first 413 and the next, the lowered limit held.
        first, second = [i for i, r in enumerate(reqs)
                         if r["status"] == 413][:2]
        self.assertGreaterEqual(second - first, 2 * 64)


class TestWebhook413Agent(TestCase):
    """The real agent: a receiver taking at most N bytes a request; a pod
    bigger than N alone lands in the dead-letter file, every other event
    reaches the receiver once, in the order the server made them."""

    SECRET = b"agent-413-hmac-secret"
    LIMIT = 3000

    def setUp(self):
        super().setUp()
        self.certs = make_certs(os.path.join(self.tmp, "certs"))
        self.secret_file = os.path.join(self.tmp, "hmac")
        with open(self.secret_file, "wb") as f:
            f.write(self.SECRET + b"\n")
        self.dead_letter = os.path.join(self.tmp, "dead.jsonl")
        self.rx = Receiver(tls=self.certs, secret=self.SECRET,
                           max_body=self.LIMIT)
        self.rx.start()

    def tearDown(self):
        self.rx.stop()
        super().tearDown()

    def dead_letters(self):
        return read_one(self.dead_letter)

    def test_split_dead_letter_and_order(self):
        sink = {"type": "webhook", "url": self.rx.url,
                "ca_file": self.certs["ca"],
                "hmac_secret_file": self.secret_file,
                "linger_ms": 400, "batch_max_events": 100,
                "retry_initial_ms": 100, "retry_max_ms": 500,
                "dead_letter_path": self.dead_letter}
        agent = self.agent(sinks=[sink], metrics=True).start()
        wait_for(lambda: any(r["path"].endswith("/pods") and
                             "watch" in r.get("query", "")
                             for r in self.api.request_log()),
                 what="the agent's watch")
        made = []  # (uid, resourceVersion) in the server's order

        def note(obj):
            made.append((obj["metadata"]["uid"],
                         obj["metadata"]["resourceVersion"]))

        for i in range(12):
            note(self.api.create("pods", pod("s-%d" % i)))
        big = pod("big")
        big["metadata"]["annotations"] = {"blob": "x" * (self.LIMIT + 500)}
        note(self.api.create("pods", big))
        big_key = made[-1]
        for i in range(12, 20):
            note(self.api.create("pods", pod("s-%d" % i)))
        for i in range(0, 20, 3):
            note(self.api.patch("pods", "s-%d" % i,
                                {"metadata": {"labels": {"v": "2"}}}))
        expected = [k for k in made if k != big_key]
        wait_for(lambda: len(delivered(self.rx.requests())) >=
                 len(expected) and self.dead_letters(), 40,
                 what="%d events at the receiver and a dead letter" %
                 len(expected))
        ms = agent.metrics()
        self.assertEqual(agent.stop(), 0)

        events = delivered(self.rx.requests())
        got = [(e["uid"], e["resourceVersion"]) for e in events]
        # Exactly once each, in the server's order, event by event.
        self.assertEqual(got, expected)
        dl = self.dead_letters()
        self.assertEqual(len(dl), 1, dl)
        self.assertEqual((dl[0]["event"]["uid"],
                          dl[0]["event"]["resourceVersion"]), big_key)
        self.assertEqual(dl[0]["event"]["name"], "big")
        self.assertEqual(dl[0]["sink"], "webhook")
        self.assertIn("413", dl[0]["reason"])
        self.assertRegex(dl[0]["reason"], r"event of \d+ bytes")
        # Every request the receiver took was within its limit and signed.
        for r in self.rx.requests():
            self.assertTrue(r["sig_ok"])
            if r["status"] == 200:
                self.assertLessEqual(len(r["body"].encode()), self.LIMIT)
        # The split is logged (sink name, old and new limit) and counted.
        recs = agent.log_records()
        splits = [r for r in recs if r.get("level") == "warn" and
                  "413" in r.get("msg", "") and
                  "halves" in r.get("msg", "")]
        self.assertTrue(splits, agent.log()[-3000:])
        self.assertEqual(splits[0].get("sink"), "webhook")
        self.assertRegex(splits[0]["msg"],
                         r"lowered from 100 events/1048576 bytes to \d+ "
                         r"events/\d+ bytes")
        log = agent.log()
        self.assertNotIn(self.SECRET.decode(), log)
        self.assertGreater(metric(ms, "kwb_sink_retries_total",
                                  sink="webhook"), 0)
        self.assertEqual(metric(ms, "kwb_sink_dead_letter_total",
                                sink="webhook"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
