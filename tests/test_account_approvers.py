"""Approvers per account: who may decide an account's requests, and how many must approve.

An account naming approver groups or users lets only them decide its requests and the
batches touching it; "Waiting for my approval", the nav count and the email follow. An
account naming none keeps the global rule (any approver), and its approvals needed
default to the global setting.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from maintenance import roles
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import Approval, AuditEvent, ChangeBatch, ChangeRequest
from tests.conftest import _user
from tests.factories import make_account, make_connection, pending


@pytest.fixture
def network_team(db) -> Group:
    return Group.objects.create(name="network-team")


@pytest.fixture
def restricted(network_team):
    """An account whose requests only the network team decides."""
    account = make_account("payments", "210987654321")
    account.approver_groups.add(network_team)
    return account


@pytest.fixture
def member(network_team) -> User:
    """An approver in the named group."""
    user = _user("nami", roles.APPROVER)
    user.groups.add(network_team)
    return user


def submit(user, account, **kwargs) -> ChangeRequest:
    connection = make_connection(account, tunnels=[pending(days=10), {}])
    start = timezone.now() + timedelta(hours=2)
    return ChangeRequest.submit(
        user=user,
        tunnel=connection.tunnels.order_by("outside_ip")[0],
        kind=ChangeKind.REPLACE,
        reason="quarterly patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
        **kwargs,
    )


def submit_batch(user, *accounts) -> ChangeBatch:
    off = {"lifecycle_control": False}
    tunnels = []
    for account in accounts:
        tunnels += list(make_connection(account, tunnels=[off, off]).tunnels.all())
    start = timezone.now() + timedelta(hours=2)
    return ChangeBatch.submit(
        user=user,
        tunnels=tunnels,
        reason="lifecycle control everywhere",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )


def state() -> tuple:
    return (
        list(ChangeRequest.objects.order_by("pk").values_list("pk", "status", "updated_at")),
        Approval.objects.count(),
        AuditEvent.objects.count(),
    )


REFUSAL = (
    "Only the approvers named for account payments may decide its requests: "
    "groups network-team; users —."
)

# -- deciding ---------------------------------------------------------------------------


def test_a_member_of_the_named_group_decides(requester, restricted, member):
    change = submit(requester, restricted)
    change.approve(user=member)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED


def test_an_approver_outside_the_named_ones_gets_403_and_nothing_changes(
    client, requester, restricted, approver
):
    change = submit(requester, restricted)
    before = state()
    client.force_login(approver)
    for decision, comment in (("approve", "fine"), ("reject", "no")):
        response = client.post(
            reverse("maintenance:request_decide", args=[change.pk]),
            {"decision": decision, "comment": comment},
        )
        assert response.status_code == 403
        assert REFUSAL in response.content.decode()
    assert state() == before
    assert not AuditEvent.objects.filter(
        action__in=[AuditAction.REQUEST_APPROVED_BY, AuditAction.REQUEST_REJECTED]
    ).exists()
    with pytest.raises(PermissionDenied, match="network-team"):
        change.approve(user=approver)


def test_the_request_page_says_who_may_decide(client, requester, restricted, approver, member):
    change = submit(requester, restricted)
    client.force_login(approver)
    html = client.get(reverse("maintenance:request", args=[change.pk])).content.decode()
    assert "Approvers for account payments: groups network-team; users —" in html
    assert REFUSAL in html
    assert "Your decision" not in html  # no form offered to someone who may not decide
    client.force_login(member)
    html = client.get(reverse("maintenance:request", args=[change.pk])).content.decode()
    assert "Your decision" in html


def test_no_named_approvers_is_any_approver(client, requester, approver):
    change = submit(requester, make_account())
    client.force_login(approver)
    html = client.get(reverse("maintenance:request", args=[change.pk])).content.decode()
    assert "Who may decide: Any approver" in html
    change.approve(user=approver)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED


def test_a_named_user_decides_and_others_do_not(requester, approver, second_approver):
    account = make_account("payments", "210987654321")
    account.approver_users.add(second_approver)
    change = submit(requester, account)
    with pytest.raises(PermissionDenied, match="users bunta"):
        change.approve(user=approver)
    change.approve(user=second_approver)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED


def test_a_named_user_without_the_approver_role_may_not_decide(requester, restricted, outsider):
    restricted.approver_users.add(outsider)
    assert not restricted.may_decide(outsider)
    assert restricted.may_decide(User.objects.get(username="rei")) is False


# -- the lists, the count, the email -------------------------------------------------------


def test_waiting_for_my_approval_and_the_count_follow(
    client, requester, restricted, approver, member
):
    theirs = submit(requester, restricted)
    anyone = submit(requester, make_account())
    assert set(ChangeRequest.objects.awaiting_decision_of(approver)) == {anyone}
    assert set(ChangeRequest.objects.awaiting_decision_of(member)) == {anyone, theirs}

    client.force_login(approver)
    html = client.get(reverse("maintenance:my_approvals")).content.decode()
    assert f'data-request="{anyone.pk}"' in html
    assert f'data-request="{theirs.pk}"' not in html
    assert re.search(r"Waiting for my approval\s*<span[^>]*>\s*1\s*<", html)
    client.force_login(member)
    html = client.get(reverse("maintenance:my_approvals")).content.decode()
    assert f'data-request="{theirs.pk}"' in html
    assert re.search(r"Waiting for my approval\s*<span[^>]*>\s*2\s*<", html)


def test_the_email_goes_to_the_named_approvers_only(
    requester, restricted, approver, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit(requester, restricted)
    assert [m.to[0] for m in mail.outbox] == ["nami@example.com"]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        submit(requester, make_account())
    assert sorted(m.to[0] for m in mail.outbox) == ["aiko@example.com", "nami@example.com"]


# -- how many approvals -------------------------------------------------------------------


def test_an_account_may_need_two_approvals(requester, approver, second_approver, settings):
    settings.REQUIRED_APPROVALS = 1
    account = make_account("payments", "210987654321", required_approvals=2)
    change = submit(requester, account)
    assert change.required_approvals == 2
    change.approve(user=approver)
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL
    change.approve(user=second_approver)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED


def test_an_account_without_its_own_number_takes_the_global_setting(requester, settings):
    settings.REQUIRED_APPROVALS = 3
    account = make_account()
    assert account.required_approvals is None and account.approvals_needed() == 3
    assert submit(requester, account).required_approvals == 3


# -- batches ------------------------------------------------------------------------------


def test_a_batch_touching_a_restricted_account_is_refused_for_an_outsider(
    client, requester, restricted, approver, member
):
    batch = submit_batch(requester, make_account(), restricted)
    before = state()
    client.force_login(approver)
    html = client.get(reverse("maintenance:batch", args=[batch.pk])).content.decode()
    assert 'value="approve"' not in html
    response = client.post(
        reverse("maintenance:batch_decide", args=[batch.pk]),
        {"decision": "approve", "comment": ""},
    )
    assert response.status_code == 403
    assert REFUSAL in response.content.decode()
    assert state() == before

    client.force_login(member)
    response = client.post(
        reverse("maintenance:batch_decide", args=[batch.pk]),
        {"decision": "approve", "comment": ""},
    )
    assert response.status_code == 302
    assert set(batch.requests.values_list("status", flat=True)) == {ChangeStatus.APPROVED}


def test_the_batch_email_goes_to_who_may_decide_all_of_it(
    requester, restricted, approver, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit_batch(requester, make_account(), restricted)
    assert [m.to[0] for m in mail.outbox] == ["nami@example.com"]


# -- the admin ----------------------------------------------------------------------------


def admin_form(**overrides) -> dict:
    data = {
        "name": "payments",
        "account_id": "210987654321",
        "role_arn": "",
        "external_id": "",
        "regions": "ap-northeast-1",
        "enabled": "on",
        "required_approvals": "",
    }
    data.update(overrides)
    return data


def test_the_admin_edits_the_approvers_and_audits_it(client, admin_user, network_team, member):
    client.force_login(admin_user)
    account = make_account("payments", "210987654321")
    url = reverse("admin:maintenance_awsaccount_change", args=[account.pk])
    assert 'name="approver_groups"' in client.get(url).content.decode()
    response = client.post(
        url,
        admin_form(
            approver_groups=[network_team.pk], approver_users=[member.pk], required_approvals="2"
        ),
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert list(account.approver_groups.all()) == [network_team]
    assert list(account.approver_users.all()) == [member]
    assert account.required_approvals == 2
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_CHANGED)
    assert event.message == "Account payments changed, with who decides its requests."
    assert event.details["before"]["approver_groups"] == []
    assert event.details["after"]["approver_groups"] == ["network-team"]
    assert event.details["after"]["approver_users"] == ["nami"]
    assert event.details["before"]["required_approvals"] is None
    assert event.details["after"]["required_approvals"] == 2
    assert AuditEvent.verify_chain()[2] == ""


def test_the_admin_refuses_zero_approvals(client, admin_user):
    client.force_login(admin_user)
    account = make_account("payments", "210987654321")
    url = reverse("admin:maintenance_awsaccount_change", args=[account.pk])
    response = client.post(url, admin_form(required_approvals="0"))
    assert response.status_code == 200
    assert (
        "At least one approval is needed; leave it empty for the global setting."
        in response.content.decode()
    )
    account.refresh_from_db()
    assert account.required_approvals is None
    assert not AuditEvent.objects.exists()


# -- queries ------------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    client.get(url)  # warm: the session, the content types
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_who_may_decide_costs_no_query_per_account(client, requester, restricted, member):
    """One query reads the named approvers and the reader's groups, on either page."""
    client.force_login(member)
    anyone, theirs = submit(requester, make_account()), submit(requester, restricted)
    pages = [reverse("maintenance:request", args=[r.pk]) for r in (anyone, theirs)]
    assert _queries(client, pages[0]) == _queries(client, pages[1])

    others = [make_account(f"team-{n}", f"30000000000{n}") for n in range(3)]
    for account in others:
        account.approver_groups.add(Group.objects.get(name="network-team"))
    one = submit_batch(requester, restricted)
    four = submit_batch(requester, restricted, *others)
    assert _queries(client, reverse("maintenance:batch", args=[one.pk])) == _queries(
        client, reverse("maintenance:batch", args=[four.pk])
    )
