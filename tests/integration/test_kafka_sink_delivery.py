"""Kafka sink, driven through its ops against librdkafka's mock cluster:
every accepted event becomes exactly one message, key = uid, the SPEC's
headers, one uid in one partition in order, and every token acked once,
OK, only after delivery."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402


class KafkaSinkDelivery(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.mock = ku.KafkaMock(topics={"events": 6})
        self.driver = None

    def tearDown(self):
        try:
            if self.driver:
                rc = self.driver.close()
                self.assertEqual(rc, 0, self.driver.log_text()[-3000:])
        finally:
            self.mock.close()
            self.tmp.cleanup()

    def test_burst_exactly_once_keys_headers_order(self):
        n = 600
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events";' % self.mock.bootstrap,
            uids=23)
        self.assertTrue(self.driver.ready(10))
        self.driver.submit(n // 2)
        self.driver.submit(n // 2, size=3000)
        self.assertEqual(self.driver.wait_acks(n, 30), n)
        self.assertEqual(self.driver.cmd("flush 1000"), "flush 0")

        self.assertEqual(self.driver.bad_acks, [])
        self.assertEqual(sorted(self.driver.acks), list(range(1, n + 1)))
        for token, (status, reason) in self.driver.acks.items():
            self.assertEqual((status, reason), ("OK", None), token)

        msgs = ku.consume(self.mock.bootstrap, "events", expect=n)
        self.assertEqual(len(msgs), n)
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events), list(range(1, n + 1)))
        # The value is the event exactly as submitted, not a copy made
        # after the driver scribbled over acked buffers.
        for rv, ev in events.items():
            self.assertEqual(ev["uid"], "uid-%04d" % ((rv - 1) % 23))
            self.assertEqual(ev["object"]["metadata"]["resourceVersion"],
                             str(rv))
        # All six partitions are used by 23 uids.
        self.assertGreater(len({m["partition"] for m in msgs}), 2)

    def test_topic_template(self):
        n = 40
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "k8s.{resource}.{cluster}";'
            % self.mock.bootstrap, uids=8, cluster="prod:eu/1")
        self.driver.submit(n)
        self.assertEqual(self.driver.wait_acks(n, 30), n)
        self.assertTrue(all(s == "OK" for s, _ in self.driver.acks.values()))
        # Illegal topic characters of the value become '_'.
        pods = ku.consume(self.mock.bootstrap, "k8s.pods.prod_eu_1",
                          expect=30)
        nss = ku.consume(self.mock.bootstrap, "k8s.namespaces.prod_eu_1",
                         expect=10)
        self.assertEqual(len(pods), 30)
        self.assertEqual(len(nss), 10)
        ku.check_messages(self, pods, cluster="prod:eu/1")
        ku.check_messages(self, nss, cluster="prod:eu/1")
        self.assertTrue(all(json_kind(m) == "Pod" for m in pods))
        self.assertTrue(all(m["headers"]["namespace"] == "" for m in nss))

    def test_watch_topic_overrides_sink_topic(self):
        # The driver's cluster-scoped objects come from watch
        # "v1/namespaces", the others from "v1/pods".
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "k8s.{resource}";' % self.mock.bootstrap,
            uids=8, extra='watches = ( { api = "v1"; resource = "pods"; }, '
            '{ api = "v1"; resource = "namespaces"; '
            'topic = "cluster-scoped"; } );')
        self.driver.submit(40)
        self.assertEqual(self.driver.wait_acks(40, 30), 40)
        self.assertTrue(all(s == "OK" for s, _ in self.driver.acks.values()))
        pods = ku.consume(self.mock.bootstrap, "k8s.pods", expect=30)
        nss = ku.consume(self.mock.bootstrap, "cluster-scoped", expect=10)
        self.assertEqual(len(pods), 30)
        self.assertEqual(len(nss), 10)
        ku.check_messages(self, pods)
        ku.check_messages(self, nss)
        self.assertTrue(all(json_kind(m) == "Pod" for m in pods))
        self.assertTrue(all(json_kind(m) == "Namespace" for m in nss))
        self.assertEqual(ku.consume(self.mock.bootstrap, "k8s.namespaces"),
                         [])


def json_kind(msg):
    return msg["headers"]["kind"]


if __name__ == "__main__":
    unittest.main()
