#!/usr/bin/env bash
# The local testnet demo, from a fresh machine: installs what is missing, builds the example
# jobs and the `cairn` binary, then starts a local testnet (4 validators, 2 providers) as
# separate processes on loopback, runs every example job, prints outputs and latencies,
# verifies every proof, and shuts everything down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"

scripts/setup.sh
scripts/build-jobs.sh
cargo build --bin cairn
"$CARGO_TARGET_DIR/debug/cairn" testnet demo --dir .testnet --jobs examples/jobs/wasm "$@"
