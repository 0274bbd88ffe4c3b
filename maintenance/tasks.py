"""Background jobs (django-q2): execute approved changes exactly once, watch, sweep.

How a change runs:

1. ``execute_change`` claims the request (``approved`` → ``running``, a conditional
   UPDATE: a second delivery of the same task finds nothing to claim and stops).
2. It reads the connection fresh from AWS and runs the preflight checks. A failed check
   ends the request as ``blocked`` (or ``superseded`` when AWS already did the work);
   nothing is sent.
3. It records "about to call AWS" and commits, then makes the one AWS call. No code path
   makes the call unless it won that record, so a retry, a duplicate delivery or a
   reconciled execution can never send it twice.
4. ``watch_execution`` looks at the tunnel once and books its next look, a few seconds
   later, until the change shows done or the time limit passes.
5. ``sweep`` (every minute) starts requests whose window opened, expires the ones whose
   window closed, and reconciles executions whose worker went silent: never sent → failed;
   possibly sent → watched, never called again.

No AWS call happens inside a database transaction.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import aws, chat, enqueue, liveness, sync, times
from .choices import (
    BatchTurn,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    PendingMaintenance,
    Preflight,
    StepLevel,
    TunnelStatus,
)
from .models import (
    ChangeRequest,
    Execution,
    Tunnel,
    VpnConnection,
    deadline_refusal,
    ends_after_deadline,
)
from .models.drafting import draft_pending
from .texts import N_, Text

log = logging.getLogger(__name__)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------


def execute_change(request_pk: int, queued_as: str = "") -> str:
    """Run one approved change whose window is open. Returns what happened, in words."""
    request = (
        ChangeRequest.objects.select_related("tunnel__connection__account")
        .filter(pk=request_pk)
        .first()
    )
    if request is None:
        return "no such request"
    now = timezone.now()
    if request.status != ChangeStatus.APPROVED:
        return f"nothing to do: the request is {request.status}"
    if request.window_end <= now:
        request.expire(now)
        return "expired"
    if request.window_start > now:
        request.execution_not_started()
        return "window not open yet"
    turn, reason = batch_turn(request) if request.batch_id is not None else (BatchTurn.GO, "")
    if turn == BatchTurn.WAIT:
        # Not claimed: the sweeper (every minute) or the first tunnel's end queues it again.
        request.execution_not_started()
        return "waiting for the other tunnel of the batch"
    execution = Execution.claim(request, task_id=queued_as, worker=_worker_name())
    if execution is None:
        return "claimed by another worker"
    if turn == BatchTurn.STOP:
        execution.block(reason)
        return "blocked: the first tunnel's change did not succeed"
    return _run(execution)


def batch_turn(request: ChangeRequest) -> tuple[BatchTurn, str]:
    """May this batch request start? (BatchTurn, reason).

    A batch runs one tunnel of a connection at a time: a request waits for the batch's
    earlier requests on the same connection until they have succeeded and their tunnel is
    UP, and stops if one of them failed. One that never ran (cancelled, rejected,
    expired) left its tunnel alone, so it does not hold the next one back. Across
    connections nothing waits. The preflight's "nothing else running on the connection"
    check stays as the last guard.
    """
    earlier = (
        ChangeRequest.objects.filter(
            batch_id=request.batch_id,
            tunnel__connection_id=request.tunnel.connection_id,
            pk__lt=request.pk,
        )
        .select_related("tunnel")
        .order_by("pk")
    )
    for first in earlier:
        if first.status in ChangeStatus.UNSUCCESSFUL:
            return BatchTurn.STOP, Text(
                N_(
                    "the first tunnel's change did not succeed (request #%(pk)s: %(status)s), "
                    "so this tunnel was left alone."
                ),
                pk=first.pk,
                status=ChangeStatus(first.status).label,
            )
        if first.status in ChangeStatus.OPEN:
            return BatchTurn.WAIT, ""
        done = first.status in (ChangeStatus.SUCCEEDED, ChangeStatus.SUPERSEDED)
        if done and first.tunnel.status != TunnelStatus.UP:
            return BatchTurn.WAIT, ""
    return BatchTurn.GO, ""


def _run(execution: Execution) -> str:
    request = execution.change_request
    tunnel = request.tunnel
    connection = tunnel.connection
    account = connection.account

    # 2. Fresh data from AWS, then the preflight checks.
    try:
        connection = sync.refresh_connection(connection)
    except aws.AwsError as exc:
        execution.fail(
            Text(
                N_("vpnctl could not read the connection from AWS (%(error)s); nothing was sent."),
                error=exc,
            )
        )
        return "failed: refresh"
    tunnel = Tunnel.objects.select_related("connection").get(pk=tunnel.pk)
    verdict, reason = preflight(request, connection, tunnel)
    if verdict == Preflight.SUPERSEDED:
        execution.supersede(reason)
        return "superseded"
    if verdict == Preflight.BLOCKED:
        execution.block(reason)
        return "blocked"

    before = _snapshot(account, connection, tunnel)

    # 3. The durable "about to call" mark (it says the worker is alive, too: no heartbeat of
    #    its own, one write less), then the one call.
    if not execution.mark_calling_aws(before, settings.WATCH_TIMEOUT_MINUTES):
        return "the execution ended meanwhile, or another worker holds the call"
    try:
        if request.kind == ChangeKind.REPLACE:
            result = aws.replace_tunnel(
                account, connection.region, connection.vpn_connection_id, tunnel.outside_ip
            )
        else:
            result = aws.modify_lifecycle_control(
                account,
                connection.region,
                connection.vpn_connection_id,
                tunnel.outside_ip,
                enabled=True,
                skip_replacement=request.skip_tunnel_replacement,
            )
    except aws.AwsAmbiguousError as exc:
        # The call may or may not have reached AWS. Sending it again could replace the
        # tunnel twice, so vpnctl watches instead and lets the tunnel's state tell.
        unclear: aws.AwsAmbiguousError | None = exc
    except aws.AwsError as exc:
        execution.fail(
            Text(N_("AWS refused the change.")), error_code=exc.code, error_message=exc.message
        )
        return f"failed: {exc.code}"
    else:
        unclear, request_id = None, result.request_id

    # 4. Watch until done, in short tasks of their own: this worker is free at once. The
    #    answer and the first look's booking are one transaction: on SQLite every write
    #    transaction waits its turn for the one write lock (bench/queue_latency.py).
    delay = float(settings.WATCH_INTERVAL_SECONDS)
    with transaction.atomic():
        if unclear is not None:
            execution.record_unclear_answer(unclear.code, unclear.message)
        else:
            execution.record_aws_answer(request_id)
        generation = execution.next_watch(execution.watch_generation, delay)
        if generation is None:
            return "watch handed elsewhere"
        enqueue.watch_execution(execution.pk, generation, delay=delay)
    return "watching"


def preflight(
    request: ChangeRequest, connection: VpnConnection, tunnel: Tunnel
) -> tuple[Preflight, str]:
    """The safety checks on fresh data. Returns (Preflight verdict, reason)."""
    if request.compute_fingerprint() != request.fingerprint:
        return Preflight.BLOCKED, Text(N_("The request was altered after it was approved."))
    if request.standard_fingerprint:
        if not request.standard_holds():
            return Preflight.BLOCKED, Text(
                N_(
                    "The standard change that approved it no longer holds: its policy was "
                    "edited or suspended, or its period ended."
                )
            )
    elif len(request.valid_approvals()) < request.required_approvals:
        return Preflight.BLOCKED, Text(N_("The request no longer has the approvals it needs."))
    if connection.gone_at is not None:
        return Preflight.BLOCKED, Text(N_("The connection is gone from AWS."))
    if (
        request.kind == ChangeKind.REPLACE
        and tunnel.pending_maintenance != PendingMaintenance.AVAILABLE
    ):
        return Preflight.SUPERSEDED, Text(
            N_(
                "AWS reports no pending maintenance any more (last applied %(when)s): "
                "it was applied without vpnctl."
            ),
            when=tunnel.last_maintenance_applied or "?",
        )
    if request.kind == ChangeKind.ENABLE_LIFECYCLE and tunnel.lifecycle_control:
        return Preflight.SUPERSEDED, Text(N_("Lifecycle control is already on for this tunnel."))
    if ends_after_deadline(tunnel, request.window_end):
        return Preflight.BLOCKED, deadline_refusal(tunnel)
    if connection.state != ConnectionState.AVAILABLE:
        return Preflight.BLOCKED, Text(
            N_("The connection is %(state)s, not available: AWS is still busy with it."),
            state=connection.state,
        )
    sibling = Tunnel.objects.filter(connection=connection).exclude(pk=tunnel.pk).first()
    if sibling is None:
        return Preflight.BLOCKED, Text(N_("AWS reports no second tunnel for this connection."))
    if sibling.status != TunnelStatus.UP:
        return Preflight.BLOCKED, Text(
            N_(
                "The other tunnel (%(ip)s) is %(status)s. Taking this one down now would cut "
                "the connection completely."
            ),
            ip=sibling.outside_ip,
            status=sibling.status,
        )
    busy = (
        ChangeRequest.objects.filter(tunnel__connection=connection, status=ChangeStatus.RUNNING)
        .exclude(pk=request.pk)
        .first()
    )
    if busy is not None:
        return Preflight.BLOCKED, Text(
            N_("Request #%(pk)s is already running on this connection."), pk=busy.pk
        )
    return Preflight.OK, ""


def watch_execution(execution_pk: int, generation: int) -> str:
    """One look at the tunnel: finish the execution, or book the next look.

    Each look is its own short task, so watching many changes never ties up the workers
    that start new ones.
    """
    execution = (
        Execution.objects.select_related("change_request__tunnel__connection__account")
        .filter(pk=execution_pk)
        .first()
    )
    if execution is None or execution.finished_at is not None:
        return "finished"
    if execution.watch_generation != generation:
        return "a newer watch holds this execution"
    outcome = _look(execution)
    if outcome:
        return outcome
    delay = float(settings.WATCH_INTERVAL_SECONDS)
    with transaction.atomic():  # the hand-over and the next look's booking: one write
        following = execution.next_watch(generation, delay)
        if following is None:
            return "a newer watch holds this execution"
        enqueue.watch_execution(execution.pk, following, delay=delay)
    return "watching"


def _look(execution: Execution) -> str:
    """Read the tunnel from AWS once and finish the execution if it is decided."""
    request = execution.change_request
    connection = request.tunnel.connection
    try:
        connection = sync.refresh_connection(connection)
        tunnel: Tunnel | None = Tunnel.objects.get(pk=request.tunnel_id)
    except aws.AwsError as exc:
        execution.step(
            Text(N_("Could not read the tunnel from AWS (%(error)s); trying again."), error=exc),
            level=StepLevel.WARNING,
        )
        tunnel = None
    missing = Text(N_("AWS could not be read before the time limit."))
    if tunnel is not None:
        execution.observe(tunnel, connection)
        missing = _still_missing(request, execution, connection, tunnel)
        if not missing:
            execution.succeed(_snapshot(connection.account, connection, tunnel))
            return "succeeded"
        if _unanswered_without_sign(execution, connection, tunnel):
            execution.fail(
                Text(
                    N_(
                        "AWS gave no clear answer and shows no sign of the change after "
                        "%(seconds)d seconds. vpnctl did not send it again."
                    ),
                    seconds=settings.AMBIGUOUS_GRACE_SECONDS,
                ),
                error_code=execution.aws_error_code or "NoAnswer",
                error_message=execution.aws_error_message
                or "The worker was lost around the AWS call.",
            )
            return "failed: no sign of the change"
    if timezone.now() >= execution.watch_until:
        after = _snapshot(connection.account, connection, tunnel) if tunnel is not None else {}
        execution.time_out(missing, after)
        return "timed out"
    return ""


def _still_missing(
    request: ChangeRequest, execution: Execution, connection: VpnConnection, tunnel: Tunnel
) -> str:
    """What the tunnel still lacks before the change counts as done ("" when done)."""
    before = execution.before or {}
    if tunnel.status != TunnelStatus.UP:
        return Text(N_("the tunnel is still %(status)s."), status=tunnel.status)
    if request.kind == ChangeKind.ENABLE_LIFECYCLE:
        if connection.state != ConnectionState.AVAILABLE:
            return Text(N_("the connection is still %(state)s."), state=connection.state)
        if not tunnel.lifecycle_control:
            return Text(N_("AWS does not show lifecycle control on yet."))
        replacement_expected = (
            not request.skip_tunnel_replacement
            and before.get("pending_maintenance") == PendingMaintenance.AVAILABLE
        )
        if not replacement_expected:
            return ""
    if tunnel.pending_maintenance == PendingMaintenance.AVAILABLE:
        return Text(N_("the maintenance is still pending."))
    applied = tunnel.last_maintenance_applied
    previous = before.get("last_maintenance_applied")
    if applied is None or (previous and applied <= datetime.fromisoformat(previous)):
        return Text(N_("AWS has not reported the maintenance as applied yet."))
    return ""


def _unanswered_without_sign(
    execution: Execution, connection: VpnConnection, tunnel: Tunnel
) -> bool:
    """True once an unanswered call has shown no sign of reaching AWS for the grace period."""
    if execution.aws_answered_at is not None or execution.calling_aws_at is None:
        return False
    grace = timedelta(seconds=settings.AMBIGUOUS_GRACE_SECONDS)
    if timezone.now() < execution.calling_aws_at + grace:
        return False
    before = execution.before or {}
    changed = (
        execution.down_seen_at is not None
        or connection.state != ConnectionState.AVAILABLE
        or tunnel.pending_maintenance != before.get("pending_maintenance")
        or tunnel.lifecycle_control != before.get("lifecycle_control")
        or times.iso(tunnel.last_maintenance_applied) != before.get("last_maintenance_applied")
    )
    return not changed


def _snapshot(account: Any, connection: VpnConnection, tunnel: Tunnel) -> dict[str, Any]:
    """What the tunnel looks like now, with IKE details as evidence (best effort)."""
    snapshot: dict[str, Any] = {
        "connection_state": connection.state,
        "status": tunnel.status,
        "status_message": tunnel.status_message,
        "lifecycle_control": tunnel.lifecycle_control,
        "pending_maintenance": tunnel.pending_maintenance,
        "maintenance_auto_applied_after": times.iso(tunnel.maintenance_auto_applied_after),
        "last_maintenance_applied": times.iso(tunnel.last_maintenance_applied),
    }
    try:
        active = aws.get_active_tunnel_status(
            account, connection.region, connection.vpn_connection_id, tunnel.outside_ip
        )
        snapshot["ike"] = active.as_dict()
    except aws.AwsError as exc:
        snapshot["ike_error"] = str(exc)
    return snapshot


# --------------------------------------------------------------------------------------
# "Refresh from AWS" on a request page
# --------------------------------------------------------------------------------------


def refresh_connection(connection_pk: int) -> str:
    """Read one connection fresh from AWS for an approver who asked; record how it ended.

    Safe to run twice: a second delivery finds the ask answered and reads nothing. AWS's
    refusal is kept on the connection (action, code, message) for the page to show.
    """
    connection = VpnConnection.objects.select_related("account").filter(pk=connection_pk).first()
    if connection is None:
        return "no such connection"
    if not connection.refresh_waiting:
        return "nothing to do: the refresh was answered already"
    asked_at = connection.refresh_requested_at
    try:
        sync.refresh_connection(connection)
    except aws.AwsError as exc:
        connection.fail_refresh(asked_at, exc.as_dict(), timezone.now())
        return f"AWS refused the read: {exc}"
    except Exception:
        # Not AWS's answer but a fault of ours: the page must not wait for good, and the
        # details belong in the worker's log, not on a page.
        connection.fail_refresh(asked_at, {"kind": "internal"}, timezone.now())
        raise
    connection.finish_refresh(asked_at, timezone.now())
    # A Health event may have announced maintenance: its policy drafts the request now.
    draft_pending(timezone.now(), connection_ids=[connection.pk])
    return "refreshed"


# --------------------------------------------------------------------------------------
# The sweeper
# --------------------------------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Every minute: open windows, expire closed ones, reconcile silent executions, queue
    the chat messages due again, and keep django-q2's results to their number."""
    now = timezone.now()
    liveness.beat(now)  # the worker's heartbeat: /healthz/, check_worker, the banner
    counts = {"started": 0, "expired": 0, "reconciled": 0}
    counts["results_pruned"] = enqueue.prune_results(settings.Q_RESULTS_KEPT)

    for request in ChangeRequest.objects.filter(
        status__in=ChangeStatus.CANCELLABLE, window_end__lte=now
    ):
        counts["expired"] += int(request.expire(now))

    due = ChangeRequest.objects.filter(
        status=ChangeStatus.APPROVED, window_start__lte=now, window_end__gt=now
    ).only("pk", "execution_queued_at")
    for request in due:
        # One outstanding execution task per request: a queued one is not queued again.
        counts["started"] += int(request.queue_execution(now))

    stale_before = now - timedelta(seconds=settings.STALE_EXECUTION_SECONDS)
    silent = Execution.objects.select_related("change_request__tunnel__connection").filter(
        finished_at__isnull=True,
        heartbeat_at__lt=stale_before,
        change_request__status=ChangeStatus.RUNNING,
    )
    for execution in silent:
        generation = execution.take_over(stale_before)
        if generation is None:
            continue
        counts["reconciled"] += 1
        execution.reconcile_lost_worker(generation)
        if execution.calling_aws_at is not None:
            enqueue.watch_execution(execution.pk, generation)
    counts["chat_queued"] = chat.queue_due(now)  # retries: due ones, whatever restarted
    return counts
