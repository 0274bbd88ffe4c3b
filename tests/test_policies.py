"""Maintenance policies: drafts in the preferred windows of the policy's zone, one tunnel of
a connection at a time, never twice, around blackouts, flagged when no window fits; and the
standard change that approves them, voided by an edit or a suspension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from maintenance.choices import AuditAction, ChangeKind, ChangeStatus, PendingMaintenance
from maintenance.models import (
    AuditEvent,
    BlackoutPeriod,
    ChangeRequest,
    HealthEvent,
    MaintenancePolicy,
    Tunnel,
)
from maintenance.models.drafting import PLANNER_USERNAME, draft_pending
from maintenance.models.plan import PlanProblem, fleet_plan, pending_tunnels
from maintenance.texts import render
from tests.factories import make_account, make_connection

pytestmark = pytest.mark.django_db

# Tuesday 1 December 2026, 09:00 UTC (18:00 in Tokyo).
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def make_policy(name="prod", *, zone="Asia/Tokyo", windows=((6, 2, 4),), **fields):
    """Sunday 02:00–04:00 in Tokyo by default: Saturday 17:00–19:00 UTC."""
    fields.setdefault("kinds", [ChangeKind.REPLACE])
    fields.setdefault("tags", {"env": "prod"})
    return MaintenancePolicy.objects.create(
        name=name,
        time_zone=zone,
        windows=[[day, f"{start:02d}:00", f"{end:02d}:00"] for day, start, end in windows],
        **fields,
    )


def prod_connection(deadline_days=(20, 20), base=NOW, **extra):
    tunnels = [
        {
            "pending_maintenance": PendingMaintenance.AVAILABLE,
            "maintenance_auto_applied_after": base + timedelta(days=d),
        }
        for d in deadline_days
    ]
    return make_connection(tags={"env": "prod"}, tunnels=tunnels, **extra)


def drafts_of(connection):
    return list(
        ChangeRequest.objects.filter(tunnel__connection=connection).order_by("window_start")
    )


def test_both_tunnels_are_drafted_into_the_next_window_one_after_the_other():
    policy = make_policy()
    connection = prod_connection()

    outcome = draft_pending(NOW)

    first, second = drafts_of(connection)
    assert len(outcome.drafted) == 2
    # Sunday 6 December 02:00 JST is Saturday 17:00 UTC; one hour each.
    assert (first.window_start, first.window_end) == (utc(2026, 12, 5, 17), utc(2026, 12, 5, 18))
    assert (second.window_start, second.window_end) == (utc(2026, 12, 5, 18), utc(2026, 12, 5, 19))
    assert {first.tunnel_id, second.tunnel_id} == set(
        connection.tunnels.values_list("pk", flat=True)
    )
    for draft in (first, second):
        assert draft.status == ChangeStatus.PENDING_APPROVAL
        assert draft.policy == policy
        assert not draft.outside_preferred
        assert draft.requester.username == PLANNER_USERNAME
        assert not draft.requester.is_active and not draft.requester.has_usable_password()
    submitted = AuditEvent.objects.filter(
        action=AuditAction.REQUEST_SUBMITTED, change_request=first
    ).get()
    assert submitted.details["policy"] == policy.pk
    assert "prod" in render(submitted.details["text"])


def test_a_second_run_drafts_nothing_more():
    make_policy()
    connection = prod_connection()
    draft_pending(NOW)
    events = AuditEvent.objects.count()

    outcome = draft_pending(NOW + timedelta(minutes=15))

    assert outcome.drafted == [] and outcome.unplannable == []
    assert len(drafts_of(connection)) == 2
    assert AuditEvent.objects.count() == events


def test_a_connection_outside_the_selector_is_left_alone():
    make_policy(tags={"env": "prod"})
    staging = make_connection(
        tags={"env": "staging"},
        tunnels=[
            {
                "pending_maintenance": PendingMaintenance.AVAILABLE,
                "maintenance_auto_applied_after": NOW + timedelta(days=20),
            },
            {},
        ],
    )
    other_account = prod_connection(account=make_account("other", "210987654321"))
    make_policy("only-default", tags={"env": "prod"}).accounts.add(make_account())
    MaintenancePolicy.objects.filter(name="prod").update(enabled=False)

    draft_pending(NOW)

    assert drafts_of(staging) == []
    assert drafts_of(other_account) == []


def test_a_short_window_puts_the_sibling_into_the_next_week():
    make_policy(windows=((6, 2, 3),))  # one hour: room for one tunnel
    connection = prod_connection()

    draft_pending(NOW)

    first, second = drafts_of(connection)
    assert first.window_start == utc(2026, 12, 5, 17)
    assert second.window_start == utc(2026, 12, 12, 17)


def test_a_blackout_moves_the_drafts_a_week():
    make_policy()
    BlackoutPeriod.objects.create(
        name="Year-end freeze", starts_at=utc(2026, 12, 5), ends_at=utc(2026, 12, 6)
    )
    connection = prod_connection()

    draft_pending(NOW)

    assert [d.window_start for d in drafts_of(connection)] == [
        utc(2026, 12, 12, 17),
        utc(2026, 12, 12, 18),
    ]


def test_no_window_before_the_deadline_drafts_the_latest_slot_flagged():
    make_policy()
    # AWS applies it itself on Friday 4 December 12:00 UTC, before the first Sunday window.
    connection = prod_connection(deadline_days=(3.125, 40))

    draft_pending(NOW)

    late = ChangeRequest.objects.get(tunnel__connection=connection, outside_preferred=True)
    assert (late.window_start, late.window_end) == (utc(2026, 12, 4, 11), utc(2026, 12, 4, 12))
    rows = fleet_plan(pending_tunnels(), NOW)
    assert PlanProblem.OUTSIDE_PREFERRED in rows[0].problems


def test_no_slot_at_all_is_flagged_in_the_plan():
    make_policy(lead_time_hours=48)
    connection = prod_connection(deadline_days=(1, 1))  # the deadline comes before the lead time

    outcome = draft_pending(NOW)

    assert drafts_of(connection) == []
    assert len(outcome.unplannable) == 2
    rows = fleet_plan(pending_tunnels(), NOW)
    assert [r.problems for r in rows] == [[PlanProblem.NO_SLOT], [PlanProblem.NO_SLOT]]


def test_drafts_keep_the_wall_clock_time_across_daylight_saving(clock):
    # Sunday 01:00–03:00 in New York; the clocks go forward on Sunday 14 March 2027.
    make_policy(zone="America/New_York", windows=((6, 1, 3),), change_minutes=60)
    clock.move_to(utc(2027, 3, 9, 12))
    before = prod_connection(deadline_days=(20, 20), base=utc(2027, 3, 9, 12))
    draft_pending(utc(2027, 3, 9, 12))
    first, second = drafts_of(before)
    # 01:00 EST is 06:00 UTC; the second hour, 02:00 EST, does not exist that night: the
    # window ends at 03:00 EDT (07:00 UTC), so the first tunnel's hour is all there is.
    assert first.window_start == utc(2027, 3, 14, 6)
    # The sibling goes a week later, in daylight time: 01:00 EDT is 05:00 UTC.
    assert second.window_start == utc(2027, 3, 21, 5)


# -- the standard change -------------------------------------------------------------


def standard_policy(approver, second_approver, **fields):
    policy = make_policy(
        standard_from=NOW - timedelta(days=1), standard_until=NOW + timedelta(days=90), **fields
    )
    policy.approve_standard(user=approver, comment="ok", now=NOW)
    policy.approve_standard(user=second_approver, comment="", now=NOW)
    return MaintenancePolicy.objects.get(pk=policy.pk)


def test_a_draft_under_a_standard_change_is_approved_by_it(approver, second_approver, settings):
    settings.REQUIRED_APPROVALS = 2
    policy = standard_policy(approver, second_approver)
    connection = prod_connection()

    draft_pending(NOW)

    for draft in drafts_of(connection):
        assert draft.status == ChangeStatus.APPROVED
        assert draft.standard_fingerprint == policy.fingerprint()
    approved = AuditEvent.objects.filter(
        action=AuditAction.REQUEST_APPROVED, change_request=drafts_of(connection)[0]
    ).get()
    sentence = render(approved.details["text"])
    assert "standard change policy prod" in sentence
    assert approver.username in sentence and second_approver.username in sentence
    assert "2026-12-01" in sentence


def test_one_approval_of_two_is_not_a_standard_change(approver, settings):
    settings.REQUIRED_APPROVALS = 2
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=90))
    policy.approve_standard(user=approver, comment="", now=NOW)
    connection = prod_connection()

    draft_pending(NOW)

    assert {d.status for d in drafts_of(connection)} == {ChangeStatus.PENDING_APPROVAL}


def test_editing_the_policy_voids_the_approval_of_drafts_not_yet_run(
    approver, second_approver, admin_user, settings
):
    settings.REQUIRED_APPROVALS = 2
    policy = standard_policy(approver, second_approver)
    connection = prod_connection()
    draft_pending(NOW)
    before = policy.fingerprint()

    policy.windows = [*policy.windows, [2, "01:00", "03:00"]]
    policy.save()
    policy = MaintenancePolicy.objects.get(pk=policy.pk)
    voided = policy.record_edit(user=admin_user, before=before, now=NOW)

    assert voided == 2
    assert {d.status for d in drafts_of(connection)} == {ChangeStatus.PENDING_APPROVAL}
    assert not policy.is_standard_at(NOW + timedelta(days=4))
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_STANDARD_VOIDED).count() == 2


def test_a_suspension_stops_the_standard_change_at_once(approver, second_approver, settings):
    settings.REQUIRED_APPROVALS = 2
    policy = standard_policy(approver, second_approver)
    connection = prod_connection()
    draft_pending(NOW)

    policy.suspend(user=approver, now=NOW + timedelta(minutes=1))

    policy = MaintenancePolicy.objects.get(pk=policy.pk)
    assert not policy.is_standard_at(NOW + timedelta(days=4))
    assert {d.status for d in drafts_of(connection)} == {ChangeStatus.PENDING_APPROVAL}


def test_only_the_named_approvers_may_approve_a_policy(approver, second_approver):
    leads = Group.objects.create(name="net-leads")
    second_approver.groups.add(leads)
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=30))
    policy.approver_groups.add(leads)

    with pytest.raises(PermissionDenied) as refused:
        policy.approve_standard(user=approver, comment="", now=NOW)

    assert "Only the approvers named for policy prod may approve it." in str(refused.value)
    assert not policy.approvals.exists()
    policy.approve_standard(user=second_approver, comment="", now=NOW)
    assert policy.approvals.count() == 1


def test_a_policy_without_a_period_cannot_be_approved(approver):
    policy = make_policy()
    with pytest.raises(ValidationError) as refused:
        policy.approve_standard(user=approver, comment="", now=NOW)
    assert "Set the period of the standard change" in str(refused.value)
    assert not policy.approvals.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.POLICY_APPROVED).exists()


def test_a_requester_may_not_approve_a_policy(requester):
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=30))
    with pytest.raises(PermissionDenied):
        policy.approve_standard(user=requester, comment="", now=NOW)


def test_the_same_approver_counts_once(approver):
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=30))
    policy.approve_standard(user=approver, comment="", now=NOW)
    with pytest.raises(ValidationError) as refused:
        policy.approve_standard(user=approver, comment="", now=NOW)
    assert "already approved this policy" in str(refused.value)


def test_a_tunnel_with_an_open_request_is_not_drafted(requester):
    make_policy()
    connection = prod_connection()
    tunnel = connection.tunnels.order_by("outside_ip").first()
    manual = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="by hand",
        window_start=utc(2026, 12, 5, 17),
        window_end=utc(2026, 12, 5, 18),
    )

    draft_pending(NOW)

    others = [d for d in drafts_of(connection) if d.pk != manual.pk]
    assert len(others) == 1 and others[0].tunnel_id != tunnel.pk
    # The sibling's draft keeps clear of the manual window.
    assert others[0].window_start >= manual.window_end
    assert Tunnel.objects.filter(pk=tunnel.pk, change_requests__policy__isnull=False).count() == 0


# -- the admin's form ------------------------------------------------------------------


def test_windows_and_tags_typed_as_text_are_read():
    from maintenance.forms.policies import MaintenancePolicyForm

    form = MaintenancePolicyForm(
        data={
            "name": "prod",
            "enabled": "on",
            "windows": "Sun 02:00-04:00\nsat 2:00–4:00, Wednesday 22:00-01:00",
            "tags": "env=prod, team=network",
            "time_zone": "Asia/Tokyo",
            "lead_time_hours": "24",
            "change_minutes": "60",
            "kinds": [ChangeKind.REPLACE],
        }
    )
    assert form.is_valid(), form.errors
    policy = form.save()
    assert policy.windows == [[2, "22:00", "01:00"], [5, "02:00", "04:00"], [6, "02:00", "04:00"]]
    assert policy.tags == {"env": "prod", "team": "network"}
    assert policy.window_labels()[0] == "Wednesday 22:00–01:00"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("windows", "Sunday at two", "is not a weekly window such as Sun 02:00-04:00"),
        ("windows", "Sun 25:00-26:00", "is not a weekly window"),
        ("tags", "env", "is not name=value"),
        ("change_minutes", "10", "at least 30 minutes"),
    ],
)
def test_a_policy_form_says_what_is_wrong(field, value, message):
    from maintenance.forms.policies import MaintenancePolicyForm

    data = {
        "name": "prod",
        "windows": "Sun 02:00-04:00",
        "time_zone": "Asia/Tokyo",
        "lead_time_hours": "24",
        "change_minutes": "60",
        "kinds": [ChangeKind.REPLACE],
        field: value,
    }
    form = MaintenancePolicyForm(data=data)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])
    assert not MaintenancePolicy.objects.exists()


# -- the pages -------------------------------------------------------------------------


def test_the_plan_lists_problems_first_and_filters_by_them(client, requester):
    make_policy(lead_time_hours=48)
    stuck = prod_connection(deadline_days=(1, 1))  # no slot before the deadline
    planned = prod_connection(deadline_days=(20, 20))
    unpoliced = make_connection(
        tags={"env": "lab"},
        tunnels=[
            {
                "pending_maintenance": PendingMaintenance.AVAILABLE,
                "maintenance_auto_applied_after": NOW + timedelta(days=5),
            },
            {},
        ],
    )
    draft_pending(NOW)
    client.force_login(requester)

    page = client.get("/plan/").content.decode()

    assert page.index(stuck.vpn_connection_id) < page.index(unpoliced.vpn_connection_id)
    assert page.index(unpoliced.vpn_connection_id) < page.index(planned.vpn_connection_id)
    assert "policy prod found no window before the deadline" in page
    assert "Nothing, and no policy covers this connection." in page
    assert "drafted by policy prod" in page
    assert "5 tunnels with pending maintenance" in page
    only = client.get("/plan/?problem=no_slot").content.decode()
    assert stuck.vpn_connection_id in only and planned.vpn_connection_id not in only
    assert "2 tunnels with pending maintenance" in only


def test_an_approver_approves_a_policy_on_its_page(client, approver, settings):
    settings.REQUIRED_APPROVALS = 1
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=30))
    connection = prod_connection()
    draft_pending(NOW)
    client.force_login(approver)
    assert "Approve as a standard change" in client.get(f"/policies/{policy.pk}/").content.decode()

    answer = client.post(f"/policies/{policy.pk}/approve/", {"comment": "reviewed"}, follow=True)

    page = answer.content.decode()
    assert "You approved this policy as a standard change." in page
    assert "Suspend the standard change now" in page
    assert {d.status for d in drafts_of(connection)} == {ChangeStatus.APPROVED}
    request_page = client.get(f"/requests/{drafts_of(connection)[0].pk}/").content.decode()
    assert "standard change: every safety check still runs when the window opens" in request_page
    assert "its approvers approved the policy, not each request" in request_page
    assert "the maintenance policy below planned it into this window" in request_page
    assert f'href="/policies/{policy.pk}/"' in request_page


def test_a_requester_cannot_approve_or_suspend_a_policy(client, requester):
    policy = make_policy(standard_from=NOW, standard_until=NOW + timedelta(days=30))
    client.force_login(requester)
    assert (
        "Approve as a standard change" not in client.get(f"/policies/{policy.pk}/").content.decode()
    )
    assert client.post(f"/policies/{policy.pk}/approve/").status_code == 403
    assert client.post(f"/policies/{policy.pk}/suspend/").status_code == 403
    assert not policy.approvals.exists()
    policy.refresh_from_db()
    assert policy.suspended_at is None


def test_approving_without_a_period_says_so_and_changes_nothing(client, approver):
    policy = make_policy()
    client.force_login(approver)
    page = client.post(f"/policies/{policy.pk}/approve/", follow=True).content.decode()
    assert "Set the period of the standard change (from, until) before approving it." in page
    assert not policy.approvals.exists()


def test_editing_a_policy_in_the_admin_voids_its_standard_change(
    client, approver, second_approver, admin_user, settings
):
    settings.REQUIRED_APPROVALS = 2
    policy = standard_policy(approver, second_approver)
    connection = prod_connection()
    draft_pending(NOW)
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    form = {
        "name": policy.name,
        "enabled": "on",
        "windows": "Sun 02:00-05:00",
        "tags": "env=prod",
        "time_zone": "Asia/Tokyo",
        "lead_time_hours": "24",
        "change_minutes": "60",
        "kinds": [ChangeKind.REPLACE],
        "standard_from_0": "2026-11-30",
        "standard_from_1": "09:00:00",
        "standard_until_0": "2027-03-01",
        "standard_until_1": "09:00:00",
    }

    answer = client.post(f"/admin/maintenance/maintenancepolicy/{policy.pk}/change/", form)

    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert {d.status for d in drafts_of(connection)} == {ChangeStatus.PENDING_APPROVAL}
    changed = AuditEvent.objects.get(action=AuditAction.POLICY_CHANGED)
    assert changed.actor == admin_user and changed.details["before"] != changed.details["after"]


def test_the_dashboard_shows_tunnels_with_no_slot_and_the_last_health_events(client, requester):
    from maintenance.health_events import parse
    from simulator.health import encoded, health_event_body

    make_policy(lead_time_hours=48)
    connection = prod_connection(deadline_days=(1, 1))
    draft_pending(NOW)
    for region in ("ap-northeast-1", "us-east-1"):
        body = health_event_body(
            [connection.vpn_connection_id], code="AWS_VPN_NEW_THING", region=region
        )
        HealthEvent.receive(parse(encoded(body)), body, actor=None, now=NOW)
    client.force_login(requester)

    page = " ".join(client.get("/").content.decode().split())

    assert (
        'badge-bad">2</span> tunnels whose maintenance policy found no window before '
        "AWS's deadline" in page
    )
    assert "/plan/?problem=no_slot" in page
    assert page.count("AWS_VPN_NEW_THING") == 2
    assert "unknown type" in page


def test_the_calendar_feed_names_the_policy_of_an_approved_draft(
    client, approver, second_approver, settings
):
    from maintenance.models import CalendarFeed

    settings.REQUIRED_APPROVALS = 2
    standard_policy(approver, second_approver)
    prod_connection()
    draft_pending(NOW)
    feed = CalendarFeed.issue(approver)[0]

    ics = client.get(f"/calendar/{feed.token}.ics").content.decode().replace("\r\n ", "")

    assert ics.count("Drafted by the maintenance policy prod.") == 2


@pytest.mark.parametrize("how", ["rejected", "cancelled", "blocked"])
def test_a_draft_people_or_checks_stopped_is_not_drafted_again(how, approver, admin_user, client):
    make_policy()
    connection = prod_connection(deadline_days=(20, 20))
    draft_pending(NOW)
    first = drafts_of(connection)[0]
    if how == "rejected":
        first.reject(user=approver, comment="not during the audit")
    elif how == "cancelled":
        first.cancel(user=admin_user, reason="done by hand")
    else:
        first.transition(ChangeStatus.PENDING_APPROVAL, ChangeStatus.BLOCKED, NOW)

    outcome = draft_pending(NOW + timedelta(minutes=15))

    assert outcome.drafted == []
    assert len(drafts_of(connection)) == 2  # the sibling's draft, and the stopped one
    client.force_login(approver)
    page = " ".join(client.get("/plan/").content.decode().split())
    assert "was rejected, cancelled or stopped, so it leaves the tunnel to people" in page


def test_a_draft_that_expired_is_drafted_into_the_next_window(clock):
    make_policy()
    connection = prod_connection(deadline_days=(20, 20))
    draft_pending(NOW)
    first = drafts_of(connection)[0]
    clock.move_to(first.window_end + timedelta(minutes=1))
    assert first.expire()

    outcome = draft_pending(first.window_end + timedelta(minutes=1))

    assert [r.window_start for r in outcome.drafted] == [first.window_start + timedelta(days=7)]
