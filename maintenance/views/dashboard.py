"""The home page's dashboard: what needs attention now.

Every figure on the dashboard links to the filtered list behind it, and comes from a few
aggregate queries (conditional counts and EXISTS subqueries), never a loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from .. import liveness
from ..choices import ChangeStatus, PendingMaintenance, TunnelStatus
from ..forms.inventory import AWS_APPLIED_DAYS, DEADLINE_DAYS
from ..models import (
    ChangeRequest,
    HealthEvent,
    SyncResult,
    Tunnel,
    applied_by_aws_since,
    planned_before_deadline,
)

UPCOMING_DAYS = 7


def _connections_url(**filters: Any) -> str:
    return f"{reverse('maintenance:connections')}?{urlencode(filters)}"


# ---------------------------------------------------------------------------------------
# Dashboard
# ---------------------------------------------------------------------------------------


@dataclass
class DeadlineRow:
    """One line of "AWS applies it itself": a horizon, its pending tunnels, the unplanned."""

    days: int | None
    pending: int
    unplanned: int
    pending_url: str
    unplanned_url: str


def _tunnel_figures(now: datetime) -> dict[str, int]:
    """Every tunnel and connection figure in one aggregate query over the live tunnels."""
    pending = Q(pending_maintenance=PendingMaintenance.AVAILABLE)
    unplanned = ~planned_before_deadline()
    siblings = Tunnel.objects.filter(connection=OuterRef("connection"))
    figures: dict[str, Any] = {
        "pending": Count("pk", filter=pending),
        "unplanned": Count("pk", filter=pending & unplanned),
        "down": Count("pk", filter=Q(status=TunnelStatus.DOWN)),
        "down_connections": Count("connection", distinct=True, filter=Q(status=TunnelStatus.DOWN)),
        # Counted once per connection through its DOWN tunnels: none of its tunnels is not DOWN.
        "both_down": Count(
            "connection",
            distinct=True,
            filter=Q(status=TunnelStatus.DOWN)
            & ~Q(Exists(siblings.exclude(status=TunnelStatus.DOWN))),
        ),
        "no_slot": Count("pk", filter=pending & Q(no_slot_since__isnull=False)),
        "lifecycle_off": Count("pk", filter=Q(lifecycle_control=False)),
        "lifecycle_off_connections": Count(
            "connection", distinct=True, filter=Q(lifecycle_control=False)
        ),
        "half_lifecycle": Count(
            "connection",
            distinct=True,
            filter=Q(lifecycle_control=False) & Q(Exists(siblings.filter(lifecycle_control=True))),
        ),
        "aws_applied": Count(
            "pk", filter=applied_by_aws_since(now - timedelta(days=AWS_APPLIED_DAYS))
        ),
    }
    for days in DEADLINE_DAYS:
        due = pending & Q(maintenance_auto_applied_after__lte=now + timedelta(days=days))
        figures[f"pending_{days}"] = Count("pk", filter=due)
        figures[f"unplanned_{days}"] = Count("pk", filter=due & unplanned)
    # Connections gone from AWS are out of the list by default, so out of its figures too.
    return Tunnel.objects.filter(connection__gone_at__isnull=True).aggregate(**figures)


def _upcoming_bounds(now: datetime) -> tuple[datetime, datetime, dict[str, str]]:
    """The request list's "window from today to today + 7" filter, in the user's days."""
    zone = timezone.get_current_timezone()
    today = timezone.localtime(now, zone).date()
    last = today + timedelta(days=UPCOMING_DAYS)
    start = datetime.combine(today, time.min, tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    params = {
        "status": ChangeStatus.APPROVED.value,
        "window_from": today.isoformat(),
        "window_to": last.isoformat(),
    }
    return start, end, params


def _request_figures(user: Any, start: datetime, end: datetime) -> dict[str, int]:
    """Waiting for this user, approved windows ahead, running now: one aggregate query."""
    figures: dict[str, Any] = {
        "upcoming": Count(
            "pk",
            filter=Q(status=ChangeStatus.APPROVED, window_end__gt=start, window_start__lt=end),
        ),
        "running": Count("pk", filter=Q(status=ChangeStatus.RUNNING)),
    }
    if user.has_perm("maintenance.approve_change"):
        waiting = ChangeRequest.objects.awaiting_decision_of(user).values("pk")
        figures["waiting"] = Count("pk", filter=Q(pk__in=waiting))
    result = ChangeRequest.objects.aggregate(**figures)
    result.setdefault("waiting", None)
    return result


@dataclass
class SyncHealth:
    """The newest result of every enabled account and region, summed up for the dashboard.

    A big estate has hundreds of scopes: the dashboard counts them and lists only those
    to look at (could not be read, read with errors, still running).
    """

    total: int
    failed: int
    with_errors: int
    running: int
    oldest_read: datetime | None
    troubled: list[SyncResult]


def _sync_health() -> SyncHealth:
    """One query: the newest result per account and region, its light columns only."""
    latest = (
        SyncResult.objects.values("account", "region").annotate(newest=Max("pk")).values("newest")
    )
    results = list(
        SyncResult.objects.filter(pk__in=latest, account__enabled=True)
        .select_related("account")
        .only("account__name", "region", "finished_at", "failed", "errors", "run_id")
        .order_by("account__name", "region")
    )
    finished = [r.finished_at for r in results if r.finished_at and not r.failed]
    return SyncHealth(
        total=len(results),
        failed=sum(r.failed for r in results),
        with_errors=sum(bool(r.errors) and not r.failed for r in results),
        running=sum(r.finished_at is None for r in results),
        oldest_read=min(finished, default=None),
        troubled=[r for r in results if r.failed or r.errors or r.finished_at is None],
    )


def _health_intake() -> list[HealthEvent]:
    """The newest AWS Health event of every account and region, newest first (one query)."""
    newest = (
        HealthEvent.objects.order_by()
        .values("aws_account_id", "region")
        .annotate(newest=Max("pk"))
        .values("newest")
    )
    return list(
        HealthEvent.objects.filter(pk__in=newest)
        .select_related("account")
        .only("aws_account_id", "region", "type_code", "meaning", "received_at", "account__name")
        .order_by("-received_at", "-pk")
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What needs attention now, each figure a link to the list behind it."""
    if not request.user.has_perm("maintenance.view_vpnconnection"):
        # A new account with no role yet: say so, rather than a bare "403 Forbidden".
        return render(request, "maintenance/dashboard.html", {"no_role": True}, status=403)
    now = timezone.now()
    t = _tunnel_figures(now)
    deadline_rows = [
        DeadlineRow(
            days=days,
            pending=t[f"pending_{days}"],
            unplanned=t[f"unplanned_{days}"],
            pending_url=_connections_url(deadline_within=days),
            unplanned_url=_connections_url(deadline_within=days, no_approved_request=1),
        )
        for days in DEADLINE_DAYS
    ]
    deadline_rows.append(
        DeadlineRow(
            days=None,
            pending=t["pending"],
            unplanned=t["unplanned"],
            pending_url=_connections_url(pending="yes"),
            unplanned_url=_connections_url(no_approved_request=1),
        )
    )
    start, end, upcoming_params = _upcoming_bounds(now)
    requests_url = reverse("maintenance:requests")
    can_see_requests = request.user.has_perm("maintenance.view_changerequest")
    return render(
        request,
        "maintenance/dashboard.html",
        {
            "now": now,
            "silent_worker": liveness.silent_worker(now),  # approved changes wait for it
            "t": t,
            "deadline_rows": deadline_rows,
            "urls": {
                "down": _connections_url(tunnel_down=1),
                "both_down": _connections_url(both_down=1),
                "lifecycle_off": _connections_url(lifecycle_off=1),
                "half_lifecycle": _connections_url(half_lifecycle=1),
                "aws_applied": _connections_url(aws_applied=1),
                "upcoming": f"{requests_url}?{urlencode(upcoming_params)}",
                "running": f"{requests_url}?{urlencode({'status': ChangeStatus.RUNNING.value})}",
            },
            "r": _request_figures(request.user, start, end) if can_see_requests else None,
            "upcoming_days": UPCOMING_DAYS,
            "aws_applied_days": AWS_APPLIED_DAYS,
            "sync": _sync_health() if request.user.has_perm("maintenance.view_syncrun") else None,
            "health": _health_intake()
            if request.user.has_perm("maintenance.view_healthevent")
            else None,
            "plan_no_slot_url": f"{reverse('maintenance:plan')}?problem=no_slot",
        },
    )
