#!/bin/sh
# Installs every build, test and demo dependency from Debian packages.
# Idempotent: when everything is present it only checks and returns.
# Usage: scripts/deps.sh            (build + test + demo)
#        scripts/deps.sh --build    (only what a Release build needs; the
#                                    container's build stage)
#        scripts/deps.sh --runtime  (only the libraries the binary needs)
set -eu

BUILD_PKGS="ca-certificates build-essential cmake pkg-config git \
libcurl4-openssl-dev librdkafka-dev libcjson-dev libconfig-dev libssl-dev \
libmicrohttpd-dev libjsmn-dev libyaml-dev"
TEST_PKGS="python3 openssl kcat valgrind clang libclang-rt-14-dev llvm clang-format curl procps"
RUNTIME_PKGS="ca-certificates libcurl4 librdkafka1 libcjson1 libconfig9 \
libssl3 libmicrohttpd12 libyaml-0-2"

case "${1:-}" in
--runtime) PKGS="$RUNTIME_PKGS" ;;
# CMake configures tests/ too, and that looks for python3.
--build) PKGS="$BUILD_PKGS python3" ;;
"") PKGS="$BUILD_PKGS $TEST_PKGS" ;;
*)
    echo "usage: $0 [--build | --runtime]" >&2
    exit 2
    ;;
esac

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

# kubectl checks the test API server; Debian ships it as kubernetes-client.
if [ -z "${1:-}" ] && ! command -v kubectl >/dev/null 2>&1; then
    missing="$missing kubernetes-client"
fi

if [ -z "$missing" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
