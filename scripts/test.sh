#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, and the
# end-to-end suite through the real binary (as root and as uid 65534).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads=2
