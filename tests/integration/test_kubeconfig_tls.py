#!/usr/bin/env python3
"""Cluster access through a kubeconfig over HTTPS with a bearer token.

The test API server serves HTTPS (self-signed certificate for 127.0.0.1)
and demands a token. leader_driver processes reach it through
`cluster.kubeconfig` only:
- certificate-authority-data (in-memory CA) + tokenFile (relative path):
  it becomes leader; the Lease names it.
- Token rotation: the server stops accepting the old token; after the
  first 401 the token file is rewritten, re-read at once because of the
  401, and the leader keeps renewing (no LOST).
- certificate-authority (a file, relative path) + a static token: reads
  the Lease (standby logs the holder).
- A CA that did not sign the server's certificate: never gets through
  (a TLS error is logged); insecure-skip-tls-verify: true gets through.
"""

import base64
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leaderlib as L  # noqa: E402

TOKEN1 = "tok-one.abcdef"
TOKEN2 = "tok-two.ghijkl"


def write(path, text):
    tmp = path + ".tmp"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(tmp, path)


def kubeconfig(tmp, name, api, cluster_extra, user_extra):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "config")
    write(path, """apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test-cluster
  cluster:
    server: %s
%s
contexts:
- name: test
  context:
    cluster: test-cluster
    user: test-user
users:
- name: test-user
  user:
%s
""" % (api.url, cluster_extra, user_extra))
    return d, 'kubeconfig = "%s";' % path


def lease_renewed_by(api, identity):
    first = api.lease()
    if not first or first["spec"].get("holderIdentity") != identity:
        return False
    time.sleep(L.RETRY_S * 2.5)
    second = api.lease()
    return (second["spec"].get("holderIdentity") == identity and
            second["metadata"]["resourceVersion"] !=
            first["metadata"]["resourceVersion"])


def body(tmp, api, drivers):
    with open(api.tls[0], "rb") as f:
        ca_b64 = base64.b64encode(f.read()).decode()

    # CA data + tokenFile.
    d, cluster = kubeconfig(tmp, "a", api,
                            "    certificate-authority-data: " + ca_b64,
                            "    tokenFile: token")
    write(os.path.join(d, "token"), TOKEN1 + "\n")
    a = L.Driver(tmp, api, "replica-a", cluster)
    drivers.append(a)
    L.check(a.wait_line("LEADER", 10) is not None,
            "leader over HTTPS with CA data and a token file")
    L.check(lease_renewed_by(api, a.identity),
            "the Lease names replica-a and is renewed")

    # Rotation: the old token is rejected from now on; once the leader got
    # its 401, the file is rewritten; the 401 forces the re-read.
    since = api.control("requests", clear=True)["next"]
    api.control("token", token=TOKEN2)
    api.token = TOKEN2
    deadline = time.monotonic() + 5 * L.MULT
    got401 = False
    while not got401 and time.monotonic() < deadline:
        reqs = api.control("requests", since=since)["requests"]
        got401 = any(r["status"] == 401 for r in reqs)
        time.sleep(0.02)
    L.check(got401, "the old token is refused (401)")
    write(os.path.join(d, "token"), TOKEN2 + "\n")
    time.sleep(L.LEASE_S + 1)
    L.check(not a.has("LOST"), "token rotation does not cost the lease")
    L.check(lease_renewed_by(api, a.identity),
            "renewals go on with the new token")

    # CA file (relative) + static token: a standby that reads the Lease.
    d, cluster = kubeconfig(tmp, "b", api,
                            "    certificate-authority: ca.crt",
                            "    token: " + TOKEN2)
    with open(api.tls[0]) as f:
        write(os.path.join(d, "ca.crt"), f.read())
    b = L.Driver(tmp, api, "replica-b", cluster)
    drivers.append(b)
    deadline = time.monotonic() + 10 * L.MULT
    while time.monotonic() < deadline and \
            "another replica is leader" not in b.stderr_text():
        time.sleep(0.1)
    L.check("another replica is leader" in b.stderr_text(),
            "CA file + static token: the standby reads the Lease")

    # A CA that did not sign the server certificate.
    other_ca, _ = L.self_signed(tmp, "other")
    with open(other_ca, "rb") as f:
        other_b64 = base64.b64encode(f.read()).decode()
    _, cluster = kubeconfig(tmp, "c", api,
                            "    certificate-authority-data: " + other_b64,
                            "    token: " + TOKEN2)
    c = L.Driver(tmp, api, "replica-c", cluster)
    drivers.append(c)
    deadline = time.monotonic() + 10 * L.MULT
    while time.monotonic() < deadline and \
            "get failed" not in c.stderr_text():
        time.sleep(0.1)
    err = c.stderr_text()
    L.check("get failed" in err and "certificate" in err.lower(),
            "a wrong CA is refused with a TLS error")
    L.check("another replica is leader" not in err,
            "nothing was read through the wrong CA")

    # insecure-skip-tls-verify.
    _, cluster = kubeconfig(tmp, "d", api,
                            "    insecure-skip-tls-verify: true",
                            "    token: " + TOKEN2)
    e = L.Driver(tmp, api, "replica-d", cluster)
    drivers.append(e)
    deadline = time.monotonic() + 10 * L.MULT
    while time.monotonic() < deadline and \
            "another replica is leader" not in e.stderr_text():
        time.sleep(0.1)
    L.check("another replica is leader" in e.stderr_text(),
            "insecure-skip-tls-verify gets through without a CA")
    for drv in drivers:
        L.check(TOKEN1 not in drv.stderr_text() and
                TOKEN2 not in drv.stderr_text(),
                "%s never logs a token" % drv.identity)


if __name__ == "__main__":
    L.run(body, tls=True, token=TOKEN1)
