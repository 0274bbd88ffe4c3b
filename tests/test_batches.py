"""Lifecycle control for many tunnels at once: one form, one approval, sequenced execution.

The form and page tests use plain database rows; the execution tests run against the
simulated AWS with django-q2 in sync mode (like test_execution.py) and read the calls
AWS saw from the simulator's call log.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from maintenance import enqueue, sync, tasks
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import (
    AuditEvent,
    ChangeBatch,
    ChangeRequest,
    Execution,
    Tunnel,
    VpnConnection,
)
from simulator import TunnelSpec
from tests.factories import make_account, make_connection, pending
from tests.queue_helpers import queue_held

MODIFY = "ModifyVpnTunnelOptions"
OFF = {"lifecycle_control": False}


def text(response) -> str:
    """The page as a person reads it: tags dropped, whitespace folded."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def later(hours: float = 2) -> str:
    return (timezone.localtime() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def form_data(tunnels, **extra) -> dict:
    data = {
        "tunnels": [t.pk for t in tunnels],
        "reason": "turn it on everywhere before the next AWS cycle",
        "start_when_approved": "on",
        "window_end": later(),
        "skip_tunnel_replacement": "skip",
    }
    data.update(extra)
    return data


def new_url(**params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("maintenance:batch_new") + (f"?{query}" if query else "")


def submit_batch(user, tunnels, **extra) -> ChangeBatch:
    return ChangeBatch.submit(
        user=user,
        tunnels=list(tunnels),
        reason="lifecycle control everywhere",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=2),
        start_when_approved=True,
        skip_tunnel_replacement=extra.pop("skip", False),
        **extra,
    )


@pytest.fixture
def no_enqueue():
    """Approvals without execution: these tests are about the workflow, not running it.

    What they queue stays in django-q2's queue, where no worker runs it."""
    with queue_held() as queue:
        yield queue


# ---------------------------------------------------------------------------------------
# Asking: from a connection, from the coverage list
# ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_connection_page_offers_the_batch_only_when_a_tunnel_lacks_it(client, requester):
    lacking = make_connection(tunnels=[OFF, {}])
    covered = make_connection()
    client.force_login(requester)
    button = "Request lifecycle control for all tunnels lacking it"
    page = client.get(reverse("maintenance:connection", args=[lacking.pk]))
    assert button in text(page)
    assert new_url(connection=lacking.pk) in page.content.decode()
    assert button not in text(client.get(reverse("maintenance:connection", args=[covered.pk])))


@pytest.mark.django_db
def test_form_creates_one_request_per_tunnel_in_one_batch(client, requester):
    connection = make_connection(tunnels=[OFF, {**OFF, **pending(5)}])
    tunnels = list(connection.tunnels.order_by("outside_ip"))
    client.force_login(requester)

    page = client.get(new_url(connection=connection.pk))
    shown = text(page)
    assert "2 tunnels lack lifecycle control" in shown
    assert "Tunnel 1" in shown and "Tunnel 2" in shown
    assert "the second starts only after the first has succeeded" in shown

    response = client.post(new_url(connection=connection.pk), form_data(tunnels), follow=True)
    batch = ChangeBatch.objects.get()
    assert response.redirect_chain[-1][0] == reverse("maintenance:batch", args=[batch.pk])
    assert f"Batch #{batch.pk} submitted: 2 requests." in text(response)
    requests = list(batch.requests.order_by("pk"))
    assert [r.tunnel for r in requests] == tunnels
    assert {r.kind for r in requests} == {ChangeKind.ENABLE_LIFECYCLE}
    assert all(r.skip_tunnel_replacement for r in requests)
    assert {r.status for r in requests} == {ChangeStatus.PENDING_APPROVAL}
    # Each audited as a single request is, naming its batch.
    events = AuditEvent.objects.filter(action=AuditAction.REQUEST_SUBMITTED).order_by("seq")
    assert [e.change_request_id for e in events] == [r.pk for r in requests]
    assert {e.details["batch"] for e in events} == {batch.pk}
    # The batch page lists both with their status.
    assert text(response).count("Waiting for approval") >= 2
    for r in requests:
        assert f"#{r.pk}" in text(response)


@pytest.mark.django_db
def test_skip_choice_must_be_made_explicitly(client, requester):
    connection = make_connection(tunnels=[OFF, OFF])
    client.force_login(requester)
    data = form_data(connection.tunnels.all())
    del data["skip_tunnel_replacement"]
    response = client.post(new_url(connection=connection.pk), data)
    assert response.status_code == 200
    assert "Choose whether pending maintenance is applied together" in text(response)
    assert not ChangeBatch.objects.exists()


@pytest.mark.django_db
def test_coverage_list_leads_to_a_batch_for_every_listed_connection(client, requester):
    one = make_connection(tunnels=[OFF, OFF])
    two = make_connection(tunnels=[{}, OFF])
    make_connection()  # fully covered: not listed, nothing to ask
    client.force_login(requester)

    listing = client.get(reverse("maintenance:connections"))
    assert "Coverage: show the connections with lifecycle control off" in text(listing)
    listing = client.get(reverse("maintenance:connections"), {"lifecycle_off": "on"})
    assert "Request lifecycle control for these" in text(listing)
    assert new_url(lifecycle_off="on") in listing.content.decode()

    page = client.get(new_url(lifecycle_off="on"))
    assert "3 tunnels lack lifecycle control" in text(page)
    assert "in the 2 connections you filtered" in text(page)
    lacking = Tunnel.objects.filter(lifecycle_control=False)
    client.post(new_url(lifecycle_off="on"), form_data(lacking))
    batch = ChangeBatch.objects.get()
    assert {r.tunnel.connection_id for r in batch.requests.all()} == {one.pk, two.pk}
    assert batch.requests.count() == 3


@pytest.mark.django_db
def test_a_rule_broken_by_one_tunnel_refuses_the_whole_batch(client, requester, other_requester):
    busy = make_connection(tunnels=[OFF, OFF])
    fine = make_connection(tunnels=[OFF, OFF])
    busy_tunnel = busy.tunnels.order_by("outside_ip").first()
    single = ChangeRequest.submit(
        user=other_requester,
        tunnel=busy_tunnel,
        kind=ChangeKind.ENABLE_LIFECYCLE,
        reason="mine first",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=3),
    )
    client.force_login(requester)
    tunnels = [*busy.tunnels.all(), *fine.tunnels.all()]
    response = client.post(new_url(lifecycle_off="on"), form_data(tunnels))

    shown = text(response)
    assert "Nothing was submitted: the whole batch was refused." in shown
    assert f"{busy_tunnel}: Request #{single.pk} is already open for this tunnel" in shown
    # The other tunnel of that connection overlaps the single request: not a batch sibling.
    assert "on the other tunnel of this connection has an overlapping window" in shown
    assert not ChangeBatch.objects.exists()
    assert list(ChangeRequest.objects.all()) == [single]
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_SUBMITTED).count() == 1


@pytest.mark.django_db
def test_only_requests_of_the_same_batch_may_overlap_on_a_connection(requester):
    connection = make_connection(tunnels=[OFF, OFF])
    first, second = connection.tunnels.order_by("outside_ip")
    batch = submit_batch(requester, [first, second])
    assert batch.requests.count() == 2  # same window, both tunnels: allowed in one batch
    other = make_connection(tunnels=[OFF, OFF])
    a, b = other.tunnels.order_by("outside_ip")
    submit_batch(requester, [a])
    with pytest.raises(Exception, match="overlapping window"):
        submit_batch(requester, [b])  # another batch is not exempt


@pytest.mark.django_db
def test_a_rule_broken_by_every_tunnel_is_said_once(requester):
    connection = make_connection(tunnels=[OFF, OFF])
    with pytest.raises(Exception) as caught:
        ChangeBatch.submit(
            user=requester,
            tunnels=list(connection.tunnels.all()),
            reason="x",
            window_start=timezone.now() - timedelta(hours=3),
            window_end=timezone.now() + timedelta(hours=1),
        )
    messages = caught.value.message_dict["window_start"]
    assert messages == ["The window must start in the future."]


# ---------------------------------------------------------------------------------------
# Deciding on the batch, once
# ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_approving_the_batch_approves_all_its_requests(
    client, requester, approver, second_approver, no_enqueue
):
    connections = [make_connection(tunnels=[OFF, OFF]) for _ in range(2)]
    batch = submit_batch(requester, Tunnel.objects.filter(connection__in=connections))
    decide = reverse("maintenance:batch_decide", args=[batch.pk])

    client.force_login(requester)
    page = client.get(reverse("maintenance:batch", args=[batch.pk]))
    assert "Approve all" not in text(page)  # not your own
    assert client.post(decide, {"decision": "approve"}).status_code == 403

    client.force_login(approver)
    page = client.get(reverse("maintenance:batch", args=[batch.pk]))
    assert "Your decision on the whole batch" in text(page)
    response = client.post(decide, {"decision": "approve", "comment": "go"}, follow=True)
    assert f"You approved batch #{batch.pk} (4 requests)." in text(response)
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.APPROVED}
    assert "Approved, waiting for its window × 4" in text(response)
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_APPROVED).count() == 4
    assert "Approve all" not in text(response)

    # One decision per approver: nothing left to decide.
    again = client.post(decide, {"decision": "approve"})
    assert again.status_code == 400
    assert "No request of this batch is waiting for a decision." in text(again)


@pytest.mark.django_db
def test_rejecting_the_batch_needs_a_reason_and_ends_every_request(
    client, requester, approver, no_enqueue
):
    connection = make_connection(tunnels=[OFF, OFF])
    batch = submit_batch(requester, connection.tunnels.all())
    decide = reverse("maintenance:batch_decide", args=[batch.pk])
    client.force_login(approver)
    response = client.post(decide, {"decision": "reject", "comment": ""})
    assert "Say why you reject it." in text(response)
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.PENDING_APPROVAL}
    client.post(decide, {"decision": "reject", "comment": "not this week"})
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.REJECTED}


@pytest.mark.django_db
def test_an_approver_who_already_approved_cannot_approve_twice(
    requester, approver, second_approver, settings, no_enqueue
):
    settings.REQUIRED_APPROVALS = 2
    connection = make_connection(tunnels=[OFF, OFF])
    batch = submit_batch(requester, connection.tunnels.all())
    batch.approve(user=approver)
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.PENDING_APPROVAL}
    with pytest.raises(Exception, match="already decided on this batch"):
        batch.approve(user=approver)
    batch.approve(user=second_approver)
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.APPROVED}


# ---------------------------------------------------------------------------------------
# Pages keep a constant number of queries
# ---------------------------------------------------------------------------------------


def bulk_connections(n: int) -> None:
    """n connections, each with both tunnels lacking lifecycle control, in two queries."""
    account = make_account()
    now = timezone.now()
    connections = VpnConnection.objects.bulk_create(
        VpnConnection(
            account=account,
            region="ap-northeast-1",
            vpn_connection_id=f"vpn-bulk{i:08d}",
            name=f"site-{i}",
            state="available",
            first_seen=now,
            last_seen=now,
        )
        for i in range(n)
    )
    Tunnel.objects.bulk_create(
        Tunnel(connection=c, outside_ip=f"10.{i // 250}.{i % 250}.{j}", lifecycle_control=False)
        for i, c in enumerate(connections)
        for j in (1, 2)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("n", [10, 1000])
def test_batch_form_queries_do_not_grow(client, requester, django_assert_max_num_queries, n):
    bulk_connections(n)
    client.force_login(requester)
    with django_assert_max_num_queries(10):
        response = client.get(new_url(lifecycle_off="on"))
    assert f"{2 * n} tunnels lack lifecycle control" in text(response)


@pytest.mark.django_db
@pytest.mark.parametrize("n", [2, 40])
def test_batch_page_and_list_queries_do_not_grow(
    client, requester, approver, django_assert_max_num_queries, n, no_enqueue
):
    bulk_connections(n // 2)
    batch = submit_batch(requester, Tunnel.objects.all())
    client.force_login(approver)
    with django_assert_max_num_queries(10):
        page = client.get(reverse("maintenance:batch", args=[batch.pk]))
    assert f"Waiting for approval × {n}" in text(page)
    for i in range(n):
        ChangeBatch.objects.create(requester=requester, reason=f"batch {i}")
    with django_assert_max_num_queries(10):
        listing = client.get(reverse("maintenance:batches"))
    assert f"{n + 1} batches" in text(listing)


# ---------------------------------------------------------------------------------------
# Execution: one tunnel of a connection at a time, connections in parallel
# ---------------------------------------------------------------------------------------

executing = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_watch(settings, monkeypatch):
    """Seconds instead of minutes; django-q2 tasks run inline (as in test_execution.py)."""
    settings.WATCH_INTERVAL_SECONDS = 0.1
    settings.WATCH_TIMEOUT_MINUTES = 0.5  # 30 s: ample on a loaded machine
    settings.AMBIGUOUS_GRACE_SECONDS = 1
    settings.STALE_EXECUTION_SECONDS = 60
    monkeypatch.setattr(Conf, "SYNC", True)


def lacking_world(aws, n: int = 1) -> list[tuple[Tunnel, Tunnel]]:
    """n connections in the simulated AWS, both tunnels without lifecycle control."""
    ids = [
        aws.create_connection(
            region="ap-northeast-1",
            name=f"site-{i}",
            tunnels=[TunnelSpec(lifecycle_control=False), TunnelSpec(lifecycle_control=False)],
        )
        for i in range(n)
    ]
    sync.run_sync()
    pairs = []
    for connection_id in ids:
        first, second = sorted(
            Tunnel.objects.filter(connection__vpn_connection_id=connection_id),
            key=lambda t: tuple(int(p) for p in t.outside_ip.split(".")),
        )
        pairs.append((first, second))
    return pairs


def modify_calls(aws, ip: str | None = None) -> list:
    return [
        c
        for c in aws.call_log
        if c.action == MODIFY and (ip is None or c.params.get("VpnTunnelOutsideIpAddress") == ip)
    ]


@executing
def test_the_second_tunnel_starts_only_after_the_first_succeeded(
    aws, accounts, requester, approver, fast_watch
):
    [(first, second)] = lacking_world(aws)
    batch = submit_batch(requester, [second, first], skip=True)
    one, two = batch.ordered_requests()
    assert (one.tunnel, two.tunnel) == (first, second)

    batch.approve(user=approver)  # the window is open: execution starts at once

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, two.status) == (ChangeStatus.SUCCEEDED, ChangeStatus.SUCCEEDED)
    assert len(modify_calls(aws)) == 2
    [call_one] = modify_calls(aws, first.outside_ip)
    [call_two] = modify_calls(aws, second.outside_ip)
    ran_one = Execution.objects.get(change_request=one)
    ran_two = Execution.objects.get(change_request=two)
    assert call_one.at < ran_one.finished_at <= ran_two.claimed_at < call_two.at
    # Its tunnel was UP when the second began.
    assert ran_two.before["status"] == "UP" and ran_one.after["status"] == "UP"


@executing
def test_the_second_tunnel_waits_while_the_first_runs_then_starts_at_once(
    aws, accounts, requester, approver, fast_watch, monkeypatch
):
    [(first, second)] = lacking_world(aws)
    batch = submit_batch(requester, [first, second])
    one, two = batch.ordered_requests()
    held: list[tuple] = []
    with queue_held() as queue:
        batch.approve(user=approver)  # both windows are open: both executions are queued
        # The queued executions run; the looks at the tunnel they book stay held. A minute
        # later the sweeper queues again only what is still waiting: the second tunnel.
        for _minute in range(2):
            for args in queue.of(enqueue.EXECUTE_CHANGE):
                tasks.execute_change(*args)
            held += queue.of(enqueue.WATCH_EXECUTION)
            queue.release()
            tasks.sweep()
            assert queue.of(enqueue.EXECUTE_CHANGE) == [(two.pk,)]

        one.refresh_from_db()
        two.refresh_from_db()
        assert (one.status, two.status) == (ChangeStatus.RUNNING, ChangeStatus.APPROVED)
        assert len(modify_calls(aws)) == 1 and modify_calls(aws, second.outside_ip) == []

    # The first succeeds: the second is queued at once, without waiting for the sweeper.
    for pk, generation in held:
        tasks.watch_execution(pk, generation)

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, two.status) == (ChangeStatus.SUCCEEDED, ChangeStatus.SUCCEEDED)
    assert len(modify_calls(aws)) == 2
    [call_one] = modify_calls(aws, first.outside_ip)
    [call_two] = modify_calls(aws, second.outside_ip)
    ran_one = Execution.objects.get(change_request=one)
    ran_two = Execution.objects.get(change_request=two)
    assert call_one.at < ran_one.finished_at <= ran_two.claimed_at < call_two.at
    # Its tunnel was UP when the second began.
    assert ran_two.before["status"] == "UP" and ran_one.after["status"] == "UP"


@executing
def test_when_the_first_fails_the_second_never_calls_aws(
    aws, accounts, requester, approver, fast_watch
):
    [(first, second)] = lacking_world(aws)
    aws.inject_fault(MODIFY, "InvalidParameterValue", count=1)
    batch = submit_batch(requester, [first, second], skip=True)
    one, two = batch.ordered_requests()

    batch.approve(user=approver)

    one.refresh_from_db()
    two.refresh_from_db()
    assert one.status == ChangeStatus.FAILED
    assert two.status == ChangeStatus.BLOCKED
    assert "the first tunnel's change did not succeed" in two.status_reason
    assert f"request #{one.pk}" in two.status_reason
    assert len(modify_calls(aws)) == 1
    assert modify_calls(aws, second.outside_ip) == []
    blocked = AuditEvent.objects.get(change_request=two, action=AuditAction.EXECUTION_BLOCKED)
    assert "Nothing was sent to AWS" in blocked.message
    assert not AuditEvent.objects.filter(
        change_request=two, action=AuditAction.EXECUTION_CALLING_AWS
    ).exists()


@executing
def test_connections_run_in_parallel_and_their_second_tunnels_wait(
    aws, accounts, requester, approver, fast_watch, monkeypatch
):
    pairs = lacking_world(aws, n=2)
    batch = submit_batch(requester, [t for pair in pairs for t in pair], skip=True)
    # Hold the watches back so that no execution can finish while the sweeper starts them.
    with queue_held() as queue:
        batch.approve(user=approver)  # queues all four: every window is open
        for args in queue.of(enqueue.EXECUTE_CHANGE):
            tasks.execute_change(*args)
        held = queue.of(enqueue.WATCH_EXECUTION)

    firsts = [ChangeRequest.objects.get(batch=batch, tunnel=first) for first, _ in pairs]
    seconds = [ChangeRequest.objects.get(batch=batch, tunnel=second) for _, second in pairs]
    # Both connections' first tunnels were claimed and called AWS, neither finished yet;
    # the second tunnels wait, unclaimed.
    assert [r.status for r in firsts] == [ChangeStatus.RUNNING, ChangeStatus.RUNNING]
    assert [r.status for r in seconds] == [ChangeStatus.APPROVED, ChangeStatus.APPROVED]
    assert len(held) == 2 and len(modify_calls(aws)) == 2
    runs = [Execution.objects.get(change_request=r) for r in firsts]
    assert all(run.finished_at is None and run.calling_aws_at for run in runs)
    assert not Execution.objects.filter(change_request__in=seconds).exists()

    for pk, generation in held:
        tasks.watch_execution(pk, generation)

    statuses = set(batch.requests.values_list("status", flat=True))
    assert statuses == {ChangeStatus.SUCCEEDED}
    assert len(modify_calls(aws)) == 4
    runs = [Execution.objects.get(change_request=r) for r in firsts]
    assert max(run.claimed_at for run in runs) < min(run.finished_at for run in runs)
