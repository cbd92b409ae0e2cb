#!/usr/bin/env bash
# Egress benchmark: certgate vs nginx vs HAProxy, each presenting a client certificate (mTLS) to
# the same upstream nginx, all on loopback. Writes the section "Gateway vs nginx vs HAProxy" of
# docs/BENCHMARKS.md. See that file for the method; run from anywhere:
#
#   bench/run.sh                      # ~6 minutes with the defaults
#   DURATION=15s WARMUP=2s bench/run.sh
#
# Needs: a release build (cargo build --release), openssl, nginx, haproxy, wrk, curl
# (Debian: apt-get install -y nginx wrk haproxy). Ports 18080-18443 on 127.0.0.1 must be free.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CERTGATE=${CERTGATE_BIN:-$REPO/target/release/certgate}
WORK=${BENCH_DIR:-/tmp/certgate-bench}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}
ROTATION_SECONDS=${ROTATION_SECONDS:-20}
OUT=${BENCH_OUT:-$REPO/docs/BENCHMARKS.md}

UP_PORT=18443            # upstream nginx (TLS, ssl_verify_client on)
CG_PORT=18080            # certgate, pooled (max_idle_per_host = 64)
CG_ADMIN=18081
CGN_PORT=18090           # certgate, no pooling (max_idle_per_host = 0)
CGN_ADMIN=18091
NG_PORT=18180            # nginx egress, upstream keepalive
NGN_PORT=18181           # nginx egress, no upstream keepalive
HA_PORT=18280            # haproxy, http-reuse always
HAN_PORT=18281           # haproxy, http-reuse never

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
[[ -x $CERTGATE ]] || die "no certgate binary at $CERTGATE (run: cargo build --release)"
missing=()
for tool in nginx haproxy wrk; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (Debian packages)"
    apt-get update -q >/dev/null
    apt-get install -y -q nginx wrk haproxy >/dev/null
fi
NGINX=/usr/sbin/nginx
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
for tool in openssl curl wrk awk; do command -v "$tool" >/dev/null || die "$tool is needed"; done

# ---------------------------------------------------------------- process bookkeeping
STARTED=()   # every PID this script started; killed on exit, each by its id
cleanup() {
    local rc=$?
    set +e
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$1"
}

rm -rf "$WORK"
mkdir -p "$WORK"/{pki,up/logs,ng/logs,ha,cg-data,runs}
cd "$WORK"

# ---------------------------------------------------------------- test PKI (RSA 2048 everywhere)
log "making the test PKI in $WORK/pki"
(
    cd pki
    q() { "$@" >/dev/null 2>&1 || { "$@"; exit 1; }; }
    q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -sha256 \
        -subj "/O=certgate bench/CN=certgate bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    leaf() { # name subject extensions
        q openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
        printf '%s\n' "$3" >"$1.ext"
        q openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
            -days 30 -sha256 -extfile "$1.ext"
    }
    leaf server "/O=certgate bench/CN=localhost" \
        "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1')"
    for n in 1 2; do
        leaf "client$n" "/O=certgate bench/CN=bench-client-$n" \
            "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
    done
    cat client1.pem client1.key >client1-bundle.pem   # HAProxy wants cert + key in one file
)
CLIENT1_DN=$(openssl x509 -in pki/client1.pem -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
CLIENT2_DN=$(openssl x509 -in pki/client2.pem -noout -subject -nameopt RFC2253 | sed 's/^subject=//')

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
    # one line per upstream TLS connection (its first request): full vs resumed, which client cert
    log_format hs '\$msec \$connection \$ssl_session_reused \$ssl_protocol "\$ssl_client_s_dn"';
    log_format req '\$msec \$connection \$connection_requests \$status "\$ssl_client_s_dn"';
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
        # every request of the rotation run (wrk adds this header there only): which cert, when
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
worker_processes 2;   # certgate's tokio runtime uses one worker thread per core = 2
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
    nbthread 2        # certgate's tokio runtime uses one worker thread per core = 2
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
    set -- $pair
    cat >"cg-$1.toml" <<EOF
[gateway]
max_idle_per_host = $2
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

# ---------------------------------------------------------------- start everything
start_bg() { # logfile cmd...
    local out=$1; shift
    "$@" >"$out" 2>&1 &
    STARTED+=($!)
}
log "starting upstream nginx, nginx egress, haproxy, certgate x2"
start_bg up/logs/stderr.log "$NGINX" -e "$WORK/up/logs/error.log" -p "$WORK/up" -c "$WORK/up/nginx.conf" -g 'daemon off;'
UP_MASTER=${STARTED[-1]}
start_bg ng/logs/stderr.log "$NGINX" -e "$WORK/ng/logs/error.log" -p "$WORK/ng" -c "$WORK/ng/nginx.conf" -g 'daemon off;'
NG_MASTER=${STARTED[-1]}
start_bg ha/stderr.log "$HAPROXY" -db -f "$WORK/ha/haproxy.cfg"
HA_PID=${STARTED[-1]}
start_bg cg-pooled.log "$CERTGATE" serve --proxy-listen "127.0.0.1:$CG_PORT" --admin-listen "127.0.0.1:$CG_ADMIN" --config "$WORK/cg-pooled.toml"
CG_PID=${STARTED[-1]}
start_bg cg-unpooled.log "$CERTGATE" serve --proxy-listen "127.0.0.1:$CGN_PORT" --admin-listen "127.0.0.1:$CGN_ADMIN" --config "$WORK/cg-unpooled.toml"
CGN_PID=${STARTED[-1]}
for p in $UP_PORT $NG_PORT $NGN_PORT $HA_PORT $HAN_PORT $CG_PORT $CGN_PORT $CG_ADMIN $CGN_ADMIN; do wait_port "$p"; done

declare -A URL=(
    [certgate]=http://127.0.0.1:$CG_PORT/svc/bench/ [certgate-new]=http://127.0.0.1:$CGN_PORT/svc/bench/
    [nginx]=http://127.0.0.1:$NG_PORT/ [nginx-new]=http://127.0.0.1:$NGN_PORT/
    [haproxy]=http://127.0.0.1:$HA_PORT/ [haproxy-new]=http://127.0.0.1:$HAN_PORT/
)
proxy_pids() { # name -> the PIDs whose CPU and memory are charged to it
    case $1 in
        certgate) echo "$CG_PID" ;;
        certgate-new) echo "$CGN_PID" ;;
        nginx*) echo "$NG_MASTER" $(pgrep -P "$NG_MASTER" || true) ;;
        haproxy*) echo "$HA_PID" ;;
    esac
}

# every path answers 200 with 1024 bytes, with the client certificate accepted upstream
for name in "${!URL[@]}"; do
    got=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "${URL[$name]}")
    [[ $got == "200 1024" ]] || die "$name (${URL[$name]}) answered '$got', expected '200 1024'; see $WORK/*/"
done
log "all six egress paths answer 200 with 1 KiB"

# ---------------------------------------------------------------- measurement helpers
cat >report.lua <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
EOF
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pids... -> utime+stime summed, in clock ticks
    local t=0 p v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
        t=$((t + v))
    done
    echo "$t"
}
rss_sampler() { # outfile pids... : max of summed VmRSS (kB), sampled every 200 ms, until killed
    local out=$1 max=0 now p; shift
    while :; do
        now=0
        for p in "$@"; do
            now=$((now + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
        done
        ((now > max)) && { max=$now; echo "$max" >"$out"; }
        sleep 0.2
    done
}
metric_sum() { # admin-port metric-prefix -> sum of the samples
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'
}
hs_lines() { wc -l <up/logs/handshakes.log; }
field() { sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1" | head -1; }

RESULTS=$WORK/results.tsv
printf 'scenario\tproxy\tconc\trps\tp50_ms\tp99_ms\terrors\tcpu_s\tcpu_per_10k\treq_per_cpu_s\trss_mb\tfull\tresumed\tproto\trequests\tcg_full\tcg_resumed\n' >"$RESULTS"

run_one() { # scenario proxy-name url-key conc extra-wrk-args...
    local scenario=$1 name=$2 key=$3 conc=$4; shift 4
    local threads=2; ((conc < 2)) && threads=1
    local url=${URL[$key]} tag="$scenario-$name"
    local pids; pids=$(proxy_pids "$key")
    wrk -t"$threads" -c"$conc" -d"$WARMUP" "$@" "$url" >"runs/$tag.warmup.txt" 2>&1 || true
    local admin=""
    case $key in certgate) admin=$CG_ADMIN ;; certgate-new) admin=$CGN_ADMIN ;; esac
    local cg0f=0 cg0r=0
    if [[ -n $admin ]]; then
        cg0f=$(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="false"}')
        cg0r=$(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="true"}')
    fi
    local hs0 cpu0 cpu1 sampler
    hs0=$(hs_lines)
    echo 0 >"runs/$tag.rss"
    # shellcheck disable=SC2086
    rss_sampler "runs/$tag.rss" $pids &
    sampler=$!
    STARTED+=($sampler)
    # shellcheck disable=SC2086
    cpu0=$(cpu_ticks $pids)
    wrk -t"$threads" -c"$conc" -d"$DURATION" --latency -s report.lua "$@" "$url" >"runs/$tag.txt" 2>&1
    # shellcheck disable=SC2086
    cpu1=$(cpu_ticks $pids)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    local f=runs/$tag.txt
    local requests dur p50 p99 errs
    requests=$(field "$f" requests); dur=$(field "$f" duration_us)
    p50=$(field "$f" p50_us); p99=$(field "$f" p99_us)
    errs=$(( $(field "$f" non2xx) + $(field "$f" connect) + $(field "$f" read) + $(field "$f" write) + $(field "$f" timeout) ))
    local hs
    hs=$(tail -n +"$((hs0 + 1))" up/logs/handshakes.log)
    local full resumed proto
    full=$(printf '%s\n' "$hs" | awk 'NF && $3 != "r"' | wc -l)
    resumed=$(printf '%s\n' "$hs" | awk 'NF && $3 == "r"' | wc -l)
    proto=$(printf '%s\n' "$hs" | awk 'NF {c[$4]++} END {for (p in c) printf "%s%s", (n++ ? "," : ""), p}')
    local cgf="" cgr=""
    if [[ -n $admin ]]; then
        cgf=$(( $(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="false"}') - cg0f ))
        cgr=$(( $(metric_sum "$admin" 'certgate_upstream_handshakes_total{resumed="true"}') - cg0r ))
    fi
    awk -v sc="$scenario" -v nm="$name" -v c="$conc" -v rq="$requests" -v d="$dur" -v p50="$p50" -v p99="$p99" \
        -v er="$errs" -v cpu="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v rss="$(cat "runs/$tag.rss")" \
        -v fu="$full" -v re="$resumed" -v pr="${proto:--}" -v cgf="$cgf" -v cgr="$cgr" 'BEGIN {
            cs = cpu / hz
            printf "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%.2f\t%.2f\t%.0f\t%.1f\t%d\t%d\t%s\t%d\t%s\t%s\n",
                sc, nm, c, rq / (d / 1e6), p50 / 1000, p99 / 1000, er, cs,
                (rq ? cs / rq * 10000 : 0), (cs > 0 ? rq / cs : 0), rss / 1024, fu, re, pr, rq, cgf, cgr
        }' >>"$RESULTS"
    log "$(tail -1 "$RESULTS" | cut -f1-13)"
}

# ---------------------------------------------------------------- the runs (interleaved per scenario)
log "runs: $DURATION each after a $WARMUP warm-up; load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for conc in 1 16 64; do
    for name in certgate nginx haproxy; do
        run_one "keep-alive" "$name" "$name" "$conc"
    done
done
for name in certgate nginx haproxy; do
    run_one "new-conn" "$name" "$name-new" 16 -H 'Connection: close'
done

# ---------------------------------------------------------------- rotation under load
log "rotation under load: wrk c=16 for ${ROTATION_SECONDS}s, 'certgate cert rotate' half way"
hs0=$(hs_lines)
not_ok() { curl -s "http://127.0.0.1:$CG_ADMIN/metrics" | awk '/^certgate_requests_total[{]/ && !/outcome="ok"/ {s += $NF} END {printf "%d", s}'; }
NOT_OK0=$(not_ok)
wrk -t2 -c16 -d"${ROTATION_SECONDS}s" --latency -s report.lua -H 'X-Bench-Rotation: 1' "${URL[certgate]}" >runs/rotation.txt 2>&1 &
WRK_PID=$!
STARTED+=($WRK_PID)
sleep $((ROTATION_SECONDS / 2))
ROTATE_AT=$(date +%s.%N)
"$CERTGATE" cert rotate client pki/client2.pem --key pki/client2.key >runs/rotate.out 2>&1
wait "$WRK_PID"
sleep 1   # nginx writes its access log at the end of each request; let the last lines land
rot=runs/rotation.txt
ROT_REQ=$(field $rot requests)
ROT_NON2XX=$(field $rot non2xx)
ROT_SOCK=$(( $(field $rot connect) + $(field $rot read) + $(field $rot write) + $(field $rot timeout) ))
ROT_RPS=$(awk -v r="$ROT_REQ" -v d="$(field $rot duration_us)" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
ROT_P99=$(awk -v p="$(field $rot p99_us)" 'BEGIN {printf "%.2f", p / 1000}')
tail -n +"$((hs0 + 1))" up/logs/handshakes.log >runs/rotation.handshakes.log
cp up/logs/rotation.log runs/rotation.requests.log
# per certificate: requests seen upstream, and the first/last request time relative to the rotate command
rot_stats() { # dn -> "requests first_ms last_ms"
    awk -v dn="\"$1\"" -v r="$ROTATE_AT" 'index($0, dn) {n++; t = ($1 - r) * 1000; if (n == 1) f = t; l = t}
        END {if (n) printf "%d %+.0f %+.0f", n, f, l; else print "0 - -"}' runs/rotation.requests.log
}
read -r ROT_DN1 DN1_FIRST DN1_LAST <<<"$(rot_stats "$CLIENT1_DN")"
read -r ROT_DN2 DN2_FIRST DN2_LAST <<<"$(rot_stats "$CLIENT2_DN")"
ROT_UP_NON200=$(awk '$4 != 200' runs/rotation.requests.log | wc -l)
CG_NOT_OK=$(( $(not_ok) - NOT_OK0 ))
CG_PANICS=$(grep -c 'panicked at' cg-pooled.log || true)
if ((ROT_NON2XX == 0 && ROT_SOCK == 0 && ROT_DN1 > 0 && ROT_DN2 > 0)); then ROT_VERDICT="pass"; else ROT_VERDICT="FAIL"; fi
log "rotation: $ROT_REQ requests, non-2xx $ROT_NON2XX, socket errors $ROT_SOCK, upstream requests cert1 $ROT_DN1 / cert2 $ROT_DN2 (cert 2 from ${DN2_FIRST} ms) -> $ROT_VERDICT"
CG_HWM=$(awk '/^VmHWM:/{printf "%.1f", $2 / 1024}' /proc/$CG_PID/status)

# ---------------------------------------------------------------- environment and report
NGINX_V=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
HAPROXY_V=$("$HAPROXY" -v 2>&1 | head -1 | awk '{print $3}')
WRK_V=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}' || true)
OPENSSL_V=$(openssl version)
CG_REV=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || CG_REV="$CG_REV (+ uncommitted changes in src/Cargo)"
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
DPKG_V() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }

SECTION=$WORK/section.md
{
    echo "## Gateway vs nginx vs HAProxy"
    echo
    echo "Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Do not edit by hand; rerun the script."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| machine | $(nproc) CPUs, $CPU_MODEL, kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME") |"
    echo "| certgate | git $CG_REV, release build, tokio multi-thread runtime (2 worker threads = nproc) |"
    echo "| nginx | $NGINX_V (Debian $(DPKG_V nginx)), \`worker_processes 2\` (egress and upstream) |"
    echo "| HAProxy | $HAPROXY_V (Debian $(DPKG_V haproxy)), \`nbthread 2\` |"
    echo "| wrk | $WRK_V (Debian $(DPKG_V wrk)) |"
    echo "| OpenSSL | $OPENSSL_V |"
    echo "| load average before the runs | $LOAD_BEFORE |"
    echo
    echo "Each run: $WARMUP warm-up (not counted), then $DURATION of \`wrk --latency\` (1 thread at c=1, 2 threads otherwise)."
    echo "Upstream: nginx, TLS 1.2/1.3, \`ssl_verify_client on\`, returns 1024 bytes. Keys: RSA 2048."
    echo "CPU = utime+stime of the proxy's processes (nginx: master + workers) over the measured run."
    echo "RSS = peak of the summed VmRSS, sampled every 200 ms during the run."
    echo "Handshakes = upstream TLS connections opened during the measured run, from the upstream nginx log"
    echo "(\`\$ssl_session_reused\`); for certgate the \`certgate_upstream_handshakes_total\` delta is given in brackets."
    echo
    echo "| scenario | proxy | c | req/s | p50 ms | p99 ms | errors | CPU s | CPU s / 10k req | req / CPU s | peak RSS MB | upstream handshakes full / resumed | TLS |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    tail -n +2 "$RESULTS" | awk -F'\t' '{
        hs = $12 " / " $13
        if ($16 != "") hs = hs " (" $16 " / " $17 ")"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, hs, $14
    }'
    echo
    echo "\"new-conn\": wrk sends \`Connection: close\`, so every request is a new client connection; the"
    echo "proxies are configured so that the upstream connection is not kept either: certgate with"
    echo "\`max_idle_per_host = 0\` (a second \`certgate serve\`), nginx with an \`upstream\` block without"
    echo "\`keepalive\`, HAProxy with \`http-reuse never\`. Every request then costs one upstream TLS handshake,"
    echo "which is resumed when the proxy keeps TLS sessions."
    echo
    echo "### Rotation under load"
    echo
    echo "wrk c=16 for ${ROTATION_SECONDS} s against certgate (pooled); after $((ROTATION_SECONDS / 2)) s another process ran"
    echo "\`certgate cert rotate client client2.pem --key client2.key\`."
    echo
    echo "| wrk requests | req/s | p99 ms | non-2xx | socket errors | certgate non-ok outcomes | upstream requests with cert 1 / cert 2 | upstream non-200 | verdict |"
    echo "|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    echo "| $ROT_REQ | $ROT_RPS | $ROT_P99 | $ROT_NON2XX | $ROT_SOCK | $CG_NOT_OK | $ROT_DN1 / $ROT_DN2 | $ROT_UP_NON200 | $ROT_VERDICT |"
    echo
    echo "Relative to the moment \`cert rotate\` started: cert 1 (\`$CLIENT1_DN\`) was last seen upstream at"
    echo "${DN1_LAST} ms, cert 2 (\`$CLIENT2_DN\`) first at ${DN2_FIRST} ms (the store is polled every 250 ms)."
    echo "Upstream connections opened during the rotation run (full / resumed): $(awk '$3 != "r"' runs/rotation.handshakes.log | wc -l) / $(awk '$3 == "r"' runs/rotation.handshakes.log | wc -l)."
    echo
    echo "Panics in the certgate (pooled) log over the whole benchmark: $CG_PANICS."
    echo "certgate (pooled) VmHWM at the end of the whole run: $CG_HWM MB."
    echo
    echo "### Targets"
    echo
    awk -F'\t' '
        $1 == "keep-alive" && $3 == 64 { rps[$2] = $4; eff[$2] = $10 }
        $1 == "keep-alive" && $3 == 1  { p99[$2] = $6 }
        END {
            t1 = rps["certgate"] / rps["nginx"]
            t2 = eff["certgate"] / eff["nginx"]
            t3 = p99["certgate"] / p99["nginx"]
            printf "| target | certgate | nginx | ratio | result |\n|---|--:|--:|--:|---|\n"
            printf "| c=64 req/s >= nginx | %s | %s | %.2fx | %s |\n", rps["certgate"], rps["nginx"], t1, (t1 >= 1 ? "met" : "missed")
            printf "| c=64 req per CPU-second >= 1.3x nginx | %s | %s | %.2fx | %s |\n", eff["certgate"], eff["nginx"], t2, (t2 >= 1.3 ? "met" : "missed")
            printf "| c=1 p99 <= nginx | %s ms | %s ms | %.2fx | %s |\n", p99["certgate"], p99["nginx"], t3, (t3 <= 1 ? "met" : "missed")
        }' "$RESULTS"
    echo
    echo "Raw wrk output, configs and logs of the last run: \`$WORK\`."
} >"$SECTION"

# replace (or append) the section in docs/BENCHMARKS.md, leaving other sections alone
mkdir -p "$(dirname "$OUT")"
[[ -f $OUT ]] || printf '# Benchmarks\n\n' >"$OUT"
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
