"""The risks shown before a change is requested and while it is open (maintenance/risks.py)."""

from __future__ import annotations

import zoneinfo
from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.choices import ChangeKind, ConnectionState, TunnelStatus
from maintenance.risks import BAD, INFO, WARN, blocking, risks_for
from tests.factories import make_connection, pending


def tunnels(*specs, **connection):
    connection = make_connection(tunnels=list(specs), **connection)
    first, *rest = connection.tunnels.order_by("outside_ip")
    return first, (rest[0] if rest else None)


def by_code(risks):
    return {r.code: r for r in risks}


@pytest.fixture
def healthy(db):
    """Pending maintenance ten days away, BGP routes, both tunnels UP with lifecycle control."""
    return tunnels({**pending(days=10), "accepted_route_count": 4}, {"accepted_route_count": 4})


def test_a_healthy_replacement_has_only_the_deadline_as_a_note(healthy):
    tunnel, _ = healthy
    risks = risks_for(tunnel, ChangeKind.REPLACE)
    assert [(r.level, r.code) for r in risks] == [(INFO, "deadline")]
    assert not blocking(risks)


def test_sibling_down_is_a_full_outage_and_blocks(db):
    tunnel, sibling = tunnels(
        {**pending(), "accepted_route_count": 2}, {"status": TunnelStatus.DOWN}
    )
    risk = by_code(risks_for(tunnel, ChangeKind.REPLACE))["sibling_down"]
    assert risk.level == BAD
    assert sibling.outside_ip in risk.text
    assert "full outage" in risk.text and "blocked" in risk.text


def test_sibling_missing_blocks(db):
    tunnel, _ = tunnels({**pending(), "accepted_route_count": 2})
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["no_sibling"].level == BAD


def test_close_deadline_names_the_date_in_the_users_zone_and_days_left(db):
    tunnel, _ = tunnels({**pending(days=3), "accepted_route_count": 2}, {})
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        risk = by_code(risks_for(tunnel, ChangeKind.REPLACE))["deadline"]
    assert risk.level == WARN
    assert "JST" in risk.text and "in 3 days" in risk.text
    assert "must end before" in risk.text


def test_far_deadline_is_only_a_note(healthy):
    tunnel, _ = healthy
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["deadline"].level == INFO


def test_passed_deadline_is_a_blocker(db):
    tunnel, _ = tunnels({**pending(days=-1), "accepted_route_count": 2}, {})
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["deadline_passed"].level == BAD


def test_pending_without_deadline_warns(db):
    tunnel, _ = tunnels(
        {**pending(), "maintenance_auto_applied_after": None, "accepted_route_count": 2}, {}
    )
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["no_deadline"].level == WARN


def test_replace_without_pending_maintenance_is_a_blocker(db):
    tunnel, _ = tunnels({"accepted_route_count": 2}, {})
    risk = by_code(risks_for(tunnel, ChangeKind.REPLACE))["no_pending"]
    assert risk.level == BAD and "no pending maintenance" in risk.text


def test_enabling_lifecycle_interrupts_and_may_apply_pending_maintenance(db):
    tunnel, _ = tunnels({**pending(), "lifecycle_control": False, "accepted_route_count": 2}, {})
    risks = by_code(risks_for(tunnel, ChangeKind.ENABLE_LIFECYCLE))
    assert "interrupts it for up to several minutes" in risks["modify_interrupts"].text
    assert risks["applies_pending"].level == WARN
    assert "no_pending" not in risks  # lifecycle control needs no pending maintenance


def test_other_tunnel_lacking_lifecycle_control_too_is_named(db):
    tunnel, sibling = tunnels(
        {"lifecycle_control": False, "accepted_route_count": 2}, {"lifecycle_control": False}
    )
    risk = by_code(risks_for(tunnel, ChangeKind.ENABLE_LIFECYCLE))["sibling_no_lifecycle"]
    assert sibling.outside_ip in risk.text
    assert "lacks lifecycle control too" in risk.text and "request lifecycle control" in risk.text


def test_lifecycle_already_on_is_a_blocker(healthy):
    tunnel, _ = healthy
    assert by_code(risks_for(tunnel, ChangeKind.ENABLE_LIFECYCLE))["already_on"].level == BAD


@pytest.mark.parametrize("routes", [None, 0])
def test_no_bgp_routes_warns(db, routes):
    tunnel, _ = tunnels({**pending(), "accepted_route_count": routes}, {})
    risk = by_code(risks_for(tunnel, ChangeKind.REPLACE))["no_bgp"]
    assert risk.level == WARN and "No BGP routes" in risk.text


def test_bgp_routes_mean_no_bgp_warning(healthy):
    tunnel, _ = healthy
    assert "no_bgp" not in by_code(risks_for(tunnel, ChangeKind.REPLACE))


def test_connection_not_available_and_gone(db):
    tunnel, _ = tunnels(
        {**pending(), "accepted_route_count": 2}, {}, state=ConnectionState.MODIFYING
    )
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["connection_state"].level == WARN
    connection = tunnel.connection
    connection.gone_at = timezone.now()
    connection.save()
    tunnel.refresh_from_db()
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["gone"].level == BAD


def test_stale_and_never_synced_data_is_said(db):
    tunnel, _ = tunnels(
        {**pending(), "accepted_route_count": 2, "synced_at": None},
        {},
    )
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["never_synced"].level == WARN
    tunnel.synced_at = timezone.now() - timedelta(days=3)
    tunnel.save()
    assert by_code(risks_for(tunnel, ChangeKind.REPLACE))["stale"].level == INFO


def test_most_serious_first(db):
    tunnel, _ = tunnels(
        {**pending(days=2), "lifecycle_control": False},
        {"status": TunnelStatus.DOWN, "lifecycle_control": False},
    )
    levels = [r.level for r in risks_for(tunnel, ChangeKind.ENABLE_LIFECYCLE)]
    assert levels == sorted(levels, key=[BAD, WARN, INFO].index)
    assert levels[0] == BAD


def test_sibling_passed_in_saves_the_query(healthy, django_assert_num_queries):
    tunnel, sibling = healthy
    with django_assert_num_queries(0):
        risks_for(tunnel, ChangeKind.REPLACE, sibling=sibling)
