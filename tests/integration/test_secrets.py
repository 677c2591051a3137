"""Secrets and object fidelity (issue 11, SPEC "Secrets", promise 6):
a Secret's data and stringData values never leave the agent: "redacted",
keys kept, or with redaction.hash_key_file "hmac-sha256:<hex>" of the
decoded value (checked here with Python's hmac), so a change stays
visible. Everything else of the object is what the server sent; with
trim_managed_fields (global or per watch) only metadata.managedFields is
dropped; without it, watched objects are forwarded byte for byte.

What the server sent is read by the test itself on a raw watch of the
same resource (tests/apiserver/testlib.RawWatch) and by GETs. The
harness (kwb.TestCase) also greps the agent log and every sink output for
the registered secret values at teardown."""
import base64
import copy
import hashlib
import hmac
import json
import os

from kwb import (SECRETS, TestCase, main, pod, register_secret, wait_for,
                 watch_conf)
from testlib import RawWatch
from webhook_receiver import Receiver
from webhook_testlib import delivered

HASH_KEY = b"kwb-test-hash-key-9f3c1a"
PLAIN = {
    "password": "s3cr3t-Password-value-0001",
    "token": "eyJhbGciOiJ0ZXN0LXRva2VuLXZhbHVlLTAwMDIifQ",
    "cert": "-----BEGIN TEST KEY-----\nMIIEvQ-test-key-0003\n-----END",
}
STRING_DATA = {"extra": "plain-string-data-value-0004"}
CHANGED = "changed-Password-value-0005"

register_secret(HASH_KEY, CHANGED,
                base64.b64encode(CHANGED.encode()).decode(),
                *[v for v in PLAIN.values()],
                *[base64.b64encode(v.encode()).decode()
                  for v in PLAIN.values()],
                *STRING_DATA.values())

MANAGED = [{"manager": "kubectl-client-side-apply", "operation": "Update",
            "apiVersion": "v1", "time": "2026-11-22T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {},
                                                     "f:app": {}}}}}]


def b64(s):
    return base64.b64encode(s.encode()).decode()


def secret(name, data=None, string_data=None):
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": "default",
                        "labels": {"app": "vault"},
                        "annotations": {"note": "caf\u00e9 \"quoted\""},
                        "managedFields": copy.deepcopy(MANAGED)},
           "data": {k: b64(v) for k, v in
                    (PLAIN if data is None else data).items()}}
    if string_data is not False:
        obj["stringData"] = dict(string_data or STRING_DATA)
    return obj


def rich_pod(name):
    p = pod(name)
    p["metadata"]["managedFields"] = copy.deepcopy(MANAGED)
    # escapes and non-ASCII the agent must pass through untouched
    p["metadata"]["annotations"] = {
        "text": "tab\there \"q\" \\ caf\u00e9 \u2028 \U0001f600",
        "num": "1e400"}
    return p


def raw_object(line):
    """The object bytes of a sink line or a server watch line."""
    i = line.index(b',"object":') + len(b',"object":')
    return line[i:line.rindex(b"}")]


def sink_lines(agent):
    with open(agent.events_path, "rb") as f:
        return [ln for ln in f.read().split(b"\n") if ln.strip()]


def server_lines(rw, want, timeout=10.0):
    """(uid, rv, type) -> object bytes of the raw watch's events, until
    `want` events were read."""
    out = {}
    while len(out) < want:
        kind, line = rw.read(timeout)
        if kind != "line":
            raise AssertionError("raw watch ended: %s" % kind)
        ev = json.loads(line)
        if ev["type"] == "BOOKMARK":
            continue
        md = ev["object"]["metadata"]
        out[(md["uid"], md["resourceVersion"], ev["type"])] = \
            raw_object(line.rstrip(b"\n"))
    return out


def hashed(value_bytes):
    return "hmac-sha256:" + hmac.new(HASH_KEY, value_bytes,
                                     hashlib.sha256).hexdigest()


class Secrets(TestCase):

    def secret_agent(self, hash_key=False, extra_sinks=(), **kw):
        extra = ""
        if hash_key:
            path = os.path.join(self.tmp, "hash.key")
            with open(path, "wb") as f:
                f.write(HASH_KEY + b"\n")
            extra = 'redaction = { hash_key_file = "%s"; };' % path
        sinks = [{"type": "file",
                  "path": os.path.join(self.tmp, "events.jsonl")}]
        sinks += list(extra_sinks)
        return self.agent(watches=[watch_conf("v1", "secrets")], extra=extra,
                          sinks=sinks, **kw).start()

    def expected(self, server_obj, replace):
        """The server's object with data/stringData values replaced."""
        exp = copy.deepcopy(server_obj)
        exp.setdefault("kind", "Secret")
        exp.setdefault("apiVersion", "v1")
        for field, is_b64 in (("data", True), ("stringData", False)):
            for k, v in exp.get(field, {}).items():
                exp[field][k] = replace(base64.b64decode(v) if is_b64
                                        else v.encode())
        return exp

    def run_changes(self, agent, rw):
        """One listed Secret; then create, modify one value, delete.
        Returns the server's objects by (uid, rv, type)."""
        agent.wait_events(1)
        wait_for(lambda: any(r.get("watch") and "secrets" in r["path"]
                             for r in self.api.request_log()),
                 what="the agent's watch")
        self.api.create("secrets", secret("watched"))
        self.api.patch("secrets", "watched",
                       {"data": {"password": b64(CHANGED)}})
        self.api.delete("secrets", "watched")
        agent.wait_events(4)
        seen = server_lines(rw, 3)
        return {k: json.loads(v) for k, v in seen.items()}

    def check_events(self, agent, server, replace):
        events = agent.events()
        self.assertEqual([(e["type"], e["name"], e["origin"])
                          for e in events],
                         [("ADDED", "listed", "list"),
                          ("ADDED", "watched", "watch"),
                          ("MODIFIED", "watched", "watch"),
                          ("DELETED", "watched", "watch")])
        listed = self.api.get("secrets", "listed")
        for e in events:
            self.assertEnvelope(e)
            self.assertEqual(e["kind"], "Secret")
            src = listed if e["origin"] == "list" else \
                server[(e["uid"], e["resourceVersion"], e["type"])]
            # keys kept, values replaced, all else as the server sent it
            self.assertEqual(e["object"], self.expected(src, replace))
            self.assertEqual(sorted(e["object"]["data"]), sorted(PLAIN))
            self.assertEqual(sorted(e["object"]["stringData"]),
                             sorted(STRING_DATA))
            self.assertIn("managedFields", e["object"]["metadata"])
        return events

    def test_values_redacted_keys_kept(self):
        self.api.create("secrets", secret("listed"))
        rv = str(self.api.resource_version())
        rx = Receiver(log_path=os.path.join(self.tmp, "webhook.log"))
        rx.start()
        self.addCleanup(rx.stop)
        self.secret_checked_files.append(rx.log_path)
        webhook = {"type": "webhook", "url": rx.url, "linger_ms": 20}
        with RawWatch(self.api, "secrets", "default",
                      resourceVersion=rv) as rw:
            agent = self.secret_agent(extra_sinks=[webhook])
            server = self.run_changes(agent, rw)
        wait_for(lambda: len(delivered(rx.requests())) >= 4,
                 what="webhook deliveries")
        self.assertEqual(agent.stop(), 0)
        events = self.check_events(agent, server, lambda v: "redacted")
        for e in events:
            self.assertEqual(set(e["object"]["data"].values()), {"redacted"})
        # the webhook got the same redacted events
        hooked = delivered(rx.requests())
        self.assertEqual([(e["type"], e["uid"], e["resourceVersion"],
                           e["object"]) for e in hooked],
                         [(e["type"], e["uid"], e["resourceVersion"],
                           e["object"]) for e in events])
        self.assertNoSecrets(agent, rx.log_path)

    def test_hmac_values_show_changes(self):
        self.api.create("secrets", secret("listed"))
        rv = str(self.api.resource_version())
        with RawWatch(self.api, "secrets", "default",
                      resourceVersion=rv) as rw:
            agent = self.secret_agent(hash_key=True)
            server = self.run_changes(agent, rw)
        self.assertEqual(agent.stop(), 0)
        events = self.check_events(agent, server, hashed)
        added, modified = events[1]["object"], events[2]["object"]
        self.assertEqual(added["data"]["password"],
                         hashed(PLAIN["password"].encode()))
        self.assertEqual(added["stringData"]["extra"],
                         hashed(STRING_DATA["extra"].encode()))
        # a changed value changes its hash, and only its hash
        self.assertEqual(modified["data"]["password"],
                         hashed(CHANGED.encode()))
        self.assertNotEqual(modified["data"]["password"],
                            added["data"]["password"])
        self.assertEqual(modified["data"]["token"], added["data"]["token"])
        self.assertNoSecrets(agent)

    def test_secret_without_values_and_non_secret_kinds(self):
        """A Secret with empty data, and a ConfigMap whose data looks like
        a Secret's: the ConfigMap is not touched."""
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cfg", "namespace": "default"},
              "data": {"password": "not-a-secret-config-value"}}
        self.api.create("configmaps", cm)
        self.api.create("secrets", secret("empty", data={},
                                          string_data=False))
        agent = self.agent(watches=[watch_conf("v1", "secrets"),
                                    watch_conf("v1", "configmaps")]).start()
        agent.wait_events(2)
        self.assertEqual(agent.stop(), 0)
        by_kind = {e["kind"]: e for e in agent.events()}
        self.assertEqual(by_kind["ConfigMap"]["object"]["data"],
                         cm["data"])
        self.assertEqual(by_kind["Secret"]["object"]["data"], {})
        self.assertNotIn("stringData", by_kind["Secret"]["object"])

    def test_harness_finds_a_leak(self):
        """The teardown grep works: a registered value that the agent does
        print (here its cluster name) is found in its log and sink."""
        marker = "harness-leak-marker-7731"
        self.api.create("pods", pod("p"))
        agent = self.agent(cluster=marker).start()
        agent.wait_events(1)
        self.assertEqual(agent.stop(), 0)
        register_secret(marker)
        try:
            leaks = self.secret_leaks()
        finally:
            SECRETS.discard(marker)
        self.assertEqual(len(leaks), 2, leaks)
        self.assertTrue(leaks[0].endswith("agent.log contains har..."))
        self.assertTrue(leaks[1].endswith("events.jsonl contains har..."))
        self.assertNotIn(marker, "".join(leaks))

    def assertNoSecrets(self, agent, *more):
        for path in agent.output_files() + list(more):
            with open(path, "rb") as f:
                data = f.read()
            for v in list(PLAIN.values()) + list(STRING_DATA.values()) + \
                    [CHANGED]:
                self.assertNotIn(v.encode(), data, path)
                self.assertNotIn(b64(v).encode(), data, path)
            self.assertNotIn(HASH_KEY, data, path)


class Fidelity(TestCase):

    def change_pods(self, rw, agent, n_before):
        wait_for(lambda: any(r.get("watch") and r["path"] == "/api/v1/pods"
                             for r in self.api.request_log()),
                 what="the agent's watch")
        self.api.create("pods", rich_pod("w-0"))
        self.api.create("pods", rich_pod("w-1"))
        self.api.patch("pods", "w-0", {"metadata": {"labels": {"v": "2"}}})
        self.api.delete("pods", "w-1")
        agent.wait_events(n_before + 4)
        return server_lines(rw, 4)

    def test_untrimmed_objects_are_byte_for_byte(self):
        self.api.create("pods", rich_pod("listed"))
        rv = str(self.api.resource_version())
        with RawWatch(self.api, "pods", "default", resourceVersion=rv) as rw:
            agent = self.agent(watch_defaults={"watch_list": "off"}).start()
            server = self.change_pods(rw, agent, 1)
        self.assertEqual(agent.stop(), 0)
        lines = sink_lines(agent)
        events = [json.loads(ln) for ln in lines]
        self.assertEqual(len(events), 5)
        # listed (typed list items carry no kind/apiVersion: the agent
        # adds them, as client-go does); the rest is the server's object
        listed = self.api.get("pods", "listed")
        self.assertEqual(events[0]["origin"], "list")
        self.assertEqual(events[0]["object"],
                         dict(listed, kind="Pod", apiVersion="v1"))
        self.assertIn("managedFields", events[0]["object"]["metadata"])
        for ln, e in zip(lines[1:], events[1:]):
            self.assertEqual(e["origin"], "watch")
            self.assertEqual(
                raw_object(ln),
                server[(e["uid"], e["resourceVersion"], e["type"])],
                "object of %s %s not byte for byte" % (e["type"],
                                                       e["name"]))

    def trimmed_run(self, watches, watch_defaults):
        self.api.create("pods", rich_pod("listed"))
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cfg", "namespace": "default",
                           "managedFields": copy.deepcopy(MANAGED)},
              "data": {"k": "v"}}
        self.api.create("configmaps", cm)
        rv = str(self.api.resource_version())
        with RawWatch(self.api, "pods", "default", resourceVersion=rv) as rw:
            agent = self.agent(watches=watches,
                               watch_defaults=watch_defaults).start()
            agent.wait_events(2)
            server = self.change_pods(rw, agent, 2)
        self.assertEqual(agent.stop(), 0)
        events = agent.events()
        self.assertEqual(len(events), 6)
        cms = [e for e in events if e["kind"] == "ConfigMap"]
        pods = [e for e in events if e["kind"] == "Pod"]
        # configmaps untrimmed: managedFields kept
        self.assertEqual(len(cms), 1)
        self.assertEqual(cms[0]["object"]["metadata"]["managedFields"],
                         MANAGED)
        # pods trimmed: exactly managedFields gone, all else identical
        listed = self.api.get("pods", "listed")
        for e in pods:
            if e["origin"] == "list":
                src = dict(listed, kind="Pod", apiVersion="v1")
            else:
                src = json.loads(server[(e["uid"], e["resourceVersion"],
                                         e["type"])])
            self.assertIn("managedFields", src["metadata"])
            want = copy.deepcopy(src)
            del want["metadata"]["managedFields"]
            self.assertEqual(e["object"], want)

    def test_trim_managed_fields_global(self):
        self.trimmed_run([watch_conf("v1", "pods"),
                          watch_conf("v1", "configmaps",
                                     trim_managed_fields=False)],
                         {"trim_managed_fields": True})

    def test_trim_managed_fields_per_watch(self):
        self.trimmed_run([watch_conf("v1", "pods", trim_managed_fields=True),
                          watch_conf("v1", "configmaps")], {})


class RedactPaths(TestCase):
    """Opt-in redaction of further JSON paths (issue 11): globally and per
    watch; arrays on the way apply to each element; keys stay."""

    def test_redact_paths_global_and_per_watch(self):
        register_secret("env-secret-value-1")
        register_secret("cm-password-value-2")
        p = pod("env-pod")
        p["metadata"]["annotations"] = {"note": "x"}
        p["spec"]["containers"] = [
            {"name": "a", "image": "x", "env": [
                {"name": "TOKEN", "value": "env-secret-value-1"}]},
            {"name": "b", "image": "y"}]
        self.api.create("pods", p)
        self.api.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "creds", "namespace": "default",
                         "annotations": {"note": "x"}},
            "data": {"password": "cm-password-value-2", "user": "admin"}})
        agent = self.agent(
            watches=[watch_conf("v1", "pods"),
                     watch_conf("v1", "configmaps",
                                redact_paths="data.password")],
            watch_defaults={"redact_paths": "spec.containers.env, "
                            "metadata.annotations"}).start()
        events = agent.wait_events(2)
        agent.stop()
        by_kind = {e["kind"]: e for e in agent.events()}
        cs = by_kind["Pod"]["object"]["spec"]["containers"]
        self.assertEqual(cs[0]["env"], "redacted")
        self.assertNotIn("env", cs[1])
        self.assertEqual(cs[1]["image"], "y")
        self.assertEqual(by_kind["Pod"]["object"]["metadata"]["annotations"],
                         "redacted")
        cm = by_kind["ConfigMap"]["object"]
        self.assertEqual(cm["data"], {"password": "redacted",
                                      "user": "admin"})
        # The per-watch value replaces the global one for that watch.
        self.assertEqual(cm["metadata"]["annotations"], {"note": "x"})
        self.assertEqual(len(events), 2)


if __name__ == "__main__":
    main()
