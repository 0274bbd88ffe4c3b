"""Who calls: a personal API token in ``Authorization: Bearer <token>``.

The token acts with its user's roles and nothing more: the call runs as that user, with
their permissions checked by the same model methods as on the pages. Each call counts
against the token's rate limit (settings.API_RATE_PER_MINUTE) before anything else runs.
The token itself is never logged, stored or echoed; refusals say why without naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext
from ninja.security import HttpBearer

from .. import times
from ..models import ApiToken
from ..signin import client_ip
from .errors import ApiError, error_response


class TokenAuth(HttpBearer):
    """Bearer tokens: 401 for an unknown, revoked or expired one, 429 over the limit."""

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        # ninja's own parsing logs a header of another scheme in DEBUG: it may be a token.
        scheme, _space, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme or not token.strip():
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        now = timezone.now()
        found = ApiToken.find(token.strip())
        if found is None:
            raise ApiError(
                401, gettext("This API token is not known: check that it was copied whole.")
            )
        refusal = found.refusal(now)
        if refusal:
            raise ApiError(401, refusal)
        limit = settings.API_RATE_PER_MINUTE
        wait = found.count_call(ip=client_ip(request), limit=limit, now=now)
        if wait:
            raise ApiError(
                429,
                gettext(
                    "Too many calls with this token: at most %(limit)d a minute. "
                    "Try again in %(wait)d s."
                )
                % {"limit": limit, "wait": wait},
                headers={"Retry-After": str(wait)},
            )
        request.user = found.user
        # Messages that name a time (who decided when) read in the user's zone, as on
        # the pages; UserTimeZoneMiddleware deactivates it after the response.
        timezone.activate(times.zone_of(found.user))
        return found


bearer = TokenAuth()


def signed_in(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and its docs page: for people signed in, or a script with a token."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and "Authorization" in request.headers:
            try:
                bearer(request)
            except ApiError as exc:
                return error_response(exc)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded
