"""Kafka sink after a fatal producer error (the idempotent producer lost
its sequence with the broker): the sink logs it, acks the affected events
KWB_ACK_RETRY (the pipeline resubmits them), replaces the producer, and
goes on delivering; a non-fatal producer error is a plain RETRY."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402

PRODUCE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


class KafkaSinkFatal(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.mock = ku.KafkaMock(topics={"events": 1})
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events";' % self.mock.bootstrap,
            uids=3)
        self.assertTrue(self.driver.ready(10))

    def tearDown(self):
        try:
            rc = self.driver.close()
            self.assertEqual(rc, 0, self.driver.log_text()[-3000:])
        finally:
            self.mock.close()
            self.tmp.cleanup()

    def run_error(self, err):
        self.driver.submit(5)
        self.assertEqual(self.driver.wait_acks(5, 20), 5)
        self.mock.cmd("error %d %d 1" % (PRODUCE, err))
        self.driver.submit(5)
        self.assertEqual(self.driver.wait_acks(10, 30), 10)
        self.driver.submit(5)
        self.assertEqual(self.driver.wait_acks(15, 30), 15)
        self.assertEqual(self.driver.bad_acks, [])
        acks = self.driver.acks
        self.assertEqual(sorted(acks), list(range(1, 16)))
        for t in range(1, 6):
            self.assertEqual(acks[t], ("OK", None))
        for t in range(11, 16):
            self.assertEqual(acks[t], ("OK", None))
        retried = [t for t in range(6, 11) if acks[t][0] == "RETRY"]
        self.assertGreater(len(retried), 0)
        for t in range(6, 11):
            self.assertIn(acks[t][0], ("OK", "RETRY"))
        ok = sorted(t for t, (s, _) in acks.items() if s == "OK")
        msgs = ku.consume(self.mock.bootstrap, "events", expect=len(ok))
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events), ok)
        return [acks[t][1] for t in retried]

    def test_fatal_error_replaces_producer(self):
        reasons = self.run_error(OUT_OF_ORDER_SEQUENCE_NUMBER)
        for r in reasons:
            self.assertIn("OUT_OF_ORDER_SEQUENCE_NUMBER", r)
        log = self.driver.log_text()
        self.assertIn("fatal producer error, replacing the producer", log)
        self.assertTrue(self.driver.ready(5))

    def test_invalid_epoch_is_retry(self):
        reasons = self.run_error(INVALID_PRODUCER_EPOCH)
        for r in reasons:
            self.assertIn("INVALID_PRODUCER_EPOCH", r)


if __name__ == "__main__":
    unittest.main()
