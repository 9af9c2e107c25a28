#!/usr/bin/env bash
# Installs what building Cairn needs on a fresh Debian machine, and nothing twice:
#   - libclang (rocksdb's bindings are generated with bindgen at build time),
#   - a C++ compiler and make (rocksdb itself, and jemalloc, the `cairn` binary's allocator),
#   - the wasm32-unknown-unknown target (the example jobs),
#   - Prometheus (the metrics test scrapes real nodes with it; its promtool checks ops/).
# `--build-only`: only what building the `cairn` binary needs (the first two), as
# scripts/install.sh asks on an operator's machine.
set -euo pipefail

build_only=false
case "${1:-}" in
    "") ;;
    --build-only) build_only=true ;;
    *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

need_apt=()
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
    need_apt+=(libclang-dev)
fi
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# The metrics test scrapes a testnet with a real Prometheus server (cli/tests/it/metrics.rs),
# and node/tests/ops.rs checks ops/prometheus/ with its promtool.
if ! $build_only; then
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
fi

if ((${#need_apt[@]})); then
    echo "Installing ${need_apt[*]} with apt-get…"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

if ! $build_only && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "Adding the wasm32-unknown-unknown target…"
    rustup target add wasm32-unknown-unknown
fi
