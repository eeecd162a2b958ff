#!/usr/bin/env bash
# Install the realm-web interop suite's Node dependencies from the committed lockfile.
#
# Idempotent: `npm ci` always rebuilds tests/interop/node_modules from
# tests/interop/package-lock.json, so running this twice gives the same tree; when the
# tree already matches the lockfile we skip the reinstall to keep CI fast.
# Without node the interop tests skip themselves, so a missing node is not an error here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/interop"

if ! command -v node >/dev/null 2>&1; then
    echo "install-interop: node not found; the realm-web interop tests will be skipped" >&2
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-interop: node is installed but npm is not; cannot install tests/interop" >&2
    exit 1
fi

# npm ci writes node_modules/.package-lock.json, a copy of the lockfile's package
# section; if it is there and realm-web is the pinned version, the tree is current.
stamp="$dir/node_modules/.package-lock.json"
if [[ -f "$stamp" && "$stamp" -nt "$dir/package-lock.json" && -f "$dir/node_modules/realm-web/package.json" ]] \
    && node -e 'process.exit(require(process.argv[1]).version === "2.0.1" ? 0 : 1)' \
        "$dir/node_modules/realm-web/package.json"; then
    echo "install-interop: tests/interop/node_modules is up to date"
    exit 0
fi

npm ci --prefix "$dir" --no-audit --no-fund
echo "install-interop: installed realm-web $(node -p 'require(process.argv[1]).version' "$dir/node_modules/realm-web/package.json")"
