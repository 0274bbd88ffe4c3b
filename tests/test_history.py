"""The history of a tunnel and of a connection: vpnctl's changes and AWS's own maintenance."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from maintenance.choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    Decision,
    ExecutionOutcome,
)
from maintenance.models import Approval, AuditEvent, ChangeRequest, Execution
from maintenance.views.history import duration_text
from tests.factories import make_connection, pending

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HISTORY_MAX_QUERIES = 10


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def rows_of(response) -> list[str]:
    """The history table's body rows, as a user reads each one."""
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip() for row in rows
    ]


def make_change(requester, tunnel, *, status, ran_at=None, down=None, up=None, approvers=()):
    """A past change; with `ran_at`, its execution called AWS then (DOWN/UP as given)."""
    change = ChangeRequest(
        kind=ChangeKind.REPLACE,
        tunnel=tunnel,
        requester=requester,
        reason="patch",
        window_start=(ran_at or NOW) - timedelta(minutes=5),
        window_end=(ran_at or NOW) + timedelta(hours=1),
        status=status,
        finished_at=(ran_at or NOW - timedelta(days=20)) + timedelta(minutes=30),
    )
    change.fingerprint = change.compute_fingerprint()
    change.save()
    for user, still_counts in approvers:
        Approval.objects.create(
            change_request=change,
            approver=user,
            decision=Decision.APPROVE,
            fingerprint=change.fingerprint if still_counts else "0" * 64,
        )
    if ran_at:
        Execution.objects.create(
            change_request=change,
            claimed_at=ran_at,
            heartbeat_at=ran_at,
            calling_aws_at=ran_at,
            down_seen_at=down,
            up_seen_at=up,
            finished_at=ran_at + timedelta(minutes=30),
            outcome=ExecutionOutcome.SUCCEEDED
            if status == ChangeStatus.SUCCEEDED
            else ExecutionOutcome.TIMED_OUT,
        )
    return change


def aws_applied(tunnel, applied: datetime) -> None:
    AuditEvent.record(
        AuditAction.MAINTENANCE_APPLIED_BY_AWS,
        actor_kind=ActorKind.AWS,
        tunnel=tunnel,
        message="AWS applied maintenance",
        details={"applied": applied.isoformat()},
        at=applied + timedelta(hours=1),  # the sync that noticed came later
    )


@pytest.fixture
def story(db, requester, approver, second_approver):
    """Tunnel 1: a replacement that ran (DOWN 4 min 30 s), a rejected one, one still open.
    Tunnel 2: AWS applied maintenance itself; a change that timed out, DOWN never seen UP."""
    connection = make_connection(name="tokyo-dc", tunnels=[pending(days=10), {}])
    t1, t2 = connection.tunnels.order_by("outside_ip")
    ran = NOW - timedelta(days=3)
    make_change(
        requester,
        t1,
        status=ChangeStatus.SUCCEEDED,
        ran_at=ran,
        down=ran + timedelta(minutes=1),
        up=ran + timedelta(minutes=5, seconds=30),
        approvers=[(approver, True), (second_approver, False)],
    )
    make_change(requester, t1, status=ChangeStatus.REJECTED)
    make_change(requester, t1, status=ChangeStatus.PENDING_APPROVAL)  # not history yet
    aws_applied(t2, NOW - timedelta(days=10))
    make_change(
        requester,
        t2,
        status=ChangeStatus.TIMED_OUT,
        ran_at=NOW - timedelta(days=1),
        down=NOW - timedelta(days=1),
    )
    return connection, t1, t2


def test_tunnel_history_shows_who_when_how_long_down_and_the_outcome(client, requester, story):
    connection, t1, _t2 = story
    client.force_login(requester)
    response = client.get(reverse("maintenance:tunnel_history", args=[t1.pk]))
    assert response.status_code == 200
    rows = rows_of(response)
    assert len(rows) == 2  # the open request is not history yet
    ran, rejected = rows
    assert "Apply pending maintenance" in ran
    assert "rei" in ran
    assert "aiko" in ran and "bunta" not in ran  # bunta approved an older version of it
    assert "2026-11-22 12:00 UTC – 2026-11-22 12:30 UTC" in ran
    assert "4 min 30 s" in ran
    assert ran.endswith("Succeeded")
    assert "did not run" in rejected and "not observed" in rejected
    assert "Rejected" in rejected


def test_connection_history_mixes_aws_maintenance_in_time_order(client, requester, story):
    connection, t1, t2 = story
    client.force_login(requester)
    response = client.get(reverse("maintenance:connection_history", args=[connection.pk]))
    rows = rows_of(response)
    assert len(rows) == 4
    # Newest first: the timed-out change (1 day ago), the replacement (3 days), the AWS
    # maintenance (10 days, by AWS's own time, not the sync's), the rejected one (20 days).
    assert "Timed out" in rows[0] and "went DOWN; back UP not seen" in rows[0]
    assert t2.outside_ip in rows[0]
    assert "Succeeded" in rows[1] and t1.outside_ip in rows[1]
    assert rows[2].startswith("2026-11-15 12:00 UTC")
    assert "applied by AWS" in rows[2]
    assert "nobody: not a vpnctl change" in rows[2]
    assert "Rejected" in rows[3]


def test_the_connection_page_links_to_both_histories(client, requester, story):
    connection, t1, t2 = story
    client.force_login(requester)
    page = client.get(reverse("maintenance:connection", args=[connection.pk])).content.decode()
    assert f'href="{reverse("maintenance:connection_history", args=[connection.pk])}"' in page
    for tunnel in (t1, t2):
        assert f'href="{reverse("maintenance:tunnel_history", args=[tunnel.pk])}"' in page
        assert f"History of tunnel {tunnel.outside_ip}" in page


def test_an_empty_history_says_so(client, requester, db):
    connection = make_connection()
    client.force_login(requester)
    response = client.get(reverse("maintenance:connection_history", args=[connection.pk]))
    assert "Nothing has happened here yet" in response.content.decode()


def test_history_needs_a_role(client, outsider, story):
    connection, t1, _ = story
    client.force_login(outsider)
    assert client.get(reverse("maintenance:tunnel_history", args=[t1.pk])).status_code == 403
    url = reverse("maintenance:connection_history", args=[connection.pk])
    assert client.get(url).status_code == 403
    assert client.get(reverse("maintenance:tunnel_history", args=[99999])).status_code == 403


def test_history_queries_do_not_grow_with_the_rows(
    client, requester, approver, second_approver, db
):
    connection = make_connection()
    t1, t2 = connection.tunnels.order_by("outside_ip")
    client.force_login(requester)
    urls = [
        reverse("maintenance:connection_history", args=[connection.pk]),
        reverse("maintenance:tunnel_history", args=[t1.pk]),
    ]
    counts = []
    for size in (2, 20):
        while ChangeRequest.objects.count() < size:
            n = ChangeRequest.objects.count()
            ran = NOW - timedelta(days=n + 1)
            make_change(
                requester,
                t1 if n % 2 else t2,
                status=ChangeStatus.SUCCEEDED,
                ran_at=ran,
                down=ran,
                up=ran + timedelta(minutes=2),
                approvers=[(approver, True), (second_approver, True)],
            )
            aws_applied(t1, ran - timedelta(hours=3))
        for url in urls:
            with CaptureQueriesContext(db_connection) as queries:
                response = client.get(url)
            assert response.status_code == 200
            counts.append(len(queries))
    assert len(rows_of(client.get(urls[0]))) == 40
    assert counts[:2] == counts[2:]
    assert max(counts) <= HISTORY_MAX_QUERIES


@pytest.mark.parametrize(
    "seconds, said",
    [(45, "45 seconds"), (1, "1 second"), (270, "4 min 30 s"), (3900, "1 h 5 min")],
)
def test_down_time_reads_like_people_say_it(seconds, said):
    assert duration_text(timedelta(seconds=seconds)) == said
