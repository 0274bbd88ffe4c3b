#!/usr/bin/env bash
# The single sign-on tests run a real OpenID provider, panva's oidc-provider, under Debian's
# Node.js (tests/oidc_provider/). Install its pinned packages (package-lock.json) when they
# are missing. Needs node and npm, and the npm registry the first time.
set -euo pipefail
cd "$(dirname "$0")/../tests/oidc_provider"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ensure-oidc-provider: node and npm are missing; the single sign-on tests need them." >&2
    echo "  Install them with: sudo apt-get install nodejs npm" >&2
    exit 1
fi
# The lock file's exact version, installed: nothing to do.
wanted=$(node -p "require('./package-lock.json').packages['node_modules/oidc-provider'].version")
if [ -f node_modules/oidc-provider/package.json ] \
    && [ "$(node -p "require('./node_modules/oidc-provider/package.json').version")" = "$wanted" ]; then
    exit 0
fi
echo "ensure-oidc-provider: installing oidc-provider $wanted (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
