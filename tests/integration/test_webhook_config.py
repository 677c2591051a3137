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

    def test_missing_files_fail_at_start(self):
        # --check passes where secrets are not mounted (conf/ examples,
        # CI); start() then names the key and the path.
        missing = os.path.join(self.tmp, "missing")
        for key in ("hmac_secret_file", "bearer_token_file", "ca_file",
                    "cert_file", "key_file"):
            keys = {"url": "https://127.0.0.1:1/", key: missing}
            if key == "key_file":
                keys["cert_file"] = self.certs["client_cert"]
            res = self.check(**keys)
            self.assertEqual(res.rc, 0, str(res))
            res = run_driver(sink_config(**keys), ["submit 1"])
            self.assertEqual(res.rc, 1, str(res))
            self.assertIn("start error: No such file or directory", res.lines)
            errs = [l["msg"] for l in res.logs() if l["level"] == "error"]
            self.assertTrue(any(key in m and missing in m
                                and "No such file" in m for m in errs),
                            str(res))

    def test_files(self):
        unreadable = self.write("unreadable", b"x\n", mode=0o000)
        if not os.access(unreadable, os.R_OK):  # not when run as root
            self.assert_error("hmac_secret_file", url="http://127.0.0.1/",
                              hmac_secret_file=unreadable)
        msg = self.assert_error("ca_file", url="https://127.0.0.1/",
                                ca_file=self.tmp)
        self.assertIn("not a regular file", msg)
        self.assert_error("bearer_token_file", url="http://127.0.0.1/",
                          bearer_token_file=self.tmp)
        ctl = self.write("ctl-token", b"abc\x01def\n")
        self.assert_error("bearer_token_file", url="http://127.0.0.1/",
                          bearer_token_file=ctl)
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
