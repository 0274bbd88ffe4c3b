"""'Refresh from AWS' on a request page: an approver asks for the connection to be read again.

A change refreshes what it touches, not the world: the worker reads that one connection
(``maintenance.tasks.refresh_connection``), at most once per
``settings.REFRESH_MIN_SECONDS`` per connection, and the page's self-refreshing part
shows the answer. The web process never calls AWS (nor imports boto3): it queues the read.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from .. import times
from .changes import _get_request_for_user, _render_request


@login_required
@require_POST
def request_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue one read of the request's connection from AWS, then back to the page.

    403 for a user who may not approve, 400 for a request that is no longer open, 429
    (saying when the next is possible) within the rate limit; none of them queues anything.
    """
    change = _get_request_for_user(request, pk)
    connection = change.tunnel.connection
    now = timezone.now()
    try:
        asked = connection.ask_refresh(request.user, now, change_request=change)
    except PermissionDenied as exc:
        return _render_request(request, change, status=403, page_error=str(exc))
    except ValidationError as exc:
        return _render_request(request, change, status=400, page_error=" ".join(exc.messages))
    if not asked:
        seconds = settings.REFRESH_MIN_SECONDS
        return _render_request(
            request,
            change,
            status=429,
            page_error=ngettext(
                "Fresh data for connection %(connection)s was last asked for at %(asked)s, "
                "and vpnctl reads a connection at most once every %(seconds)s second. The "
                "next refresh is possible from %(next)s.",
                "Fresh data for connection %(connection)s was last asked for at %(asked)s, "
                "and vpnctl reads a connection at most once every %(seconds)s seconds. The "
                "next refresh is possible from %(next)s.",
                seconds,
            )
            % {
                "connection": connection.vpn_connection_id,
                "asked": times.local(connection.refresh_requested_at, seconds=True),
                "seconds": seconds,
                "next": times.local(connection.next_refresh_at(), seconds=True),
            },
        )
    return redirect(reverse("maintenance:request", args=[change.pk]) + "#request-aws")
