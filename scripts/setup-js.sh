#!/usr/bin/env bash
# Installs what the TypeScript client (clients/ts), the explorer (clients/explorer) and their
# end-to-end tests need, and nothing twice:
#   - Node 22 (≥ 22.18, which runs .ts files directly), from the npm registry's `node` package,
#     into ~/.cache/cairn-node22 (CAIRN_NODE22_DIR to change): node_modules/node/bin/node;
#   - clients/ts/node_modules and clients/explorer/node_modules, each with `npm ci` from its
#     package-lock.json (again only when that lockfile changed);
#   - Debian's chromium (/usr/bin/chromium), which the explorer's browser tests drive headless
#     (puppeteer-core downloads no browser).
# The Rust tests `js_peer`, `ts_client` and `explorer` (cli/tests/it/) run that node binary (or
# CAIRN_NODE).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CAIRN_NODE22_DIR:-$HOME/.cache/cairn-node22}"
node="$dir/node_modules/node/bin/node"

# Whether `$node` is a Node 22 of at least 22.18.
node_ok() {
    local v
    v="$("$node" --version 2>/dev/null)" || return 1
    [[ $v =~ ^v22\.([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 18))
}

if ! command -v npm >/dev/null 2>&1; then
    echo "Installing npm with apt-get…"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq npm
fi

if ! node_ok; then
    echo "Installing Node 22 into $dir…"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error 'node@>=22.18 <23'
    node_ok || { echo "setup-js: $node is not Node ≥ 22.18 after installing it" >&2; exit 1; }
fi

# npm itself runs on the node first on PATH: Node 22 from here on.
export PATH="$(dirname "$node"):$PATH"

# `npm ci` in a package folder, unless its node_modules was installed from this very lockfile.
npm_ci() {
    local pkg="$root/$1"
    local stamp="$pkg/node_modules/.cairn-lock-sha256"
    local want
    want="$(sha256sum "$pkg/package-lock.json" | cut -d' ' -f1)"
    if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
        echo "Installing $1/node_modules (npm ci)…"
        (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    fi
}
npm_ci clients/ts
npm_ci clients/explorer

chromium="${CAIRN_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x $chromium ]]; then
    echo "Installing chromium with apt-get…"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium
    [[ -x $chromium ]] || { echo "setup-js: no $chromium after installing Debian's chromium" >&2; exit 1; }
fi
echo "Node $("$node" --version) at $node; clients/ts and clients/explorer node_modules ready; $("$chromium" --version 2>/dev/null || echo chromium) at $chromium"
