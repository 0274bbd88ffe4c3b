"""The rules a change request must keep, checked when it is submitted or rescheduled.

``check_rules`` raises one ValidationError naming every field a rule refuses, with the
times in the reader's zone; ``check_submitter`` is what every submission checks first.
At execution the worker checks again on fresh AWS data (tasks.preflight).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import times
from ..choices import ChangeKind
from ..roles import has_perm
from ..texts import N_, Text
from .inventory import Tunnel
from .operations import BlackoutPeriod


def ends_after_deadline(tunnel: Tunnel, window_end: datetime) -> bool:
    """The deadline rule: a window must end before AWS applies the pending maintenance by
    itself. Checked at submission, at approval and at preflight, each against the deadline
    AWS shows then (ChangeRequestQuerySet.ending_after_deadline is its form in SQL)."""
    deadline = tunnel.maintenance_auto_applied_after
    return tunnel.has_pending_maintenance and deadline is not None and window_end > deadline


def deadline_refusal(tunnel: Tunnel) -> Text:
    """What a person reads when a window no longer ends before AWS's deadline."""
    return Text(
        N_(
            "AWS now applies this maintenance by itself after %(deadline)s, before this "
            "window ends. Reschedule the window to end before then, or let AWS apply it."
        ),
        deadline=tunnel.maintenance_auto_applied_after,
    )


def check_rules(
    *,
    tunnel: Tunnel,
    kind: str,
    window_start: datetime,
    window_end: datetime,
    skip_tunnel_replacement: bool,
    now: datetime,
    exclude_pk: int | None = None,
    batch_id: int | None = None,
) -> None:
    """Raise ValidationError, naming the field, for any rule this request would break.

    `batch_id`: the request belongs to that batch, whose requests on the two tunnels of
    a connection may share a window (the batch runs them one after the other).
    """
    errors: dict[str, list[Any]] = {}

    def refuse(field: str, message: Any) -> None:
        errors.setdefault(field, []).append(message)

    connection = tunnel.connection
    if kind not in ChangeKind.values:
        refuse("kind", _("Choose what to change."))
    if connection.gone_at is not None:
        refuse("__all__", _("This connection is gone from AWS; there is nothing to change."))
    if kind == ChangeKind.REPLACE and not tunnel.has_pending_maintenance:
        refuse(
            "kind",
            _("This tunnel has no pending maintenance to apply (as of the last sync)."),
        )
    if kind == ChangeKind.ENABLE_LIFECYCLE and tunnel.lifecycle_control:
        refuse("kind", _("Lifecycle control is already on for this tunnel."))
    if skip_tunnel_replacement and kind != ChangeKind.ENABLE_LIFECYCLE:
        refuse(
            "skip_tunnel_replacement",
            _("Skipping the replacement only applies when turning lifecycle control on."),
        )

    # The window.
    slack = timedelta(minutes=1)  # the time it takes to fill in the form
    if window_start < now - slack:
        refuse("window_start", _("The window must start in the future."))
    if window_end <= window_start:
        refuse("window_end", _("The window must end after it starts."))
    minimum = timedelta(minutes=settings.MIN_WINDOW_MINUTES)
    if window_end - window_start < minimum:
        refuse(
            "window_end",
            _("The window must last at least %(minutes)d minutes.")
            % {"minutes": settings.MIN_WINDOW_MINUTES},
        )
    deadline = tunnel.maintenance_auto_applied_after
    if ends_after_deadline(tunnel, window_end):
        refuse(
            "window_end",
            _(
                "The window must end before %(deadline)s, when AWS applies the "
                "maintenance by itself."
            )
            # In the zone the user sees on the page (the middleware activates it).
            % {"deadline": times.local(deadline)},
        )

    # Blackouts: for every account, or for this connection's account.
    blackout = (
        BlackoutPeriod.objects.overlapping(window_start, window_end)
        .binding(connection.account_id)
        .order_by("starts_at")
        .first()
    )
    if blackout is not None:
        refuse(
            "window_start",
            _(
                "The window overlaps the blackout “%(name)s” (%(start)s – %(end)s): "
                "no change may run then. Choose a window outside it."
            )
            % {
                "name": blackout.name,
                "start": times.local(blackout.starts_at),
                "end": times.local(blackout.ends_at),
            },
        )

    # Other requests on the same tunnel and on its sibling, through the tunnel's relation
    # (this module comes before the request model, which uses it).
    change_requests = tunnel.change_requests.model.objects
    others = change_requests.open().filter(tunnel__connection=connection)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    same = [r for r in others if r.tunnel_id == tunnel.pk]
    if same:
        refuse(
            "__all__",
            _("Request #%(pk)s is already open for this tunnel (%(status)s).")
            % {"pk": same[0].pk, "status": same[0].get_status_display()},
        )
    clash = [
        r
        for r in others
        if r.tunnel_id != tunnel.pk
        and (batch_id is None or r.batch_id != batch_id)
        and r.window_start < window_end
        and r.window_end > window_start
    ]
    if clash:
        refuse(
            "window_start",
            _(
                "Request #%(pk)s on the other tunnel of this connection has an overlapping "
                "window; AWS updates one tunnel at a time and so does vpnctl."
            )
            % {"pk": clash[0].pk},
        )
    if errors:
        raise ValidationError(errors)


def check_submitter(
    user: Any, reason: str, window_start: datetime | None, start_when_approved: bool
) -> tuple[datetime, bool, datetime]:
    """What every submission checks first. Returns (window_start, start_when_approved, now)."""
    if not has_perm(user, "maintenance.request_change"):
        raise PermissionDenied(_("You may not request changes."))
    if not (reason or "").strip():
        raise ValidationError({"reason": [_("Say why this change is needed.")]})
    now = timezone.now()
    if start_when_approved or window_start is None:
        start_when_approved, window_start = True, now
    return window_start, start_when_approved, now
