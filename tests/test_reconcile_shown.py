"""Saying what happens when a worker is lost, and keeping the queue free of duplicates.

- An approved request has one execution task outstanding at a time, however often the
  sweeper looks; a task that never ran is replaced after VPNCTL_EXECUTION_REQUEUE_SECONDS.
- A worker that dies right after the AWS call: the request page says the worker went
  silent, then that vpnctl is reconciling (and when it looks next), before the change ends
  with the one call it made.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from maintenance import enqueue, sync, tasks
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import AuditEvent, ChangeRequest, Execution, Tunnel
from simulator import Timings, TunnelSpec
from tests.queue_helpers import queue_held

pytestmark = pytest.mark.django_db(transaction=True)

REPLACE = "ReplaceVpnTunnel"


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.fixture(autouse=True)
def inline_queue(monkeypatch, settings):
    settings.WATCH_INTERVAL_SECONDS = 0.1
    settings.WATCH_TIMEOUT_MINUTES = 0.5
    settings.STALE_EXECUTION_SECONDS = 120
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def tunnel(aws, accounts):
    first = TunnelSpec(
        pending_maintenance="Available", auto_apply_after=timezone.now() + timedelta(days=5)
    )
    connection_id = aws.create_connection(region="ap-northeast-1", tunnels=[first, TunnelSpec()])
    sync.run_sync()
    return Tunnel.objects.get(outside_ip=aws.tunnel_ips(connection_id)[0])


def approved(tunnel, requester, approver, queue) -> ChangeRequest:
    change = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="patch",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=2),
    )
    change.approve(user=approver)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED
    return change


def test_one_execution_task_per_request_however_often_the_sweeper_looks(
    tunnel, requester, approver, settings
):
    with queue_held() as queue:
        change = approved(tunnel, requester, approver, queue)
        for _minute in range(3):
            tasks.sweep()
        assert queue.of(enqueue.EXECUTE_CHANGE) == [(change.pk,)]

        # Ten minutes later the task has still not run (its worker lost it): one more.
        ChangeRequest.objects.filter(pk=change.pk).update(
            execution_queued_at=timezone.now()
            - timedelta(seconds=settings.EXECUTION_REQUEUE_SECONDS + 1)
        )
        tasks.sweep()
        tasks.sweep()
        assert queue.of(enqueue.EXECUTE_CHANGE) == [(change.pk,), (change.pk,)]


def status_text(client, change) -> str:
    html = client.get(reverse("maintenance:request_timeline", args=[change.pk])).content.decode()
    return html[html.index('id="request-status"') : html.index('id="request-execution"')]


def test_a_worker_lost_after_the_call_is_shown_as_silent_then_reconciling(
    aws, tunnel, requester, approver, client, monkeypatch
):
    aws.configure(timings=Timings(replace_down_seconds=1, modify_seconds=0.3))
    client.force_login(approver)
    with queue_held() as queue:
        change = approved(tunnel, requester, approver, queue)
        real_call = tasks.aws.replace_tunnel

        def call_then_die(*args, **kwargs):
            real_call(*args, **kwargs)
            raise WorkerKilled

        with monkeypatch.context() as m:
            m.setattr(tasks.aws, "replace_tunnel", call_then_die)
            with pytest.raises(WorkerKilled):
                tasks.execute_change(change.pk)
        assert aws.calls(REPLACE) == 1
        assert "vpnctl is working on it now." in status_text(client, change)

        # Two minutes of silence: the page says so before the sweeper acts.
        execution = Execution.objects.get(change_request=change)
        silent_at = timezone.now() - timedelta(seconds=200)
        Execution.objects.filter(pk=execution.pk).update(heartbeat_at=silent_at)
        page = status_text(client, change)
        assert "The worker running this change has not been heard of since" in page
        assert "vpnctl takes the change over by" in page

        # The sweeper takes it over; its first look is queued (held here).
        assert tasks.sweep()["reconciled"] == 1
        [(execution_pk, generation)] = queue.of(enqueue.WATCH_EXECUTION)
        page = status_text(client, change)
        assert "The worker was lost after the call to AWS." in page
        assert "never sends the change again; next look at the tunnel at" in page
        steps = list(execution.steps.values_list("message", flat=True))
        assert any("The worker was lost after the AWS call was prepared" in s for s in steps)
        assert AuditEvent.objects.filter(
            change_request=change, action=AuditAction.EXECUTION_RECONCILED
        ).exists()

    tasks.watch_execution(execution_pk, generation)

    change.refresh_from_db()
    assert change.status == ChangeStatus.SUCCEEDED
    assert aws.calls(REPLACE) == 1
    assert "The worker was lost" not in status_text(client, change)
