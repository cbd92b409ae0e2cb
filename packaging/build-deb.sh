#!/usr/bin/env bash
# Build the Debian package: a release build of certgate, its shell completions and man pages
# generated from the CLI definition (`certgate generate`, hidden), then cargo-deb (Cargo.toml,
# [package.metadata.deb]). Prints the path of the .deb on the last line.
#
#   packaging/build-deb.sh            # needs cargo-deb: cargo install cargo-deb --locked
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --bin certgate
assets="$target/release/deb-assets"
rm -rf "$assets"
"$target/release/certgate" generate completions "$assets/completions" >/dev/null
"$target/release/certgate" generate man "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1
cargo deb --no-build --locked 2>&1 | tail -n 1
