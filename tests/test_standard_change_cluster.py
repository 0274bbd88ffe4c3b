"""A standard change end to end: the sync finds maintenance pending, the policy drafts
both tunnels' requests, its standard change approves them, and a real django-q2 cluster
runs them in their windows, one after the other, with one AWS call each."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import sync
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import AuditEvent, ChangeRequest, MaintenancePolicy
from maintenance.texts import render
from simulator import Timings, TunnelSpec
from tests.cluster_helpers import kill, queue_broker, start_cluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

EVERY_DAY = [[day, "00:00", "00:00"] for day in range(7)]  # all day, every day


@pytest.fixture
def cluster(aws_server) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        kill(process)


def test_a_standard_change_runs_in_its_window_with_one_call_per_tunnel(
    aws_server, accounts, cluster, approver, second_approver, settings
):
    settings.REQUIRED_APPROVALS = 2
    aws_server.configure(timings=Timings(replace_down_seconds=1, modify_seconds=1))
    now = timezone.now()
    policy = MaintenancePolicy.objects.create(
        name="every-day",
        tags={"env": "prod"},
        windows=EVERY_DAY,
        lead_time_hours=0,
        change_minutes=30,
        kinds=[ChangeKind.REPLACE],
        standard_from=now - timedelta(days=1),
        standard_until=now + timedelta(days=30),
    )
    policy.approve_standard(user=approver, comment="", now=now)
    policy.approve_standard(user=second_approver, comment="", now=now)
    deadline = now + timedelta(days=5)
    connection_id = aws_server.create_connection(
        region="ap-northeast-1",
        tags={"env": "prod"},
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
        ],
    )

    sync.run_sync()  # reads the pending maintenance; the policy drafts and approves

    first, second = ChangeRequest.objects.order_by("window_start")
    assert first.status == second.status == ChangeStatus.APPROVED
    assert first.window_end == second.window_start  # one tunnel after the other
    with queue_broker("orm") as broker:
        cluster.append(start_cluster(settings.AWS_ENDPOINT_URL, broker=broker))
        wait_for(
            lambda: ChangeRequest.objects.get(pk=first.pk).status in ChangeStatus.TERMINAL,
            timeout=150,
        )

    first.refresh_from_db()
    assert first.status == ChangeStatus.SUCCEEDED, first.status_reason
    assert aws_server.calls("ReplaceVpnTunnel") == 1  # the second waits for its window
    approved = AuditEvent.objects.get(action=AuditAction.REQUEST_APPROVED, change_request=first)
    sentence = render(approved.details["text"])
    assert "standard change policy every-day" in sentence
    assert approver.username in sentence and second_approver.username in sentence
    drafted = AuditEvent.objects.get(action=AuditAction.REQUEST_SUBMITTED, change_request=first)
    assert drafted.actor_name == "vpnctl-planner"
    assert drafted.details["policy_name"] == "every-day"
    assert connection_id in {first.tunnel.connection.vpn_connection_id}
