"""The API's lists answer in a number of queries that does not grow with the data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maintenance.choices import ChangeKind
from maintenance.models import (
    ApiToken,
    ChangeBatch,
    ChangeRequest,
    Execution,
    ExecutionStep,
    SyncResult,
    SyncRun,
)
from tests.factories import make_connection, pending

LISTS = (
    "/connections",
    "/tunnels",
    "/requests",
    "/batches",
    "/executions",
    "/audit-events",
    "/sync-runs",
)
MAX_QUERIES = 10  # as for the pages (tests/test_page_queries.py)
SIZES = (3, 9)


def _seed(size: int, requester) -> None:
    start = timezone.now() + timedelta(hours=2)
    for _ in range(size):
        vpn = make_connection(tunnels=[pending(days=10), {"lifecycle_control": False}])
        first, second = vpn.tunnels.order_by("outside_ip")
        change = ChangeRequest.submit(
            user=requester,
            tunnel=first,
            kind=ChangeKind.REPLACE,
            reason="patch",
            window_start=start,
            window_end=start + timedelta(hours=1),
        )
        ChangeBatch.submit(
            user=requester,
            tunnels=[second],
            reason="lifecycle control",
            window_start=start + timedelta(hours=2),
            window_end=start + timedelta(hours=3),
        )
        now = timezone.now()
        execution = Execution.objects.create(
            change_request=change, claimed_at=now, heartbeat_at=now
        )
        ExecutionStep.objects.create(execution=execution, message="Preflight checks passed.")
        run = SyncRun.objects.create(finished_at=now)
        SyncResult.objects.create(run=run, account=vpn.account, region="ap-northeast-1")


def _counts(size: int, admin_user, requester) -> dict[str, int]:
    _seed(size, requester)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(admin_user, name='q')[1]}")
    assert client.get("/api/v1/connections").status_code == 200  # its first address: audited
    counts = {}
    for path in LISTS:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/v1{path}")
        assert response.status_code == 200, (path, response.content)
        assert response.json()["results"], path
        counts[path] = len(queries)
    return counts


@pytest.mark.django_db
def test_every_list_within_the_budget_at_both_sizes(admin_user, requester):
    counts = {}
    for size in SIZES:
        with transaction.atomic():
            counts[size] = _counts(size, admin_user, requester)
            transaction.set_rollback(True)
    small, large = (counts[size] for size in SIZES)
    assert small == large, f"queries at {SIZES}: {small} / {large}"
    over = {path: n for path, n in large.items() if n > MAX_QUERIES}
    assert not over, over
