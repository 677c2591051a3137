#!/bin/bash
# Set up and run the whole test suite: installs dependencies (Debian
# packages), builds with -Werror, runs every ctest, then builds once more
# with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite
# again under it, then builds the libFuzzer targets with clang and runs
# each for a short time.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    the -Werror build only, no sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
echo "== format (clang-format, .clang-format)"
clang-format --dry-run --Werror agent/*.[ch] sinks/*.[ch]
echo "== build (-Werror)"
cmake -S . -B build -DKWB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs" >/dev/null
echo "== tests"
ctest --test-dir build --output-on-failure -j 2 --timeout 300

if [ "${1:-}" = "--quick" ]; then
    exit 0
fi

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DKWB_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
    -DKWB_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$jobs" >/dev/null
echo "== tests under ASan + UBSan"
# Leak checks run at exit of every binary; the timeout multiplier gives the
# slower instrumented binary room in tests that wait on conditions.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
KWB_TEST_TIMEOUT_MULT=3 \
    ctest --test-dir build-asan --output-on-failure -j 2 --timeout 600

# libFuzzer targets (tests/fuzz/fuzz_*.c) with ASan + UBSan, each run for
# KWB_FUZZ_SECONDS over its seed corpus (label "fuzz"). Only the fuzzers
# are built: the rest of the tree is covered by the passes above.
fuzz_seconds=${KWB_FUZZ_SECONDS:-10}
if ! command -v clang >/dev/null 2>&1; then
    echo "== fuzzers SKIPPED: clang not installed (scripts/deps.sh installs it)"
    exit 0
fi
echo "== build fuzzers (clang, libFuzzer + ASan + UBSan)"
CC=clang cmake -S . -B build-fuzz -DKWB_FUZZ=ON -DKWB_WERROR=ON \
    -DKWB_SANITIZE=address,undefined -DKWB_FUZZ_SECONDS="$fuzz_seconds" \
    >/dev/null
fuzzers=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
# shellcheck disable=SC2086 # one target per word
cmake --build build-fuzz -j "$jobs" --target $fuzzers >/dev/null
echo "== fuzzing, ${fuzz_seconds} s per target"
ctest --test-dir build-fuzz -L fuzz --output-on-failure -j 2 \
    --timeout $((fuzz_seconds * 3 + 120))
