"""Several weeks of a fleet under a policy: the simulated AWS makes maintenance pending
from time to time, the sync (and AWS Health) tell vpnctl, and the policy drafts.

Sun 02:00–04:00 in Europe/Berlin, one hour a tunnel: across the clocks going back (Sunday
25 October 2026, 03:00 CEST → 02:00 CET) the window stays 02:00 local, so it moves from
00:00 to 01:00 UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from maintenance import sync, tasks
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.health_events import parse
from maintenance.models import (
    BlackoutPeriod,
    ChangeRequest,
    HealthEvent,
    MaintenancePolicy,
    VpnConnection,
)
from maintenance.models.plan import PlanProblem, fleet_plan, pending_tunnels
from simulator import TunnelSpec
from simulator.health import health_event_body

pytestmark = pytest.mark.django_db

START = datetime(2026, 10, 13, 8, 0, tzinfo=UTC)  # a Tuesday, in summer time


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def policy(db):
    return MaintenancePolicy.objects.create(
        name="berlin-prod",
        tags={"env": "prod"},
        windows=[[6, "02:00", "04:00"]],
        time_zone="Europe/Berlin",
        lead_time_hours=24,
        change_minutes=60,
        kinds=[ChangeKind.REPLACE],
    )


def windows_of(connection_id: str) -> list[tuple[datetime, datetime]]:
    return list(
        ChangeRequest.objects.filter(tunnel__connection__vpn_connection_id=connection_id)
        .order_by("window_start")
        .values_list("window_start", "window_end")
    )


def make_pending(aws, connection_id: str, deadline: datetime, *, tunnels=(0, 1)) -> None:
    for index in tunnels:
        aws.set_tunnel(
            connection_id,
            aws.tunnel_ips(connection_id)[index],
            pending_maintenance="Available",
            auto_apply_after=deadline,
        )


def test_weeks_of_maintenance_land_in_the_berlin_window(aws, accounts, policy, clock):
    first = aws.create_connection(region="ap-northeast-1", tags={"env": "prod"})
    second = aws.create_connection(region="us-east-1", tags={"env": "prod"})
    staging = aws.create_connection(region="ap-northeast-1", tags={"env": "staging"})
    sync.run_sync()
    assert ChangeRequest.objects.count() == 0  # nothing pending yet

    # Week 1: AWS makes maintenance pending on both tunnels of the first connection.
    make_pending(aws, first, START + timedelta(days=30))
    make_pending(aws, staging, START + timedelta(days=30))
    sync.run_sync()
    # Sunday 18 October, 02:00 CEST is 00:00 UTC: one tunnel, then the other.
    assert windows_of(first) == [
        (utc(2026, 10, 18, 0), utc(2026, 10, 18, 1)),
        (utc(2026, 10, 18, 1), utc(2026, 10, 18, 2)),
    ]
    assert windows_of(staging) == []  # no policy covers it

    # A second sync the same day drafts nothing more.
    clock.move_to(START + timedelta(hours=1))
    sync.run_sync()
    assert len(windows_of(first)) == 2

    # Week 2, after the clocks went back: the second connection's maintenance, told by
    # AWS Health before the sync, lands at 02:00 CET, 01:00 UTC.
    clock.move_to(utc(2026, 10, 26, 9))
    make_pending(aws, second, utc(2026, 11, 20))
    body = health_event_body([second], code="AWS_VPN_REDUNDANCY_LOSS", region="us-east-1")
    HealthEvent.receive(parse(json.dumps(body).encode()), body, actor=None, now=timezone.now())
    # The read the event queued, as the worker runs it: it reads, then the policy drafts.
    connection = VpnConnection.objects.get(vpn_connection_id=second)
    assert tasks.refresh_connection(connection.pk) == "refreshed"
    assert windows_of(second) == [
        (utc(2026, 11, 1, 1), utc(2026, 11, 1, 2)),
        (utc(2026, 11, 1, 2), utc(2026, 11, 1, 3)),
    ]
    # The same Health event delivered again changes nothing, nor does the next sync.
    again = HealthEvent.receive(
        parse(json.dumps(body).encode()), body, actor=None, now=timezone.now()
    )
    assert again[1] is False
    sync.run_sync()
    assert len(windows_of(second)) == 2
    assert ChangeRequest.objects.filter(status=ChangeStatus.PENDING_APPROVAL).count() == 4


def test_a_blackout_and_a_near_deadline_over_weeks(aws, accounts, policy, clock):
    freeze = BlackoutPeriod.objects.create(
        name="October freeze", starts_at=utc(2026, 10, 17), ends_at=utc(2026, 10, 26)
    )
    late = aws.create_connection(region="ap-northeast-1", tags={"env": "prod"})
    soon = aws.create_connection(region="ap-northeast-1", tags={"env": "prod"})
    make_pending(aws, late, utc(2026, 11, 20), tunnels=(0,))
    # AWS applies this one itself on Friday 16 October, before any Sunday window.
    make_pending(aws, soon, utc(2026, 10, 16, 12), tunnels=(0,))

    sync.run_sync()

    # The freeze covers the 18th and the 25th: 1 November, 02:00 CET.
    assert windows_of(late) == [(utc(2026, 11, 1, 1), utc(2026, 11, 1, 2))]
    # No preferred window before the deadline: the latest hour before it, flagged.
    (request,) = ChangeRequest.objects.filter(tunnel__connection__vpn_connection_id=soon)
    assert (request.window_start, request.window_end) == (
        utc(2026, 10, 16, 11),
        utc(2026, 10, 16, 12),
    )
    assert request.outside_preferred
    problems = {
        r.tunnel.connection.vpn_connection_id: r.problems
        for r in fleet_plan(pending_tunnels(), timezone.now())
    }
    assert PlanProblem.OUTSIDE_PREFERRED in problems[soon]
    assert PlanProblem.BLACKOUT not in problems[late]
    assert freeze.pk  # kept: the drafts went around it, not through it


def test_a_connection_with_no_slot_at_all_is_flagged_and_drafted_once_it_fits(
    aws, accounts, policy, clock
):
    connection_id = aws.create_connection(
        region="ap-northeast-1",
        tags={"env": "prod"},
        tunnels=[
            TunnelSpec(
                pending_maintenance="Available", auto_apply_after=START + timedelta(hours=20)
            ),
            TunnelSpec(),
        ],
    )

    sync.run_sync()  # the deadline comes before the 24 hours of lead time

    assert windows_of(connection_id) == []
    (row,) = fleet_plan(pending_tunnels(), timezone.now())
    assert row.problems == [PlanProblem.NO_SLOT]
    assert row.tunnel.no_slot_since == START

    # AWS moves its deadline later; the next sync drafts it and clears the flag.
    make_pending(aws, connection_id, utc(2026, 11, 20), tunnels=(0,))
    clock.move_to(START + timedelta(minutes=15))
    sync.run_sync()
    assert windows_of(connection_id) == [(utc(2026, 10, 18, 0), utc(2026, 10, 18, 1))]
    row.tunnel.refresh_from_db()
    assert row.tunnel.no_slot_since is None
