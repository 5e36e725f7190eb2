#!/usr/bin/env bash
# Runs the live benchmark on a fresh machine: installs taskset (util-linux)
# when missing, then runs live-bench (highest loss-free replay rate of
# `sensor run` vs a bare recvmmsg drain of the same socket setup, on
# loopback). Arguments go to live-bench (try --help). See benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v taskset >/dev/null 2>&1; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq util-linux >/dev/null
fi
exec cargo run --release -p benches --bin live-bench -- "$@"
