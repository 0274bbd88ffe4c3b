"""The home page's dashboard, and the change history of a tunnel or a connection.

Every figure on the dashboard links to the filtered list behind it, and comes from a few
aggregate queries (conditional counts and EXISTS subqueries), never a loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, Max, OuterRef, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .choices import AuditAction, ChangeStatus, Decision, PendingMaintenance, TunnelStatus
from .forms import AWS_APPLIED_DAYS, DEADLINE_DAYS, applied_by_aws_since, planned_before_deadline
from .models import (
    Approval,
    AuditEvent,
    ChangeRequest,
    SyncResult,
    Tunnel,
    VpnConnection,
)
from .view_helpers import require_perm

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
    unplanned = ~Q(planned_before_deadline())
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
            "pk", filter=Q(applied_by_aws_since(now - timedelta(days=AWS_APPLIED_DAYS)))
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


def _latest_sync_results() -> QuerySet[SyncResult]:
    """The newest result of every enabled account and region, in one query."""
    latest = (
        SyncResult.objects.values("account", "region").annotate(newest=Max("pk")).values("newest")
    )
    return (
        SyncResult.objects.filter(pk__in=latest, account__enabled=True)
        .select_related("account", "run")
        .order_by("account__name", "region")
    )


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
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
            "sync_results": list(_latest_sync_results())
            if request.user.has_perm("maintenance.view_syncrun")
            else None,
        },
    )


# ---------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------


@dataclass
class HistoryRow:
    """One line of a history: a change vpnctl made (or refused), or maintenance AWS applied."""

    at: datetime
    tunnel: Tunnel
    change: ChangeRequest | None = None
    event: AuditEvent | None = None
    approvers: list[Any] | None = None
    down_for: timedelta | None = None

    @property
    def by_aws(self) -> bool:
        return self.event is not None

    @property
    def execution(self) -> Any:
        return getattr(self.change, "execution", None) if self.change else None

    @property
    def down_text(self) -> str | None:
        return duration_text(self.down_for) if self.down_for is not None else None


def duration_text(delta: timedelta) -> str:
    """A DOWN time as people say it: "45 s", "4 min 30 s", "1 h 5 min"."""
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    return ngettext("%(s)d second", "%(s)d seconds", secs) % {"s": secs}


def _applied_at(event: AuditEvent) -> datetime:
    """When AWS says it applied the maintenance; when sync noticed, if that is unreadable."""
    applied = (event.details or {}).get("applied")
    moment = parse_datetime(applied) if isinstance(applied, str) else None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.UTC)
    return moment or event.at


def _history(tunnel_filter: Q, event_filter: Q) -> list[HistoryRow]:
    """Past changes and AWS's own maintenance, newest first, in three queries."""
    changes = (
        ChangeRequest.objects.filter(tunnel_filter)
        .exclude(status__in=[ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED])
        .select_related("requester", "tunnel", "execution")
        .prefetch_related(
            Prefetch(
                "approvals",
                queryset=Approval.objects.filter(decision=Decision.APPROVE).select_related(
                    "approver"
                ),
            )
        )
    )
    rows: list[HistoryRow] = []
    for change in changes:
        execution = getattr(change, "execution", None)
        down_for = None
        if execution and execution.down_seen_at and execution.up_seen_at:
            down_for = execution.up_seen_at - execution.down_seen_at
        ran_at = execution and (execution.calling_aws_at or execution.claimed_at)
        rows.append(
            HistoryRow(
                at=ran_at or change.finished_at or change.created_at,
                tunnel=change.tunnel,
                change=change,
                approvers=[a.approver for a in change.valid_approvals()],
                down_for=down_for,
            )
        )
    events = AuditEvent.objects.filter(
        event_filter, action=AuditAction.MAINTENANCE_APPLIED_BY_AWS
    ).select_related("tunnel")
    rows.extend(HistoryRow(at=_applied_at(e), tunnel=e.tunnel, event=e) for e in events)
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows


def _require_history_perms(request: HttpRequest) -> None:
    require_perm(request, "maintenance.view_vpnconnection")
    require_perm(request, "maintenance.view_changerequest")


@login_required
def tunnel_history(request: HttpRequest, pk: int) -> HttpResponse:
    """Every change made to one tunnel, and every time AWS applied maintenance to it itself."""
    _require_history_perms(request)
    tunnel = get_object_or_404(Tunnel.objects.select_related("connection__account"), pk=pk)
    rows = _history(Q(tunnel=tunnel), Q(tunnel=tunnel))
    return render(
        request,
        "maintenance/history.html",
        {"connection": tunnel.connection, "tunnel": tunnel, "rows": rows},
    )


@login_required
def connection_history(request: HttpRequest, pk: int) -> HttpResponse:
    """The history of both tunnels of a connection, in one list."""
    _require_history_perms(request)
    connection = get_object_or_404(VpnConnection.objects.select_related("account"), pk=pk)
    rows = _history(Q(tunnel__connection=connection), Q(tunnel__connection=connection))
    return render(
        request,
        "maintenance/history.html",
        {"connection": connection, "tunnel": None, "rows": rows},
    )
