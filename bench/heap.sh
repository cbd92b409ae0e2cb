#!/usr/bin/env bash
# Where the gateway's heap goes at the peak of bench/run.sh's 1,000-connection run (500 client
# connections held idle, 500 busy, the partner demanding a client certificate): the run under
# heaptrack, and the peak's live bytes grouped by what holds them (client connections, partner
# connections, tasks, metrics). Counts live heap only: RSS adds the binary's code pages and what
# malloc keeps (docs/BENCHMARKS.md, "stop 27: what the 1,000-connection peak is made of").
#
#   bench/heap.sh                 # about 10 minutes with the build (heaptrack slows the gateway)
#   HEAP_BIN=path bench/heap.sh   # a build with debug info already made
#
# Builds a release binary with limited debug info (whole function names) and without LTO into
# target/heap (the allocation sites are the same; the names readable). Installs heaptrack
# (Debian) when missing. Ports as bench/run.sh (18070-18443 on 127.0.0.1).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-/tmp/heap-bench}
DURATION=${DURATION:-10s}
LOG_TAG=heap
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

if ! command -v heaptrack >/dev/null || ! command -v heaptrack_print >/dev/null; then
    log "installing heaptrack (Debian package)"
    apt-get update -q >/dev/null
    apt-get install -y -q heaptrack >/dev/null
fi

BIN=${HEAP_BIN:-}
if [[ -z $BIN ]]; then
    log "building a release binary with debug info, without LTO, in target/heap"
    CARGO_PROFILE_RELEASE_DEBUG=limited CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" --target-dir "$REPO/target/heap"
    BIN=$REPO/target/heap/release/certgate
fi
[[ -x $BIN ]] || die "no certgate binary at $BIN"
BIN=$(realpath "$BIN")   # the processes are found by it

# heaptrack runs the gateway as its child: stopping bench/run.sh's process (the wrapper below)
# leaves the gateway running, so each is stopped here, and its data finished, before reading it.
stop_gateways() {
    pkill -TERM -f -- "^$BIN serve" 2>/dev/null || true
    for _ in $(seq 300); do pgrep -f -- "^$BIN serve" >/dev/null || pgrep -f "heaptrack.* -o $WORK/" >/dev/null || return 0; sleep 0.1; done
    log "the gateways under heaptrack did not stop in 30 s"
}
# (lib.sh's cleanup exits with the status it finds in $?: handed on past stop_gateways)
trap 'rc=$?; stop_gateways; (exit "$rc"); cleanup' EXIT

mkdir -p "$WORK"
rm -f "$WORK"/serve.*.zst
# bench/run.sh copies and runs this in place of certgate: each `serve` runs under heaptrack.
cat >"$WORK/certgate-under-heaptrack" <<EOF
#!/bin/sh
if [ "\$1" = serve ]; then exec heaptrack -o "$WORK/serve.\$\$" "$BIN" "\$@"; fi
exec "$BIN" "\$@"
EOF
chmod +x "$WORK/certgate-under-heaptrack"

log "bench/run.sh's many-conns scenario ($DURATION), certgate under heaptrack"
CERTGATE_BIN=$WORK/certgate-under-heaptrack BENCH_DIR=$WORK/run SCENARIOS=many-conns REMEASURE=0 \
    DURATION=$DURATION WARMUP=1s "$REPO/bench/run.sh" >"$WORK/run.log" 2>&1 ||
    die "bench/run.sh failed: $(tail -3 "$WORK/run.log")"
grep ' many-conns ' "$WORK/run.log" >&2 || true
stop_gateways

# The gateway on port 18080 is the one the many-conns scenario loads (bench/run.sh's "certgate").
data=""
for f in "$WORK"/serve.*.zst; do
    # (grep reads to the end: with -q, heaptrack_print would die of SIGPIPE and pipefail say no)
    if heaptrack_print -f "$f" -p 0 -a 0 -T 0 -l 0 2>/dev/null | grep -- '--proxy-listen 127.0.0.1:18080' >/dev/null; then
        data=$f
        break
    fi
done
[[ -n $data ]] || die "no heaptrack data of the gateway on 127.0.0.1:18080 in $WORK"
heaptrack_print -f "$data" -p 0 -a 0 -T 0 -l 0 -F "$WORK/peak.stacks" --flamegraph-cost-type peak >"$WORK/summary.txt" 2>&1
grep -E 'peak heap memory|calls to allocation' "$WORK/summary.txt" >&2 || true
python3 "$REPO/bench/heap_peaks.py" "$WORK/peak.stacks"
