"""What a browser and an operator see of vpnctl's protections: the response headers, the
production settings (`check --deploy`), and templates the Content-Security-Policy lets work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.test_settings import start_django

ROOT = Path(__file__).resolve().parent.parent
# Django's check wants 50 characters or more (security.W009).
REAL_KEY = "q7Lm2-Vx9rT4pK0wZ8sY3nB6cF1hJ5dG2aE9uR7iO1yW3tMzXe4Np"
PRODUCTION = {"SECRET_KEY": REAL_KEY, "ALLOWED_HOSTS": "vpnctl.example.com"}


# ---------------------------------------------------------------------------------------
# Headers on a real response
# ---------------------------------------------------------------------------------------


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_every_page_sends_the_browser_protections(client, requester):
    client.force_login(requester)
    response = client.get(reverse("maintenance:home"))
    assert response.status_code == 200

    csp = directives(response["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    # No inline code and no style attributes: only vpnctl's own files.
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]

    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    # Test mode is plain http: no HSTS (browsers ignore it over http anyway).
    assert "Strict-Transport-Security" not in response


def test_the_login_page_and_an_error_page_send_them_too(client, db):
    for response in (client.get(reverse("login")), client.get("/no-such-page/")):
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert "Permissions-Policy" in response
        assert response["Referrer-Policy"] == "same-origin"


def test_a_nonce_is_in_the_policy_only_for_a_page_that_uses_one(rf):
    """A template that needs an inline block can use request.csp_nonce; none does today."""
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse

    def page(request):
        return HttpResponse(f"<script nonce='{request.csp_nonce}'></script>")

    request = rf.get("/")
    response = CSPMiddleware(page)(request)
    nonce = request.csp_nonce
    assert f"'nonce-{nonce}'" in directives(response["Content-Security-Policy"])["script-src"]


@override_settings(
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=False,
    SECURE_SSL_REDIRECT=True,
)
def test_https_gets_hsts_and_http_is_redirected_but_not_the_health_check(client, requester):
    client.force_login(requester)
    response = client.get(reverse("maintenance:home"), secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"

    response = client.get(reverse("maintenance:home"))
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/"

    # The container HEALTHCHECK and load balancers ask over plain http.
    assert client.get("/healthz/").status_code == 200


@override_settings(
    SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")
)
def test_behind_the_tls_proxy_only_what_reached_it_over_http_is_redirected(client, requester):
    client.force_login(requester)
    home = reverse("maintenance:home")
    assert client.get(home, HTTP_X_FORWARDED_PROTO="https").status_code == 200
    assert client.get(home, HTTP_X_FORWARDED_PROTO="http").status_code == 301


# ---------------------------------------------------------------------------------------
# Production settings, in a fresh process as an operator starts them
# ---------------------------------------------------------------------------------------

CHECK_DEPLOY = """
import django, sys
django.setup()
from django.core.management import call_command
try:
    call_command("check", deploy=True, fail_level="WARNING")
except SystemExit as exc:
    sys.exit(exc.code)
"""

SHOW_SECURITY = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_AGE", "SESSION_IDLE_SECONDS", "AXES_FAILURE_LIMIT",
    "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT",
)} | {"cooloff_minutes": settings.AXES_COOLOFF_TIME.total_seconds() / 60}))
"""


def shown(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_in_production_has_nothing_to_report(tmp_path):
    result = start_django(tmp_path, CHECK_DEPLOY, **PRODUCTION, SECURE_HSTS_PRELOAD="true")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout + result.stderr


def test_check_deploy_with_preload_left_off_names_only_that(tmp_path):
    """Preloading is the operator's decision (README, "Security"): Django's check says so."""
    result = start_django(tmp_path, CHECK_DEPLOY, **PRODUCTION)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "security.W021" in output
    assert "identified 1 issue (0 silenced)" in output


def test_production_defaults(tmp_path):
    values = shown(start_django(tmp_path, SHOW_SECURITY, **PRODUCTION))

    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_AGE"] == 12 * 3600
    assert values["SESSION_IDLE_SECONDS"] == 3600
    assert values["AXES_FAILURE_LIMIT"] == 5
    assert values["cooloff_minutes"] == 15
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SECURE_REDIRECT_EXEMPT"] == ["^healthz/"]


def test_the_environment_sets_them(tmp_path):
    values = shown(
        start_django(
            tmp_path,
            SHOW_SECURITY,
            **PRODUCTION,
            SECURE_HSTS_SECONDS="600",
            SECURE_HSTS_PRELOAD="true",
            BEHIND_TLS_PROXY="true",
            VPNCTL_SESSION_MAX_SECONDS="7200",
            VPNCTL_SESSION_IDLE_SECONDS="900",
            VPNCTL_LOGIN_FAILURE_LIMIT="3",
            VPNCTL_LOGIN_COOLOFF_MINUTES="30",
        )
    )

    assert values["SECURE_HSTS_SECONDS"] == 600
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_AGE"] == 7200
    assert values["SESSION_IDLE_SECONDS"] == 900
    assert values["AXES_FAILURE_LIMIT"] == 3
    assert values["cooloff_minutes"] == 30


def test_the_demo_serves_plain_http(tmp_path):
    """`make demo` runs on http://127.0.0.1:8000/: no redirect, no HSTS, cookies sent."""
    values = shown(start_django(tmp_path, SHOW_SECURITY, VPNCTL_MODE="demo"))

    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False


# ---------------------------------------------------------------------------------------
# Templates and scripts the policy lets work
# ---------------------------------------------------------------------------------------

TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates"))]
INLINE = [
    ("inline <script>", re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)[^>]*>", re.I)),
    ("<style> without a nonce", re.compile(r"<style(?![^>]*\bnonce=)[^>]*>", re.I)),
    ("style attribute", re.compile(r"\sstyle\s*=", re.I)),
    ("event handler attribute", re.compile(r"\son[a-z]+\s*=", re.I)),
    ("javascript: URL", re.compile(r"javascript:", re.I)),
]


def template_files() -> list[Path]:
    return sorted(p for d in TEMPLATE_DIRS for p in d.rglob("*.html"))


def test_no_template_has_inline_script_or_style():
    assert len(template_files()) > 20
    found = []
    for path in template_files():
        source = path.read_text()
        for what, pattern in INLINE:
            for match in pattern.finditer(source):
                line = source[: match.start()].count("\n") + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert found == []


def test_the_scan_above_does_find_inline_code():
    samples = [
        "<script>alert(1)</script>",
        "<style>p{}</style>",
        '<p style="color: red">',
        '<a onclick="x()">',
    ]
    assert [s for s in samples if not any(pattern.search(s) for _, pattern in INLINE)] == []
    assert not any(p.search('<script src="/static/x.js" defer></script>') for _, p in INLINE)


def test_scripts_write_no_markup_that_the_policy_would_block():
    for path in sorted((ROOT / "maintenance" / "static").rglob("*.js")):
        source = path.read_text()
        assert "eval(" not in source and "new Function" not in source, path
        assert 'setAttribute("style"' not in source and "cssText" not in source, path


@pytest.mark.parametrize("name", ["maintenance/timeline.js", "maintenance/request-live.js"])
def test_the_pages_scripts_exist(name):
    from django.contrib.staticfiles import finders

    assert finders.find(name), name
