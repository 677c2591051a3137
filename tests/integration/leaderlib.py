"""Shared pieces of the leader-election integration tests.

Starts the test API server (tests/apiserver/apiserver.py) on 127.0.0.1 with
an ephemeral port and leader_driver processes (tests/helpers/leader_driver.c)
that print STARTED/LEADER/LOST/STOPPED lines.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("KWB_BUILD_DIR", "build")
SOURCE = os.environ.get("KWB_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
# Sanitizer and valgrind runs are slower: stretch every wait bound.
MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1") or 1)

LEASE_S, RENEW_S, RETRY_S = 3, 2, 1
LEASE_NAME = "kwb-test"
LEASE_PATH = ("/apis/coordination.k8s.io/v1/namespaces/default/leases/"
              + LEASE_NAME)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    raise SystemExit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg, flush=True)


def find_driver():
    for p in (os.path.join(BUILD, "tests", "leader_driver"),
              os.path.join(BUILD, "leader_driver")):
        if os.path.exists(p):
            return p
    fail("leader_driver not found under %s" % BUILD)
    return None


class ApiServer:
    def __init__(self, tmp):
        self.tmp = tmp
        port_file = os.path.join(tmp, "api.port")
        self.log = open(os.path.join(tmp, "api.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable,
             os.path.join(SOURCE, "tests", "apiserver", "apiserver.py"),
             "--host", "127.0.0.1", "--port", "0", "--port-file", port_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20 * MULT
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail("test API server did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def lease(self):
        code, obj = self.call("GET", LEASE_PATH)
        return obj if code == 200 else None

    def control(self, name, **args):
        code, obj = self.call("POST", "/_control/" + name, args)
        if code != 200:
            fail("control %s: HTTP %d %s" % (name, code, obj))
        return obj

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Driver:
    """One leader_driver process; its stdout lines with arrival times."""

    def __init__(self, tmp, api, identity):
        self.identity = identity
        conf = os.path.join(tmp, identity + ".conf")
        with open(conf, "w") as f:
            f.write("""cluster = { name = "t"; server = "%s"; };
watches = ( { api = "v1"; resource = "pods"; } );
sinks = ( { type = "file"; path = "%s/events.jsonl"; } );
leader_election = {
  enabled = true; namespace = "default"; name = "%s"; identity = "%s";
  lease_duration_seconds = %d; renew_deadline_seconds = %d;
  retry_period_seconds = %d;
};
""" % (api.url, tmp, LEASE_NAME, identity, LEASE_S, RENEW_S, RETRY_S))
        self.err = open(os.path.join(tmp, identity + ".err"), "wb")
        self.proc = subprocess.Popen([find_driver(), "--config", conf],
                                     stdout=subprocess.PIPE, stderr=self.err)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(),
                                   raw.decode(errors="replace").strip()))
                self.cond.notify_all()

    def wait_line(self, word, timeout):
        """Arrival time of the first line starting with word, or None."""
        deadline = time.monotonic() + timeout * MULT
        with self.cond:
            while True:
                for t, ln in self.lines:
                    if ln.split(" ")[0] == word:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def has(self, word):
        with self.cond:
            return any(ln.split(" ")[0] == word for _, ln in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.err.close()

    def stderr_text(self):
        with open(self.err.name, "rb") as f:
            return f.read().decode(errors="replace")


def wait_exit(driver, timeout):
    try:
        return driver.proc.wait(timeout * MULT)
    except subprocess.TimeoutExpired:
        return None


def first_leader(drivers, timeout):
    """The first driver to print LEADER within timeout, or None."""
    deadline = time.monotonic() + timeout * MULT
    while time.monotonic() < deadline:
        for d in drivers:
            if d.has("LEADER"):
                return d
        time.sleep(0.02)
    return None


def run(body):
    """Run body(tmp, api) with a fresh API server; clean up always."""
    tmp = tempfile.mkdtemp(prefix="kwb-leader-")
    api = ApiServer(tmp)
    drivers = []
    try:
        body(tmp, api, drivers)
    except SystemExit:
        for d in drivers:
            sys.stderr.write("--- %s stderr:\n%s\n" % (d.identity,
                                                       d.stderr_text()))
        raise
    finally:
        for d in drivers:
            d.stop()
        api.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print("all checks passed", flush=True)
