"""One way of writing a moment: the zone named the same in pages, rule messages and tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.utils import timezone

from maintenance import times
from maintenance.choices import ChangeKind
from maintenance.models import check_rules
from tests.factories import make_connection, pending

MOMENT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Tokyo", "2026-11-25 21:00 JST"),
        ("Europe/Berlin", "2026-11-25 13:00 CET"),
        # No abbreviation in the tz database: "UTC-03", never a bare "-03".
        ("America/Sao_Paulo", "2026-11-25 09:00 UTC-03"),
        ("UTC", "2026-11-25 12:00 UTC"),
    ],
)
def test_a_moment_reads_the_same_from_python_and_from_a_template(zone, expected):
    with timezone.override(zone):
        assert times.local(MOMENT) == expected
        rendered = Template("{% load vpnctl %}{{ t|when }}").render(Context({"t": MOMENT}))
        assert rendered == expected
        assert times.local(MOMENT, seconds=True) == expected.replace(":00 ", ":00:00 ", 1)


def test_nothing_reads_as_a_dash_and_naive_times_as_utc():
    assert times.local(None) == "—"
    with timezone.override("Asia/Tokyo"):
        assert times.local(MOMENT.replace(tzinfo=None)) == "2026-11-25 21:00 JST"


def test_a_rule_message_names_the_zone_the_same_way(db):
    connection = make_connection(tunnels=[pending(days=2), {}])
    tunnel = connection.tunnels.order_by("outside_ip").first()
    now = timezone.now()
    with timezone.override("America/Sao_Paulo"):
        deadline = times.local(tunnel.maintenance_auto_applied_after)
    with timezone.override("America/Sao_Paulo"), pytest.raises(ValidationError) as refused:
        check_rules(
            tunnel=tunnel,
            kind=ChangeKind.REPLACE,
            window_start=now + timedelta(days=3),
            window_end=now + timedelta(days=3, hours=2),
            skip_tunnel_replacement=False,
            now=now,
        )
    [message] = refused.value.message_dict["window_end"]
    assert deadline.endswith(" UTC-03") and deadline in message
