#!/usr/bin/env bash
# Builds the example jobs (examples/jobs) to WebAssembly and copies each module to
# examples/jobs/wasm/<job>.wasm, where the vm's tests and the demo pick them up.
#
#   scripts/build-jobs.sh
#
# Needs rustup (to add the wasm32-unknown-unknown target if missing). Build output goes
# to ${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}/jobs.
set -euo pipefail

readonly TARGET=wasm32-unknown-unknown
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs_dir="$repo_root/examples/jobs"
out_dir="$jobs_dir/wasm"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}/jobs"

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "Adding the $TARGET target with rustup…"
    rustup target add "$TARGET"
fi

echo "Building the example jobs for $TARGET (release)…"
cargo build --manifest-path "$jobs_dir/Cargo.toml" --workspace --release \
    --target "$TARGET" --target-dir "$target_dir"

# One module per job: each job is a directory named like its package; cargo names the
# module after the library (dashes become underscores).
mkdir -p "$out_dir"
echo "Built:"
for manifest in "$jobs_dir"/*/Cargo.toml; do
    job="$(basename "$(dirname "$manifest")")"
    module="$target_dir/$TARGET/release/${job//-/_}.wasm"
    if [[ ! -f "$module" ]]; then
        echo "error: $module is missing after the build" >&2
        exit 1
    fi
    cp "$module" "$out_dir/$job.wasm"
    printf '  %-48s %8d bytes  sha256 %s\n' "examples/jobs/wasm/$job.wasm" \
        "$(wc -c <"$out_dir/$job.wasm")" "$(sha256sum "$out_dir/$job.wasm" | cut -d' ' -f1)"
done
