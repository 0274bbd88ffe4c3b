"""Several clusters on one PostgreSQL database, as on many worker hosts: every change reaches
AWS exactly once, whichever cluster runs it, with either broker.

Three ``qcluster`` processes (two workers each) share the database and the broker. Each
approved change's execution task is queued three times (the approval's own, and two more as a
redelivery or the sweeper's requeue would), so that clusters take the same change at the same
moment and the claim (``Execution.claim``, a conditional UPDATE) decides. What an operator
sees: one ``ReplaceVpnTunnel`` per change in AWS's own call log, every change succeeded, every
queued task ran (the others found the change taken), and the audit chain verifies.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Task

from maintenance import enqueue, sync
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import AuditEvent, ChangeRequest, Execution, Tunnel
from simulator import Timings, TunnelSpec
from tests.cluster_helpers import (
    BROKERS,
    LOG,
    QueueBroker,
    kill,
    queue_broker,
    start_cluster,
    wait_for,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="many clusters need a database that many hosts share: PostgreSQL "
        "(SQLite takes one qcluster)",
    ),
]

CLUSTERS = 3
CHANGES = 8
DELIVERIES = 3  # execution tasks queued per change


@pytest.fixture(params=BROKERS)
def broker(request) -> Iterator[QueueBroker]:
    with queue_broker(request.param) as chosen:
        yield chosen


def _log_since(offset: int) -> str:
    with LOG.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _every_execution_task_ran() -> list[str] | None:
    """What each execution task returned, once all of them have (django-q2's results)."""
    results = Task.objects.filter(func=enqueue.EXECUTE_CHANGE).values_list("result", flat=True)
    return list(results) if len(results) == CHANGES * DELIVERIES else None


def test_several_clusters_send_each_change_to_aws_once(
    aws_server, accounts, broker, requester, approver, settings
):
    # Short enough that the first look (the schedulers' first round, ~30 s) sees it done.
    aws_server.configure(timings=Timings(replace_down_seconds=2, modify_seconds=1))
    now = timezone.now()
    deadline = now + timedelta(days=5)
    first_ips = []
    for i in range(CHANGES):
        connection_id = aws_server.create_connection(
            region="ap-northeast-1",
            name=f"many-{i}",
            tunnels=[
                TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
                TunnelSpec(),
            ],
        )
        first_ips.append(aws_server.tunnel_ips(connection_id)[0])
    sync.run_sync()
    requests = [
        ChangeRequest.submit(
            user=requester,
            tunnel=Tunnel.objects.get(outside_ip=ip),
            kind=ChangeKind.REPLACE,
            reason="many clusters",
            window_start=None,
            window_end=now + timedelta(hours=1),
        )
        for ip in first_ips
    ]
    pks = [request.pk for request in requests]

    offset = LOG.stat().st_size if LOG.exists() else 0
    clusters = [
        start_cluster(settings.AWS_ENDPOINT_URL, broker=broker, VPNCTL_Q_WORKERS="2")
        for _ in range(CLUSTERS)
    ]
    try:
        wait_for(lambda: _log_since(offset).count("] running.") >= CLUSTERS, timeout=60)
        for request in requests:
            request.approve(user=approver)  # queues its execution task
            for _ in range(DELIVERIES - 1):
                enqueue.execute_change(request.pk)  # the same task again
        wait_for(
            lambda: (
                ChangeRequest.objects.filter(pk__in=pks, status__in=ChangeStatus.TERMINAL).count()
                == CHANGES
            ),
            timeout=150,
        )
        executions = list(Execution.objects.filter(change_request__in=pks))
        # Each claiming worker's process group is its cluster (asked while they run).
        won_by = Counter(os.getpgid(int(e.worker.rsplit(":", 1)[1])) for e in executions)
        results = wait_for(_every_execution_task_ran)
    finally:
        for process in clusters:
            kill(process)

    statuses = Counter(ChangeRequest.objects.filter(pk__in=pks).values_list("status", flat=True))
    assert statuses == {ChangeStatus.SUCCEEDED: CHANGES}
    sent = Counter(
        record.params.get("VpnTunnelOutsideIpAddress")
        for record in aws_server.call_log
        if record.action == "ReplaceVpnTunnel"
    )
    assert sent == {ip: 1 for ip in first_ips}
    assert aws_server.calls("ModifyVpnTunnelOptions") == 0
    # The work was shared: more than one cluster claimed changes, and every other delivery
    # of a change found it taken and left it alone.
    assert set(won_by) <= {process.pid for process in clusters}
    assert len(won_by) > 1, won_by
    assert Counter(results)["watching"] == CHANGES, Counter(results)
    checked, bad, why = AuditEvent.verify_chain()
    assert bad is None, why
    assert checked > 0
