"""A real django-q2 cluster (separate process) runs changes, and survives SIGKILL.

Each test runs with each broker: the database's own queue (ORM) and Redis.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import sync, tasks
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import ChangeRequest, Execution, Tunnel
from simulator import Timings, TunnelSpec
from tests.cluster_helpers import (
    BROKERS,
    SCHEDULER_PERIOD_SECONDS,
    QueueBroker,
    kill,
    queue_broker,
    start_cluster,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=BROKERS)
def broker(request) -> Iterator[QueueBroker]:
    with queue_broker(request.param) as chosen:
        yield chosen


@pytest.fixture
def cluster(aws_server) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        kill(process)


def make_request(aws, requester, approver) -> ChangeRequest:
    deadline = timezone.now() + timedelta(days=5)
    connection_id = aws.create_connection(
        region="ap-northeast-1",
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(),
        ],
    )
    sync.run_sync()
    tunnel = Tunnel.objects.get(outside_ip=aws.tunnel_ips(connection_id)[0])
    request = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="cluster test",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=1),
    )
    request.approve(user=approver)  # enqueues the execution on commit, for the cluster
    return request


def status_of(request: ChangeRequest) -> str:
    return ChangeRequest.objects.values_list("status", flat=True).get(pk=request.pk)


def test_cluster_runs_an_approved_change(
    aws_server, accounts, broker, cluster, requester, approver, settings
):
    # Looks at a running change are booked through django-q2's scheduler, which wakes
    # every 30 s: the outage outlasts that, so a look is sure to see the tunnel DOWN.
    aws_server.configure(
        timings=Timings(replace_down_seconds=SCHEDULER_PERIOD_SECONDS + 10, modify_seconds=1)
    )
    request = make_request(aws_server, requester, approver)
    cluster.append(start_cluster(settings.AWS_ENDPOINT_URL, broker=broker))

    wait_for(lambda: status_of(request) in ChangeStatus.TERMINAL, timeout=150)

    request.refresh_from_db()
    assert request.status == ChangeStatus.SUCCEEDED, request.status_reason
    assert aws_server.calls("ReplaceVpnTunnel") == 1
    execution = request.execution
    assert execution.down_seen_at is not None and execution.up_seen_at is not None
    assert execution.worker  # the cluster's worker, not this process
    assert execution.worker.split(":")[1] != str(os.getpid())


def test_sigkill_mid_watch_then_reconciled_without_a_second_call(
    aws_server, accounts, broker, cluster, requester, approver, settings
):
    # Back UP by the time the new cluster looks (a few seconds after the call): that look,
    # queued by the sweeper, ends the change rather than the scheduler's round 30 s later.
    aws_server.configure(timings=Timings(replace_down_seconds=1, modify_seconds=1))
    request = make_request(aws_server, requester, approver)
    first = start_cluster(settings.AWS_ENDPOINT_URL, broker=broker)
    cluster.append(first)

    # Kill the whole cluster once the call has gone out and the tunnel is being watched.
    wait_for(
        lambda: Execution.objects.filter(
            change_request=request, aws_answered_at__isnull=False
        ).exists(),
        timeout=90,
    )
    kill(first)
    assert status_of(request) == ChangeStatus.RUNNING

    # A new cluster comes up; the sweeper finds the silent execution and hands it on.
    cluster.append(start_cluster(settings.AWS_ENDPOINT_URL, broker=broker))
    settings.STALE_EXECUTION_SECONDS = 1
    time.sleep(1.5)
    assert tasks.sweep()["reconciled"] == 1

    wait_for(lambda: status_of(request) in ChangeStatus.TERMINAL, timeout=90)
    request.refresh_from_db()
    assert request.status == ChangeStatus.SUCCEEDED, request.status_reason
    assert aws_server.calls("ReplaceVpnTunnel") == 1
