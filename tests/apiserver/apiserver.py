#!/usr/bin/env python3
"""Test Kubernetes API server for kube-watch-bridge (Python 3 stdlib only).

An in-memory stand-in for kube-apiserver with the list/watch semantics the
agent depends on (resource versions, paging, watch history window, bookmarks,
watch-list) plus a control interface under /_control/ for fault injection.
See README.md in this directory for every flag and control call.

Start: python3 apiserver.py --port 0 --port-file FILE
"""

import argparse
import base64
import bisect
import gc
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERBOSE = False


def log(msg, **kw):
    """One JSON line on stderr."""
    rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "module": "apiserver", "msg": msg}
    rec.update(kw)
    try:
        sys.stderr.write(json.dumps(rec) + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def now_ts():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------
# Resources


class Resource:
    def __init__(self, group, version, plural, kind, namespaced, short=(),
                 status_sub=False, crd=False, categories=(),
                 field_labels=()):
        self.group = group
        self.version = version
        self.gv = "%s/%s" % (group, version) if group else version
        self.plural = plural
        self.kind = kind
        self.list_kind = kind + "List"
        self.namespaced = namespaced
        self.short = list(short)
        self.status_sub = status_sub
        self.crd = crd
        self.categories = list(categories)
        # key used by the store, forbid rules and watch counters
        self.key = "%s/%s" % (group, plural) if group else plural
        self.prefix = (b'{"kind":"%s","apiVersion":"%s",'
                       % (kind.encode(), self.gv.encode()))
        self.field_labels = set(("metadata.name", "metadata.namespace")) | \
            set(field_labels)
        if not namespaced:
            self.field_labels.discard("metadata.namespace")
        self.base = ("/api/v1" if not group else "/apis/" + self.gv)


RESOURCES = [
    Resource("", "v1", "pods", "Pod", True, ("po",), status_sub=True,
             categories=("all",),
             field_labels=("spec.nodeName", "spec.restartPolicy",
                           "spec.schedulerName", "spec.serviceAccountName",
                           "spec.hostNetwork", "status.phase", "status.podIP",
                           "status.nominatedNodeName")),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, (), field_labels=("type",)),
    Resource("", "v1", "events", "Event", True, ("ev",),
             field_labels=("involvedObject.kind", "involvedObject.namespace",
                           "involvedObject.name", "involvedObject.uid",
                           "involvedObject.apiVersion",
                           "involvedObject.resourceVersion",
                           "involvedObject.fieldPath", "reason",
                           "reportingComponent", "source", "type")),
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",),
             status_sub=True, field_labels=("status.phase",)),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",),
             status_sub=True, categories=("all",)),
    Resource("events.k8s.io", "v1", "events", "Event", True, ("ev",),
             field_labels=("regarding.kind", "regarding.namespace",
                           "regarding.name", "regarding.uid", "reason",
                           "reportingController", "type")),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("example.com", "v1", "widgets", "Widget", True, ("wd",),
             status_sub=True, crd=True, categories=("all",)),
    # What deploy/ creates, so `kubectl apply --dry-run=server -k deploy/`
    # can be checked against this server.
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "services", "Service", True, ("svc",),
             status_sub=True, categories=("all",)),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles",
             "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
             "ClusterRoleBinding", False),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings",
             "RoleBinding", True),
]
RES_BY_KEY = {r.key: r for r in RESOURCES}
RES_BY_GV = {}
for _r in RESOURCES:
    RES_BY_GV.setdefault(_r.gv, {})[_r.plural] = _r
GROUPS = []  # (group, version) in discovery order
for _r in RESOURCES:
    if _r.group and (_r.group, _r.version) not in GROUPS:
        GROUPS.append((_r.group, _r.version))

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch",
             "update", "watch"]


# --------------------------------------------------------------------------
# Errors as Status objects


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None,
                 extra=None):
        Exception.__init__(self, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.extra = extra

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
              "status": "Failure", "message": self.message,
              "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        if self.extra:
            st["metadata"].update(self.extra)
        return st


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden",
           404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
           410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (
        res.plural if not res.group else res.plural + "." + res.group, name),
        {"name": name, "group": res.group, "kind": res.plural})


def gr_name(res):
    return res.plural if not res.group else res.plural + "." + res.group


def conflict(res, name):
    return ApiError(
        409, "Conflict",
        'Operation cannot be fulfilled on %s "%s": the object has been '
        'modified; please apply your changes to the latest version and try '
        'again' % (gr_name(res), name),
        {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, field, value, detail):
    return ApiError(
        422, "Invalid", '%s "%s" is invalid: %s: Invalid value: %s: %s' % (
            res.kind, name, field, json.dumps(value), detail),
        {"name": name, "group": res.group, "kind": res.kind,
         "causes": [{"reason": "FieldValueInvalid",
                     "message": "Invalid value: %s: %s" % (
                         json.dumps(value), detail),
                     "field": field}]})


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def list_invalid(field, value, detail):
    return ApiError(
        422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: %s: '
        'Invalid value: %s: %s' % (field, json.dumps(value), detail),
        {"group": "meta.k8s.io", "kind": "ListOptions",
         "causes": [{"reason": "FieldValueInvalid",
                     "message": "Invalid value: %s: %s" % (
                         json.dumps(value), detail),
                     "field": field}]})


def list_forbidden(field, detail):
    return ApiError(
        422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: %s: '
        'Forbidden: %s' % (field, detail),
        {"group": "meta.k8s.io", "kind": "ListOptions",
         "causes": [{"reason": "FieldValueForbidden",
                     "message": "Forbidden: " + detail, "field": field}]})


def expired(msg, extra=None):
    return ApiError(410, "Expired", msg, None, None, extra)


# --------------------------------------------------------------------------
# Selectors

_LS_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"


def parse_label_selector(sel):
    """Returns a list of (key, op, values); raises ApiError(400)."""
    reqs = []
    if sel is None:
        return reqs
    parts = []
    depth = 0
    cur = ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            if sel.strip():
                raise bad_request("unable to parse requirement: found '', "
                                  "expected: identifier")
            continue
        m = re.match(r"^(%s)\s+(in|notin)\s*\((.*)\)$" % _LS_KEY, p)
        if m:
            vals = set(v.strip() for v in m.group(3).split(","))
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^!\s*(%s)$" % _LS_KEY, p)
        if m:
            reqs.append((m.group(1), "!", None))
            continue
        m = re.match(r"^(%s)\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)$" % _LS_KEY, p)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=",
                         m.group(3)))
            continue
        m = re.match(r"^(%s)$" % _LS_KEY, p)
        if m:
            reqs.append((m.group(1), "exists", None))
            continue
        raise bad_request("unable to parse requirement: invalid label "
                          "selector: %r" % p)
    return reqs


def label_match(reqs, labels):
    if not reqs:
        return True
    labels = labels or {}
    for key, op, val in reqs:
        if op == "=":
            if labels.get(key) != val:
                return False
        elif op == "!=":
            if key in labels and labels[key] == val:
                return False
        elif op == "in":
            if key not in labels or labels[key] not in val:
                return False
        elif op == "notin":
            if key in labels and labels[key] in val:
                return False
        elif op == "exists":
            if key not in labels:
                return False
        elif op == "!":
            if key in labels:
                return False
    return True


def parse_field_selector(res, sel):
    reqs = []
    if not sel:
        return reqs
    for p in sel.split(","):
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", p)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'"
                              % (sel, p))
        field, op, val = m.group(1), m.group(2), m.group(3)
        if field not in res.field_labels:
            raise bad_request('field label not supported: %s' % field)
        reqs.append((field, "!=" if op == "!=" else "=", val))
    return reqs


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_match(reqs, obj):
    for field, op, val in reqs:
        v = field_value(obj, field)
        if op == "=" and v != val:
            return False
        if op == "!=" and v == val:
            return False
    return True


# --------------------------------------------------------------------------
# Patches


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


SMP_KEYS = {"containers": "name", "initContainers": "name",
            "ephemeralContainers": "name", "env": "name", "volumes": "name",
            "ports": "containerPort", "volumeMounts": "mountPath",
            "conditions": "type", "imagePullSecrets": "name",
            "containerStatuses": "name", "ownerReferences": "uid",
            "hostAliases": "ip", "envFrom": None}


def strategic_merge(target, patch):
    """Strategic merge patch, simplified: merge keys for well-known lists,
    directives $patch/$setElementOrder/$retainKeys/$deleteFromPrimitiveList."""
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k == "$patch" or k.startswith("$setElementOrder/") or \
                k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(v, list):
                result[name] = [x for x in result[name] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            if v.get("$patch") == "delete":
                result.pop(k, None)
            else:
                result[k] = strategic_merge(result.get(k), v)
        elif isinstance(v, list) and SMP_KEYS.get(k) and \
                isinstance(result.get(k), list):
            mk = SMP_KEYS[k]
            out = [dict(x) if isinstance(x, dict) else x for x in result[k]]
            for item in v:
                if not isinstance(item, dict) or mk not in item:
                    if isinstance(item, dict) and item.get("$patch") == \
                            "replace":
                        out = []
                        continue
                    out.append(item)
                    continue
                idx = next((i for i, x in enumerate(out)
                            if isinstance(x, dict) and x.get(mk) ==
                            item[mk]), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        del out[idx]
                elif idx is None:
                    out.append(strategic_merge({}, item))
                else:
                    out[idx] = strategic_merge(out[idx], item)
            result[k] = out
        else:
            result[k] = v
    return result


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~")
            for p in path[1:].split("/")]


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json patch must be an array")
    doc = json.loads(json.dumps(doc))

    def parent(parts):
        cur = doc
        for p in parts[:-1]:
            if isinstance(cur, list):
                cur = cur[int(p)]
            else:
                cur = cur[p]
        return cur

    def get(parts):
        cur = doc
        for p in parts:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def add(parts, val):
        nonlocal doc
        if not parts:
            doc = val
            return
        par = parent(parts)
        last = parts[-1]
        if isinstance(par, list):
            if last == "-":
                par.append(val)
            else:
                par.insert(int(last), val)
        else:
            par[last] = val

    def remove(parts):
        par = parent(parts)
        last = parts[-1]
        if isinstance(par, list):
            return par.pop(int(last))
        return par.pop(last)

    try:
        for op in ops:
            kind = op.get("op")
            parts = _ptr(op.get("path", ""))
            if kind == "add":
                add(parts, op.get("value"))
            elif kind == "remove":
                remove(parts)
            elif kind == "replace":
                get(parts)
                if not parts:
                    doc = op.get("value")
                else:
                    par = parent(parts)
                    last = parts[-1]
                    par[int(last) if isinstance(par, list) else last] = \
                        op.get("value")
            elif kind == "test":
                if get(parts) != op.get("value"):
                    raise ApiError(422, "Invalid", "testing value %s failed"
                                   % op.get("path"))
            elif kind == "move":
                val = remove(_ptr(op.get("from", "")))
                add(parts, val)
            elif kind == "copy":
                val = json.loads(json.dumps(get(_ptr(op.get("from", "")))))
                add(parts, val)
            else:
                raise bad_request("unexpected kind of json patch op: %r"
                                  % kind)
    except ApiError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        raise ApiError(422, "Invalid", "the server rejected our request due "
                       "to an error in our request: json patch failed")
    return doc


# --------------------------------------------------------------------------
# Realistic objects

_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def rand_suffix(n=5):
    return "".join(random.choice(_GEN_CHARS) for _ in range(n))


def make_pod(name, namespace="default", labels=None, size=3000, node=None,
             phase="Running", seq=0):
    """A realistic Pod (without server-set fields) of roughly size bytes of
    JSON: labels, annotations, ownerReferences, managedFields, spec, status."""
    app = (labels or {}).get("app", "web")
    lab = {"app": app, "pod-template-hash": "7d4b9c8f6d",
           "tier": "frontend" if seq % 2 == 0 else "backend",
           "release": "stable"}
    if labels:
        lab.update(labels)
    ts = now_ts()
    node = node or "node-%d" % (seq % 8)
    ip = "10.244.%d.%d" % ((seq // 250) % 250, seq % 250 + 2)
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": namespace, "labels": lab,
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": ts,
                "prometheus.io/scrape": "true", "prometheus.io/port": "9102",
                "checksum/config": "%064x" % random.getrandbits(256),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": app + "-7d4b9c8f6d", "uid": str(uuid.uuid4()),
                "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update",
                 "apiVersion": "v1", "time": ts, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {
                     "f:generateName": {}, "f:labels": {
                         ".": {}, "f:app": {}, "f:pod-template-hash": {}},
                     "f:ownerReferences": {".": {}, 'k:{"uid":"x"}': {}}},
                     "f:spec": {"f:containers": {'k:{"name":"app"}': {
                         ".": {}, "f:image": {}, "f:name": {}}}}}},
                {"manager": "kubelet", "operation": "Update",
                 "apiVersion": "v1", "time": ts, "fieldsType": "FieldsV1",
                 "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:phase": {},
                                           "f:podIP": {}, "f:startTime": {},
                                           "f:containerStatuses": {}}}}],
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.example/%s:1.%d.0"
                % (app, seq % 10),
                "ports": [{"containerPort": 8080, "protocol": "TCP",
                           "name": "http"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                              "requests": {"cpu": "100m",
                                           "memory": "128Mi"}},
                "volumeMounts": [{
                    "name": "kube-api-access", "readOnly": True,
                    "mountPath":
                        "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "serviceAccount": "default", "nodeName": node,
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0,
            "volumes": [{"name": "kube-api-access", "projected": {
                "defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607,
                                             "path": "token"}}]}}],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": ts}
                for t in ("Initialized", "Ready", "PodScheduled")],
            "hostIP": "192.168.1.%d" % (seq % 8 + 10),
            "hostIPs": [{"ip": "192.168.1.%d" % (seq % 8 + 10)}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": ts,
            "containerStatuses": [{
                "name": "app", "state": {"running": {"startedAt": ts}},
                "lastState": {}, "ready": True, "restartCount": 0,
                "image": "registry.example/%s:1.%d.0" % (app, seq % 10),
                "imageID": "registry.example/%s@sha256:%064x"
                % (app, random.getrandbits(256)),
                "containerID": "containerd://%064x" % random.getrandbits(256),
                "started": True}],
            "qosClass": "Burstable",
        },
    }
    if size:
        cur = _base_size.get(len(name) + len(namespace))
        if cur is None:
            cur = len(dumps(pod))
            _base_size[len(name) + len(namespace)] = cur
        if size - cur > 40:
            pod["metadata"]["annotations"]["example.com/padding"] = \
                "x" * (size - cur - 40)
    return pod


_base_size = {}


# --------------------------------------------------------------------------
# Store


class Rec:
    """An immutable stored object: obj (dict, without kind/apiVersion), item
    (its JSON bytes) and full (JSON bytes with kind/apiVersion)."""
    __slots__ = ("obj", "item", "prefix", "ns", "name", "rv", "skey")

    def __init__(self, res, obj, skey):
        self.obj = obj
        md = obj["metadata"]
        self.ns = md.get("namespace", "")
        self.name = md["name"]
        self.rv = int(md["resourceVersion"] or 0)
        self.skey = skey
        self.item = dumps(obj)
        self.prefix = res.prefix

    @property
    def full(self):
        return self.prefix + self.item[1:]

    def labels(self):
        return self.obj["metadata"].get("labels")


class Event:
    __slots__ = ("rv", "key", "type", "rec", "prev", "ns")

    def __init__(self, rv, key, typ, rec, prev):
        self.rv = rv
        self.key = key
        self.type = typ
        self.rec = rec    # state after (DELETED: last state, new rv)
        self.prev = prev  # state before (None for ADDED)
        self.ns = rec.ns


def _meta_copy(obj):
    """A copy sharing everything but metadata (stored dicts are immutable)."""
    out = dict(obj)
    out["metadata"] = dict(obj["metadata"])
    return out


def skey_of(res, ns, name):
    return "%s/%s" % (ns, name) if res.namespaced else name


class Store:
    def __init__(self, history_size, initial_rv=1000):
        self.cond = threading.Condition(threading.RLock())
        self.rv = initial_rv
        self.compacted = initial_rv      # events with rv <= this are gone
        self.hist = []                   # Event, contiguous rvs
        self.hist_rv0 = initial_rv + 1   # rv of hist[0]
        self.history_size = history_size
        self.data = {r.key: {} for r in RESOURCES}
        self.sorted_keys = {r.key: None for r in RESOURCES}
        self.auto_namespaces = True

    # -- internal, lock held
    def _commit(self, res, typ, obj, prev):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        skey = skey_of(res, obj["metadata"].get("namespace", ""),
                       obj["metadata"]["name"])
        rec = Rec(res, obj, skey)
        d = self.data[res.key]
        if typ == "DELETED":
            del d[skey]
            self.sorted_keys[res.key] = None
        else:
            if skey not in d:
                self.sorted_keys[res.key] = None
            d[skey] = rec
        self.hist.append(Event(self.rv, res.key, typ, rec, prev))
        if self.rv - self.compacted > self.history_size:
            self.compacted = self.rv - self.history_size
        self._trim()
        return rec

    def _trim(self):
        drop = self.compacted + 1 - self.hist_rv0
        if drop > 0 and drop > len(self.hist) // 2 and drop > 256:
            del self.hist[:drop]
            self.hist_rv0 += drop
        elif drop >= len(self.hist) and self.hist:
            self.hist_rv0 += len(self.hist)
            self.hist = []

    def compact(self, rv=None):
        with self.cond:
            rv = self.rv if rv is None else min(int(rv), self.rv)
            self.compacted = max(self.compacted, rv)
            self._trim()
            self.cond.notify_all()
            return self.compacted

    def events_since(self, rv):
        """Events with rv > the given one (lock held; rv >= compacted)."""
        start = rv + 1 - self.hist_rv0
        if start < 0:
            start = 0
        return self.hist[start:]

    def _ensure_ns(self, ns, force=False):
        nsres = RES_BY_KEY["namespaces"]
        if ns and ns not in self.data["namespaces"]:
            if not self.auto_namespaces and not force:
                raise ApiError(404, "NotFound", 'namespaces "%s" not found'
                               % ns, {"name": ns, "kind": "namespaces"})
            self._commit(nsres, "ADDED", self._new_meta(nsres, {
                "metadata": {"name": ns},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}}, ""), None)

    def _new_meta(self, res, obj, ns):
        md = obj.setdefault("metadata", {})
        if res.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_ts()
        md["generation"] = 1
        for k in ("resourceVersion", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        return obj

    # -- public, all take the lock
    def get(self, res, ns, name):
        with self.cond:
            rec = self.data[res.key].get(skey_of(res, ns, name))
        if rec is None:
            raise not_found(res, name)
        return rec

    def create(self, res, ns, obj, dry_run=False):
        md = obj.get("metadata")
        if not isinstance(md, dict):
            obj["metadata"] = md = {}
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + rand_suffix()
            else:
                raise ApiError(
                    422, "Invalid", "%s \"\" is invalid: metadata.name: "
                    "Required value: name or generateName is required"
                    % res.kind, {"kind": res.kind, "causes": [{
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName "
                        "is required", "field": "metadata.name"}]})
        name = md["name"]
        if not isinstance(name, str) or len(name) > 253 or not re.match(
                r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
                r"[a-z0-9])?)*$", name):
            raise invalid(res, name, "metadata.name", name,
                          "a lowercase RFC 1123 subdomain must consist of "
                          "lower case alphanumeric characters, '-' or '.', "
                          "and must start and end with an alphanumeric "
                          "character")
        if res.namespaced and md.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does "
                              "not match the namespace sent on the request")
        self._new_meta(res, obj, ns)
        if res.status_sub:
            obj.pop("status", None)
            if res.key == "pods":
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            elif res.key == "namespaces":
                obj["status"] = {"phase": "Active"}
        with self.cond:
            if skey_of(res, ns, name) in self.data[res.key]:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists'
                               % (gr_name(res), name),
                               {"name": name, "group": res.group,
                                "kind": res.plural})
            if dry_run:
                obj["metadata"]["resourceVersion"] = ""
                return Rec(res, obj, "")
            if res.namespaced:
                self._ensure_ns(ns)
            rec = self._commit(res, "ADDED", obj, None)
            self.cond.notify_all()
            return rec

    def update(self, res, ns, name, newobj, sub=None, check=None,
               dry_run=False, allow_create=False):
        """PUT semantics. newobj is a fresh dict (taken); check(old_obj) may
        raise. Returns (rec, created)."""
        if not isinstance(newobj, dict):
            raise bad_request("object expected")
        md = newobj.get("metadata")
        if not isinstance(md, dict):
            newobj["metadata"] = md = {}
        if md.get("name") not in (None, name):
            raise bad_request("the name of the object (%s) does not match "
                              "the name on the URL (%s)" % (md.get("name"),
                                                            name))
        if res.namespaced and md.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does "
                              "not match the namespace sent on the request")
        with self.cond:
            old = self.data[res.key].get(skey_of(res, ns, name))
            if old is None:
                if allow_create:
                    md["name"] = name
                    return self.create(res, ns, newobj, dry_run), True
                raise not_found(res, name)
            if check:
                check(old.obj)
            want_rv = md.get("resourceVersion")
            if want_rv not in (None, "") and str(want_rv) != str(old.rv):
                raise conflict(res, name)
            want_uid = md.get("uid")
            if want_uid not in (None, "") and want_uid != \
                    old.obj["metadata"]["uid"]:
                raise ApiError(
                    409, "Conflict", "Precondition failed: UID in "
                    "precondition: %s, UID in object meta: %s"
                    % (want_uid, old.obj["metadata"]["uid"]),
                    {"name": name, "group": res.group, "kind": res.plural})
            oldobj = old.obj
            newobj.pop("kind", None)
            newobj.pop("apiVersion", None)
            if sub == "status":
                merged = json.loads(old.item)
                if "status" in newobj:
                    merged["status"] = newobj["status"]
                else:
                    merged.pop("status", None)
                newobj = merged
            elif res.status_sub:
                if "status" in oldobj:
                    newobj["status"] = json.loads(dumps(oldobj["status"]))
                else:
                    newobj.pop("status", None)
            nmd = newobj["metadata"]
            omd = oldobj["metadata"]
            nmd["name"] = name
            if res.namespaced:
                nmd["namespace"] = ns
            else:
                nmd.pop("namespace", None)
            for k in ("uid", "creationTimestamp", "generation",
                      "deletionTimestamp", "deletionGracePeriodSeconds"):
                if k in omd:
                    nmd[k] = omd[k]
                else:
                    nmd.pop(k, None)
            nmd["resourceVersion"] = omd["resourceVersion"]
            if newobj == oldobj:
                return old, False          # no-op: no new rv, no event
            spec_changed = any(
                newobj.get(k) != oldobj.get(k)
                for k in set(newobj) | set(oldobj)
                if k not in ("metadata", "status"))
            if spec_changed:
                nmd["generation"] = int(omd.get("generation", 1)) + 1
            if dry_run:
                return Rec(res, newobj, old.skey), False
            rec = self._commit(res, "MODIFIED", newobj, old)
            self.cond.notify_all()
            return rec, False

    def delete(self, res, ns, name, precond=None, dry_run=False):
        with self.cond:
            old = self.data[res.key].get(skey_of(res, ns, name))
            if old is None:
                raise not_found(res, name)
            precond = precond or {}
            if precond.get("uid") and precond["uid"] != \
                    old.obj["metadata"]["uid"]:
                raise ApiError(
                    409, "Conflict", "Precondition failed: UID in "
                    "precondition: %s, UID in object meta: %s"
                    % (precond["uid"], old.obj["metadata"]["uid"]),
                    {"name": name, "group": res.group, "kind": res.plural})
            if precond.get("resourceVersion") and \
                    str(precond["resourceVersion"]) != str(old.rv):
                raise ApiError(
                    409, "Conflict", "Precondition failed: ResourceVersion "
                    "in precondition: %s, ResourceVersion in object meta: %s"
                    % (precond["resourceVersion"], old.rv),
                    {"name": name, "group": res.group, "kind": res.plural})
            if dry_run:
                return old
            if res.key == "namespaces":
                for r in RESOURCES:
                    if not r.namespaced:
                        continue
                    for k in [k for k, v in self.data[r.key].items()
                              if v.ns == name]:
                        o = self.data[r.key][k]
                        self._commit(r, "DELETED", _meta_copy(o.obj), o)
            rec = self._commit(res, "DELETED", _meta_copy(old.obj), old)
            self.cond.notify_all()
            return rec

    def snapshot(self, res, at_rv=None):
        """(sorted keys, lookup dict-like) of res at at_rv (lock held)."""
        d = self.data[res.key]
        if at_rv is None or at_rv >= self.rv:
            keys = self.sorted_keys[res.key]
            if keys is None:
                keys = sorted(d)
                self.sorted_keys[res.key] = keys
            return keys, d
        overlay = {}
        for ev in reversed(self.events_since(at_rv)):
            if ev.key == res.key:
                overlay[ev.rec.skey] = ev.prev
        merged = dict(d)
        for k, v in overlay.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        return sorted(merged), merged


# --------------------------------------------------------------------------
# Watchers and faults


class Watcher:
    _ids = itertools.count(1)   # next() is atomic under the GIL

    def __init__(self, key):
        self.id = next(Watcher._ids)
        self.key = key
        self.actions = []      # pending control actions (lock held)
        self.armed = None      # mid_event/mid_chunk drop waiting for a write
        self.sock = None
        self.gone = False      # client closed; already uncounted


def _peer_closed(sock):
    """True when the client closed (or reset) its end of sock; a watch
    client sends nothing after its request, so readable means closed."""
    try:
        p = select.poll()
        p.register(sock.fileno(), select.POLLIN | select.POLLERR |
                   select.POLLHUP | getattr(select, "POLLRDHUP", 0))
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


class State:
    """Everything the control interface changes (guarded by store.cond)."""

    def __init__(self, args):
        self.tokens = [args.token] if args.token else []
        self.bookmark_interval = args.bookmark_interval
        self.page_cap = args.page_cap
        self.watch_list = args.watch_list
        self.min_request_timeout = args.min_request_timeout
        self.faults = []           # dicts
        self.forbid = {}           # key -> set(verbs) or None (all)
        self.continue_epoch = 0
        self.stall_until = 0.0     # monotonic; inf = until unstall
        self.stall_keys = None     # None = all resources
        self.watchers = {}         # id -> Watcher
        self.watch_cur = {}
        self.watch_max = {}
        self.reqlog = []
        self.reqlog_base = 0
        self.reqlog_max = 200000
        self.churn = None
        self.poison = []           # [{"key", "line", "rv"}] sticky lines


# --------------------------------------------------------------------------
# HTTP


class CloseAbruptly(Exception):
    pass


class RawAnswer(Exception):
    """A fault answered with raw bytes instead of a Status (a proxy's HTML
    page, a wrong content type, an empty body), or with headers only."""

    def __init__(self, code, body, ctype, headers_only=False, hold=None):
        Exception.__init__(self, "raw answer %d" % code)
        self.code = code
        self.body = body
        self.ctype = ctype
        self.headers_only = headers_only
        self.hold = hold


def chunk(data):
    return b"%X\r\n%s\r\n" % (len(data), data)


def human_age(ts):
    try:
        t = time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - \
            time.mktime(time.gmtime(0))
        d = max(0, int(time.time() - t))
    except Exception:
        return "<unknown>"
    if d < 120:
        return "%ds" % d
    if d < 3600 * 2:
        return "%dm" % (d // 60)
    if d < 86400 * 2:
        return "%dh" % (d // 3600)
    return "%dd" % (d // 86400)


def table_columns(res):
    name = {"name": "Name", "type": "string", "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0}
    age = {"name": "Age", "type": "string", "format": "",
           "description": "CreationTimestamp is a timestamp representing the "
           "server time when this object was created.", "priority": 0}
    if res.key == "pods":
        s = lambda n, d: {"name": n, "type": "string", "format": "",  # noqa
                          "description": d, "priority": 0}
        return [name, s("Ready", "The aggregate readiness state."),
                s("Status", "The aggregate status of the containers."),
                {"name": "Restarts", "type": "string", "format": "",
                 "description": "The number of times the containers in this "
                 "pod have been restarted.", "priority": 0},
                age]
    return [name, age]


def table_row(res, rec, include):
    o = rec.obj
    md = o["metadata"]
    cells = [md["name"]]
    if res.key == "pods":
        st = o.get("status") or {}
        cs = st.get("containerStatuses") or []
        total = len((o.get("spec") or {}).get("containers") or [])
        ready = sum(1 for c in cs if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in cs)
        cells += ["%d/%d" % (ready, total), st.get("phase", ""),
                  str(restarts)]
    cells.append(human_age(md.get("creationTimestamp", "")))
    row = {"cells": cells}
    if include == "Object":
        row["object"] = json.loads(rec.full)
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata",
                         "apiVersion": "meta.k8s.io/v1",
                         "metadata": json.loads(dumps(md))}
    return row


def openapi_v3(gv):
    """A minimal OpenAPI v3 document for one group/version: the item paths
    with their operations, the x-kubernetes-group-version-kind extension and
    the fieldValidation query parameter. That is what kubectl checks to use
    server-side field validation instead of downloading schemas. No
    schemas."""
    paths = {}
    qp = [{"name": n, "in": "query", "schema": {"type": "string"},
           "uniqueItems": True}
          for n in ("dryRun", "fieldManager", "fieldValidation")]
    for r in RES_BY_GV[gv].values():
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = r.base + ("/namespaces/{namespace}" if r.namespaced else "")
        ops = {}
        for m, action in (("get", "get"), ("put", "put"),
                          ("patch", "patch"), ("delete", "delete")):
            ops[m] = {"operationId": "%s%s" % (m, r.kind),
                      "x-kubernetes-action": action,
                      "x-kubernetes-group-version-kind": gvk,
                      "parameters": qp if m in ("put", "patch") else [],
                      "responses": {"200": {"description": "OK"}}}
        paths[base + "/" + r.plural + "/{name}"] = ops
        paths[base + "/" + r.plural] = {
            "post": {"operationId": "create" + r.kind,
                     "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk,
                     "parameters": qp,
                     "responses": {"201": {"description": "Created"}}}}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.31.0"},
            "paths": paths, "components": {"schemas": {}}}


class _View:
    """A transient object view (obj + full bytes) for watch lines."""
    __slots__ = ("obj", "full")

    def __init__(self, obj, full):
        self.obj = obj
        self.full = full


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kwb-test-apiserver/1.0"
    sys_version = ""

    # -- plumbing
    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(10)
            self.connection.do_handshake()
            self.connection.settimeout(None)

    def log_message(self, fmt, *args):
        if VERBOSE:
            log("http", line=fmt % args)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    @property
    def store(self):
        return self.server.store

    @property
    def st(self):
        return self.server.st

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    break
                out += self.rfile.read(n)
                self.rfile.readline(16)
                if len(out) > 64 << 20:
                    raise bad_request("body too large")
            return out
        n = int(self.headers.get("Content-Length") or 0)
        if n > 64 << 20:
            raise bad_request("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def send_bytes(self, code, body, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.status_sent = code

    def send_json(self, code, obj, headers=None):
        self.send_bytes(code, dumps(obj), headers=headers)

    def send_error_status(self, err):
        self.send_json(err.code, err.status(), err.headers)

    def send_raw(self, ans):
        """A RawAnswer fault: the body as given, or (headers_only) the
        status line and headers promising a body that never comes; the
        connection is held until the client closes it or `hold` seconds
        passed, then closed abruptly."""
        if not ans.headers_only:
            self.send_bytes(ans.code, ans.body, ans.ctype)
            return
        self.send_response(ans.code)
        self.send_header("Content-Type", ans.ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        self.status_sent = ans.code
        sock = self.connection
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR |
                        select.POLLHUP | getattr(select, "POLLRDHUP", 0))
        end = time.monotonic() + (ans.hold if ans.hold else 3600.0)
        while time.monotonic() < end:
            if poller.poll(200):
                break   # the client gave up (or sent more: we ignore it)
        raise CloseAbruptly()

    def log_request_entry(self, status, verb, key, watch):
        with self.store.cond:
            st = self.st
            st.reqlog.append({
                "time": time.time(), "method": self.command,
                "path": self.url.path, "query": self.url.query,
                "status": status, "watch": watch, "verb": verb,
                "resource": key, "auth": self.auth_state(),
                "userAgent": self.headers.get("User-Agent", "")})
            if len(st.reqlog) > st.reqlog_max:
                drop = len(st.reqlog) - st.reqlog_max
                del st.reqlog[:drop]
                st.reqlog_base += drop

    # -- dispatch
    def dispatch(self, method):
        self.status_sent = None
        self.logged = False
        self.url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(self.url.query,
                                            keep_blank_values=True).items()}
        self.q = q
        path = self.url.path
        verb, key, watch = None, None, False
        try:
            try:
                body = self.read_body()
            except ApiError:
                raise
            except Exception:
                raise bad_request("unreadable body")
            if path.startswith("/_control/") or path == "/_control":
                self.control(method, path, body)
                return
            self.check_auth(path)      # authentication comes first
            route_err = None
            try:
                route = self.route(method, path, q)
            except ApiError as e:
                route, route_err = None, e
            verb, res, ns, name, sub = route if route else (None,) * 5
            key = res.key if res else None
            watch = verb == "watch"
            self.check_faults(method, path, verb, watch)
            if route_err is not None:
                raise route_err
            if res is not None:
                self.check_forbidden(verb, res, ns, name, sub)
            if route is None:
                self.nonresource(method, path)
            else:
                self.resource(method, verb, res, ns, name, sub, body)
        except RawAnswer as e:
            if self.status_sent is None:
                self.send_raw(e)
        except ApiError as e:
            if self.status_sent is None:
                self.send_error_status(e)
        except CloseAbruptly:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError, ssl.SSLError,
                socket.timeout, OSError):
            self.close_connection = True
        except Exception as e:
            log("internal error", err=repr(e), tb=traceback.format_exc())
            if self.status_sent is None:
                try:
                    self.send_error_status(ApiError(500, "InternalError",
                                                    "internal error: %r" % e))
                except Exception:
                    self.close_connection = True
            else:
                self.close_connection = True
        finally:
            if not path.startswith("/_control") and not self.logged:
                self.log_request_entry(self.status_sent, verb, key, watch)

    def auth_state(self):
        """"none", "valid" or "invalid" bearer token (never the token)."""
        hdr = self.headers.get("Authorization") if self.headers else None
        if not hdr:
            return "none"
        if hdr.startswith("Bearer ") and hdr[7:].strip() in self.st.tokens:
            return "valid"
        return "invalid"

    def check_auth(self, path):
        tokens = self.st.tokens
        if not tokens:
            return
        hdr = self.headers.get("Authorization")
        if hdr is None and path in ("/version", "/healthz", "/livez",
                                    "/readyz"):
            return  # anonymous public-info-viewer
        if hdr and hdr.startswith("Bearer ") and hdr[7:].strip() in tokens:
            return
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def check_faults(self, method, path, verb, watch):
        with self.store.cond:
            for f in self.st.faults:
                if f["remaining"] <= 0:
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("verb") and f["verb"] != verb:
                    continue
                if f.get("path") and f["path"] not in path:
                    continue
                if f.get("path_regex") and not re.search(f["path_regex"],
                                                         path):
                    continue
                if f.get("watch") is not None and bool(f["watch"]) != watch:
                    continue
                f["remaining"] -= 1
                f["hits"] += 1
                code = int(f["code"])
                reason = f.get("reason") or REASONS.get(code, "Unknown")
                msg = f.get("message") or {
                    401: "Unauthorized", 403: "forbidden by fault injection",
                    410: "too old resource version",
                    429: "Too many requests, please try again later.",
                    500: "Internal error occurred: injected fault",
                    503: "the server is currently unable to handle the "
                         "request",
                    504: "the server was unable to return a response in "
                         "the time allotted"}.get(code, "injected fault")
                headers = {}
                details = None
                if f.get("retry_after") is not None:
                    headers["Retry-After"] = str(f["retry_after"])
                    details = {"retryAfterSeconds": int(f["retry_after"])}
                elif code == 429:
                    headers["Retry-After"] = "1"
                    details = {"retryAfterSeconds": 1}
                hit = (ApiError(code, reason, msg, details, headers),
                       float(f.get("hang") or 0))
                if f.get("headers_only"):
                    hit = (RawAnswer(code, b"", f.get("content_type") or
                                     "application/json", True,
                                     f.get("hold")), hit[1])
                elif f.get("body") is not None or \
                        f.get("body_b64") is not None:
                    raw = base64.b64decode(f["body_b64"]) \
                        if f.get("body_b64") is not None \
                        else f["body"].encode()
                    hit = (RawAnswer(code, raw, f.get("content_type") or
                                     "text/plain"), hit[1])
                break
            else:
                return
        if hit[1] > 0:
            time.sleep(hit[1])      # outside the lock
        raise hit[0]

    def check_forbidden(self, verb, res, ns, name, sub):
        with self.store.cond:
            if res.key not in self.st.forbid:
                return
            verbs = self.st.forbid[res.key]
        if verbs is not None and verb not in verbs:
            return
        rname = res.plural + ("/" + sub if sub else "")
        scope = ('in the namespace "%s"' % ns) if ns else \
            "at the cluster scope"
        raise ApiError(
            403, "Forbidden", '%s is forbidden: User '
            '"system:serviceaccount:kwb:kube-watch-bridge" cannot %s resource '
            '"%s" in API group "%s" %s' % (
                gr_name(res) if not name else '%s "%s"' % (gr_name(res),
                                                           name),
                verb, rname, res.group, scope),
            {"name": name, "group": res.group, "kind": res.plural}
            if name else {"group": res.group, "kind": res.plural})

    def route(self, method, path, q):
        """-> (verb, res, ns, name, sub) or None for non-resource paths."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            gv, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        table = RES_BY_GV.get(gv)
        if table is None:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        legacy_watch = False
        if rest[0] == "watch":
            legacy_watch = True
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and \
                rest[2] not in ("status", "finalize"):
            ns = rest[1]
            rest = rest[2:]
        res = table.get(rest[0])
        if res is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        if ns is not None and not res.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and not (sub == "status" and res.status_sub):
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        if name is None and res.namespaced and ns is None and \
                method not in ("GET", "HEAD"):
            raise ApiError(405, "MethodNotAllowed", "the server does not "
                           "allow this method on the requested resource")
        w = q.get("watch", "").lower() in ("1", "true")
        if method in ("GET", "HEAD"):
            if legacy_watch or w:
                verb = "watch"
            else:
                verb = "get" if name else "list"
        elif method == "POST":
            if name:
                raise ApiError(405, "MethodNotAllowed", "the server does not "
                               "allow this method on the requested resource")
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            verb = method.lower()
        if name is None and verb in ("update", "patch"):
            raise ApiError(405, "MethodNotAllowed", "the server does not "
                           "allow this method on the requested resource")
        return verb, res, ns or ("" if not res.namespaced else None), \
            name, sub

    # -- non-resource endpoints
    def nonresource(self, method, path):
        st = self.server
        p = path.rstrip("/") or "/"
        if p in ("/healthz", "/livez", "/readyz"):
            self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
            return
        if method != "GET" and method != "HEAD":
            raise ApiError(405, "MethodNotAllowed", "the server does not "
                           "allow this method on the requested resource")
        if p == "/version":
            self.send_json(200, {
                "major": "1", "minor": "31", "gitVersion": "v1.31.0",
                "gitCommit": "9edcffcde5595e8a5b1a35f88c421764e575afce",
                "gitTreeState": "clean", "buildDate": "2024-08-13T07:28:49Z",
                "goVersion": "go1.22.5", "compiler": "gc",
                "platform": "linux/amd64", "emulationMajor": "1",
                "emulationMinor": "31"})
            return
        if p == "/api":
            self.send_json(200, {
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{
                    "clientCIDR": "0.0.0.0/0",
                    "serverAddress": "%s:%d" % (st.host_str, st.port)}]})
            return
        if p == "/apis":
            self.send_json(200, {
                "kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self.group_obj(g, v, False) for g, v in GROUPS]})
            return
        parts = [x for x in p.split("/") if x]
        if p == "/api/v1":
            self.send_json(200, self.resource_list("v1"))
            return
        if len(parts) == 2 and parts[0] == "apis":
            for g, v in GROUPS:
                if g == parts[1]:
                    self.send_json(200, self.group_obj(g, v, True))
                    return
        if len(parts) == 3 and parts[0] == "apis" and \
                parts[1] + "/" + parts[2] in RES_BY_GV:
            self.send_json(200, self.resource_list(parts[1] + "/" + parts[2]))
            return
        if p == "/openapi/v3":
            self.send_json(200, {"paths": {
                ("api/v1" if gv == "v1" else "apis/" + gv): {
                    "serverRelativeURL": "/openapi/v3/%s?hash=%s" % (
                        "api/v1" if gv == "v1" else "apis/" + gv,
                        base64.b16encode(gv.encode()).decode())}
                for gv in RES_BY_GV}})
            return
        if p.startswith("/openapi/v3/"):
            rest = p[len("/openapi/v3/"):]
            gv = "v1" if rest == "api/v1" else rest[len("apis/"):] \
                if rest.startswith("apis/") else None
            if gv in RES_BY_GV:
                self.send_json(200, openapi_v3(gv))
                return
        if p == "/openapi/v2" and "protobuf" in \
                self.headers.get("Accept", ""):
            # Old clients (Debian's kubectl 1.20) insist on the protobuf v2
            # document: an empty one (zero bytes is a valid empty message)
            # lets them go on without schemas; the server validates.
            self.send_bytes(200, b"", "application/octet-stream")
            return
        # /openapi/v2 as JSON and anything else: not served (see README).
        raise ApiError(404, "NotFound", "the server could not find the "
                       "requested resource")

    def group_obj(self, g, v, with_kind):
        gv = {"groupVersion": "%s/%s" % (g, v), "version": v}
        o = {"name": g, "versions": [gv], "preferredVersion": gv}
        if with_kind:
            o = dict({"kind": "APIGroup", "apiVersion": "v1"}, **o)
        return o

    def resource_list(self, gv):
        out = []
        for r in RES_BY_GV[gv].values():
            e = {"name": r.plural, "singularName": r.kind.lower(),
                 "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": list(VERBS_ALL)}
            if r.key == "namespaces":
                e["verbs"] = ["create", "delete", "get", "list", "patch",
                              "update", "watch"]
            if r.short:
                e["shortNames"] = r.short
            if r.categories:
                e["categories"] = r.categories
            e["storageVersionHash"] = base64.b64encode(
                r.key.encode())[:12].decode()
            out.append(e)
            if r.status_sub:
                out.append({"name": r.plural + "/status", "singularName": "",
                            "namespaced": r.namespaced, "kind": r.kind,
                            "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": gv, "resources": out}

    # -- resources
    def wants_table(self):
        acc = self.headers.get("Accept", "")
        first = acc.split(",")[0]
        return "as=Table" in first and "g=meta.k8s.io" in first

    def resource(self, method, verb, res, ns, name, sub, body):
        q = self.q
        dry = "dryRun" in q and q["dryRun"] != ""
        if verb == "list":
            self.do_list(res, ns, q)
        elif verb == "watch":
            if name:
                # legacy /watch/.../name: a watch with a name selector
                fs = q.get("fieldSelector", "")
                q["fieldSelector"] = "metadata.name=%s%s" % (
                    name, ("," + fs) if fs else "")
            self.do_watch(res, ns, q)
        elif verb == "get":
            rec = self.store.get(res, ns or "", name)
            if self.wants_table():
                self.send_json(200, self.table(res, [rec], str(rec.rv)))
            else:
                self.send_bytes(200, rec.full)
        elif verb == "create":
            obj = self.parse_obj(body, res)
            rec = self.store.create(res, ns or "", obj, dry)
            self.send_bytes(201, rec.full)
        elif verb == "update":
            obj = self.parse_obj(body, res)
            rec, created = self.store.update(
                res, ns or "", name, obj, sub, dry_run=dry,
                allow_create=res.key in ("events", "events.k8s.io/events",
                                         "coordination.k8s.io/leases"))
            self.send_bytes(201 if created else 200, rec.full)
        elif verb == "patch":
            self.do_patch(res, ns or "", name, sub, body, dry)
        elif verb == "delete":
            opts = {}
            if body.strip():
                try:
                    opts = json.loads(body)
                except ValueError:
                    raise bad_request("invalid DeleteOptions body")
                if opts is not None and not isinstance(opts, dict):
                    raise bad_request("invalid DeleteOptions body")
            rec = self.store.delete(res, ns or "", name,
                                    (opts or {}).get("preconditions"), dry)
            if res.key == "pods":
                self.send_bytes(200, rec.full)
            else:
                self.send_json(200, {
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "group": res.group,
                                "kind": res.plural,
                                "uid": rec.obj["metadata"]["uid"]}})
        elif verb == "deletecollection":
            lsel = parse_label_selector(q.get("labelSelector"))
            fsel = parse_field_selector(res, q.get("fieldSelector"))
            with self.store.cond:
                victims = [r for r in self.store.data[res.key].values()
                           if (ns is None or r.ns == ns) and
                           label_match(lsel, r.labels()) and
                           field_match(fsel, r.obj)]
                items = []
                for r in victims:
                    if not dry:
                        self.store.delete(res, r.ns, r.name)
                    items.append(r.item)
                rv = self.store.rv
            self.send_bytes(200, self.list_bytes(res, items, rv, None, None))
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not "
                           "allow this method on the requested resource")

    def parse_obj(self, body, res):
        ctype = (self.headers.get("Content-Type") or "application/json")
        if "protobuf" in ctype:
            raise ApiError(415, "UnsupportedMediaType", 'the body of the '
                           'request was in an unknown format - accepted '
                           'media types include: application/json, '
                           'application/yaml')
        try:
            obj = json.loads(body or b"null")
        except ValueError as e:
            raise bad_request("error decoding JSON body: %s" % e)
        if not isinstance(obj, dict):
            raise bad_request("Object 'Kind' is missing in request body")
        if obj.get("kind") not in (None, res.kind) or \
                obj.get("apiVersion") not in (None, res.gv):
            raise bad_request(
                "the API version in the data (%s) does not match the "
                "expected API version (%s)" % (obj.get("apiVersion"), res.gv)
                if obj.get("apiVersion") not in (None, res.gv) else
                "Object kind %s does not match %s" % (obj.get("kind"),
                                                       res.kind))
        return obj

    def do_patch(self, res, ns, name, sub, body, dry):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        ctype = ctype.strip().lower()
        try:
            patch = json.loads(body or b"null")
        except ValueError as e:
            raise bad_request("error decoding patch: %s" % e)
        store = self.store
        if ctype not in ("application/merge-patch+json",
                         "application/strategic-merge-patch+json",
                         "application/json-patch+json",
                         "application/apply-patch+yaml"):
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown "
                           "format - accepted media types include: "
                           "application/json-patch+json, "
                           "application/merge-patch+json, "
                           "application/apply-patch+yaml")
        if ctype == "application/apply-patch+yaml" and \
                not self.q.get("fieldManager"):
            raise bad_request("fieldManager is required for apply requests")
        for _ in range(8):    # retried when a write races the patch
            with store.cond:
                old = store.data[res.key].get(skey_of(res, ns, name))
                if old is None:
                    if ctype == "application/apply-patch+yaml":
                        if not isinstance(patch, dict):
                            raise bad_request("apply patch must be an object")
                        patch.setdefault("metadata", {})["name"] = name
                        rec = store.create(res, ns, patch, dry)
                        self.send_bytes(201, rec.full)
                        return
                    raise not_found(res, name)
            cur = json.loads(old.full)
            if ctype == "application/json-patch+json":
                new = json_patch(cur, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("patch must be an object")
                if res.crd:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "strategic merge patch is not supported "
                                   "for custom resources")
                new = strategic_merge(cur, patch)
            elif ctype == "application/apply-patch+yaml":
                if not isinstance(patch, dict):
                    raise bad_request("apply patch must be an object")
                new = merge_patch(cur, patch)
            else:
                if not isinstance(patch, dict):
                    raise bad_request("patch must be an object")
                new = merge_patch(cur, patch)
            if not isinstance(new, dict):
                raise bad_request("patch result is not an object")
            md = new.get("metadata")
            if not isinstance(md, dict):
                new["metadata"] = md = {}
            want = md.get("resourceVersion")
            explicit_rv = isinstance(patch, dict) and isinstance(
                patch.get("metadata"), dict) and \
                "resourceVersion" in patch["metadata"]
            if ctype == "application/json-patch+json":
                explicit_rv = str(want) != str(old.rv)
            if not explicit_rv:
                md["resourceVersion"] = str(old.rv)

            def check(o, _rv=old.rv):
                if int(o["metadata"]["resourceVersion"]) != _rv:
                    raise _Retry()
            try:
                rec, _ = store.update(res, ns, name, new, sub, check, dry)
            except _Retry:
                continue
            self.send_bytes(200, rec.full)
            return
        raise conflict(res, name)

    def list_bytes(self, res, items, rv, cont, remaining):
        md = {"resourceVersion": str(rv)}
        if cont:
            md["continue"] = cont
            if remaining is not None:
                md["remainingItemCount"] = remaining
        return (b'{"kind":"%s","apiVersion":"%s","metadata":%s,"items":['
                % (res.list_kind.encode(), res.gv.encode(), dumps(md)) +
                b",".join(items) + b"]}")

    def table(self, res, recs, rv, cont=None):
        include = self.q.get("includeObject", "Metadata")
        md = {"resourceVersion": rv}
        if cont:
            md["continue"] = cont
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": md, "columnDefinitions": table_columns(res),
                "rows": [table_row(res, r, include) for r in recs]}

    def do_list(self, res, ns, q):
        store, st = self.store, self.st
        lsel = parse_label_selector(q.get("labelSelector"))
        fsel = parse_field_selector(res, q.get("fieldSelector"))
        rv_s = q.get("resourceVersion")
        match = q.get("resourceVersionMatch")
        cont = q.get("continue") or None
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request("invalid limit")
        if match and match not in ("Exact", "NotOlderThan"):
            raise list_invalid("resourceVersionMatch", match,
                               'supported values: "Exact", "NotOlderThan"')
        if match and not rv_s:
            raise list_forbidden("resourceVersionMatch", "resourceVersionMatch"
                                 " is forbidden unless resourceVersion is "
                                 "provided")
        if match == "Exact" and rv_s == "0":
            raise list_forbidden("resourceVersionMatch", "resourceVersionMatch"
                                 " \"exact\" is forbidden for resourceVersion "
                                 "\"0\"")
        if cont and match:
            raise list_forbidden("resourceVersionMatch", "resourceVersionMatch"
                                 " is forbidden when continue is provided")
        if cont and rv_s not in (None, "", "0"):
            raise bad_request("specifying resource version is not allowed "
                              "when using continue")
        want = None
        if rv_s not in (None, ""):
            try:
                want = int(rv_s)
                if want < 0:
                    raise ValueError
            except ValueError:
                raise bad_request('invalid resource version "%s"' % rv_s)
        page = limit
        if rv_s == "0" and not cont:
            page = 0     # served "from the watch cache": limit ignored
        elif st.page_cap and (page <= 0 or page > st.page_cap):
            page = st.page_cap
        if not match and limit > 0 and want and not cont:
            match = "Exact"   # legacy: a paged list at RV N is exact
        start = None
        deadline = time.monotonic() + 3.0
        with store.cond:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(
                        cont + "=" * (-len(cont) % 4)))
                    at = int(tok["rv"])
                    start = str(tok["start"])
                    epoch = int(tok.get("e", 0))
                except Exception:
                    raise bad_request("continue key is not valid: "
                                      "incorrect encoded start "
                                      "resourceVersion (version "
                                      "meta.k8s.io/v1)")
                if epoch != st.continue_epoch or at < store.compacted:
                    newtok = self.make_token(at if at >= store.compacted
                                             else store.rv, start)
                    raise expired(
                        "The provided continue parameter is too old to "
                        "display a consistent list result. You can start a "
                        "new list without the continue parameter, or use the "
                        "continue token in this response to retrieve the "
                        "remainder of the results. Continuing with the "
                        "provided token results in an inconsistent list - "
                        "objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and "
                        "now may show up in the list.", {"continue": newtok})
            elif want is not None and want > store.rv:
                while want > store.rv and time.monotonic() < deadline:
                    store.cond.wait(deadline - time.monotonic())
                if want > store.rv:
                    raise ApiError(
                        504, "Timeout", "Too large resource version: %d, "
                        "current: %d" % (want, store.rv),
                        {"causes": [{"reason": "ResourceVersionTooLarge",
                                     "message": "Too large resource version"}
                                    ], "retryAfterSeconds": 1})
                at = store.rv if match != "Exact" else want
            elif match == "Exact":
                if want < store.compacted:
                    raise expired("The resourceVersion for the provided list "
                                  "is too old.")
                at = want
            else:
                at = store.rv
            keys, d = store.snapshot(res, at)
            lo, hi = 0, len(keys)
            if ns is not None and res.namespaced:
                lo = bisect.bisect_left(keys, ns + "/")
                hi = bisect.bisect_left(keys, ns + "0")  # '0' follows '/'
            if start is not None:
                lo = max(lo, bisect.bisect_left(keys, start))
            out = []
            i = lo
            last = None
            while i < hi:
                r = d[keys[i]]
                i += 1
                if (lsel and not label_match(lsel, r.labels())) or \
                        (fsel and not field_match(fsel, r.obj)):
                    continue
                out.append(r)
                last = r.skey
                if page and len(out) >= page:
                    break
            more = page and len(out) >= page and i < hi
            token = self.make_token(at, last + "\x00") if more else None
            remaining = (hi - i) if (more and not lsel and not fsel) else None
        if self.wants_table():
            self.send_json(200, self.table(res, out, str(at), token))
            return
        items = [r.full if res.crd else r.item for r in out]
        self.send_bytes(200, self.list_bytes(res, items, at, token,
                                             remaining))

    def make_token(self, rv, start):
        tok = {"v": "meta.k8s.io/v1", "rv": rv, "start": start,
               "e": self.st.continue_epoch}
        return base64.urlsafe_b64encode(dumps(tok)).decode().rstrip("=")

    # -- watch
    def do_watch(self, res, ns, q):
        store, st = self.store, self.st
        lsel = parse_label_selector(q.get("labelSelector"))
        fsel = parse_field_selector(res, q.get("fieldSelector"))
        rv_s = q.get("resourceVersion") or ""
        match = q.get("resourceVersionMatch") or ""
        sie = q.get("sendInitialEvents")
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
        try:
            timeout = float(q["timeoutSeconds"]) if q.get(
                "timeoutSeconds") not in (None, "") else None
        except ValueError:
            raise bad_request("invalid timeoutSeconds")
        watch_list = False
        if sie is not None:
            if st.watch_list == "reject":
                raise list_forbidden(
                    "sendInitialEvents", "sendInitialEvents is forbidden for "
                    "watch unless the WatchList feature gate is enabled")
            if st.watch_list == "ignore":
                sie = None     # streamed as a plain watch, no end bookmark
                match = ""
        if sie is not None:
            sie_b = sie.lower() in ("1", "true")
            if match != "NotOlderThan":
                raise list_forbidden(
                    "resourceVersionMatch", "sendInitialEvents requires "
                    "setting resourceVersionMatch to NotOlderThan")
            if sie_b and not bookmarks:
                raise list_forbidden(
                    "allowWatchBookmarks", "allowWatchBookmarks must be true "
                    "when sendInitialEvents is true")
            watch_list = sie_b
        elif match:
            raise list_forbidden("resourceVersionMatch", "resourceVersionMatch"
                                 " is forbidden for watch unless "
                                 "sendInitialEvents is provided")
        want = None
        if rv_s not in ("", "0"):
            try:
                want = int(rv_s)
            except ValueError:
                raise bad_request('invalid resource version "%s"' % rv_s)
        if timeout is None or timeout <= 0:
            mrt = st.min_request_timeout
            timeout = random.uniform(mrt, 2 * mrt)
        deadline = time.monotonic() + timeout
        initial = []
        expired_ev = None
        self.watch_table = self.q.get("includeObject", "Metadata") \
            if self.wants_table() else None
        w = Watcher(res.key)
        with store.cond:
            if want is not None and want > store.rv:
                # like the watch cache: wait up to 3 s for the revision
                limit = time.monotonic() + 3.0
                while want > store.rv and time.monotonic() < limit:
                    store.cond.wait(limit - time.monotonic())
                if want > store.rv:
                    expired_ev = {
                        "type": "ERROR", "object": {
                            "kind": "Status", "apiVersion": "v1",
                            "metadata": {}, "status": "Failure",
                            "message": "Too large resource version: %d, "
                            "current: %d" % (want, store.rv),
                            "reason": "Timeout",
                            "details": {"causes": [{
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version"}],
                                "retryAfterSeconds": 1},
                            "code": 504}}
            if expired_ev is not None:
                pos = want
            elif watch_list or (want is None and sie is None):
                # current state (watch-list: at least revision want)
                keys, d = store.snapshot(res)
                for k in keys:
                    r = d[k]
                    if ns is not None and res.namespaced and r.ns != ns:
                        continue
                    if label_match(lsel, r.labels()) and \
                            field_match(fsel, r.obj):
                        initial.append(r)
                pos = store.rv
            elif want is None:
                pos = store.rv
            elif want < store.compacted:
                expired_ev = {
                    "type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure",
                        "message": "too old resource version: %d (%d)"
                        % (want, store.compacted),
                        "reason": "Expired", "code": 410}}
                pos = want
            else:
                pos = want
            if expired_ev is None:
                # A client that closed its previous watch just before this
                # one is not watching twice, even if that watch's loop has
                # not polled its socket yet: uncount it now.
                for ow in st.watchers.values():
                    if ow.key == res.key and not ow.gone and \
                            ow.sock is not None and _peer_closed(ow.sock):
                        ow.gone = True
                        st.watch_cur[res.key] = \
                            st.watch_cur.get(res.key, 1) - 1
                w.sock = self.connection
                st.watchers[w.id] = w
                cur = st.watch_cur.get(res.key, 0) + 1
                st.watch_cur[res.key] = cur
                st.watch_max[res.key] = max(st.watch_max.get(res.key, 0), cur)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.status_sent = 200
        self.log_request_entry(200, "watch", res.key, True)
        self.logged = True   # watches are logged when they start
        sock = self.connection
        if expired_ev is not None:
            sock.sendall(chunk(dumps(expired_ev) + b"\n") + b"0\r\n\r\n")
            return
        try:
            self.watch_loop(res, ns, lsel, fsel, bookmarks, watch_list,
                            deadline, w, pos, initial, sock)
        finally:
            with store.cond:
                st.watchers.pop(w.id, None)
                if not w.gone:
                    st.watch_cur[res.key] = st.watch_cur.get(res.key, 1) - 1

    def bookmark(self, res, rv, initial_end=False):
        md = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return dumps({"type": "BOOKMARK", "object": {
            "kind": res.kind, "apiVersion": res.gv, "metadata": md}}) + b"\n"

    def ev_line(self, res, ns, lsel, fsel, ev):
        if ev.key != res.key:
            return None
        if ns is not None and res.namespaced and ev.ns != ns:
            return None

        def ok(rec):
            return rec is not None and label_match(lsel, rec.labels()) and \
                field_match(fsel, rec.obj)
        typ = ev.type
        if typ == "MODIFIED" and (lsel or fsel):
            now_ok, was_ok = ok(ev.rec), ok(ev.prev)
            if now_ok and not was_ok:
                typ = "ADDED"
            elif was_ok and not now_ok:
                o = json.loads(ev.prev.item)
                o["metadata"]["resourceVersion"] = str(ev.rv)
                return self.ev_bytes(res, "DELETED", _View(
                    o, res.prefix + dumps(o)[1:]))
            elif not now_ok:
                return None
        elif not ok(ev.rec):
            return None
        return self.ev_bytes(res, typ, ev.rec)

    def ev_bytes(self, res, typ, rec):
        """One watch line; a Table with one row when the client asked for
        tables (kubectl get -w)."""
        if self.watch_table is None:
            return b'{"type":"%s","object":' % typ.encode() + rec.full + \
                b"}\n"
        tbl = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"resourceVersion":
                            rec.obj["metadata"].get("resourceVersion", "")},
               "columnDefinitions": table_columns(res),
               "rows": [table_row(res, rec, self.watch_table)]}
        return dumps({"type": typ, "object": tbl}) + b"\n"

    def watch_loop(self, res, ns, lsel, fsel, bookmarks, watch_list,
                   deadline, w, pos, initial, sock):
        store, st = self.store, self.st
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR |
                        select.POLLHUP | getattr(select, "POLLRDHUP", 0))
        # a stall holds back the initial events too
        with store.cond:
            while True:
                now = time.monotonic()
                if not (st.stall_until > now and (
                        st.stall_keys is None or res.key in st.stall_keys)):
                    break
                if now >= deadline:
                    sock.sendall(b"0\r\n\r\n")
                    return
                if poller.poll(0):
                    raise CloseAbruptly()
                store.cond.wait(min(0.2, st.stall_until - now,
                                    deadline - now))
        # initial (synthetic ADDED) events
        buf = []
        for r in initial:
            buf.append(chunk(self.ev_bytes(res, "ADDED", r)))
            if len(buf) >= 512:
                sock.sendall(b"".join(buf))
                buf = []
        if watch_list:
            buf.append(chunk(self.bookmark(res, pos, True)))
        with store.cond:
            for p in st.poison:
                if (p["key"] is None or p["key"] == res.key) and \
                        pos < p["rv"]:
                    buf.append(chunk(p["line"] + b"\n"))
        if buf:
            sock.sendall(b"".join(buf))
        initial = None
        next_bm = time.monotonic() + max(0.01, st.bookmark_interval)
        next_poll = 0.0
        while True:
            lines = []
            action = None
            finish = False
            with store.cond:
                while True:
                    now = time.monotonic()
                    if w.actions:
                        action = w.actions.pop(0)
                        if action["mode"] == "replay":
                            # re-send what was sent for the last n revisions
                            n = int(action.get("count", 1))
                            lo = max(pos - n, store.compacted,
                                     store.hist_rv0 - 1)
                            for ev in store.events_since(lo):
                                if ev.rv > pos:
                                    break
                                ln = self.ev_line(res, ns, lsel, fsel, ev)
                                if ln is not None:
                                    lines.append(ln)
                            action = None
                            if lines:
                                break
                            continue
                        if action["mode"] in ("between", "clean", "garbage"):
                            break
                        # mid_event / mid_chunk: armed until the next write
                        w.armed = action
                        action = None
                        continue
                    stalled = st.stall_until > now and (
                        st.stall_keys is None or res.key in st.stall_keys)
                    if now >= deadline:
                        finish = True
                        break
                    if not stalled:
                        if pos < store.compacted and \
                                pos < store.hist_rv0 - 1:
                            finish = True   # fell out of the window
                            break
                        if store.rv > pos:
                            evs = store.events_since(pos)[:1000]
                            for ev in evs:
                                ln = self.ev_line(res, ns, lsel, fsel, ev)
                                if ln is not None:
                                    lines.append(ln)
                            pos = evs[-1].rv
                            if lines:
                                break
                            continue
                        if bookmarks and now >= next_bm:
                            lines.append(self.bookmark(res, pos))
                            next_bm = now + max(0.01, st.bookmark_interval)
                            break
                    wait = deadline - now
                    if bookmarks and not stalled:
                        wait = min(wait, max(0.0, next_bm - now))
                    if stalled:
                        wait = min(wait, st.stall_until - now)
                    wait = min(wait, 0.2)
                    if now >= next_poll:
                        next_poll = now + 0.2
                        if poller.poll(0):
                            raise CloseAbruptly()   # client went away
                    store.cond.wait(max(wait, 0.0))
            armed = w.armed
            if action is not None:
                mode = action["mode"]
                if mode == "garbage":
                    sock.sendall(chunk(action["line"] + b"\n"))
                    continue
                if mode == "clean":
                    finish = True
                else:
                    self.abort(sock, action)
            if finish:
                if lines:
                    sock.sendall(b"".join(chunk(ln) for ln in lines))
                sock.sendall(b"0\r\n\r\n")
                return
            if armed is not None and lines:
                w.armed = None
                first = lines[0]
                data = b""
                cut = max(1, len(first) // 2)
                if armed["mode"] == "mid_event":
                    data += chunk(first[:cut])
                else:  # mid_chunk: header promises the whole line
                    data += b"%X\r\n" % len(first) + first[:cut]
                sock.sendall(data)
                self.abort(sock, armed)
            sock.sendall(b"".join(chunk(ln) for ln in lines))

    def abort(self, sock, action):
        try:
            if action.get("rst"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b"\x01\x00\x00\x00\x00\x00\x00\x00")
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise CloseAbruptly()

    # -- control interface
    def control(self, method, path, body):
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError:
            raise bad_request("control body must be JSON")
        if not isinstance(args, dict):
            raise bad_request("control body must be a JSON object")
        for k, v in self.q.items():
            args.setdefault(k, v)
        name = path[len("/_control/"):].strip("/")
        fn = CONTROL.get(name)
        if fn is None:
            raise ApiError(404, "NotFound", "no control call %r" % name)
        out = fn(self.server, method, args)
        self.send_json(200, out if out is not None else {})


class _Retry(Exception):
    pass


# --------------------------------------------------------------------------
# Control calls (run with the server object; return JSON-able dicts)


def _res_arg(args, default="pods"):
    key = args.get("resource", default)
    if key is None:
        return None
    if key not in RES_BY_KEY:
        raise bad_request("unknown resource %r (use e.g. pods, "
                          "apps/deployments)" % key)
    return RES_BY_KEY[key]


def _arm_watchers(srv, action, key):
    with srv.store.cond:
        n = 0
        for w in srv.st.watchers.values():
            if key is None or w.key == key:
                w.actions.append(dict(action))
                n += 1
        srv.store.cond.notify_all()
    return {"watches": n}


def c_health(srv, method, args):
    with srv.store.cond:
        return {"ok": True, "resourceVersion": srv.store.rv}


def c_state(srv, method, args):
    s = srv.store
    with s.cond:
        return {"resourceVersion": s.rv, "compacted": s.compacted,
                "historySize": s.history_size,
                "objects": {k: len(v) for k, v in s.data.items()},
                "watchList": srv.st.watch_list,
                "bookmarkInterval": srv.st.bookmark_interval,
                "pageCap": srv.st.page_cap,
                "continueEpoch": srv.st.continue_epoch,
                "faults": [dict(f) for f in srv.st.faults],
                "forbid": {k: (sorted(v) if v is not None else None)
                           for k, v in srv.st.forbid.items()}}


def c_drop(srv, method, args):
    mode = args.get("mode", "between")
    if mode not in ("between", "mid_event", "mid_chunk", "clean"):
        raise bad_request("mode must be between, mid_event, mid_chunk or "
                          "clean")
    return _arm_watchers(srv, {"mode": mode, "rst": bool(args.get("rst"))},
                         args.get("resource"))


def c_garbage(srv, method, args):
    if args.get("line_b64") is not None:
        line = base64.b64decode(args["line_b64"])
    else:
        line = args.get("line", "this is not json {{{").encode()
    return _arm_watchers(srv, {"mode": "garbage", "line": line},
                         args.get("resource"))


def c_poison(srv, method, args):
    """A line that stands for the event at revision rv (default: the next
    one): every watch of the resource that starts before rv gets it first,
    again after every reconnect, like a real server re-sending an event the
    client cannot read; open watches get it now. A watch from rv or later
    does not. clear-faults drops it."""
    if args.get("line_b64") is not None:
        line = base64.b64decode(args["line_b64"])
    else:
        line = args.get("line", "this is not json {{{").encode()
    res = _res_arg(args)
    key = res.key if res is not None else None
    with srv.store.cond:
        rv = int(args.get("rv") or srv.store.rv + 1)
        srv.st.poison.append({"key": key, "line": line, "rv": rv})
    out = _arm_watchers(srv, {"mode": "garbage", "line": line}, key)
    out["resourceVersion"] = rv
    return out


def c_replay(srv, method, args):
    return _arm_watchers(srv, {"mode": "replay",
                               "count": int(args.get("count", 1))},
                         args.get("resource"))


def c_fail(srv, method, args):
    code = int(args.get("code", 500))
    f = {"remaining": int(args.get("count", 1)), "code": code, "hits": 0,
         "method": args.get("method"), "verb": args.get("verb"),
         "path": args.get("path"), "path_regex": args.get("path_regex"),
         "watch": args.get("watch"), "retry_after": args.get("retry_after"),
         "message": args.get("message"), "reason": args.get("reason"),
         "hang": args.get("hang"), "body": args.get("body"),
         "body_b64": args.get("body_b64"),
         "content_type": args.get("content_type"),
         "headers_only": bool(args.get("headers_only")),
         "hold": args.get("hold")}
    with srv.store.cond:
        srv.st.faults.append(f)
    return {"fault": len(srv.st.faults) - 1}


def c_clear_faults(srv, method, args):
    with srv.store.cond:
        srv.st.faults = []
        srv.st.forbid = {}
        srv.st.stall_until = 0.0
        srv.st.poison = []
        srv.store.cond.notify_all()
    return {}


def c_forbid(srv, method, args):
    res = _res_arg(args)
    verbs = args.get("verbs")
    with srv.store.cond:
        srv.st.forbid[res.key] = set(verbs) if verbs else None
    return {}


def c_allow(srv, method, args):
    with srv.store.cond:
        if args.get("resource") is None:
            srv.st.forbid = {}
        else:
            srv.st.forbid.pop(_res_arg(args).key, None)
    return {}


def c_compact(srv, method, args):
    return {"compacted": srv.store.compact(args.get("resourceVersion"))}


def c_expire_continue(srv, method, args):
    with srv.store.cond:
        srv.st.continue_epoch += 1
        return {"epoch": srv.st.continue_epoch}


def c_stall(srv, method, args):
    secs = args.get("seconds")
    keys = args.get("resources") or ([args["resource"]]
                                     if args.get("resource") else None)
    with srv.store.cond:
        srv.st.stall_until = time.monotonic() + float(secs) if secs \
            else float("inf")
        srv.st.stall_keys = set(keys) if keys else None
        srv.store.cond.notify_all()
    return {}


def c_unstall(srv, method, args):
    with srv.store.cond:
        srv.st.stall_until = 0.0
        srv.store.cond.notify_all()
    return {}


def c_token(srv, method, args):
    tok = args.get("token")
    extra = args.get("also_accept") or []
    with srv.store.cond:
        srv.st.tokens = ([tok] if tok else []) + list(extra)
    return {"tokens": len(srv.st.tokens)}


def c_requests(srv, method, args):
    with srv.store.cond:
        if method == "DELETE" or args.get("clear"):
            srv.st.reqlog_base += len(srv.st.reqlog)
            srv.st.reqlog = []
            return {"next": srv.st.reqlog_base}
        since = int(args.get("since", 0))
        start = max(0, since - srv.st.reqlog_base)
        return {"requests": srv.st.reqlog[start:],
                "next": srv.st.reqlog_base + len(srv.st.reqlog)}


def c_watches(srv, method, args):
    with srv.store.cond:
        if args.get("reset_max"):
            srv.st.watch_max = {k: v for k, v in srv.st.watch_cur.items()}
        return {"current": {k: v for k, v in srv.st.watch_cur.items() if v},
                "max": dict(srv.st.watch_max)}


def c_reset_watch_max(srv, method, args):
    args["reset_max"] = True
    return c_watches(srv, method, args)


def c_config(srv, method, args):
    st = srv.st
    with srv.store.cond:
        if "bookmark_interval" in args:
            st.bookmark_interval = float(args["bookmark_interval"])
        if "page_cap" in args:
            st.page_cap = int(args["page_cap"] or 0)
        if "watch_list" in args:
            if args["watch_list"] not in ("on", "reject", "ignore"):
                raise bad_request("watch_list must be on, reject or ignore")
            st.watch_list = args["watch_list"]
        if "history_size" in args:
            srv.store.history_size = int(args["history_size"])
        if "min_request_timeout" in args:
            st.min_request_timeout = float(args["min_request_timeout"])
        if "strict_namespaces" in args:
            srv.store.auto_namespaces = not args["strict_namespaces"]
        srv.store.cond.notify_all()
    return c_state(srv, method, args)


def c_bulk(srv, method, args):
    op = args.get("op", "create")
    res = _res_arg(args)
    ns = args.get("namespace", "default") if res.namespaced else ""
    count = int(args.get("count", 1))
    return bulk(srv.store, op, res, ns, count, args.get("prefix", "bulk"),
                int(args.get("size", 3000)), args.get("labels"),
                bool(args.get("names", False)))


def _make_obj(res, name, ns, seq, size, labels):
    if res.key == "pods":
        return make_pod(name, ns, labels=labels, size=size, seq=seq)
    lab = {"app": "bulk", "seq": str(seq)}
    lab.update(labels or {})
    md = {"name": name, "labels": lab,
          "annotations": {"example.com/note": "bulk object %d" % seq}}
    if res.namespaced:
        md["namespace"] = ns
    if res.key == "configmaps":
        return {"metadata": md, "data": {"key": "value-%d" % seq}}
    if res.key == "secrets":
        return {"metadata": md, "type": "Opaque",
                "data": {"password": base64.b64encode(
                    b"s3cret-%d" % seq).decode()}}
    if res.key == "apps/deployments":
        return {"metadata": md, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": "app",
                                "image": "registry.example/app:1"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1}}
    if res.key == "events":
        return {"metadata": md, "involvedObject": {
            "kind": "Pod", "namespace": ns, "name": "pod-%d" % seq},
            "reason": "Started", "message": "Started container app",
            "type": "Normal", "count": 1, "source": {"component": "kubelet"}}
    if res.key == "events.k8s.io/events":
        return {"metadata": md, "regarding": {
            "kind": "Pod", "namespace": ns, "name": "pod-%d" % seq},
            "reason": "Started", "note": "Started container app",
            "type": "Normal", "action": "Start",
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "eventTime": now_ts().replace("Z", ".000000Z")}
    if res.key == "coordination.k8s.io/leases":
        return {"metadata": md, "spec": {
            "holderIdentity": "holder-%d" % seq,
            "leaseDurationSeconds": 15}}
    if res.key == "namespaces":
        return {"metadata": md, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}}
    return {"metadata": md, "spec": {"size": seq % 10, "color": "blue"},
            "status": {"state": "Ready"}}


def bulk(store, op, res, ns, count, prefix="bulk", size=3000, labels=None,
         want_names=False):
    """Create/modify/delete count objects straight in the store (bypassing
    HTTP; pods keep a realistic status)."""
    names = []
    first = None
    t0 = time.monotonic()
    if op == "create":
        with store.cond:
            if res.namespaced:
                store._ensure_ns(ns, force=True)
            base = store.rv
        todo = []
        for i in range(count):
            name = "%s-%d-%s" % (prefix, base + i, rand_suffix())
            obj = _make_obj(res, name, ns, base + i, size, labels)
            store._new_meta(res, obj, ns)
            todo.append(obj)
        for j in range(0, len(todo), 500):
            with store.cond:
                for obj in todo[j:j + 500]:
                    k = skey_of(res, ns, obj["metadata"]["name"])
                    if k in store.data[res.key]:
                        continue
                    rec = store._commit(res, "ADDED", obj, None)
                    first = first or rec.rv
                    names.append(rec.name)
                store.cond.notify_all()
    elif op in ("modify", "delete"):
        with store.cond:
            victims = [r for r in store.data[res.key].values()
                       if not res.namespaced or r.ns == ns]
        if len(victims) > count:
            victims = random.sample(victims, count)
        for j in range(0, len(victims), 500):
            with store.cond:
                for old in victims[j:j + 500]:
                    cur = store.data[res.key].get(old.skey)
                    if cur is None:
                        continue
                    # shallow copies: stored dicts are never mutated
                    obj = dict(cur.obj)
                    md = obj["metadata"] = dict(obj["metadata"])
                    if op == "delete":
                        rec = store._commit(res, "DELETED", obj, cur)
                    else:
                        md["annotations"] = dict(md.get("annotations") or {})
                        md["annotations"]["example.com/modified"] = \
                            str(time.time())
                        md["labels"] = dict(md.get("labels") or {})
                        md["labels"]["rev"] = str(
                            int(md["labels"].get("rev", "0")) + 1)
                        if res.key == "pods" and isinstance(
                                obj.get("status"), dict):
                            st = obj["status"] = dict(obj["status"])
                            st["containerStatuses"] = [
                                dict(c, restartCount=c.get(
                                    "restartCount", 0) + 1)
                                for c in st.get("containerStatuses") or []]
                        rec = store._commit(res, "MODIFIED", obj, cur)
                    first = first or rec.rv
                    names.append(rec.name)
                store.cond.notify_all()
    else:
        raise bad_request("op must be create, modify or delete")
    with store.cond:
        last = store.rv
    gc.freeze()   # stored objects are acyclic: keep them out of GC passes
    out = {"count": len(names), "firstResourceVersion": first,
           "lastResourceVersion": last,
           "seconds": round(time.monotonic() - t0, 3)}
    if want_names:
        out["names"] = names
    return out


class Churn(threading.Thread):
    """Random create/modify/delete of pods at rate ops/s (README demo)."""

    def __init__(self, store, rate, namespaces, target):
        threading.Thread.__init__(self, daemon=True)
        self.store = store
        self.rate = rate
        self.namespaces = namespaces
        self.target = target
        self.stop_ev = threading.Event()
        self.ops = 0

    def run(self):
        res = RES_BY_KEY["pods"]
        period = 1.0 / self.rate
        while not self.stop_ev.wait(period):
            ns = random.choice(self.namespaces)
            with self.store.cond:
                n = sum(1 for r in self.store.data["pods"].values()
                        if r.ns == ns)
            r = random.random()
            if n < self.target * 0.8 or (r < 0.3 and n < self.target * 1.2):
                op = "create"
            elif n > self.target * 1.2 or r < 0.5:
                op = "delete"
            else:
                op = "modify"
            try:
                bulk(self.store, op, res, ns, 1, prefix="churn", size=1500)
                self.ops += 1
            except Exception as e:  # keep churning
                log("churn error", err=repr(e))


def c_churn(srv, method, args):
    rate = float(args.get("rate", 0))
    with srv.store.cond:
        old = srv.st.churn
        srv.st.churn = None
    if old:
        old.stop_ev.set()
    if rate > 0:
        ns = args.get("namespaces") or ["default"]
        if isinstance(ns, str):
            ns = ns.split(",")
        ch = Churn(srv.store, rate, ns, int(args.get("target", 20)))
        with srv.store.cond:
            srv.st.churn = ch
        ch.start()
    return {"rate": rate}


CONTROL = {
    "health": c_health, "state": c_state,
    "drop-watches": c_drop, "garbage": c_garbage, "replay": c_replay,
    "poison": c_poison,
    "fail": c_fail, "clear-faults": c_clear_faults,
    "forbid": c_forbid, "allow": c_allow,
    "compact": c_compact, "expire-continue": c_expire_continue,
    "stall": c_stall, "unstall": c_unstall,
    "token": c_token, "requests": c_requests,
    "watches": c_watches, "watches/reset-max": c_reset_watch_max,
    "config": c_config, "bulk": c_bulk, "churn": c_churn,
}


# --------------------------------------------------------------------------
# Server


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, handler, tls_ctx=None, ipv6=False):
        if ipv6:
            self.address_family = socket.AF_INET6
        self.tls_ctx = tls_ctx
        ThreadingHTTPServer.__init__(self, addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_ctx is not None:
            sock = self.tls_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError, ConnectionError,
                            CloseAbruptly)):
            if VERBOSE:
                log("connection error", err=repr(exc))
            return
        log("handler error", err=repr(exc), tb=traceback.format_exc())


def seed(store, args):
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        with store.cond:
            store._ensure_ns(ns, force=True)
    if args.seed_pods:
        bulk(store, "create", RES_BY_KEY["pods"], args.seed_namespace,
             args.seed_pods, prefix="seed")


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--token", help="accepted bearer token (default: none "
                    "required)")
    ap.add_argument("--token-file", help="read the accepted token from FILE")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--history-size", type=int, default=20000)
    ap.add_argument("--page-cap", type=int, default=0)
    ap.add_argument("--no-watch-list", dest="watch_list",
                    action="store_const", const="reject", default="on")
    ap.add_argument("--watch-list-ignore", dest="watch_list",
                    action="store_const", const="ignore")
    ap.add_argument("--min-request-timeout", type=float, default=1800.0)
    ap.add_argument("--initial-rv", type=int, default=1000)
    ap.add_argument("--seed-pods", type=int, default=0)
    ap.add_argument("--seed-namespace", default="default")
    ap.add_argument("--strict-namespaces", action="store_true")
    ap.add_argument("--churn", type=float, default=0.0,
                    help="random pod create/modify/delete ops per second")
    ap.add_argument("--churn-namespaces", default="default")
    ap.add_argument("--churn-target", type=int, default=20)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose
    if args.token_file:
        with open(args.token_file) as f:
            args.token = f.read().strip()
    tls_ctx = None
    if args.tls_cert:
        tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls_ctx.set_alpn_protocols(["http/1.1"])
    gc.set_threshold(100000, 50, 100)
    store = Store(args.history_size, args.initial_rv)
    store.auto_namespaces = not args.strict_namespaces
    srv = Server((args.host, args.port), Handler, tls_ctx, ":" in args.host)
    srv.store = store
    srv.st = State(args)
    srv.port = srv.server_address[1]
    srv.host_str = "[%s]" % args.host if ":" in args.host else args.host
    seed(store, args)
    if args.churn > 0:
        c_churn(srv, "POST", {"rate": args.churn,
                              "namespaces": args.churn_namespaces,
                              "target": args.churn_target})
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.port)
        os.rename(tmp, args.port_file)
    log("listening", host=args.host, port=srv.port,
        tls=tls_ctx is not None)

    def on_term(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
