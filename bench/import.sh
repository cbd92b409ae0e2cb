#!/usr/bin/env bash
# Import time of typical PKCS#12 files in a release build: the whole `certgate cert import`
# command (process start, store open, parse, key check, seal, one transaction), N times per file,
# each into a fresh store. Prints a markdown table. Bounded: N runs per file (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet
BIN=target/release/certgate
FIX=tests/fixtures/interop
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CERTGATE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export PW=interop-pass

ms() { date +%s%N; }

printf '| file | what | median ms | min ms | max ms |\n|---|---|---|---|---|\n'
for spec in \
  "openssl3-default-rsa2048.p12|OpenSSL 3 default (PBES2 AES-256, PBKDF2 2048, SHA-256 MAC)" \
  "openssl3-legacy-rsa2048.p12|Windows-style legacy (3DES + RC2-40, SHA-1 MAC)" \
  "keytool-importkeystore-rsa2048.p12|Java keytool (PBES2 AES-256, 10000 iterations)" \
  "python-cryptography-legacy-3des-rsa2048.p12|Python legacy 3DES (50000 iterations)" \
  "openssl3-default-ecp256.p12|OpenSSL 3 default, ECDSA P-256"; do
  file=${spec%%|*}; what=${spec#*|}
  times=()
  for i in $(seq 1 "$N"); do
    export CERTGATE_DATA_DIR="$work/$file-$i"
    t0=$(ms)
    "$BIN" cert import bench "$FIX/$file" --password-env PW >/dev/null
    t1=$(ms)
    times+=($(( (t1 - t0) / 1000 )))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  med=${sorted[$((N / 2))]}; min=${sorted[0]}; max=${sorted[$((N - 1))]}
  printf '| %s | %s | %s | %s | %s |\n' "$file" "$what" \
    "$(awk "BEGIN{printf \"%.1f\", $med/1000}")" "$(awk "BEGIN{printf \"%.1f\", $min/1000}")" "$(awk "BEGIN{printf \"%.1f\", $max/1000}")"
done
