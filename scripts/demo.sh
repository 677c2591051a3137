#!/bin/bash
# Set up and run the agent end to end on the local default: installs
# dependencies, builds, starts the bundled test API server with live churn
# (pods created, changed and deleted), runs kube-watch-bridge against it
# with the file sink, and shows the events as they arrive.
#   scripts/demo.sh [SECONDS]   (default 20; Ctrl-C stops earlier)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

run=$(mktemp -d /tmp/kwb-demo.XXXXXX)
api_pid=""
agent_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
    echo "demo files (config, events, agent log, checkpoints) are in $run"
}
trap cleanup EXIT

python3 tests/apiserver/apiserver.py --port 0 --port-file "$run/port" \
    --seed-pods 10 --churn 5 >"$run/apiserver.log" 2>&1 &
api_pid=$!
for _ in $(seq 100); do [ -s "$run/port" ] && break; sleep 0.1; done
port=$(cat "$run/port")
sed -e "s#http://127.0.0.1:8080#http://127.0.0.1:$port#" \
    -e "s#/tmp/kube-watch-bridge/state#$run/state#" \
    -e "s#/tmp/kube-watch-bridge/#$run/#" \
    -e "s#^metrics_address.*#metrics_address = \"127.0.0.1:$((port + 1))\";#" \
    conf/kube-watch-bridge.conf >"$run/demo.conf"
./build/kube-watch-bridge --config "$run/demo.conf" --check
echo "test API server on 127.0.0.1:$port; agent writes $run/events.jsonl"
./build/kube-watch-bridge --config "$run/demo.conf" 2>"$run/agent.log" &
agent_pid=$!
touch "$run/events.jsonl"
# One line per event: type, origin, namespace/name, resourceVersion.
timeout "$secs" tail -n +1 -f "$run/events.jsonl" | python3 -u -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print("%-8s %-5s %s/%s rv=%s" % (e["type"], e["origin"], e["namespace"],
          e["name"], e["resourceVersion"]))
' || true
kill -TERM "$agent_pid"
wait "$agent_pid" || true
agent_pid=""
echo "agent stopped after a graceful shutdown; $(wc -l <"$run/events.jsonl") events delivered"
