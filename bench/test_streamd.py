#!/usr/bin/env python3
"""Smoke test of the benchmark tools (ctest label bench; no timings
asserted): streamd serves valid Kubernetes LIST pages and WATCH lines with
the documented shape, the relist signal changes the list and ends the
watch with a 410, and anchors / bench_store run to completion.

Env: KWB_BUILD_DIR (the build tree).
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("KWB_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")
BENCH = os.path.join(BUILD, "bench")


class Streamd:
    def __init__(self, tmp, *args):
        self.port_file = os.path.join(tmp, "port")
        self.proc = subprocess.Popen(
            [os.path.join(BENCH, "streamd"), "--port-file", self.port_file] +
            list(args), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("streamd did not start")
            time.sleep(0.01)
        self.port = int(open(self.port_file).read())

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def read_chunked_lines(resp, n):
    """n NDJSON lines from a chunked response (http.client dechunks)."""
    buf = b""
    out = []
    while len(out) < n:
        data = resp.read1(65536)
        if not data:
            break
        buf += data
        while b"\n" in buf and len(out) < n:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
    return out


class TestStreamd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_list_pages_and_watch_lines(self):
        sd = Streamd(self.tmp.name, "--kind", "pods", "--list", "1200",
                     "--count", "100", "--pool", "40")
        self.addCleanup(sd.stop)
        c = sd.conn()
        uids, cont, pages = set(), None, 0
        while True:
            path = "/api/v1/pods?limit=500" + (
                "&continue=%s" % cont if cont else "")
            c.request("GET", path)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            body = json.loads(r.read())
            self.assertEqual(body["kind"], "PodList")
            self.assertTrue(body["metadata"]["resourceVersion"])
            for it in body["items"]:
                md = it["metadata"]
                self.assertEqual(it["kind"], "Pod")
                self.assertEqual(len(md["uid"]), 36)
                uids.add(md["uid"])
            pages += 1
            cont = body["metadata"].get("continue")
            if not cont:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(len(uids), 1200)

        c.request("GET", "/api/v1/pods?watch=1&resourceVersion=0")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        events = read_chunked_lines(r, 100)
        self.assertEqual(len(events), 100)
        rvs = [int(e["object"]["metadata"]["resourceVersion"])
               for e in events]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(len(set(rvs)), 100)
        types = [e["type"] for e in events]
        self.assertEqual(types.count("ADDED"), 20)
        self.assertEqual(types.count("MODIFIED"), 80)
        self.assertEqual(len({e["object"]["metadata"]["uid"]
                              for e in events}), 40)
        sizes = [len(json.dumps(e, separators=(",", ":"))) for e in events]
        self.assertTrue(3000 < sum(sizes) / len(sizes) < 4500)

    def test_relist_signal(self):
        sd = Streamd(self.tmp.name, "--kind", "events", "--list", "1000",
                     "--gate")
        self.addCleanup(sd.stop)
        c = sd.conn()
        c.request("GET", "/api/v1/events?watch=1&resourceVersion=0")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        sd.proc.send_signal(signal.SIGUSR2)
        ev = read_chunked_lines(r, 1)
        self.assertEqual(ev[0]["type"], "ERROR")
        self.assertEqual(ev[0]["object"]["code"], 410)
        c2 = sd.conn()
        c2.request("GET", "/api/v1/events")
        body = json.loads(c2.getresponse().read())
        self.assertEqual(body["kind"], "EventList")
        # 1 % deleted, 1 % new, 1 % modified
        self.assertEqual(len(body["items"]), 1000)
        names = {it["metadata"]["name"] for it in body["items"]}
        self.assertEqual(len(names), 1000)

    def test_watch_list(self):
        sd = Streamd(self.tmp.name, "--kind", "pods", "--list", "30",
                     "--count", "5")
        self.addCleanup(sd.stop)
        c = sd.conn()
        c.request("GET", "/api/v1/pods?watch=1&sendInitialEvents=true"
                  "&resourceVersionMatch=NotOlderThan&resourceVersion=")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        ev = read_chunked_lines(r, 36)
        self.assertEqual([e["type"] for e in ev[:30]], ["ADDED"] * 30)
        self.assertEqual(ev[30]["type"], "BOOKMARK")
        md = ev[30]["object"]["metadata"]
        self.assertEqual(md["annotations"]["k8s.io/initial-events-end"],
                         "true")
        self.assertEqual(len(ev), 36)
        self.assertEqual([e["type"] for e in ev[31:]],
                         ["ADDED"] + ["MODIFIED"] * 4)

    def test_tools_run(self):
        sd = Streamd(self.tmp.name, "--kind", "events", "--count", "2000")
        self.addCleanup(sd.stop)
        out = subprocess.run(
            [os.path.join(BENCH, "anchors"), "--kind", "events", "--events",
             "2000", "--dir", self.tmp.name, "--port", str(sd.port)],
            capture_output=True, text=True, timeout=120, check=True).stdout
        names = [json.loads(line)["anchor"] for line in out.splitlines()]
        self.assertEqual(names, ["parse", "print", "io"])
        out = subprocess.run([os.path.join(BENCH, "bench_store"), "2000"],
                             capture_output=True, text=True, timeout=120,
                             check=True).stdout
        figs = [json.loads(line)["figure"] for line in out.splitlines()]
        self.assertEqual(figs, ["checkpoint_write", "store_bytes",
                                "store_relist"])


if __name__ == "__main__":
    unittest.main()
