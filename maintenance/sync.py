"""The inventory sync: mirror every VPN connection and tunnel of the enabled accounts.

For each account and region (a *scope*) one :class:`SyncResult` row records what was found.
The rows are made first, in the scopes' order; then for each scope:

1. Read the connections (DescribeVpnConnections) and then the replacement status of every
   tunnel (sync_reads.py). Scopes are read concurrently, up to
   ``settings.SYNC_SCOPE_WORKERS`` at once (each has its own EC2 bucket), and within a scope
   the status calls run on ``settings.AWS_SYNC_CONCURRENCY`` threads. The pools only call
   AWS; every database query stays on the calling thread, which records each scope as
   soon as its reads are done, and no AWS call happens inside a transaction.
2. In one transaction per scope, compare with the database and write only what changed:
   ``bulk_create`` for new rows, ``bulk_update`` of the changed rows grouped by the fields
   that changed. A re-sync where nothing changed writes no connection or tunnel row at all
   (``last_seen`` and ``synced_at`` move only together with a real change).
3. Audit what happened, in the same transaction: discovered, gone (never deleted), back
   again, and maintenance that AWS applied without a vpnctl execution behind it.

A scope that cannot be read (credentials, access denied, an endpoint down) is recorded as
failed and the others go on. A malformed item in an answer is skipped and recorded; it
never stops the sync.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from . import aws, times
from .choices import ActorKind, AuditAction, ConnectionState, SyncStatus, SyncTrigger, TunnelStatus
from .models import (
    AuditEvent,
    AwsAccount,
    ChangeRequest,
    ChatEvent,
    Execution,
    SyncResult,
    SyncRun,
    Tunnel,
    VpnConnection,
    announce,
)
from .models.drafting import draft_pending
from .sync_reads import Fetched, ScopeRead, capped, error_entry, fetch, read_scopes
from .texts import N_, Text

log = logging.getLogger(__name__)

NOT_FOUND = "InvalidVpnConnectionID.NotFound"

# A connection's fields copied from AWS, compared to decide whether its row changed.
CONNECTION_FIELDS = (
    "name",
    "tags",
    "state",
    "type",
    "category",
    "customer_gateway_id",
    "vpn_gateway_id",
    "transit_gateway_id",
)


class SyncScopeError(ValueError):
    """The account or region asked for is not one vpnctl syncs."""


# --------------------------------------------------------------------------------------
# Writing the database (calling thread, one transaction per scope)
# --------------------------------------------------------------------------------------


def _clip(model: type[models.Model], name: str, value: str) -> str:
    """Cut a string to its column's length (PostgreSQL refuses longer ones)."""
    max_length = model._meta.get_field(name).max_length
    return value[:max_length] if max_length else value


def _connection_values(info: aws.ConnectionInfo) -> dict[str, Any]:
    values = {name: getattr(info, name) for name in CONNECTION_FIELDS}
    return {
        name: _clip(VpnConnection, name, value) if isinstance(value, str) else value
        for name, value in values.items()
    }


def _tunnel_values(info: aws.TunnelInfo, status: aws.ReplacementStatus | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "lifecycle_control": info.lifecycle_control,
        "status": info.status if info.status in TunnelStatus.values else TunnelStatus.UNKNOWN,
        "status_message": _clip(Tunnel, "status_message", info.status_message),
        "last_status_change": info.last_status_change,
        "accepted_route_count": info.accepted_route_count,
    }
    if status is not None:  # else: keep what we knew; the error is recorded
        values["pending_maintenance"] = status.pending_maintenance
        values["maintenance_auto_applied_after"] = status.auto_applied_after
        values["last_maintenance_applied"] = status.last_applied
    return values


@dataclass
class _Plan:
    """Rows to write, grouped so that each UPDATE sets only the fields that changed."""

    new_connections: list[VpnConnection] = field(default_factory=list)
    new_tunnels: list[tuple[VpnConnection, Tunnel]] = field(default_factory=list)
    connection_updates: dict[tuple[str, ...], list[VpnConnection]] = field(
        default_factory=lambda: defaultdict(list)
    )
    tunnel_updates: dict[tuple[str, ...], list[Tunnel]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (action, connection, tunnel or None, message, details): written after the rows.
    events: list[tuple[str, VpnConnection, Tunnel | None, Text, dict[str, Any]]] = field(
        default_factory=list
    )
    # (tunnel, previous last_applied, new last_applied): maybe applied by AWS on its own.
    applied: list[tuple[Tunnel, datetime | None, datetime]] = field(default_factory=list)
    # (tunnel, previous deadline): AWS moved the deadline earlier (or set one).
    earlier_deadlines: list[tuple[Tunnel, datetime | None]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    gone: int = 0


def _set_changes(row: models.Model, values: dict[str, Any]) -> tuple[str, ...]:
    """Copy the values that differ onto the row; return the names of those fields."""
    changed = tuple(sorted(name for name, value in values.items() if getattr(row, name) != value))
    for name in changed:
        setattr(row, name, values[name])
    return changed


def _mark_gone(plan: _Plan, row: VpnConnection, now: datetime, why: Text, **extra: Any) -> None:
    row.gone_at = now
    fields = ["gone_at"]
    for name, value in extra.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            fields.append(name)
    plan.connection_updates[tuple(sorted(fields))].append(row)
    plan.events.append((AuditAction.CONNECTION_GONE, row, None, why, {}))
    plan.gone += 1


def _plan_tunnels(
    plan: _Plan,
    row: VpnConnection,
    infos: Iterable[aws.TunnelInfo],
    known: dict[str, Tunnel],
    fetched: Fetched,
    now: datetime,
) -> bool:
    """Plan the tunnels of an existing connection; True if any of them changed."""
    any_change = False
    for info in infos:
        status = fetched.statuses.get((row.vpn_connection_id, info.outside_ip))
        values = _tunnel_values(info, status)
        tunnel = known.get(info.outside_ip)
        if tunnel is None:
            plan.new_tunnels.append(
                (row, Tunnel(outside_ip=info.outside_ip, synced_at=now, **values))
            )
            any_change = True
            continue
        previous_applied = tunnel.last_maintenance_applied
        previous_deadline = tunnel.maintenance_auto_applied_after
        changed = _set_changes(tunnel, values)
        if not changed:
            continue
        deadline = tunnel.maintenance_auto_applied_after
        if deadline is not None and (previous_deadline is None or deadline < previous_deadline):
            plan.earlier_deadlines.append((tunnel, previous_deadline))
        tunnel.synced_at = now
        plan.tunnel_updates[(*changed, "synced_at")].append(tunnel)
        any_change = True
        new_applied = tunnel.last_maintenance_applied
        if new_applied is not None and (
            new_applied > previous_applied
            if previous_applied is not None
            # Never seen applied before: only news if it happened while we watched.
            else new_applied > row.first_seen
        ):
            plan.applied.append((tunnel, previous_applied, new_applied))
    return any_change


def _unusable(info: aws.ConnectionInfo) -> str:
    """Why a connection that AWS described cannot be stored as it is ("" if it can)."""
    if info.state not in ConnectionState.values:
        return f"unexpected state {info.state!r}"
    if len(info.vpn_connection_id) > VpnConnection._meta.get_field("vpn_connection_id").max_length:
        return "the connection id is too long"
    return ""


def _plan(
    account: AwsAccount,
    region: str,
    fetched: Fetched,
    existing: dict[str, VpnConnection],
    tunnels: dict[int, dict[str, Tunnel]],
    now: datetime,
) -> _Plan:
    """Compare AWS's answer with our rows and decide what to write.

    ``existing`` holds the rows the answer covers (a whole scope, or the connections asked
    for by id), so a row missing from the answer is gone.
    """
    plan = _Plan()
    answered: set[str] = set()
    for info in fetched.connections:
        connection_id = info.vpn_connection_id
        problem = _unusable(info)
        if problem:
            fetched.errors.append(
                error_entry(
                    connection_id[:64], problem, "MalformedAnswer", action="DescribeVpnConnections"
                )
            )
            fetched.untrusted.add(connection_id)
            continue
        answered.add(connection_id)
        row = existing.get(connection_id)

        if info.state == ConnectionState.DELETED:
            # AWS lists deleted connections for a while: for us they are gone.
            if row is not None and row.gone_at is None:
                _mark_gone(
                    plan,
                    row,
                    now,
                    Text(N_("%(connection)s was deleted in AWS."), connection=connection_id),
                    state=info.state,
                )
            continue

        values = _connection_values(info)
        if row is None:
            row = VpnConnection(
                account=account,
                region=region,
                vpn_connection_id=connection_id,
                first_seen=now,
                last_seen=now,
                **values,
            )
            plan.new_connections.append(row)
            for tunnel_info in info.tunnels:
                status = fetched.statuses.get((connection_id, tunnel_info.outside_ip))
                tunnel = Tunnel(
                    outside_ip=tunnel_info.outside_ip,
                    synced_at=now,
                    **_tunnel_values(tunnel_info, status),
                )
                plan.new_tunnels.append((row, tunnel))
            plan.events.append(
                (
                    AuditAction.CONNECTION_DISCOVERED,
                    row,
                    None,
                    Text(
                        N_("%(connection)s found in %(account)s %(region)s."),
                        connection=connection_id,
                        account=account.name,
                        region=region,
                    ),
                    {
                        "region": region,
                        "name": info.name,
                        "state": info.state,
                        "tunnels": [t.outside_ip for t in info.tunnels],
                    },
                )
            )
            continue

        changed = list(_set_changes(row, values))
        if row.gone_at is not None:
            row.gone_at = None
            changed.append("gone_at")
            plan.events.append(
                (
                    AuditAction.CONNECTION_RETURNED,
                    row,
                    None,
                    Text(N_("%(connection)s is back in AWS."), connection=connection_id),
                    {},
                )
            )
        tunnels_changed = _plan_tunnels(
            plan, row, info.tunnels, tunnels.get(row.pk, {}), fetched, now
        )
        if changed:
            row.last_seen = now
            plan.connection_updates[tuple(sorted([*changed, "last_seen"]))].append(row)
        if changed or tunnels_changed:
            plan.changed.add(connection_id)

    for connection_id, row in existing.items():
        if (
            row.gone_at is None
            and connection_id not in answered
            and connection_id not in fetched.untrusted
        ):
            _mark_gone(
                plan,
                row,
                now,
                Text(
                    N_("%(connection)s is no longer listed by AWS."),
                    connection=row.vpn_connection_id,
                ),
            )
    return plan


def _whole_seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _explained_by_vpnctl(applied: list[tuple[Tunnel, datetime | None, datetime]]) -> set[int]:
    """Tunnels whose newly applied maintenance has a vpnctl execution behind it.

    An execution explains it when its "about to call AWS" mark lies after the previous
    LastMaintenanceApplied and at or before the new one. AWS's timestamps come in whole
    seconds while ours have microseconds, so ours are compared at AWS's precision (a call
    at 10:00:00.4 explains maintenance reported as applied at 10:00:00). One query.
    """
    if not applied:
        return set()
    calls: dict[int, list[datetime]] = defaultdict(list)
    for tunnel_id, calling_at in Execution.objects.filter(
        change_request__tunnel_id__in=[tunnel.pk for tunnel, _, _ in applied],
        calling_aws_at__isnull=False,
    ).values_list("change_request__tunnel_id", "calling_aws_at"):
        calls[tunnel_id].append(calling_at)
    return {
        tunnel.pk
        for tunnel, previous, new in applied
        if any(
            (previous is None or at > previous) and _whole_seconds(at) <= new
            for at in calls[tunnel.pk]
        )
    }


def _write(plan: _Plan) -> None:
    """Write a plan: bulk inserts, grouped bulk updates, then its audit events."""
    if plan.new_connections:
        VpnConnection.objects.bulk_create(plan.new_connections)
    if plan.new_tunnels:
        for connection, tunnel in plan.new_tunnels:
            tunnel.connection = connection
        Tunnel.objects.bulk_create([tunnel for _, tunnel in plan.new_tunnels])
    for fields, rows in plan.connection_updates.items():
        VpnConnection.objects.bulk_update(rows, list(fields))
    for fields, rows in plan.tunnel_updates.items():
        Tunnel.objects.bulk_update(rows, list(fields))

    for action, connection, tunnel, message, details in plan.events:
        AuditEvent.record(
            action,
            actor_kind=ActorKind.SYSTEM,
            connection=connection,
            tunnel=tunnel,
            message=message,
            details=details,
        )
    _note_earlier_deadlines(plan.earlier_deadlines)
    explained = _explained_by_vpnctl(plan.applied)
    for tunnel, previous, new in plan.applied:
        if tunnel.pk in explained:
            continue
        message = Text(
            N_(
                "AWS applied maintenance to %(connection)s %(ip)s at %(at)s without a "
                "vpnctl change."
            ),
            connection=tunnel.connection.vpn_connection_id,
            ip=tunnel.outside_ip,
            at=new,
        )
        AuditEvent.record(
            AuditAction.MAINTENANCE_APPLIED_BY_AWS,
            actor_kind=ActorKind.AWS,
            tunnel=tunnel,
            message=message,
            details={"previous": times.iso(previous), "applied": times.iso(new)},
        )
        announce(ChatEvent.APPLIED_BY_AWS, message, tunnel=tunnel)


def _note_earlier_deadlines(moved: list[tuple[Tunnel, datetime | None]]) -> None:
    """Open requests whose window now ends after their tunnel's new deadline: each one is
    audited and its requester told (one query, none when no deadline moved)."""
    if not moved:
        return
    previous = {tunnel.pk: before for tunnel, before in moved}
    tunnels = {tunnel.pk: tunnel for tunnel, _ in moved}
    late = ChangeRequest.objects.ending_after_deadline().filter(tunnel_id__in=list(previous))
    for request in late.select_related("requester"):
        request.tunnel = tunnels[request.tunnel_id]
        request.note_deadline_moved(previous[request.tunnel_id])


def _load(
    account: AwsAccount, region: str, connection_ids: list[str] | None = None
) -> tuple[dict[str, VpnConnection], dict[int, dict[str, Tunnel]]]:
    """Our rows for a scope (or some connections of it), in two queries."""
    rows = VpnConnection.objects.filter(account=account, region=region)
    if connection_ids is not None:
        rows = rows.filter(vpn_connection_id__in=connection_ids)
    existing = {row.vpn_connection_id: row for row in rows}
    by_pk = {row.pk: row for row in existing.values()}
    tunnels: dict[int, dict[str, Tunnel]] = defaultdict(dict)
    for tunnel in Tunnel.objects.filter(connection_id__in=list(by_pk)):
        tunnel.connection = by_pk[tunnel.connection_id]  # no query per tunnel later
        tunnels[tunnel.connection_id][tunnel.outside_ip] = tunnel
    for row in existing.values():
        row.account = account
    return existing, tunnels


def _lock_account(account: AwsAccount) -> None:
    # Two syncs of one account at once (schedule and button) would both insert the same new
    # connections. On PostgreSQL this row lock makes the second wait; SQLite ignores it, but
    # there the IMMEDIATE transaction already admits one writer at a time.
    # FOR NO KEY UPDATE: a plain FOR UPDATE would block the foreign-key checks of every
    # audit event naming this account until the sync commits, and deadlock with them.
    AwsAccount.objects.select_for_update(no_key=True).filter(pk=account.pk).exists()


# --------------------------------------------------------------------------------------
# One scope, one run
# --------------------------------------------------------------------------------------


def _fail(result: SyncResult, error: aws.AwsError | Exception) -> None:
    """Record a scope that could not be read, and audit it."""
    if isinstance(error, aws.AwsError):
        entry = error_entry("", error.message, error.code, error.request_id)
    else:
        entry = error_entry("", "vpnctl failed while syncing; see the server log.", "InternalError")
    with transaction.atomic():
        result.failed = True
        result.errors = [*result.errors, entry]
        result.finished_at = timezone.now()
        result.save()
        AuditEvent.record(
            AuditAction.SYNC_FAILED,
            actor_kind=ActorKind.SYSTEM,
            account=result.account,
            message=Text(
                N_("Sync of %(account)s %(region)s failed: %(code)s: %(message)s"),
                account=result.account.name,
                region=result.region,
                code=entry.get("code"),
                message=entry["message"],
            ),
            details={"region": result.region, **entry},
        )


def _sync_scope(result: SyncResult, read: ScopeRead) -> SyncResult:
    """Write one account and region's reads into the database and its SyncResult.

    Never raises (unless the database itself fails while recording the failure).
    """
    account, region = result.account, result.region
    result.started_at = read.started_at  # when its reads began, not when it was queued
    if read.error is not None:
        if isinstance(read.error, aws.AwsError):
            result.api_calls = 1
        else:
            log.error("Sync of %s %s failed", account.name, region, exc_info=read.error)
        _fail(result, read.error)
        return result
    fetched = read.fetched

    now = timezone.now()
    try:
        with transaction.atomic():
            _lock_account(account)
            existing, tunnels = _load(account, region)
            plan = _plan(account, region, fetched, existing, tunnels, now)
            _write(plan)
            result.connections = sum(
                1 for c in fetched.connections if c.state != ConnectionState.DELETED
            )
            result.tunnels = sum(
                len(c.tunnels) for c in fetched.connections if c.state != ConnectionState.DELETED
            )
            result.created = len(plan.new_connections)
            result.changed = len(plan.changed)
            result.gone = plan.gone
            result.api_calls = fetched.api_calls
            result.errors = capped(fetched.errors)
            result.finished_at = timezone.now()
            result.save()
    except Exception as exc:
        log.exception("Writing the sync of %s %s failed", account.name, region)
        result.api_calls = fetched.api_calls
        _fail(result, exc)
    return result


def _overall(results: list[SyncResult]) -> str:
    if results and all(r.failed for r in results):
        return SyncStatus.FAILED
    if any(r.failed or r.errors for r in results):
        return SyncStatus.PARTIAL
    return SyncStatus.OK


def scopes(
    account_name: str | None = None, region: str | None = None
) -> list[tuple[AwsAccount, str]]:
    """The (account, region) pairs a sync covers. Raises SyncScopeError for unknown ones."""
    accounts = AwsAccount.objects.filter(enabled=True).order_by("name")
    if account_name is not None:
        accounts = accounts.filter(name=account_name)
        if not accounts:
            raise SyncScopeError(f"No enabled AWS account is named {account_name!r}.")
    pairs = [
        (account, account_region)
        for account in accounts
        for account_region in account.regions
        if region is None or account_region == region
    ]
    if region is not None and not pairs:
        raise SyncScopeError(f"No enabled AWS account syncs region {region!r}.")
    return pairs


def run_sync(
    *,
    account_name: str | None = None,
    region: str | None = None,
    trigger: str = SyncTrigger.SCHEDULE,
    user: Any = None,
) -> SyncRun:
    """Sync every enabled account and region (or the one named) and return the run.

    Raises SyncScopeError, before anything is recorded, for an unknown account or region.
    """
    pairs = scopes(account_name, region)
    requested_by = user if user is not None and getattr(user, "is_authenticated", False) else None
    run = SyncRun.objects.create(trigger=trigger, requested_by=requested_by)
    try:
        # Every scope's row first, in the scopes' order (the pks follow it): a running
        # sync shows each scope it covers as running until that scope is recorded.
        results = [
            SyncResult.objects.create(run=run, account=account, region=account_region)
            for account, account_region in pairs
        ]
        read_scopes(pairs, lambda index, read: _sync_scope(results[index], read))
        run.status = _overall(results)
    finally:
        if run.status == SyncStatus.RUNNING:  # something escaped: say so, then re-raise
            run.status = SyncStatus.FAILED
            _abandon(run)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    # What the sync found pending, the maintenance policies now draft (once per tunnel).
    draft_pending(timezone.now())
    return run


def _abandon(run: SyncRun) -> None:
    """Close the scopes a run that stopped early never recorded: failed, with the reason."""
    entry = error_entry(
        "", "The sync stopped before this account and region was recorded.", "InternalError"
    )
    SyncResult.objects.filter(run=run, finished_at__isnull=True).update(
        failed=True, errors=[entry], finished_at=timezone.now()
    )


def refresh_connection(connection: VpnConnection) -> VpnConnection:
    """Read one connection and its tunnels' replacement status fresh from AWS; store them.

    Used right before and after an execution touches a tunnel, so every failure is raised
    (an AwsError) rather than recorded: the caller must not act on stale data. A connection
    AWS no longer knows (``InvalidVpnConnectionID.NotFound``, or not in the answer) is
    marked gone and returned, which is a definite answer, not a failure.
    """
    account = connection.account
    region = connection.region
    connection_id = connection.vpn_connection_id
    try:
        fetched = fetch(account, region, [connection_id])
    except aws.AwsError as exc:
        if exc.code != NOT_FOUND:
            raise
        fetched = Fetched()
    if fetched.errors:
        first = fetched.errors[0]
        raise aws.AwsError(
            first.get("action", "DescribeVpnConnections"),
            first.get("code", "MalformedAnswer"),
            f"{first['item']}: {first['message']}",
            first.get("request_id", ""),
        )

    now = timezone.now()
    with transaction.atomic():
        _lock_account(account)
        existing, tunnels = _load(account, region, [connection_id])
        plan = _plan(account, region, fetched, existing, tunnels, now)
        _write(plan)
    return VpnConnection.objects.select_related("account").get(pk=connection.pk)


def scheduled_sync() -> int:
    """django-q2 task: a scheduled sync of everything. Returns the SyncRun's pk."""
    return run_sync(trigger=SyncTrigger.SCHEDULE).pk


def manual_sync(user_id: int | None = None) -> int:
    """django-q2 task behind the "Sync now" button. Returns the SyncRun's pk."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return run_sync(trigger=SyncTrigger.MANUAL, user=user).pk
