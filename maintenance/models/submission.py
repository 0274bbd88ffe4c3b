"""The submission of a change request, shared by single requests, batches and the
requests maintenance policies draft: check the rules, create it, audit it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..choices import AuditAction, ChangeKind
from ..texts import N_, Text
from .audit import AuditEvent
from .inventory import Tunnel, VpnConnection
from .rules import check_rules


def create_checked(
    *,
    user: Any,
    tunnel: Tunnel,
    kind: str,
    reason: str,
    window_start: datetime,
    window_end: datetime,
    start_when_approved: bool,
    skip_tunnel_replacement: bool,
    now: datetime,
    batch: Any = None,
    policy: Any = None,
    outside_preferred: bool = False,
) -> Any:
    """Check the rules, create the request and audit it; call inside a transaction.

    ``policy``: the maintenance policy drafting it (models/drafting.py), by its planner user.
    """
    # Lock the connection so that two requests on its tunnels are checked one after
    # the other (PostgreSQL; SQLite's IMMEDIATE transaction already serialises us).
    VpnConnection.objects.select_for_update(no_key=True).filter(pk=tunnel.connection_id).first()
    tunnel = Tunnel.objects.select_related("connection__account").get(pk=tunnel.pk)
    check_rules(
        tunnel=tunnel,
        kind=kind,
        window_start=window_start,
        window_end=window_end,
        skip_tunnel_replacement=skip_tunnel_replacement,
        now=now,
        batch_id=batch.pk if batch is not None else None,
    )
    # The request's model through the tunnel's relation (changes.py uses this module).
    request = tunnel.change_requests.model(
        kind=kind,
        tunnel=tunnel,
        skip_tunnel_replacement=skip_tunnel_replacement,
        requester=user,
        reason=reason.strip(),
        window_start=window_start,
        window_end=window_end,
        start_when_approved=start_when_approved,
        required_approvals=tunnel.connection.account.approvals_needed(),
        created_at=now,
        updated_at=now,
        batch=batch,
        policy=policy,
        outside_preferred=outside_preferred,
    )
    request.fingerprint = request.compute_fingerprint()
    request.save()
    details = {**request.audit_snapshot(), "reason": request.reason}
    if batch is not None:
        details["batch"] = batch.pk
    if policy is None:
        message = Text(
            N_("%(user)s requested: %(kind)s on %(tunnel)s"),
            user=user.get_username(),
            kind=ChangeKind(kind).label,
            tunnel=str(tunnel),
        )
    else:
        details.update(
            policy=policy.pk, policy_name=policy.name, outside_preferred=outside_preferred
        )
        message = Text(
            N_("Policy %(policy)s drafted: %(kind)s on %(tunnel)s, outside its preferred windows")
            if outside_preferred
            else N_("Policy %(policy)s drafted: %(kind)s on %(tunnel)s, in a preferred window"),
            policy=policy.name,
            kind=ChangeKind(kind).label,
            tunnel=str(tunnel),
        )
    AuditEvent.record(
        AuditAction.REQUEST_SUBMITTED,
        actor=user,
        change_request=request,
        message=message,
        details=details,
        at=now,
    )
    return request
