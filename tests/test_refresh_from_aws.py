"""'Refresh from AWS' on a request page: an approver asks, the worker reads one connection.

Against the simulated AWS, with django-q2's real ORM queue held (tests/queue_helpers.py):
the click queues one task, the test runs it as the worker would, and the page shows what
AWS says now, or what AWS refused, with the time in the reader's zone.
"""

from __future__ import annotations

import pydoc
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from maintenance import enqueue, sync
from maintenance.choices import AuditAction, ChangeStatus
from maintenance.models import AuditEvent, ChangeRequest, Tunnel, UserProfile, VpnConnection
from simulator import TunnelSpec
from tests.queue_helpers import Held, HeldQueue, queue_held
from tests.test_views_requests import submit, text

# The click queues its task once the transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

TOKYO = "ap-northeast-1"


@dataclass
class Scene:
    change: ChangeRequest
    connection_id: str  # the request's connection, in AWS
    pending_ip: str  # the request's tunnel: pending maintenance
    other_ip: str  # its sibling, UP when synced
    elsewhere: str  # another connection of the same account and region


@pytest.fixture
def scene(aws, accounts, requester) -> Scene:
    deadline = timezone.now() + timedelta(days=10)
    connection_id = aws.create_connection(
        region=TOKYO,
        name="tokyo-office",
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(),
        ],
    )
    elsewhere = aws.create_connection(region=TOKYO, name="osaka-office")
    sync.run_sync(account_name="default", region=TOKYO)
    pending_ip, other_ip = aws.tunnel_ips(connection_id)
    tunnel = Tunnel.objects.get(connection__vpn_connection_id=connection_id, outside_ip=pending_ip)
    change = submit(requester, tunnel, reason="apply the pending maintenance")
    return Scene(change, connection_id, pending_ip, other_ip, elsewhere)


@pytest.fixture
def tokyo_approver(approver):
    UserProfile.objects.create(user=approver, time_zone="Asia/Tokyo")
    return approver


def page_url(change) -> str:
    return reverse("maintenance:request", args=[change.pk])


def refresh_url(change) -> str:
    return reverse("maintenance:request_refresh", args=[change.pk])


def fragment_url(change) -> str:
    return reverse("maintenance:request_timeline", args=[change.pk])


def aws_card(response) -> str:
    """The text of the "The tunnel on AWS" card as a person reads it (without the button)."""
    html = response.content.decode()
    start = html.index('<div id="request-aws"')
    end = html.index('<div id="request-risks"', start)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start:end])).replace("&#x27;", "'")


def in_tokyo(moment: datetime) -> str:
    return moment.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S JST")


def run_as_the_worker(queue: HeldQueue) -> list[str]:
    """Run every held refresh task the way django-q2's worker does: its func by dotted path."""
    results = []
    for held in queue.held():
        assert held.func == enqueue.REFRESH_CONNECTION
        results.append(pydoc.locate(held.func)(*held.args))
    return results


def connection_row(connection_id: str) -> dict:
    row = VpnConnection.objects.filter(vpn_connection_id=connection_id)
    return {
        "connection": row.values().get(),
        "tunnels": list(
            Tunnel.objects.filter(connection__vpn_connection_id=connection_id)
            .order_by("outside_ip")
            .values()
        ),
    }


# ---------------------------------------------------------------------------------------
# An approver refreshes: one task, one connection read, the page shows AWS's answer
# ---------------------------------------------------------------------------------------


def test_an_approver_refreshes_and_the_page_shows_what_aws_says_now(
    client, aws, scene, tokyo_approver
):
    change = scene.change
    client.force_login(tokyo_approver)
    before = client.get(page_url(change))
    assert ">Refresh from AWS</button>" in before.content.decode()
    card = aws_card(before)
    assert f"{scene.other_ip} UP" in card and ", by the inventory sync" in card

    # Meanwhile, in AWS: the other tunnel went DOWN, lifecycle control was turned off on
    # this one and the deadline moved; another connection changed too.
    later = (timezone.now() + timedelta(days=20)).replace(microsecond=0)
    aws.set_tunnel(scene.connection_id, scene.other_ip, status="DOWN")
    aws.set_tunnel(
        scene.connection_id, scene.pending_ip, lifecycle_control=False, auto_apply_after=later
    )
    aws.set_tunnel(scene.elsewhere, aws.tunnel_ips(scene.elsewhere)[0], status="DOWN")
    elsewhere_before = connection_row(scene.elsewhere)

    with queue_held() as queue:
        response = client.post(refresh_url(change))
        assert response.status_code == 302
        assert response["Location"] == page_url(change) + "#request-aws"
        connection = change.tunnel.connection
        assert queue.held() == [Held(enqueue.REFRESH_CONNECTION, (connection.pk,))]

        # Asked, not answered: the page says so and polls for the answer.
        waiting = client.get(page_url(change))
        asked_at = VpnConnection.objects.get(pk=connection.pk).refresh_requested_at
        assert (
            f"Refresh asked at {in_tokyo(asked_at)}; this page updates when AWS has answered."
            in aws_card(waiting)
        )
        assert 'data-live="true"' in waiting.content.decode()
        assert f"{scene.other_ip} UP" in aws_card(waiting)  # nothing read yet

        log_before = len(aws.call_log)
        assert run_as_the_worker(queue) == ["refreshed"]

    # Exactly one connection read: one DescribeVpnConnections naming it, one status read
    # per tunnel, nothing about any other connection.
    calls = aws.call_log[log_before:]
    assert sorted(c.action for c in calls) == [
        "DescribeVpnConnections",
        "GetVpnTunnelReplacementStatus",
        "GetVpnTunnelReplacementStatus",
    ]
    assert all(scene.connection_id in str(c.params) for c in calls)
    assert not any(scene.elsewhere in str(c.params) for c in calls)
    assert connection_row(scene.elsewhere) == elsewhere_before

    # The poll brings the fresh data, and stops.
    fragment = client.get(fragment_url(change))
    assert 'data-live="false"' in fragment.content.decode()
    refreshed_at = VpnConnection.objects.get(pk=connection.pk).refreshed_at
    for response in (fragment, client.get(page_url(change))):
        card = aws_card(response)
        assert f"{scene.other_ip} DOWN" in card
        assert "lifecycle control off" in card  # this tunnel's, as AWS now says
        assert "Pending maintenance Available" in card
        assert f"AWS applies it itself after {in_tokyo(later)[:-7]} JST (in 20 days)" in card
        assert f"Last read from AWS {in_tokyo(refreshed_at)}, by a refresh an approver" in card
        assert "Refresh asked at" not in card
        # The risks are worked out again from the fresh data.
        assert f"The other tunnel ({scene.other_ip}) is DOWN" in text(response)

    # Who asked is in the audit log, and on the request's timeline.
    event = AuditEvent.objects.get(action=AuditAction.CONNECTION_REFRESH_REQUESTED)
    assert (event.actor, event.change_request, event.connection) == (
        tokyo_approver,
        change,
        connection,
    )
    assert event.at == asked_at
    timeline = text(fragment)[text(fragment).index("Timeline") :]
    assert f"Asked for connection {scene.connection_id} to be read from AWS again." in timeline
    assert "aiko" in timeline


def test_running_the_task_twice_reads_once(aws, scene, approver):
    connection = scene.change.tunnel.connection
    with queue_held() as queue:
        assert connection.ask_refresh(approver, timezone.now(), change_request=scene.change)
        held = queue.held()
        assert run_as_the_worker(queue) == ["refreshed"]
        reads = aws.calls()
        # django-q2 delivers at least once: a second delivery finds the ask answered.
        assert pydoc.locate(held[0].func)(*held[0].args).startswith("nothing to do")
        assert aws.calls() == reads


# ---------------------------------------------------------------------------------------
# The rate limit: one refresh per connection per VPNCTL_REFRESH_MIN_SECONDS
# ---------------------------------------------------------------------------------------


def test_a_second_click_within_the_limit_queues_nothing_and_says_when(
    client, aws, scene, tokyo_approver, second_approver, settings
):
    settings.REFRESH_MIN_SECONDS = 60
    change = scene.change
    client.force_login(tokyo_approver)
    with queue_held() as queue:
        assert client.post(refresh_url(change)).status_code == 302
        assert len(queue.held()) == 1
        row = connection_row(scene.connection_id)
        events = AuditEvent.objects.count()

        response = client.post(refresh_url(change))  # a second click, or another tab

        assert response.status_code == 429
        asked_at = row["connection"]["refresh_requested_at"]
        page = text(response)
        assert f"was last asked for at {in_tokyo(asked_at)}" in page
        assert "at most once every 60 seconds" in page
        assert (
            f"The next refresh is possible from {in_tokyo(asked_at + timedelta(seconds=60))}."
            in page
        )
        # Nothing queued, nothing changed, nothing audited.
        assert len(queue.held()) == 1
        assert connection_row(scene.connection_id) == row
        assert AuditEvent.objects.count() == events
        # The button says it too.
        assert f"The next is possible from {in_tokyo(asked_at + timedelta(seconds=60))}." in page

        # Once the minute has passed, another approver may ask again.
        with time_machine.travel(asked_at + timedelta(seconds=61)):
            client.force_login(second_approver)
            assert client.post(refresh_url(change)).status_code == 302
        assert len(queue.held()) == 2


def test_two_clicks_at_once_queue_one_read(aws, scene, approver, second_approver):
    """Two web processes, each with the row as it was before either click."""
    first = VpnConnection.objects.get(vpn_connection_id=scene.connection_id)
    second = VpnConnection.objects.get(vpn_connection_id=scene.connection_id)
    now = timezone.now()
    with queue_held() as queue:
        assert first.ask_refresh(approver, now, change_request=scene.change) is True
        assert second.ask_refresh(second_approver, now, change_request=scene.change) is False
        assert queue.of(enqueue.REFRESH_CONNECTION) == [(first.pk,)]
    assert AuditEvent.objects.filter(action=AuditAction.CONNECTION_REFRESH_REQUESTED).count() == 1


# ---------------------------------------------------------------------------------------
# Who may, and when
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["requester", "admin_user", "auditor"])
def test_only_approvers_get_the_button_and_may_refresh(client, aws, scene, request, persona):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    assert ">Refresh from AWS</button>" not in client.get(page_url(scene.change)).content.decode()
    row = connection_row(scene.connection_id)
    events = AuditEvent.objects.count()
    with queue_held() as queue:
        response = client.post(refresh_url(scene.change))
        assert response.status_code == 403
        assert "Only approvers may ask AWS for fresh data." in text(response)
        assert queue.held() == []
    assert connection_row(scene.connection_id) == row
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("ending", ["cancelled", "rejected"])
def test_a_closed_request_has_no_button_and_refuses_the_post(
    client, aws, scene, requester, approver, ending
):
    change = scene.change
    if ending == "cancelled":
        change.cancel(user=requester, reason="not needed after all")
    else:
        change.reject(user=approver, comment="not during the audit")
    client.force_login(approver)
    assert ">Refresh from AWS</button>" not in client.get(page_url(change)).content.decode()
    row = connection_row(scene.connection_id)
    events = AuditEvent.objects.count()
    with queue_held() as queue:
        response = client.post(refresh_url(change))
        assert response.status_code == 400
        status = ChangeStatus(ending).label
        assert f"This request's status is {status}: fresh data from AWS is read only" in (
            text(response)
        )
        assert queue.held() == []
    assert connection_row(scene.connection_id) == row
    assert AuditEvent.objects.count() == events


def test_an_approved_request_may_still_be_refreshed(client, aws, scene, approver):
    scene.change.approve(user=approver, comment="fine")
    assert ChangeRequest.objects.get(pk=scene.change.pk).status == ChangeStatus.APPROVED
    client.force_login(approver)
    assert ">Refresh from AWS</button>" in client.get(page_url(scene.change)).content.decode()
    with queue_held() as queue:
        assert client.post(refresh_url(scene.change)).status_code == 302
        assert len(queue.of(enqueue.REFRESH_CONNECTION)) == 1


# ---------------------------------------------------------------------------------------
# When AWS refuses, or nobody answers
# ---------------------------------------------------------------------------------------


def test_an_aws_error_is_shown_instead_of_stale_data_passing_for_fresh(
    client, aws, scene, tokyo_approver
):
    change = scene.change
    aws.set_tunnel(scene.connection_id, scene.other_ip, status="DOWN")
    aws.inject_fault(
        "DescribeVpnConnections",
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
    )
    client.force_login(tokyo_approver)
    with queue_held() as queue:
        client.post(refresh_url(change))
        (result,) = run_as_the_worker(queue)
    assert result.startswith("AWS refused the read: UnauthorizedOperation")

    fragment = client.get(fragment_url(change))
    assert 'data-live="false"' in fragment.content.decode()
    failed_at = VpnConnection.objects.get(pk=change.tunnel.connection_id).refresh_failed_at
    card = aws_card(client.get(page_url(change)))
    assert (
        f"The refresh failed at {in_tokyo(failed_at)}: vpnctl could not read this connection "
        "from AWS." in card
    )
    assert (
        "AWS answered DescribeVpnConnections with UnauthorizedOperation: "
        "You are not authorized to perform this operation." in card
    )
    assert re.search(r"request id [0-9a-f-]{36}", card)
    assert "What is shown below is what vpnctl knew before: it is not fresh." in card
    # What vpnctl knew before, labelled as such: the sync's reading, not the refresh's.
    assert f"{scene.other_ip} UP" in card and ", by the inventory sync" in card
    assert 'role="alert" data-refresh="failed"' in fragment.content.decode()

    # A full sync that reads the connection afterwards makes the failure old news.
    with time_machine.travel(timezone.now() + timedelta(seconds=1)):
        sync.run_sync(account_name="default", region=TOKYO)
    card = aws_card(client.get(page_url(change)))
    assert "The refresh failed" not in card
    assert f"{scene.other_ip} DOWN" in card and ", by the inventory sync" in card

    # So does the next refresh that works.
    aws.inject_fault("DescribeVpnConnections", "UnauthorizedOperation", "Not now.")
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        with queue_held() as queue:
            client.post(refresh_url(change))
            run_as_the_worker(queue)
        assert "Not now." in aws_card(client.get(page_url(change)))
    with time_machine.travel(timezone.now() + timedelta(seconds=122)):
        with queue_held() as queue:
            client.post(refresh_url(change))
            assert run_as_the_worker(queue) == ["refreshed"]
        card = aws_card(client.get(page_url(change)))
    assert "The refresh failed" not in card
    assert f"{scene.other_ip} DOWN" in card


def test_a_refresh_nobody_answers_stops_polling_and_says_so(client, aws, scene, approver, settings):
    client.force_login(approver)
    with queue_held():
        client.post(refresh_url(scene.change))
    asked_at = VpnConnection.objects.get(vpn_connection_id=scene.connection_id).refresh_requested_at
    with time_machine.travel(asked_at + timedelta(minutes=6)):
        fragment = client.get(fragment_url(scene.change))
    html = fragment.content.decode()
    assert 'data-live="false"' in html
    card = aws_card(fragment)
    assert "and AWS's answer has not come yet: what is shown below is what vpnctl knew" in card
    assert "Reload the page to look again." in card
    # No sweeper ever ran in this test: the worker is not heard of, and the page says why.
    assert "The worker is not heard of: the refresh waits until it is back." in card


def test_the_refresh_reads_in_japanese_too(client, aws, scene, tokyo_approver):
    client.force_login(tokyo_approver)
    html = client.get(page_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert ">AWS から再読み取り</button>" in html
    assert "AWS 上のトンネル" in html and "（インベントリ同期）" in html
    with queue_held() as queue:
        client.post(refresh_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja")
        response = client.get(page_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja")
        asked_at = VpnConnection.objects.get(pk=scene.change.tunnel.connection_id)
        card = aws_card(response)
        assert (
            f"{in_tokyo(asked_at.refresh_requested_at)} に再読み取りを依頼しました。"
            "AWS が応答するとこのページが更新されます。" in card
        )
        assert "Refresh asked" not in card
        # Too soon: said in Japanese, with the time in the reader's zone.
        again = client.post(refresh_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja")
        assert again.status_code == 429
        assert "次の再読み取りは" in text(again)
        run_as_the_worker(queue)
    card = aws_card(client.get(page_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja"))
    assert "（承認者が依頼した再読み取り）" in card
    timeline = text(client.get(fragment_url(scene.change), HTTP_ACCEPT_LANGUAGE="ja"))
    assert f"接続 {scene.connection_id} を AWS から読み取り直すよう依頼しました。" in timeline
