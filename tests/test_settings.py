"""Settings as an operator meets them: each case starts Django in a clean process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
GOOD_KEY = "k9V2m-Qx7rT1pL0wZ4sY8nB3cF6hJ5dG2aE9uR7iO1yW3tMqZ8"

SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "mode": settings.MODE,
    "debug": settings.DEBUG,
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "host": db.get("HOST", ""),
    "options": db.get("OPTIONS", {}),
    "secure_cookies": settings.SESSION_COOKIE_SECURE,
}))
"""


def start_django(tmp_path: Path, code: str = SHOW_SETTINGS, **env: str):
    """Run `code` in a new interpreter with nothing in its environment but `env`."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "vpnctl.settings",
        "VPNCTL_SQLITE_PATH": str(tmp_path / "settings-test.sqlite3"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def started(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = start_django(tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr
    assert "VPNCTL_MODE=demo" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["short-key", "insecure-demo-and-test-key-never-use-in-production"],
    ids=["short", "demo-key"],
)
def test_production_with_a_weak_secret_key_refuses_to_start(tmp_path, key):
    result = start_django(tmp_path, SECRET_KEY=key)

    assert result.returncode != 0
    assert "SECRET_KEY is too short or a known demo value" in result.stderr


def test_production_with_a_good_key_starts_with_debug_off(tmp_path):
    shown = started(start_django(tmp_path, SECRET_KEY=GOOD_KEY))

    assert shown["mode"] == "production"
    assert shown["debug"] is False
    assert shown["secure_cookies"] is True


def test_debug_is_only_on_when_asked_for(tmp_path):
    assert started(start_django(tmp_path, VPNCTL_MODE="demo"))["debug"] is False
    assert started(start_django(tmp_path, VPNCTL_MODE="demo", DEBUG="1"))["debug"] is True


def test_unknown_mode_refuses_to_start(tmp_path):
    result = start_django(tmp_path, VPNCTL_MODE="staging", SECRET_KEY=GOOD_KEY)

    assert result.returncode != 0
    assert "VPNCTL_MODE must be production, demo or test" in result.stderr


def test_database_url_selects_postgresql(tmp_path):
    shown = started(
        start_django(
            tmp_path,
            SECRET_KEY=GOOD_KEY,
            DATABASE_URL="postgres://vpnctl:pw@db.internal:5432/vpnctl_prod",
        )
    )

    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["name"] == "vpnctl_prod"
    assert shown["host"] == "db.internal"
    # No JIT compilation of vpnctl's short queries (bench/pages.py: the dashboard).
    assert shown["options"]["options"] == "-c jit=off"


def test_postgresql_jit_off_keeps_options_from_the_url(tmp_path):
    shown = started(
        start_django(
            tmp_path,
            SECRET_KEY=GOOD_KEY,
            DATABASE_URL="postgres://vpnctl:pw@db.internal:5432/vpnctl_prod?sslmode=require",
        )
    )
    assert shown["options"]["sslmode"] == "require"
    assert shown["options"]["options"] == "-c jit=off"


def test_postgresql_has_jit_off_in_its_sessions(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: DATABASE_URL selects it (CI runs the suite on both)")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_sqlite_is_the_default_with_immediate_transactions(tmp_path):
    shown = started(start_django(tmp_path, SECRET_KEY=GOOD_KEY))

    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"] == str(tmp_path / "settings-test.sqlite3")
    assert shown["options"]["transaction_mode"] == "IMMEDIATE"


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path):
    """What IMMEDIATE is for: a transaction that has only read already holds the write lock,
    so a second writer waits at its BEGIN instead of failing later ("database is locked")."""
    code = """
import sqlite3, django
django.setup()
from django.db import connection, transaction
from django.conf import settings
with transaction.atomic():
    connection.cursor().execute("SELECT 1")
    other = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        print("second writer got in")
    except sqlite3.OperationalError as exc:
        print("second writer:", exc)
"""
    result = start_django(tmp_path, code, SECRET_KEY=GOOD_KEY)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "second writer: database is locked"


def test_health_event_codes_are_read_and_a_bad_meaning_refused(tmp_path):
    show = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.HEALTH_EVENT_CODES))"
    )
    named = start_django(
        tmp_path,
        show,
        VPNCTL_MODE="demo",
        VPNCTL_HEALTH_EVENT_CODES="AWS_VPN_X=maintenance_completed",
    )
    assert started(named) == {"AWS_VPN_X": "maintenance_completed"}
    demo = start_django(tmp_path, show, VPNCTL_MODE="demo")
    assert started(demo) == {
        "AWS_VPN_TUNNEL_ENDPOINT_MAINTENANCE_SCHEDULED": "maintenance_scheduled"
    }
    bad = start_django(
        tmp_path, show, VPNCTL_MODE="demo", VPNCTL_HEALTH_EVENT_CODES="AWS_VPN_X=soon"
    )
    assert bad.returncode != 0
    assert "VPNCTL_HEALTH_EVENT_CODES: 'AWS_VPN_X=soon' is not CODE=meaning" in bad.stderr
