"""Signing in: the lockout's view of a client, and the audit events sign-ins leave.

django-axes counts failures per username and per address (settings.AXES_*); this module
is named in its settings: ``AXES_HANDLER`` writes one audit event per refused attempt,
``AXES_CLIENT_IP_CALLABLE`` says where an attempt came from. The locked-out page is
``views.errors.locked_out``. Every sign-in, with a password or single sign-on, is an
audit event too (``record_sign_in``); a correct password refused because passwords are
for superusers only counts as a failure (``refuse_password``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from .choices import ActorKind, AuditAction
from .models import AuditEvent
from .texts import N_, Text

# Usernames an attacker types are theirs to choose: keep the audit log's copy short.
MAX_USERNAME_CHARS = 150
# Set on a request whose correct password was refused: passwords are for superusers only.
SUPERUSERS_ONLY = "vpnctl_superusers_only"


def client_ip(request: HttpRequest) -> str | None:
    """The address an attempt came from.

    Behind the TLS proxy (BEHIND_TLS_PROXY) every request comes from the proxy, which
    appends the address it saw to ``X-Forwarded-For``: its last entry is the one no client
    can forge. Anything that is not an address falls back to the peer's.
    """
    peer = request.META.get("REMOTE_ADDR")
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            return peer
    return peer


def cool_off_minutes(request: HttpRequest | None = None) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds() // 60) if cool_off else 0


class AuditedAxesHandler(AxesDatabaseHandler):
    """django-axes's database handler, plus an audit event for every refused sign-in.

    One event per attempt, written after axes has counted it: ``auth.locked_out`` when the
    attempt reached the limit or came while locked out (refused whatever the password),
    else ``auth.login_failed``. The password never reaches this code: Django replaces it
    in the credentials before the ``user_login_failed`` signal.
    """

    def user_login_failed(
        self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None:
            return
        username = (get_client_username(request, credentials) or "")[:MAX_USERNAME_CHARS]
        ip = getattr(request, "axes_ip_address", None) or ""
        details: dict[str, Any] = {
            "username": username,
            "ip": ip,
            "path": getattr(request, "axes_path_info", "") or request.path,
            "failure_limit": get_failure_limit(request, credentials),
        }
        failures = getattr(request, "axes_failures_since_start", None)
        if failures is not None:
            details["failures"] = failures
        if getattr(request, "axes_locked_out", False):
            minutes = cool_off_minutes(request)
            details["cooloff_minutes"] = minutes
            AuditEvent.record(
                AuditAction.LOGIN_LOCKED_OUT,
                actor_kind=ActorKind.SYSTEM,
                message=(
                    f"Sign-in as {username!r} from {ip} refused: locked out for {minutes} "
                    f"minutes after {details['failure_limit']} failures."
                ),
                details=details,
            )
        elif getattr(request, SUPERUSERS_ONLY, False):
            details["reason"] = "local_login_superusers_only"
            AuditEvent.record(
                AuditAction.LOGIN_FAILED,
                actor_kind=ActorKind.SYSTEM,
                message=Text(
                    N_(
                        "Password sign-in as %(username)r from %(ip)s refused: passwords are "
                        "for superusers only (VPNCTL_LOCAL_LOGIN=superusers)."
                    ),
                    username=username,
                    ip=ip,
                ),
                details=details,
            )
        else:
            AuditEvent.record(
                AuditAction.LOGIN_FAILED,
                actor_kind=ActorKind.SYSTEM,
                message=f"Sign-in as {username!r} from {ip} failed: wrong username or password.",
                details=details,
            )


def record_sign_in(request: HttpRequest | None, user: Any, *, method: str) -> None:
    """One audit event per sign-in, saying how: ``password`` or ``oidc``.

    Written where people sign in (the password forms, the single sign-on callback), not on
    Django's ``user_logged_in``: that signal fires for sessions opened without credentials
    too (the test client's ``force_login``).
    """
    ip = (client_ip(request) if request is not None else None) or ""
    if method == "oidc":
        message = N_("%(username)s signed in with single sign-on from %(ip)s.")
    else:
        message = N_("%(username)s signed in with a password from %(ip)s.")
    AuditEvent.record(
        AuditAction.LOGIN_SUCCEEDED,
        actor=user,
        message=Text(message, username=user.get_username(), ip=ip),
        details={"method": method, "ip": ip},
    )


def refuse_password(request: HttpRequest, username: str) -> None:
    """A correct password from someone who must use single sign-on (VPNCTL_LOCAL_LOGIN).

    Counted by django-axes like a wrong one, so that the form's distinct answer cannot be
    used to try passwords without limit; the handler's audit event names the reason.
    """
    setattr(request, SUPERUSERS_ONLY, True)
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
