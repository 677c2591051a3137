"""Shared pieces of the leader-election integration tests.

Starts the test API server (tests/apiserver/apiserver.py) on 127.0.0.1 with
an ephemeral port and leader_driver processes (tests/helpers/leader_driver.c)
that print STARTED/LEADER/LOST/STOPPED lines.
"""

import json
import os
import shutil
import ssl
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
    """The test API server; with tls=(cert, key) it serves HTTPS and
    requests from here verify against cert; with token it demands it."""

    def __init__(self, tmp, tls=None, token=None):
        self.tmp = tmp
        self.tls = tls
        self.token = token
        port_file = os.path.join(tmp, "api.port")
        self.log = open(os.path.join(tmp, "api.log"), "wb")
        cmd = [sys.executable,
               os.path.join(SOURCE, "tests", "apiserver", "apiserver.py"),
               "--host", "127.0.0.1", "--port", "0", "--port-file", port_file]
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if token:
            cmd += ["--token", token]
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20 * MULT
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                fail("test API server did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http",
                                          self.port)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        ctx = ssl.create_default_context(cafile=self.tls[0]) \
            if self.tls else None
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
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

    def __init__(self, tmp, api, identity, cluster=None):
        """cluster: the cluster group's keys (libconfig text); default
        server = the API server's URL."""
        self.identity = identity
        conf = os.path.join(tmp, identity + ".conf")
        if cluster is None:
            cluster = 'server = "%s";' % api.url
        with open(conf, "w") as f:
            f.write("""cluster = { name = "t"; %s };
watches = ( { api = "v1"; resource = "pods"; } );
sinks = ( { type = "file"; path = "%s/events.jsonl"; } );
leader_election = {
  enabled = true; namespace = "default"; name = "%s"; identity = "%s";
  lease_duration_seconds = %d; renew_deadline_seconds = %d;
  retry_period_seconds = %d;
};
""" % (cluster, tmp, LEASE_NAME, identity, LEASE_S, RENEW_S, RETRY_S))
        self.err = open(os.path.join(tmp, identity + ".err"), "wb")
        # Never in-cluster, even when the tests run inside a pod.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KUBERNETES_SERVICE_")}
        self.proc = subprocess.Popen([find_driver(), "--config", conf],
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     env=env)
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


def run(body, tls=False, token=None):
    """Run body(tmp, api, drivers) with a fresh API server (HTTPS with a
    self-signed certificate for 127.0.0.1 when tls); clean up always."""
    tmp = tempfile.mkdtemp(prefix="kwb-leader-")
    cert = None
    if tls:
        cert = self_signed(tmp, "server")
    api = ApiServer(tmp, tls=cert, token=token)
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


def self_signed(tmp, name):
    """A self-signed EC certificate for IP 127.0.0.1: (cert, key) paths."""
    cert = os.path.join(tmp, name + ".crt")
    key = os.path.join(tmp, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key
