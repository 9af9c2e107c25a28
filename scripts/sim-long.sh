#!/usr/bin/env bash
# A long run of the consensus simulation: every scenario under many seeds, in release mode.
#
#   scripts/sim-long.sh [SEEDS]     SEEDS per scenario (default 1000; 16 scenarios)
#
# The base seed is drawn at random and printed; CAIRN_SIM_BASE=<base> runs the same seeds
# again. A failure prints the seed and the command that replays it. The full output is kept
# in target/sim-long.log (or under $CARGO_TARGET_DIR).
set -euo pipefail

cd "$(dirname "$0")/.."
seeds="${1:-1000}"
log="${CARGO_TARGET_DIR:-target}/sim-long.log"
mkdir -p "$(dirname "$log")"

cargo test --release -p cairn-consensus --test sim --no-run
start=$(date +%s)
status=0
CAIRN_SIM_SEEDS="$seeds" cargo test --release -p cairn-consensus --test sim -- --nocapture >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))

grep -E "base seed|seeds passed|panicked|replay|test result" "$log" | sed 's/ messages sent.*//' || true
runs=$(grep -E "seeds passed" "$log" | awk '{ s += $2 } END { print s + 0 }')
echo "sim-long: ${runs} runs passed (${seeds} seeds per scenario) in ${elapsed} s; log in ${log}"
exit "$status"
