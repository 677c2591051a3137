"""Client for the test API server (tests/apiserver/apiserver.py).

Usage from any Python test:

    sys.path.insert(0, os.path.join(KWB_SOURCE_DIR, "tests", "apiserver"))
    from client import ApiServer, make_pod

    with ApiServer(token="t0k", tls=True).start() as api:
        api.create("pods", make_pod("web-0"), namespace="default")
        api.fail_next(2, code=503, verb="watch")
        print(api.request_log())

Python 3 standard library only. See README.md for every option and control
call.
"""

import base64
import gc
import http.client
import importlib.util
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
SERVER = os.path.join(HERE, "apiserver.py")


def _load_server_module():
    spec = importlib.util.spec_from_file_location("kwb_test_apiserver",
                                                  SERVER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_srv = _load_server_module()
make_pod = _srv.make_pod
RESOURCES = {r.key: r for r in _srv.RESOURCES}


class ApiError(Exception):
    """A non-2xx answer: .status (HTTP code), .body (parsed Status)."""

    def __init__(self, status, body, headers=None):
        Exception.__init__(self, "HTTP %d: %s" % (
            status, body.get("message") if isinstance(body, dict) else body))
        self.status = status
        self.body = body
        self.headers = headers or {}

    @property
    def reason(self):
        return self.body.get("reason") if isinstance(self.body, dict) \
            else None


def make_certs(directory, hosts=("127.0.0.1", "::1", "localhost")):
    """Creates ca.crt/ca.key and server.crt/server.key (signed by the CA,
    SAN for hosts) with the openssl CLI. Returns dict of paths."""
    os.makedirs(directory, exist_ok=True)
    p = {k: os.path.join(directory, k) for k in
         ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr",
          "ext.cnf")}
    san = ",".join(("IP:%s" % h) if h[0].isdigit() or ":" in h
                   else ("DNS:%s" % h) for h in hosts)
    with open(p["ext.cnf"], "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % san)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", p["ca.key"], "-out", p["ca.crt"], "-days", "2",
        "-subj", "/CN=kwb-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes",
        "-keyout", p["server.key"], "-out", p["server.csr"],
        "-subj", "/CN=kwb-test-apiserver")
    run("openssl", "x509", "-req", "-in", p["server.csr"], "-CA", p["ca.crt"],
        "-CAkey", p["ca.key"], "-CAcreateserial", "-out", p["server.crt"],
        "-days", "2", "-extfile", p["ext.cnf"])
    return {"ca": p["ca.crt"], "cert": p["server.crt"],
            "key": p["server.key"], "ca_key": p["ca.key"]}


class Watch:
    """A streaming watch: iterate events() (parsed dicts) or lines() (raw
    bytes). The connection closes on close() or exit of a with-block."""

    def __init__(self, conn, resp):
        self.conn = conn
        self.resp = resp
        self.status = resp.status

    def lines(self):
        while True:
            try:
                line = self.resp.readline()
            except (http.client.IncompleteRead, OSError, ValueError):
                return
            if not line:
                return
            yield line

    def events(self):
        for line in self.lines():
            yield json.loads(line)

    def next_event(self):
        """The next event dict, or None at end of stream."""
        for ev in self.events():
            return ev
        return None

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ApiServer:
    """Spawns apiserver.py on an ephemeral loopback port.

    Options: token, tls (bool; certificates are made in the temp dir),
    bookmark_interval, history_size, page_cap, watch_list ("on", "reject",
    "ignore"), min_request_timeout, seed_pods, churn (ops/s), initial_rv,
    strict_namespaces, host, verbose, extra_args (list), port (0 =
    ephemeral; pass the old port to restart a server in the same place,
    with initial_rv above the old revision to mimic a restarted cluster)."""

    def __init__(self, token=None, tls=False, bookmark_interval=None,
                 history_size=None, page_cap=None, watch_list="on",
                 min_request_timeout=None, seed_pods=0, churn=None,
                 initial_rv=None, strict_namespaces=False, host="127.0.0.1",
                 verbose=False, extra_args=(), port=0):
        self.token = token
        self.fixed_port = port
        self.tls = tls
        self.host = host
        self.opts = dict(bookmark_interval=bookmark_interval,
                         history_size=history_size, page_cap=page_cap,
                         min_request_timeout=min_request_timeout,
                         seed_pods=seed_pods or None, churn=churn,
                         initial_rv=initial_rv)
        self.watch_list = watch_list
        self.strict_namespaces = strict_namespaces
        self.verbose = verbose
        self.extra_args = list(extra_args)
        self.proc = None
        self.dir = None
        self.port = None
        self.certs = None
        self.stderr_path = None

    # -- lifecycle
    def start(self, timeout=15.0):
        self.dir = tempfile.mkdtemp(prefix="kwb-apiserver-")
        port_file = os.path.join(self.dir, "port")
        cmd = [sys.executable, SERVER, "--host", self.host,
               "--port", str(self.fixed_port or 0), "--port-file", port_file]
        if self.token:
            tf = os.path.join(self.dir, "token.in")
            with open(tf, "w") as f:
                f.write(self.token)
            cmd += ["--token-file", tf]
        if self.tls:
            self.certs = make_certs(os.path.join(self.dir, "pki"))
            cmd += ["--tls-cert", self.certs["cert"],
                    "--tls-key", self.certs["key"]]
        for k, v in self.opts.items():
            if v is not None:
                cmd += ["--" + k.replace("_", "-"), str(v)]
        if self.watch_list == "reject":
            cmd.append("--no-watch-list")
        elif self.watch_list == "ignore":
            cmd.append("--watch-list-ignore")
        if self.strict_namespaces:
            cmd.append("--strict-namespaces")
        if self.verbose:
            cmd.append("--verbose")
        cmd += self.extra_args
        self.stderr_path = os.path.join(self.dir, "apiserver.log")
        errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=errf, stderr=errf)
        errf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    self.port = int(f.read().strip())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        log = self.server_log()
        self.stop()
        raise RuntimeError("apiserver did not start: %s" % log[-2000:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir and not os.environ.get("KWB_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def server_log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("https" if self.tls else "http", h, self.port)

    @property
    def ca_file(self):
        return self.certs["ca"] if self.certs else None

    def write_kubeconfig(self, path, token=None, namespace="default"):
        """A kubeconfig for kubectl (JSON is valid YAML)."""
        cluster = {"server": self.url}
        if self.tls:
            cluster["certificate-authority"] = self.certs["ca"]
        user = {}
        tok = token if token is not None else self.token
        if tok:
            user["token"] = tok
        cfg = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "test", "cluster": cluster}],
               "users": [{"name": "test", "user": user}],
               "contexts": [{"name": "test", "context": {
                   "cluster": "test", "user": "test",
                   "namespace": namespace}}],
               "current-context": "test"}
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    # -- HTTP
    def _conn(self, timeout=30.0):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.certs["ca"])
            return http.client.HTTPSConnection(self.host, self.port,
                                               timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)

    def _headers(self, token, content_type, extra):
        h = {"Accept": "application/json"}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if content_type:
            h["Content-Type"] = content_type
        h.update(extra or {})
        return h

    def raw(self, method, path, body=None, query=None, token=None,
            content_type=None, headers=None, timeout=30.0):
        """-> (status, headers dict, body bytes). Never raises on HTTP
        status."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            content_type = content_type or "application/json"
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body,
                         headers=self._headers(token, content_type, headers))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def request(self, method, path, body=None, query=None, token=None,
                content_type=None, headers=None, timeout=30.0):
        """Parsed JSON body of a 2xx answer; raises ApiError otherwise."""
        status, hdrs, data = self.raw(method, path, body, query, token,
                                      content_type, headers, timeout)
        gc_was = gc.isenabled()
        gc.disable()      # big lists: avoid GC passes over fresh objects
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        finally:
            if gc_was:
                gc.enable()
        if status >= 300:
            raise ApiError(status, parsed, hdrs)
        return parsed

    @staticmethod
    def path(resource, namespace=None, name=None, sub=None):
        """API path of a resource key ("pods", "apps/deployments",
        "events.k8s.io/events", "example.com/widgets", ...)."""
        r = RESOURCES[resource]
        p = r.base
        if namespace and r.namespaced:
            p += "/namespaces/" + namespace
        p += "/" + r.plural
        if name:
            p += "/" + name
            if sub:
                p += "/" + sub
        return p

    # -- objects
    def create(self, resource, obj, namespace="default", **kw):
        return self.request("POST", self.path(resource, namespace), obj, **kw)

    def get(self, resource, name, namespace="default", **kw):
        return self.request("GET", self.path(resource, namespace, name), **kw)

    def update(self, resource, obj, namespace="default", sub=None, **kw):
        return self.request("PUT", self.path(resource, namespace,
                                             obj["metadata"]["name"], sub),
                            obj, **kw)

    def update_status(self, resource, obj, namespace="default", **kw):
        return self.update(resource, obj, namespace, "status", **kw)

    def patch(self, resource, name, patch, namespace="default",
              patch_type="merge", sub=None, **kw):
        ctype = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json",
                 "apply": "application/apply-patch+yaml"}[patch_type]
        return self.request("PATCH", self.path(resource, namespace, name, sub),
                            json.dumps(patch), content_type=ctype, **kw)

    def delete(self, resource, name, namespace="default", preconditions=None,
               **kw):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions:
            body["preconditions"] = preconditions
        return self.request("DELETE", self.path(resource, namespace, name),
                            body, **kw)

    def list(self, resource, namespace=None, **params):
        """One LIST request; params are query parameters (limit, continue,
        resourceVersion, resourceVersionMatch, labelSelector, ...)."""
        return self.request("GET", self.path(resource, namespace),
                            query={k: v for k, v in params.items()
                                   if v is not None})

    def list_all(self, resource, namespace=None, limit=None, **params):
        """Follows continue tokens. -> (items, resourceVersion, pages)."""
        items, pages, cont = [], 0, None
        while True:
            q = dict(params)
            if limit:
                q["limit"] = limit
            if cont:
                q["continue"] = cont
            out = self.list(resource, namespace, **q)
            pages += 1
            items += out["items"]
            cont = out["metadata"].get("continue")
            if not cont:
                return items, out["metadata"]["resourceVersion"], pages

    def watch(self, resource, namespace=None, token=None, timeout=30.0,
              **params):
        """Opens a watch (watch=1 added). Returns a Watch; raises ApiError on
        a non-200 answer."""
        q = {"watch": "1"}
        q.update({k: v for k, v in params.items() if v is not None})
        path = self.path(resource, namespace) + "?" + \
            urllib.parse.urlencode(q)
        conn = self._conn(timeout)
        conn.request("GET", path, headers=self._headers(token, None, None))
        resp = conn.getresponse()
        if resp.status != 200:
            data = resp.read()
            conn.close()
            try:
                body = json.loads(data)
            except ValueError:
                body = data
            raise ApiError(resp.status, body, dict(resp.getheaders()))
        return Watch(conn, resp)

    # -- control calls
    def control(self, name, body=None, method="POST"):
        return self.request(method, "/_control/" + name,
                            body if body is not None else {}, token="")

    def health(self):
        return self.control("health", method="GET")

    def state(self):
        return self.control("state", method="GET")

    def resource_version(self):
        return int(self.health()["resourceVersion"])

    def bulk(self, op, count, resource="pods", namespace="default",
             prefix="bulk", size=3000, labels=None, names=False):
        """op: create | modify | delete. -> {count, firstResourceVersion,
        lastResourceVersion, seconds[, names]}"""
        return self.control("bulk", {
            "op": op, "count": count, "resource": resource,
            "namespace": namespace, "prefix": prefix, "size": size,
            "labels": labels, "names": names})

    def drop_watches(self, mode="between", resource=None, rst=False):
        """mode: between | mid_event | mid_chunk | clean. -> {watches: n}"""
        return self.control("drop-watches", {"mode": mode,
                                              "resource": resource,
                                              "rst": rst})

    def inject_garbage(self, line="this is not json {{{", resource=None):
        """Writes line + "\\n" as its own chunk into every watch; bytes are
        sent as they are (e.g. invalid UTF-8)."""
        if isinstance(line, bytes):
            return self.control("garbage", {
                "line_b64": base64.b64encode(line).decode(),
                "resource": resource})
        return self.control("garbage", {"line": line, "resource": resource})

    def inject_event(self, event, resource=None):
        """Writes one crafted event (a dict, e.g. an ERROR with a Status)
        into every watch, as its own line."""
        return self.inject_garbage(json.dumps(event, separators=(",", ":")),
                                   resource)

    def poison(self, line, resource="pods", rv=None):
        """A sticky bad line at revision rv (default: the next): open
        watches get it now, and every watch starting before rv gets it
        again (see README). Returns {"watches", "resourceVersion"}."""
        args = {"resource": resource, "rv": rv}
        if isinstance(line, bytes):
            args["line_b64"] = base64.b64encode(line).decode()
        else:
            args["line"] = line
        return self.control("poison", args)

    def replay(self, count=1, resource=None):
        """Every watch re-sends the events it sent for the last count
        revisions (duplicates, to test de-duplication)."""
        return self.control("replay", {"count": count, "resource": resource})

    def fail_next(self, count=1, code=500, path=None, verb=None, method=None,
                  watch=None, retry_after=None, path_regex=None,
                  message=None, reason=None, hang=None, body=None,
                  content_type=None, headers_only=False, hold=None):
        """body (str or bytes) answers these raw bytes with content_type
        (default text/plain) instead of a Status: a proxy's HTML page, an
        empty 200. headers_only sends the status line and headers and
        nothing more, holding the connection until the client closes it
        (or hold seconds)."""
        args = {
            "count": count, "code": code, "path": path, "verb": verb,
            "method": method, "watch": watch, "retry_after": retry_after,
            "path_regex": path_regex, "message": message, "reason": reason,
            "hang": hang, "content_type": content_type,
            "headers_only": headers_only, "hold": hold}
        if isinstance(body, bytes):
            args["body_b64"] = base64.b64encode(body).decode()
        elif body is not None:
            args["body"] = body
        return self.control("fail", args)

    def clear_faults(self):
        return self.control("clear-faults")

    def forbid(self, resource, verbs=None):
        return self.control("forbid", {"resource": resource, "verbs": verbs})

    def allow(self, resource=None):
        return self.control("allow", {"resource": resource})

    def compact(self, resource_version=None):
        return self.control("compact",
                            {"resourceVersion": resource_version})["compacted"]

    def expire_continue(self):
        return self.control("expire-continue")

    def stall_watches(self, seconds=None, resource=None):
        return self.control("stall", {"seconds": seconds,
                                       "resource": resource})

    def unstall_watches(self):
        return self.control("unstall")

    def set_token(self, token, also_accept=()):
        self.token = token
        return self.control("token", {"token": token,
                                       "also_accept": list(also_accept)})

    def configure(self, **kw):
        """bookmark_interval, page_cap, watch_list, history_size,
        min_request_timeout, strict_namespaces."""
        return self.control("config", kw)

    def churn(self, rate, namespaces=("default",), target=20):
        return self.control("churn", {"rate": rate,
                                       "namespaces": list(namespaces),
                                       "target": target})

    def request_log(self, since=0):
        return self.control("requests", {"since": since},
                            method="GET")["requests"]

    def clear_request_log(self):
        return self.control("requests", method="DELETE")

    def watch_counts(self):
        """{"current": {key: n}, "max": {key: n}}; key e.g. "pods",
        "apps/deployments"."""
        return self.control("watches", method="GET")

    def reset_watch_max(self):
        return self.control("watches/reset-max")

    def wait_for(self, cond, timeout=10.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(interval)
        return cond()
