#!/usr/bin/env python3
"""Webhook sink, permanent failures: a 4xx other than 408/413/429 acks every
event of that batch KWB_ACK_FAIL with the status and an excerpt of the
answer in the reason. With dead_letter_path in the sink's group the
pipeline dead-letters them and later batches go on normally; without it
the pipeline sends them again first, so what the sink holds behind them is
not sent but handed back, KWB_ACK_RETRY, in order."""

import os
import unittest

from webhook_testlib import (WebhookTest, delivered, run_driver, seqs,
                             sink_config)


class TestWebhookPermanent(WebhookTest):
    def dead_letter_conf(self, rx, **keys):
        """The sink's keys with a dead_letter_path (the pipeline's key: the
        driver writes no dead letters, the sink only sees it is there)."""
        return self.base_conf(rx, dead_letter_path=os.path.join(
            self.tmp, "dead.jsonl"), **keys)

    def test_400_fails_batch_and_next_batches_continue(self):
        rx = self.receiver(script=[
            {"status": 200},
            {"status": 400, "body": "bad event schema\nline two"},
            {"status": 200}])
        conf = sink_config(**self.dead_letter_conf(rx, batch_max_events=5,
                                                   linger_ms=2000))
        res = run_driver(conf, ["submit 15", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("OK"), [1, 2, 3, 4, 5, 11, 12, 13, 14,
                                            15])
        self.assertEqual(res.tokens("FAIL"), [6, 7, 8, 9, 10])
        for t, s, reason in res.acks:
            if s == "FAIL":
                self.assertIn("400", reason)
                self.assertIn("bad event schema", reason)
                self.assertNotIn("\n", reason)
        reqs = rx.requests()
        self.assertEqual([r["status"] for r in reqs], [200, 400, 200])
        self.assertEqual(seqs(delivered(reqs)),
                         [0, 1, 2, 3, 4, 10, 11, 12, 13, 14])
        self.assertTrue(any("HTTP 400" in l.get("msg", "")
                            and l.get("level") == "error"
                            for l in res.logs()), res.err)

    def test_400_without_dead_letter_hands_back_what_is_queued(self):
        # The 400 comes after half a second, so that the next batch (11-15)
        # is queued behind the failed one: it is not sent (the pipeline
        # sends 6-10 again first) but acked RETRY, in order, right after
        # the FAIL acks, and not counted by the sink as sent again.
        rx = self.receiver(script=[
            {"status": 200},
            {"status": 400, "body": "bad event schema", "delay": 0.5},
            {"status": 200}])
        conf = sink_config(**self.base_conf(rx, batch_max_events=5,
                                            linger_ms=2000))
        res = run_driver(conf, ["submit 15", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.rc, 0)
        self.assertEqual([(t, s) for t, s, _ in res.acks],
                         [(t, "OK") for t in range(1, 6)] +
                         [(t, "FAIL") for t in range(6, 11)] +
                         [(t, "RETRY") for t in range(11, 16)])
        for t, s, reason in res.acks:
            if s == "RETRY":
                self.assertIn("not sent", reason)
                self.assertIn("HTTP 400", reason)
        reqs = rx.requests()
        self.assertEqual([r["status"] for r in reqs], [200, 400])
        self.assertEqual(seqs(delivered(reqs)), [0, 1, 2, 3, 4])
        self.assertEqual(res.summary["retried"], 0)
        self.assertTrue(any("5 events queued behind" in l.get("msg", "")
                            and l.get("level") == "warn"
                            for l in res.logs()), res.err)

    def test_other_4xx_are_permanent(self):
        # (413 is not among them: the batch is split, test_webhook_413.py.)
        rx = self.receiver(script=[{"status": 422, "body": "unprocessable"},
                                   {"status": 404}, {"status": 200}])
        conf = sink_config(**self.dead_letter_conf(rx, batch_max_events=2,
                                                   linger_ms=2000))
        res = run_driver(conf, ["submit 6", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("FAIL"), [1, 2, 3, 4])
        self.assertEqual(res.tokens("OK"), [5, 6])
        self.assertIn("422", res.acks[0][2])
        self.assertIn("unprocessable", res.acks[0][2])
        self.assertIn("404", res.acks[2][2])

    def test_unauthorized_signature_is_permanent(self):
        # A receiver with another secret answers 401: permanent, not
        # retried forever.
        rx = self.receiver(secret=b"another-secret")
        conf = sink_config(**self.base_conf(
            rx, hmac_secret_file=self.secret_file))
        res = run_driver(conf, ["submit 2", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.tokens("FAIL"), [1, 2])
        self.assertFalse(rx.requests()[0]["sig_ok"])


if __name__ == "__main__":
    unittest.main()
