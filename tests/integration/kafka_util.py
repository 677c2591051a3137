"""Helpers for the Kafka integration tests.

KafkaMock runs tests/helpers/kafka_mock.c (librdkafka's mock cluster on
127.0.0.1, ephemeral ports) and sends it fault-injection commands.
SinkDriver runs tests/helpers/kafka_sink_driver.c, which drives the Kafka
sink through its kwb_sink_ops. consume() reads a topic back with kcat, an
independent consumer.

Timeouts scale with KWB_TEST_TIMEOUT_MULT (sanitizer and valgrind runs).
"""

import json
import os
import queue
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("KWB_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(HERE)))
BUILD_DIR = os.environ.get("KWB_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1"))


def helper(name):
    path = os.path.join(BUILD_DIR, "tests", name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("helper %s not built (KWB_BUILD_DIR=%s)"
                           % (name, BUILD_DIR))
    return path


def scaled(seconds):
    return seconds * MULT


class LineReader:
    """Reads a child's stdout in a thread so that reads can time out."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(stream,),
                                       daemon=True)
        self.thread.start()

    def _run(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def close(self, stream):
        self.thread.join(5)
        stream.close()

    def get(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no output within %.1fs" % timeout)
        if line is None:
            raise EOFError("process closed its output")
        return line


class KafkaMock:
    """librdkafka's mock cluster in a child process."""

    def __init__(self, brokers=3, topics=None):
        args = [helper("kafka_mock"), "--brokers", str(brokers)]
        for name, parts in (topics or {}).items():
            args += ["--topic", "%s:%d" % (name, parts)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.out = LineReader(self.proc.stdout)
        self.bootstrap = self.out.get(scaled(10))
        for addr in self.bootstrap.split(","):
            if not addr.startswith("127.0.0.1:"):
                raise RuntimeError("mock not on loopback: %s" % addr)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.out.get(scaled(10))
        if reply != "ok":
            raise RuntimeError("mock command %r: %s" % (line, reply))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close(self.proc.stdout)


class SinkDriver:
    """The Kafka sink driven through its ops, as the pipeline would."""

    def __init__(self, tmpdir, sink_conf, uids=10, cluster="test-cluster",
                 extra=""):
        self.conf_path = os.path.join(tmpdir, "sink-%d.conf" % id(self))
        with open(self.conf_path, "w") as f:
            f.write("sink = {\n%s\n};\n%s\n" % (sink_conf, extra))
        self.stderr_path = self.conf_path + ".stderr"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [helper("kafka_sink_driver"), "--conf", self.conf_path,
             "--uids", str(uids), "--cluster", cluster],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, bufsize=1)
        self.out = LineReader(self.proc.stdout)
        self.acks = {}  # token -> (status, reason)
        self.ack_order = []
        self.bad_acks = []
        first = self.out.get(scaled(15))
        if first != "started":
            self.close()
            raise RuntimeError("driver did not start: %s" % first)

    def _collect(self, timeout):
        """Read lines until a command's answer; record acks on the way."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.out.get(max(0.1, deadline - time.monotonic()))
            if line.startswith("ack "):
                parts = line.split(" ", 3)
                token = int(parts[1])
                reason = parts[3] if len(parts) > 3 else None
                if token in self.acks:
                    self.bad_acks.append(token)
                self.acks[token] = (parts[2], reason)
                self.ack_order.append(token)
            elif line.startswith("bad-ack "):
                self.bad_acks.append(int(line.split()[1]))
            else:
                return line

    def cmd(self, line, timeout=30):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._collect(scaled(timeout) + 5)

    def submit(self, n, size=0):
        reply = self.cmd("submit %d %d" % (n, size), timeout=120)
        words = reply.split()
        if words[0] != "submitted" or int(words[1]) != n:
            raise RuntimeError("submit: %s" % reply)
        return int(words[3])  # -EAGAIN count

    def wait_acks(self, n, seconds):
        reply = self.cmd("wait-acks %d %d" % (n, int(scaled(seconds) * 1000)),
                         timeout=seconds)
        return int(reply.split()[1])

    def poll(self, seconds):
        reply = self.cmd("poll %d" % int(seconds * 1000), timeout=seconds)
        return int(reply.split()[1])

    def ready(self, seconds):
        reply = self.cmd("ready %d" % int(scaled(seconds) * 1000),
                         timeout=seconds)
        return reply == "ready 1"

    def log_text(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close(self.proc.stdout)
        self.stderr.close()
        return self.proc.returncode


def check_sink_conf(tmpdir, sink_conf):
    """Run the sink's init() only; returns (exit code, output)."""
    path = os.path.join(tmpdir, "check.conf")
    with open(path, "w") as f:
        f.write("sink = {\n%s\n};\n" % sink_conf)
    res = subprocess.run([helper("kafka_sink_driver"), "--conf", path,
                          "--check"], capture_output=True, text=True,
                         timeout=scaled(30))
    return res.returncode, res.stdout.strip(), res.stderr


def consume(bootstrap, topic, expect=None, seconds=20):
    """All messages of `topic` (kcat JSON envelopes, headers as a dict).
    With `expect`, reads again until at least that many are there or the
    deadline passes."""
    deadline = time.monotonic() + scaled(seconds)
    while True:
        res = subprocess.run(
            ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
             "-e", "-J", "-q", "-m", "10"],
            capture_output=True, text=True, timeout=scaled(60))
        msgs = []
        for line in res.stdout.splitlines():
            if not line.strip():
                continue
            m = json.loads(line)
            hdrs = m.get("headers") or []
            m["headers"] = dict(zip(hdrs[0::2], hdrs[1::2]))
            m["header_list"] = hdrs
            msgs.append(m)
        if expect is None or len(msgs) >= expect or \
                time.monotonic() > deadline:
            return msgs
        time.sleep(0.5)


def check_messages(test, msgs, cluster="test-cluster"):
    """Assert the SPEC's message shape on every message: value = one JSON
    event, key = its uid, headers type/kind/namespace/cluster/
    resourceVersion equal to the event's fields (namespace "" for
    cluster-scoped objects); one uid always in one partition, in
    resourceVersion order there. Returns the events by resourceVersion."""
    events = {}
    partition_of = {}
    last_rv = {}
    for m in sorted(msgs, key=lambda x: (x["partition"], x["offset"])):
        ev = json.loads(m["payload"])
        test.assertIsInstance(ev, dict)
        test.assertEqual(m["key"], ev["uid"])
        test.assertEqual([h for h in m["header_list"][0::2]],
                         ["type", "kind", "namespace", "cluster",
                          "resourceVersion"])
        h = m["headers"]
        test.assertEqual(h["type"], ev["type"])
        test.assertEqual(h["kind"], ev["kind"])
        test.assertEqual(h["namespace"], ev["namespace"])
        test.assertEqual(h["cluster"], cluster)
        test.assertEqual(ev["cluster"], cluster)
        test.assertEqual(h["resourceVersion"], ev["resourceVersion"])
        if ev["kind"] == "Namespace":
            test.assertEqual(h["namespace"], "")
        uid = ev["uid"]
        test.assertEqual(partition_of.setdefault(uid, m["partition"]),
                         m["partition"], "uid %s in two partitions" % uid)
        rv = int(ev["resourceVersion"])
        test.assertGreater(rv, last_rv.get(uid, 0),
                           "uid %s out of order" % uid)
        last_rv[uid] = rv
        test.assertNotIn(rv, events, "rv %d delivered twice" % rv)
        events[rv] = ev
    return events
