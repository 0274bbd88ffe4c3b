"""The template helpers: times in the user's zone with the zone named, relative times, badges."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from maintenance.templatetags.vpnctl import error_text, relative, when

NOON_UTC = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", "2026-11-25 12:00 UTC"),
        ("Asia/Tokyo", "2026-11-25 21:00 JST"),
        ("Europe/Paris", "2026-11-25 13:00 CET"),
        # No abbreviation in the tz database: the offset, said as such.
        ("America/Sao_Paulo", "2026-11-25 09:00 UTC-03"),
    ],
)
def test_when_shows_the_active_zone_by_name(zone, expected):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert when(NOON_UTC) == expected


def test_when_follows_summer_time():
    with timezone.override(zoneinfo.ZoneInfo("Europe/Paris")):
        assert when(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == "2026-07-01 14:00 CEST"


def test_when_without_a_time_says_so():
    assert when(None) == "—"


def test_when_in_a_template_uses_the_zone_of_the_request():
    template = Template("{% load vpnctl %}{{ dt|when }}")
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        assert template.render(Context({"dt": NOON_UTC})) == "2026-11-25 21:00 JST"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(days=5), "in 5 days"),
        # A moment later it is still "in 5 days", not "in 4 days".
        (timedelta(days=5, seconds=-30), "in 5 days"),
        (timedelta(days=1), "in 1 day"),
        (timedelta(hours=-3), "3 hours ago"),
        (timedelta(hours=1), "in 1 hour"),
        (timedelta(minutes=-1), "1 minute ago"),
        (timedelta(minutes=20), "in 20 minutes"),
        (timedelta(seconds=10), "in a few seconds"),
        (timedelta(seconds=-10), "a few seconds ago"),
        (timedelta(days=-40), "40 days ago"),
    ],
)
def test_relative(offset, expected):
    assert relative(NOON_UTC + offset, now=NOON_UTC) == expected


def test_relative_of_nothing_is_empty():
    assert relative(None) == ""


def test_status_badge_names_the_status_in_words_and_escapes_it():
    out = Template("{% load vpnctl %}{% status_badge value label %}").render(
        Context({"value": "DOWN", "label": "<b>DOWN</b>"})
    )
    assert 'class="badge badge-bad"' in out
    assert "&lt;b&gt;DOWN&lt;/b&gt;" in out


def test_status_badge_label_defaults_to_the_value():
    out = Template("{% load vpnctl %}{% status_badge 'UP' %}").render(Context())
    assert out == '<span class="badge badge-ok" data-status="UP">UP</span>'


def test_unknown_status_gets_a_neutral_badge():
    out = Template("{% load vpnctl %}{% status_badge 'weird' 'Weird' %}").render(Context())
    assert "badge-neutral" in out and ">Weird<" in out


def test_error_text_reads_the_shapes_a_sync_error_takes():
    assert error_text("AuthFailure: no access") == "AuthFailure: no access"
    assert error_text({"item": "vpn-1", "message": "no VgwTelemetry"}) == "vpn-1 — no VgwTelemetry"
    assert (
        error_text({"code": "UnauthorizedOperation", "message": "not allowed"})
        == "UnauthorizedOperation: not allowed"
    )
