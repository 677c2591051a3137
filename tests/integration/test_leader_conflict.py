#!/usr/bin/env python3
"""Leader election under conflicts and failures (test API server faults).

- A 409 on the create (someone else created it first) is retried.
- A 409 on a renewal PUT (a lost optimistic-concurrency race) is retried
  within the renew deadline and does not cost the lease.
- Another writer takes the Lease: the leader sees a valid foreign holder
  at its next renewal and reports LOST (exit 3); the standby takes over
  once the intruder's lease expired, counting a transition.
- Renewal requests that hang past the renew deadline: the leader reports
  LOST within renew deadline + retry period + slack.
"""

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leaderlib as L  # noqa: E402


def fault_hits(api, idx):
    st = api.control("state")
    return st["faults"][idx]["hits"]


def micro_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def body(tmp, api, drivers):
    # 409 on the first create.
    f = api.control("fail", code=409, method="POST",
                    path="/namespaces/default/leases", count=1,
                    reason="AlreadyExists")["fault"]
    a = L.Driver(tmp, api, "replica-a")
    drivers.append(a)
    L.check(a.wait_line("LEADER", 10) is not None,
            "leader after a 409 on create")
    L.check(fault_hits(api, f) == 1, "the create conflict was hit")

    # A 409 on renewal: retried within the deadline.
    rv = api.lease()["metadata"]["resourceVersion"]
    f = api.control("fail", code=409, method="PUT", path=L.LEASE_PATH,
                    count=1, reason="Conflict")["fault"]
    time.sleep(L.RENEW_S + L.RETRY_S * 2)
    L.check(fault_hits(api, f) == 1, "the renewal conflict was hit")
    L.check(not a.has("LOST"), "a renewal 409 does not cost the lease")
    lease = api.lease()
    L.check(lease["metadata"]["resourceVersion"] != rv and
            lease["spec"]["holderIdentity"] == a.identity,
            "the leader renewed after the conflict")

    # A standby, then an intruder takes the Lease.
    b = L.Driver(tmp, api, "replica-b")
    drivers.append(b)
    L.check(b.wait_line("STARTED", 10) is not None, "replica-b started")
    time.sleep(L.RETRY_S * 1.5)
    for _ in range(20):
        lease = api.lease()
        transitions = lease["spec"].get("leaseTransitions", 0)
        lease["spec"]["holderIdentity"] = "intruder"
        lease["spec"]["renewTime"] = micro_now()
        lease["spec"]["acquireTime"] = micro_now()
        lease["spec"]["leaseTransitions"] = transitions + 1
        code, _ = api.call("PUT", L.LEASE_PATH, lease)
        if code == 200:
            break
        L.check(code == 409, "intruder PUT conflicts only (%d)" % code)
    L.check(code == 200, "the intruder wrote the Lease")
    stolen_at = time.monotonic()
    t = a.wait_line("LOST", L.RETRY_S * 1.2 + 3)
    L.check(t is not None, "the leader reports LOST after the intruder")
    rc = L.wait_exit(a, 10)
    L.check(rc == 3, "a lost leader exits 3 (rc=%s)" % rc)
    L.check(t - stolen_at <= (L.RETRY_S + 1.5) * L.MULT,
            "LOST within a retry period (%.2fs)" % (t - stolen_at))
    t = b.wait_line("LEADER", L.LEASE_S + L.RETRY_S * 1.2 + 4)
    L.check(t is not None, "the standby takes over from the intruder")
    L.check(t - stolen_at >= L.LEASE_S - 0.3,
            "the standby waited for the intruder's lease (%.2fs)"
            % (t - stolen_at))
    lease = api.lease()
    L.check(lease["spec"]["holderIdentity"] == b.identity,
            "the Lease names replica-b")
    L.check(lease["spec"].get("leaseTransitions") == transitions + 2,
            "leaseTransitions counts both changes")

    # Renewals hang past the renew deadline: LOST.
    time.sleep(L.RETRY_S * 1.5)
    f = api.control("fail", code=500, method="GET", path=L.LEASE_PATH,
                    count=1, hang=L.RENEW_S + 2)["fault"]
    hung_at = time.monotonic()
    t = b.wait_line("LOST", L.RENEW_S + L.RETRY_S + 3)
    L.check(t is not None, "a leader that cannot renew reports LOST")
    L.check(t - hung_at <= (L.RENEW_S + L.RETRY_S + 1) * L.MULT,
            "LOST within renew deadline + retry (%.2fs)" % (t - hung_at))
    L.check(L.wait_exit(b, 10) == 3, "and exits 3")


if __name__ == "__main__":
    L.run(body)
