"""Kafka sink configuration: init() validates every key and every
librdkafka property offline, names the offending key with librdkafka's
own message, never echoes a sensitive value, and opens no connection."""

import os
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402

SECRET = "s3cr3t-Pa55w0rd-value"


class KafkaSinkConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        # A listener that init() must never connect to.
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.brokers = "127.0.0.1:%d" % self.listener.getsockname()[1]

    def tearDown(self):
        self.listener.close()
        self.tmp.cleanup()

    def check(self, body):
        return ku.check_sink_conf(self.tmp.name, body)

    def assert_error(self, body, *needles):
        rc, out, err = self.check(body)
        self.assertEqual(rc, 1, out)
        self.assertTrue(out.startswith("init error: "), out)
        for n in needles:
            self.assertIn(n, out)
        self.assertNotIn(SECRET, out + err)
        return out

    def assert_no_connection(self):
        with self.assertRaises(BlockingIOError):
            conn, _ = self.listener.accept()
            conn.close()

    def test_valid(self):
        for body in [
            'brokers = "%s"; topic = "k8s-events";' % self.brokers,
            'brokers = "%s"; topic = "k8s.{resource}.{namespace}.{kind}'
            '.{cluster}";' % self.brokers,
            'brokers = "%s"; topic = "t"; properties = { '
            'compression_type = "zstd"; linger_ms = 20; '
            'enable_idempotence = false; acks = 1; '
            'message_timeout_ms = 30000; batch_size = 100000; '
            'queue_buffering_max_kbytes = 65536L; };' % self.brokers,
            'brokers = "%s"; topic = "t"; properties = { '
            'security_protocol = "SASL_PLAINTEXT"; sasl_mechanisms = "PLAIN";'
            ' sasl_username = "kwb"; sasl_password = "%s"; };'
            % (self.brokers, SECRET),
        ]:
            rc, out, err = self.check(body)
            self.assertEqual((rc, out), (0, "init ok"), body)
            self.assertNotIn(SECRET, out + err)
        self.assert_no_connection()

    def test_required_keys(self):
        self.assert_error('topic = "t";', "brokers", "missing")
        self.assert_error('brokers = ""; topic = "t";', "brokers")
        self.assert_error('brokers = 5; topic = "t";', "brokers")
        self.assert_error('brokers = "%s";' % self.brokers, "topic",
                          "missing")
        self.assert_error('brokers = "%s"; topic = 3;' % self.brokers,
                          "topic")

    def test_topic(self):
        self.assert_error('brokers = "%s"; topic = "k8s.{resource}.{bad}";'
                          % self.brokers, "topic", "{bad}")
        self.assert_error('brokers = "%s"; topic = "a b";' % self.brokers,
                          "topic", "invalid character")
        self.assert_error('brokers = "%s"; topic = "..";' % self.brokers,
                          "topic")
        self.assert_error('brokers = "%s"; topic = "%s";'
                          % (self.brokers, "x" * 250), "topic", "249")

    def test_properties(self):
        b = 'brokers = "%s"; topic = "t"; ' % self.brokers
        self.assert_error(b + 'properties = { no_such_prop = "1"; };',
                          "no_such_prop", "No such configuration property")
        self.assert_error(b + 'properties = { linger_ms = "soon"; };',
                          "linger_ms", "Invalid value")
        self.assert_error(b + 'properties = { compression_type = "rar"; };',
                          "compression.type")
        # Combinations librdkafka checks only when a client is created.
        self.assert_error(b + 'properties = { acks = 1; };',
                          "acks", "enable.idempotence")
        self.assert_error(b + 'properties = { bootstrap_servers = "x:1"; };',
                          "bootstrap.servers", "brokers")
        self.assert_error(b + 'properties = { delivery_report_only_error = '
                          'true; };', "delivery.report.only.error")
        self.assert_error(b + 'properties = { transactional_id = "x"; };',
                          "transactional.id")
        self.assert_error(b + 'properties = { dr_cb = "x"; };', "dr")
        self.assert_error(b + 'properties = { linger_ms = [1, 2]; };',
                          "linger.ms", "string, number or boolean")
        self.assert_error(b + 'properties = "linger.ms=5";', "properties")
        # A bad value of a sensitive property is reported without it.
        out = self.assert_error(b + 'properties = { sasl_mechanisms = '
                                '"PLAIN"; ssl_key_password = "%s"; '
                                'ssl_key_pem = "%s"; security_protocol = '
                                '"SSL"; };' % (SECRET, SECRET), "properties")
        self.assertNotIn(SECRET, out)
        self.assert_no_connection()

    def test_missing_files_reported_at_start(self):
        # --check passes where secrets are not mounted; start() fails.
        body = ('brokers = "%s"; topic = "t"; properties = { '
                'security_protocol = "SSL"; '
                'ssl_ca_location = "%s/missing-ca.crt"; };'
                % (self.brokers, self.tmp.name))
        rc, out, err = self.check(body)
        self.assertEqual((rc, out), (0, "init ok"))
        with self.assertRaises(RuntimeError) as ctx:
            drv = ku.SinkDriver(self.tmp.name, body)
            drv.close()
        self.assertIn("start error", str(ctx.exception))
        self.assert_no_connection()

    def test_no_secret_in_logs_at_runtime(self):
        mock = ku.KafkaMock(topics={"events": 1})
        try:
            drv = ku.SinkDriver(
                self.tmp.name,
                'brokers = "%s"; topic = "events"; properties = { '
                'security_protocol = "SASL_PLAINTEXT"; sasl_mechanisms = '
                '"PLAIN"; sasl_username = "kwb"; sasl_password = "%s"; '
                'debug = "broker,security,conf"; };'
                % (mock.bootstrap, SECRET))
            drv.submit(3)
            drv.poll(2)
            self.assertEqual(drv.close(), 0)
            log = drv.log_text()
            self.assertIn("librdkafka", log)
            self.assertNotIn(SECRET, log)
        finally:
            mock.close()


if __name__ == "__main__":
    unittest.main()
