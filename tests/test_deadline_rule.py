"""The deadline rule at every step: a window must end before AWS applies the maintenance.

AWS may move `MaintenanceAutoAppliedAfter` earlier after a request was made. From then on
the request cannot be approved, it is flagged on its page and in the lists, and if it was
already approved the worker blocks it at preflight: nothing is sent to AWS after (or
racing) AWS's own deadline. Sync moving the deadline is audited and the requester told.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from maintenance import enqueue, sync, tasks, times
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import Approval, AuditEvent, ChangeRequest, Tunnel
from simulator import TunnelSpec
from tests.queue_helpers import queue_held

pytestmark = pytest.mark.django_db(transaction=True)

REPLACE = "ReplaceVpnTunnel"


@pytest.fixture(autouse=True)
def inline_queue(monkeypatch, settings):
    settings.WATCH_INTERVAL_SECONDS = 0.1
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def world(aws, accounts):
    """A tunnel due in 5 days, and a request for a window that ends in 3 hours."""
    first = TunnelSpec(
        pending_maintenance="Available", auto_apply_after=timezone.now() + timedelta(days=5)
    )
    connection_id = aws.create_connection(region="ap-northeast-1", tunnels=[first, TunnelSpec()])
    sync.run_sync()
    ip = aws.tunnel_ips(connection_id)[0]
    return connection_id, ip, Tunnel.objects.get(outside_ip=ip)


def request_on(tunnel, requester, **window):
    return ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="patch before the deadline",
        window_start=window.get("start"),
        window_end=timezone.now() + timedelta(hours=3),
    )


def aws_moves_the_deadline(aws, connection_id, ip, *, hours_from_now=1):
    """AWS brings its deadline forward to before the window's end; sync sees it."""
    deadline = timezone.now() + timedelta(hours=hours_from_now)
    aws.set_tunnel(connection_id, ip, auto_apply_after=deadline)
    sync.run_sync()
    return deadline


def events(action, request):
    return list(AuditEvent.objects.filter(action=action, change_request=request))


def test_sync_moving_the_deadline_is_audited_and_the_requester_told(
    aws, world, requester, approver
):
    connection_id, ip, tunnel = world
    change = request_on(tunnel, requester)
    mail.outbox.clear()

    deadline = aws_moves_the_deadline(aws, connection_id, ip)

    [event] = events(AuditAction.REQUEST_DEADLINE_MOVED, change)
    assert event.actor_kind == "aws"
    assert event.details["deadline"] == times.iso(deadline.replace(microsecond=0))
    assert times.local(change.window_end) in event.message
    [email] = [m for m in mail.outbox if m.to == [requester.email]]
    assert "AWS moved its deadline before the window" in email.subject
    assert "Reschedule the window to end before the new deadline" in email.body
    assert not [m for m in mail.outbox if m.to == [approver.email]]
    # The next sync sees the same deadline: nothing new to say.
    sync.run_sync()
    assert len(events(AuditAction.REQUEST_DEADLINE_MOVED, change)) == 1
    # A deadline moved later, or moved for a window that still ends before it, says nothing.
    aws.set_tunnel(connection_id, ip, auto_apply_after=timezone.now() + timedelta(days=9))
    sync.run_sync()
    assert len(events(AuditAction.REQUEST_DEADLINE_MOVED, change)) == 1


def test_approval_after_the_deadline_moved_is_refused_and_changes_nothing(
    aws, world, requester, approver
):
    connection_id, ip, tunnel = world
    change = request_on(tunnel, requester)
    deadline = aws_moves_the_deadline(aws, connection_id, ip)
    audit_before = AuditEvent.objects.count()

    with queue_held() as queue, pytest.raises(ValidationError) as refused:
        change.approve(user=approver)
    assert queue.held() == []

    with timezone.override("UTC"):
        expected = times.local(deadline)
    [message] = refused.value.messages
    assert f"AWS now applies this maintenance by itself after {expected}" in message
    assert "Reschedule the window to end before then, or let AWS apply it." in message
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL
    assert not Approval.objects.filter(change_request=change).exists()
    assert AuditEvent.objects.count() == audit_before
    assert aws.calls(REPLACE) == 0


def test_the_approver_reads_the_refusal_on_the_page_and_the_flag_in_the_lists(
    aws, world, requester, approver, client
):
    connection_id, ip, tunnel = world
    change = request_on(tunnel, requester)
    aws_moves_the_deadline(aws, connection_id, ip)
    client.force_login(approver)
    page = reverse("maintenance:request", args=[change.pk])

    shown = client.get(page).content.decode()
    assert 'data-flag="after-deadline"' in shown
    assert "As it stands the request cannot be approved and will not run" in shown
    answer = client.post(
        reverse("maintenance:request_decide", args=[change.pk]), {"decision": "approve"}
    )
    assert "AWS now applies this maintenance by itself after" in answer.content.decode()
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL

    for name in ("requests", "my_approvals"):
        listed = client.get(reverse(f"maintenance:{name}")).content.decode()
        row = listed[listed.index(f'data-request="{change.pk}"') :]
        assert "ends after AWS's deadline" in row.split("</tr>")[0], name


def test_an_approved_change_whose_deadline_moved_is_blocked_at_preflight(
    aws, world, requester, approver
):
    connection_id, ip, tunnel = world
    change = request_on(tunnel, requester)
    with queue_held() as queue:
        change.approve(user=approver)
        assert queue.of(enqueue.EXECUTE_CHANGE) == [(change.pk,)]
    aws_moves_the_deadline(aws, connection_id, ip)

    assert tasks.execute_change(change.pk) == "blocked"

    change.refresh_from_db()
    assert change.status == ChangeStatus.BLOCKED
    assert "AWS now applies this maintenance by itself after" in change.status_reason
    assert aws.calls(REPLACE) == 0
    assert not events(AuditAction.EXECUTION_CALLING_AWS, change)
    [blocked] = events(AuditAction.EXECUTION_BLOCKED, change)
    assert "Nothing was sent to AWS" in blocked.message
