#!/usr/bin/env bash
# Instructions per datagram on the saturated live path, deterministic enough
# to compare two builds on a busy machine (see benches/README.md,
# "Instructions per datagram").
#
# `sensor run` (one thread, JSON to a file) runs under callgrind with
# instrumentation off, is paused (SIGSTOP) while LOOPS passes of the live
# benchmark's backlog capture (traffic it has not seen) are queued in its
# 1 GiB socket buffer, then resumes with instrumentation on; the dump covers
# exactly the drain of that backlog.
#
# Environment: SENSOR (binary, default target/release/sensor, built first),
# PORT (base of three loopback ports, default 47890), LOOPS (default 1:
# a second pass replays connections the sensor has seen, whose payload it
# skips as retransmissions), CAPTURE (default the backlog capture),
# ENCAP (none: the capture is VXLAN, sent to the VXLAN port, the default;
# gwlb: a plain capture, default the backlog's plain.pcap, wrapped as a
# Gateway Load Balancer delivers it and sent to the GENEVE port),
# OUT (callgrind file, default a temporary directory's cg.out).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control callgrind_annotate curl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "live-callgrind: $tool is missing (apt-get install -y valgrind curl)" >&2
        exit 3
    }
done
encap=${ENCAP:-none}
case "$encap" in
    none) capture=${CAPTURE:-benches/data/live-backlog/vxlan.pcap}; port_offset=0 ;;
    gwlb) capture=${CAPTURE:-benches/data/live-backlog/plain.pcap}; port_offset=1 ;;
    *) echo "live-callgrind: ENCAP is none or gwlb, not $encap" >&2; exit 2 ;;
esac
[ -f "$capture" ] || { echo "live-callgrind: $capture is missing: run ./benches/live-run.sh once" >&2; exit 3; }
manifest=$(dirname "$capture")/manifest.json
[ -f "$manifest" ] || { echo "live-callgrind: $manifest is missing (it gives the datagrams per pass)" >&2; exit 3; }
if [ -z "${SENSOR:-}" ]; then
    cargo build --release -q -p sensor --bin sensor
    SENSOR=target/release/sensor
fi
port=${PORT:-47890}
loops=${LOOPS:-1}
work=$(mktemp -d)
out=${OUT:-$work/cg.out}
health=127.0.0.1:$((port + 2))
valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no --callgrind-out-file="$out" \
    "$SENSOR" run --listen-vxlan "127.0.0.1:$port" --listen-geneve "127.0.0.1:$((port + 1))" \
    --health "$health" --no-tcp-health --json "$work/records.json" --drain 100ms \
    --rx-threads 1 --workers 1 --rcvbuf 1073741824 2>"$work/sensor.err" &
pid=$!
for _ in $(seq 1 60); do curl -sf "http://$health/readyz" >/dev/null && break; sleep 0.5; done
kill -STOP "$pid"
"$SENSOR" replay "$capture" --encap "$encap" --to "127.0.0.1:$((port + port_offset))" \
    --max --loop "$loops" >/dev/null 2>&1
# callgrind_control waits for the process to answer, which it does once resumed.
callgrind_control -i on "$pid" >/dev/null 2>&1 &
control=$!
sleep 0.5
kill -CONT "$pid"
wait "$control"
per_pass=$(grep -o '"packets": *[0-9]*' "$manifest" | grep -o '[0-9]*$')
expected=$((per_pass * loops))
received=0
for _ in $(seq 1 900); do
    received=$(curl -s "http://$health/metrics" | awk '/^sensor_packets_total\{thread="rx-inline"/{print $2}')
    [ "$received" = "$expected" ] && break
    sleep 1
done
callgrind_control -d "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
[ "${received:-0}" -gt 0 ] || { echo "live-callgrind: no datagram received (see $work/sensor.err)" >&2; exit 1; }
echo "received $received of $expected datagrams; profiles $out.1-* (one per thread)"
# The packet thread's count is deterministic; the output thread's depends on
# how many flows happen to end inside the window (packet time is wall time).
ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}'; }
packet=0 output=0 publish=0
for f in "$out".1-*; do
    if grep -q 'FlowTable::process' "$f"; then
        packet=$(ir "$f")
        publish=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
            awk '/Publisher::publish \[/ && !seen {gsub(",","",$1); print $1; seen = 1}')
    elif grep -q 'live::output::run' "$f"; then
        output=$(ir "$f")
    fi
done
echo "Ir per datagram: packet thread $(((packet - ${publish:-0}) / received)) (without Publisher::publish, 10 per second at real speed), output thread $((output / received))"
