#!/usr/bin/env bash
# The README's test command: install what the test suite needs (only what is missing), then run
# `cargo test` with any arguments given (e.g. `scripts/test.sh --test integration gateway`).
#
#   scripts/test.sh              # check, install what is missing, cargo test
#   scripts/test.sh --check      # only say what is missing (exit 1 if anything is); install nothing
#   scripts/test.sh --install    # install what is missing, run no tests (.ci/run does this first,
#                                # so that clippy finds a C compiler on a fresh machine)
#   CERTGATE_TEST_NO_INSTALL=1 scripts/test.sh   # never install: fail fast and say what is missing
#
# What the tests need and why (each test fails, never skips, without it):
#   Debian packages  openssl, gcc, make (aws-lc and SQLite builds, fixture scripts), libssl-dev and
#                    pkg-config (the system OpenSSL the second TLS engine links), apache2 (a
#                    partner that asks for the client certificate after the request), bsdutils
#                    (`script`: a terminal for the password prompt test), nginx (a partner that
#                    requires client certificates), curl (an application), python3 + pip,
#                    postgresql (the store conformance, multi-node and outage tests), chromium,
#                    nodejs + npm (the console in a real browser), systemd (systemd-analyze for
#                    the packaged unit), dpkg and passwd (the package is installed and its user
#                    created on this machine).
#   Python           zeep (a SOAP client), schemathesis (checks the admin API against its
#                    OpenAPI document), aiosmtpd (the SMTP server that receives e-mail alerts).
#   npm              playwright-core, locked in tests/console/package-lock.json (drives Debian's
#                    Chromium; no browser is downloaded).
#   cargo            cargo-deb (builds the Debian package in tests/package.rs), cargo-fuzz (the
#                    fuzz targets .ci/run builds and runs briefly: bench/fuzz.sh; needs g++).
#   PostgreSQL       a server on 127.0.0.1:5432, user postgres with trust auth on loopback, and a
#                    database `test`; started with pg_ctlcluster when none answers.
# Installing needs root (or sudo without a password); on CI (.ci/run) it runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=0
install_only=0
if [ "${1:-}" = --check ]; then check_only=1; shift; fi
if [ "${1:-}" = --install ]; then install_only=1; shift; fi
no_install=$check_only
[ "${CERTGATE_TEST_NO_INSTALL:-0}" = 1 ] && no_install=1

say() { printf '\n== %s\n' "$*" >&2; }
missing=()
need() { missing+=("$1"); }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else echo "installing needs root: run as root, or install by hand: $*" >&2; exit 1
  fi
}

apt_updated=0
apt_install() {
  [ "$#" -gt 0 ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -q; apt_updated=1; fi
  # policy-rc.d keeps post-install scripts from starting services (nginx, postgresql): the
  # tests start their own instances.
  local policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  as_root apt-get install -y -q --no-install-recommends "$@"
  if [ "$policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

pip_install() {
  python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
  command -v pyenv >/dev/null && pyenv rehash || true
}

# ---------------------------------------------------------------- what is there
debs=()
have() { command -v "$1" >/dev/null 2>&1; }
have openssl || debs+=(openssl)
have gcc || debs+=(gcc)
have g++ || debs+=(g++)
have make || debs+=(make)
have pkg-config || debs+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || debs+=(libssl-dev)
{ [ -x /usr/sbin/apache2 ] && [ -f /usr/lib/apache2/modules/mod_ssl.so ]; } || debs+=(apache2)
have script || debs+=(bsdutils)
[ -x /usr/sbin/nginx ] || have nginx || debs+=(nginx)
have curl || debs+=(curl)
have python3 || debs+=(python3)
python3 -m pip --version >/dev/null 2>&1 || debs+=(python3-pip)
{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && have psql && have pg_ctlcluster; } || debs+=(postgresql postgresql-client)
[ -x /usr/bin/chromium ] || debs+=(chromium)
{ have node && have npm; } || debs+=(nodejs npm)
have systemd-analyze || debs+=(systemd)
have dpkg-deb || debs+=(dpkg)
{ have useradd && have runuser; } || debs+=(passwd util-linux)
for d in "${debs[@]}"; do need "Debian package $d"; done
python3 -c 'import zeep' 2>/dev/null || need "Python zeep"
python3 -c 'import aiosmtpd' 2>/dev/null || need "Python aiosmtpd"
have schemathesis || need "Python schemathesis"
[ -f tests/console/node_modules/playwright-core/package.json ] || need "npm playwright-core (tests/console)"
have cargo-deb || need "cargo-deb"
have cargo-fuzz || need "cargo-fuzz"
pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || need "a PostgreSQL server on 127.0.0.1:5432"

if [ "${#missing[@]}" -eq 0 ]; then
  say "every tool the tests need is here"
elif [ "$no_install" = 1 ]; then
  printf 'missing for the test suite:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  printf 'run scripts/test.sh (as root, or with sudo) to install them\n' >&2
  exit 1
else
  say "installing: ${missing[*]}"
  apt_install "${debs[@]}"
  python3 -c 'import zeep' 2>/dev/null || pip_install zeep || apt_install python3-zeep
  python3 -c 'import aiosmtpd' 2>/dev/null || pip_install aiosmtpd || apt_install python3-aiosmtpd
  if ! have schemathesis; then
    pip_install schemathesis
    have schemathesis || export PATH="$(python3 -m site --user-base)/bin:$PATH"
  fi
  if [ ! -f tests/console/node_modules/playwright-core/package.json ]; then
    (cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  have cargo-deb || cargo install cargo-deb --locked
  have cargo-fuzz || cargo install cargo-fuzz --locked
fi

# ---------------------------------------------------------------- PostgreSQL for the tests
if [ "$no_install" = 0 ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "PostgreSQL (127.0.0.1:5432, user postgres, trust, database test)"
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  [ -d "/etc/postgresql/$pg_version/main" ] || as_root pg_createcluster "$pg_version" main
  pg_hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
  if ! as_root grep -Eq '^host[[:space:]]+all[[:space:]]+(all|postgres)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$pg_hba"; then
    # first matching line wins: the trust rule for user postgres on loopback goes first
    as_root sh -c "{ echo 'host all postgres 127.0.0.1/32 trust'; cat '$pg_hba'; } > '$pg_hba.new' && cat '$pg_hba.new' > '$pg_hba' && rm -f '$pg_hba.new'"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
fi

# ---------------------------------------------------------------- versions, then the tests
{
  nginx_bin=/usr/sbin/nginx; [ -x "$nginx_bin" ] || nginx_bin=$(command -v nginx)
  "$nginx_bin" -v 2>&1
  curl --version | sed -n 1p
  python3 -c 'import zeep; print("zeep", zeep.__version__)'
  python3 -c 'import aiosmtpd; print("aiosmtpd", aiosmtpd.__version__)'
  schemathesis --version
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$node_major" -ge 20 ] || { echo "Node.js 20 or newer is required for playwright-core (found $(node --version))" >&2; exit 1; }
  echo "node $(node --version)"
  /usr/bin/chromium --version 2>/dev/null | sed -n 1p
  psql -h 127.0.0.1 -U postgres -d test -Atc 'SELECT version()'
  systemd-analyze --version | sed -n 1p
  cargo deb --version
  cargo fuzz --version
} >&2
[ "$check_only" = 1 ] && exit 0
[ "$install_only" = 1 ] && exit 0

say "cargo test $*"
exec cargo test "$@"
