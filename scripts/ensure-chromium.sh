#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (/usr/bin/chromium), never a downloaded build.
# Install it, with CJK fonts for the Japanese pages, when it is missing and we are root.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed' \
        || missing+=(fonts-noto-cjk)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -x /usr/bin/chromium ] && exit 0
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "ensure-chromium: /usr/bin/chromium is missing; the browser tests need it." >&2
    echo "  Install it with: sudo apt-get install chromium fonts-noto-cjk" >&2
    exit 1
fi
echo "ensure-chromium: warning: ${missing[*]} missing; Japanese text may not render" >&2
