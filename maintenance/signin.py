"""Signing in: the lockout's view of a client, and the audit events sign-ins leave.

django-axes counts failures per username and per address (settings.AXES_*); this module
is named in its settings: ``AXES_HANDLER`` writes one audit event per refused attempt,
``AXES_CLIENT_IP_CALLABLE`` says where an attempt came from. The locked-out page is
``views.errors.locked_out``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest

from .choices import ActorKind, AuditAction
from .models import AuditEvent

# Usernames an attacker types are theirs to choose: keep the audit log's copy short.
MAX_USERNAME_CHARS = 150


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
        else:
            AuditEvent.record(
                AuditAction.LOGIN_FAILED,
                actor_kind=ActorKind.SYSTEM,
                message=f"Sign-in as {username!r} from {ip} failed: wrong username or password.",
                details=details,
            )
