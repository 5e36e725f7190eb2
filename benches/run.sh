#!/usr/bin/env bash
# Runs the pipeline benchmark on a fresh machine: installs ndpiReader (Debian
# package libndpi-bin) and taskset (util-linux) when missing, then runs
# pipeline-bench (sensor vs ndpiReader on one CPU). Arguments go to
# pipeline-bench (try --help). See benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ndpiReader >/dev/null 2>&1 || need+=(libndpi-bin)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec cargo run --release -p benches --bin pipeline-bench -- "$@"
