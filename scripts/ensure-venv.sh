#!/usr/bin/env bash
# Create .venv with Python 3.11 or newer and install vpnctl into it with its dev and
# simulator extras (the test tools; moto for the simulated AWS).
# The interpreter is $PYTHON if set, else the newest python3.X (X >= 11) on PATH that runs.
# An existing .venv is kept unless its Python is older than 3.11 (or no longer runs).
# The install is skipped when pyproject.toml is unchanged since the last one: the stamp
# file holds a hash of pyproject.toml and of the interpreter, so a touched but unchanged
# file (a git checkout) costs nothing, and a changed one reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
STAMP="$VENV/.vpnctl-installed"

# Whether "$1" runs and is Python 3.11 or newer. Being on PATH is not enough: pyenv has
# shims for versions that are not installed.
supported() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

newest_python() {
    local candidate
    for candidate in $(compgen -c python3. | grep -E '^python3\.[0-9]+$' | sort -u -t. -k2,2nr); do
        if supported "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    if supported python3; then
        echo python3
        return 0
    fi
    return 1
}

if [ -x "$VENV/bin/python" ] && ! supported "$VENV/bin/python"; then
    echo "ensure-venv: $VENV is not Python 3.11 or newer; recreating it" >&2
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    if [ -n "${PYTHON:-}" ]; then
        if ! supported "$PYTHON"; then
            echo "ensure-venv: $PYTHON is not a working Python 3.11 or newer" >&2
            exit 1
        fi
    elif ! PYTHON="$(newest_python)"; then
        echo "ensure-venv: no Python 3.11 or newer on PATH (set PYTHON=/path/to/python3.X)" >&2
        exit 1
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
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev,simulator]'
echo "$want" > "$STAMP"
