#!/usr/bin/env bash
# A quick keep-alive comparison for hot-path work: upstream nginx (mutual TLS, 1 KiB answer), an
# nginx egress and one or more certgate binaries, measured side by side and alternately in the
# same run (CPU seconds per 10k requests from /proc/PID/stat), optionally with a perf profile of
# each certgate. The full harness with HAProxy, new connections and rotation is bench/run.sh.
#
#   bench/profile.sh BIN [BIN...]             # c=64 and c=16, ROUNDS rounds of DURATION each
#   PERF=1 bench/profile.sh BIN               # also `perf record -g` each certgate at c=64
#   STAT=1 bench/profile.sh BIN               # also syscalls / context switches per request (perf stat)
#   CALLGRIND=1 ROUNDS=0 bench/profile.sh old-bin new-bin
#                                             # instructions per request of each certgate under
#                                             # valgrind (c=16, keep-alive): a count, not a time, so
#                                             # two binaries compare the same however busy the machine
#   CALLGRIND=1 PROD=1 ROUNDS=0 bench/profile.sh BIN...
#                                             # the same, and again in production mode (bench/run.sh's:
#                                             # every request with an app's proxy credential, every
#                                             # 4th picking another certificate by header)
#   ROUNDS=3 DURATION=8s CONCS="64 16" bench/profile.sh old-bin new-bin
#   NEW_CLIENT=1 bench/profile.sh BIN...       # every wrk request with `Connection: close`: a new
#                                             # client connection per request, partners pooled
#
# Every process the script starts is stopped on exit (by PID). Ports 18500-18599 on 127.0.0.1.
set -euo pipefail

(($#)) || { echo "usage: bench/profile.sh CERTGATE_BIN [CERTGATE_BIN...]" >&2; exit 2; }
WORK=${BENCH_DIR:-/tmp/hp-profile}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-2}
CONCS=${CONCS:-"64 16"}
PERF=${PERF:-0}
STAT=${STAT:-0}
CALLGRIND=${CALLGRIND:-0}
PROD=${PROD:-0}
NGINX=/usr/sbin/nginx
UP_PORT=18543
NG_PORT=18580

LOG_TAG=profile
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rm -rf "$WORK"
mkdir -p "$WORK"/{bin,pki,up/logs,ng/logs,runs}
BINS=()
i=0
for b in "$@"; do
    cp "$b" "$WORK/bin/gw$i"
    BINS+=("$WORK/bin/gw$i")
    i=$((i + 1))
done
cd "$WORK"

(
    cd pki
    quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -sha256 \
        -subj "/CN=profile CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
    leaf server "/CN=localhost" "$(printf 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1')"
    leaf client "/CN=profile-client" "extendedKeyUsage=clientAuth"
    leaf client2 "/CN=profile-client-2" "extendedKeyUsage=clientAuth"
)
BODY=$(printf '%*s' 1024 '' | tr ' ' 'x')
cat >up/nginx.conf <<EOF
worker_processes 2;
user root;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UP_PORT ssl;
        ssl_certificate $WORK/pki/server.pem;
        ssl_certificate_key $WORK/pki/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_verify_client on;
        ssl_client_certificate $WORK/pki/ca.pem;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
EOF
cat >ng/nginx.conf <<EOF
worker_processes 2;
user root;
pid $WORK/ng/nginx.pid;
error_log $WORK/ng/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    upstream partner { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host localhost:$UP_PORT;
    proxy_ssl_certificate $WORK/pki/client.pem;
    proxy_ssl_certificate_key $WORK/pki/client.key;
    proxy_ssl_trusted_certificate $WORK/pki/ca.pem;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
    server { listen 127.0.0.1:$NG_PORT; location / { proxy_pass https://partner; } }
}
EOF
"$NGINX" -e "$WORK/up/logs/error.log" -p "$WORK/up" -c "$WORK/up/nginx.conf" -g 'daemon off;' >up/logs/stderr 2>&1 &
STARTED+=($!)
UP_PID=$!
"$NGINX" -e "$WORK/ng/logs/error.log" -p "$WORK/ng" -c "$WORK/ng/nginx.conf" -g 'daemon off;' >ng/logs/stderr 2>&1 &
STARTED+=($!)
NG_PID=$!

declare -A PIDS URL
PIDS[nginx]=""
URL[nginx]=http://127.0.0.1:$NG_PORT/
NAMES=(nginx)
for i in "${!BINS[@]}"; do
    name=cg$i
    data=$WORK/data$i
    mkdir -p "$data"
    cat >"cg$i.toml" <<EOF
[gateway]
max_idle_per_host = 64
idle_timeout_ms = 90000
[gateway.resolve]
"localhost" = "127.0.0.1"
EOF
    CERTGATE_DATA_DIR=$data "${BINS[$i]}" trust add upstream-ca pki/ca.pem >/dev/null
    CERTGATE_DATA_DIR=$data "${BINS[$i]}" cert import client pki/client.pem --key pki/client.key >/dev/null
    CERTGATE_DATA_DIR=$data "${BINS[$i]}" service add bench --url "https://localhost:$UP_PORT" --cert client \
        --trust ca:upstream-ca >/dev/null
    port=$((18590 + i))
    CERTGATE_DATA_DIR=$data "${BINS[$i]}" serve --proxy-listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$((18570 + i))" --config "$WORK/cg$i.toml" >"cg$i.log" 2>&1 &
    STARTED+=($!)
    PIDS[$name]=$!
    URL[$name]=http://127.0.0.1:$port/svc/bench/
    NAMES+=("$name")
    wait_port "$port"
done
wait_port $UP_PORT
wait_port $NG_PORT
PIDS[nginx]="$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')"
for n in "${NAMES[@]}"; do
    got=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "${URL[$n]}")
    [[ $got == "200 1024" ]] || { log "$n answered '$got'"; exit 1; }
done

HZ=$(getconf CLK_TCK)
WRK_EXTRA=()
((${NEW_CLIENT:-0})) && WRK_EXTRA=(-H "Connection: close")
# user and system CPU ticks of PIDs, summed: "user system"
ticks() {
    local u=0 s=0 p pu ps
    for p in "$@"; do
        read -r pu ps < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
        u=$((u + pu)); s=$((s + ps))
    done
    echo "$u $s"
}
busy() { awk '/^cpu /{print $2 + $3 + $4 + $9; exit}' /proc/stat; }
printf 'round\tconc\tproxy\treq_s\tcpu_s_per_10k\tuser_per_10k\tsystem_per_10k\tp99_ms\terrors\tmachine_busy_cores\n' >results.tsv
for round in $(seq "$ROUNDS"); do
    for conc in $CONCS; do
        for n in "${NAMES[@]}"; do
            # shellcheck disable=SC2086
            wrk -t2 -c"$conc" -d"$WARMUP" "${WRK_EXTRA[@]}" "${URL[$n]}" >/dev/null 2>&1 || true
            # shellcheck disable=SC2086
            read -r u0 s0 < <(ticks ${PIDS[$n]}); b0=$(busy)
            wrk -t2 -c"$conc" -d"$DURATION" "${WRK_EXTRA[@]}" --latency "${URL[$n]}" >"runs/$n-c$conc-r$round.txt" 2>&1
            # shellcheck disable=SC2086
            read -r u1 s1 < <(ticks ${PIDS[$n]}); b1=$(busy)
            f=runs/$n-c$conc-r$round.txt
            req=$(awk '/requests in/ {print $1}' "$f")
            secs=$(awk '/requests in/ {sub(/s,/, "", $4); print $4}' "$f")
            p99=$(awk '/ 99%/ {print $2}' "$f")
            errs=$(awk '/Non-2xx|Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i} END {print s + 0}' "$f")
            awk -v r="$round" -v c="$conc" -v n="$n" -v q="$req" -v s="$secs" -v u=$((u1 - u0)) -v sy=$((s1 - s0)) -v hz="$HZ" \
                -v p="$p99" -v e="$errs" -v b=$((b1 - b0)) 'BEGIN {
                    t = u + sy
                    printf "%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%.2f\n", r, c, n, q / s, t / hz / q * 10000,
                        u / hz / q * 10000, sy / hz / q * 10000, p, e, b / hz / s }' \
                >>results.tsv
            log "$(tail -1 results.tsv | tr '\t' ' ')"
        done
    done
done
if ((PERF)); then
    for n in "${NAMES[@]}"; do
        [[ $n == nginx ]] && continue
        wrk -t2 -c64 -d12s "${WRK_EXTRA[@]}" "${URL[$n]}" >/dev/null 2>&1 &
        STARTED+=($!)
        sleep 1
        perf record -F 499 --call-graph "${CALLGRAPH:-dwarf,16384}" -o "perf-$n.data" -p "${PIDS[$n]}" -- sleep 5 >/dev/null 2>&1
        wait "${STARTED[-1]}" || true
        perf report -i "perf-$n.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v "^$" | head -150 >"perf-$n.txt" || true
        log "profile of $n: $WORK/perf-$n.txt"
    done
fi
if ((CALLGRIND)); then
    # Each certgate again under callgrind (its own port; the same data), counting only while wrk
    # runs after a warm-up; instructions per request = the count over the requests wrk made.
    # PROD=1: each binary once more with a store of its own holding apps (production mode).
    modes=(open)
    if ((PROD)); then
        modes+=(prod)
        for i in "${!BINS[@]}"; do
            (
                export CERTGATE_DATA_DIR=$WORK/prod$i
                "${BINS[$i]}" trust add upstream-ca pki/ca.pem >/dev/null
                "${BINS[$i]}" cert import client pki/client.pem --key pki/client.key >/dev/null
                "${BINS[$i]}" cert import alt pki/client2.pem --key pki/client2.key >/dev/null
                "${BINS[$i]}" service add bench --url "https://localhost:$UP_PORT" --cert client \
                    --trust ca:upstream-ca >/dev/null
                "${BINS[$i]}" app add other-app --json >/dev/null
                "${BINS[$i]}" app add bench-app --json >"prod$i-app.json"
                "${BINS[$i]}" app grant bench-app client >/dev/null
                "${BINS[$i]}" app grant bench-app alt >/dev/null
            )
            auth=$(python3 -c 'import base64, json, sys; a = json.load(open(sys.argv[1]))
print(base64.b64encode(("%s:%s" % (a["name"], a["credential"])).encode()).decode())' "prod$i-app.json")
            cat >"prod$i.lua" <<EOF
local n = 0
request = function()
  n = n + 1
  local h = { ["Proxy-Authorization"] = "Basic $auth" }
  if n % 4 == 0 then h["Certgate-Certificate"] = "alt" end
  return wrk.format("GET", nil, h)
end
EOF
        done
    fi
    for mode in "${modes[@]}"; do
        for i in "${!BINS[@]}"; do
            n=cg$i port=$((18560 + i))
            data=$WORK/data$i script=()
            [[ $mode == prod ]] && data=$WORK/prod$i script=(-s "prod$i.lua")
            CERTGATE_DATA_DIR=$data valgrind --tool=callgrind --instr-atstart=no \
                --callgrind-out-file="$WORK/callgrind-$n-$mode.out" "${BINS[$i]}" serve --proxy-listen "127.0.0.1:$port" \
                --admin-listen "127.0.0.1:$((18550 + i))" --config "$WORK/cg$i.toml" >"callgrind-$n-$mode.log" 2>&1 &
            STARTED+=($!)
            vg=$!
            wait_port "$port" 600 # valgrind starts slowly
            url=http://127.0.0.1:$port/svc/bench/
            wrk -t1 -c16 -d3s "${WRK_EXTRA[@]}" "${script[@]}" "$url" >/dev/null 2>&1 || true
            callgrind_control -i on "$vg" >/dev/null
            wrk -t1 -c16 -d10s "${WRK_EXTRA[@]}" "${script[@]}" "$url" >"runs/callgrind-$n-$mode.wrk" 2>&1
            callgrind_control -i off "$vg" >/dev/null
            kill -TERM "$vg"
            wait "$vg" || true
            f=runs/callgrind-$n-$mode.wrk
            req=$(awk '/requests in/ {print $1}' "$f")
            errs=$(awk '/Non-2xx|Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i} END {print s + 0}' "$f")
            ((errs == 0)) || die "$n ($mode) under callgrind: $errs errors, see $WORK/$f"
            total=$(awk '/^totals:/ {print $2}' "$WORK/callgrind-$n-$mode.out")
            awk -v n="$n" -v m="$mode" -v t="$total" -v q="$req" 'BEGIN {
                printf "%s %s: %.0f instructions per request (%d requests under callgrind)\n", n, m, t / q, q }' |
                tee -a callgrind.txt
        done
    done
fi
if ((STAT)); then
    # syscalls, context switches and migrations per request at c=64, for every proxy
    for n in "${NAMES[@]}"; do
        pids=$(echo ${PIDS[$n]} | tr ' ' ',')
        wrk -t2 -c64 -d8s "${WRK_EXTRA[@]}" "${URL[$n]}" >"runs/stat-$n.wrk" 2>&1 &
        STARTED+=($!)
        sleep 1
        perf stat -x, -e raw_syscalls:sys_enter,context-switches,cpu-migrations -p "$pids" -- sleep 5 \
            2>"runs/stat-$n.txt" >/dev/null
        wait "${STARTED[-1]}" || true
        rps=$(awk '/Requests\/sec/ {print $2}' "runs/stat-$n.wrk")
        awk -F, -v n="$n" -v rps="$rps" '{v[$3] = $1} END {
            q = rps * 5; printf "%s: per request %.2f syscalls, %.2f context switches, %.3f migrations\n", n,
                v["raw_syscalls:sys_enter"] / q, v["context-switches"] / q, v["cpu-migrations"] / q }' "runs/stat-$n.txt"
    done
fi
cat results.tsv
