#!/usr/bin/env python3
"""A scriptable HTTP(S) webhook receiver for kube-watch-bridge tests.

Python standard library only. Use it in-process:

    certs = make_certs(tmpdir)
    rx = Receiver(tls=certs, secret=b"s3cret", token="tok",
                  require_client_cert=True, script=[{"status": 500}])
    rx.start()           # listens on 127.0.0.1, ephemeral port
    ... rx.url, rx.requests(), rx.wait_for(lambda reqs: ..., timeout)
    rx.stop()

or as a program (python3 webhook_receiver.py --help), which prints
"listening <url>" and serves until killed.

Behaviour per POST request, in this order:
  * the body is read (Content-Length), the bearer token checked (when
    `token` is set) and the X-KWB-Signature verified (when `secret` is
    set: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>")));
  * a failed check answers `auth_failure_status` (default 401) without
    consuming the script;
  * with `max_body` set, a body of more than max_body bytes answers 413
    Payload Too Large, also without consuming the script;
  * otherwise the next script entry, if any, is consumed: a dict with
    "status" (int), optional "delay" (seconds to sleep before answering,
    to cause client timeouts), "retry_after" (header value, str) and
    "body" (str), or "drop": true to close the connection without an
    answer; without entries `default_status` (200) is answered.
Every request is recorded (time, method, path, headers, body, status
answered, sig_ok, token_ok, peer port, client certificate CN) in memory,
in the JSON-lines file `log_path` when given, and served as JSON by
GET /_control/requests. POST /_control/script with a JSON list replaces
the script. TLS handshake failures are recorded in tls_errors().
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time

CONTROL = "/_control/"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ca(cwd, name, cn):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             name + ".key", "-out", name + ".crt", "-days", "2", "-subj",
             "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf(cwd, name, cn, ca, ext):
    _openssl("req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
             cwd=cwd)
    with open(os.path.join(cwd, name + ".ext"), "w") as f:
        f.write(ext)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
             "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt",
             "-days", "2", "-extfile", name + ".ext", cwd=cwd)


def make_certs(directory):
    """Create, with the openssl CLI, in `directory`: a CA, a server
    certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1) and a client
    certificate signed by it, and an unrelated CA ("other_ca"). Returns a
    dict of absolute paths."""
    d = os.path.abspath(directory)
    os.makedirs(d, exist_ok=True)
    _ca(d, "ca", "kwb-test-ca")
    _ca(d, "other-ca", "kwb-other-ca")
    _leaf(d, "server", "127.0.0.1", "ca",
          "subjectAltName=IP:127.0.0.1\n"
          "basicConstraints=CA:FALSE\n"
          "keyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "kwb-client", "ca",
          "basicConstraints=CA:FALSE\n"
          "keyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=clientAuth\n")
    p = lambda n: os.path.join(d, n)  # noqa: E731
    return {
        "dir": d,
        "ca": p("ca.crt"), "ca_key": p("ca.key"),
        "other_ca": p("other-ca.crt"),
        "server_cert": p("server.crt"), "server_key": p("server.key"),
        "client_cert": p("client.crt"), "client_key": p("client.key"),
    }


def verify_signature(secret, header, body):
    """True when `header` ("t=<unix>,v1=<hex>") signs `body` (bytes)."""
    if not header:
        return False
    parts = dict(kv.split("=", 1) for kv in header.split(",") if "=" in kv)
    t, v1 = parts.get("t"), parts.get("v1")
    if not t or not v1 or not t.isdigit():
        return False
    want = hmac.new(secret, t.encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, v1)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "kwb-webhook-receiver"

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.server.rx._tls_error(e)
                raise
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        rx = self.server.rx
        if self.path == CONTROL + "requests":
            body = json.dumps(rx.requests()).encode()
            self._send(200, body, {"Content-Type": "application/json"})
        else:
            self._send(404, b"not found\n")

    def do_POST(self):
        rx = self.server.rx
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        if self.path == CONTROL + "script":
            rx.set_script(json.loads(body))
            self._send(204)
            return
        rec = {
            "time": time.time(),
            "method": "POST",
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "peer_port": self.client_address[1],
            "client_cn": None,
            "sig_ok": None,
            "token_ok": None,
        }
        if isinstance(self.request, ssl.SSLSocket):
            cert = self.request.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            rec["client_cn"] = v
        ok = True
        if rx.secret is not None:
            rec["sig_ok"] = verify_signature(
                rx.secret, self.headers.get("X-KWB-Signature"), body)
            ok = ok and rec["sig_ok"]
        if rx.token is not None:
            rec["token_ok"] = (self.headers.get("Authorization")
                               == "Bearer " + rx.token)
            ok = ok and rec["token_ok"]
        if not ok:
            entry = {"status": rx.auth_failure_status, "body": "unauthorized"}
        elif rx.max_body is not None and len(body) > rx.max_body:
            entry = {"status": 413,
                     "body": "payload too large: limit %d bytes" % rx.max_body}
        else:
            entry = rx._next_entry()
        delay = float(entry.get("delay", 0))
        if delay > 0:
            time.sleep(delay)
        if entry.get("drop"):
            rec["status"] = None
            rec["delay"] = delay
            rx._record(rec)
            self.close_connection = True
            try:
                self.request.shutdown(2)  # SHUT_RDWR: no answer at all
            except OSError:
                pass
            return
        status = int(entry.get("status", 200))
        headers = {"Content-Type": "text/plain"}
        if entry.get("retry_after") is not None:
            headers["Retry-After"] = str(entry["retry_after"])
        rec["status"] = status
        rec["delay"] = delay
        rx._record(rec)
        try:
            self._send(status, str(entry.get("body", "ok")).encode(),
                       headers)
        except OSError:
            pass  # the client gave up (timeout): recorded anyway


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # TLS failures are recorded; broken pipes are expected


class Receiver:
    def __init__(self, tls=None, secret=None, token=None,
                 require_client_cert=False, script=None, default_status=200,
                 auth_failure_status=401, log_path=None, client_ca=None,
                 max_body=None):
        """tls: None for plain HTTP, else a make_certs() dict (server_cert,
        server_key, ca = CA for client certificates unless client_ca)."""
        self.tls = tls
        self.secret = secret
        self.token = token
        self.require_client_cert = require_client_cert
        self.default_status = default_status
        self.auth_failure_status = auth_failure_status
        self.log_path = log_path
        self.client_ca = client_ca
        self.max_body = max_body
        self._lock = threading.Lock()
        self._script = list(script or [])
        self._requests = []
        self._tls_errors = []
        self._server = None
        self._thread = None

    # -- lifecycle
    def start(self):
        srv = _Server(("127.0.0.1", 0), _Handler)
        srv.rx = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls["server_cert"],
                                self.tls["server_key"])
            if self.require_client_cert:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.client_ca or self.tls["ca"])
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                         do_handshake_on_connect=False)
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d/ingest" % (scheme, self.port)

    # -- script and records
    def set_script(self, entries):
        with self._lock:
            self._script = list(entries)

    def _next_entry(self):
        with self._lock:
            if self._script:
                return self._script.pop(0)
        return {"status": self.default_status}

    def _record(self, rec):
        with self._lock:
            rec["seq"] = len(self._requests)
            self._requests.append(rec)
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")

    def _tls_error(self, e):
        with self._lock:
            self._tls_errors.append({"time": time.time(), "error": str(e)})

    def requests(self):
        with self._lock:
            return [dict(r) for r in self._requests]

    def tls_errors(self):
        with self._lock:
            return list(self._tls_errors)

    def wait_for(self, pred, timeout):
        """Poll pred(requests) until true or timeout; returns its value."""
        end = time.monotonic() + timeout
        while True:
            v = pred(self.requests())
            if v or time.monotonic() >= end:
                return v
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tls-dir", help="make certificates here and serve "
                    "HTTPS (paths printed as JSON)")
    ap.add_argument("--mtls", action="store_true",
                    help="require a client certificate")
    ap.add_argument("--secret-file", help="verify X-KWB-Signature")
    ap.add_argument("--token", help="require Authorization: Bearer TOKEN")
    ap.add_argument("--script", default="[]",
                    help='JSON list, e.g. [{"status":500},{"status":200}]')
    ap.add_argument("--log", help="JSON-lines request log")
    ap.add_argument("--max-body", type=int,
                    help="answer 413 to bodies of more than this many bytes")
    args = ap.parse_args()
    certs = make_certs(args.tls_dir) if args.tls_dir else None
    secret = None
    if args.secret_file:
        with open(args.secret_file, "rb") as f:
            secret = f.read()
        if secret.endswith(b"\r\n"):
            secret = secret[:-2]
        elif secret.endswith(b"\n"):
            secret = secret[:-1]
    rx = Receiver(tls=certs, secret=secret, token=args.token,
                  require_client_cert=args.mtls,
                  script=json.loads(args.script), log_path=args.log,
                  max_body=args.max_body)
    rx.start()
    if certs:
        print("certs " + json.dumps(certs), flush=True)
    print("listening " + rx.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    rx.stop()


if __name__ == "__main__":
    sys.exit(main())
