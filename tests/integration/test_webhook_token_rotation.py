#!/usr/bin/env python3
"""Webhook sink: bearer_token_file is re-read when it changes (rotation by
rename, as Kubernetes projects tokens, and in place)."""

import os
import time
import unittest

from webhook_testlib import WebhookTest, delivered, seqs, sink_config, \
    start_driver


class TestWebhookTokenRotation(WebhookTest):
    def rotate(self, path, data):
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def test_rotation(self):
        token = self.write("token", b"token-old\n")
        # The receiver wants the new token; until then it answers 503, so
        # the sink keeps retrying the same batch.
        rx = self.receiver(token="token-new", auth_failure_status=503)
        conf = sink_config(url=rx.url, ca_file=self.certs["ca"],
                           bearer_token_file=token, retry_initial_ms=100,
                           retry_max_ms=200)
        p = start_driver(conf)
        try:
            # The driver drives the sink only inside commands.
            p.stdin.write("submit 3\npoll 3000\n")
            p.stdin.flush()
            self.assertTrue(rx.wait_for(lambda r: len(r) >= 2, 20))
            self.rotate(token, b"token-new\n")
            p.stdin.write("wait 3 20000\nsubmit 2\nflush 10000\n")
            p.stdin.flush()
            self.assertTrue(rx.wait_for(
                lambda r: sum(x["status"] == 200 for x in r) >= 2, 20))
            # In-place rewrite (same inode, other size): picked up too.
            rx.token = "token-newer-still"
            with open(token, "wb") as f:
                f.write(b"token-newer-still\n")
            p.stdin.write("submit 2\nflush 10000\nquit\n")
            p.stdin.close()
            out = p.stdout.read()
            err = p.stderr.read()
            self.assertEqual(p.wait(30), 0, out + err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertIn("summary submitted=7 ok=7 fail=0", out)
        reqs = rx.requests()
        self.assertFalse(reqs[0]["token_ok"])
        self.assertTrue(reqs[-1]["token_ok"])
        self.assertEqual(seqs(delivered(reqs)), list(range(7)))
        for t in ("token-old", "token-new", "token-newer-still"):
            self.assertNotIn(t, err)


if __name__ == "__main__":
    unittest.main()
