#!/usr/bin/env bash
# End-to-end test: the real @oceanprotocol/uploader 0.0.3 client against a
# Sluice node paid on a local ganache chain. Needs node >= 20, npm and go;
# the network is used only by npm, to install the packages of the lockfile.
# Then e2e/farmer.mjs, an independent farmer written from the specs, checks
# the proof-of-storage protocol against the same binary (node only, no npm).
# Usage: e2e/run.sh [script.mjs ...]   (from anywhere; default: test.mjs
# farmer.mjs, each run even if an earlier one failed; extra env: see the top
# of each script)
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

status=0
scripts=("$@")
[[ ${#scripts[@]} -gt 0 ]] || scripts=(test.mjs farmer.mjs)
for script in "${scripts[@]}"; do
  echo "== $script" >&2
  node "$here/$script" || status=1
done
exit "$status"
