"""Pages for a refused request: the sign-in lockout and a failed CSRF check.

The 400, 403, 404 and 500 pages are Django's own handlers with vpnctl's templates
(``templates/400.html`` ...); these two need a view because they say more.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..signin import cool_off_minutes


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """settings.AXES_LOCKOUT_CALLABLE: too many failed sign-ins, and when to try again.

    Every attempt during the lockout starts the cool-off again (django-axes's default), so
    "now plus the cool-off" is when the next attempt will be let through.
    """
    minutes = cool_off_minutes(request)
    return render(
        request,
        "registration/locked_out.html",
        {"cooloff_minutes": minutes, "retry_at": timezone.now() + timedelta(minutes=minutes)},
        status=429,
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a form came back without a valid security token."""
    return render(request, "403_csrf.html", status=403)
