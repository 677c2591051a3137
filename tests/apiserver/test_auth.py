#!/usr/bin/env python3
"""Bearer-token authentication, token rotation and TLS."""

import json
import os
import ssl
import tempfile
import unittest
import urllib.request

from testlib import ApiServer, ApiError, RawWatch, KUBECTL, kubectl


class TokenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer(token="first-token").start()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def test_401_and_rotation(self):
        api = self.api
        path = api.path("pods", "default")
        self.assertEqual(api.raw("GET", path)[0], 200)
        for tok in ("", "wrong"):
            st, _, body = api.raw("GET", path, token=tok)
            self.assertEqual(st, 401)
            body = json.loads(body)
            self.assertEqual((body["kind"], body["reason"], body["code"]),
                             ("Status", "Unauthorized", 401))
        with self.assertRaises(ApiError) as c:
            api.watch("pods", token="wrong")
        self.assertEqual(c.exception.status, 401)
        # anonymous access to /version, like system:public-info-viewer
        self.assertEqual(api.raw("GET", "/version", token="")[0], 200)
        self.assertEqual(api.raw("GET", "/version", token="bad")[0], 401)
        # rotation; an open watch is not cut by it
        w = RawWatch(api, "pods",
                     resourceVersion=str(api.resource_version()))
        # The watch is logged when its handler starts: let that happen
        # before the rotation, or it is logged as an invalid token.
        api.wait_for(lambda: any(e.get("watch") for e in api.request_log()))
        api.set_token("second-token")
        self.assertEqual(api.raw("GET", path, token="first-token")[0], 401)
        self.assertEqual(api.raw("GET", path, token="second-token")[0], 200)
        api.set_token("third-token", also_accept=["second-token"])
        self.assertEqual(api.raw("GET", path, token="second-token")[0], 200)
        self.assertEqual(api.raw("GET", path)[0], 200)  # third
        api.create("pods", {"metadata": {"name": "p"}, "spec": {}})
        self.assertEqual(w.event()["object"]["metadata"]["name"], "p")
        w.close()
        # requests with the wrong token are logged with their status
        log = [e for e in api.request_log() if e["status"] == 401]
        self.assertGreaterEqual(len(log), 4)
        self.assertEqual({e["auth"] for e in log}, {"none", "invalid"})
        ok = [e for e in api.request_log() if e["status"] == 200 and
              e["path"] != "/version"]
        self.assertEqual({e["auth"] for e in ok}, {"valid"})
        self.assertNotIn("token", json.dumps(api.request_log()).replace(
            "/token", ""))


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = ApiServer(tls=True, token="tls-token", seed_pods=2).start()
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.tmp.cleanup()

    def test_https(self):
        api = self.api
        self.assertTrue(api.url.startswith("https://127.0.0.1:"))
        lst = api.list("pods", "default")
        self.assertEqual(len(lst["items"]), 2)
        # the CA is required: an unverified client fails the handshake
        with self.assertRaises((ssl.SSLError, OSError)):
            urllib.request.urlopen(api.url + "/version", timeout=5,
                                   context=ssl.create_default_context())
        # a watch over TLS
        with RawWatch(api, "pods", "default") as w:
            self.assertEqual(w.event()["type"], "ADDED")
            api.drop_watches("mid_event")
            api.create("pods", {"metadata": {"name": "tls-p"}, "spec": {}})
            self.assertEqual(w.event()["type"], "ADDED")  # second seed
            self.assertEqual(w.read(3)[0], "partial")
        # plain HTTP against the TLS port does not kill the server
        st, _, _ = ("x", None, None)
        try:
            import http.client
            c = http.client.HTTPConnection(api.host, api.port, timeout=3)
            c.request("GET", "/version")
            st = c.getresponse().status
        except (OSError, http.client.HTTPException):
            st = "refused"
        self.assertNotEqual(st, 200)
        self.assertEqual(api.get("pods", "tls-p")["metadata"]["name"],
                         "tls-p")

    @unittest.skipIf(KUBECTL is None, "SKIPPED: kubectl not found")
    def test_kubectl_over_tls(self):
        kc = self.api.write_kubeconfig(os.path.join(self.tmp.name, "kc"))
        out = kubectl(kc, "get", "pods", "-o", "name").stdout.split()
        self.assertEqual(len([n for n in out if "seed-" in n]), 2)
        bad = self.api.write_kubeconfig(os.path.join(self.tmp.name, "bad"),
                                        token="nope")
        r = kubectl(bad, "get", "pods", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Unauthorized", r.stderr)


if __name__ == "__main__":
    if KUBECTL is None:
        print("SKIPPED: kubectl not found (kubectl-based checks only)")
    unittest.main(verbosity=2)
