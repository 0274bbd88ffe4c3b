#!/usr/bin/env bash
# Create .venv with Python 3.11 and install vpnctl with its dev extras into it.
# The install is skipped when pyproject.toml is unchanged since the last one: the stamp
# file holds a hash of pyproject.toml and of the interpreter, so a touched but unchanged
# file (a git checkout) costs nothing, and a changed one reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"
STAMP="$VENV/.vpnctl-installed"

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "ensure-venv: $VENV is not Python 3.11; recreating it" >&2
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            PYTHON=python3
        else
            echo "ensure-venv: $PYTHON not found; vpnctl needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
            exit 1
        fi
    fi
    echo "ensure-venv: creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi

want="$( (cat pyproject.toml; "$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
echo "ensure-venv: installing vpnctl and its dependencies into $VENV (a minute or two the first time)"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "$want" > "$STAMP"
