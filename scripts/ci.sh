#!/usr/bin/env bash
# npm run ci: install the Debian packages the tests need (when missing, as root), then
# npm ci -> typecheck -> lint -> build -> every test. A missing dependency is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm run build
npm test
