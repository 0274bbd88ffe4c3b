"""Request middleware: times in the user's own zone, session time limits, a header."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import ngettext

from . import times


class UserTimeZoneMiddleware:
    """Show every time in the user's own time zone (stored times stay UTC)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        timezone.activate(
            times.zone_of(user if user is not None and user.is_authenticated else None)
        )
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class PermissionsPolicyMiddleware:
    """Send ``Permissions-Policy`` (settings.PERMISSIONS_POLICY), which Django does not."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


SIGNED_IN_AT = "vpnctl_signed_in_at"
SEEN_AT = "vpnctl_seen_at"
# Last activity is written at most this often: not a session write on every request.
SEEN_RESOLUTION_SECONDS = 60


def start_session_clock(session: SessionBase, now: int | None = None) -> None:
    """Both limits count from now: called at every sign-in (maintenance/signals.py)."""
    now = int(time.time()) if now is None else now
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now


class SessionTimeoutMiddleware:
    """End a session unused for SESSION_IDLE_SECONDS or older than SESSION_COOKIE_AGE.

    Django's own expiry moves with every write to the session, so it bounds neither: the
    session keeps when it was first seen signed in and when it was last used, and this
    logs the user out (the session is deleted, server-side) once either limit has passed.
    The request then goes on anonymous: a page that needs a login sends them to it, where
    a message says why. A page's own background refresh (request-live.js, sent with
    ``X-Requested-With: fetch``) is not activity: an open page left alone still times out,
    and its refresh is then answered 401 so that the script reloads the page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and self._ended(request):
            if request.headers.get("X-Requested-With") == "fetch":
                return HttpResponse(status=401)
        return self.get_response(request)

    def _ended(self, request: HttpRequest) -> bool:
        """Whether this request found the session past a limit (and ended it)."""
        now = int(time.time())
        session = request.session
        signed_in_at = session.get(SIGNED_IN_AT)
        seen_at = session.get(SEEN_AT)
        if signed_in_at is None or seen_at is None:
            # Signed in before these limits existed, or by a test's force_login.
            start_session_clock(session, now)
            return False
        idle = now - seen_at >= settings.SESSION_IDLE_SECONDS
        too_old = now - signed_in_at >= settings.SESSION_COOKIE_AGE
        if idle or too_old:
            logout(request)
            if idle:
                minutes = max(1, settings.SESSION_IDLE_SECONDS // 60)
                text = ngettext(
                    "You were logged out after %(count)d minute without activity. "
                    "Log in again to go on.",
                    "You were logged out after %(count)d minutes without activity. "
                    "Log in again to go on.",
                    minutes,
                ) % {"count": minutes}
            else:
                hours = max(1, settings.SESSION_COOKIE_AGE // 3600)
                text = ngettext(
                    "You were logged out: a session lasts %(count)d hour at most. "
                    "Log in again to go on.",
                    "You were logged out: a session lasts %(count)d hours at most. "
                    "Log in again to go on.",
                    hours,
                ) % {"count": hours}
            messages.info(request, text)
            return True
        background = request.headers.get("X-Requested-With") == "fetch"
        if not background and now - seen_at >= SEEN_RESOLUTION_SECONDS:
            session[SEEN_AT] = now
        return False
