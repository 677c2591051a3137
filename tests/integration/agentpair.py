"""Two kube-watch-bridge replicas with leader election against the test API
server, for test_leader_agents.py and test_configmap_state.py.

Each replica has its own directory (config, log, file sink, state dir), as
two pods with their own volumes would. The Lease is default/kwb-test with
client-go's semantics scaled down: lease 3 s, renew deadline 2 s, retry 1 s.
"""
import os

from kwb import Agent, wait_for

LEASE_S, RENEW_S, RETRY_S = 3, 2, 1
LEASE_NAME = "kwb-test"


def leader_conf(identity):
    return ("leader_election = { enabled = true; namespace = \"default\"; "
            "name = \"%s\"; identity = \"%s\"; lease_duration_seconds = %d; "
            "renew_deadline_seconds = %d; retry_period_seconds = %d; };"
            % (LEASE_NAME, identity, LEASE_S, RENEW_S, RETRY_S))


def replica(tc, identity, extra="", **kw):
    """An Agent of TestCase tc in <tmp>/<identity>, metrics on."""
    d = os.path.join(tc.tmp, identity)
    os.makedirs(d, exist_ok=True)
    a = Agent(tc.api, d, metrics=True,
              extra=leader_conf(identity) + "\n" + extra, **kw)
    a.identity = identity
    tc.agents.append(a)
    return a


def leader_gauge(agent):
    """kwb_leader of the agent's /metrics, or None while it does not
    answer."""
    try:
        ms = agent.metrics()
    except OSError:
        return None
    return ms.get(("kwb_leader", frozenset()))


def wait_leader(agent, timeout, what=None):
    return wait_for(lambda: leader_gauge(agent) == 1, timeout, interval=0.05,
                    what=what or "%s to lead" % agent.identity)


def wait_standby(agent, timeout=10):
    """Until the agent answers /metrics with kwb_leader 0 and says it
    waits for leadership."""
    wait_for(lambda: leader_gauge(agent) == 0 and
             "waiting for leadership" in agent.log(), timeout,
             what="%s to wait as standby" % agent.identity)


def lease_holder(api):
    lease = api.get("coordination.k8s.io/leases", LEASE_NAME)
    return lease["spec"].get("holderIdentity")


def history(api, since_rv, count):
    """The first `count` pod events after since_rv, from the server's
    history: the ground truth of every change a test made."""
    out = []
    with api.watch("pods", resourceVersion=str(since_rv), timeout=10) as w:
        while len(out) < count:
            ev = w.next_event()
            if ev is None:
                break
            md = ev["object"]["metadata"]
            out.append((md["uid"], md["resourceVersion"], ev["type"],
                        md["name"]))
    return out


# -- the configmap state backend

CM_NAMESPACE = "kwb-state"
CM_PREFIX = "kwb-it"


class CmAgent(Agent):
    """An Agent whose checkpoints live in ConfigMaps (state.backend =
    "configmap") in CM_NAMESPACE, names prefixed CM_PREFIX."""

    def write_config(self):
        super().write_config()
        with open(self.conf_path) as f:
            text = f.read()
        old = "checkpoint_interval_ms = 200; };"
        assert old in text
        text = text.replace(
            old, "checkpoint_interval_ms = 200; backend = \"configmap\"; "
            "configmap_namespace = \"%s\"; configmap_name_prefix = \"%s\"; };"
            % (CM_NAMESPACE, CM_PREFIX))
        with open(self.conf_path, "w") as f:
            f.write(text)


def cm_replica(tc, identity, leader=True, **kw):
    """A CmAgent of TestCase tc in <tmp>/<identity>, metrics on, with leader
    election when `leader`."""
    d = os.path.join(tc.tmp, identity)
    os.makedirs(d, exist_ok=True)
    a = CmAgent(tc.api, d, metrics=True,
                extra=leader_conf(identity) if leader else "", **kw)
    a.identity = identity
    tc.agents.append(a)
    return a


def cm_name(watch_id="v1/pods"):
    """The plain (unhashed) ConfigMap name of a watch id."""
    out, last = [], "-"
    for c in watch_id.lower():
        c = c if (c.isascii() and c.isalnum()) else "-"
        if c == "-" and last == "-":
            continue
        out.append(c)
        last = c
    return CM_PREFIX + "-" + "".join(out).strip("-")


def cm_checkpoint(api, watch_id="v1/pods"):
    """(configmap, rv, {uid: rv}, ok) of a watch's checkpoint ConfigMap, or
    None when absent. ok: the SHA-256 trailer matches."""
    import hashlib
    from kwb import ApiError
    try:
        cm = api.get("configmaps", cm_name(watch_id), namespace=CM_NAMESPACE)
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    text = cm.get("data", {}).get("checkpoint", "")
    body, _, trailer = text.rstrip("\n").rpartition("\n")
    ok = trailer == "sha256 " + hashlib.sha256(
        (body + "\n").encode()).hexdigest()
    lines = body.split("\n")
    rv = lines[2][3:] if len(lines) > 2 else None
    objs = {}
    for line in lines[4:]:
        uid, orv, _ns, _name = line.split("\t")
        objs[uid] = orv
    return cm, rv, objs, ok
