"""The admin: accounts are checked like the model checks them; the rest is read-only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from maintenance.choices import AuditAction, ChangeKind, Decision, SyncStatus
from maintenance.models import (
    Approval,
    AuditEvent,
    AwsAccount,
    ChangeRequest,
    Execution,
    ExecutionStep,
    SyncResult,
    SyncRun,
    UserProfile,
)
from tests.factories import make_account, make_connection, pending

ADD_URL = reverse("admin:maintenance_awsaccount_add")


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def account_form(**overrides) -> dict[str, str]:
    data = {
        "name": "second",
        "account_id": "210987654321",
        "role_arn": "arn:aws:iam::210987654321:role/vpnctl-reader",
        "external_id": "",
        "regions": "ap-northeast-1, eu-west-1",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def errors_on(response) -> str:
    html = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S))


def test_an_account_is_added_with_regions_typed_as_text(admin_client_):
    response = admin_client_.post(
        ADD_URL, account_form(regions="ap-northeast-1 eu-west-1,us-east-1")
    )
    assert response.status_code == 302, errors_on(response)
    account = AwsAccount.objects.get(name="second")
    assert account.regions == ["ap-northeast-1", "eu-west-1", "us-east-1"]
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_CHANGED)
    assert event.actor_name == "admin"
    assert event.details["after"]["regions"] == account.regions
    assert event.details["before"] is None


def test_a_malformed_role_arn_is_refused(admin_client_):
    response = admin_client_.post(ADD_URL, account_form(role_arn="arn:aws:iam::2109:user/bob"))
    assert response.status_code == 200
    assert "This is not an IAM role ARN." in errors_on(response)
    assert not AwsAccount.objects.exists()


def test_a_role_of_another_account_is_refused(admin_client_):
    response = admin_client_.post(
        ADD_URL, account_form(role_arn="arn:aws:iam::123456789012:role/vpnctl-reader")
    )
    assert "The role belongs to account 123456789012, not 210987654321." in errors_on(response)
    assert not AwsAccount.objects.exists()


def test_an_unknown_region_is_refused(admin_client_):
    response = admin_client_.post(ADD_URL, account_form(regions="ap-northeast-1, tokyo-1"))
    assert response.status_code == 200
    assert "Unknown AWS region: tokyo-1." in errors_on(response)
    assert not AwsAccount.objects.exists()


def test_no_region_is_refused(admin_client_):
    response = admin_client_.post(ADD_URL, account_form(regions=" , "))
    assert "Name at least one region." in errors_on(response)


def test_the_change_form_shows_the_regions_as_text_and_audits_the_change(admin_client_):
    account = make_account("second", "210987654321", regions=["eu-west-1", "us-east-1"])
    url = reverse("admin:maintenance_awsaccount_change", args=[account.pk])
    html = admin_client_.get(url).content.decode()
    assert 'value="eu-west-1, us-east-1"' in html

    response = admin_client_.post(url, account_form(regions="eu-west-1", enabled=""))
    assert response.status_code == 302, errors_on(response)
    account.refresh_from_db()
    assert account.regions == ["eu-west-1"] and not account.enabled
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_CHANGED)
    assert event.details["before"]["regions"] == ["eu-west-1", "us-east-1"]
    assert event.details["after"]["enabled"] is False


def test_the_account_list_shows_its_columns(admin_client_):
    make_account("second", "210987654321", regions=["eu-west-1", "us-east-1"])
    response = admin_client_.get(reverse("admin:maintenance_awsaccount_changelist"))
    html = response.content.decode()
    assert "eu-west-1, us-east-1" in html and "210987654321" in html


def test_the_audit_log_cannot_be_added_changed_or_deleted(superuser_client):
    event = AuditEvent.record(AuditAction.SYNC_FAILED, message="eu-west-1 unreadable")
    listing = superuser_client.get(reverse("admin:maintenance_auditevent_changelist"))
    assert listing.status_code == 200
    assert "eu-west-1 unreadable" in listing.content.decode()
    assert superuser_client.get(reverse("admin:maintenance_auditevent_add")).status_code == 403
    change = superuser_client.get(reverse("admin:maintenance_auditevent_change", args=[event.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    delete = reverse("admin:maintenance_auditevent_delete", args=[event.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == 1


def test_the_mirror_of_aws_is_read_only_in_the_admin(superuser_client):
    connection = make_connection(name="osaka")
    url = reverse("admin:maintenance_vpnconnection_change", args=[connection.pk])
    html = superuser_client.get(url).content.decode()
    assert 'name="_save"' not in html
    for tunnel in connection.tunnels.all():
        assert tunnel.outside_ip in html  # tunnels inline
    assert superuser_client.get(reverse("admin:maintenance_vpnconnection_add")).status_code == 403


@pytest.fixture
def one_of_everything(requester, approver):
    """A row in every table the admin shows, written directly (no workflow rules)."""
    connection = make_connection(tunnels=[pending(5), {}])
    tunnel = connection.tunnels.first()
    run = SyncRun.objects.create(status=SyncStatus.OK)
    SyncResult.objects.create(run=run, account=connection.account, region="ap-northeast-1")
    now = timezone.now()
    request = ChangeRequest.objects.create(
        kind=ChangeKind.REPLACE,
        tunnel=tunnel,
        requester=requester,
        reason="patch",
        window_start=now,
        window_end=now + timedelta(hours=1),
        fingerprint="f" * 64,
    )
    Approval.objects.create(
        change_request=request, approver=approver, decision=Decision.APPROVE, fingerprint="f" * 64
    )
    execution = Execution.objects.create(change_request=request, claimed_at=now, heartbeat_at=now)
    ExecutionStep.objects.create(execution=execution, message="Preflight checks passed.")
    AuditEvent.record(AuditAction.REQUEST_SUBMITTED, actor=requester, change_request=request)
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    return {
        "awsaccount": connection.account,
        "vpnconnection": connection,
        "tunnel": tunnel,
        "syncrun": run,
        "changerequest": request,
        "approval": request.approvals.get(),
        "execution": execution,
        "auditevent": AuditEvent.objects.get(),
        "userprofile": UserProfile.objects.get(),
    }


@pytest.mark.parametrize(
    "model",
    [
        "awsaccount",
        "vpnconnection",
        "tunnel",
        "syncrun",
        "changerequest",
        "approval",
        "execution",
        "auditevent",
        "userprofile",
    ],
)
def test_every_admin_list_and_page_opens(superuser_client, one_of_everything, model):
    obj = one_of_everything[model]
    listing = superuser_client.get(reverse(f"admin:maintenance_{model}_changelist"))
    assert listing.status_code == 200
    assert "1 " in listing.content.decode()  # "1 <model>" / "1 result"
    page = superuser_client.get(reverse(f"admin:maintenance_{model}_change", args=[obj.pk]))
    assert page.status_code == 200


def test_execution_page_shows_its_steps(superuser_client, one_of_everything):
    execution = one_of_everything["execution"]
    html = superuser_client.get(
        reverse("admin:maintenance_execution_change", args=[execution.pk])
    ).content.decode()
    assert "Preflight checks passed." in html


def test_connection_admin_searches_by_id(superuser_client):
    target = make_connection(name="osaka")
    make_connection(name="kyoto")
    response = superuser_client.get(
        reverse("admin:maintenance_vpnconnection_changelist"), {"q": target.vpn_connection_id}
    )
    html = response.content.decode()
    assert target.vpn_connection_id in html and "kyoto" not in html


def test_admin_role_cannot_add_a_connection(admin_client_):
    assert admin_client_.get(reverse("admin:maintenance_vpnconnection_add")).status_code == 403
