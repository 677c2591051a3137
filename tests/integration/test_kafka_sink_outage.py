"""Kafka sink across broker outages: with every broker down nothing is
acknowledged (librdkafka retries forever by default), and once they are
back every event is delivered and acked OK; nothing lost, nothing twice."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402


class KafkaSinkOutage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.mock = ku.KafkaMock(topics={"events": 4})
        self.driver = None

    def tearDown(self):
        try:
            if self.driver:
                rc = self.driver.close()
                self.assertEqual(rc, 0, self.driver.log_text()[-3000:])
        finally:
            self.mock.close()
            self.tmp.cleanup()

    def assert_all_delivered(self, n):
        self.assertEqual(self.driver.bad_acks, [])
        self.assertEqual(sorted(self.driver.acks), list(range(1, n + 1)))
        for token, (status, reason) in self.driver.acks.items():
            self.assertEqual(status, "OK", "token %d: %s" % (token, reason))
        msgs = ku.consume(self.mock.bootstrap, "events", expect=n)
        events = ku.check_messages(self, msgs)
        self.assertEqual(sorted(events), list(range(1, n + 1)))

    def test_all_brokers_down_during_burst(self):
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events";' % self.mock.bootstrap,
            uids=13)
        self.assertTrue(self.driver.ready(10))
        self.driver.submit(100)
        self.assertEqual(self.driver.wait_acks(100, 20), 100)

        self.mock.cmd("all-down")
        self.driver.submit(150)
        self.driver.submit(150, size=2000)
        # Down for a while: longer than librdkafka's request and retry
        # timers, and no event may be acked meanwhile.
        self.assertEqual(self.driver.poll(4), 100)
        self.assertEqual(self.driver.poll(2), 100)

        self.mock.cmd("all-up")
        self.assertEqual(self.driver.wait_acks(400, 60), 400)
        self.assertEqual(self.driver.cmd("flush 1000"), "flush 0")
        self.assert_all_delivered(400)
        log = self.driver.log_text()
        self.assertIn("all brokers down", log)
        self.assertIn("delivering again", log)

    def test_brokers_down_before_start(self):
        self.mock.cmd("all-down")
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events";' % self.mock.bootstrap,
            uids=5)
        self.assertFalse(self.driver.ready(1))
        self.driver.submit(50)
        self.assertEqual(self.driver.poll(3), 0)
        # flush cannot finish without brokers: it times out, acks nothing.
        self.assertEqual(self.driver.cmd("flush 500"), "flush -110")
        self.assertEqual(len(self.driver.acks), 0)

        self.mock.cmd("all-up")
        self.assertEqual(self.driver.wait_acks(50, 60), 50)
        self.assertTrue(self.driver.ready(10))
        self.assert_all_delivered(50)

    def test_one_broker_down(self):
        for partition, broker in [(0, 2), (1, 1), (2, 3), (3, 1)]:
            self.mock.cmd("leader events %d %d" % (partition, broker))
        self.driver = ku.SinkDriver(
            self.tmp.name,
            'brokers = "%s"; topic = "events";' % self.mock.bootstrap,
            uids=11)
        self.assertTrue(self.driver.ready(10))
        self.mock.cmd("down 2")
        self.driver.submit(200)
        # Partitions led by the other brokers deliver; partition 0, led
        # by broker 2, waits for it (the mock never moves leadership).
        during = self.driver.poll(3)
        self.assertGreater(during, 0)
        self.assertLess(during, 200)
        self.assertTrue(all(s == "OK" for s, _ in self.driver.acks.values()))
        self.mock.cmd("up 2")
        self.assertEqual(self.driver.wait_acks(200, 60), 200)
        self.assert_all_delivered(200)


if __name__ == "__main__":
    unittest.main()
