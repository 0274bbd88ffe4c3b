"""Template helpers for vpnctl's pages: times in the user's zone (maintenance/times.py),
relative times, badges.

``{% load vpnctl %}``, then ``{{ dt|when }}`` -> "2026-11-25 21:00 JST",
``{{ dt|relative }}`` -> "in 5 days" / "3 hours ago", ``{% status_badge value label %}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from maintenance import times
from maintenance.choices import (
    ChangeStatus,
    ConnectionState,
    ExecutionOutcome,
    PendingMaintenance,
    SyncStatus,
    TunnelStatus,
)

register = template.Library()

# The colour a value's badge takes. Anything not listed is neutral.
_TONES: dict[str, str] = {
    TunnelStatus.UP: "ok",
    TunnelStatus.DOWN: "bad",
    ConnectionState.AVAILABLE: "ok",
    ConnectionState.PENDING: "warn",
    ConnectionState.MODIFYING: "warn",
    ConnectionState.DELETING: "bad",
    ConnectionState.DELETED: "bad",
    PendingMaintenance.AVAILABLE: "warn",
    SyncStatus.RUNNING: "info",
    SyncStatus.OK: "ok",
    SyncStatus.PARTIAL: "warn",
    SyncStatus.FAILED: "bad",
    ChangeStatus.PENDING_APPROVAL: "info",
    ChangeStatus.APPROVED: "info",
    ChangeStatus.RUNNING: "warn",
    ChangeStatus.SUCCEEDED: "ok",
    ChangeStatus.FAILED: "bad",
    ChangeStatus.TIMED_OUT: "bad",
    ChangeStatus.BLOCKED: "bad",
    ChangeStatus.REJECTED: "bad",
    ExecutionOutcome.SUPERSEDED: "neutral",
    "on": "ok",
    "off": "warn",
    "gone": "bad",
}


@register.filter
def when(value: datetime | None) -> str:
    """A moment in the active time zone, the zone named: "2026-11-25 21:00 JST"."""
    return times.local(value)


@register.filter
def when_exact(value: datetime | None) -> str:
    """The same, to the second: "2026-11-25 21:00:05 JST"."""
    return times.local(value, seconds=True)


@register.filter
def relative(value: datetime | None, now: datetime | None = None) -> str:
    """How far a moment is from now: "in 5 days", "3 hours ago"."""
    return times.relative(value, now)


@register.simple_tag
def status_badge(value: Any, label: Any = None) -> SafeString:
    """A small coloured label for a status value; the text, not the colour, carries meaning."""
    key = str(value) if value is not None else ""
    tone = _TONES.get(key, "neutral")
    return format_html(
        '<span class="badge badge-{}" data-status="{}">{}</span>',
        tone,
        key,
        label if label not in (None, "") else key,
    )


@register.filter
def error_text(error: Any) -> str:
    """One sync error as a sentence, whatever shape it was stored in."""
    if isinstance(error, dict):
        item = error.get("item") or error.get("connection") or error.get("scope") or ""
        message = error.get("message") or error.get("error") or ""
        code = error.get("code") or ""
        if code and message and not str(message).startswith(str(code)):
            message = f"{code}: {message}"
        if not message:
            message = ", ".join(f"{k}: {v}" for k, v in error.items() if k != "item")
        return f"{item} — {message}" if item else str(message)
    return str(error)
