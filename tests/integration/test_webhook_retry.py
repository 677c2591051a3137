#!/usr/bin/env python3
"""Webhook sink, transient failures: 5xx, 408, 429 with Retry-After
(seconds and HTTP-date), client timeouts, dropped connections; the same
batch bytes are retried, each attempt signed anew, every event acked OK
exactly once; backpressure (-EAGAIN) while a batch is being retried."""

import email.utils
import time
import unittest

from webhook_testlib import (TIMEOUT_MULT, WebhookTest, delivered,
                             run_driver, seqs, sink_config)


class TestWebhookRetry(WebhookTest):
    def conf(self, rx, **keys):
        keys.setdefault("retry_initial_ms", 50)
        keys.setdefault("retry_max_ms", 400)
        return sink_config(**self.base_conf(
            rx, hmac_secret_file=self.secret_file, **keys))

    def test_5xx_then_success(self):
        rx = self.receiver(secret=self.SECRET,
                           script=[{"status": 500}, {"status": 503},
                                   {"status": 502}, {"status": 200}])
        res = run_driver(self.conf(rx, batch_max_events=10),
                         ["submit 10", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(sorted(res.tokens("OK")), list(range(1, 11)))
        reqs = rx.requests()
        self.assertEqual([r["status"] for r in reqs], [500, 503, 502, 200])
        # env.retried counted 3 retries of a 10-event batch.
        self.assertEqual(res.summary["retried"], 30)
        # The same batch bytes each time, signed anew and valid.
        self.assertEqual(len({r["body"] for r in reqs}), 1)
        self.assertTrue(all(r["sig_ok"] for r in reqs))
        self.assertEqual([r["headers"]["x-kwb-attempt"] for r in reqs],
                         ["1", "2", "3", "4"])
        # One batch id over the attempts; no Expect: 100-continue.
        self.assertEqual(len({r["headers"]["x-kwb-batch-id"]
                              for r in reqs}), 1)
        self.assertTrue(all(r["headers"]["x-kwb-events"] == "10"
                            for r in reqs))
        self.assertTrue(all("expect" not in r["headers"] for r in reqs))
        self.assertEqual(seqs(delivered(reqs)), list(range(10)))
        self.assertTrue(any("HTTP 500" in l.get("msg", "")
                            for l in res.logs()), res.err)

    def test_408_and_429_are_transient(self):
        rx = self.receiver(script=[{"status": 408}, {"status": 429},
                                   {"status": 200}])
        res = run_driver(self.conf(rx), ["submit 4", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 4)
        self.assertEqual(res.summary["fail"], 0)
        self.assertEqual([r["status"] for r in rx.requests()],
                         [408, 429, 200])

    def test_retry_after_seconds_is_a_lower_bound(self):
        rx = self.receiver(script=[{"status": 429, "retry_after": "2"},
                                   {"status": 200}])
        res = run_driver(self.conf(rx), ["submit 3", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 3)
        reqs = rx.requests()
        self.assertEqual(len(reqs), 2)
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 1.95)

    def test_retry_after_http_date(self):
        when = email.utils.formatdate(time.time() + 3, usegmt=True)
        rx = self.receiver(script=[{"status": 503, "retry_after": when},
                                   {"status": 200}])
        res = run_driver(self.conf(rx), ["submit 2", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 2)
        reqs = rx.requests()
        self.assertEqual(len(reqs), 2)
        # The date has second resolution: at least 2 s of the 3 remain.
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 1.95)

    def test_client_timeout_then_success(self):
        delay = 2.0 * TIMEOUT_MULT
        rx = self.receiver(script=[{"status": 200, "delay": delay},
                                   {"status": 200, "delay": delay}])
        res = run_driver(self.conf(rx, timeout_ms=int(600 * TIMEOUT_MULT)),
                         ["submit 5", "flush 30000"])
        self.assert_clean(res)
        self.assertEqual(sorted(res.tokens("OK")), list(range(1, 6)))
        # The delayed answers are recorded when their sleep ends.
        reqs = rx.wait_for(lambda r: len(r) >= 3 and r, 10 * TIMEOUT_MULT)
        self.assertEqual(len(reqs), 3)
        self.assertEqual(len({r["body"] for r in reqs}), 1)
        self.assertEqual(sorted(r["delay"] for r in reqs), [0, delay, delay])
        self.assertTrue(any("timed out" in l.get("msg", "").lower()
                            for l in res.logs()), res.err)

    def test_dropped_connection_then_success(self):
        rx = self.receiver(script=[{"drop": True}, {"status": 200}])
        res = run_driver(self.conf(rx), ["submit 3", "flush 20000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 3)
        self.assertEqual(seqs(delivered(rx.requests())), [0, 1, 2])

    def test_backpressure_while_retrying(self):
        rx = self.receiver(script=[{"status": 500}] * 4)
        res = run_driver(self.conf(rx, batch_max_events=5, linger_ms=10,
                                   retry_initial_ms=200, retry_max_ms=200),
                         ["submit 20", "flush 30000"])
        self.assert_clean(res)
        eagain = [int(l.split()[3]) for l in res.lines
                  if l.startswith("submitted")]
        self.assertGreater(eagain[0], 0, "submit must return -EAGAIN")
        self.assertEqual(sorted(res.tokens("OK")), list(range(1, 21)))
        # Acks come in submission order, and every event reached the
        # receiver in order, once per successful batch.
        self.assertEqual([t for t, _, _ in res.acks], list(range(1, 21)))
        self.assertEqual(seqs(delivered(rx.requests())), list(range(20)))


if __name__ == "__main__":
    unittest.main()
