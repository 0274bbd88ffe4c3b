"""Blackout periods: no change window may overlap one; the request form lists them."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from maintenance.choices import ChangeKind
from maintenance.models import AuditEvent, BlackoutPeriod, ChangeRequest, UserProfile
from tests.factories import make_account, make_connection, pending

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
FREEZE_START = NOW + timedelta(days=3)
FREEZE_END = NOW + timedelta(days=4)


def text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def local(dt: datetime, zone: str) -> str:
    return dt.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def tunnel(db):
    connection = make_connection(name="tokyo-office", tunnels=[pending(days=10), {}])
    return connection.tunnels.order_by("outside_ip")[0]


def post_window(client, tunnel, start: datetime, hours: int = 2):
    return client.post(
        reverse("maintenance:request_new", args=[tunnel.pk, ChangeKind.REPLACE]),
        {
            "reason": "patch",
            "window_start": local(start, "Asia/Tokyo"),
            "window_end": local(start + timedelta(hours=hours), "Asia/Tokyo"),
        },
    )


@pytest.mark.parametrize("scope", ["global", "account"])
def test_overlapping_window_is_refused_and_nothing_is_created(client, requester, tunnel, scope):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    account = tunnel.connection.account if scope == "account" else None
    BlackoutPeriod.objects.create(
        name="Year-end freeze", starts_at=FREEZE_START, ends_at=FREEZE_END, account=account
    )
    client.force_login(requester)
    events = AuditEvent.objects.count()
    response = post_window(client, tunnel, FREEZE_START - timedelta(hours=1))
    assert response.status_code == 200
    page = text(response)
    assert "The request was not submitted." in page
    # Named, with its times in the user's zone (03:00 UTC = 12:00 JST).
    assert (
        "The window overlaps the blackout “Year-end freeze” "
        "(2026-11-28 12:00 JST – 2026-11-29 12:00 JST)"
    ) in page
    html = response.content.decode()
    block_start = html.index('id="id_window_start"')
    assert "overlaps the blackout" in html[block_start : block_start + 2000]
    assert ChangeRequest.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_model_refuses_on_window_start(requester, tunnel):
    BlackoutPeriod.objects.create(name="Freeze", starts_at=FREEZE_START, ends_at=FREEZE_END)
    with pytest.raises(ValidationError) as exc:
        ChangeRequest.submit(
            user=requester,
            tunnel=tunnel,
            kind=ChangeKind.REPLACE,
            reason="patch",
            window_start=FREEZE_END - timedelta(minutes=30),
            window_end=FREEZE_END + timedelta(hours=1),
        )
    assert "overlaps the blackout “Freeze”" in str(exc.value.error_dict["window_start"])
    assert not ChangeRequest.objects.exists()


def test_window_touching_a_blackout_is_fine(requester, tunnel):
    BlackoutPeriod.objects.create(name="Freeze", starts_at=FREEZE_START, ends_at=FREEZE_END)
    change = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="patch",
        window_start=FREEZE_END,
        window_end=FREEZE_END + timedelta(hours=1),
    )
    assert change.pk


def test_blackout_of_another_account_does_not_refuse(client, requester, tunnel):
    other = make_account("other", "210987654321")
    BlackoutPeriod.objects.create(
        name="Other team's freeze", starts_at=FREEZE_START, ends_at=FREEZE_END, account=other
    )
    client.force_login(requester)
    response = post_window(client, tunnel, FREEZE_START)
    assert response.status_code == 302
    assert ChangeRequest.objects.count() == 1


def test_form_lists_upcoming_blackouts_of_the_account(client, requester, tunnel):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    other = make_account("other", "210987654321")
    BlackoutPeriod.objects.create(name="Global freeze", starts_at=FREEZE_START, ends_at=FREEZE_END)
    BlackoutPeriod.objects.create(
        name="Office move",
        starts_at=FREEZE_START + timedelta(days=2),
        ends_at=FREEZE_END + timedelta(days=2),
        account=tunnel.connection.account,
    )
    BlackoutPeriod.objects.create(
        name="Other team's freeze", starts_at=FREEZE_START, ends_at=FREEZE_END, account=other
    )
    BlackoutPeriod.objects.create(
        name="Last week's freeze",
        starts_at=NOW - timedelta(days=7),
        ends_at=NOW - timedelta(days=6),
    )
    client.force_login(requester)
    page = text(client.get(reverse("maintenance:request_new", args=[tunnel.pk, "replace"])))
    assert "Blackouts: no window may overlap these times" in page
    assert "Global freeze: 2026-11-28 12:00 JST – 2026-11-29 12:00 JST (every account)" in page
    assert "Office move" in page and "(account default)" in page
    assert "Other team's freeze" not in page
    assert "Last week's freeze" not in page


def test_form_without_blackouts_says_nothing(client, requester, tunnel):
    client.force_login(requester)
    page = text(client.get(reverse("maintenance:request_new", args=[tunnel.pk, "replace"])))
    assert "Blackouts" not in page


def test_admin_can_define_a_blackout(client, db):
    from django.contrib.auth.models import User

    superuser = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:maintenance_blackoutperiod_add"),
        {
            "name": "Freeze",
            "starts_at_0": "2026-12-28",
            "starts_at_1": "00:00:00",
            "ends_at_0": "2026-12-27",
            "ends_at_1": "00:00:00",
            "reason": "",
        },
    )
    assert response.status_code == 200  # ends before it starts: refused
    assert not BlackoutPeriod.objects.exists()
    response = client.post(
        reverse("admin:maintenance_blackoutperiod_add"),
        {
            "name": "Freeze",
            "starts_at_0": "2026-12-28",
            "starts_at_1": "00:00:00",
            "ends_at_0": "2027-01-04",
            "ends_at_1": "00:00:00",
            "reason": "year end",
        },
    )
    assert response.status_code == 302
    blackout = BlackoutPeriod.objects.get()
    assert blackout.created_by == superuser and blackout.account is None


def test_admins_define_blackouts_in_the_admin(client, admin_user, requester):
    client.force_login(admin_user)
    response = client.post(
        "/admin/maintenance/blackoutperiod/add/",
        {
            "name": "Year-end freeze",
            "starts_at_0": "2026-12-28",
            "starts_at_1": "00:00:00",
            "ends_at_0": "2027-01-04",
            "ends_at_1": "00:00:00",
            "reason": "No network changes over the holidays.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert BlackoutPeriod.objects.filter(name="Year-end freeze").exists()
    client.force_login(requester)
    assert client.get("/admin/maintenance/blackoutperiod/add/").status_code in (302, 403)


def test_blackout_changes_in_the_admin_are_audited(client, admin_user):
    from maintenance.choices import AuditAction

    client.force_login(admin_user)
    form = {
        "name": "Freeze",
        "starts_at_0": "2026-12-28",
        "starts_at_1": "00:00:00",
        "ends_at_0": "2027-01-04",
        "ends_at_1": "00:00:00",
        "reason": "Holidays.",
    }
    client.post("/admin/maintenance/blackoutperiod/add/", form)
    blackout = BlackoutPeriod.objects.get(name="Freeze")
    client.post(
        f"/admin/maintenance/blackoutperiod/{blackout.pk}/change/",
        {**form, "ends_at_0": "2027-01-05"},
    )
    client.post(f"/admin/maintenance/blackoutperiod/{blackout.pk}/delete/", {"post": "yes"})
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in events] == [
        AuditAction.BLACKOUT_CHANGED,
        AuditAction.BLACKOUT_CHANGED,
        AuditAction.BLACKOUT_DELETED,
    ]
    assert events[0].message == "Blackout Freeze added."
    assert events[1].details["before"]["ends_at"].startswith("2027-01-04")
    assert events[1].details["after"]["ends_at"].startswith("2027-01-05")
    assert not BlackoutPeriod.objects.exists()
    assert AuditEvent.verify_chain()[2] == ""
