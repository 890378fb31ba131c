#!/bin/sh
# Builds this crate in its dev profile (the guide's advice for dependencies, this crate at
# Cargo's defaults) and in release, then runs every case in both builds side by side.
# Usage: ./run.sh [ROUNDS]   (default 3)
set -eu
cd "$(dirname "$0")"
cargo build --quiet
cargo build --quiet --release
target="${CARGO_TARGET_DIR:-target}"
bin=tiered-debug-build-bench
exec "$target/release/$bin" compare "$target/debug/$bin" "$target/release/$bin" "${1:-3}"
