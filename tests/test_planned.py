""" "Planned before the deadline": one rule, read the same by the dashboard, the connection
list, the deadline reminders and the calendar.

A tunnel's pending maintenance is planned when an approved or running change applies it
in a window that opens before AWS's deadline. Turning lifecycle control on with
SkipTunnelReplacement leaves the maintenance pending, so it plans nothing: every reader
must still call that tunnel unplanned.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from maintenance import calendar
from maintenance.choices import ChangeKind, ChangeStatus, PendingMaintenance
from maintenance.models import ChangeRequest, Tunnel
from maintenance.reminders import send_deadline_reminders
from tests.factories import make_connection, pending

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NO_APPROVED = reverse("maintenance:connections") + "?deadline_within=7&no_approved_request=1"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def change_on(requester, tunnel, *, kind, skip=False, status=ChangeStatus.APPROVED, start=None):
    start = start or NOW + timedelta(days=1)
    change = ChangeRequest(
        kind=kind,
        tunnel=tunnel,
        skip_tunnel_replacement=skip,
        requester=requester,
        reason="planned",
        window_start=start,
        window_end=start + timedelta(hours=2),
        status=status,
    )
    change.fingerprint = change.compute_fingerprint()
    change.save()
    return change


@pytest.fixture
def estate(db, requester, admin_user, settings):
    """Four tunnels due in 3 days; only the replacement and the plain switch plan them."""
    settings.REMINDER_DAYS = 7
    names = ["replaced", "switched", "skipping", "nothing"]
    tunnels = {}
    for name in names:
        connection = make_connection(
            name=name, tunnels=[{**pending(days=3), "lifecycle_control": False}, {}]
        )
        tunnels[name] = connection.tunnels.get(pending_maintenance=PendingMaintenance.AVAILABLE)
    change_on(requester, tunnels["replaced"], kind=ChangeKind.REPLACE)
    change_on(requester, tunnels["switched"], kind=ChangeKind.ENABLE_LIFECYCLE)
    change_on(requester, tunnels["skipping"], kind=ChangeKind.ENABLE_LIFECYCLE, skip=True)
    return tunnels


UNPLANNED = {"skipping", "nothing"}


def test_the_queryset_says_which_tunnels_are_unplanned(estate):
    unplanned = Tunnel.objects.unplanned().values_list("connection__name", flat=True)
    assert set(unplanned) == UNPLANNED


def test_a_change_that_opens_after_the_deadline_or_waits_for_approval_plans_nothing(
    estate, requester
):
    nothing = estate["nothing"]
    change_on(requester, nothing, kind=ChangeKind.REPLACE, start=NOW + timedelta(days=4))
    assert nothing in Tunnel.objects.unplanned()
    ChangeRequest.objects.filter(tunnel=nothing).update(
        status=ChangeStatus.PENDING_APPROVAL, window_start=NOW + timedelta(days=1)
    )
    assert nothing in Tunnel.objects.unplanned()
    ChangeRequest.objects.filter(tunnel=nothing).update(status=ChangeStatus.RUNNING)
    assert nothing not in Tunnel.objects.unplanned()


def test_the_dashboard_and_the_list_count_the_skipping_switch_as_unplanned(
    client, requester, estate
):
    client.force_login(requester)
    page = client.get(reverse("maintenance:home")).content.decode()
    assert f'href="{NO_APPROVED.replace("&", "&amp;")}" class="figure badge badge-bad">2<' in page
    listed = client.get(NO_APPROVED).content.decode()
    for name in estate:
        assert (name in listed) == (name in UNPLANNED), name


def test_the_reminder_names_the_skipping_switch_too(estate, admin_user):
    # The admin, and the requester of the changes on these connections.
    assert send_deadline_reminders() == 2
    [reminder] = [m for m in mail.outbox if m.to == [admin_user.email]]
    for name in estate:
        assert (name in reminder.body) == (name in UNPLANNED), name


def test_the_calendar_says_which_deadlines_are_planned(estate):
    events = calendar.deadlines(NOW, NOW + timedelta(days=30))
    said = {e.connection.name: e.description for e in events}
    assert set(said) == set(estate)
    for name, description in said.items():
        planned = "An approved change applies it before then." in description
        unplanned = "No approved change applies it before then yet." in description
        assert (planned, unplanned) == (name not in UNPLANNED, name in UNPLANNED), name
