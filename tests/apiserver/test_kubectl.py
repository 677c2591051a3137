#!/usr/bin/env python3
"""The real kubectl against the test API server."""

import json
import os
import subprocess
import tempfile
import time
import unittest

from testlib import (ApiServer, kubectl, kubectl_env, require_kubectl,
                     KUBECTL, make_pod)


class KubectlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer(seed_pods=3).start()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.kc = cls.api.write_kubeconfig(os.path.join(cls.tmp.name, "kc"))

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.tmp.cleanup()

    def k(self, *args, **kw):
        return kubectl(self.kc, *args, **kw)

    def write(self, name, text):
        p = os.path.join(self.tmp.name, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_get_pods_all_namespaces(self):
        self.api.create("pods", make_pod("other-0", "team-a"),
                        namespace="team-a")
        out = self.k("get", "pods", "-A").stdout
        lines = out.strip().splitlines()
        self.assertIn("NAMESPACE", lines[0])
        self.assertIn("STATUS", lines[0])
        names = {ln.split()[1]: ln.split()[0] for ln in lines[1:]}
        seeds = [n for n in names if n.startswith("seed-")]
        self.assertEqual(len(seeds), 3)
        self.assertEqual(names["other-0"], "team-a")
        # -o json through the list path
        items = json.loads(self.k("get", "pods", "-n", "default", "-o",
                                  "json").stdout)["items"]
        self.assertEqual(len([i for i in items if i["metadata"]["name"]
                              .startswith("seed-")]), 3)
        self.assertTrue(all(i["kind"] == "Pod" for i in items))
        # label selector goes to the server
        out = self.k("get", "pods", "-A", "-l", "app in (web),tier",
                     "-o", "name").stdout.split()
        self.assertEqual(len(out), 4)

    def test_watch_json(self):
        p = subprocess.Popen([KUBECTL, "--kubeconfig", self.kc, "get",
                              "configmaps", "-w", "-o", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=kubectl_env())
        try:
            # kubectl lists then watches from the list's resourceVersion
            self.assertTrue(self.api.wait_for(
                lambda: self.api.watch_counts()["current"].get(
                    "configmaps") == 1, 10))
            self.api.create("configmaps", {"metadata": {"name": "watched"},
                                           "data": {"k": "v"}})
            buf = b""
            deadline = time.monotonic() + 10
            os.set_blocking(p.stdout.fileno(), False)
            while b'"watched"' not in buf and time.monotonic() < deadline:
                chunk = p.stdout.read()
                if chunk:
                    buf += chunk
                else:
                    time.sleep(0.05)
            self.assertIn(b'"name": "watched"', buf)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        log = [e for e in self.api.request_log()
               if e["watch"] and e["resource"] == "configmaps"]
        self.assertTrue(log and log[-1]["status"] == 200)
        self.assertIn("resourceVersion=", log[-1]["query"])

    def test_create_apply_patch_delete(self):
        f = self.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\n"
                       "metadata:\n  name: k-cm\ndata:\n  a: '1'\n")
        self.assertIn("created", self.k("create", "-f", f).stdout)
        r = self.k("create", "-f", f, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("AlreadyExists", r.stderr)
        self.k("patch", "configmap", "k-cm", "-p", '{"data":{"b":"2"}}')
        self.k("patch", "configmap", "k-cm", "--type=json",
               "-p", '[{"op":"remove","path":"/data/a"}]')
        self.assertEqual(self.api.get("configmaps", "k-cm")["data"],
                         {"b": "2"})
        # client-side apply: create, then GET + strategic merge PATCH
        f2 = self.write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\n"
                        "metadata:\n  name: k-apply\ndata:\n  a: '1'\n")
        self.assertIn("created", self.k("apply", "-f", f2).stdout)
        rv1 = self.api.get("configmaps", "k-apply")["metadata"][
            "resourceVersion"]
        self.assertIn("unchanged", self.k("apply", "-f", f2).stdout)
        self.assertEqual(self.api.get("configmaps", "k-apply")["metadata"][
            "resourceVersion"], rv1)
        self.write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\n"
                   "metadata:\n  name: k-apply\ndata:\n  b: '2'\n")
        self.assertIn("configured", self.k("apply", "-f", f2).stdout)
        obj = self.api.get("configmaps", "k-apply")
        self.assertEqual(obj["data"], {"b": "2"})
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration",
                      obj["metadata"]["annotations"])
        # server-side apply
        self.assertIn("serverside-applied",
                      self.k("apply", "--server-side", "-f", f2).stdout)
        # a pod with strategic merge on containers
        pod = self.write("pod.json", json.dumps(dict(
            make_pod("k-pod"), kind="Pod", apiVersion="v1")))
        self.k("apply", "-f", pod)
        self.k("patch", "pod", "k-pod", "-p", json.dumps(
            {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}))
        c = self.api.get("pods", "k-pod")["spec"]["containers"]
        self.assertEqual(len(c), 1)
        self.assertEqual(c[0]["image"], "x:2")
        self.assertEqual(c[0]["ports"][0]["containerPort"], 8080)
        self.assertIn('"k-pod" deleted', self.k("delete", "pod",
                                                "k-pod").stdout)
        self.assertIn("deleted", self.k("delete", "-f", f2).stdout)
        r = self.k("get", "configmap", "k-apply", check=False)
        self.assertIn("NotFound", r.stderr)

    def test_crd_style_resource(self):
        f = self.write("w.yaml", "apiVersion: example.com/v1\nkind: Widget\n"
                       "metadata:\n  name: w1\nspec:\n  size: 3\n")
        self.k("apply", "-f", f)
        out = self.k("get", "widgets").stdout
        self.assertIn("w1", out)
        out = self.k("get", "wd", "w1", "-o", "json").stdout
        self.assertEqual(json.loads(out)["spec"], {"size": 3})
        res = self.k("api-resources").stdout
        for s in ("widgets", "deployments", "leases", "namespaces"):
            self.assertIn(s, res)
        self.k("get", "deployments,leases,events,secrets", "-A")


if __name__ == "__main__":
    require_kubectl()
    unittest.main(verbosity=2)
