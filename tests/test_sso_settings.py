"""Single sign-on's settings as an operator meets them, and the password switch.

The settings cases start Django in a clean process (tests/test_settings.py's way); the
password cases post the real login forms, the site's and the admin's.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from maintenance import roles
from maintenance.choices import AuditAction
from maintenance.models import AuditEvent
from tests.test_settings import GOOD_KEY, start_django, started

SHOW_SSO = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "issuer": settings.OIDC_ISSUER,
    "scopes": settings.OIDC_RP_SCOPES,
    "role_map": settings.OIDC_ROLE_MAP,
    "local_login": settings.LOCAL_LOGIN,
    "backends": settings.AUTHENTICATION_BACKENDS,
}))
"""
SSO_ENV = {
    "SECRET_KEY": GOOD_KEY,
    "VPNCTL_OIDC_ISSUER": "https://login.example.com/realms/main/",
    "VPNCTL_OIDC_CLIENT_ID": "vpnctl",
    "VPNCTL_OIDC_CLIENT_SECRET": "s3cret-never-shown",
}


def test_sso_is_off_by_default(tmp_path):
    shown = started(start_django(tmp_path, SHOW_SSO, SECRET_KEY=GOOD_KEY))
    assert shown["issuer"] == "" and shown["role_map"] == {}
    assert shown["local_login"] == "everyone"
    assert shown["scopes"] == "openid email profile groups"


def test_a_full_configuration_is_read(tmp_path):
    shown = started(
        start_django(
            tmp_path,
            SHOW_SSO,
            **SSO_ENV,
            VPNCTL_OIDC_ROLE_MAP=" net-eng=requester, ops=approver,ops=auditor,netadmins=admin ",
            VPNCTL_LOCAL_LOGIN="superusers",
        )
    )
    assert shown["issuer"] == "https://login.example.com/realms/main"  # no trailing slash
    assert shown["role_map"] == {
        "net-eng": ["requester"],
        "ops": ["approver", "auditor"],
        "netadmins": ["admin"],
    }
    assert shown["local_login"] == "superusers"
    assert shown["backends"][-1] == "maintenance.sso.OIDCBackend"


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"VPNCTL_OIDC_ROLE_MAP": "net-eng=root"}, "VPNCTL_OIDC_ROLE_MAP: 'net-eng=root' is not"),
        ({"VPNCTL_OIDC_ROLE_MAP": "requester"}, "is not group=role"),
        ({"VPNCTL_LOCAL_LOGIN": "nobody"}, "VPNCTL_LOCAL_LOGIN must be everyone or superusers"),
        (
            {"VPNCTL_OIDC_CLIENT_SECRET": ""},
            "set VPNCTL_OIDC_CLIENT_ID and VPNCTL_OIDC_CLIENT_SECRET",
        ),
        ({"VPNCTL_OIDC_SCOPES": "openid profile"}, "VPNCTL_OIDC_SCOPES must include openid"),
        ({"VPNCTL_OIDC_ISSUER": "http://login.example.com"}, "must use https"),
        ({"VPNCTL_OIDC_ISSUER": "login.example.com"}, "must be the provider's URL"),
        ({"VPNCTL_OIDC_ISSUER": "", "VPNCTL_LOCAL_LOGIN": "superusers"}, "needs single sign-on"),
    ],
)
def test_a_bad_setting_stops_vpnctl_with_the_reason(tmp_path, env, said):
    result = start_django(tmp_path, SHOW_SSO, **(SSO_ENV | env))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and said in result.stderr
    assert "s3cret-never-shown" not in result.stderr


def test_the_settings_know_every_role():
    assert django_settings._OIDC_ROLES == set(roles.ROLE_PERMISSIONS)


def test_a_password_sign_in_is_audited(client, requester):
    response = client.post("/login/", {"username": "rei", "password": "pw-rei"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert event.actor == requester
    assert (event.details["method"], event.details["ip"]) == ("password", "127.0.0.1")
    assert event.message == "rei signed in with a password from 127.0.0.1."
    assert "pw-rei" not in str(event.details) + event.message


@pytest.fixture
def superusers_only(settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # never reached by these tests
    settings.LOCAL_LOGIN = "superusers"


def test_only_superusers_may_use_a_password(superusers_only, client, admin_user, requester):
    page = client.get("/login/").content.decode()
    assert "Sign in with single sign-on" in page
    assert "Break-glass sign-in for administrators" in page

    refused = client.post("/login/", {"username": "rei", "password": "pw-rei"})
    assert refused.status_code == 200
    assert "Sign in with single sign-on: here a password is only for administrators" in (
        refused.content.decode()
    )
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert event.details["reason"] == "local_login_superusers_only"
    assert event.details["username"] == "rei"
    # Counted like a wrong password: the distinct answer is no unlimited password oracle.
    assert event.details["failures"] == 1
    assert "passwords are for superusers only" in event.message

    # Staff is not enough in the admin either.
    assert admin_user.is_staff and not admin_user.is_superuser
    refused = client.post("/admin/login/", {"username": "admin", "password": "pw-admin"})
    assert refused.status_code == 200
    assert "a password is only for administrators" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() == 2

    admin_user.is_superuser = True
    admin_user.save()
    assert client.post("/login/", {"username": "admin", "password": "pw-admin"}).status_code == 302
    assert client.session["_auth_user_id"] == str(admin_user.pk)
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).count() == 1


def test_a_wrong_password_is_still_a_wrong_password(superusers_only, client, requester):
    refused = client.post("/login/", {"username": "rei", "password": "wrong"})
    assert "Your username and password did not match." in refused.content.decode()
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.LOGIN_FAILED
    assert "reason" not in event.details  # django-axes's own event


def test_refused_correct_passwords_lead_to_the_lockout(
    superusers_only, settings, client, requester
):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post("/login/", {"username": "rei", "password": "pw-rei"})
    locked = client.post("/login/", {"username": "rei", "password": "pw-rei"})
    assert locked.status_code == 429
