#!/usr/bin/env bash
# Fuzzing certgate's readers of untrusted bytes with cargo-fuzz (libFuzzer) on the stable
# toolchain. The targets are in fuzz/fuzz_targets/; docs/FUZZING.md says what each one checks,
# how long each ran and what it found.
#
#   bench/fuzz.sh seed                  # make the seed corpora (fuzz/corpus/TARGET) from tests/fixtures
#   bench/fuzz.sh build                 # build every target (cargo fuzz build --sanitizer none)
#   bench/fuzz.sh TARGET|all SECONDS    # seed + build, then run each target for SECONDS
#   bench/fuzz.sh list                  # the targets
#
# Environment: FUZZ_TARGET_DIR (cargo's target dir for the fuzz build; default fuzz/target),
# FUZZ_BIN_DIR (run these binaries instead of building, e.g. copies of a build),
# FUZZ_RSS_MB (libFuzzer's memory limit, default 2048), FUZZ_TIMEOUT (seconds one input may
# take, default 10), FUZZ_NICE (nice level, default 10), FUZZ_SUMMARY (append the summary
# lines to this file), FUZZ_SEED (libFuzzer's -seed: the same seed and binary explore the same
# inputs in the same order; unset, every run picks its own). Exit status 1 when a target found something: the input that did it is
# in fuzz/artifacts/TARGET/ and the log in fuzz/logs/TARGET.log.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; scripts/test.sh installs it) and a C++
# compiler (libFuzzer is built from source by libfuzzer-sys). No nightly toolchain: AddressSanitizer
# needs -Zsanitizer, so the targets run without a sanitizer (certgate has no unsafe code of its
# own in these paths; panics, overflows, hangs and memory blow-ups are what is caught).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$REPO/fuzz
TARGETS=(bundle ber parsers config apply_document request_target partner_response)
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$FUZZ/target}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR=${FUZZ_BIN_DIR:-$CARGO_TARGET_DIR/$TRIPLE/release}
NICE=${FUZZ_NICE:-10}

say() { printf '== %s\n' "$*" >&2; }

put() { # put TARGET PREFIX-BYTE-OR-EMPTY FILE...
  local target=$1 prefix=$2; shift 2
  local dir=$FUZZ/corpus/$target f sum
  mkdir -p "$dir"
  for f in "$@"; do
    [ -f "$f" ] || continue
    [ "$(stat -c %s "$f")" -le 1048576 ] || continue
    if [ -n "$prefix" ]; then
      { printf "\\x$prefix"; cat "$f"; } >"$dir/.tmp"
    else
      cat "$f" >"$dir/.tmp"
    fi
    sum=$(sha1sum "$dir/.tmp" | cut -c1-16)
    mv "$dir/.tmp" "$dir/seed-$sum"
  done
}

put_text() { # put_text TARGET PREFIX-BYTE-OR-EMPTY: one seed per line of stdin (\r, \n as escapes)
  local target=$1 prefix=$2 line sum
  local dir=$FUZZ/corpus/$target
  mkdir -p "$dir"
  while IFS= read -r line; do
    if [ -n "$prefix" ]; then printf "\\x$prefix%b" "$line"; else printf '%b' "$line"; fi >"$dir/.tmp"
    sum=$(sha1sum "$dir/.tmp" | cut -c1-16)
    mv "$dir/.tmp" "$dir/seed-$sum"
  done
}

seed() {
  say "seeding fuzz/corpus from tests/fixtures and docs"
  local fx=$REPO/tests/fixtures
  # bundle: the first byte picks the password (0 none, 1 empty, 2 interop-pass, 3 test-pass).
  put bundle 02 "$fx"/interop/*.* "$fx"/interop/pki/*.crt "$fx"/interop/pki/*.pem
  put bundle 01 "$fx"/interop/openssl3-emptypass-rsa2048.p12 "$fx"/interop/handmade-nullpw-mac-noenc-rsa2048.p12
  put bundle 00 "$fx"/interop/pki/*.key "$fx"/odd/*.pem "$fx"/interop/der-*.der
  put bundle 03 "$fx"/pkcs12/*.p12
  put bundle 01 "$fx"/pkcs12/*empty*.p12 "$fx"/pkcs12/*null*.p12
  # ber: the binary files as they are.
  put ber "" "$fx"/pkcs12/*.p12 "$fx"/interop/*.p12 "$fx"/interop/*.der "$fx"/interop/*.cer
  # config: the documented example and the tests' config snippets.
  put config "" "$REPO"/docs/certgate.example.toml
  # apply_document: the first byte picks the format (0 TOML, 1 YAML).
  put apply_document 00 "$REPO"/docs/apply-example.toml
  python3 - "$REPO/docs/apply-example.toml" "$FUZZ/corpus/apply_document" <<'PY' || true
import sys, tomllib, json, hashlib, os
doc = tomllib.load(open(sys.argv[1], 'rb'))
def yaml(v, ind=0):
    pad = '  ' * ind
    if isinstance(v, dict):
        return ''.join(f"{pad}{k}:\n{yaml(x, ind+1)}" if isinstance(x, (dict, list)) and x else f"{pad}{k}: {json.dumps(x)}\n" for k, x in v.items())
    if isinstance(v, list):
        out = ''
        for x in v:
            body = yaml(x, ind+1) if isinstance(x, (dict, list)) else pad + '  ' + json.dumps(x) + '\n'
            out += pad + '- ' + body.lstrip()
        return out
    return pad + json.dumps(v) + '\n'
data = b'\x01' + yaml(doc).encode()
open(os.path.join(sys.argv[2], 'seed-' + hashlib.sha1(data).hexdigest()[:16]), 'wb').write(data)
PY
  # parsers: one value a user types per seed.
  put_text parsers "" <<'EOF'
partner.example
API.Partner.example.
partner.example:8443
[::1]:9443
127.0.0.1:9443
*.partner.example
service:Billing.InvoiceService
https://api.partner.example/soap/x?y=1
https://api.partner.example:8443/x
bücher.example
public
private
ca:partner-root,other-root
sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
https://partner.example/soap/invoice
sqlite:///var/lib/certgate/certgate.db
postgres://certgate:S3CRETPW@127.0.0.1:5432/certgate
postgresql://127.0.0.1/certgate?sslmode=disable&password=S3CRETPW
ops@example.com, webhook:team
30d
2w
48h
env:PARTNER_PFX_PASSWORD
file:/run/secrets/partner
{"Module.WebService1": "D:\\\\App\\\\Mx1.pfx"}
EOF
  # request_target: what applications send the proxy listener.
  put_text request_target "" <<'EOF'
GET http://partner.example/soap/x?y=1 HTTP/1.1\r\nHost: partner.example\r\n\r\n
POST http://partner.example:8443/x HTTP/1.1\r\nHost: partner.example:8443\r\nContent-Length: 2\r\n\r\nhi
GET https://a.b.example.com/ HTTP/1.1\r\nHost: a.b.example.com\r\n\r\n
GET /svc/Soap/rest?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n
GET /svc/Rest HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n
POST /svc/Root/?a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
GET http://[::1]/ HTTP/1.0\r\n\r\n
CONNECT partner.example:443 HTTP/1.1\r\nHost: partner.example:443\r\n\r\n
GET http://127.0.0.1:9443/x HTTP/1.1\r\nProxy-Authorization: Basic YXBwOnRva2Vu\r\nCertgate-Certificate: a\r\n\r\n
GET / HTTP/1.1\nHost: a\n\n
EOF
  # partner_response: what partners answer (the first byte: the piece size; bit 7 for HEAD).
  put_text partner_response "" <<'EOF'
\x10HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: 5\r\n\r\nhello
\x03HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n
\x40HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\nfault
\x7fHTTP/1.0 200 OK\r\n\r\nuntil the end
\x81HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n
\x01HTTP/1.1 304 Not Modified\r\netag: "a"\r\n\r\n
\x20HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n
EOF
}

build() {
  command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
  say "building the fuzz targets (cargo fuzz build --sanitizer none, target dir $CARGO_TARGET_DIR)"
  (cd "$FUZZ" && nice -n "$NICE" cargo fuzz build --sanitizer none)
}

# Run one target for $2 seconds; print its summary line (markdown table row).
run_one() {
  local target=$1 seconds=$2
  local bin=$BIN_DIR/$target log=$FUZZ/logs/$target.log
  [ -x "$bin" ] || { echo "no binary $bin: run bench/fuzz.sh build" >&2; exit 1; }
  mkdir -p "$FUZZ/corpus/$target" "$FUZZ/artifacts/$target" "$FUZZ/logs"
  say "fuzzing $target for $seconds s"
  local status=0
  nice -n "$NICE" "$bin" "$FUZZ/corpus/$target" \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -timeout="${FUZZ_TIMEOUT:-10}" -max_len=65536 -artifact_prefix="$FUZZ/artifacts/$target/" \
    ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
    >"$log" 2>&1 || status=$?
  local execs rate cov ft corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  # libFuzzer's corpus (inputs it keeps, after reduction) / files in the corpus folder
  corpus="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2) / $(find "$FUZZ/corpus/$target" -type f | wc -l) files"
  local found=none
  if [ "$status" != 0 ]; then
    found="FOUND (exit $status): $(ls -t "$FUZZ/artifacts/$target" | head -1)"
  fi
  local line="| $target | $seconds s | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corpus | $found |"
  echo "$line"
  [ -z "${FUZZ_SUMMARY:-}" ] || echo "$line" >>"$FUZZ_SUMMARY"
  if [ "$status" != 0 ]; then
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 >&2 || true
    return 1
  fi
}

case "${1:-}" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  seed) seed ;;
  build) build ;;
  "" | -h | --help) sed -n '2,22p' "$0" ;;
  *)
    what=$1
    seconds=${2:?give the seconds each target runs, e.g. bench/fuzz.sh all 20}
    if [ "$what" = all ]; then run=("${TARGETS[@]}"); else run=("$what"); fi
    for t in "${run[@]}"; do
      printf '%s\n' "${TARGETS[@]}" | grep -qx "$t" || { echo "unknown target $t (bench/fuzz.sh list)" >&2; exit 2; }
    done
    [ -d "$FUZZ/corpus" ] || seed
    [ -n "${FUZZ_BIN_DIR:-}" ] || build
    echo "| target | time | execs | execs/s | cov | ft | corpus (kept/size / files) | findings |"
    echo "|---|---|---|---|---|---|---|---|"
    failed=0
    for t in "${run[@]}"; do run_one "$t" "$seconds" || failed=1; done
    exit "$failed"
    ;;
esac
