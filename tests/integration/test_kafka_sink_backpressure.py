"""Kafka sink backpressure: with librdkafka's queue full submit() returns
-EAGAIN and keeps nothing; after polling, the rest is accepted and every
event is delivered exactly once."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402


class KafkaSinkBackpressure(unittest.TestCase):
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

    def test_queue_full_is_eagain(self):
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events"; properties = { '
            'queue_buffering_max_messages = 5; };' % self.mock.bootstrap,
            uids=4)
        self.assertTrue(self.driver.ready(10))
        self.mock.cmd("all-down")
        self.assertEqual(self.driver.cmd("try-submit 20"),
                         "accepted 5 eagain 1")
        self.assertEqual(self.driver.cmd("try-submit 1"),
                         "accepted 0 eagain 1")
        self.assertEqual(self.driver.poll(1), 0)
        self.mock.cmd("all-up")
        # submit retries -EAGAIN after a poll, as the pipeline does.
        eagain = self.driver.submit(195)
        self.assertGreater(eagain, 0)
        self.assertEqual(self.driver.wait_acks(200, 60), 200)
        self.assertEqual(self.driver.bad_acks, [])
        self.assertEqual(sorted(self.driver.acks), list(range(1, 201)))
        self.assertTrue(all(s == "OK" for s, _ in self.driver.acks.values()))
        msgs = ku.consume(self.mock.bootstrap, "events", expect=200)
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events), list(range(1, 201)))


if __name__ == "__main__":
    unittest.main()
