#!/bin/sh
# Run every benchmark: builds a Release tree (build-release/) when needed,
# then bench/bench.py prints the table; all figures go to a JSON file.
#   bench/run.sh [--quick] [--only ceiling,anchors,agent,kafka,latency,
#                memory,relist,store,profile] [--reps N] [--json FILE]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${KWB_BENCH_BUILD:-$src/build-release}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
make -C "$build" -j"$(nproc)" --no-print-directory >/dev/null
exec python3 "$src/bench/bench.py" --build "$build" "$@"
