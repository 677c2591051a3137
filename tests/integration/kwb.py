"""Integration-test harness: runs the real kube-watch-bridge binary against
the test API server (tests/apiserver) and reads what the sinks received.

    from kwb import Agent, ApiServer, wait_for, read_events
    with ApiServer() as api:
        agent = Agent(api, tmp).start()
        ...
        agent.stop()

Environment: KWB_BUILD_DIR (default <repo>/build), KWB_SOURCE_DIR,
KWB_TEST_TIMEOUT_MULT (scales every deadline, for sanitizer builds),
KWB_KEEP_TMP=1 keeps temp dirs for inspection.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KWB_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("KWB_BUILD_DIR") or os.path.join(SRC, "build")
BINARY = os.path.join(BUILD, "kube-watch-bridge")
MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1") or 1)

sys.path.insert(0, os.path.join(SRC, "tests", "apiserver"))
from client import ApiServer, ApiError  # noqa: E402,F401


# Known test secrets (API tokens, Secret values, hash keys, webhook
# credentials): no agent log and no sink output of any test may contain
# one. Tests add theirs with register_secret(); TestCase.tearDown checks.
SECRETS = set()
SECRET_MIN_LEN = 8


def register_secret(*values):
    """Declare test secrets (str or bytes) that must never appear in an
    agent log or sink output. Short values would match by chance: at
    least SECRET_MIN_LEN characters."""
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="surrogateescape")
        v = v.strip()
        if len(v) < SECRET_MIN_LEN:
            raise ValueError("test secret %r too short to grep for" % v)
        SECRETS.add(v)


def find_secrets(data):
    """The registered secrets found in data (bytes or str), by name of
    their first characters only, so a failure never prints a secret."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="surrogateescape")
    return sorted(s[:3] + "..." for s in SECRETS if s in data)


def wait_for(cond, timeout=10.0, interval=0.05, what=None):
    """Poll cond() until it is truthy; deadline scaled by MULT. Returns the
    value, or raises AssertionError naming `what`."""
    deadline = time.monotonic() + timeout * MULT
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for %s" %
                                 (what or getattr(cond, "__name__", "cond")))
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_events(path):
    """Every JSON line of a file sink, oldest first: rotated files
    (path.N ... path.1) before the current one."""
    out = []
    rotated = []
    n = 1
    while os.path.exists("%s.%d" % (path, n)):
        rotated.append("%s.%d" % (path, n))
        n += 1
    for old in reversed(rotated):
        out += read_one(old)
    return out + read_one(path)


def read_one(path):
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    if data and not data.endswith(b"\n"):
        # A crash can leave a partial last line; the agent removes it on
        # its next start (it was never acknowledged).
        data = data[:data.rfind(b"\n") + 1]
    for n, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError("line %d of %s is not JSON: %s: %r" %
                                 (n + 1, path, e, line[:200]))
    return out


def conf_str(v):
    return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')


def watch_conf(api, resource, namespace=None, **kw):
    d = {"api": api, "resource": resource}
    if namespace:
        d["namespace"] = namespace
    d.update(kw)
    return d


def render_group(d):
    parts = []
    for k, v in d.items():
        if isinstance(v, bool):
            parts.append("%s = %s;" % (k, "true" if v else "false"))
        elif isinstance(v, (int, float)):
            parts.append("%s = %s;" % (k, v))
        elif isinstance(v, dict):
            parts.append("%s = { %s };" % (k, render_group(v)))
        else:
            parts.append("%s = %s;" % (k, conf_str(str(v))))
    return " ".join(parts)


class Agent:
    """One kube-watch-bridge process with a generated config."""

    def __init__(self, api, tmp, watches=None, sinks=None, initial="emit",
                 cluster="test-cluster", watch_defaults=None, extra="",
                 state_dir=None, metrics=False, cluster_extra=None,
                 pipeline=None, log_level="debug"):
        self.api = api
        self.tmp = tmp
        self.events_path = os.path.join(tmp, "events.jsonl")
        self.state_dir = state_dir or os.path.join(tmp, "state")
        self.log_path = os.path.join(tmp, "agent.log")
        self.conf_path = os.path.join(tmp, "agent.conf")
        self.watches = watches or [watch_conf("v1", "pods")]
        self.sinks = sinks if sinks is not None else [
            {"type": "file", "path": self.events_path}]
        self.initial = initial
        self.cluster = cluster
        wd = {"timeout_min_seconds": 300, "timeout_max_seconds": 600,
              "backoff": {"initial_seconds": 0.1, "max_seconds": 2.0}}
        wd.update(watch_defaults or {})
        self.watch_defaults = wd
        self.pipeline = pipeline
        self.extra = extra
        self.metrics_port = free_port() if metrics else None
        self.cluster_extra = cluster_extra or {}
        self.log_level = log_level
        self.proc = None
        self.runs = 0
        self.write_config()

    def write_config(self):
        cl = {"name": self.cluster, "server": self.api.url}
        cl.update(self.cluster_extra)
        lines = [
            "cluster = { %s };" % render_group(cl),
            "state = { dir = %s; checkpoint_interval_ms = 200; };" %
            conf_str(self.state_dir),
            "initial = %s;" % conf_str(self.initial),
            "log_level = %s;" % conf_str(self.log_level),
            "watch_defaults = { %s };" % render_group(self.watch_defaults),
        ]
        if self.pipeline:
            lines.append("pipeline = { %s };" % render_group(self.pipeline))
        lines.append("watches = ( %s );" % ", ".join(
            "{ %s }" % render_group(w) for w in self.watches))
        lines.append("sinks = ( %s );" % ", ".join(
            "{ %s }" % render_group(s) for s in self.sinks))
        if self.metrics_port:
            lines.append("metrics_address = \"127.0.0.1:%d\";" %
                         self.metrics_port)
        lines.append(self.extra)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, env=None, wrapper=None):
        """wrapper: argv prefix, e.g. ["valgrind", ...]."""
        self.runs += 1
        logf = open(self.log_path, "ab")
        logf.write(("--- run %d ---\n" % self.runs).encode())
        logf.flush()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(list(wrapper or []) +
                                     [BINARY, "--config", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, env=e)
        logf.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM and wait: returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("agent did not stop within %ss" % timeout)
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def events(self):
        return read_events(self.events_path)

    def output_files(self):
        """Every file this agent wrote for others to read: its log, file
        sinks and dead-letter files."""
        out = [self.log_path]
        for sk in self.sinks:
            for k in ("path", "dead_letter_path"):
                if sk.get(k):
                    out.append(sk[k])
        return out

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self):
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_events(self, n, timeout=20.0, path=None):
        p = path or self.events_path

        def enough():
            ev = read_events(p)
            return ev if len(ev) >= n else None
        try:
            return wait_for(enough, timeout, what="%d events" % n)
        except AssertionError:
            raise AssertionError("got %d of %d events; agent log tail:\n%s" %
                                 (len(read_events(p)), n,
                                  self.log()[-3000:]))

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=5) as r:
            return parse_metrics(r.read().decode())

    def http_status(self, path):
        url = "http://127.0.0.1:%d%s" % (self.metrics_port, path)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def checkpoint(self, watch_id="v1/pods"):
        """(rv, {uid: rv}) of the checkpoint file, or None."""
        path = os.path.join(self.state_dir,
                            watch_id.replace("/", "_") + ".ckpt")
        try:
            with open(path) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return None
        rv = lines[2][3:]
        objs = {}
        for line in lines[4:]:
            if line.startswith("sha256 ") or not line:
                continue
            uid, orv, _ns, _name = line.split("\t")
            objs[uid] = orv
        return rv, objs


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            raise AssertionError("bad metrics line: %r" % line)
        labels = {}
        if m.group(3):
            for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3)):
                labels[lm.group(1)] = lm.group(2)
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


def pod(name, labels=None, namespace="default", image="nginx:1.25"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def key(e):
    return (e["uid"], e["resourceVersion"], e["type"])


class TestCase(unittest.TestCase):
    """Temp dir, API server and agents cleaned up after each test."""

    api_options = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kwb-it-")
        self.api = ApiServer(**self.api_options).start()
        self.agents = []
        # More files to grep for secrets (webhook receiver dumps, ...).
        self.secret_checked_files = []

    def tearDown(self):
        failed = any(err for _, err in getattr(self._outcome, "errors", [])
                     if err) if hasattr(self._outcome, "errors") else False
        for a in self.agents:
            if a.alive():
                a.kill()
        leaks = self.secret_leaks()
        self.api.stop()
        if os.environ.get("KWB_KEEP_TMP") or failed or leaks:
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if leaks:
            raise AssertionError("test secrets leaked: %s" %
                                 "; ".join(leaks))

    def secret_leaks(self):
        """Grep every agent log and sink output of this test for the
        registered secrets (and the API server's bearer token)."""
        if getattr(self.api, "token", None) and \
                len(self.api.token) >= SECRET_MIN_LEN:
            register_secret(self.api.token)
        if not SECRETS:
            return []
        files = []
        for a in self.agents:
            files.extend(a.output_files())
        files.extend(self.secret_checked_files)
        leaks = []
        for path in sorted(set(files)):
            try:
                with open(path, "rb") as f:
                    found = find_secrets(f.read())
            except (FileNotFoundError, IsADirectoryError):
                continue
            if found:
                leaks.append("%s contains %s" % (path, ", ".join(found)))
        return leaks

    def agent(self, **kw):
        a = Agent(self.api, self.tmp, **kw)
        self.agents.append(a)
        return a

    # -- assertions over what a sink received

    def assertNoDuplicates(self, events):
        seen = {}
        for i, e in enumerate(events):
            k = key(e)
            self.assertNotIn(k, seen, "duplicate %r at lines %d and %d" %
                             (k, seen.get(k, -1) + 1, i + 1))
            seen[k] = i

    def assertPerObjectOrder(self, events):
        """Per uid, resourceVersions strictly increase (the test server's
        RVs are integers; the agent never compares them)."""
        last = {}
        for e in events:
            rv = int(e["resourceVersion"])
            if e["uid"] in last:
                self.assertGreater(rv, last[e["uid"]],
                                   "out of order for %s" % e["name"])
            last[e["uid"]] = rv

    def assertEnvelope(self, e, cluster="test-cluster"):
        for f in ("type", "cluster", "apiVersion", "kind", "resource",
                  "namespace", "name", "uid", "resourceVersion", "origin",
                  "observedAt", "object"):
            self.assertIn(f, e)
        self.assertIn(e["type"], ("ADDED", "MODIFIED", "DELETED"))
        self.assertEqual(e["cluster"], cluster)
        self.assertIn(e["origin"], ("watch", "list"))
        self.assertRegex(e["observedAt"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        md = e["object"]["metadata"]
        self.assertEqual(md["uid"], e["uid"])
        self.assertEqual(md["name"], e["name"])
        self.assertEqual(md.get("namespace", ""), e["namespace"])
        self.assertEqual(md["resourceVersion"], e["resourceVersion"])
        self.assertEqual(e["object"]["kind"], e["kind"])
        self.assertEqual(e["object"]["apiVersion"], e["apiVersion"])

    def assertMatchesServer(self, events, resource="pods", namespace=None):
        """The last event per uid reflects the server's current state:
        live objects at their current RV, deleted ones DELETED."""
        items, _, _ = self.api.list_all(resource, namespace=namespace)
        live = {o["metadata"]["uid"]: o["metadata"]["resourceVersion"]
                for o in items}
        last = {}
        for e in events:
            last[e["uid"]] = e
        for uid, rv in live.items():
            self.assertIn(uid, last, "object %s never delivered" % uid)
            self.assertNotEqual(last[uid]["type"], "DELETED")
            self.assertEqual(last[uid]["resourceVersion"], rv)
        for uid, e in last.items():
            if uid not in live:
                self.assertEqual(e["type"], "DELETED",
                                 "%s gone on the server but its last event "
                                 "is %s" % (e["name"], e["type"]))


def main():
    if not os.path.exists(BINARY):
        sys.stderr.write("binary %s missing: build first\n" % BINARY)
        sys.exit(1)
    unittest.main(verbosity=2)
