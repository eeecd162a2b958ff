#!/usr/bin/env bash
# Install the Admin API npm suite's Node dependencies (atlas-app-services-admin-api 1.5.6)
# from the committed lockfile tests/admin_interop/package-lock.json.
#
# Idempotent, like install-interop.sh: when node_modules already matches the lockfile
# and holds the pinned version, nothing is reinstalled. Without node the suite skips
# itself, so a missing node is not an error here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/admin_interop"
version="1.5.6"

if ! command -v node >/dev/null 2>&1; then
    echo "install-admin-interop: node not found; the Admin API npm suite will be skipped" >&2
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-admin-interop: node is installed but npm is not; cannot install tests/admin_interop" >&2
    exit 1
fi

stamp="$dir/node_modules/.package-lock.json"
pkg="$dir/node_modules/atlas-app-services-admin-api/package.json"
if [[ -f "$stamp" && "$stamp" -nt "$dir/package-lock.json" && -f "$pkg" ]] \
    && node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' "$pkg" "$version"; then
    echo "install-admin-interop: tests/admin_interop/node_modules is up to date"
    exit 0
fi

npm ci --prefix "$dir" --no-audit --no-fund
echo "install-admin-interop: installed atlas-app-services-admin-api $(node -p 'require(process.argv[1]).version' "$pkg")"
