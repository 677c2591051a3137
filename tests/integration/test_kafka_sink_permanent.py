"""Kafka sink, permanent and surfaced failures: an event over
message.max.bytes, a topic authorisation error and an unknown topic are
acked KWB_ACK_FAIL with a reason naming librdkafka's error (the pipeline
dead-letters them); a delivery timeout the user configured is acked
KWB_ACK_RETRY; every other event is still delivered, each token acked
exactly once."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402

PRODUCE = 0
TOPIC_AUTHORIZATION_FAILED = 29


class KafkaSinkPermanent(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.mock = ku.KafkaMock(topics={"events": 3})
        self.driver = None

    def tearDown(self):
        try:
            if self.driver:
                rc = self.driver.close()
                self.assertEqual(rc, 0, self.driver.log_text()[-3000:])
        finally:
            self.mock.close()
            self.tmp.cleanup()

    def start(self, props=""):
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events"; properties = { %s };'
            % (self.mock.bootstrap, props), uids=7)
        self.assertTrue(self.driver.ready(10))

    def test_message_too_large(self):
        self.start('message_max_bytes = 100000;')
        self.driver.submit(10)
        self.assertEqual(self.driver.cmd("big 150000"), "submitted 1")
        self.driver.submit(10)
        self.assertEqual(self.driver.wait_acks(21, 20), 21)
        self.assertEqual(self.driver.bad_acks, [])
        status, reason = self.driver.acks[11]
        self.assertEqual(status, "FAIL")
        self.assertIn("MSG_SIZE_TOO_LARGE", reason)
        for token in list(range(1, 11)) + list(range(12, 22)):
            self.assertEqual(self.driver.acks[token], ("OK", None))
        msgs = ku.consume(self.mock.bootstrap, "events", expect=20)
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events),
                         list(range(1, 11)) + list(range(12, 22)))
        # A big event under the limit goes through.
        self.assertEqual(self.driver.cmd("big 90000"), "submitted 1")
        self.assertEqual(self.driver.wait_acks(22, 20), 22)
        self.assertEqual(self.driver.acks[22], ("OK", None))

    def test_topic_authorization_failed(self):
        self.start()
        self.driver.submit(30)
        self.assertEqual(self.driver.wait_acks(30, 20), 30)
        self.mock.cmd("error %d %d 1" % (PRODUCE, TOPIC_AUTHORIZATION_FAILED))
        self.driver.submit(30)
        self.assertEqual(self.driver.wait_acks(60, 30), 60)
        self.assertEqual(self.driver.bad_acks, [])
        acks = self.driver.acks
        failed = sorted(t for t, (s, _) in acks.items() if s == "FAIL")
        ok = sorted(t for t, (s, _) in acks.items() if s == "OK")
        self.assertGreater(len(failed), 0)
        self.assertEqual(len(failed) + len(ok), 60)
        for t in failed:
            self.assertIn("TOPIC_AUTHORIZATION_FAILED", acks[t][1])
        # OK means in the topic; a failed event was not written.
        msgs = ku.consume(self.mock.bootstrap, "events", expect=len(ok))
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events), ok)

    def test_unknown_topic(self):
        # A topic the cluster reports as unknown (auto-create off): after
        # topic.metadata.propagation.max.ms every event for it FAILs, the
        # first ones by delivery report, later ones refused at produce.
        self.mock.cmd("topic-error missing 3")  # UNKNOWN_TOPIC_OR_PART
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "k8s.{resource}"; properties = { '
            'topic_metadata_propagation_max_ms = 1000; };'
            % self.mock.bootstrap, uids=4,
            extra='watches = ( { api = "v1"; resource = "pods"; '
            'topic = "missing"; } );')
        self.assertTrue(self.driver.ready(10))
        self.driver.submit(8)
        self.assertEqual(self.driver.wait_acks(8, 30), 8)
        self.driver.submit(8)
        self.assertEqual(self.driver.wait_acks(16, 30), 16)
        self.assertEqual(self.driver.bad_acks, [])
        acks = self.driver.acks
        for t in range(1, 17):
            status, reason = acks[t]
            if t % 4 == 0:  # uid 3: a Namespace, watch v1/namespaces
                self.assertEqual((status, reason), ("OK", None))
            else:
                self.assertEqual(status, "FAIL")
                self.assertRegex(reason, "UNKNOWN_TOPIC")
        nss = ku.consume(self.mock.bootstrap, "k8s.namespaces", expect=4)
        self.assertEqual(len(ku.check_messages(self, nss)), 4)

    def test_user_message_timeout_is_retry(self):
        self.start('message_timeout_ms = 1500;')
        self.mock.cmd("all-down")
        self.driver.submit(20)
        self.assertEqual(self.driver.wait_acks(20, 30), 20)
        for token, (status, reason) in self.driver.acks.items():
            self.assertEqual(status, "RETRY", token)
            self.assertIn("_MSG_TIMED_OUT", reason)
        self.mock.cmd("all-up")
        self.driver.submit(5)
        self.assertEqual(self.driver.wait_acks(25, 30), 25)
        for token in range(21, 26):
            self.assertEqual(self.driver.acks[token], ("OK", None))


if __name__ == "__main__":
    unittest.main()
