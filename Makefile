# vpnctl developer tasks. Needs Python 3.11 or newer: scripts/ensure-venv.sh takes the newest
# python3.X on PATH (PYTHON=... to choose the binary).
#   make demo   the whole product on this machine, simulated AWS included; Ctrl-C stops it
#   make test   the test suite on SQLite (browser tests use Debian's /usr/bin/chromium)
#   make lint   ruff and the missing-migrations check
#   make ci     what CI runs (.ci/run): lint, then the suite on SQLite and on PostgreSQL

VENV := .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: help venv demo test lint ci clean

help:
	@sed -n 's/^#   //p' Makefile

venv:
	@scripts/ensure-venv.sh

demo: export VPNCTL_MODE := demo
demo: venv
	$(PY) manage.py run_demo $(DEMO_ARGS)

test: venv
	@scripts/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	VPNCTL_MODE=test $(PY) manage.py makemigrations --check --dry-run

ci:
	bash .ci/run

clean:
	rm -rf var/demo staticfiles .pytest_cache .ruff_cache
