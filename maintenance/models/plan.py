"""The plan of the fleet: every pending maintenance, what it is planned into, and what is
wrong with that plan, worst first.

``fleet_plan(tunnels, now)`` reads the tunnels with pending maintenance (filtered as the
caller likes) and answers one ``PlanRow`` each, worst first, in a fixed number of queries
whatever the fleet's size: the tunnels, their connections' open requests, the blackouts
over those windows, and the enabled policies with their accounts. The rows are ranked in
Python (by problem, then deadline), so the caller pages them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _

from ..choices import ChangeStatus
from .changes import ChangeRequest
from .inventory import Tunnel, TunnelQuerySet
from .operations import BlackoutPeriod
from .policies import MaintenancePolicy, policy_for


class PlanProblem(models.TextChoices):
    """What can be wrong with a tunnel's plan, in the order the plan page lists them."""

    NOTHING_PLANNED = "nothing_planned", _("nothing planned before AWS's deadline")
    NO_SLOT = "no_slot", _("its policy found no window before AWS's deadline")
    AFTER_DEADLINE = "after_deadline", _("the window ends after AWS's deadline")
    BLACKOUT = "blackout", _("the window overlaps a blackout")
    BOTH_TUNNELS = "both_tunnels", _("both tunnels of the connection in one window")
    OUTSIDE_PREFERRED = "outside_preferred", _("outside the policy's preferred windows")
    WAITING_APPROVAL = "waiting_approval", _("planned, waiting for approval")


# The order of the page: a row's worst problem ranks it; no plan at all, whether or not a
# policy tried, ranks first (then by deadline).
PROBLEM_RANK = {problem: rank for rank, problem in enumerate(PlanProblem)}
PROBLEM_RANK[PlanProblem.NO_SLOT] = PROBLEM_RANK[PlanProblem.NOTHING_PLANNED]


@dataclass
class PlanRow:
    tunnel: Tunnel
    policy: MaintenancePolicy | None
    request: ChangeRequest | None
    problems: list[PlanProblem] = field(default_factory=list)

    @property
    def deadline(self) -> datetime | None:
        return self.tunnel.maintenance_auto_applied_after

    @property
    def planned_into(self) -> str:
        """Policy window, manual request, or nothing."""
        if self.request is None:
            return "nothing"
        return "policy" if self.request.policy_id else "manual"

    @property
    def rank(self) -> int:
        """Its worst problem's place in PlanProblem (no problem: after them all)."""
        return min((PROBLEM_RANK[p] for p in self.problems), default=len(PROBLEM_RANK))


def pending_tunnels() -> TunnelQuerySet:
    return Tunnel.objects.pending().live().select_related("connection__account")


def fleet_plan(tunnels: TunnelQuerySet, now: datetime) -> list[PlanRow]:
    """One row for each tunnel of the QuerySet, with its problems, worst first."""
    open_requests = list(
        ChangeRequest.objects.open()
        .filter(tunnel__connection__in=tunnels.values("connection_id"))
        .only(
            "pk",
            "tunnel_id",
            "status",
            "window_start",
            "window_end",
            "policy_id",
            "outside_preferred",
            "standard_fingerprint",
            "tunnel__connection_id",
        )
        .select_related("tunnel")
        .annotate(in_blackout=_in_blackout())
    )
    by_tunnel = {r.tunnel_id: r for r in open_requests}
    by_connection: dict[int, list[ChangeRequest]] = defaultdict(list)
    for request in open_requests:
        by_connection[request.tunnel.connection_id].append(request)
    policies = list(
        MaintenancePolicy.objects.filter(enabled=True).prefetch_related("accounts").order_by("name")
    )
    rows = []
    for tunnel in tunnels.select_related("connection__account"):
        policy = policy_for(tunnel.connection, policies)
        request = by_tunnel.get(tunnel.pk)
        row = PlanRow(tunnel=tunnel, policy=policy, request=request)
        row.problems = _problems(row, by_connection[tunnel.connection_id])
        rows.append(row)
    far = now + timedelta(days=3650)
    return sorted(rows, key=lambda r: (r.rank, r.deadline or far))


def _in_blackout() -> Exists:
    """The request's window overlaps a blackout binding its account (or every account):
    check_rules's own test, per request in SQL."""
    return Exists(
        BlackoutPeriod.objects.overlapping(
            OuterRef("window_start"), OuterRef("window_end")
        ).binding(OuterRef("tunnel__connection__account_id"))
    )


def _problems(row: PlanRow, connection_requests: list[ChangeRequest]) -> list[PlanProblem]:
    problems = []
    request, deadline = row.request, row.deadline
    if request is None:
        no_slot = row.policy is not None and row.tunnel.no_slot_since is not None
        problems.append(PlanProblem.NO_SLOT if no_slot else PlanProblem.NOTHING_PLANNED)
        return problems
    if deadline is not None and request.window_end > deadline:
        problems.append(PlanProblem.AFTER_DEADLINE)
    if request.in_blackout:
        problems.append(PlanProblem.BLACKOUT)
    if _sibling_in_same_window(row, connection_requests):
        problems.append(PlanProblem.BOTH_TUNNELS)
    if request.outside_preferred:
        problems.append(PlanProblem.OUTSIDE_PREFERRED)
    if request.status == ChangeStatus.PENDING_APPROVAL:
        problems.append(PlanProblem.WAITING_APPROVAL)
    return problems


def _sibling_in_same_window(row: PlanRow, requests: list[ChangeRequest]) -> bool:
    """The other tunnel's open request shares the window (a batch may do that: it runs
    them one after the other, but both are taken down in the same window)."""
    request = row.request
    return request is not None and any(
        r.tunnel_id != row.tunnel.pk
        and r.window_start < request.window_end
        and r.window_end > request.window_start
        for r in requests
    )


def plan_counts(rows: list[PlanRow]) -> dict[str, Any]:
    """How many rows have each problem (for the page's summary)."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for problem in row.problems:
            counts[problem] += 1
    return dict(counts)
