"""Every rule of the change workflow: the error a user sees, and that nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import Approval, AuditEvent, ChangeRequest
from tests.factories import make_connection, pending


def messages(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)


@pytest.fixture
def tunnel(db):
    connection = make_connection(tunnels=[pending(days=10), {}])
    return connection.tunnels.order_by("outside_ip")[0]


def window(start_in: timedelta = timedelta(hours=2), length: timedelta = timedelta(hours=1)):
    start = timezone.now() + start_in
    return {"window_start": start, "window_end": start + length}


def submit(user, tunnel, kind=ChangeKind.REPLACE, **kwargs):
    fields = {"reason": "quarterly patch", **window(), **kwargs}
    return ChangeRequest.submit(user=user, tunnel=tunnel, kind=kind, **fields)


def assert_nothing_written(before_requests: int = 0, before_events: int = 0) -> None:
    assert ChangeRequest.objects.count() == before_requests
    assert AuditEvent.objects.count() == before_events


# -- submitting ---------------------------------------------------------------------------


def test_submit_creates_pending_request_with_audit_event(requester, approver, tunnel):
    request = submit(requester, tunnel)
    assert request.status == ChangeStatus.PENDING_APPROVAL
    assert request.fingerprint == request.compute_fingerprint()
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.REQUEST_SUBMITTED
    assert event.actor_name == "rei"
    assert event.tunnel == tunnel and event.change_request == request


def test_submit_tells_approvers_by_email_with_link(
    requester, approver, second_approver, tunnel, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(requester, tunnel)
    assert sorted(m.to[0] for m in mail.outbox) == ["aiko@example.com", "bunta@example.com"]
    assert f"/requests/{request.pk}/" in mail.outbox[0].body
    assert "Approval needed" in mail.outbox[0].subject
    assert "rei@example.com" not in [m.to[0] for m in mail.outbox]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"window_start": timezone.now() - timedelta(hours=1)}, "must start in the future"),
        ({"length": timedelta(minutes=10)}, "at least 30 minutes"),
        ({"end_before_start": True}, "must end after it starts"),
        ({"start_in": timedelta(days=9, hours=23, minutes=30)}, "when AWS applies the maintenance"),
    ],
    ids=["past", "too-short", "backwards", "after-deadline"],
)
def test_window_rules(requester, tunnel, change, expected):
    fields = window(
        start_in=change.get("start_in", timedelta(hours=2)),
        length=change.get("length", timedelta(hours=1)),
    )
    if "window_start" in change:
        fields["window_start"] = change["window_start"]
        fields["window_end"] = change["window_start"] + timedelta(hours=3)
    if change.get("end_before_start"):
        fields["window_end"] = fields["window_start"] - timedelta(minutes=5)
    with pytest.raises(ValidationError) as exc:
        submit(requester, tunnel, **fields)
    assert expected in messages(exc.value)
    assert_nothing_written()


def test_replace_needs_pending_maintenance(requester, tunnel):
    sibling = tunnel.sibling()  # no pending maintenance on this one
    with pytest.raises(ValidationError) as exc:
        submit(requester, sibling)
    assert "no pending maintenance" in messages(exc.value)
    assert_nothing_written()


def test_enable_lifecycle_needs_flag_off(requester, tunnel):
    with pytest.raises(ValidationError) as exc:
        submit(requester, tunnel, kind=ChangeKind.ENABLE_LIFECYCLE)
    assert "already on" in messages(exc.value)
    assert_nothing_written()


def test_skip_replacement_only_with_lifecycle(requester, tunnel):
    with pytest.raises(ValidationError) as exc:
        submit(requester, tunnel, skip_tunnel_replacement=True)
    assert "only applies when turning lifecycle control on" in messages(exc.value)
    assert_nothing_written()


def test_reason_is_required(requester, tunnel):
    with pytest.raises(ValidationError) as exc:
        submit(requester, tunnel, reason="  ")
    assert "Say why" in messages(exc.value)
    assert_nothing_written()


def test_only_requesters_may_submit(approver, outsider, tunnel):
    for user in (approver, outsider):
        with pytest.raises(PermissionDenied):
            submit(user, tunnel)
    assert_nothing_written()


def test_one_open_request_per_tunnel(requester, other_requester, tunnel):
    first = submit(requester, tunnel)
    with pytest.raises(ValidationError) as exc:
        submit(other_requester, tunnel, **window(start_in=timedelta(days=2)))
    assert f"Request #{first.pk} is already open for this tunnel" in messages(exc.value)
    assert_nothing_written(1, 1)


def test_sibling_windows_may_not_overlap(requester, tunnel):
    sibling = tunnel.sibling()
    sibling.lifecycle_control = False
    sibling.save()
    first = submit(requester, tunnel)
    with pytest.raises(ValidationError) as exc:
        submit(
            requester,
            sibling,
            kind=ChangeKind.ENABLE_LIFECYCLE,
            **window(start_in=timedelta(hours=2, minutes=30)),
        )
    assert f"Request #{first.pk} on the other tunnel" in messages(exc.value)
    assert_nothing_written(1, 1)
    # A window after the first one ends is fine.
    later = submit(
        requester, sibling, kind=ChangeKind.ENABLE_LIFECYCLE, **window(start_in=timedelta(hours=3))
    )
    assert later.status == ChangeStatus.PENDING_APPROVAL


def test_a_finished_request_does_not_block_a_new_one(requester, admin_user, tunnel):
    submit(requester, tunnel).cancel(user=requester)
    assert submit(requester, tunnel).status == ChangeStatus.PENDING_APPROVAL


# -- deciding -----------------------------------------------------------------------------


@pytest.fixture
def request_(requester, tunnel):
    return submit(requester, tunnel)


def test_approval_approves_and_audits(request_, approver):
    request_.approve(user=approver, comment="ok for Sunday")
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.APPROVED
    assert request_.approved_at is not None
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions == [
        AuditAction.REQUEST_SUBMITTED,
        AuditAction.REQUEST_APPROVED_BY,
        AuditAction.REQUEST_APPROVED,
    ]


def test_nobody_approves_their_own_request(requester, tunnel):
    requester.groups.add(Group.objects.get(name="approver"))  # both roles: still not alone
    request = submit(requester, tunnel)
    with pytest.raises(ValidationError) as exc:
        request.approve(user=requester)
    assert "your own request" in messages(exc.value)
    request.refresh_from_db()
    assert request.status == ChangeStatus.PENDING_APPROVAL
    assert not Approval.objects.exists()
    assert AuditEvent.objects.count() == 1


def test_requesters_cannot_approve(request_, other_requester):
    with pytest.raises(PermissionDenied):
        request_.approve(user=other_requester)
    assert not Approval.objects.exists()


def test_one_decision_per_approver(requester, approver, tunnel, settings):
    settings.REQUIRED_APPROVALS = 2
    request = submit(requester, tunnel)
    request.approve(user=approver)
    with pytest.raises(ValidationError) as exc:
        request.approve(user=approver)
    assert "already decided" in messages(exc.value)
    request.refresh_from_db()
    assert request.status == ChangeStatus.PENDING_APPROVAL
    assert Approval.objects.count() == 1


def test_n_approvals_needed(requester, approver, second_approver, tunnel, settings):
    settings.REQUIRED_APPROVALS = 2
    request = submit(requester, tunnel)
    request.approve(user=approver)
    request.refresh_from_db()
    assert request.status == ChangeStatus.PENDING_APPROVAL
    request.approve(user=second_approver)
    request.refresh_from_db()
    assert request.status == ChangeStatus.APPROVED


def test_one_rejection_ends_it(requester, approver, second_approver, tunnel, settings):
    settings.REQUIRED_APPROVALS = 2
    request = submit(requester, tunnel)
    request.approve(user=approver)
    request.reject(user=second_approver, comment="not during the audit")
    request.refresh_from_db()
    assert request.status == ChangeStatus.REJECTED
    assert request.status_reason == "not during the audit"


def test_rejection_needs_a_comment(request_, approver):
    with pytest.raises(ValidationError) as exc:
        request_.reject(user=approver, comment="")
    assert "Say why you reject it" in messages(exc.value)
    assert not Approval.objects.exists()


def test_decisions_only_while_pending_approval(request_, approver, second_approver):
    request_.reject(user=approver, comment="no")
    with pytest.raises(ValidationError) as exc:
        request_.approve(user=second_approver)
    # The approver who came too late is told who decided, and when.
    assert "aiko already rejected it, " in messages(exc.value)
    assert "it is now Rejected." in messages(exc.value)
    assert Approval.objects.count() == 1


def test_no_decision_on_a_request_nobody_decided(request_, requester, approver):
    request_.cancel(user=requester, reason="not needed")
    with pytest.raises(ValidationError) as exc:
        request_.approve(user=approver)
    assert "only taken while a request waits for approval; this one is Cancelled" in messages(
        exc.value
    )
    assert not Approval.objects.exists()


def test_changed_fingerprint_voids_earlier_approvals(
    requester, approver, second_approver, tunnel, settings
):
    settings.REQUIRED_APPROVALS = 2
    request = submit(requester, tunnel)
    request.approve(user=approver)
    request.reschedule(user=requester, **window(start_in=timedelta(days=1)))
    request.refresh_from_db()
    assert request.valid_approvals() == []
    event = AuditEvent.objects.filter(action=AuditAction.REQUEST_RESCHEDULED).get()
    assert "1 earlier approval(s) no longer count" in event.message
    request.approve(user=second_approver)
    request.refresh_from_db()
    assert request.status == ChangeStatus.PENDING_APPROVAL  # the old approval does not count
    request.approve(user=approver)  # may decide again on the new window
    request.refresh_from_db()
    assert request.status == ChangeStatus.APPROVED


def test_request_altered_outside_vpnctl_cannot_be_approved(request_, approver):
    ChangeRequest.objects.filter(pk=request_.pk).update(
        window_end=request_.window_end + timedelta(hours=5)
    )
    with pytest.raises(ValidationError) as exc:
        request_.approve(user=approver)
    assert "altered outside vpnctl" in messages(exc.value)
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.PENDING_APPROVAL


def test_requester_is_told_of_the_decision(request_, approver, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request_.approve(user=approver, comment="go")
    assert [m.to for m in mail.outbox] == [["rei@example.com"]]
    assert "approved" in mail.outbox[0].subject
    assert "aiko: Approved — go" in mail.outbox[0].body


# -- cancelling and expiring --------------------------------------------------------------


def test_requester_or_admin_may_cancel(request_, other_requester, admin_user):
    with pytest.raises(PermissionDenied):
        request_.cancel(user=other_requester)
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.PENDING_APPROVAL
    request_.cancel(user=admin_user, reason="duplicate")
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.CANCELLED
    assert AuditEvent.objects.last().action == AuditAction.REQUEST_CANCELLED


def test_cannot_cancel_once_running(request_, approver, requester):
    request_.approve(user=approver)
    ChangeRequest.objects.filter(pk=request_.pk).update(status=ChangeStatus.RUNNING)
    with pytest.raises(ValidationError) as exc:
        request_.cancel(user=requester)
    assert "has not started" in messages(exc.value)
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.RUNNING


def test_window_that_closes_before_execution_expires(request_, approver, time_machine):
    from maintenance.tasks import sweep

    request_.approve(user=approver)
    time_machine.move_to(request_.window_end + timedelta(minutes=1))
    assert sweep()["expired"] == 1
    request_.refresh_from_db()
    assert request_.status == ChangeStatus.EXPIRED
    assert AuditEvent.objects.last().action == AuditAction.REQUEST_EXPIRED


def test_approving_after_the_window_closed_is_refused(request_, approver, time_machine):
    time_machine.move_to(request_.window_end + timedelta(minutes=1))
    with pytest.raises(ValidationError) as exc:
        request_.approve(user=approver)
    assert "window has already closed" in messages(exc.value)
    assert not Approval.objects.exists()


def test_as_soon_as_approved_opens_window_at_approval(requester, approver, tunnel):
    end = timezone.now() + timedelta(hours=3)
    request = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="asap",
        window_start=None,
        window_end=end,
    )
    assert request.start_when_approved
    request.approve(user=approver)
    request.refresh_from_db()
    assert request.status == ChangeStatus.APPROVED
    assert request.window_start == request.approved_at
