#!/usr/bin/env bash
# The README's test command (`npm test`): installs what the tests need, type-checks, runs jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
npx tsc -p tsconfig.json --noEmit
if [ $# -gt 0 ]; then
  npx jest --ci "$@"
else
  # Everything but the OHIF viewer tests, two workers; then the OHIF files one at a time: each drives
  # Chromium with software WebGL (SwiftShader) on this 2-core machine, and two of them side by side
  # (or beside the model tests) slowed the viewer past its load timeouts.
  npx jest --ci --testPathIgnorePatterns '/test/ohif/'
  npx jest --ci --runInBand test/ohif
fi
