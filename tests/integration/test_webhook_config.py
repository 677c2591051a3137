#!/usr/bin/env python3
"""Webhook sink, init: every key validated offline with a message naming
the key; secrets never printed."""

import os
import unittest

from webhook_testlib import WebhookTest, run_driver, sink_config


class TestWebhookConfig(WebhookTest):
    def check(self, **keys):
        return run_driver(sink_config(**keys), [], check=True)

    def assert_error(self, needle, **keys):
        res = self.check(**keys)
        self.assertEqual(res.rc, 1, str(res))
        line = [l for l in res.lines if l.startswith("init error: ")]
        self.assertTrue(line, str(res))
        self.assertIn(needle, line[0])
        return line[0]

    def test_valid_config(self):
        token = self.write("token", b"very-secret-token\n")
        res = self.check(url="https://127.0.0.1:1/x",
                         hmac_secret_file=self.secret_file,
                         bearer_token_file=token, ca_file=self.certs["ca"],
                         cert_file=self.certs["client_cert"],
                         key_file=self.certs["client_key"],
                         insecure_skip_tls_verify=False,
                         batch_max_events=10, batch_max_bytes=4096,
                         linger_ms=0, timeout_ms=1000,
                         connect_timeout_ms=500, format="cloudevents",
                         headers={"X-Api-Key": "key-value-123"},
                         retry_initial_ms=10, retry_max_ms=100)
        self.assertEqual(res.rc, 0, str(res))
        self.assertIn("init ok", res.lines)
        for secret in ("very-secret-token", self.SECRET.decode(),
                       "key-value-123"):
            self.assertNotIn(secret, res.out + res.err)

    def test_header_list_form(self):
        res = self.check(url="http://127.0.0.1:1/",
                         headers=["X.Dotted-Name: v1", "X-Other:v2"])
        self.assertEqual(res.rc, 0, str(res))

    def test_url(self):
        self.assert_error("url is required", format="ndjson")
        self.assert_error("url: scheme must be http or https",
                          url="ftp://127.0.0.1/x")
        self.assert_error("url: not a valid URL", url="127.0.0.1/ingest")
        self.assert_error("url must be a string", url=5)

    def test_files(self):
        missing = os.path.join(self.tmp, "missing")
        for key in ("hmac_secret_file", "bearer_token_file", "ca_file",
                    "cert_file"):
            msg = self.assert_error(key, url="https://127.0.0.1/",
                                    **{key: missing})
            self.assertIn(missing, msg)
            self.assertIn("No such file", msg)
        msg = self.assert_error("ca_file", url="https://127.0.0.1/",
                                ca_file=self.tmp)
        self.assertIn("not a regular file", msg)
        self.assert_error("key_file", url="https://127.0.0.1/",
                          cert_file=self.certs["client_cert"],
                          key_file=missing)
        self.assert_error("key_file needs cert_file",
                          url="https://127.0.0.1/",
                          key_file=self.certs["client_key"])
        empty = self.write("empty", b"\n")
        self.assert_error("hmac_secret_file", url="http://127.0.0.1/",
                          hmac_secret_file=empty)
        self.assert_error("ca_file is set but url is not https",
                          url="http://127.0.0.1/", ca_file=self.certs["ca"])

    def test_values(self):
        u = "http://127.0.0.1/"
        self.assert_error("format", url=u, format="xml")
        self.assert_error("batch_max_events", url=u, batch_max_events=0)
        self.assert_error("batch_max_bytes", url=u, batch_max_bytes="1M")
        self.assert_error("timeout_ms", url=u, timeout_ms=-1)
        self.assert_error("insecure_skip_tls_verify", url=u,
                          insecure_skip_tls_verify="yes")
        self.assert_error("retry_max_ms", url=u, retry_initial_ms=1000,
                          retry_max_ms=10)
        self.assert_error("headers", url=u, headers={"Authorization": "x"})
        self.assert_error("headers", url=u, headers=["no colon"])
        self.assert_error("headers", url=u, headers="X-A: b")


if __name__ == "__main__":
    unittest.main()
