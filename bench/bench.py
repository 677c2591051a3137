#!/usr/bin/env python3
"""kube-watch-bridge benchmarks: drives streamd, the anchors, the agent and
bench_store; prints a table and writes every figure as JSON.

    bench/run.sh [--quick]          (builds Release first)
    bench/bench.py --build DIR [--quick] [--only NAME,...] [--json FILE]

Figures (see BENCHMARKS.md for the method):
  ceiling     streamd's own rate with a null reader
  anchors     cJSON parse-only, cJSON parse+print+write, read+write+fsync
  agent       end-to-end into the file sink (and Kafka mock if available):
              events/s and agent CPU seconds per 100k events
  latency     at a fixed 10k events/s: server write -> sink fdatasync done;
              each event's latency split into agent / waiting for the
              fdatasync in flight / its own fdatasync, and matched against
              the machine's stalls seen meanwhile by bench/stallprobe
  memory      VmHWM idle with 10k tracked objects; VmRSS split into
              anonymous and file-backed (smaps_rollup), beside the floor:
              bench/rss_floor, the same libraries initialised and idle;
              the anonymous peak (sampled) and the anonymous RSS while
              events trickle in after the list
  relist      relist + diff of 100k objects: time, CPU, peak RSS growth
  store       bytes per tracked object at 100k and 1M (bench_store)
  profile     perf record of the agent on the pods stream (if perf works)
CPU is read from /proc/PID/schedstat (ns on CPU); utime/stime from
/proc/PID/stat for the split. Nothing here asserts timings.
"""
import argparse
import bisect
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
TS_KEY = b'"bench.kwb/sent-ns":"'
WATCH_LIST = ["off"]  # the agent's watch_defaults.watch_list
AGENT_CONF = []  # --agent-conf: extra lines for the agent's config file


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_of(pid):
    """(total CPU s from schedstat, utime s, stime s)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ut, st = int(fields[11]) / TICK, int(fields[12]) / TICK
    # schedstat is per thread: sum the live threads (ns resolution). The
    # agent's threads live as long as it does, so none is missed.
    total = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        total /= 1e9
    except OSError:
        total = ut + st
    return total, ut, st


def minflt(pid):
    """Minor page faults of the whole process so far."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rollup_kb(pid):
    """VmRSS split from /proc/PID/smaps_rollup: rss, anon (Anonymous),
    file (rss - anon: library and executable pages, shared ones counted in
    full) and pss_file (the same, shared pages divided among sharers)."""
    vals = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                vals[parts[0].rstrip(":")] = int(parts[1])
    rss, anon = vals.get("Rss", 0), vals.get("Anonymous", 0)
    return {"rss_kb": rss, "anon_kb": anon, "file_kb": rss - anon,
            "pss_file_kb": vals.get("Pss_File", 0)}


def rss_floor(build):
    """bench/rss_floor: the agent's libraries initialised, idle. Its RSS is
    the floor any agent built on them pays."""
    exe = os.path.join(build, "bench", "rss_floor")
    proc = subprocess.Popen([exe], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        if not line.startswith("ready "):
            raise RuntimeError("rss_floor did not start: %r" % line)
        time.sleep(0.5)
        out = rollup_kb(proc.pid)
        out["vmhwm_kb"] = status_kb(proc.pid, "VmHWM")
        out["threads"] = status_kb(proc.pid, "Threads")
        out["libs"] = line.split("(", 1)[1].rstrip(")\n")
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return out


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = []
    return {"nproc": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "loadavg": load}


class Streamd:
    def __init__(self, build, tmp, **kw):
        self.port_file = os.path.join(tmp, "streamd.port.%d" % id(self))
        args = [os.path.join(build, "bench", "streamd"),
                "--port-file", self.port_file]
        for k, v in kw.items():
            if v is True:
                args.append("--" + k)
            elif v is not None and v is not False:
                args += ["--" + k, str(v)]
        self.log = open(os.path.join(tmp, "streamd.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamd did not start")
            time.sleep(0.01)
        self.port = int(open(self.port_file).read())
        self.url = "http://127.0.0.1:%d" % self.port

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


class Agent:
    def __init__(self, build, tmp, server, kind, sinks=None, initial="emit",
                 env=None, preload=None):
        self.tmp = tmp
        self.events = os.path.join(tmp, "events.jsonl")
        self.metrics_port = free_port()
        api, res = ("v1", kind)
        sinks = sinks or [
            'type = "file"; path = "%s"; rotate_bytes = 0;' % self.events]
        conf = os.path.join(tmp, "agent.conf")
        with open(conf, "w") as f:
            f.write('cluster = { name = "bench"; server = "%s"; };\n' % server)
            f.write('state = { dir = "%s"; };\n' % os.path.join(tmp, "state"))
            f.write('initial = "%s";\nlog_level = "info";\n' % initial)
            # Paginated LIST by default (comparable with earlier runs);
            # --watch-list on|auto uses streamd's sendInitialEvents path.
            f.write('watch_defaults = { watch_list = "%s"; };\n' %
                    WATCH_LIST[0])
            f.write('watches = ( { api = "%s"; resource = "%s"; } );\n' %
                    (api, res))
            f.write("sinks = ( %s );\n" %
                    ", ".join("{ %s }" % s for s in sinks))
            f.write('metrics_address = "127.0.0.1:%d";\n' % self.metrics_port)
            for line in AGENT_CONF:
                f.write(line + "\n")
        e = dict(os.environ)
        e.update(env or {})
        if preload:
            e["LD_PRELOAD"] = preload
        self.logf = open(os.path.join(tmp, "agent.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(build, "kube-watch-bridge"), "--config", conf],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            env=e)
        self.pid = self.proc.pid

    def get(self, path):
        with urllib.request.urlopen(
                "http://127.0.0.1:%d%s" % (self.metrics_port, path),
                timeout=5) as r:
            return r.status, r.read().decode()

    def wait_ready(self, timeout=120, synced_log=False):
        """/readyz 200; or, with synced_log, the watch's "listed" log line
        (the Kafka sink reports ready only once it has produced)."""
        deadline = time.monotonic() + timeout
        logp = os.path.join(self.tmp, "agent.log")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agent exited: see %s/agent.log" %
                                   self.tmp)
            try:
                if synced_log:
                    with open(logp, "rb") as f:
                        if b'"msg":"listed ' in f.read():
                            return
                elif self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("agent not ready")

    def metric(self, name, label=None):
        body = self.get("/metrics")[1]
        total = 0
        for line in body.splitlines():
            if line.startswith(name) and (label is None or label in line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_acked(self, n, sink="file", timeout=600, interval=0.02):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agent exited")
            if self.metric("kwb_sink_acked_total",
                           'sink="%s"' % sink) >= n:
                return time.monotonic()
            time.sleep(interval)
        raise RuntimeError("timed out waiting for %d acks" % n)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def fresh(base, name):
    d = os.path.join(base, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


# ---- figures ---------------------------------------------------------------

def bench_ceiling(a, res):
    out = {}
    for kind in ("pods", "events"):
        p = subprocess.run([os.path.join(a.build, "bench", "streamd"),
                            "--kind", kind, "--ceiling",
                            "1" if a.quick else "3"],
                           capture_output=True, text=True, check=True)
        m = re.search(r"([\d.]+) events/s, ([\d.]+) MB/s, ([\d.]+) bytes",
                      p.stdout)
        out[kind] = {"events_per_s": float(m.group(1)),
                     "mb_per_s": float(m.group(2)),
                     "bytes_per_event": float(m.group(3))}
        log(p.stdout.strip())
    res["ceiling"] = out


def n_events(a, kind):
    if a.quick:
        return 100000 if kind == "pods" else 200000
    return 400000 if kind == "pods" else 1000000


def bench_anchors(a, res):
    out = {}
    for kind in ("pods", "events"):
        n = n_events(a, kind)
        d = fresh(a.tmp, "anchors")
        runs = {}
        for rep in range(a.reps):
            sd = Streamd(a.build, d, kind=kind, count=n)
            try:
                p = subprocess.run(
                    [os.path.join(a.build, "bench", "anchors"), "--kind",
                     kind, "--events", str(n), "--dir", d, "--port",
                     str(sd.port)], capture_output=True, text=True,
                    check=True)
            finally:
                sd.stop()
            for line in p.stdout.splitlines():
                r = json.loads(line)
                runs.setdefault(r["anchor"], []).append(r)
                log("anchor %s %s: %.0f events/s, %.3f s CPU/100k" %
                    (kind, r["anchor"], r["events_per_s"],
                     r["cpu_s_per_100k"]))
        out[kind] = {k: summarize(v) for k, v in runs.items()}
    res["anchors"] = out


def summarize(runs):
    """Median events/s and CPU over repetitions, plus min CPU."""
    cpu = [r["cpu_s_per_100k"] for r in runs]
    return {"events_per_s": statistics.median(r["events_per_s"]
                                              for r in runs),
            "cpu_s_per_100k": statistics.median(cpu),
            "cpu_s_per_100k_min": min(cpu), "runs": runs}


def agent_env(a, env=None):
    """env plus every --agent-env KEY=VALUE, for each agent a run starts."""
    env = dict(env or {})
    for kv in a.agent_env:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def agent_run(a, kind, n, sinks=None, sink="file", preload=None, env=None,
              rate=None, profile=None):
    d = fresh(a.tmp, "agent-%s" % kind)
    env = agent_env(a, env)
    sd = Streamd(a.build, d, kind=kind, count=n, gate=True, rate=rate)
    ag = None
    try:
        ag = Agent(a.build, d, sd.url, kind, sinks=sinks, env=env,
                   preload=preload)
        ag.wait_ready(synced_log=(sink != "file"))
        time.sleep(0.3)  # the watch request is in, held by the gate
        perf = None
        if profile:
            perf = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g",
                 "-p", str(ag.pid), "-o", profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        c0 = cpu_of(ag.pid)
        f0 = minflt(ag.pid)
        t0 = time.monotonic()
        sd.signal(signal.SIGUSR1)
        t1 = ag.wait_acked(n, sink=sink)
        c1 = cpu_of(ag.pid)
        f1 = minflt(ag.pid)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        hwm = status_kb(ag.pid, "VmHWM")
        r = {"events": n, "wall_s": t1 - t0,
             "events_per_s": n / (t1 - t0),
             "cpu_s": c1[0] - c0[0], "utime_s": c1[1] - c0[1],
             "stime_s": c1[2] - c0[2],
             "cpu_s_per_100k": (c1[0] - c0[0]) * 1e5 / n,
             "vmhwm_kb": hwm, "minflt_per_1k": (f1 - f0) * 1e3 / n}
        ag.stop()
        r["dir"] = d
        return r
    finally:
        if ag:
            ag.stop()
        sd.stop()


def bench_agent(a, res):
    out = {}
    for kind in ("pods", "events"):
        n = n_events(a, kind)
        runs = []
        for rep in range(a.reps):
            r = agent_run(a, kind, n)
            shutil.rmtree(r.pop("dir"), ignore_errors=True)
            runs.append(r)
            log("agent file %s: %.0f events/s, %.3f s CPU/100k "
                "(user %.3f, sys %.3f s/100k; %.0f page faults/1k events)" %
                (kind, r["events_per_s"], r["cpu_s_per_100k"],
                 r["utime_s"] * 1e5 / n, r["stime_s"] * 1e5 / n,
                 r["minflt_per_1k"]))
        out[kind] = summarize(runs)
    res["agent_file"] = out


def kafka_available(a):
    mock = os.path.join(a.build, "tests", "kafka_mock")
    if not os.path.exists(mock):
        return None, "tests/helpers/kafka_mock not built"
    if not os.path.exists(os.path.join(SRC, "sinks", "kafka.c")):
        return None, "no Kafka sink (sinks/kafka.c) in this tree"
    return mock, None


def bench_kafka(a, res):
    mock, why = kafka_available(a)
    if not mock:
        res["agent_kafka"] = {"skipped": why}
        log("kafka: skipped: %s" % why)
        return
    out = {}
    for kind in ("pods", "events"):
        n = n_events(a, kind) // (2 if not a.quick else 1)
        km = subprocess.Popen([mock, "--brokers", "1", "--topic",
                               "bench:4"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
        try:
            brokers = km.stdout.readline().strip()
            sinks = ['type = "kafka"; brokers = "%s"; topic = "bench";' %
                     brokers]
            r = agent_run(a, kind, n, sinks=sinks, sink="kafka")
            shutil.rmtree(r.pop("dir"), ignore_errors=True)
            out[kind] = r
            log("agent kafka %s: %.0f events/s, %.3f s CPU/100k" %
                (kind, r["events_per_s"], r["cpu_s_per_100k"]))
        finally:
            km.stdin.close()
            km.terminate()
            km.wait()
    res["agent_kafka"] = out


def pct(sorted_v, p):
    if not sorted_v:
        return 0
    i = min(len(sorted_v) - 1, int(round(p / 100.0 * (len(sorted_v) - 1))))
    return sorted_v[i]


def synclat(a, n, rate):
    """The machine's own floor for the latency figure: the same lines at
    the same rate, one write + fdatasync per millisecond, nothing else
    (anchors --only synclat)."""
    d = fresh(a.tmp, "synclat")
    stalls = os.path.join(a.tmp, "synclat-stalls.txt")
    probe = subprocess.Popen([os.path.join(a.build, "bench", "stallprobe"),
                              stalls])
    try:
        p = subprocess.run(
            [os.path.join(a.build, "bench", "anchors"), "--kind", "pods",
             "--events", str(n), "--dir", d, "--only", "synclat", "--rate",
             str(rate)], capture_output=True, text=True, check=True)
    finally:
        probe.terminate()
        probe.wait()
    shutil.rmtree(d, ignore_errors=True)
    out = json.loads(p.stdout.splitlines()[-1])
    # the same probe as beside the agent: does the floor see the stalls?
    st = stall_overlap(stalls, [])
    out["stalls_2ms"] = st.get("stalls_2ms", 0)
    out["stall_max_ms"] = st.get("max_ms", 0)
    out["stalls_at_phase"] = st.get("stalls_at_phase", 0)
    return out


def split_event(acks, k, sent):
    """Where an event's latency went, from the sink's fdatasyncs alone
    (acks: (size, end ns, duration ns) in file order; fdatasync k acked the
    event): fsync = its own fdatasync; wait = the part of [sent, start of
    its fdatasync] during which the sink was in an earlier fdatasync (the
    group commit: a batch waits for the fsync in flight); agent = the rest,
    from the server's write to its fdatasync's start: reading, parsing,
    hand-over, writev, and any time the agent's threads did not run."""
    end, du = acks[k][1], acks[k][2]
    start = end - du
    wait = 0
    i = k - 1
    while i >= 0 and acks[i][1] > sent:
        lo = max(sent, acks[i][1] - acks[i][2])
        hi = min(start, acks[i][1])
        if hi > lo:
            wait += hi - lo
        i -= 1
    return ((start - sent - wait) / 1e6, wait / 1e6, du / 1e6)


def latency_split(series):
    """p50/p99 of each part, and its mean over the slowest 1 %."""
    out = {"p50": {}, "p99": {}, "slowest_1pct_mean": {}}
    if not series:
        return out
    names = ("agent", "wait", "fsync")
    for i, name in enumerate(names):
        v = sorted(row[2 + i] for row in series)
        out["p50"][name] = pct(v, 50)
        out["p99"][name] = pct(v, 99)
    cut = pct(sorted(row[1] for row in series), 99)
    slow = [row for row in series if row[1] >= cut]
    out["slowest_1pct_from_ms"] = cut
    for i, name in enumerate(names):
        out["slowest_1pct_mean"][name] = statistics.mean(
            row[2 + i] for row in slow)
    return out


def stall_overlap(path, series):
    """Stalls bench/stallprobe saw during the run (on the same clock) and
    how many of the events over 10 ms had one inside their latency."""
    if not os.path.exists(path):
        return {}
    stalls = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            woke, late = line.split()
            late = float(late)
            stalls.append((int(woke) - int(late * 1e6), int(woke), late))
    stalls.sort()
    starts = [s[0] for s in stalls]
    longest = max((s[2] for s in stalls), default=0)

    def inside(lo, hi):
        i = max(0, bisect.bisect_left(starts, lo - int(longest * 1e6)) - 1)
        t = 0
        while i < len(stalls) and stalls[i][0] < hi:
            a, b = max(lo, stalls[i][0]), min(hi, stalls[i][1])
            if b > a:
                t += b - a
            i += 1
        return t / 1e6

    big = [s for s in stalls if s[2] >= 2]
    slow = [row for row in series if row[1] > 10]
    cover = [inside(row[0], row[0] + int(row[1] * 1e6)) for row in slow]
    hit = [c for c in cover if c >= 1]
    # A periodic stall shows as one phase of the wall clock's 100 ms cycle
    # (2 ms bins) holding most stall ends, and the slow events' acks.
    def top_phase(ns_list):
        bins = {}
        for ns in ns_list:
            b = (ns // 1000000) % 100 // 2 * 2
            bins[b] = bins.get(b, 0) + 1
        if not bins:
            return None, 0
        b = max(bins, key=bins.get)
        return b, bins[b] + bins.get((b + 2) % 100, 0)

    st_phase, st_in = top_phase([s[1] for s in big])
    ev_phase, ev_in = top_phase([row[0] + int(row[1] * 1e6) for row in slow])
    return {"stalls_2ms": len(big), "stalled_ms": sum(s[2] for s in big),
            "max_ms": longest, "over_10ms": len(slow),
            "over_10ms_in_stall": len(hit),
            "over_10ms_stall_mean_ms": statistics.mean(cover) if cover
            else 0,
            "stall_phase_ms": st_phase, "stalls_at_phase": st_in,
            "slow_ack_phase_ms": ev_phase, "slow_acks_at_phase": ev_in}


def bench_latency(a, res):
    rate = 10000
    secs = 3 if a.quick else 10
    n = rate * secs
    # The floor right before and right after the agent, on the same disk
    # in the same minute: this machine's stalls set the tail (BENCHMARKS.md).
    floor_before = synclat(a, n, rate)
    shim = os.path.join(a.build, "bench", "libackspy.so")
    d_acks = os.path.join(a.tmp, "acks.bin")
    if os.path.exists(d_acks):
        os.unlink(d_acks)
    d_probe = os.path.join(a.tmp, "latency-stalls.txt")
    probe = subprocess.Popen([os.path.join(a.build, "bench", "stallprobe"),
                              d_probe])
    try:
        r = agent_run(a, "pods", n, preload=shim, rate=rate,
                      env={"KWB_ACKSPY_OUT": d_acks})
    finally:
        probe.terminate()
        probe.wait()
    d = r.pop("dir")
    path = os.path.join(d, "events.jsonl")
    ino = os.stat(path).st_ino
    acks = []  # the sink's fdatasyncs: (file size, end ns, duration ns)
    other = []  # checkpoint fsyncs: (end ns, duration ns)
    dur = []
    with open(d_acks, "rb") as f:
        data = f.read()
    for off in range(0, len(data) - 31, 32):
        ns, i, size, du = struct.unpack_from("<QQQQ", data, off)
        if i == ino:
            acks.append((size, ns, du))
            dur.append(du / 1e6)
        else:
            other.append((ns, du / 1e6))
    acks.sort()
    dur.sort()
    lat = []
    series = []  # (sent ns, ms, agent ms, wait ms, fsync ms)
    j = 0
    pos = 0
    with open(path, "rb") as f:
        for line in f:
            pos += len(line)
            k = line.find(TS_KEY)
            if k < 0:
                continue
            sent = int(line[k + len(TS_KEY):k + len(TS_KEY) + 19])
            while j < len(acks) and acks[j][0] < pos:
                j += 1
            if j == len(acks):
                break
            lat.append((acks[j][1] - sent) / 1e6)
            series.append((sent, lat[-1]) + split_event(acks, j, sent))
    with open(os.path.join(a.tmp, "latency-series.txt"), "w") as f:
        f.write("# sent_ns latency_ms agent_ms wait_ms fsync_ms\n")
        for row in series:
            f.write("%d %.3f %.3f %.3f %.3f\n" % row)
    with open(os.path.join(a.tmp, "latency-other-fsyncs.txt"), "w") as f:
        for ns, ms in other:
            f.write("%d %.3f\n" % (ns, ms))
    lat.sort()
    out = {"rate": rate, "events": n, "measured": len(lat),
           "fdatasyncs": len(acks),
           "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
           "p999_ms": pct(lat, 99.9), "max_ms": lat[-1] if lat else 0,
           "cpu_s_per_100k": r["cpu_s_per_100k"],
           "fdatasync_p50_ms": pct(dur, 50), "fdatasync_p99_ms": pct(dur, 99),
           "fdatasync_max_ms": dur[-1] if dur else 0,
           "other_fsyncs": len(other),
           "other_fsync_max_ms": max((o[1] for o in other), default=0)}
    out["split"] = latency_split(series)
    out["stalls"] = stall_overlap(d_probe, series)
    shutil.rmtree(d, ignore_errors=True)
    floor_after = synclat(a, n, rate)
    out["floor_before"] = floor_before
    out["floor_after"] = floor_after
    log("latency at %d/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
        "(%d events, %d fdatasyncs: p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
        "%d other fsyncs, max %.2f ms)" %
        (rate, out["p50_ms"], out["p99_ms"], out["max_ms"], len(lat),
         len(acks), out["fdatasync_p50_ms"], out["fdatasync_p99_ms"],
         out["fdatasync_max_ms"], len(other), out["other_fsync_max_ms"]))
    sp = out["split"]
    log("latency split (agent: server write -> its fdatasync starts, less "
        "the time the sink was in an fdatasync meanwhile; wait: in those "
        "fdatasyncs; fsync: its own): p50 agent %.2f wait %.2f fsync %.2f "
        "ms; p99 agent %.2f wait %.2f fsync %.2f ms; slowest 1 %% (>= "
        "%.2f ms) on average: agent %.2f wait %.2f fsync %.2f ms" %
        (sp["p50"]["agent"], sp["p50"]["wait"], sp["p50"]["fsync"],
         sp["p99"]["agent"], sp["p99"]["wait"], sp["p99"]["fsync"],
         sp["slowest_1pct_from_ms"], sp["slowest_1pct_mean"]["agent"],
         sp["slowest_1pct_mean"]["wait"], sp["slowest_1pct_mean"]["fsync"]))
    st = out["stalls"]
    if st:
        log("machine stalls meanwhile (bench/stallprobe, a thread due every "
            "ms): %d late >= 2 ms (%.0f ms in all, max %.1f ms); of the %d "
            "events over 10 ms, %d (%.0f %%) had such a stall inside their "
            "latency (%.2f ms of it on average)" %
            (st["stalls_2ms"], st["stalled_ms"], st["max_ms"],
             st["over_10ms"], st["over_10ms_in_stall"],
             100.0 * st["over_10ms_in_stall"] / max(1, st["over_10ms"]),
             st["over_10ms_stall_mean_ms"]))
        if st["stall_phase_ms"] is not None:
            log("  phase in the wall clock's 100 ms cycle: %d of %d stalls "
                "ended at %d-%d ms; %d of %d slow events were acked at "
                "%s-%s ms" %
                (st["stalls_at_phase"], st["stalls_2ms"],
                 st["stall_phase_ms"], st["stall_phase_ms"] + 3,
                 st["slow_acks_at_phase"], st["over_10ms"],
                 st["slow_ack_phase_ms"],
                 "?" if st["slow_ack_phase_ms"] is None
                 else st["slow_ack_phase_ms"] + 3))
    for name, f in (("before", floor_before), ("after", floor_after)):
        log("latency floor %s (write + fdatasync each ms, no agent): "
            "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; "
            "stallprobe meanwhile: %d stalls >= 2 ms (max %.1f ms), %d of "
            "them in one 4 ms phase of the 100 ms cycle" %
            (name, f["p50_ms"], f["p99_ms"], f["p999_ms"], f["max_ms"],
             f.get("stalls_2ms", 0), f.get("stall_max_ms", 0),
             f.get("stalls_at_phase", 0)))
    res["latency"] = out


class AnonPeak:
    """RssAnon of pid, sampled every millisecond in a thread: the peak of
    the memory the agent itself holds (VmHWM counts library pages too)."""

    def __init__(self, pid):
        self.pid, self.peak, self.done = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                self.peak = max(self.peak, status_kb(self.pid, "RssAnon"))
            except (OSError, ValueError):
                return
            time.sleep(0.001)

    def stop(self):
        self.done = True
        self.thread.join()
        return self.peak


def bench_memory(a, res):
    d = fresh(a.tmp, "memory")
    # Right after the list the gate opens: 15 pod changes at 5/s, the
    # steady trickle of a real cluster (the batch pool must not keep the
    # list's peak for as long as events keep coming); then 2 s idle.
    sd = Streamd(a.build, d, kind="pods", list=10000, gate=True, count=15,
                 rate=5)
    ag = None
    try:
        ag = Agent(a.build, d, sd.url, "pods", env=agent_env(a))
        peak = AnonPeak(ag.pid)
        ag.wait_ready()
        ag.wait_acked(10000)
        anon_peak = peak.stop()
        sd.signal(signal.SIGUSR1)
        time.sleep(2.5)
        trickle = rollup_kb(ag.pid)["anon_kb"]
        ag.wait_acked(10015)
        time.sleep(2)
        out = {"objects": 10000, "vmhwm_kb": status_kb(ag.pid, "VmHWM"),
               "vmrss_kb": status_kb(ag.pid, "VmRSS"),
               "threads": status_kb(ag.pid, "Threads"),
               "anon_peak_kb": anon_peak, "trickle_anon_kb": trickle}
        out.update(rollup_kb(ag.pid))
    finally:
        if ag:
            ag.stop()
        sd.stop()
    shutil.rmtree(d, ignore_errors=True)
    out["floor"] = rss_floor(a.build)
    fl = out["floor"]
    log("memory idle, 10k pods tracked (listed, emitted): VmHWM %d kB, "
        "VmRSS %d kB = %d kB anonymous + %d kB file-backed (Pss_File %d kB)"
        % (out["vmhwm_kb"], out["vmrss_kb"], out["anon_kb"], out["file_kb"],
           out["pss_file_kb"]))
    log("memory anonymous peak during the list (RssAnon sampled every ms): "
        "%d kB; while 5 events/s follow it (2.5 s in): %d kB"
        % (out["anon_peak_kb"], out["trickle_anon_kb"]))
    log("memory floor (bench/rss_floor: the same libraries initialised, "
        "idle): VmRSS %d kB = %d kB anonymous + %d kB file-backed "
        "(Pss_File %d kB)" % (fl["rss_kb"], fl["anon_kb"], fl["file_kb"],
                              fl["pss_file_kb"]))
    res["memory"] = out


def bench_relist(a, res):
    n = 100000
    d = fresh(a.tmp, "relist")
    sd = Streamd(a.build, d, kind="pods", list=n, gate=True)
    ag = None
    try:
        ag = Agent(a.build, d, sd.url, "pods", initial="skip",
                   env=agent_env(a))
        t0 = time.monotonic()
        ag.wait_ready(timeout=300)
        first = time.monotonic() - t0
        hwm_first = status_kb(ag.pid, "VmHWM")
        time.sleep(0.5)
        rss0 = status_kb(ag.pid, "VmRSS")
        with open("/proc/%d/clear_refs" % ag.pid, "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        c0 = cpu_of(ag.pid)
        t0 = time.monotonic()
        sd.signal(signal.SIGUSR2)
        # 1 % modified + 1 % new + 1 % deleted
        t1 = ag.wait_acked(3 * (n // 100), interval=0.005, timeout=120)
        c1 = cpu_of(ag.pid)
        out = {"objects": n, "changes": 3 * (n // 100),
               "seconds": t1 - t0, "cpu_s": c1[0] - c0[0],
               "rss_before_kb": rss0,
               "vmhwm_during_kb": status_kb(ag.pid, "VmHWM"),
               "first_list_s": first, "first_list_vmhwm_kb": hwm_first,
               "relists": ag.metric("kwb_watch_relists_total")}
        out["peak_growth_kb"] = out["vmhwm_during_kb"] - rss0
    finally:
        if ag:
            ag.stop()
        sd.stop()
    shutil.rmtree(d, ignore_errors=True)
    log("relist+diff of %d pods: %.3f s, %.3f s CPU, peak RSS +%d kB "
        "(first list: %.2f s, VmHWM %d kB)" %
        (n, out["seconds"], out["cpu_s"], out["peak_growth_kb"], first,
         hwm_first))
    res["relist"] = out


def bench_store(a, res):
    p = subprocess.run([os.path.join(a.build, "bench", "bench_store")],
                       capture_output=True, text=True, check=True)
    out = [json.loads(line) for line in p.stdout.splitlines()]
    for r in out:
        log("store: %s" % json.dumps(r))
    res["store"] = out


def bench_profile(a, res):
    if not shutil.which("perf") or subprocess.run(
            ["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "true"],
            capture_output=True).returncode != 0:
        res["profile"] = {"skipped": "perf record does not work here"}
        return
    out = {}
    for kind in ("pods", "events"):
        data = os.path.join(a.tmp, "perf-%s.data" % kind)
        r = agent_run(a, kind, n_events(a, kind) // 2, profile=data)
        shutil.rmtree(r.pop("dir"), ignore_errors=True)
        rep = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "--sort",
             "dso,sym", "-g", "none", "--percent-limit", "0.7",
             "--stdio"], capture_output=True, text=True)
        lines = [ln for ln in rep.stdout.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        out[kind] = lines[:40]
        txt = os.path.join(a.tmp, "perf-%s.txt" % kind)
        with open(txt, "w") as f:
            f.write(rep.stdout)
        log("profile %s (top):\n  %s" % (kind, "\n  ".join(lines[:15])))
    res["profile"] = out


FIGURES = [("ceiling", bench_ceiling), ("anchors", bench_anchors),
           ("agent", bench_agent), ("kafka", bench_kafka),
           ("latency", bench_latency), ("memory", bench_memory),
           ("relist", bench_relist), ("store", bench_store),
           ("profile", bench_profile)]


# ---- table -------------------------------------------------------------------

def table(res):
    rows = []
    m = res["machine"]
    rows.append("machine: %s x%s, kernel %s, load %s" %
                (m["cpu"], m["nproc"], m["kernel"], " ".join(m["loadavg"])))
    if "ceiling" in res:
        for k, v in res["ceiling"].items():
            rows.append("streamd ceiling %-6s %10.0f events/s  %6.0f MB/s" %
                        (k, v["events_per_s"], v["mb_per_s"]))
    targets = {"pods": (150000, 0.65), "events": (350000, 0.28)}
    if "agent_file" in res:
        rows.append("")
        rows.append("%-34s %12s %12s %s" % ("", "events/s", "CPU s/100k",
                                             ""))
        for kind in ("pods", "events"):
            an = res.get("anchors", {}).get(kind, {})
            for name, label in (("parse", "cJSON parse-only"),
                                ("print", "cJSON parse+print+write"),
                                ("io", "read+write+fsync (I/O floor)")):
                if name in an:
                    rows.append("%-34s %12.0f %12.3f" %
                                ("%s %s" % (kind, label),
                                 an[name]["events_per_s"],
                                 an[name]["cpu_s_per_100k"]))
            ag = res["agent_file"][kind]
            tr, tc = targets[kind]
            rows.append("%-34s %12.0f %12.3f  target >=%dk/s %s, <=%.2f s %s"
                        % ("%s AGENT file sink" % kind, ag["events_per_s"],
                           ag["cpu_s_per_100k"], tr // 1000,
                           "met" if ag["events_per_s"] >= tr else "NOT met",
                           tc, "met" if ag["cpu_s_per_100k"] <= tc
                           else "NOT met"))
            for name in ("parse", "print", "io"):
                if name in an:
                    rows.append("%-34s %12.2fx %11.2fx" %
                                ("  agent / %s" % name,
                                 ag["events_per_s"] /
                                 an[name]["events_per_s"],
                                 ag["cpu_s_per_100k"] /
                                 an[name]["cpu_s_per_100k"]))
    if "agent_kafka" in res:
        k = res["agent_kafka"]
        if "skipped" in k:
            rows.append("kafka sink: skipped (%s)" % k["skipped"])
        else:
            for kind, r in k.items():
                rows.append("%-34s %12.0f %12.3f" %
                            ("%s AGENT kafka (mock)" % kind,
                             r["events_per_s"], r["cpu_s_per_100k"]))
    if "latency" in res:
        la = res["latency"]
        rows.append("")
        rows.append("latency @%d/s: p50 %.2f ms  p99 %.2f ms  max %.2f ms"
                    "  (target p99 < 10 ms: %s)" %
                    (la["rate"], la["p50_ms"], la["p99_ms"], la["max_ms"],
                     "met" if la["p99_ms"] < 10 else "NOT met"))
        sp = la.get("split", {})
        if sp.get("p99"):
            rows.append("  where it goes (ms): agent p50 %.2f p99 %.2f, "
                        "waiting for the fsync in flight p50 %.2f p99 %.2f, "
                        "own fsync p50 %.2f p99 %.2f; slowest 1 %%: agent "
                        "%.2f + wait %.2f + fsync %.2f" %
                        (sp["p50"]["agent"], sp["p99"]["agent"],
                         sp["p50"]["wait"], sp["p99"]["wait"],
                         sp["p50"]["fsync"], sp["p99"]["fsync"],
                         sp["slowest_1pct_mean"]["agent"],
                         sp["slowest_1pct_mean"]["wait"],
                         sp["slowest_1pct_mean"]["fsync"]))
        st = la.get("stalls")
        if st:
            rows.append("  machine stalls meanwhile (stallprobe): %d >= 2 ms,"
                        " max %.1f ms; events > 10 ms with one inside: "
                        "%d of %d" % (st["stalls_2ms"], st["max_ms"],
                                      st["over_10ms_in_stall"],
                                      st["over_10ms"]))
            if st.get("stall_phase_ms") is not None:
                rows.append("    %d of the stalls end at %d-%d ms of each "
                            "100 ms (periodic)" %
                            (st["stalls_at_phase"], st["stall_phase_ms"],
                             st["stall_phase_ms"] + 3))
        for name in ("floor_before", "floor_after"):
            if name in la:
                f = la[name]
                rows.append("  machine floor (%s): p50 %.2f ms  p99 %.2f ms"
                            "  max %.2f ms  (stalls >= 2 ms: %d)" %
                            (name.split("_")[1], f["p50_ms"], f["p99_ms"],
                             f["max_ms"], f.get("stalls_2ms", 0)))
    if "memory" in res:
        mm = res["memory"]
        rows.append("peak RSS idle, 10k objects: %.1f MB (target <= 10 MB: "
                    "%s)" % (mm["vmhwm_kb"] / 1024.0,
                             "met" if mm["vmhwm_kb"] <= 10240 else
                             "NOT met"))
        if "anon_kb" in mm:
            rows.append("  idle VmRSS %.1f MB = %.1f MB anonymous + %.1f MB "
                        "file-backed (Pss_File %.1f MB)" %
                        (mm["rss_kb"] / 1024.0, mm["anon_kb"] / 1024.0,
                         mm["file_kb"] / 1024.0, mm["pss_file_kb"] / 1024.0))
        if "anon_peak_kb" in mm:
            rows.append("  anonymous: peak %.1f MB during the list (sampled); "
                        "%.1f MB while 5 events/s follow it" %
                        (mm["anon_peak_kb"] / 1024.0,
                         mm["trickle_anon_kb"] / 1024.0))
        if "floor" in mm:
            fl = mm["floor"]
            rows.append("  floor, same libraries initialised and idle "
                        "(bench/rss_floor): VmRSS %.1f MB = %.1f MB "
                        "anonymous + %.1f MB file-backed; agent above it: "
                        "%.1f MB" %
                        (fl["rss_kb"] / 1024.0, fl["anon_kb"] / 1024.0,
                         fl["file_kb"] / 1024.0,
                         (mm["rss_kb"] - fl["rss_kb"]) / 1024.0))
    if "store" in res:
        for r in res["store"]:
            if r["figure"] == "store_bytes":
                rows.append("store bytes/object at %d: %.1f (RSS delta %.1f)"
                            " (target <= 128: %s)" %
                            (r["objects"], r["store_memory_per_object"],
                             r["rss_delta_per_object"],
                             "met" if max(r["store_memory_per_object"],
                                          r["rss_delta_per_object"]) <= 128
                             else "NOT met"))
            elif r["figure"] == "checkpoint_write":
                rows.append("checkpoint write of %d objects: %.3f s wall, "
                            "%.3f s CPU, peak RSS +%.1f MB" %
                            (r["objects"], r["wall_s"], r["cpu_s"],
                             r.get("rss_peak_growth_bytes", 0) / 1048576.0))
            else:
                rows.append("store-only relist diff of %d: %.3f s" %
                            (r["objects"], r["seconds"]))
    if "relist" in res:
        rl = res["relist"]
        rows.append("agent relist+diff of %d pods: %.3f s, %.3f s CPU, "
                    "peak RSS +%.1f MB (target < 1 s: %s)" %
                    (rl["objects"], rl["seconds"], rl["cpu_s"],
                     rl["peak_growth_kb"] / 1024.0,
                     "met" if rl["seconds"] < 1 else "NOT met"))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build-release"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--tmp", default="")
    ap.add_argument("--agent-env", action="append", default=[],
                    help="KEY=VALUE for the agent's environment (experiments,"
                    " e.g. GLIBC_TUNABLES=...)")
    ap.add_argument("--agent-conf", action="append", default=[],
                    help="a line for the agent's config file (experiments,"
                    " e.g. 'pipeline = { queue_bytes = 4194304; };')")
    ap.add_argument("--watch-list", default="off",
                    choices=("off", "on", "auto"),
                    help="the agent's initial sync: paginated LIST (off) or "
                    "streaming list (sendInitialEvents)")
    a = ap.parse_args()
    WATCH_LIST[0] = a.watch_list
    AGENT_CONF.extend(a.agent_conf)
    a.reps = a.reps or (1 if a.quick else 3)
    a.tmp = a.tmp or tempfile.mkdtemp(prefix="kwb-bench-")
    os.makedirs(a.tmp, exist_ok=True)
    only = set(x for x in a.only.split(",") if x)
    res = {"machine": machine(), "quick": a.quick, "reps": a.reps,
           "watch_list": a.watch_list}
    for name, fn in FIGURES:
        if only and name not in only:
            continue
        log("== %s" % name)
        try:
            fn(a, res)
        except Exception as e:  # one broken figure must not lose the rest
            log("%s failed: %s" % (name, e))
            res.setdefault("errors", {})[name] = str(e)
    res["machine_after"] = machine()
    path = a.json or os.path.join(a.tmp, "results.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(table(res))
    print("\nall figures: %s (scratch dir %s)" % (path, a.tmp))
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
