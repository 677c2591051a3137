#!/usr/bin/env python3
"""Webhook sink, permanent failures: a 4xx other than 408/413/429 acks every
event of that batch KWB_ACK_FAIL with the status and an excerpt of the
answer in the reason (the pipeline dead-letters them); later batches go
on normally."""

import unittest

from webhook_testlib import (WebhookTest, delivered, run_driver, seqs,
                             sink_config)


class TestWebhookPermanent(WebhookTest):
    def test_400_fails_batch_and_next_batches_continue(self):
        rx = self.receiver(script=[
            {"status": 200},
            {"status": 400, "body": "bad event schema\nline two"},
            {"status": 200}])
        conf = sink_config(**self.base_conf(rx, batch_max_events=5,
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

    def test_other_4xx_are_permanent(self):
        # (413 is not among them: the batch is split, test_webhook_413.py.)
        rx = self.receiver(script=[{"status": 422, "body": "unprocessable"},
                                   {"status": 404}, {"status": 200}])
        conf = sink_config(**self.base_conf(rx, batch_max_events=2,
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
