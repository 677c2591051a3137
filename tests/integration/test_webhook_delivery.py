#!/usr/bin/env python3
"""Webhook sink, normal delivery: batching, formats, HMAC, bearer token,
custom headers, keep-alive, plain HTTP. Drives the sink through its ops
(tests/helpers/webhook_sink_driver.c) against webhook_receiver.py."""

import json
import os
import re
import unittest
import urllib.request

from webhook_testlib import (WebhookTest, delivered, events_of, run_driver,
                             seqs, sink_config)


class TestWebhookDelivery(WebhookTest):
    def test_ndjson_signed_bearer_batched(self):
        token_file = self.write("token", b"tok-abc123\n")
        rx = self.receiver(secret=self.SECRET, token="tok-abc123")
        conf = sink_config(**self.base_conf(
            rx, hmac_secret_file=self.secret_file,
            bearer_token_file=token_file, batch_max_events=7,
            linger_ms=20, headers={"X-Tenant": "team-a"}))
        res = run_driver(conf, ["submit 50", "flush 20000"])
        self.assert_clean(res)
        self.assertIn("flush rc=0", res.lines, str(res))
        self.assertEqual(sorted(res.tokens("OK")), list(range(1, 51)))
        reqs = rx.requests()
        self.assertGreaterEqual(len(reqs), 8)
        for r in reqs:
            self.assertEqual(r["status"], 200)
            self.assertTrue(r["sig_ok"], r["headers"])
            self.assertTrue(r["token_ok"])
            self.assertRegex(r["headers"]["x-kwb-signature"],
                             r"^t=\d+,v1=[0-9a-f]{64}$")
            self.assertEqual(r["headers"]["content-type"],
                             "application/x-ndjson")
            self.assertEqual(r["headers"]["x-tenant"], "team-a")
            self.assertLessEqual(len(r["body"].splitlines()), 7)
        events = delivered(reqs)
        self.assertEqual(seqs(events), list(range(50)))
        self.assertEqual(events[0]["uid"], "uid-000000")
        self.assertEqual(events[1]["type"], "MODIFIED")
        # Escapes and UTF-8 in the object pass through unchanged.
        self.assertEqual(events[3]["object"]["data"]["note"],
                         'q"b\\ \u00e9 \u00e9 {[,]}')
        # Each batch its own id, the same instance prefix.
        ids = [r["headers"]["x-kwb-batch-id"] for r in reqs]
        self.assertEqual(len(set(ids)), len(reqs))
        self.assertEqual(len({i.split("-")[0] for i in ids}), 1)
        self.assertEqual(sum(int(r["headers"]["x-kwb-events"])
                             for r in reqs), 50)
        # Keep-alive: one connection for every batch.
        self.assertEqual(len({r["peer_port"] for r in reqs}), 1)
        # Never in logs: token, secret, signature.
        self.assertNotIn("tok-abc123", res.err)
        self.assertNotIn(self.SECRET.decode(), res.err)
        for r in reqs:
            self.assertNotIn(r["headers"]["x-kwb-signature"], res.err)

    def test_secret_crlf_stripped_once(self):
        secret_file = self.write("hmac-crlf", b"line-one\r\n")
        rx = self.receiver(secret=b"line-one")
        conf = sink_config(**self.base_conf(rx, hmac_secret_file=secret_file))
        res = run_driver(conf, ["submit 3", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 3)
        self.assertTrue(all(r["sig_ok"] for r in rx.requests()))

    def test_json_array(self):
        rx = self.receiver()
        conf = sink_config(**self.base_conf(rx, format="json",
                                            batch_max_events=4))
        res = run_driver(conf, ["submit 10", "flush 10000"])
        self.assert_clean(res)
        reqs = rx.requests()
        for r in reqs:
            self.assertEqual(r["headers"]["content-type"], "application/json")
            body = json.loads(r["body"])
            self.assertIsInstance(body, list)
            self.assertLessEqual(len(body), 4)
        self.assertEqual(seqs(delivered(reqs)), list(range(10)))

    def test_cloudevents_batch(self):
        rx = self.receiver()
        conf = sink_config(**self.base_conf(rx, format="cloudevents"))
        res = run_driver(conf, ["submit 6", "flush 10000"])
        self.assert_clean(res)
        reqs = rx.requests()
        self.assertEqual(reqs[0]["headers"]["content-type"],
                         "application/cloudevents-batch+json")
        ces = [ce for r in reqs for ce in json.loads(r["body"])]
        self.assertEqual(len(ces), 6)
        for i, ce in enumerate(ces):
            ev = ce["data"]
            self.assertEqual(ce["specversion"], "1.0")
            self.assertEqual(ce["id"], "%s:%s:%s" % (
                ev["uid"], ev["resourceVersion"], ev["type"]))
            self.assertEqual(ce["source"], "test-cluster/v1/configmaps")
            self.assertEqual(ce["type"], "io.k8s.watch." + ev["type"].lower())
            self.assertEqual(ce["time"], ev["observedAt"])
            self.assertEqual(ce["subject"], "default/cm-%d" % i)
            self.assertEqual(ce["datacontenttype"], "application/json")
            self.assertEqual(int(ev["object"]["data"]["seq"]), i)

    def test_batch_max_bytes_and_oversized_event(self):
        rx = self.receiver()
        conf = sink_config(**self.base_conf(rx, batch_max_bytes=8000,
                                            linger_ms=1000))
        res = run_driver(conf, ["size 2500", "submit 6", "size 20000",
                                "submit 1", "size 100", "submit 2",
                                "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 9)
        reqs = rx.requests()
        for r in reqs:
            n = len(r["body"].splitlines())
            if len(r["body"].encode()) > 8000:
                self.assertEqual(n, 1, "an oversized event goes alone")
        big = [r for r in reqs if len(r["body"]) > 20000]
        self.assertEqual(len(big), 1)
        self.assertEqual(seqs(delivered(reqs)), list(range(9)))

    def test_linger_sends_partial_batch(self):
        rx = self.receiver()
        conf = sink_config(**self.base_conf(rx, linger_ms=200,
                                            batch_max_events=100))
        res = run_driver(conf, ["submit 3", "wait 3 10000"])
        self.assert_clean(res)
        self.assertIn("wait acked=3", res.lines)
        self.assertEqual(len(rx.requests()), 1)
        self.assertEqual(len(rx.requests()[0]["body"].splitlines()), 3)

    def test_plain_http(self):
        rx = self.receiver(tls=None)
        self.assertTrue(rx.url.startswith("http://"))
        conf = sink_config(url=rx.url)
        res = run_driver(conf, ["submit 5", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 5)
        self.assertEqual(seqs(delivered(rx.requests())), list(range(5)))
        self.assertTrue(re.match(r"kube-watch-bridge/",
                                 rx.requests()[0]["headers"]["user-agent"]))

    def test_receiver_control_paths_and_log(self):
        log = os.path.join(self.tmp, "requests.jsonl")
        rx = self.receiver(tls=None, log_path=log)
        req = urllib.request.Request(
            rx.url.replace("/ingest", "/_control/script"),
            data=json.dumps([{"status": 503}]).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.status, 204)
        res = run_driver(sink_config(url=rx.url, retry_initial_ms=50),
                         ["submit 2", "flush 10000"])
        self.assert_clean(res)
        self.assertEqual(res.summary["ok"], 2)
        with urllib.request.urlopen(
                rx.url.replace("/ingest", "/_control/requests"),
                timeout=5) as r:
            listed = json.loads(r.read())
        self.assertEqual([x["status"] for x in listed], [503, 200])
        with open(log) as f:
            logged = [json.loads(line) for line in f]
        self.assertEqual(logged, listed)
        self.assertEqual(len(events_of(listed[1]["body"], "application/"
                                       "x-ndjson")), 2)


if __name__ == "__main__":
    unittest.main()
