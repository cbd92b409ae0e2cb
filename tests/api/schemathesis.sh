#!/usr/bin/env bash
# Exercise the admin API's OpenAPI document with schemathesis against a running `certgate serve`:
# every operation, positive and negative data, checked for no 5xx and for responses that match the
# document. Bounded in time. Run from anywhere:
#
#   tests/api/schemathesis.sh [path/to/certgate]      # default: target/debug/certgate
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 15), SCHEMATHESIS_SEED (default 1; "random"
# for a new seed each run), SCHEMATHESIS_TIMEOUT (seconds for both passes, default 300),
# SCHEMATHESIS_PHASES (default examples,coverage,fuzzing), SCHEMATHESIS_SCHEMA (a local copy of
# the document to test instead of the one the server serves, e.g. while editing
# the handlers), SCHEMATHESIS_ARGS (more arguments, e.g. "--report har --report-dir
# /tmp/st"). tests/admin_api.rs::openapi_document_holds_under_schemathesis runs this script. It
# starts its own server on free loopback ports with a scratch data directory, and stops it on exit.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${CERTGATE_BIN:-$root/target/debug/certgate}}"
fixtures="$root/tests/fixtures/interop"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-15}"
seed="${SCHEMATHESIS_SEED:-1}"
limit="${SCHEMATHESIS_TIMEOUT:-300}"
phases="${SCHEMATHESIS_PHASES:-examples,coverage,fuzzing}"

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis is not installed: pip install schemathesis" >&2
  exit 1
fi
[ -x "$bin" ] || { echo "no certgate binary at $bin (cargo build first, or pass its path)" >&2; exit 1; }

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    # Bounded wait for it to finish (SIGTERM lets in-flight requests end).
    for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

export CERTGATE_DATA_DIR="$work/data"
unset CERTGATE_STORE CERTGATE_CONFIG CERTGATE_MASTER_KEY CERTGATE_MASTER_KEY_FILE
cg() { "$bin" "$@"; }

# The store: one certificate, one trust anchor, one binding, one service, one app with a grant, a
# viewer token (something to list and revoke), and the admin token schemathesis uses.
cg cert import billing "$fixtures/pem-fullchain-key-rsa2048.pem" --owner "payments team" >/dev/null
cg trust add partner-root "$fixtures/pki/root.crt" >/dev/null
cg bind api.partner.test billing --trust ca:partner-root >/dev/null
cg service add Billing.InvoiceService --url https://api.partner.test/soap/invoice --cert billing --trust ca:partner-root >/dev/null
cg app add caller >/dev/null
cg app grant caller billing >/dev/null
cg token create ci-viewer --role viewer >/dev/null
token="$(cg --json token create schemathesis-admin --role admin | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
proxy_port="$(free_port)"
admin_port="$(free_port)"
while [ "$admin_port" = "$proxy_port" ]; do admin_port="$(free_port)"; done
admin="http://127.0.0.1:$admin_port"

"$bin" serve --proxy-listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" >"$work/serve.log" 2>&1 &
server=$!

# Wait (at most 10 s) for /readyz.
ready=0
for _ in $(seq 1 100); do
  if python3 - "$admin/readyz" <<'EOF' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
EOF
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "certgate serve did not become ready on $admin/readyz; its output:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi

seed_args=()
[ "$seed" = random ] || seed_args=(--seed "$seed")

location=("$admin/api/v1/openapi.json")
if [ -n "${SCHEMATHESIS_SCHEMA:-}" ]; then
  location=("$(cd "$(dirname "$SCHEMATHESIS_SCHEMA")" && pwd)/$(basename "$SCHEMATHESIS_SCHEMA")" --url "$admin/api/v1")
fi

cd "$work"   # schemathesis and hypothesis keep their files here

# Two passes: every operation but token revocation, then token revocation alone (schemathesis
# reuses names from earlier answers, so it may revoke its own token: nothing after that would
# get past 401).
st() {
  local seconds="$1"
  shift
  timeout --kill-after=10 "$seconds" schemathesis run "${location[@]}" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --phases "$phases" \
    --max-examples "$max_examples" \
    "${seed_args[@]}" \
    --workers 1 \
    --request-timeout 20 \
    --no-shrink \
    --suppress-health-check all \
    --warnings off \
    ${SCHEMATHESIS_ARGS:-} \
    "$@"
}
status=0
started=$SECONDS
st "$limit" --exclude-operation-id revokeToken || status=$?
left=$(( limit - (SECONDS - started) ))
if [ "$status" = 0 ]; then
  if [ "$left" -lt 5 ]; then
    echo "no time left for the token revocation pass" >&2
    status=124
  else
    st "$left" --include-operation-id revokeToken || status=$?
  fi
fi

if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "schemathesis did not finish within ${limit} s" >&2
fi
if [ "$status" != 0 ]; then
  echo "--- certgate serve log (tail):" >&2
  tail -n 60 "$work/serve.log" >&2
fi
exit "$status"
