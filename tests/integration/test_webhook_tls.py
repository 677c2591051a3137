#!/usr/bin/env python3
"""Webhook sink, TLS: verification against ca_file, a wrong CA is a
transient error (logged with the host and curl's message, retried, never
acked), insecure_skip_tls_verify, mTLS with cert_file/key_file."""

import unittest

from webhook_testlib import WebhookTest, delivered, run_driver, seqs, \
    sink_config


class TestWebhookTLS(WebhookTest):
    def fast(self, **keys):
        keys.setdefault("retry_initial_ms", 100)
        keys.setdefault("retry_max_ms", 300)
        return keys

    def test_wrong_ca_retries_and_never_acks(self):
        rx = self.receiver()
        conf = sink_config(**self.fast(url=rx.url,
                                       ca_file=self.certs["other_ca"]))
        res = run_driver(conf, ["submit 4", "poll 2500", "flush 500"])
        self.assert_clean(res)
        self.assertEqual(res.acks, [], "no ack while TLS fails")
        self.assertIn("flush rc=-110", res.lines)  # -ETIMEDOUT
        self.assertEqual(rx.requests(), [])
        self.assertGreaterEqual(len(rx.tls_errors()), 2, "retried")
        errs = [l for l in res.logs() if l.get("level") == "error"
                and "127.0.0.1" in l.get("msg", "")
                and "TLS" in l.get("msg", "")
                and "certificate" in l.get("msg", "").lower()]
        self.assertGreaterEqual(len(errs), 2, res.err)

    def test_system_store_rejects_private_ca(self):
        rx = self.receiver()
        conf = sink_config(**self.fast(url=rx.url))
        res = run_driver(conf, ["submit 2", "poll 1200"])
        self.assert_clean(res)
        self.assertEqual(res.acks, [])
        self.assertEqual(rx.requests(), [])

    def test_insecure_skip_tls_verify(self):
        rx = self.receiver()
        conf = sink_config(url=rx.url, ca_file=self.certs["other_ca"],
                           insecure_skip_tls_verify=True)
        res = run_driver(conf, ["submit 3", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 3)
        self.assertTrue(any("insecure_skip_tls_verify" in l.get("msg", "")
                            for l in res.logs()))

    def test_mtls_with_client_certificate(self):
        rx = self.receiver(require_client_cert=True)
        conf = sink_config(url=rx.url, ca_file=self.certs["ca"],
                           cert_file=self.certs["client_cert"],
                           key_file=self.certs["client_key"])
        res = run_driver(conf, ["submit 5", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 5)
        reqs = rx.requests()
        self.assertTrue(all(r["client_cn"] == "kwb-client" for r in reqs))
        self.assertEqual(seqs(delivered(reqs)), list(range(5)))

    def test_mtls_without_client_certificate_fails(self):
        rx = self.receiver(require_client_cert=True)
        conf = sink_config(**self.fast(url=rx.url, ca_file=self.certs["ca"]))
        res = run_driver(conf, ["submit 3", "poll 2000"])
        self.assert_clean(res)
        self.assertEqual(res.acks, [])
        self.assertEqual(rx.requests(), [])
        self.assertGreaterEqual(len(rx.tls_errors()), 2)
        self.assertTrue(any("127.0.0.1" in l.get("msg", "")
                            and l.get("level") in ("warn", "error")
                            for l in res.logs()), res.err)


if __name__ == "__main__":
    unittest.main()
