#!/usr/bin/env bash
# Egress benchmark: certgate vs nginx vs HAProxy, each presenting a client certificate (mutual TLS)
# to the same upstream nginx, everything on 127.0.0.1. Writes (or replaces) the section
# "Gateway vs nginx vs HAProxy" of docs/BENCHMARKS.md; the method is described there.
#
#   bench/run.sh                                  # about 6 minutes on a quiet machine
#   DURATION=15s WARMUP=2s ROTATION_SECONDS=20 bench/run.sh
#
# Needs a release build (cargo build --release), openssl, curl, and Debian's nginx, haproxy and
# wrk (installed with apt-get when missing). Ports 18080-18443 on 127.0.0.1 must be free.
# Every process the script starts is stopped on exit (by PID).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CERTGATE=${CERTGATE_BIN:-$REPO/target/release/certgate}
WORK=${BENCH_DIR:-/tmp/egress-bench}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}
IDLE_SETTLE=${IDLE_SETTLE:-12}  # many-conns: seconds the idle half is held idle before its memory is read
ROTATION_SECONDS=${ROTATION_SECONDS:-20}
# SCENARIOS="many-conns new-conn": only those runs (of keep-alive, production, new-conn,
# new-client, many-conns); prints results.tsv and leaves docs/BENCHMARKS.md alone (no rotation
# run, no report).
SCENARIOS=${SCENARIOS:-}
OUT=${BENCH_OUT:-$REPO/docs/BENCHMARKS.md}
# A panic in a proxy task should cost what it costs in production, not a symbolised backtrace.
unset RUST_BACKTRACE

UP_PORT=18443    # upstream nginx: TLS, ssl_verify_client on, 1 KiB answer
# name            proxy port / admin port
CG_PORT=18080;   CG_ADMIN=18081    # certgate, pooled (max_idle_per_host = 64), default logging
CGN_PORT=18090;  CGN_ADMIN=18091   # certgate, unpooled (max_idle_per_host = 0), default logging
CGP_PORT=18070;  CGP_ADMIN=18071   # certgate, production mode: apps with credentials (own store)
NG_PORT=18180;   NGN_PORT=18181    # nginx egress: upstream keepalive / none
HA_PORT=18280;   HAN_PORT=18281    # haproxy: http-reuse always / never

LOG_TAG=bench
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

# ---------------------------------------------------------------- prerequisites
[[ -x $CERTGATE ]] || die "no certgate binary at $CERTGATE (run: cargo build --release)"
missing=()
for tool in nginx haproxy wrk; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (Debian packages nginx wrk haproxy)"
    apt-get update -q >/dev/null
    apt-get install -y -q nginx wrk haproxy >/dev/null
fi
NGINX=/usr/sbin/nginx
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
for tool in openssl curl wrk awk getconf; do command -v "$tool" >/dev/null || die "$tool is needed"; done

rm -rf "$WORK"
mkdir -p "$WORK"/{bin,pki,up/logs,ng/logs,ha,cg-data,runs}
cd "$WORK"
# The machine is shared; a copy under another name keeps a colleague's `pkill certgate` (or
# `pkill -f "certgate serve"`) from stopping the gateways in the middle of a run.
# target/release is shared too and may be rebuilt during the run: record what we copied.
cp "$CERTGATE" bin/gw
CERTGATE_REAL=$CERTGATE
CERTGATE=$WORK/bin/gw
CG_SHA=$(sha256sum bin/gw | cut -c1-16)
CG_MTIME=$(date -u -r "$CERTGATE_REAL" '+%Y-%m-%d %H:%M UTC')
CG_REV=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CG_DIRTY=$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | paste -sd' ' -)

# ---------------------------------------------------------------- test PKI (RSA 2048 everywhere)
log "making the test PKI in $WORK/pki"
(
    cd pki
    quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -sha256 \
        -subj "/O=certgate bench/CN=certgate bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    leaf server "/O=certgate bench/CN=localhost" \
        "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1')"
    for n in 1 2; do
        leaf "client$n" "/O=certgate bench/CN=bench-client-$n" \
            "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
    done
    cat client1.pem client1.key >client1-bundle.pem   # HAProxy wants cert + key in one file
)
dn() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }
CLIENT1_DN=$(dn pki/client1.pem)
CLIENT2_DN=$(dn pki/client2.pem)

# ---------------------------------------------------------------- upstream nginx (the "partner")
BODY=$(printf '%*s' 1024 '' | tr ' ' 'x')
cat >up/nginx.conf <<EOF
worker_processes 2;
user root;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # handshakes.log: one line per upstream TLS connection (its first request): full or resumed
    # ("r"), protocol, and which client certificate was presented
    log_format hs '\$msec \$connection \$ssl_session_reused \$ssl_protocol "\$ssl_client_s_dn"';
    # rotation.log: every request of the rotation runs (only they send X-Bench-Rotation)
    log_format req '\$msec \$connection \$http_x_bench_rotation \$status "\$ssl_client_s_dn"';
    map \$connection_requests \$first_request { 1 1; default 0; }
    keepalive_timeout 300s;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$UP_PORT ssl;
        ssl_certificate $WORK/pki/server.pem;
        ssl_certificate_key $WORK/pki/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        ssl_verify_client on;
        ssl_client_certificate $WORK/pki/ca.pem;
        access_log $WORK/up/logs/handshakes.log hs if=\$first_request;
        access_log $WORK/up/logs/rotation.log req if=\$http_x_bench_rotation;
        location / {
            default_type text/plain;
            return 200 "$BODY";
        }
    }
}
EOF

# ---------------------------------------------------------------- nginx egress
cat >ng/nginx.conf <<EOF
worker_processes 2;   # = certgate's tokio runtime: one worker thread per core, 2 cores
user root;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000;
    upstream partner_pooled {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 100000;
        keepalive_timeout 90s;
    }
    upstream partner_unpooled {
        server 127.0.0.1:$UP_PORT;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host localhost:$UP_PORT;
    proxy_ssl_certificate $WORK/pki/client1.pem;
    proxy_ssl_certificate_key $WORK/pki/client1.key;
    proxy_ssl_trusted_certificate $WORK/pki/ca.pem;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_ssl_protocols TLSv1.2 TLSv1.3;
    proxy_ssl_session_reuse on;
    server {
        listen 127.0.0.1:$NG_PORT;
        location / { proxy_pass https://partner_pooled; }
    }
    server {
        listen 127.0.0.1:$NGN_PORT;
        location / { proxy_pass https://partner_unpooled; }
    }
}
EOF

# ---------------------------------------------------------------- haproxy egress
cat >ha/haproxy.cfg <<EOF
global
    nbthread 2        # = certgate's tokio runtime: one worker thread per core, 2 cores
    maxconn 8192
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 90s
frontend fe_pooled
    bind 127.0.0.1:$HA_PORT
    default_backend be_pooled
frontend fe_unpooled
    bind 127.0.0.1:$HAN_PORT
    default_backend be_unpooled
backend be_pooled
    http-reuse always
    server up 127.0.0.1:$UP_PORT ssl crt $WORK/pki/client1-bundle.pem ca-file $WORK/pki/ca.pem verify required sni str(localhost)
backend be_unpooled
    http-reuse never
    server up 127.0.0.1:$UP_PORT ssl crt $WORK/pki/client1-bundle.pem ca-file $WORK/pki/ca.pem verify required sni str(localhost)
EOF

# ---------------------------------------------------------------- certgate
export CERTGATE_DATA_DIR=$WORK/cg-data
for pair in "pooled 64" "unpooled 0"; do
    read -r kind idle <<<"$pair"
    cat >"cg-$kind.toml" <<EOF
[gateway]
max_idle_per_host = $idle
idle_timeout_ms = 90000
reload_interval_ms = 250
[gateway.resolve]
"localhost" = "127.0.0.1"
EOF
done
log "configuring certgate (store in $CERTGATE_DATA_DIR)"
"$CERTGATE" trust add upstream-ca pki/ca.pem >/dev/null
"$CERTGATE" cert import client pki/client1.pem --key pki/client1.key >/dev/null
"$CERTGATE" service add bench --url "https://localhost:$UP_PORT" --cert client --trust ca:upstream-ca >/dev/null
# The same partner through the OpenSSL engine (issue 10: what a route that allows renegotiation costs).
"$CERTGATE" service add bench-openssl --url "https://localhost:$UP_PORT" --cert client --trust ca:upstream-ca \
    --allow-renegotiation >/dev/null

# Production mode (issue 14): a store of its own with apps, so every request carries a proxy
# credential and is counted per app; a quarter of the requests pick a certificate by header.
(
    export CERTGATE_DATA_DIR=$WORK/cg-prod-data
    "$CERTGATE" trust add upstream-ca pki/ca.pem >/dev/null
    "$CERTGATE" cert import client pki/client1.pem --key pki/client1.key >/dev/null
    "$CERTGATE" cert import alt pki/client2.pem --key pki/client2.key >/dev/null
    "$CERTGATE" service add bench --url "https://localhost:$UP_PORT" --cert client --trust ca:upstream-ca >/dev/null
    "$CERTGATE" app add other-app --json >/dev/null
    "$CERTGATE" app add bench-app --json >app.json
    "$CERTGATE" app grant bench-app client >/dev/null
    "$CERTGATE" app grant bench-app alt >/dev/null
)
PROD_AUTH=$(python3 -c 'import base64, json; a = json.load(open("app.json")); print(base64.b64encode(("%s:%s" % (a["name"], a["credential"])).encode()).decode())')
{
    echo '-- every request with the app'"'"'s proxy credential; every 4th picks the other certificate by header'
    echo 'local n = 0'
    echo 'request = function()'
    echo '  n = n + 1'
    echo "  local h = { [\"Proxy-Authorization\"] = \"Basic $PROD_AUTH\" }"
    echo '  if n % 4 == 0 then h["Certgate-Certificate"] = "alt" end'
    echo '  return wrk.format("GET", nil, h)'
    echo 'end'
} >prod.lua

# ---------------------------------------------------------------- start everything
start_bg() { # logfile cmd...
    local out=$1; shift
    "$@" >"$out" 2>&1 &
    STARTED+=($!)
}
log "starting upstream nginx, nginx egress, haproxy, 2 x certgate serve"
start_bg up/logs/stderr.log "$NGINX" -e "$WORK/up/logs/error.log" -p "$WORK/up" -c "$WORK/up/nginx.conf" -g 'daemon off;'
UP_MASTER=${STARTED[-1]}
start_bg ng/logs/stderr.log "$NGINX" -e "$WORK/ng/logs/error.log" -p "$WORK/ng" -c "$WORK/ng/nginx.conf" -g 'daemon off;'
NG_MASTER=${STARTED[-1]}
start_bg ha/stderr.log "$HAPROXY" -db -f "$WORK/ha/haproxy.cfg"
HA_PID=${STARTED[-1]}
cg_serve() { # log port admin config   (default logging, as shipped: certgate=info,warn)
    start_bg "$1" "$CERTGATE" serve --proxy-listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" --config "$WORK/$4"
}
cg_serve cg-pooled.log "$CG_PORT" "$CG_ADMIN" cg-pooled.toml;       CG_PID=${STARTED[-1]}
cg_serve cg-unpooled.log "$CGN_PORT" "$CGN_ADMIN" cg-unpooled.toml; CGN_PID=${STARTED[-1]}
CERTGATE_DATA_DIR=$WORK/cg-prod-data cg_serve cg-prod.log "$CGP_PORT" "$CGP_ADMIN" cg-pooled.toml; CGP_PID=${STARTED[-1]}
for p in $UP_PORT $NG_PORT $NGN_PORT $HA_PORT $HAN_PORT $CG_PORT $CGN_PORT $CG_ADMIN $CGN_ADMIN $CGP_PORT $CGP_ADMIN; do
    wait_port "$p"
done

# key -> URL, PIDs charged, admin port, log file (certgate only)
declare -A URL=(
    [certgate]=http://127.0.0.1:$CG_PORT/svc/bench/     [certgate-new]=http://127.0.0.1:$CGN_PORT/svc/bench/
    [certgate-openssl]=http://127.0.0.1:$CG_PORT/svc/bench-openssl/
    [certgate-prod]=http://127.0.0.1:$CGP_PORT/svc/bench/
    [nginx]=http://127.0.0.1:$NG_PORT/                  [nginx-new]=http://127.0.0.1:$NGN_PORT/
    [haproxy]=http://127.0.0.1:$HA_PORT/                [haproxy-new]=http://127.0.0.1:$HAN_PORT/
)
declare -A ADMIN=([certgate]=$CG_ADMIN [certgate-new]=$CGN_ADMIN [certgate-openssl]=$CG_ADMIN [certgate-prod]=$CGP_ADMIN)
declare -A CGLOG=([certgate]=cg-pooled.log [certgate-new]=cg-unpooled.log [certgate-openssl]=cg-pooled.log [certgate-prod]=cg-prod.log)
proxy_pids() { # key -> the PIDs whose CPU and memory are charged to it
    case $1 in
        certgate | certgate-openssl) echo "$CG_PID" ;;
        certgate-new) echo "$CGN_PID" ;;
        certgate-prod) echo "$CGP_PID" ;;
        nginx*) echo "$NG_MASTER" $(pgrep -P "$NG_MASTER" || true) ;;
        haproxy*) echo "$HA_PID" ;;
    esac
}

# every path answers 200 with 1024 bytes, i.e. the upstream accepted the client certificate
for key in "${!URL[@]}"; do
    auth=(); [[ $key == certgate-prod ]] && auth=(-H "Proxy-Authorization: Basic $PROD_AUTH")
    got=$(curl -sS "${auth[@]}" -o /dev/null -w '%{http_code} %{size_download}' "${URL[$key]}")
    [[ $got == "200 1024" ]] || die "$key (${URL[$key]}) answered '$got', expected '200 1024'; logs in $WORK"
done
log "all ${#URL[@]} egress paths answer 200 with 1 KiB"

# ---------------------------------------------------------------- measurement helpers
cat >report.lua <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
EOF
cat report.lua >>prod.lua   # the production runs report the same way
HZ=$(getconf CLK_TCK)
cpu_ticks() { # pids... -> utime+stime summed, in clock ticks
    local t=0 p v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
        t=$((t + v))
    done
    echo "$t"
}
# whole machine, user + nice + system + steal (irq/softirq time is not charged to any process)
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $9; exit}' /proc/stat; }
# Other engineers share this machine: before each run wait (up to 40 s per run, 180 s in all) until
# the machine has been nearly idle for a second, so that their work does not land in our numbers.
QUIET_BUDGET=${QUIET_BUDGET:-180}
wait_quiet() {
    local waited=0 b0 b1 busy=0
    while ((waited < 40 && QUIET_BUDGET > 0)); do
        b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
        busy=$(((b1 - b0) * 100 / HZ))
        ((busy < 15)) && return 0
        waited=$((waited + 1)); QUIET_BUDGET=$((QUIET_BUDGET - 1))
    done
    if ((QUIET_BUDGET > 0)); then
        log "machine busy with other work ($busy% of a core) for 40 s; measuring anyway"
    elif ((waited > 0)); then
        log "machine busy with other work ($busy% of a core); waiting budget used up, measuring anyway"
    fi
}
rss_sampler() { # outfile pids... : max of the summed VmRSS (kB), sampled every 200 ms, until killed
    local out=$1 max=0 now p; shift
    while :; do
        now=0
        for p in "$@"; do
            now=$((now + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
        done
        if ((now > max)); then max=$now; echo "$max" >"$out"; fi
        sleep 0.2
    done
}
rss_now() { # pids... -> their summed VmRSS now, KiB
    local p sum=0
    for p in "$@"; do sum=$((sum + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
    echo "$sum"
}
metric_sum() { # admin-port metric-prefix -> sum of the matching samples
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'
}
not_ok() { # admin-port -> requests with an outcome other than ok
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^certgate_requests_total[{]/ && !/outcome="ok"/ {s += $NF} END {printf "%d", s}'
}
panics() { grep -c 'panicked at' "$1" || true; }
hs_lines() { wc -l <up/logs/handshakes.log; }
field() { awk -v k="$2" '/^RESULT / {for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) {print kv[2]; exit}}}' "$1"; }
alive() { # key: the proxy and the upstream must still be running (someone may have stopped them)
    local p
    for p in $(proxy_pids "$1") $UP_MASTER; do
        kill -0 "$p" 2>/dev/null || die "process $p ($1 or the upstream) is gone; see the logs in $WORK"
    done
}
upstream_pids() { echo "$UP_MASTER" $(pgrep -P "$UP_MASTER" || true); }

RESULTS=$WORK/results.tsv
printf 'scenario\tproxy\tconc\trps\tp50_ms\tp99_ms\terrors\tcpu_s\tcpu_per_10k\treq_per_cpu_s\trss_mb\tfull\tresumed\tproto\trequests\tcg_full\tcg_resumed\tpanics\tother_cores\tidle_rss0_mb\tidle_rss_mb\n' >"$RESULTS"

# One measured run; if other work disturbed it (other load > 0.15 cores), measure once more and
# keep the quieter of the two (REMEASURE=0: never; bench/heap.sh, whose profiler is that load).
run_one() { # scenario key url-key conc extra-wrk-args...
    local row1 row2
    [[ -z $SCENARIOS || " $SCENARIOS " == *" $1 "* ]] || return 0
    measure_once "$@"; row1=$(tail -1 "$RESULTS")
    if [[ ${REMEASURE:-1} != 0 ]] && awk -F'\t' '{exit !($19 > 0.15)}' <<<"$row1"; then
        log "disturbed by other work (other load $(cut -f19 <<<"$row1") cores): measuring again"
        measure_once "$@"; row2=$(tail -1 "$RESULTS")
        sed -i '$d' "$RESULTS"; sed -i '$d' "$RESULTS"
        awk -F'\t' -v a="$row1" -v b="$row2" 'BEGIN {split(a, x, "\t"); split(b, y, "\t"); print (y[19] + 0 < x[19] + 0 ? b : a)}' >>"$RESULTS"
    fi
}
measure_once() { # scenario key url-key conc extra-wrk-args...
    local scenario=$1 name=$2 key=$3 conc=$4; shift 4
    local threads=2; ((conc < 2)) && threads=1
    local url=${URL[$key]} tag="$scenario-$key-c$conc"
    local pids; pids=$(proxy_pids "$key")
    local admin=${ADMIN[$key]:-} cglog=${CGLOG[$key]:-}
    wait_quiet
    alive "$key"
    local script=${SCRIPT:-report.lua} holder="" idle_rss0=0 idle_rss=0
    if ((${IDLE:-0} > 0)); then
        # shellcheck disable=SC2086
        idle_rss0=$(rss_now $pids)
        python3 "$REPO/bench/idle_conns.py" "$url" "$IDLE" >"runs/$tag.idle.txt" 2>&1 &
        holder=$!
        STARTED+=($holder)
        for _ in $(seq 100); do grep -q '^holding' "runs/$tag.idle.txt" && break; sleep 0.1; done
        grep -q '^holding' "runs/$tag.idle.txt" || die "could not open $IDLE idle connections to $url: $(cat "runs/$tag.idle.txt")"
        # An application's pool holds its connections idle between bursts: the load starts after
        # IDLE_SETTLE seconds of idleness. RSS before they opened and then goes to results.tsv
        # (idle_rss0_mb, idle_rss_mb); it says what they cost only for proxies that have not yet
        # served a load (SCENARIOS=many-conns): after one, malloc reuses what it kept.
        sleep "$IDLE_SETTLE"
        # shellcheck disable=SC2086
        idle_rss=$(rss_now $pids)
    fi
    wrk -t"$threads" -c"$conc" -d"$WARMUP" -s "$script" "$@" "$url" >"runs/$tag.warmup.txt" 2>&1 || true
    local cg0f=0 cg0r=0 pan0=0
    if [[ -n $admin ]]; then
        cg0f=$(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="false"}')
        cg0r=$(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="true"}')
        pan0=$(panics "$cglog")
    fi
    local hs0 cpu0 cpu1 up0 up1 all0 all1 sampler wrk_ticks
    hs0=$(hs_lines)
    echo 0 >"runs/$tag.rss"
    # shellcheck disable=SC2086
    rss_sampler "runs/$tag.rss" $pids &
    sampler=$!
    STARTED+=($sampler)
    # shellcheck disable=SC2086
    { cpu0=$(cpu_ticks $pids); up0=$(cpu_ticks $(upstream_pids)); all0=$(busy_ticks); }
    local TIMEFORMAT='%U %S'
    { time wrk -t"$threads" -c"$conc" -d"$DURATION" --latency -s "$script" "$@" "$url" >"runs/$tag.txt" 2>&1; } 2>"runs/$tag.wrktime"
    # shellcheck disable=SC2086
    { cpu1=$(cpu_ticks $pids); up1=$(cpu_ticks $(upstream_pids)); all1=$(busy_ticks); }
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    local idle_lost=0
    if [[ -n $holder ]]; then
        kill -USR1 "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true
        idle_lost=$(awk '/^lost/ {print $2}' "runs/$tag.idle.txt"); idle_lost=${idle_lost:-$IDLE}
    fi
    alive "$key"
    wrk_ticks=$(awk -v hz="$HZ" '{printf "%d", ($1 + $2) * hz}' "runs/$tag.wrktime")
    local f=runs/$tag.txt requests dur p50 p99 errs
    requests=$(field "$f" requests); dur=$(field "$f" duration_us)
    p50=$(field "$f" p50_us); p99=$(field "$f" p99_us)
    errs=$(( $(field "$f" non2xx) + $(field "$f" connect) + $(field "$f" read) + $(field "$f" write) + $(field "$f" timeout) + idle_lost ))
    local hs full resumed proto
    hs=$(tail -n +"$((hs0 + 1))" up/logs/handshakes.log)
    full=$(printf '%s\n' "$hs" | awk 'NF && $3 != "r"' | wc -l)
    resumed=$(printf '%s\n' "$hs" | awk 'NF && $3 == "r"' | wc -l)
    proto=$(printf '%s\n' "$hs" | awk 'NF {c[$4]++} END {for (p in c) printf "%s%s", (n++ ? "," : ""), p}')
    local cgf="" cgr="" pan=""
    if [[ -n $admin ]]; then
        cgf=$(( $(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="false"}') - cg0f ))
        cgr=$(( $(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="true"}') - cg0r ))
        pan=$(( $(panics "$cglog") - pan0 ))
    fi
    # "other": CPU the machine spent on anything but this proxy, the upstream and wrk (noise)
    local other=$(( (all1 - all0) - (cpu1 - cpu0) - (up1 - up0) - wrk_ticks ))
    awk -v sc="$scenario" -v nm="$name" -v c="$conc" -v rq="$requests" -v d="$dur" -v p50="$p50" -v p99="$p99" \
        -v er="$errs" -v cpu="$((cpu1 - cpu0))" -v hz="$HZ" -v rss="$(cat "runs/$tag.rss")" \
        -v fu="$full" -v re="$resumed" -v pr="${proto:--}" -v cgf="$cgf" -v cgr="$cgr" -v pan="$pan" \
        -v oth="$other" -v ir0="$idle_rss0" -v ir="$idle_rss" 'BEGIN {
            cs = cpu / hz; secs = d / 1e6
            printf "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%.2f\t%.3f\t%.0f\t%.1f\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%.2f\t%.1f\t%.1f\n",
                sc, nm, c, rq / secs, p50 / 1000, p99 / 1000, er, cs,
                (rq ? cs / rq * 10000 : 0), (cs > 0 ? rq / cs : 0), rss / 1024, fu, re, pr, rq, cgf, cgr, pan,
                (oth > 0 ? oth / hz / secs : 0), ir0 / 1024, ir / 1024
        }' >>"$RESULTS"
    log "$(tail -1 "$RESULTS" | cut -f1-13,18,19 | tr '\t' ' ')"
}

# ---------------------------------------------------------------- the runs (interleaved per scenario)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "runs: $DURATION each after a $WARMUP warm-up; load average before: $LOAD_BEFORE"
PROXIES=(certgate nginx haproxy)
for conc in 1 16 64; do
    for key in certgate certgate-openssl nginx haproxy; do
        run_one keep-alive "$key" "$key" "$conc"
    done
    # production mode: the same partner and certificate as "certgate", with app credentials
    ((conc == 1)) || SCRIPT=prod.lua run_one production certgate-prod certgate-prod "$conc"
done
for key in "${PROXIES[@]}"; do
    run_one new-conn "$key" "$key-new" 16 -H 'Connection: close'
done
# A new client connection per request, the partner connection kept (an application that does not
# keep its connections, a proxy that pools its own): each proxy's keep-alive set-up.
for key in "${PROXIES[@]}"; do
    run_one new-client "$key" "$key" 16 -H 'Connection: close'
done
# 1,000 client connections: 500 held open and idle (each sent one request first, then held idle for
# IDLE_SETTLE s before the load, as an application pool holds them), 500 busy.
for key in "${PROXIES[@]}"; do
    IDLE=500 run_one many-conns "$key" "$key" 500
done

if [[ -n $SCENARIOS ]]; then
    log "SCENARIOS=$SCENARIOS: no rotation run, $OUT left alone"
    column -t -s $'\t' "$RESULTS"
    exit 0
fi

# ---------------------------------------------------------------- rotation under load
log "rotation: wrk c=16 for ${ROTATION_SECONDS}s on certgate, 'certgate cert rotate client client2.pem' half way"
alive certgate
hs0=$(hs_lines); nok0=$(not_ok "$CG_ADMIN"); pan0=$(panics cg-pooled.log)
wrk -t2 -c16 -d"${ROTATION_SECONDS}s" --latency -s report.lua -H "X-Bench-Rotation: 1" "${URL[certgate]}" >runs/rotation.txt 2>&1 &
WRK_PID=$!
STARTED+=($WRK_PID)
sleep $((ROTATION_SECONDS / 2))
ROTATE_AT=$(date +%s.%N)
"$CERTGATE" cert rotate client pki/client2.pem --key pki/client2.key >runs/rotate.out 2>&1
wait "$WRK_PID"
sleep 1   # nginx writes its access log at the end of each request; let the last lines land
f=runs/rotation.txt
ROT_REQ=$(field $f requests); ROT_NON2XX=$(field $f non2xx)
ROT_SOCK=$(( $(field $f connect) + $(field $f read) + $(field $f write) + $(field $f timeout) ))
ROT_RPS=$(awk -v r="$ROT_REQ" -v d="$(field $f duration_us)" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
ROT_P99=$(awk -v p="$(field $f p99_us)" 'BEGIN {printf "%.2f", p / 1000}')
cp up/logs/rotation.log runs/rotation.requests.log
tail -n +"$((hs0 + 1))" up/logs/handshakes.log >runs/rotation.handshakes.log
rot_stats() { # dn -> "requests first_ms last_ms", times relative to the rotate command
    awk -v dn="\"$1\"" -v r="$ROTATE_AT" 'index($0, dn) {n++; t = ($1 - r) * 1000; if (n == 1) f = t; l = t}
        END {if (n) printf "%d %+.0f %+.0f", n, f, l; else print "0 - -"}' runs/rotation.requests.log
}
read -r ROT_N1 _ ROT_LAST1 <<<"$(rot_stats "$CLIENT1_DN")"
read -r ROT_N2 ROT_FIRST2 _ <<<"$(rot_stats "$CLIENT2_DN")"
ROT_UP_BAD=$(awk '$4 != 200' runs/rotation.requests.log | wc -l)
ROT_NOK=$(( $(not_ok "$CG_ADMIN") - nok0 )); ROT_PAN=$(( $(panics cg-pooled.log) - pan0 ))
ROT_HS="$(awk '$3 != "r"' runs/rotation.handshakes.log | wc -l) / $(awk '$3 == "r"' runs/rotation.handshakes.log | wc -l)"
if ((ROT_NON2XX == 0 && ROT_SOCK == 0 && ROT_N1 > 0 && ROT_N2 > 0)); then ROT_VERDICT=pass; else ROT_VERDICT=FAIL; fi
log "rotation: $ROT_REQ requests, non-2xx $ROT_NON2XX, socket errors $ROT_SOCK, panics $ROT_PAN, upstream saw cert 1 $ROT_N1 / cert 2 $ROT_N2 (cert 2 from $ROT_FIRST2 ms) -> $ROT_VERDICT"
CG_HWM=$(awk '/^VmHWM:/{printf "%.1f", $2 / 1024}' "/proc/$CG_PID/status")
CG_PANICS=$(panics cg-pooled.log); CGN_PANICS=$(panics cg-unpooled.log)

# ---------------------------------------------------------------- environment and report
NGINX_V=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
HAPROXY_V=$("$HAPROXY" -v 2>&1 | awk 'NR == 1 {print $3}')
WRK_V=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}' || true)
OPENSSL_V=$(openssl version)
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
pkgv() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }

SECTION=$WORK/section.md
{
    echo "## Gateway vs nginx vs HAProxy"
    echo
    echo "Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); rerun the script to refresh this"
    echo "section (the analysis section below is written by hand)."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| machine | $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"); everything on 127.0.0.1, sharing the same $(nproc) cores |"
    echo "| certgate | release binary built $CG_MTIME, sha256 $CG_SHA…; git HEAD $CG_REV at the start$([[ -n $CG_DIRTY ]] && echo " (uncommitted changes in: $CG_DIRTY)"); $(nproc) proxy workers (one single-threaded runtime per core); default logging |"
    echo "| nginx | $NGINX_V (Debian $(pkgv nginx)); egress and upstream both \`worker_processes 2\` |"
    echo "| HAProxy | $HAPROXY_V (Debian $(pkgv haproxy)); \`nbthread 2\` |"
    echo "| wrk | $WRK_V (Debian $(pkgv wrk)) |"
    echo "| OpenSSL | $OPENSSL_V (used by nginx, HAProxy, the test PKI and certgate's OpenSSL route; certgate's other routes use rustls + aws-lc-rs) |"
    echo "| load average before the runs | $LOAD_BEFORE |"
    echo
    echo "Each run: $WARMUP of warm-up (not counted), then $DURATION of \`wrk --latency\` (1 thread at c=1, 2 threads"
    echo "otherwise). Runs are interleaved (c=1 for every proxy, then c=16, ...), and the proxies stay up for the"
    echo "whole benchmark, as they would in production. Upstream: nginx, TLS 1.2/1.3, \`ssl_verify_client on\`,"
    echo "1024-byte answer; all keys RSA 2048. \"certgate, OpenSSL route\" is the same certgate process and"
    echo "partner through a service bound with \`--allow-renegotiation\` (the OpenSSL engine, HTTP/1.1)."
    echo
    echo "- **CPU** = utime+stime of the proxy's processes (nginx: master + workers) over the measured run, from"
    echo "  \`/proc/PID/stat\`. **req / CPU s** = requests divided by that."
    echo "- **peak RSS** = peak of the summed VmRSS of those processes, sampled every 200 ms during the run."
    echo "- **handshakes** = upstream TLS connections opened during the measured run, full / resumed, from the"
    echo "  upstream nginx log (\`\$ssl_session_reused\` on each connection's first request); for certgate the"
    echo "  \`certgate_upstream_handshakes_total\` delta follows in brackets."
    echo "- **errors** = wrk non-2xx + socket errors; for certgate, panics logged by the process in that run follow."
    echo "- **other load** = cores busy (user+system) with anything but this proxy, the upstream nginx and wrk"
    echo "  during the run (\`/proc/stat\` minus the processes): other work on this shared machine. Before each"
    echo "  run the script waits (at most 40 s, 180 s in all) for the machine to be idle, and a run disturbed by"
    echo "  more than 0.15 cores of other load is measured once more (the quieter of the two is kept)."
    echo
    echo "| scenario | proxy | c | req/s | p50 ms | p99 ms | errors | CPU s | CPU s / 10k req | req / CPU s | peak RSS MB | upstream handshakes full / resumed | TLS | other load (cores) |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|"
    tail -n +2 "$RESULTS" | awk -F'\t' '{
        name = $2; if (name == "haproxy") name = "HAProxy"; if (name == "certgate-openssl") name = "certgate, OpenSSL route"
        hs = $12 " / " $13
        if ($16 != "") hs = hs " (" $16 " / " $17 ")"
        err = $7
        if ($18 != "") err = err " (" $18 " panics)"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, name, $3, $4, $5, $6, err, $8, $9, $10, $11, hs, $14, $19
    }'
    echo
    echo "\"new-conn\": wrk sends \`Connection: close\`, so every request arrives on a new client connection; each"
    echo "proxy is set up so that its upstream connection is not kept either: certgate with"
    echo "\`max_idle_per_host = 0\` (a second \`certgate serve\` with its own config file), nginx with an"
    echo "\`upstream\` block without \`keepalive\`, HAProxy with \`http-reuse never\`. Every request then costs one"
    echo "upstream TLS handshake, resumed when the proxy kept a TLS session or ticket. \"new-client\": the same"
    echo "\`Connection: close\` from wrk against each proxy's keep-alive set-up: a new client connection per"
    echo "request, the partner connection pooled."
    echo
    echo "### Rotation under load"
    echo
    echo "wrk c=16 for ${ROTATION_SECONDS} s against certgate (pooled); after $((ROTATION_SECONDS / 2)) s another process ran"
    echo "\`certgate cert rotate client client2.pem --key client2.key\`. The upstream logged every request of this run"
    echo "with \`\$ssl_client_s_dn\`; times are relative to the start of \`cert rotate\`."
    echo
    echo "| wrk requests | req/s | p99 ms | non-2xx | socket errors | certgate non-ok outcomes | panics | upstream requests cert 1 / cert 2 | cert 1 last seen | cert 2 first seen | upstream non-200 | upstream connections opened full / resumed | verdict |"
    echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    echo "| $ROT_REQ | $ROT_RPS | $ROT_P99 | $ROT_NON2XX | $ROT_SOCK | $ROT_NOK | $ROT_PAN | $ROT_N1 / $ROT_N2 | $ROT_LAST1 ms | $ROT_FIRST2 ms | $ROT_UP_BAD | $ROT_HS | $ROT_VERDICT |"
    echo
    echo "Subjects: cert 1 \`$CLIENT1_DN\`, cert 2 \`$CLIENT2_DN\`. At the end: certgate VmHWM $CG_HWM MB;"
    echo "panics logged over the whole benchmark: pooled instance $CG_PANICS, unpooled $CGN_PANICS."
    echo
    echo "### Issue 14's table, re-measured"
    echo
    echo "The table the performance issue was filed with (rows as there, numbers from this run above;"
    echo "peak RSS from the keep-alive c=64 run and from the 1,000-connection run)."
    echo
    awk -F'\t' '
        { key = $1 "/" $2 "/" $3; rps[key] = $4; p99[key] = $6; cpu[key] = $9; rss[key] = $11 }
        function cell(s, p, c) { k = s "/" p "/" c; return (k in rps) ? k : "" }
        function line(what, fmt, s, c, f1, f2,    out, i, p, k, v) {
            out = "| " what
            for (i = 1; i <= 3; i++) {
                p = (i == 1 ? "certgate" : (i == 2 ? "nginx" : "haproxy")); k = cell(s, p, c)
                if (k == "") { out = out " | -"; continue }
                v = sprintf(fmt, val(f1, k), val(f2, k))
                out = out " | " v
            }
            print out " |"
        }
        function val(f, k) {
            if (f == "rps") return rps[k]; if (f == "cpu") return cpu[k]; if (f == "p99") return p99[k]
            if (f == "rss") return rss[k]; return ""
        }
        END {
            print "| keep-alive | certgate | nginx | HAProxy |"
            print "|---|--:|--:|--:|"
            line("c=64 req/s", "%s", "keep-alive", 64, "rps")
            line("c=64 proxy CPU-s per 10k requests", "%s", "keep-alive", 64, "cpu")
            line("c=16 req/s / CPU-s per 10k", "%s / %s", "keep-alive", 16, "rps", "cpu")
            line("c=1 req/s, p99", "%s, %s ms", "keep-alive", 1, "rps", "p99")
            line("new connection per request, c=16: req/s / CPU-s per 10k", "%s / %s", "new-conn", 16, "rps", "cpu")
            line("new client connection per request, partner kept, c=16: req/s / CPU-s per 10k", "%s / %s", "new-client", 16, "rps", "cpu")
            line("peak RSS, keep-alive c=64 (MB)", "%s", "keep-alive", 64, "rss")
            line("peak RSS, 1,000 connections, 500 idle (MB)", "%s", "many-conns", 500, "rss")
        }' "$RESULTS"
    echo
    echo "### Targets"
    echo
    awk -F'\t' '
        { key = $1 "/" $2 "/" $3; rps[key] = $4; p50[key] = $5; p99[key] = $6; err[key] = $7; cpu[key] = $9; eff[key] = $10; rss[key] = $11 }
        function row(what, a, b, ratio, ok) {
            printf "| %s | %s | %s | %.2fx | %s |\n", what, a, b, ratio, (ok ? "met" : "missed")
        }
        END {
            print "| target | certgate | nginx (or: certgate open mode) | certgate / other | result |"
            print "|---|--:|--:|--:|---|"
            for (c = 16; c <= 64; c += 48) {
                a = "keep-alive/certgate/" c; b = "keep-alive/nginx/" c
                t = rps[a] / rps[b]; row("c=" c " req/s >= 1.1x nginx", rps[a], rps[b], t, t >= 1.1)
                t = eff[a] / eff[b]; row("c=" c " req per CPU-second >= 1.3x nginx", eff[a], eff[b], t, t >= 1.3)
            }
            a = "keep-alive/certgate/1"; b = "keep-alive/nginx/1"
            t = p50[a] / p50[b]; row("c=1 p50 <= nginx", p50[a] " ms", p50[b] " ms", t, t <= 1)
            t = p99[a] / p99[b]; row("c=1 p99 <= nginx", p99[a] " ms", p99[b] " ms", t, t <= 1)
            a = "new-conn/certgate/16"; b = "new-conn/nginx/16"
            t = rps[a] / rps[b]; row("new connection c=16 req/s >= nginx", rps[a], rps[b], t, t >= 1)
            t = cpu[a] / cpu[b]; row("new connection c=16 CPU per request <= nginx", cpu[a] " s/10k", cpu[b] " s/10k", t, t <= 1)
            a = "new-client/certgate/16"; b = "new-client/nginx/16"
            if (a in rps) {
                t = rps[a] / rps[b]; row("new client connection, partner kept, c=16 req/s >= nginx", rps[a], rps[b], t, t >= 1)
                t = cpu[a] / cpu[b]; row("new client connection, partner kept, c=16 CPU per request <= nginx", cpu[a] " s/10k", cpu[b] " s/10k", t, t <= 1)
            }
            for (c = 16; c <= 64; c += 48) {
                a = "production/certgate-prod/" c; b = "keep-alive/certgate/" c
                t = cpu[a] / cpu[b]; row("production mode c=" c " CPU per request within 5 % of open mode", cpu[a] " s/10k", cpu[b] " s/10k", t, t <= 1.05)
            }
            a = "many-conns/certgate/500"; b = "many-conns/nginx/500"
            row("1,000 connections (500 idle): RSS < 30 MiB", rss[a] " MiB", rss[b] " MiB", rss[a] / rss[b], rss[a] < 30)
            printf "| 1,000 connections (500 idle): no error | %s | %s | - | %s |\n", err[a], err[b], (err[a] == 0 ? "met" : "missed")
        }' "$RESULTS"
    echo
    echo "Raw wrk output, configs and logs of the last run: \`$WORK\` (\`results.tsv\`, \`runs/\`)."
} >"$SECTION"

# replace (or append) the section in docs/BENCHMARKS.md, leaving the other sections alone
mkdir -p "$(dirname "$OUT")"
[[ -f $OUT ]] || printf '# Benchmarks\n' >"$OUT"
awk -v sec="$SECTION" '
    function emit() { while ((getline l < sec) > 0) print l; close(sec); print ""; done = 1 }
    /^## Gateway vs nginx vs HAProxy[[:space:]]*$/ { emit(); skip = 1; next }
    skip && /^## / { skip = 0 }
    !skip { print }
    END { if (!done) { print ""; emit() } }
' "$OUT" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
cat "$SECTION"
[[ $ROT_VERDICT == pass ]] || log "the rotation run had errors (see the table)"
