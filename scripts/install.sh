#!/usr/bin/env bash
# Installs the optimized `cairn` binary, the one to run a provider or a validator with (a dev
# build validates and compiles job modules and executes blocks many times slower, and says so
# when it starts as either). From the repository's root, with the Rust toolchain:
#
#     scripts/install.sh                      # into ~/.cargo/bin (or $CARGO_INSTALL_ROOT/bin)
#     scripts/install.sh --root /opt/cairn    # into /opt/cairn/bin
#
# It installs what building needs first (scripts/setup.sh --build-only: libclang and a C++
# compiler, for rocksdb), then runs
#
#     cargo install --locked --path cli
#
# a release build of the package `cairn` (cli/) with exactly the versions of Cargo.lock; any
# argument is passed on to `cargo install`. Running it again is safe: it rebuilds what changed
# since the last run and replaces the binary, which is how an operator upgrades (stop the node
# first, see docs/OPERATING.md, "Upgrading"). Build output stays in $CARGO_TARGET_DIR (default
# $HOME/.cache/cairn-target), so later runs take seconds to minutes; the first compiles rocksdb,
# wasmer and libp2p with optimizations, which takes a while (about 11 minutes on two cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not on PATH: install the Rust toolchain first (https://rustup.rs), then run $0 again" >&2
    exit 1
fi

scripts/setup.sh --build-only

# Where the binary goes: the `--root` given, else cargo's own default (CARGO_INSTALL_ROOT, else
# CARGO_HOME, else ~/.cargo), passed explicitly so that this script knows it.
root=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --root) root="${args[i + 1]:-}" ;;
        --root=*) root="${args[i]#--root=}" ;;
    esac
done
if [[ -z $root ]]; then
    root="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
    args+=(--root "$root")
fi

echo "Building the optimized cairn (cargo install --locked --path cli ${args[*]})…"
cargo install --locked --path cli "${args[@]}"

bin="$root/bin/cairn"
if [[ ! -x $bin ]]; then
    echo "cargo install finished, but $bin is not there" >&2
    exit 1
fi
echo "Installed $("$bin" --version) at $bin"
case ":$PATH:" in
    *":$root/bin:"*) ;;
    *) echo "$root/bin is not on PATH: add it, or copy the binary (e.g. sudo install -m 0755 $bin /usr/local/bin/cairn)" ;;
esac
