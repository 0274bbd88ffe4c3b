"""The dashboard (the home page) and the connection-list filters its figures link to."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from maintenance.choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    PendingMaintenance,
    TunnelStatus,
)
from maintenance.models import (
    AuditEvent,
    ChangeRequest,
    SyncResult,
    SyncRun,
    Tunnel,
    VpnConnection,
)
from tests.factories import make_account, make_connection, pending

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOME = reverse("maintenance:home")
LIST_URL = reverse("maintenance:connections")
# Session, user, profile, permissions (2), the nav's waiting badge, the tunnel figures,
# the request figures, the latest sync results, the worker's heartbeat (its banner).
DASHBOARD_MAX_QUERIES = 10


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def text(response) -> str:
    page = re.sub(r"<[^>]+>", " ", response.content.decode())
    return html_lib.unescape(re.sub(r"\s+", " ", page))


def links(response) -> dict[str, str]:
    """Every link on the page: its href -> the text a user reads on it."""
    found = re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', response.content.decode(), re.S)
    return {
        html_lib.unescape(href): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()
        for href, body in found
    }


def figure(response, href: str) -> int:
    """The number a user reads on the link to `href`."""
    return int(links(response)[href].split()[0])


def ids_on(response) -> list[str]:
    return re.findall(
        r'href="/connections/\d+/"[^>]*>(vpn-[0-9a-f]+)</a>', response.content.decode()
    )


def listed(client, href: str) -> int:
    """How many connections the list behind a link says it has."""
    page = text(client.get(href))
    return int(re.search(r"(\d+) connections?\b", page).group(1))


def approved_change(requester, tunnel, *, start: datetime, status=ChangeStatus.APPROVED):
    change = ChangeRequest(
        kind=ChangeKind.REPLACE,
        tunnel=tunnel,
        requester=requester,
        reason="patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
        status=status,
    )
    change.fingerprint = change.compute_fingerprint()
    change.save()
    return change


def aws_applied(tunnel, days_ago: float) -> None:
    AuditEvent.record(
        AuditAction.MAINTENANCE_APPLIED_BY_AWS,
        actor_kind=ActorKind.AWS,
        tunnel=tunnel,
        message="AWS applied maintenance",
        at=NOW - timedelta(days=days_ago),
    )


@pytest.fixture
def inventory(db, requester):
    """A small estate with one of every situation the dashboard counts."""
    c = {}
    c["due2"] = make_connection(name="due-in-2", tunnels=[pending(days=2), {}])
    c["due5_planned"] = make_connection(name="due-in-5-planned", tunnels=[pending(days=5), {}])
    c["due20"] = make_connection(name="due-in-20", tunnels=[pending(days=20), {}])
    c["due60"] = make_connection(name="due-in-60", tunnels=[pending(days=60), {}])
    c["one_down"] = make_connection(name="one-down", tunnels=[{"status": TunnelStatus.DOWN}, {}])
    c["both_down"] = make_connection(
        name="both-down",
        tunnels=[{"status": TunnelStatus.DOWN}, {"status": TunnelStatus.DOWN}],
    )
    c["half"] = make_connection(name="half", tunnels=[{"lifecycle_control": False}, {}])
    c["none"] = make_connection(
        name="none", tunnels=[{"lifecycle_control": False}, {"lifecycle_control": False}]
    )
    c["aws"] = make_connection(name="aws-applied")
    gone = make_connection(name="gone", tunnels=[pending(days=1), {"status": TunnelStatus.DOWN}])
    VpnConnection.objects.filter(pk=gone.pk).update(gone_at=NOW)

    planned_tunnel = c["due5_planned"].tunnels.get(pending_maintenance=PendingMaintenance.AVAILABLE)
    approved_change(requester, planned_tunnel, start=NOW + timedelta(days=1))
    aws_applied(c["aws"].tunnels.first(), days_ago=3)
    aws_applied(c["none"].tunnels.first(), days_ago=45)  # too old to count
    return c


# --- access ----------------------------------------------------------------------------


def test_home_needs_a_login(client, db):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_told_so(client, outsider):
    client.force_login(outsider)
    response = client.get(HOME)
    assert response.status_code == 403
    assert "Your account has no role yet." in text(response)


# --- the figures, each a link to its list ----------------------------------------------


def test_pending_maintenance_by_deadline_and_the_unplanned(client, requester, inventory):
    client.force_login(requester)
    response = client.get(HOME)
    assert response.status_code == 200
    page = text(response)
    assert "Pending maintenance by deadline" in page

    within = {days: f"{LIST_URL}?deadline_within={days}" for days in (3, 7, 30)}
    assert figure(response, within[3]) == 1  # due2 (the gone connection is not counted)
    assert figure(response, within[7]) == 2  # + due5_planned
    assert figure(response, within[30]) == 3  # + due20
    assert figure(response, f"{LIST_URL}?pending=yes") == 4  # + due60
    unplanned = {days: f"{within[days]}&no_approved_request=1" for days in (3, 7, 30)}
    assert figure(response, unplanned[3]) == 1
    assert figure(response, unplanned[7]) == 1  # due5 has an approved change before it
    assert figure(response, unplanned[30]) == 2
    assert figure(response, f"{LIST_URL}?no_approved_request=1") == 3

    # Each link opens the list it counted, with the same connections in it.
    assert ids_on(client.get(within[7])) == [
        inventory["due2"].vpn_connection_id,
        inventory["due5_planned"].vpn_connection_id,
    ]
    assert ids_on(client.get(unplanned[7])) == [inventory["due2"].vpn_connection_id]
    assert listed(client, unplanned[30]) == 2


def test_a_change_after_the_deadline_or_not_yet_approved_does_not_count_as_planned(
    client, requester, db
):
    connection = make_connection(tunnels=[pending(days=2), {}])
    tunnel = connection.tunnels.get(pending_maintenance=PendingMaintenance.AVAILABLE)
    approved_change(requester, tunnel, start=NOW + timedelta(days=3))  # AWS acts first
    approved_change(
        requester, tunnel, start=NOW + timedelta(hours=1), status=ChangeStatus.PENDING_APPROVAL
    )
    client.force_login(requester)
    response = client.get(HOME)
    assert figure(response, f"{LIST_URL}?deadline_within=3&no_approved_request=1") == 1


def test_down_and_coverage_figures(client, requester, inventory):
    client.force_login(requester)
    response = client.get(HOME)
    page = text(response)
    assert links(response)[f"{LIST_URL}?tunnel_down=1"] == "3 tunnels DOWN"
    assert "in 2 connections" in page
    assert links(response)[f"{LIST_URL}?both_down=1"] == "1 connection with both tunnels DOWN"
    assert links(response)[f"{LIST_URL}?lifecycle_off=1"] == "3 tunnels without lifecycle control"
    assert (
        links(response)[f"{LIST_URL}?half_lifecycle=1"]
        == "1 connection with lifecycle control on one tunnel only"
    )
    assert ids_on(client.get(f"{LIST_URL}?both_down=1")) == [
        inventory["both_down"].vpn_connection_id
    ]
    assert ids_on(client.get(f"{LIST_URL}?half_lifecycle=1")) == [
        inventory["half"].vpn_connection_id
    ]
    assert listed(client, f"{LIST_URL}?tunnel_down=1") == 2


def test_maintenance_applied_by_aws_in_the_last_30_days(client, requester, inventory):
    client.force_login(requester)
    response = client.get(HOME)
    assert links(response)[f"{LIST_URL}?aws_applied=1"] == (
        "1 tunnel where AWS applied maintenance itself in the last 30 days"
    )
    assert ids_on(client.get(f"{LIST_URL}?aws_applied=1")) == [inventory["aws"].vpn_connection_id]


def test_request_figures_for_an_approver(client, requester, approver, db):
    tunnel = make_connection(tunnels=[pending(days=20), {}]).tunnels.first()
    other = make_connection(tunnels=[pending(days=20), {}]).tunnels.first()
    third = make_connection().tunnels.first()
    approved_change(
        requester, tunnel, start=NOW + timedelta(days=2), status=ChangeStatus.PENDING_APPROVAL
    )
    approved_change(requester, other, start=NOW + timedelta(days=3))
    approved_change(requester, third, start=NOW + timedelta(days=12))  # beyond 7 days
    approved_change(requester, third, start=NOW - timedelta(minutes=5), status=ChangeStatus.RUNNING)

    client.force_login(approver)
    response = client.get(HOME)
    found = links(response)
    assert found[reverse("maintenance:my_approvals")] == "1 request waiting for your decision"
    upcoming = (
        f"{reverse('maintenance:requests')}?status=approved"
        "&window_from=2026-11-25&window_to=2026-12-02"
    )
    assert found[upcoming] == "1 approved window in the next 7 days"
    assert found[f"{reverse('maintenance:requests')}?status=running"] == "1 change running now"
    # The request list behind the link shows that same one request.
    assert "1 request" in text(client.get(upcoming))


def test_requesters_do_not_see_a_waiting_for_you_figure(client, requester, db):
    client.force_login(requester)
    assert "waiting for your decision" not in text(client.get(HOME))


def test_last_sync_per_account_and_region_with_its_errors(client, admin_user, db):
    account = make_account()
    other = make_account("prod", "210987654321", regions=["us-east-1"])
    old = SyncRun.objects.create(started_at=NOW - timedelta(hours=2), finished_at=NOW)
    new = SyncRun.objects.create(started_at=NOW - timedelta(minutes=10), finished_at=NOW)
    SyncResult.objects.create(
        run=old,
        account=account,
        region="ap-northeast-1",
        finished_at=NOW - timedelta(hours=2),
        errors=[{"code": "Old", "message": "long fixed"}],
    )
    SyncResult.objects.create(
        run=new,
        account=account,
        region="ap-northeast-1",
        finished_at=NOW - timedelta(minutes=9),
    )
    SyncResult.objects.create(
        run=new,
        account=other,
        region="us-east-1",
        finished_at=NOW - timedelta(minutes=9),
        failed=True,
        errors=[{"code": "AccessDenied", "message": "not authorized to assume"}],
    )
    client.force_login(admin_user)
    page = text(client.get(HOME))
    section = page[page.index("Last sync per account and region") :]
    # The scope read cleanly is counted, not listed; the one that failed is listed.
    assert "2 accounts and regions synced. 1 could not be read." in section
    assert "The oldest read finished 2026-11-25 11:51 UTC (9 minutes ago)" in section
    assert "default ap-northeast-1" not in section
    assert "prod us-east-1" in section
    assert "could not be read AccessDenied: not authorized to assume" in section
    assert "long fixed" not in section


# --- queries ---------------------------------------------------------------------------


def _bulk_inventory(n: int, offset: int = 0) -> None:
    """n connections made fast, with every situation the dashboard counts among them."""
    account = make_account()
    VpnConnection.objects.bulk_create(
        VpnConnection(
            account=account,
            region="ap-northeast-1",
            vpn_connection_id=f"vpn-bulk{offset + i:012x}",
            name=f"bulk-{i}",
            state="available",
            first_seen=NOW,
            last_seen=NOW,
        )
        for i in range(n)
    )
    tunnels = []
    new = VpnConnection.objects.filter(tunnels__isnull=True).values_list("pk", flat=True)
    for i, pk in enumerate(new, start=offset):
        for side in (1, 2):
            tunnels.append(
                Tunnel(
                    connection_id=pk,
                    outside_ip=f"10.{i // 250}.{i % 250}.{side}",
                    lifecycle_control=(i + side) % 3 != 0,
                    status=TunnelStatus.DOWN if (i + side) % 5 == 0 else TunnelStatus.UP,
                    pending_maintenance=PendingMaintenance.AVAILABLE
                    if i % 2
                    else PendingMaintenance.NONE,
                    maintenance_auto_applied_after=NOW + timedelta(days=i % 40),
                )
            )
    Tunnel.objects.bulk_create(tunnels)


@pytest.mark.parametrize("n", [10, 1000])
def test_the_dashboard_takes_the_same_few_queries_at_any_size(
    client, approver, n, django_assert_max_num_queries
):
    _bulk_inventory(n)
    client.force_login(approver)
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        response = client.get(HOME)
    assert response.status_code == 200
    assert figure(response, f"{LIST_URL}?pending=yes") == n  # both tunnels of every other one


def test_the_query_count_is_the_same_at_10_and_1000_connections(client, approver, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(approver)
    counts = []
    for n in (10, 990):  # 10, then 1,000 in all
        _bulk_inventory(n, offset=len(counts) * 10)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(HOME).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= DASHBOARD_MAX_QUERIES, counts
