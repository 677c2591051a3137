"""Shared helpers of the tests of the test API server (not a test itself)."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from client import ApiServer, ApiError, make_pod  # noqa: E402,F401

# Sanitizer/valgrind or loaded machines: stretch time bounds (team-wide).
MULT = float(os.environ.get("KWB_TEST_TIMEOUT_MULT", "1") or 1)

KUBECTL = shutil.which("kubectl") or (
    "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else None)


def require_kubectl():
    """Exits 0 with a visible message when kubectl is missing."""
    if KUBECTL is None:
        print("SKIPPED: kubectl not found")
        sys.exit(0)


_CACHE = None


def kubectl_env():
    """Environment for kubectl: its discovery/HTTP cache in a private temp
    dir (not ~/.kube), shared by the calls of one test process."""
    global _CACHE
    if _CACHE is None:
        _CACHE = tempfile.TemporaryDirectory(prefix="kwb-kubecache-")
    env = dict(os.environ)
    env["KUBECACHEDIR"] = _CACHE.name
    return env


_MINOR = None


def kubectl_minor():
    """The client's minor version (Debian's kubernetes-client is 1.20)."""
    global _MINOR
    if _MINOR is None:
        _MINOR = 99
        try:
            out = subprocess.run([KUBECTL, "version", "--client", "-o",
                                  "json"], capture_output=True, text=True,
                                 timeout=30).stdout
            _MINOR = int("".join(c for c in json.loads(out)[
                "clientVersion"]["minor"] if c.isdigit()))
        except (ValueError, KeyError, OSError, subprocess.SubprocessError):
            pass
    return _MINOR


def kubectl(kubeconfig, *args, timeout=30, input=None, check=True):
    args = list(args)
    # Clients before 1.24 validate create/apply against the protobuf
    # /openapi/v2 document, which this server does not serve: the server
    # validates instead.
    if args and args[0] in ("create", "apply") and kubectl_minor() < 24:
        args.insert(1, "--validate=false")
    r = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig] + args,
                       capture_output=True, text=True, timeout=timeout,
                       input=input, env=kubectl_env())
    if check and r.returncode != 0:
        raise AssertionError("kubectl %s failed (%d): %s%s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr))
    return r


class RawWatch:
    """A watch read at the HTTP/1.1 chunk level, so tests can tell a clean
    end (terminating chunk) from an abrupt close, a truncated JSON line and
    a truncated chunk.

    read() returns one of
      ("line", bytes)        a complete newline-terminated line
      ("partial", bytes)     chunk data without a newline, then EOF
      ("end", None)          terminating zero-size chunk (clean close)
      ("eof", None)          connection closed between chunks
      ("short_chunk", data)  connection closed inside a chunk
      ("timeout", None)      nothing within the timeout
    """

    def __init__(self, api, resource, namespace=None, timeout=10.0,
                 token=None, **params):
        q = {"watch": "1"}
        q.update({k: v for k, v in params.items() if v is not None})
        path = api.path(resource, namespace) + "?" + \
            urllib.parse.urlencode(q)
        sock = socket.create_connection((api.host, api.port), timeout)
        if api.tls:
            ctx = ssl.create_default_context(cafile=api.ca_file)
            sock = ctx.wrap_socket(sock, server_hostname=api.host)
        self.sock = sock
        tok = api.token if token is None else token
        hdr = "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n" \
            % (path, api.host)
        if tok:
            hdr += "Authorization: Bearer %s\r\n" % tok
        sock.sendall((hdr + "\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for ln in lines[1:]:
            if b":" in ln:
                k, v = ln.split(b":", 1)
                self.headers[k.strip().lower().decode()] = v.strip().decode()
        self.pending = b""
        self.closed = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError()
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _chunk(self):
        """-> bytes of one chunk, b"" for the terminator; raises EOFError
        (between chunks) or ValueError (inside a chunk, data attached)."""
        try:
            size_line = self._until(b"\r\n")
        except EOFError:
            raise
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            self._until(b"\r\n")
            return b""
        try:
            while len(self.buf) < size + 2:
                self._fill()
        except EOFError:
            e = ValueError("short chunk")
            e.data = self.buf
            raise e
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def read(self, timeout=5.0):
        if b"\n" in self.pending:
            i = self.pending.index(b"\n")
            ln, self.pending = self.pending[:i + 1], self.pending[i + 1:]
            return ("line", ln)
        if self.closed:
            return ("eof", None)
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self._chunk()
                if data == b"":
                    self.closed = True
                    return ("end", None)
                self.pending += data
                if b"\n" in self.pending:
                    return self.read(timeout)
        except socket.timeout:
            return ("timeout", None)
        except EOFError:
            self.closed = True
            if self.pending:
                p, self.pending = self.pending, b""
                return ("partial", p)
            return ("eof", None)
        except ValueError as e:
            self.closed = True
            return ("short_chunk", getattr(e, "data", b""))

    def event(self, timeout=5.0):
        """Next complete event as a dict; AssertionError otherwise."""
        kind, data = self.read(timeout)
        if kind != "line":
            raise AssertionError("expected an event line, got %s %r"
                                 % (kind, data))
        return json.loads(data)

    def events_until(self, pred, timeout=5.0):
        """Reads events until pred(ev) is true; returns all read."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.event(max(0.05, deadline - time.monotonic()))
            out.append(ev)
            if pred(ev):
                return out
        raise AssertionError("condition not met; got %r" % [
            (e["type"], e["object"].get("metadata", {}).get("name"))
            for e in out])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def name_of(ev):
    return ev["object"]["metadata"].get("name")


def rv_of(ev):
    return int(ev["object"]["metadata"]["resourceVersion"])

