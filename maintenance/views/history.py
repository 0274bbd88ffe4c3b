"""The change history of a tunnel or a connection: vpnctl's changes and AWS's own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..choices import AuditAction, ChangeStatus, Decision
from ..models import Approval, AuditEvent, ChangeRequest, Tunnel, VpnConnection
from .helpers import require_perm


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
    events = (
        AuditEvent.objects.filter(event_filter, action=AuditAction.MAINTENANCE_APPLIED_BY_AWS)
        .select_related("tunnel")
        .order_by()  # sorted below with the changes
    )
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
    # The events by the connection's tunnels' ids: joined through the tunnel, SQLite read
    # every "applied by AWS" event of the fleet (72 ms at 5,000 connections).
    tunnels = Tunnel.objects.filter(connection=connection).values("pk")
    rows = _history(Q(tunnel__connection=connection), Q(tunnel__in=tunnels))
    return render(
        request,
        "maintenance/history.html",
        {"connection": connection, "tunnel": None, "rows": rows},
    )
