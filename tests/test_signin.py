"""Signing in and out: the lockout after repeated failures (per username, per address, on
the site's login and the admin's), its audit events, password rules, and sessions ending."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from maintenance.choices import ActorKind, AuditAction
from maintenance.models import AuditEvent
from maintenance.signin import client_ip

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
LIMIT = settings.AXES_FAILURE_LIMIT
COOLOFF = settings.AXES_COOLOFF_TIME
WRONG = "not-the-password-{}"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def sign_in(client, username, password, url=None, ip="192.0.2.10"):
    return client.post(
        url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def signed_in(client) -> bool:
    return SESSION_KEY in client.session


def audit_table_text() -> str:
    """Everything the audit table holds, as one string."""
    return json.dumps(
        list(AuditEvent.objects.values("actor_name", "message", "details")), ensure_ascii=False
    )


def test_defaults_are_the_documented_ones():
    assert LIMIT == 5
    assert COOLOFF == timedelta(minutes=15)


def test_failures_lock_the_username_even_with_the_right_password_until_the_cool_off(
    client, requester, frozen
):
    # One failure from each of five addresses: the username's count, not an address's.
    for i in range(LIMIT - 1):
        response = sign_in(client, "rei", WRONG.format(i), ip=f"192.0.2.{i + 1}")
        assert response.status_code == 200
        assert "Your username and password did not match" in text(response)
    response = sign_in(client, "rei", WRONG.format(LIMIT), ip="192.0.2.99")
    assert response.status_code == 429

    # Locked: the right password is refused too, from anywhere.
    response = sign_in(client, "rei", "pw-rei", ip="198.51.100.7")
    assert response.status_code == 429
    page = text(response)
    assert "Sign-in locked for now" in page
    assert "vpnctl refuses them for 15 minutes, even with the right password" in page
    # Every attempt starts the cool-off again: this one was at 03:00 UTC.
    assert "Try again after 2026-11-25 03:15 UTC" in page
    assert not signed_in(client)
    # The page is in the site's layout.
    assert 'class="site-header"' in response.content.decode()

    frozen.shift(COOLOFF - timedelta(seconds=30))
    assert sign_in(client, "rei", "pw-rei").status_code == 429

    frozen.shift(COOLOFF + timedelta(seconds=1))
    response = sign_in(client, "rei", "pw-rei")
    assert response.status_code == 302
    assert response["Location"] == reverse("maintenance:home")
    assert signed_in(client)


def test_failures_and_lockouts_are_audited_without_any_password(client, requester):
    for i in range(LIMIT):
        sign_in(client, "rei", WRONG.format(i))
    sign_in(client, "rei", "pw-rei")

    events = list(AuditEvent.objects.filter(action__startswith="auth.").order_by("seq"))
    assert [e.action for e in events] == [AuditAction.LOGIN_FAILED] * (LIMIT - 1) + [
        AuditAction.LOGIN_LOCKED_OUT
    ] * 2
    failed, locked = events[0], events[LIMIT - 1]
    assert failed.actor_kind == ActorKind.SYSTEM and failed.actor is None
    assert failed.details == {
        "username": "rei",
        "ip": "192.0.2.10",
        "path": "/login/",
        "failure_limit": LIMIT,
        "failures": 1,
    }
    assert failed.message == "Sign-in as 'rei' from 192.0.2.10 failed: wrong username or password."
    assert locked.details["cooloff_minutes"] == 15
    assert locked.details["failures"] == LIMIT
    assert locked.message == (
        "Sign-in as 'rei' from 192.0.2.10 refused: locked out for 15 minutes after 5 failures."
    )

    stored = audit_table_text()
    assert "pw-rei" not in stored
    assert "not-the-password" not in stored
    assert "password" not in json.dumps([e.details for e in events])


def test_failures_from_one_address_lock_the_address_for_every_username(client, requester):
    for i in range(LIMIT):
        sign_in(client, f"guess{i}", "whatever", ip="203.0.113.5")

    # The requester's own username has no failures, but the address is locked.
    assert sign_in(client, "rei", "pw-rei", ip="203.0.113.5").status_code == 429
    assert not signed_in(client)
    # From another address the same account signs in.
    assert sign_in(client, "rei", "pw-rei", ip="203.0.113.6").status_code == 302
    assert signed_in(client)


def test_the_admin_login_is_protected_and_audited_too(client, admin_user, frozen):
    url = reverse("admin:login")
    for i in range(LIMIT):
        response = sign_in(client, "admin", WRONG.format(i), url=url)
    assert response.status_code == 429
    assert "Sign-in locked for now" in text(response)
    assert sign_in(client, "admin", "pw-admin", url=url).status_code == 429
    assert not signed_in(client)

    locked = AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED_OUT).first()
    assert locked.details["path"] == "/admin/login/"
    assert locked.details["username"] == "admin"

    frozen.shift(COOLOFF + timedelta(seconds=1))
    assert sign_in(client, "admin", "pw-admin", url=url).status_code == 302
    assert signed_in(client)


def test_the_locked_out_page_in_japanese(client, requester):
    for i in range(LIMIT):
        response = client.post(
            reverse("login"),
            {"username": "rei", "password": WRONG.format(i)},
            HTTP_ACCEPT_LANGUAGE="ja",
        )
    assert response.status_code == 429
    page = text(response)
    assert '<html lang="ja">' in response.content.decode()
    assert "ログインを一時的に停止しています" in page
    assert "15 分間" in page


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.20"
    )
    # Without the proxy, the header is anyone's to write.
    assert client_ip(request) == "10.0.0.2"
    with override_settings(BEHIND_TLS_PROXY=True):
        assert client_ip(request) == "198.51.100.20"
        forged = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="junk")
        assert client_ip(forged) == "10.0.0.2"


# ---------------------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["short1", "password123", "48213967501", "rei-example"], ids=str
)
def test_weak_passwords_are_refused(requester, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=requester)


def test_a_good_password_passes(requester):
    validate_password("tunnel-window-approval-7", user=requester)


# ---------------------------------------------------------------------------------------
# Sessions ending
# ---------------------------------------------------------------------------------------


def test_logging_out_ends_the_session_on_the_server(client, requester):
    assert sign_in(client, "rei", "pw-rei").status_code == 302
    key = client.session.session_key
    assert Session.objects.filter(session_key=key).exists()

    assert client.post(reverse("logout")).status_code == 302
    assert not Session.objects.filter(session_key=key).exists()

    # Someone who kept the old cookie is not signed in with it.
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = key
    response = stolen.get(reverse("maintenance:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_session_left_alone_for_the_idle_time_ends(client, requester, frozen):
    home = reverse("maintenance:home")
    assert sign_in(client, "rei", "pw-rei").status_code == 302
    key = client.session.session_key
    # Used every 59 minutes: still signed in after three hours.
    for _ in range(3):
        frozen.shift(timedelta(minutes=59))
        assert client.get(home).status_code == 200

    frozen.shift(timedelta(minutes=60))
    response = client.get(home)
    assert response.status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    page = text(client.get(response["Location"]))
    assert "You were logged out after 60 minutes without activity. Log in again to go on." in page


def test_a_session_ends_after_the_maximum_however_busy(client, requester, frozen):
    home = reverse("maintenance:home")
    assert sign_in(client, "rei", "pw-rei").status_code == 302
    for _ in range(14):
        frozen.shift(timedelta(minutes=50))
        assert client.get(home).status_code == 200  # 11 h 40 min in
    frozen.shift(timedelta(minutes=20))
    response = client.get(home)
    assert response.status_code == 302
    page = text(client.get(response["Location"]))
    assert "You were logged out: a session lasts 12 hours at most." in page


def test_a_pages_own_refresh_does_not_keep_the_session_alive(client, requester, frozen):
    home = reverse("maintenance:home")
    client.force_login(requester)
    assert client.get(home).status_code == 200
    for _ in range(5):
        frozen.shift(timedelta(minutes=10))
        assert client.get(home, HTTP_X_REQUESTED_WITH="fetch").status_code == 200
    # An hour of background refreshes only: the next one is told the session ended.
    frozen.shift(timedelta(minutes=10))
    assert client.get(home, HTTP_X_REQUESTED_WITH="fetch").status_code == 401
    assert not signed_in(client)
