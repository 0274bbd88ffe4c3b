"""Requests the maintenance policies draft by themselves.

When a tunnel under a policy has pending maintenance and no open request, ``draft_pending``
drafts one into the policy's next preferred window that ends before AWS's deadline and
misses every blackout and the window planned on the connection's other tunnel
(``planning.find_slot``). No preferred window fits: the latest slot before the deadline,
flagged as outside the preferred windows. No slot at all: nothing is drafted, and the plan
shows the tunnel as unplanned. The drafts are submitted like any request
(``create_checked``: the same rules and audit), by the planner's own user, and notify the
approvers; a draft under a policy approved as a standard change is approved by it at once.

It runs after every sync and after every read a Health event asked for; it is idempotent,
since a tunnel with an open request is never drafted again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import DateTimeField, Exists, OuterRef, QuerySet, Value
from django.db.models.functions import Coalesce

from ..choices import ChangeKind, ChangeStatus
from ..planning import HORIZON, find_slot
from .changes import ChangeRequest, create_checked
from .inventory import Tunnel
from .operations import BlackoutPeriod
from .policies import MaintenancePolicy, policy_for

# The user the drafts are requested by: it cannot sign in and holds no role.
PLANNER_USERNAME = "vpnctl-planner"


def planner() -> Any:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=PLANNER_USERNAME, defaults={"is_active": False, "first_name": "vpnctl"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@dataclass
class DraftOutcome:
    drafted: list[ChangeRequest] = field(default_factory=list)
    unplannable: list[tuple[Tunnel, MaintenancePolicy]] = field(default_factory=list)


def enabled_policies() -> list[MaintenancePolicy]:
    return list(
        MaintenancePolicy.objects.filter(enabled=True)
        .prefetch_related("accounts", "approvals")
        .order_by("name")
    )


# How a policy's draft may end without the maintenance being applied, after which the
# policy leaves the tunnel to people until AWS's maintenance changes: someone said no
# (rejected, cancelled), or a check or AWS stopped it (blocked, failed, timed out). A
# draft that expired (no one decided in time) is drafted again into the next window.
NOT_DRAFTED_AGAIN = [
    ChangeStatus.REJECTED,
    ChangeStatus.CANCELLED,
    ChangeStatus.BLOCKED,
    ChangeStatus.FAILED,
    ChangeStatus.TIMED_OUT,
]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ended_drafts() -> QuerySet:
    """A tunnel's policy drafts that ended so since its last applied maintenance (for a
    tunnel, as ``Exists``)."""
    since = Coalesce(
        OuterRef("last_maintenance_applied"), Value(EPOCH), output_field=DateTimeField()
    )
    return ChangeRequest.objects.filter(
        tunnel=OuterRef("pk"),
        policy__isnull=False,
        status__in=NOT_DRAFTED_AGAIN,
        created_at__gt=since,
    )


def draft_pending(now: datetime, *, connection_ids: list[int] | None = None) -> DraftOutcome:
    """Draft a request for every tunnel under a policy that needs one."""
    outcome = DraftOutcome()
    policies = enabled_policies()
    if not policies:
        _flag_no_slot(outcome, connection_ids, now)
        return outcome
    tunnels = (
        Tunnel.objects.pending()
        .filter(connection__gone_at__isnull=True)
        .exclude(change_requests__status__in=ChangeStatus.OPEN)
        .exclude(Exists(ended_drafts()))
        .select_related("connection__account")
        .order_by("maintenance_auto_applied_after", "outside_ip")
    )
    if connection_ids is not None:
        tunnels = tunnels.filter(connection_id__in=connection_ids)
    by_connection: dict[int, list[Tunnel]] = defaultdict(list)
    for tunnel in tunnels:
        by_connection[tunnel.connection_id].append(tunnel)
    user = None
    for connection_tunnels in by_connection.values():
        policy = policy_for(connection_tunnels[0].connection, policies)
        if policy is None:
            continue
        user = user or planner()
        # One tunnel after the other: the second sees the first's window as taken.
        for tunnel in connection_tunnels:
            request = draft_one(policy, tunnel, user=user, now=now)
            if request is None:
                outcome.unplannable.append((tunnel, policy))
            else:
                outcome.drafted.append(request)
    _flag_no_slot(outcome, connection_ids, now)
    return outcome


def _flag_no_slot(outcome: DraftOutcome, connection_ids: list[int] | None, now: datetime) -> None:
    """Mark the tunnels no slot was found for (the dashboard counts them) and clear the
    flag of the others looked at: read first, so that a sync that changes nothing writes
    nothing."""
    unplannable = {t.pk for t, _policy in outcome.unplannable}
    flagged = Tunnel.objects.filter(no_slot_since__isnull=False)
    if connection_ids is not None:
        flagged = flagged.filter(connection_id__in=connection_ids)
    flagged_ids = set(flagged.values_list("pk", flat=True))
    if flagged_ids - unplannable:
        Tunnel.objects.filter(pk__in=flagged_ids - unplannable).update(no_slot_since=None)
    if unplannable - flagged_ids:
        Tunnel.objects.filter(pk__in=unplannable - flagged_ids).update(no_slot_since=now)


def draft_kind(policy: MaintenancePolicy, tunnel: Tunnel) -> str | None:
    """What the policy drafts for a tunnel with pending maintenance: turning lifecycle
    control on where it is off and the policy allows it (which applies the maintenance at
    once), else the replacement; None if the policy allows neither."""
    if not tunnel.lifecycle_control and ChangeKind.ENABLE_LIFECYCLE in policy.kinds:
        return ChangeKind.ENABLE_LIFECYCLE
    if ChangeKind.REPLACE in policy.kinds:
        return ChangeKind.REPLACE
    return None


def draft_one(
    policy: MaintenancePolicy, tunnel: Tunnel, *, user: Any, now: datetime
) -> ChangeRequest | None:
    """Draft one tunnel's request under ``policy``; None when no slot fits before the
    deadline (or when a request was opened for it meanwhile)."""
    deadline = tunnel.maintenance_auto_applied_after
    with transaction.atomic():
        connection = tunnel.connection
        others = ChangeRequest.objects.open().filter(tunnel__connection=connection)
        if any(r.tunnel_id == tunnel.pk for r in others):
            return None
        taken = [(r.window_start, r.window_end) for r in others]
        until = deadline or now + HORIZON
        taken += [
            (b.starts_at, b.ends_at)
            for b in BlackoutPeriod.objects.binding(connection.account_id).overlapping(now, until)
        ]
        kind = draft_kind(policy, tunnel)
        if kind is None:
            return None
        slot = find_slot(
            windows=policy.weekly_windows(),
            now=now,
            lead_time=policy.lead_time,
            length=policy.window_length,
            deadline=deadline,
            taken=taken,
        )
        if slot is None:
            return None
        request = create_checked(
            user=user,
            tunnel=tunnel,
            kind=kind,
            reason=policy.description or policy.name,
            window_start=slot.start,
            window_end=slot.end,
            start_when_approved=False,
            skip_tunnel_replacement=False,
            now=now,
            policy=policy,
            outside_preferred=not slot.preferred,
        )
        if policy.is_standard_at(slot.start):
            request.approve_as_standard(policy, now=now)
        else:
            request.announce_submitted()
    return request
