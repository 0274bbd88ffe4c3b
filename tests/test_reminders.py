"""The daily deadline reminder: who gets what, once a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django_q.models import Schedule

from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import ChangeRequest, ReminderSent, UserProfile
from maintenance.reminders import send_deadline_reminders
from maintenance.schedules import REMINDERS, ensure_schedules
from tests.factories import make_connection, pending

NOW = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def first_tunnel(connection):
    return connection.tunnels.order_by("outside_ip")[0]


def request_on(user, tunnel, status=ChangeStatus.SUCCEEDED):
    """A past (or current) request by `user` on `tunnel`, written directly."""
    return ChangeRequest.objects.create(
        kind=ChangeKind.REPLACE,
        tunnel=tunnel,
        requester=user,
        reason="earlier",
        window_start=NOW - timedelta(days=30),
        window_end=NOW - timedelta(days=30) + timedelta(hours=1),
        status=status,
        fingerprint="x",
    )


def outbox_for(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address]]


@pytest.fixture
def world(clock, requester, other_requester, approver, admin_user, settings):
    settings.REMINDER_DAYS = 7
    settings.SITE_URL = "https://vpnctl.example.com"
    soon = make_connection(name="tokyo-office", tunnels=[pending(days=3), {}])
    later = make_connection(name="osaka-dc", tunnels=[pending(days=5), {}])
    far = make_connection(name="nagoya-lab", tunnels=[pending(days=12), {}])
    planned = make_connection(name="sapporo-branch", tunnels=[pending(days=2), {}])
    # rei requested on tokyo-office before; ken on osaka-dc; both on the far and planned ones.
    request_on(requester, first_tunnel(soon))
    request_on(other_requester, first_tunnel(later), status=ChangeStatus.REJECTED)
    request_on(requester, first_tunnel(far))
    request_on(other_requester, first_tunnel(planned))
    # sapporo-branch has an approved change: nobody needs reminding.
    request_on(approver, first_tunnel(planned), status=ChangeStatus.APPROVED)
    return {"soon": soon, "later": later, "far": far, "planned": planned}


def test_who_gets_what(world, requester, other_requester, approver, admin_user):
    UserProfile.objects.create(user=admin_user, time_zone="Asia/Tokyo")
    sent = send_deadline_reminders()
    assert sent == 3

    # The admin: one email listing both tunnels due within 7 days, nearest first.
    [admin_mail] = outbox_for(admin_user.email)
    assert admin_mail.subject == "[vpnctl] AWS applies maintenance to 2 tunnels soon"
    body = admin_mail.body
    assert body.index("tokyo-office") < body.index("osaka-dc")
    assert "nagoya-lab" not in body and "sapporo-branch" not in body
    # In the admin's zone: 3 days after 00:30 UTC is 09:30 JST.
    assert "AWS deadline: 2026-11-28 09:30 JST (in 3 days)" in body
    soon = first_tunnel(world["soon"])
    link = f"https://vpnctl.example.com/connections/{world['soon'].pk}/#tunnel-{soon.pk}"
    assert link in body

    # Past requesters: only their connections' tunnels.
    [rei_mail] = outbox_for(requester.email)
    assert rei_mail.subject == "[vpnctl] AWS applies maintenance to 1 tunnel soon"
    assert "tokyo-office" in rei_mail.body and "osaka-dc" not in rei_mail.body
    assert "AWS deadline: 2026-11-28 00:30 UTC" in rei_mail.body
    [ken_mail] = outbox_for(other_requester.email)
    assert "osaka-dc" in ken_mail.body and "tokyo-office" not in ken_mail.body

    # The approver of sapporo-branch's change never requested on a due connection.
    assert outbox_for(approver.email) == []
    assert ReminderSent.objects.get(user=admin_user).tunnels == [
        soon.pk,
        first_tunnel(world["later"]).pk,
    ]


def test_nothing_for_a_tunnel_with_an_approved_request(world, admin_user):
    ChangeRequest.objects.filter(tunnel__connection=world["soon"]).update(
        status=ChangeStatus.RUNNING
    )
    ChangeRequest.objects.filter(tunnel__connection=world["later"]).update(
        status=ChangeStatus.APPROVED
    )
    assert send_deadline_reminders() == 0
    assert mail.outbox == []


def test_nothing_beyond_n_days_until_it_comes_closer(world, clock, requester, settings):
    settings.REMINDER_DAYS = 2
    # Nothing due within 2 days except sapporo-branch, which has an approved change.
    assert send_deadline_reminders() == 0
    clock.move_to(NOW + timedelta(days=1, minutes=1))
    send_deadline_reminders()
    [rei_mail] = outbox_for(requester.email)
    assert "tokyo-office" in rei_mail.body


def test_no_duplicates_the_same_day_and_a_new_email_the_next(world, clock, admin_user):
    assert send_deadline_reminders() == 3
    clock.move_to(NOW + timedelta(hours=20))  # 20:30 UTC, same day
    assert send_deadline_reminders() == 0
    assert len(mail.outbox) == 3
    clock.move_to(NOW + timedelta(days=1))
    assert send_deadline_reminders() == 3
    assert len(outbox_for(admin_user.email)) == 2
    assert ReminderSent.objects.filter(user=admin_user).count() == 2


def test_no_email_for_inactive_users_or_users_without_address(world, requester, admin_user):
    requester.is_active = False
    requester.save()
    admin_user.email = ""
    admin_user.save()
    assert send_deadline_reminders() == 1  # ken only
    assert not ReminderSent.objects.filter(user__in=[requester, admin_user]).exists()


def test_a_failed_send_can_be_retried(world, monkeypatch, admin_user):
    import maintenance.reminders as reminders

    def broken(*args, **kwargs):
        raise OSError("smtp down")

    monkeypatch.setattr(reminders, "send_mail", broken)
    assert send_deadline_reminders() == 0
    assert not ReminderSent.objects.exists()
    monkeypatch.undo()
    assert send_deadline_reminders() == 3


def test_daily_schedule_is_created(db):
    ensure_schedules()
    ensure_schedules()
    schedule = Schedule.objects.get(name=REMINDERS)
    assert schedule.func == "maintenance.reminders.send_deadline_reminders"
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.repeats == -1 and schedule.next_run is not None
