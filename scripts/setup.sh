#!/usr/bin/env bash
# Installs what building Cairn needs on a fresh Debian machine, and nothing twice:
#   - libclang (rocksdb's bindings are generated with bindgen at build time),
#   - a C++ compiler (rocksdb itself),
#   - the wasm32-unknown-unknown target (the example jobs),
#   - Prometheus (the metrics test scrapes real nodes with it).
set -euo pipefail

need_apt=()
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
    need_apt+=(libclang-dev)
fi
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# The metrics test scrapes a testnet with a real Prometheus server (cli/tests/it/metrics.rs).
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)

if ((${#need_apt[@]})); then
    echo "Installing ${need_apt[*]} with apt-get…"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "Adding the wasm32-unknown-unknown target…"
    rustup target add wasm32-unknown-unknown
fi
