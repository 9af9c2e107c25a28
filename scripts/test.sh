#!/usr/bin/env bash
# Every test of the workspace, from a fresh machine: installs what is missing, builds the
# example jobs (the vm's tests run them, and fail without them) and runs their own tests, then
# runs the unit, integration and end-to-end
# tests (end-to-end tests start real node processes on 127.0.0.1 with free ports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"

scripts/setup.sh
# Node 22 and clients/ts/node_modules: the TypeScript client's tests and the end-to-end test of
# a peer written from docs/ (cli/tests/it/js_peer.rs) need them.
scripts/setup-js.sh
scripts/build-jobs.sh
# The example jobs' own tests, natively (they are a workspace of their own).
cargo test --manifest-path examples/jobs/Cargo.toml --workspace --target-dir "$CARGO_TARGET_DIR/jobs"
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
# The TypeScript client (clients/ts), written from docs/ alone: typecheck, then its unit tests
# (every fixture of docs/fixtures and the worked examples of the docs).
(cd clients/ts && PATH="${CAIRN_NODE22_DIR:-$HOME/.cache/cairn-node22}/node_modules/node/bin:$PATH" npm test)
# The explorer (clients/explorer): typecheck, its unit tests, and that node/explorer/ is what
# its sources build, byte for byte (the browser test is the Rust test `explorer`).
(cd clients/explorer && PATH="${CAIRN_NODE22_DIR:-$HOME/.cache/cairn-node22}/node_modules/node/bin:$PATH" npm test)
