"""How vpnctl writes a moment: one module for pages, emails, audit messages and tasks.

Times are stored in UTC and written in the reader's zone (the middleware activates the
user's zone for a page; an email activates its recipient's; a worker writes in the
server's default zone), always with the zone named, the same way everywhere:

- ``local(dt)`` -> "2026-11-25 21:00 JST"; ``local(dt, seconds=True)`` to the second;
- ``zone_name(dt)`` -> "JST", or "UTC-03" for a zone without an abbreviation
  (America/Sao_Paulo), never a bare "-03";
- ``relative(dt)`` -> "in 5 days" / "3 hours ago";
- ``iso(dt)`` -> the ISO 8601 form kept in JSON snapshots and audit details.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, ngettext

NOTHING = "—"


def _aware(value: datetime) -> datetime:
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def zone_of(user: Any) -> zoneinfo.ZoneInfo:
    """The zone a person reads times in: their profile's, else the site's display zone
    (UTC when either names no zone)."""
    profile = getattr(user, "vpnctl_profile", None) if user is not None else None
    name = (profile.time_zone if profile is not None else "") or settings.DISPLAY_TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def zone_name(value: datetime) -> str:
    """The active zone's name at that moment: "JST", "CET" / "CEST", "UTC-03"."""
    local = timezone.localtime(_aware(value))
    zone = local.tzname() or timezone.get_current_timezone_name()
    if zone[:1] in "+-":
        # Zones without an abbreviation (America/Sao_Paulo is "-03"): say UTC-03.
        zone = f"UTC{zone}"
    return zone


def local(value: datetime | None, *, seconds: bool = False) -> str:
    """A moment in the active time zone, the zone named: "2026-11-25 21:00 JST"."""
    if not isinstance(value, datetime):
        return NOTHING if value in (None, "") else str(value)
    moment = timezone.localtime(_aware(value))
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{moment.strftime(shape)} {zone_name(value)}"


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """How far a moment is from now, in its largest sensible unit: "in 5 days", "3 hours ago"."""
    if not isinstance(value, datetime):
        return ""
    delta: timedelta = _aware(value) - (now or timezone.now())
    seconds = abs(delta.total_seconds())
    future = delta.total_seconds() > 0
    # Round to the nearest unit (a deadline 5 days away is still "in 5 days" a moment
    # later); the thresholds keep "59 minutes" from reading as "1 hour".
    if seconds < 45:
        return gettext("in a few seconds") if future else gettext("a few seconds ago")
    if seconds < 45 * 60:
        n = max(1, round(seconds / 60))
        if future:
            return ngettext("in %(count)d minute", "in %(count)d minutes", n) % {"count": n}
        return ngettext("%(count)d minute ago", "%(count)d minutes ago", n) % {"count": n}
    if seconds < 22 * 3600:
        n = max(1, round(seconds / 3600))
        if future:
            return ngettext("in %(count)d hour", "in %(count)d hours", n) % {"count": n}
        return ngettext("%(count)d hour ago", "%(count)d hours ago", n) % {"count": n}
    n = max(1, round(seconds / 86400))
    if future:
        return ngettext("in %(count)d day", "in %(count)d days", n) % {"count": n}
    return ngettext("%(count)d day ago", "%(count)d days ago", n) % {"count": n}


def iso(value: datetime | None) -> str | None:
    """The ISO 8601 form for JSON (None stays None)."""
    return value.isoformat() if value else None


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC to the microsecond: what the audit chain and fingerprints hash."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def utc():
    """Write times in UTC inside this block (the stored, language-neutral form)."""
    return timezone.override(UTC)
