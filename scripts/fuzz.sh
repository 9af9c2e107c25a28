#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of a documented format (the targets in fuzz/, run
# by cargo-fuzz and libFuzzer on a nightly toolchain, installed here if missing):
#
#   scripts/fuzz.sh [seconds-per-target] [target...]    default: 15 s each, every target
#
# Each target's corpus grows in $CARGO_TARGET_DIR/fuzz/corpus/<target> (kept between runs, out
# of git), seeded from docs/fixtures (and docs/fixtures/linked) and read with the committed
# seeds of fuzz/seeds/<target>. The targets run one after the other, one process each. A
# crash (a panic, a non-canonical encoding accepted, an allocation over the memory limit, a
# timeout) is written to fuzz/artifacts/<target>/ and fails the script once every target
# has run; reproduce it with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`,
# then make it a regression test of the decoder's crate. Logs: $CARGO_TARGET_DIR/fuzz/logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
seconds="${1:-15}"
shift || true
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
corpora="$fuzz_target_dir/corpus"
logs="$fuzz_target_dir/logs"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "Installing the nightly toolchain (cargo-fuzz needs it)…"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "Installing cargo-fuzz…"
    cargo install cargo-fuzz --locked
fi

fuzz=(cargo +nightly fuzz)
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

# Hex text (whitespace ignored) to bytes.
unhex() {
    local hex
    hex=$(tr -d '[:space:]' <<<"$1")
    printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")"
}

# The fixtures, as each target reads them.
seed_corpora() {
    local f=docs/fixtures l=docs/fixtures/linked
    local offer block commit
    offer=$(<"$l/offer.borsh.hex")
    block=$(<"$l/block.borsh.hex")
    commit=$(<"$l/commit.borsh.hex")
    put() { # target name; the bytes on stdin
        mkdir -p "$corpora/$1"
        cat >"$corpora/$1/fixture-$2"
    }
    unhex "$(<"$f/job-offer.borsh.hex")" | put offer job-offer
    unhex "$offer" | put offer linked-offer
    unhex "00$offer" | put transaction linked-offer
    unhex "$block" | put block linked-block
    unhex "$commit" | put commit linked-commit
    unhex "01$block$commit" | put block_msg linked
    unhex "01$block" | put proposed_block linked
    unhex "01000000000000000001000000""00$offer" | put tx_batch linked-offer
    unhex "010001000000$block$commit" | put sync_response linked-blocks
    unhex "010301$block" | put sync_response linked-proposed
    unhex "010401$block$commit" | put sync_response linked-snapshot
    unhex "$(<"$f/receipt-proof.borsh.hex")" | put receipt_proof receipt-proof
    unhex "$(<"$l/receipt-proof.borsh.hex")" | put receipt_proof linked-receipt-proof
    put receipt_proof_json receipt-proof <"$f/receipt-proof.json"
    put receipt_proof_json linked-receipt-proof <"$l/receipt-proof.json"
    put state_proof_json linked-state-proof <"$l/state-proof.json"
    put genesis_json genesis <"$f/genesis.json"
    put genesis_json linked-genesis <"$l/genesis.json"
    { printf '\x00'; cat "$f/job-offer.json"; } | put json_records job-offer
    { printf '\x04'; cat "$l/block.json"; } | put json_records linked-block
    { printf '\x05'; cat "$l/commit.json"; } | put json_records linked-commit
    { printf '\x01['; cat "$l/offer.json"; printf ']'; } | put rpc_params job_submit-linked-offer
}

echo "Building the fuzz targets…"
"${fuzz[@]}" build --target-dir "$fuzz_target_dir"
seed_corpora
mkdir -p "$logs"

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$corpora/$t"
    dirs=("$corpora/$t")
    [[ -d fuzz/seeds/$t ]] && dirs+=("fuzz/seeds/$t")
    echo "== $t: ${seconds} s"
    if "${fuzz[@]}" run --target-dir "$fuzz_target_dir" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        :
    else
        failed+=("$t")
        tail -n 40 "$logs/$t.log"
    fi
    # libFuzzer's last status line: coverage, features, corpus, executions per second.
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -n 1 || true)
    summary+=("$(printf '%-20s %s' "$t" "${done_line:-(no final stats)}")")
done

echo
echo "Fuzzing summary (${seconds} s per target):"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "Crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in $logs)" >&2
    exit 1
fi
