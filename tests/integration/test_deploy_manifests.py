#!/usr/bin/env python3
"""deploy/ and the Dockerfile keep their promises: non-root, read-only root,
no privilege, probes on the metrics port, RBAC limited to get/list/watch on
exactly the watched resources, and agent configs that pass --check.

Offline: `kubectl kustomize` renders deploy/, and `kubectl annotate --local
-o json` (which never contacts a server) turns the rendered YAML into JSON,
so no YAML library is needed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SRC = os.environ.get("KWB_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("KWB_BUILD_DIR") or os.path.join(SRC, "build")
DEPLOY = os.path.join(SRC, "deploy")
NAMESPACE = "kube-watch-bridge"
UID = 65532

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)
    return cond


def run(argv, **kw):
    env = dict(os.environ)
    # Never reach a real cluster, whatever the caller's kubeconfig says.
    env["KUBECONFIG"] = os.devnull
    return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env=env, **kw)


def render():
    r = run(["kubectl", "kustomize", DEPLOY])
    if r.returncode != 0:
        sys.exit("kubectl kustomize deploy/ failed:\n" + r.stderr)
    rendered = r.stdout
    r = run(["kubectl", "annotate", "--local", "-f", "-", "-o", "json",
             "kwb.test/rendered=1"], input=rendered)
    if r.returncode != 0:
        sys.exit("kubectl annotate --local failed:\n" + r.stderr)
    objs = []
    dec = json.JSONDecoder()
    text = r.stdout.strip()
    pos = 0
    while pos < len(text):
        obj, end = dec.raw_decode(text, pos)
        items = obj.get("items") if obj.get("kind") == "List" else [obj]
        objs.extend(items)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return rendered, objs


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and
             (name is None or o["metadata"]["name"] == name)]
    check(len(found) == 1, "exactly one %s%s" % (kind, " " + name if name
                                                  else ""))
    return found[0] if found else {}


def conf_watches(conf):
    """(group, resource) of every watch in a libconfig agent config."""
    body = re.sub(r"#[^\n]*", "", conf)
    m = re.search(r"watches\s*=\s*\((.*?)\);", body, re.S)
    if not m:
        return set()
    out = set()
    for grp in re.findall(r"\{([^}]*)\}", m.group(1)):
        api = re.search(r'api\s*=\s*"([^"]*)"', grp)
        res = re.search(r'resource\s*=\s*"([^"]*)"', grp)
        if api and res:
            group = api.group(1).rsplit("/", 1)[0] if "/" in api.group(1) \
                else ""
            out.add((group, res.group(1)))
    return out


def conf_watch_ids(conf):
    """Watch ids ("<api>/<resource>[@<namespace>]") of an agent config."""
    body = re.sub(r"#[^\n]*", "", conf)
    m = re.search(r"watches\s*=\s*\((.*?)\);", body, re.S)
    out = []
    for grp in re.findall(r"\{([^}]*)\}", m.group(1) if m else ""):
        api = re.search(r'api\s*=\s*"([^"]*)"', grp)
        res = re.search(r'resource\s*=\s*"([^"]*)"', grp)
        ns = re.search(r'namespace\s*=\s*"([^"]*)"', grp)
        if api and res:
            out.append("%s/%s%s" % (api.group(1), res.group(1),
                                    "@" + ns.group(1) if ns else ""))
    return out


def conf_string(conf, key):
    body = re.sub(r"#[^\n]*", "", conf)
    m = re.search(r'\b%s\s*=\s*"([^"]*)"' % re.escape(key), body)
    return m.group(1) if m else None


def check_config_file(conf_text, label):
    """The agent's own --check accepts the config."""
    binary = os.path.join(BUILD, "kube-watch-bridge")
    if not check(os.access(binary, os.X_OK), "binary built: " + binary):
        return
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(conf_text)
        path = f.name
    try:
        r = run([binary, "--config", path, "--check"])
        check(r.returncode == 0, "%s passes --check (rc %d: %s)"
              % (label, r.returncode, r.stderr.strip()))
    finally:
        os.unlink(path)


def check_deployment(objs, conf):
    dep = one(objs, "Deployment", "kube-watch-bridge")
    spec = dep.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    check(spec.get("replicas") == 1, "one replica (leader election off)")
    check(spec.get("strategy", {}).get("type") == "Recreate",
          "Recreate: never two agents forwarding during a rollout")
    check(pod.get("terminationGracePeriodSeconds") == 30,
          "terminationGracePeriodSeconds 30")
    check(pod.get("serviceAccountName") == "kube-watch-bridge",
          "runs as the kube-watch-bridge service account")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(psc.get("runAsUser") == UID, "pod runAsUser 65532")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          "pod seccomp RuntimeDefault")
    check(not pod.get("hostNetwork") and not pod.get("hostPID"),
          "no host namespaces")

    containers = pod.get("containers", [])
    check(len(containers) == 1, "one container")
    if not containers:
        return
    c = containers[0]
    sc = c.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, "container runAsNonRoot")
    check(sc.get("runAsUser") == UID, "container runAsUser 65532")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False,
          "allowPrivilegeEscalation false")
    check(not sc.get("privileged"), "not privileged")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"],
          "drops ALL capabilities")
    check(not sc.get("capabilities", {}).get("add"), "adds no capability")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          "container seccomp RuntimeDefault")

    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(r in res.get(kind, {}), "resources.%s.%s set" % (kind, r))

    # Probes on the metrics port, which is metrics_address's port.
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    addr = conf_string(conf, "metrics_address") or ""
    check(addr.rsplit(":", 1)[-1] == str(ports.get("metrics")),
          "containerPort metrics (%s) is metrics_address's port (%s)"
          % (ports.get("metrics"), addr))
    for probe, path in (("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and
              get.get("port") in ("metrics", ports.get("metrics")),
              "%s GET %s on the metrics port" % (probe, path))

    # Config file where --config points, from the ConfigMap.
    args = c.get("args", [])
    check("--config" in args, "started with --config")
    conf_path = args[args.index("--config") + 1] if "--config" in args \
        and args.index("--config") + 1 < len(args) else ""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    cm_mount = mounts.get(os.path.dirname(conf_path), {})
    cm_vol = volumes.get(cm_mount.get("name"), {})
    check(cm_vol.get("configMap", {}).get("name") == "kube-watch-bridge" and
          cm_mount.get("readOnly") is True,
          "config mounted read-only from the ConfigMap at %s" % conf_path)

    # The only writable places: the state dir and the file sink's dir, both
    # emptyDir volumes.
    state_dir = conf_string(conf, "dir")
    sink_path = conf_string(conf, "path")
    for what, d in (("state dir", state_dir),
                    ("file sink dir", sink_path and
                     os.path.dirname(sink_path))):
        m = mounts.get(d or "", {})
        v = volumes.get(m.get("name"), {})
        check("emptyDir" in v and not m.get("readOnly"),
              "%s %s is a writable emptyDir" % (what, d))
    for path, m in mounts.items():
        v = volumes.get(m["name"], {})
        check(m.get("readOnly") is True or "emptyDir" in v,
              "mount %s is read-only or an emptyDir" % path)
    return labels


def check_rbac(objs, conf):
    watched = conf_watches(conf)
    check(len(watched) >= 3, "config names its watches: %s" % sorted(watched))
    cr = one(objs, "ClusterRole", "kube-watch-bridge")
    granted = set()
    for rule in cr.get("rules", []):
        check(set(rule.get("verbs", [])) <= {"get", "list", "watch"},
              "ClusterRole verbs only get/list/watch: %s" % rule.get("verbs"))
        check("*" not in rule.get("resources", []) and
              "*" not in rule.get("apiGroups", []),
              "ClusterRole has no wildcard")
        check(not rule.get("nonResourceURLs"), "no non-resource URLs")
        for g in rule.get("apiGroups", []):
            for r in rule.get("resources", []):
                granted.add((g, r))
        check({"list", "watch"} <= set(rule.get("verbs", [])),
              "list and watch granted for %s" % rule.get("resources"))
    check(granted == watched,
          "ClusterRole grants exactly the watched resources (%s vs %s)"
          % (sorted(granted), sorted(watched)))

    crb = one(objs, "ClusterRoleBinding", "kube-watch-bridge")
    check(crb.get("roleRef", {}).get("name") == "kube-watch-bridge" and
          crb.get("subjects") == [{"kind": "ServiceAccount",
                                   "name": "kube-watch-bridge",
                                   "namespace": NAMESPACE}],
          "ClusterRoleBinding binds only the service account")

    cm_names = set()
    for role in [o for o in objs if o["kind"] == "Role"]:
        for rule in role.get("rules", []):
            check(rule.get("apiGroups") in (["coordination.k8s.io"], [""]) and
                  rule.get("resources") in (["leases"], ["configmaps"]) and
                  set(rule.get("verbs", [])) <= {"get", "create", "update"},
                  "Role %s: only leases/configmaps get/create/update"
                  % role["metadata"]["name"])
            if rule.get("resources") == ["configmaps"]:
                check("get" not in rule.get("verbs", []) or
                      rule.get("resourceNames"),
                      "configmaps get/update limited by name")
                cm_names |= set(rule.get("resourceNames", []))
    # The configmap state backend's names: "<prefix>-<watch id sanitized>".
    prefix = conf_string(conf, "configmap_name_prefix") or "kube-watch-bridge"
    expect = {prefix + "-" + re.sub(r"[^a-z0-9]+", "-", wid.lower()).strip("-")
              for wid in conf_watch_ids(conf)}
    check(cm_names == expect,
          "checkpoint Role names exactly the watches' ConfigMaps (%s vs %s)"
          % (sorted(cm_names), sorted(expect)))
    for rb in [o for o in objs if o["kind"] == "RoleBinding"]:
        check(rb.get("subjects") == [{"kind": "ServiceAccount",
                                      "name": "kube-watch-bridge",
                                      "namespace": NAMESPACE}],
              "RoleBinding %s binds only the service account"
              % rb["metadata"]["name"])


def check_dockerfile():
    with open(os.path.join(SRC, "Dockerfile")) as f:
        df = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", df, re.M)
    check(len(froms) == 2 and
          all(f == "debian:bookworm-slim" for f in froms),
          "Dockerfile: two stages FROM debian:bookworm-slim")
    check("scripts/deps.sh --build" in df and
          "deps.sh --runtime" in df,
          "Dockerfile: build stage --build, runtime stage --runtime deps")
    check(re.search(r"^USER 65532(:65532)?$", df, re.M) is not None,
          "Dockerfile: USER 65532")
    check('ENTRYPOINT ["kube-watch-bridge"]' in df, "Dockerfile: ENTRYPOINT")
    check('CMD ["--config", "/etc/kube-watch-bridge/kube-watch-bridge.conf"]'
          in df, "Dockerfile: CMD --config default path")
    m = re.search(r"^COPY (\S+) /etc/kube-watch-bridge/kube-watch-bridge.conf",
                  df, re.M)
    check(m is not None, "Dockerfile: default config installed")
    if m:
        with open(os.path.join(SRC, m.group(1))) as f:
            check_config_file(f.read(), "image default config")
    with open(os.path.join(SRC, ".dockerignore")) as f:
        ignored = f.read().split()
    check(".git" in ignored and any(p.startswith("build") for p in ignored),
          ".dockerignore excludes .git and build trees")


def check_apply(objs):
    """kubectl apply of deploy/ against the test API server: first with
    --dry-run=server (nothing stored), then for real."""
    sys.path.insert(0, os.path.join(SRC, "tests", "apiserver"))
    from testlib import ApiServer, kubectl, kubectl_minor
    # Debian's kubectl 1.20 needs the protobuf /openapi/v2 document for a
    # client-side apply; server-side apply needs nothing from the client.
    mode = ["--server-side"] if kubectl_minor() < 24 else []
    with ApiServer() as api:
        kc = os.path.join(api.dir, "kubeconfig")
        api.write_kubeconfig(kc)
        if mode:
            print("skip kubectl apply --dry-run=server: kubectl 1.%d decides "
                  "dry-run support from an OpenAPI v2 schema this server "
                  "does not serve; applying for real below" % kubectl_minor())
        else:
            r = kubectl(kc, "apply", "--dry-run=server", "-k", DEPLOY,
                        check=False)
            check(r.returncode == 0, "kubectl apply --dry-run=server -k "
                  "deploy/ succeeds: %s" % r.stderr.strip()[-300:])
            check(r.stdout.count("(server dry run)") == len(objs),
                  "every object was dry-run")
            check(api.list_all("apps/deployments", NAMESPACE)[0] == [],
                  "a dry run stores nothing")
        r = kubectl(kc, "apply", *mode, "-k", DEPLOY, check=False)
        check(r.returncode == 0, "kubectl apply -k deploy/ succeeds: %s" %
              r.stderr.strip()[-300:])
        dep = api.get("apps/deployments", "kube-watch-bridge",
                      namespace=NAMESPACE)
        check(dep["spec"]["template"]["spec"]["serviceAccountName"] ==
              "kube-watch-bridge", "the applied Deployment is stored")


def main():
    rendered, objs = render()
    kinds = sorted({o["kind"] for o in objs})
    for k in ("Namespace", "ServiceAccount", "ClusterRole",
              "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
              "Deployment", "Service"):
        check(k in kinds, "rendered manifests contain a %s" % k)
    for o in objs:
        if o["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            continue
        check(o["metadata"].get("namespace") == NAMESPACE,
              "%s %s in namespace %s" % (o["kind"], o["metadata"]["name"],
                                         NAMESPACE))
    check("readOnlyRootFilesystem: true" in rendered,
          "rendered YAML sets readOnlyRootFilesystem")

    cm = one(objs, "ConfigMap", "kube-watch-bridge")
    conf = cm.get("data", {}).get("kube-watch-bridge.conf", "")
    check(conf != "", "ConfigMap holds kube-watch-bridge.conf")
    check(conf_string(conf, "server") is None,
          "in-cluster config: no server key")

    labels = check_deployment(objs, conf) or {}
    sa = one(objs, "ServiceAccount", "kube-watch-bridge")
    check(sa.get("automountServiceAccountToken") is not False,
          "service account token mounted (in-cluster auth)")
    check_rbac(objs, conf)

    svc = one(objs, "Service", "kube-watch-bridge-metrics")
    sel = svc.get("spec", {}).get("selector", {})
    check(sel and all(labels.get(k) == v for k, v in sel.items()),
          "Service selects the agent's pods")
    check([p.get("targetPort") for p in svc.get("spec", {}).get("ports", [])]
          == ["metrics"], "Service targets the metrics port")

    check_config_file(conf, "ConfigMap config")
    check_dockerfile()
    check_apply(objs)

    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
