#!/usr/bin/env bash
# End-to-end test: the real @oceanprotocol/uploader 0.0.3 client against a
# Sluice node paid on a local ganache chain. Needs node >= 20, npm and go;
# the network is used only by npm, to install the packages of the lockfile.
# Usage: e2e/run.sh   (from anywhere; extra env: see the top of test.mjs)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

echo "== npm install" >&2
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

echo "== go build" >&2
mkdir -p "$here/.bin"
(cd "$root" && go build -o "$here/.bin/sluice" ./cmd/sluice)

echo "== test" >&2
exec node "$here/test.mjs"
