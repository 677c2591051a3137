#!/bin/bash
# Set up and run the whole test suite: installs dependencies (Debian
# packages), builds with -Werror, runs every ctest, then builds once more
# with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite
# again under it.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    the -Werror build only, no sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
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
