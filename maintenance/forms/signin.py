"""The password sign-in forms, the site's and the admin's, with the break-glass switch.

With ``VPNCTL_LOCAL_LOGIN=superusers`` people sign in with single sign-on, and a password
is for superusers only (break-glass, when the provider is down): anyone else is refused
with a message that says so, even with the right password; the refusal is audited and
counted toward the lockout like a wrong password.
A sign-in these forms let through is an audit event (``auth.login``, method ``password``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from ..signin import record_sign_in, refuse_password


class SuperusersOnlyMixin:
    """Refuses a correct password from a non-superuser when local login is for superusers.

    Django's LoginView signs in whoever passes ``confirm_login_allowed``: the sign-in's
    audit event is written there.
    """

    sso_only = False

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)  # type: ignore[misc]
        if settings.LOCAL_LOGIN == "superusers" and not user.is_superuser:
            self.sso_only = True
            refuse_password(self.request, user.get_username())  # type: ignore[attr-defined]
            raise forms.ValidationError(
                _(
                    "Sign in with single sign-on: here a password is only for administrators "
                    "when single sign-on is unavailable."
                ),
                code="sso_only",
            )
        record_sign_in(self.request, user, method="password")  # type: ignore[attr-defined]


class LoginForm(SuperusersOnlyMixin, AuthenticationForm):
    pass


class AdminLoginForm(SuperusersOnlyMixin, AdminAuthenticationForm):
    pass
