"""Executing approved changes against the simulated AWS: checks, exactly one call, watching.

Every test counts the calls the simulated AWS accepted: that count is what "exactly
once" means to the owner of the tunnel.
"""

from __future__ import annotations

import pydoc
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from maintenance import enqueue, sync, tasks
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus, PendingMaintenance
from maintenance.models import AuditEvent, ChangeRequest, Execution, Tunnel, VpnConnection
from maintenance.schedules import ensure_schedules
from simulator import Timings, TunnelSpec
from tests.queue_helpers import queue_held

pytestmark = pytest.mark.django_db(transaction=True)

REPLACE = "ReplaceVpnTunnel"
MODIFY = "ModifyVpnTunnelOptions"


@pytest.fixture(autouse=True)
def fast_watch(settings, monkeypatch):
    """Seconds instead of minutes; django-q2 tasks run inline (this file is about logic)."""
    settings.WATCH_INTERVAL_SECONDS = 0.1
    settings.WATCH_TIMEOUT_MINUTES = 0.5  # 30 s: ample on a loaded machine
    settings.AMBIGUOUS_GRACE_SECONDS = 1
    settings.STALE_EXECUTION_SECONDS = 60
    monkeypatch.setattr(Conf, "SYNC", True)


def accepted(sim, action: str) -> int:
    return sim.calls(action, outcome="ok")


def make_world(aws, accounts, *, first=None, second=None):
    """One connection in the simulated AWS with pending maintenance on its first tunnel."""
    deadline = timezone.now() + timedelta(days=5)
    first = first or TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline)
    second = second or TunnelSpec()
    connection_id = aws.create_connection(
        region="ap-northeast-1", name="osaka-dc", tunnels=[first, second]
    )
    sync.run_sync()
    ips = aws.tunnel_ips(connection_id)
    return (
        connection_id,
        Tunnel.objects.get(outside_ip=ips[0]),
        Tunnel.objects.get(outside_ip=ips[1]),
    )


def approved_request(tunnel, requester, approver, *, kind=ChangeKind.REPLACE, **kwargs):
    request = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=kind,
        reason="apply the patch",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=2),
        **kwargs,
    )
    # The approval queues its execution; hold it there: each test starts execution itself.
    with queue_held() as queue:
        request.approve(user=approver)
        assert queue.of(enqueue.EXECUTE_CHANGE) == [(request.pk,)]
    request.refresh_from_db()
    assert request.status == ChangeStatus.APPROVED
    return request


def execute(request) -> str:
    """Run the execution task (inline, with all its watch looks) and return the status."""
    tasks.execute_change(request.pk)
    return ChangeRequest.objects.values_list("status", flat=True).get(pk=request.pk)


def steps(request) -> list[str]:
    return list(
        Execution.objects.get(change_request=request).steps.values_list("message", flat=True)
    )


# -- the happy paths ----------------------------------------------------------------------


def test_replace_runs_once_and_watches_tunnel_come_back(aws, accounts, requester, approver):
    # An outage long enough that the first look (0.1 s after the call) sees it, however
    # slow the machine: the test is about seeing DOWN, then UP.
    aws.configure(timings=Timings(replace_down_seconds=3, modify_seconds=0.3))
    connection_id, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)

    assert execute(request) == ChangeStatus.SUCCEEDED

    request.refresh_from_db()
    assert request.status == ChangeStatus.SUCCEEDED
    assert accepted(aws, REPLACE) == 1
    execution = request.execution
    assert execution.outcome == "succeeded"
    assert execution.aws_request_id
    assert execution.down_seen_at and execution.up_seen_at
    assert execution.before["pending_maintenance"] == "Available"
    assert execution.after["pending_maintenance"] == "None"
    assert execution.before["ike"]["ike_version"]
    text = " ".join(steps(request))
    assert "is DOWN" in text and "is UP again" in text
    actions = list(
        AuditEvent.objects.filter(change_request=request).values_list("action", flat=True)
    )
    assert actions[-7:-4] == [
        AuditAction.EXECUTION_CLAIMED,
        AuditAction.EXECUTION_CALLING_AWS,
        AuditAction.EXECUTION_AWS_ANSWERED,
    ]
    # What the watch saw, each once (the outage's length can be read from the log: DOWN
    # first, then UP; AWS may clear the maintenance before or after the tunnel is UP).
    seen = actions[-4:-1]
    assert sorted(seen) == sorted(
        [AuditAction.TUNNEL_SEEN_DOWN, AuditAction.TUNNEL_SEEN_UP, AuditAction.MAINTENANCE_CLEARED]
    )
    assert seen.index(AuditAction.TUNNEL_SEEN_DOWN) < seen.index(AuditAction.TUNNEL_SEEN_UP)
    assert actions[-1] == AuditAction.EXECUTION_SUCCEEDED
    # The maintenance vpnctl applied is not reported as "applied by AWS" by later syncs.
    sync.run_sync()
    assert not AuditEvent.objects.filter(action=AuditAction.MAINTENANCE_APPLIED_BY_AWS).exists()


def test_enable_lifecycle_skipping_replacement(aws, accounts, requester, approver):
    _, tunnel, _ = make_world(
        aws,
        accounts,
        first=TunnelSpec(
            lifecycle_control=False,
            pending_maintenance="Available",
            auto_apply_after=timezone.now() + timedelta(days=5),
        ),
    )
    request = approved_request(
        tunnel, requester, approver, kind=ChangeKind.ENABLE_LIFECYCLE, skip_tunnel_replacement=True
    )
    assert execute(request) == ChangeStatus.SUCCEEDED
    assert accepted(aws, MODIFY) == 1
    assert accepted(aws, REPLACE) == 0
    tunnel.refresh_from_db()
    assert tunnel.lifecycle_control is True
    assert tunnel.pending_maintenance == PendingMaintenance.AVAILABLE  # skipped, still pending


def test_enable_lifecycle_applying_pending_maintenance(aws, accounts, requester, approver):
    _, tunnel, _ = make_world(
        aws,
        accounts,
        first=TunnelSpec(
            lifecycle_control=False,
            pending_maintenance="Available",
            auto_apply_after=timezone.now() + timedelta(days=5),
        ),
    )
    request = approved_request(tunnel, requester, approver, kind=ChangeKind.ENABLE_LIFECYCLE)
    assert execute(request) == ChangeStatus.SUCCEEDED
    tunnel.refresh_from_db()
    assert tunnel.lifecycle_control is True
    assert tunnel.pending_maintenance == PendingMaintenance.NONE
    assert accepted(aws, MODIFY) == 1


# -- preflight ----------------------------------------------------------------------------


def test_sibling_down_blocks_and_sends_nothing(aws, accounts, requester, approver):
    connection_id, tunnel, sibling = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    aws.set_tunnel(connection_id, sibling.outside_ip, status="DOWN")

    assert execute(request) == ChangeStatus.BLOCKED
    request.refresh_from_db()
    assert request.status == ChangeStatus.BLOCKED
    assert f"The other tunnel ({sibling.outside_ip}) is DOWN" in request.status_reason
    assert "cut the connection completely" in request.status_reason
    assert aws.calls(REPLACE) == 0


def test_connection_not_available_blocks(aws, accounts, requester, approver):
    connection_id, tunnel, sibling = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    aws.configure(timings=Timings(modify_seconds=30))
    import boto3

    boto3.client("ec2", region_name="ap-northeast-1").modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=sibling.outside_ip,
        TunnelOptions={"EnableTunnelLifecycleControl": True},
        SkipTunnelReplacement=True,
    )
    assert execute(request) == ChangeStatus.BLOCKED
    request.refresh_from_db()
    assert "The connection is modifying, not available" in request.status_reason
    assert aws.calls(REPLACE) == 0


def test_other_running_change_on_connection_blocks(aws, accounts, requester, approver):
    _, tunnel, sibling = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    # The window rules keep a connection's requests apart; this check is the last guard
    # (a change that overran its window, or one started by hand).
    running = ChangeRequest.objects.create(
        kind=ChangeKind.ENABLE_LIFECYCLE,
        tunnel=sibling,
        requester=requester,
        reason="overran",
        window_start=request.window_start,
        window_end=request.window_end,
        status=ChangeStatus.RUNNING,
        fingerprint="-",
    )
    assert execute(request) == ChangeStatus.BLOCKED
    request.refresh_from_db()
    assert f"Request #{running.pk} is already running on this connection" in request.status_reason
    assert aws.calls(REPLACE) == 0


def test_maintenance_applied_by_aws_before_the_window_supersedes(
    aws, accounts, requester, approver
):
    connection_id, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    # vpnctl has known the connection for a day; AWS applied the maintenance a minute ago
    # (AWS reports whole seconds, so "now" could look older than a sync a moment ago).
    VpnConnection.objects.update(first_seen=timezone.now() - timedelta(days=1))
    aws.set_tunnel(
        connection_id,
        tunnel.outside_ip,
        pending_maintenance="None",
        last_applied=timezone.now() - timedelta(minutes=1),
    )
    assert execute(request) == ChangeStatus.SUPERSEDED
    request.refresh_from_db()
    assert request.status == ChangeStatus.SUPERSEDED
    assert "applied without vpnctl" in request.status_reason
    assert aws.calls(REPLACE) == 0
    assert AuditEvent.objects.filter(
        action=AuditAction.MAINTENANCE_APPLIED_BY_AWS, tunnel=tunnel
    ).exists()


# -- AWS errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("RequestLimitExceeded", 503), ("InternalError", 500)],
)
def test_aws_errors_fail_with_awss_code(aws, accounts, requester, approver, code, status):
    _, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    aws.inject_fault(REPLACE, code, "something went wrong", count=50, http_status=status)

    result = tasks.execute_change(request.pk)

    request.refresh_from_db()
    assert request.status == ChangeStatus.FAILED, result
    assert request.execution.aws_error_code == code
    assert accepted(aws, REPLACE) == 0
    if code == "InternalError":
        # An unclear answer is never re-sent: exactly one attempt reached the simulator.
        assert aws.calls(REPLACE) == 1


def test_no_pending_maintenance_error_from_aws(aws, accounts, requester, approver):
    connection_id, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    # AWS clears the maintenance between our refresh and our call: its own error comes back.
    original = sync.refresh_connection

    def refresh_then_aws_applies(connection):
        result = original(connection)
        aws.set_tunnel(connection_id, tunnel.outside_ip, pending_maintenance="None")
        return result

    sync.refresh_connection = refresh_then_aws_applies
    try:
        tasks.execute_change(request.pk)
    finally:
        sync.refresh_connection = original
    request.refresh_from_db()
    assert request.status == ChangeStatus.FAILED
    assert request.execution.aws_error_code == "InvalidParameterValue"
    assert accepted(aws, REPLACE) == 0


def test_tunnel_not_up_by_the_limit_times_out(aws, accounts, requester, approver, settings):
    aws.configure(timings=Timings(replace_down_seconds=60))
    settings.WATCH_TIMEOUT_MINUTES = 0.03  # 1.8 s
    _, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    assert execute(request) == ChangeStatus.TIMED_OUT
    request.refresh_from_db()
    assert request.status == ChangeStatus.TIMED_OUT
    assert "still DOWN" in request.status_reason
    assert accepted(aws, REPLACE) == 1


# -- exactly once -------------------------------------------------------------------------


def test_task_delivered_twice_calls_aws_once(aws, accounts, requester, approver):
    _, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    assert execute(request) == ChangeStatus.SUCCEEDED
    assert tasks.execute_change(request.pk) == "nothing to do: the request is succeeded"
    assert aws.calls(REPLACE) == 1


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except clause catches it."""


def kill_after(monkeypatch, target, name):
    original = getattr(target, name)

    def dying(*args, **kwargs):
        original(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(target, name, dying)


@pytest.mark.parametrize("where", ["claim", "about_to_call", "call"])
def test_worker_killed_is_reconciled_without_a_second_call(
    aws, accounts, requester, approver, monkeypatch, time_machine, where
):
    _, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    target = {
        "claim": (Execution, "claim"),
        "about_to_call": (Execution, "mark_calling_aws"),
        "call": (tasks.aws, "replace_tunnel"),
    }[where]
    with monkeypatch.context() as m:
        kill_after(m, *target)
        with pytest.raises(WorkerKilled):
            tasks.execute_change(request.pk)
    request.refresh_from_db()
    assert request.status == ChangeStatus.RUNNING

    # The task is delivered again (django-q2 after `retry`): it must not act.
    assert tasks.execute_change(request.pk) == "nothing to do: the request is running"

    # The sweeper finds the silent worker and reconciles from what was recorded and AWS.
    time_machine.move_to(timezone.now() + timedelta(minutes=5), tick=True)
    counts = tasks.sweep()
    assert counts["reconciled"] == 1
    request.refresh_from_db()
    assert request.status != ChangeStatus.RUNNING
    assert aws.calls(REPLACE) <= 1
    if where == "claim":
        assert request.status == ChangeStatus.FAILED
        assert "lost before the call to AWS; nothing was sent" in request.status_reason
        assert aws.calls(REPLACE) == 0
    elif where == "about_to_call":
        assert request.status == ChangeStatus.FAILED
        assert "did not send it again" in request.status_reason
        assert aws.calls(REPLACE) == 0
    else:
        assert request.status == ChangeStatus.SUCCEEDED
        assert accepted(aws, REPLACE) == 1
    assert AuditEvent.verify_chain()[2] == ""


def test_twenty_threads_approving_and_executing_call_aws_once(
    aws, accounts, requester, monkeypatch
):
    from django.contrib.auth.models import Group, User

    group = Group.objects.get(name="approver")
    approvers = []
    for i in range(20):
        user = User.objects.create_user(f"approver{i}", f"a{i}@example.com", "pw")
        user.groups.add(group)
        approvers.append(user)
    _, tunnel, _ = make_world(aws, accounts)
    request = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="race",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=2),
    )
    barrier = threading.Barrier(20)
    results: list[str] = []

    def act(user):
        try:
            barrier.wait()
            try:
                ChangeRequest.objects.get(pk=request.pk).approve(user=user)
            except Exception as exc:  # noqa: BLE001 - losers are told why; that is the point
                results.append(type(exc).__name__)
            results.append(tasks.execute_change(request.pk))
        finally:
            connections.close_all()

    # The approval's own execution task is held in the queue: the threads race instead.
    with queue_held() as queue:
        threads = [threading.Thread(target=act, args=(u,)) for u in approvers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        queued = queue.of(enqueue.EXECUTE_CHANGE)
        watches = queue.of(enqueue.WATCH_EXECUTION)
    assert queued == [(request.pk,)]  # the one approval that counted queued it, once
    for args in watches:
        tasks.watch_execution(*args)
    request.refresh_from_db()
    assert request.status == ChangeStatus.SUCCEEDED, results
    assert results.count("watching") == 1  # one claimed; the rest found nothing to claim
    assert aws.calls(REPLACE) == 1
    assert request.approvals.count() == 1


# -- what django-q2 stores survives a release ----------------------------------------------


def test_every_stored_task_path_still_names_a_function():
    """django-q2 keeps these paths in queued tasks and Schedule.func, and resolves them
    with pydoc.locate in the worker: each must still name the function it named."""
    for path in enqueue.STORED_TASK_PATHS:
        assert callable(pydoc.locate(path)), path
    assert {s.func for s in ensure_schedules()} <= set(enqueue.STORED_TASK_PATHS)


def test_a_watch_booked_before_an_upgrade_still_runs_after_it(aws, accounts, requester, approver):
    """A one-off watch Schedule, in the shape vpnctl 0.1 stored it, run by django-q2's own
    scheduler: the change it watches finishes, with one call to AWS."""
    _, tunnel, _ = make_world(aws, accounts)
    request = approved_request(tunnel, requester, approver)
    with queue_held() as queue:
        tasks.execute_change(request.pk)
        [(execution_pk, generation)] = queue.of(enqueue.WATCH_EXECUTION)
    # What the release before this one wrote for "look again in 30 s", to the letter.
    Schedule.objects.create(
        name=f"vpnctl watch {execution_pk} #{generation}",
        func="maintenance.tasks.watch_execution",
        args=f"{execution_pk},{generation}",
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() - timedelta(seconds=1),
    )

    scheduler()  # django-q2's scheduler; the queue runs inline in this file

    request.refresh_from_db()
    assert request.status == ChangeStatus.SUCCEEDED
    assert accepted(aws, REPLACE) == 1
    assert not Schedule.objects.filter(func=enqueue.WATCH_EXECUTION).exists()
