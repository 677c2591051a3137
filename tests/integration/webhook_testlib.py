"""Shared helpers of tests/integration/test_webhook_*.py: run the sink
driver (tests/helpers/webhook_sink_driver.c) and parse what it printed."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from webhook_receiver import Receiver, make_certs  # noqa: E402,F401

# One multiplier for slow (sanitizer, valgrind) runs.
TIMEOUT_MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1") or 1)


def build_dir():
    d = os.environ.get("KWB_BUILD_DIR")
    if d:
        return d
    return os.path.join(os.path.dirname(os.path.dirname(HERE)), "build")


def driver_path():
    for p in (os.path.join(build_dir(), "tests", "webhook_sink_driver"),
              os.path.join(build_dir(), "webhook_sink_driver")):
        if os.path.exists(p):
            return p
    raise unittest.SkipTest("webhook_sink_driver not built")


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, conf_value(x))
                               for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "( " + ", ".join(conf_value(x) for x in v) + " )"
    return json.dumps(str(v))


def sink_config(**keys):
    """libconfig text `sink = { k = v; ... };` for the driver."""
    return "sink = {\n" + "".join(
        "  %s = %s;\n" % (k, conf_value(v)) for k, v in keys.items()) + "};\n"


class DriverResult:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err
        self.lines = out.splitlines()
        self.acks = []  # (token, status, reason)
        for line in self.lines:
            m = re.match(r"ack (\d+) (\w+) (.*)$", line)
            if m:
                self.acks.append((int(m.group(1)), m.group(2), m.group(3)))
        self.summary = {}
        for line in self.lines:
            if line.startswith("summary "):
                for kv in line.split()[1:]:
                    k, v = kv.split("=")
                    self.summary[k] = int(v)

    def tokens(self, status):
        return [t for t, s, _ in self.acks if s == status]

    def logs(self):
        out = []
        for line in self.err.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def __str__(self):
        return "rc=%s\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out,
                                                   self.err[-4000:])


def run_driver(config, commands, timeout=60, check=False):
    args = [driver_path(), "--config-string", config]
    if check:
        args.append("--check")
    args += list(commands)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * TIMEOUT_MULT, text=True)
    return DriverResult(p.returncode, p.stdout, p.stderr)


def start_driver(config):
    """Interactive driver: write commands to .stdin, read .stdout."""
    return subprocess.Popen([driver_path(), "--config-string", config, "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)


def events_of(body, content_type):
    """The SPEC events of one request body, in order."""
    if content_type.startswith("application/x-ndjson"):
        assert body.endswith("\n"), "ndjson body must end with a newline"
        return [json.loads(line) for line in body.split("\n")[:-1]]
    if content_type.startswith("application/cloudevents-batch+json"):
        return [ce["data"] for ce in json.loads(body)]
    return json.loads(body)


def delivered(requests, status=200):
    """Events of the requests answered `status`, in order."""
    out = []
    for r in requests:
        if r["status"] == status:
            out += events_of(r["body"], r["headers"]["content-type"])
    return out


def seqs(events):
    return [int(e["object"]["data"]["seq"]) for e in events]


class WebhookTest(unittest.TestCase):
    """Temp dir with certificates and a secret, receivers stopped at
    teardown."""

    SECRET = b"kwb-test-secret"

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="kwb-webhook-")
        self.tmp = self._tmp.name
        self.certs = make_certs(os.path.join(self.tmp, "certs"))
        self.secret_file = self.write("hmac", self.SECRET + b"\n")
        self.receivers = []

    def tearDown(self):
        for rx in self.receivers:
            rx.stop()
        self._tmp.cleanup()

    def write(self, name, data, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(path, mode)
        return path

    def receiver(self, **kw):
        kw.setdefault("tls", self.certs)
        rx = Receiver(**kw)
        rx.start()
        self.receivers.append(rx)
        return rx

    def base_conf(self, rx, **keys):
        conf = {"url": rx.url}
        if rx.tls:
            conf["ca_file"] = self.certs["ca"]
        conf.update(keys)
        return conf

    def assert_clean(self, res):
        self.assertEqual(res.summary.get("dup"), 0, str(res))
        self.assertEqual(res.summary.get("unknown"), 0, str(res))
        self.assertEqual(res.rc, 0, str(res))
