#!/usr/bin/env bash
# The README's test command (`npm test`): installs what the tests need, type-checks, runs jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
npx tsc -p tsconfig.json --noEmit
npx jest --ci "$@"
