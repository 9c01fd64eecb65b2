#!/usr/bin/env bash
# Storage side by side: Weft's storage service and Azurite (the Azure storage
# emulator), driven by the same official Go SDK workloads. Azurite is installed
# from npm into a cache folder when npm exists; without it, Weft alone.
# Arguments go to the harness, e.g. -only table.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${XDG_CACHE_HOME:-$HOME/.cache}/weft-tools/azurite"
azurite=""
if command -v npm >/dev/null 2>&1; then
  if [ ! -x "$tools/node_modules/.bin/azurite" ]; then
    mkdir -p "$tools"
    (cd "$tools" && npm install --no-audit --no-fund azurite@3 >/dev/null 2>&1) || echo "azurite: npm install failed; measuring Weft alone" >&2
  fi
  [ -x "$tools/node_modules/.bin/azurite" ] && azurite="$tools/node_modules/.bin/azurite"
fi
go run ./internal/storage/storagebench -duration "${DURATION:-5s}" ${azurite:+-azurite "$azurite"} "$@"
