#!/usr/bin/env python3
"""Client certificates from a kubeconfig (mutual TLS), as kind and
minikube write them.

A TLS front on 127.0.0.1 demands a client certificate signed by a test CA
and relays the bytes to the (plain HTTP) test API server. leader_driver
processes reach it through `cluster.kubeconfig`:
- client-certificate-data / client-key-data (in-memory blobs) and
  certificate-authority-data: leader; the front saw our certificate's CN;
- client-certificate / client-key as files (relative paths): reads the
  Lease;
- no client certificate: the handshake is refused, nothing is read.
"""

import base64
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leaderlib as L  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def client_pki(tmp):
    """A CA and a client certificate (CN kwb-client) it signed."""
    ca, ca_key = os.path.join(tmp, "cca.crt"), os.path.join(tmp, "cca.key")
    crt, key = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
    csr = os.path.join(tmp, "client.csr")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/CN=kwb-test-client-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", key, "-out", csr,
            "-subj", "/CN=kwb-client")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", crt, "-days", "2")
    return ca, crt, key


class MtlsFront:
    """Accepts TLS with a required client certificate, relays to target."""

    def __init__(self, cert, key, client_ca, target_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(client_ca)
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.peers = []      # CNs of accepted client certificates
        self.refused = 0     # failed handshakes
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(10)
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.refused += 1
            conn.close()
            return
        cn = dict(x[0] for x in tls.getpeercert()["subject"]).get(
            "commonName")
        with self.lock:
            self.peers.append(cn)
        up = socket.create_connection(("127.0.0.1", self.target))
        tls.settimeout(None)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, tls), daemon=True)
        t.start()
        pump(tls, up)
        t.join(10)
        tls.close()
        up.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def kubeconfig(tmp, name, url, ca_b64, user_lines):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write("""apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: %s
    server: %s
  name: kind-test
contexts:
- context:
    cluster: kind-test
    user: kind-test
  name: kind-test
current-context: kind-test
preferences: {}
users:
- name: kind-test
  user:
%s
""" % (ca_b64, url, user_lines))
    return d, 'kubeconfig = "%s";' % path


def wait_stderr(drv, text, timeout):
    deadline = time.monotonic() + timeout * L.MULT
    while time.monotonic() < deadline and text not in drv.stderr_text():
        time.sleep(0.1)
    return text in drv.stderr_text()


def body(tmp, api, drivers):
    server_crt, server_key = L.self_signed(tmp, "server")
    ca, crt, key = client_pki(tmp)
    front = MtlsFront(server_crt, server_key, ca, api.port)
    try:
        ca_b64 = b64file(server_crt)

        _, cluster = kubeconfig(
            tmp, "a", front.url, ca_b64,
            "    client-certificate-data: %s\n    client-key-data: %s"
            % (b64file(crt), b64file(key)))
        a = L.Driver(tmp, api, "replica-a", cluster)
        drivers.append(a)
        L.check(a.wait_line("LEADER", 10) is not None,
                "leader through mutual TLS with certificate/key data")
        with front.lock:
            peers = list(front.peers)
        L.check(peers and all(p == "kwb-client" for p in peers),
                "the front saw our client certificate (%s)" % peers[:1])
        lease = api.lease()
        L.check(lease["spec"]["holderIdentity"] == a.identity,
                "the Lease names replica-a")

        d, cluster = kubeconfig(
            tmp, "b", front.url, ca_b64,
            "    client-certificate: client.crt\n"
            "    client-key: keys/client.key")
        os.makedirs(os.path.join(d, "keys"))
        with open(crt) as f, open(os.path.join(d, "client.crt"), "w") as g:
            g.write(f.read())
        with open(key) as f, \
                open(os.path.join(d, "keys", "client.key"), "w") as g:
            g.write(f.read())
        b = L.Driver(tmp, api, "replica-b", cluster)
        drivers.append(b)
        L.check(wait_stderr(b, "another replica is leader", 10),
                "client certificate files (relative paths) work")

        with front.lock:
            refused_before = front.refused
        _, cluster = kubeconfig(tmp, "c", front.url, ca_b64,
                                "    {}")
        c = L.Driver(tmp, api, "replica-c", cluster)
        drivers.append(c)
        L.check(wait_stderr(c, "get failed", 10),
                "without a client certificate the request fails")
        with front.lock:
            refused = front.refused - refused_before
        L.check(refused >= 1, "the front refused the handshake")
        L.check("another replica is leader" not in c.stderr_text(),
                "nothing was read without a client certificate")
    finally:
        front.stop()


if __name__ == "__main__":
    L.run(body)
