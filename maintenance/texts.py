"""Sentences that are stored now and read later, in the reader's language.

An audit event, an execution step or the reason a change ended is read by people long
after it was written, in Japanese by one and in English by another. So vpnctl stores the
sentence as data, its message id (the English source, marked for translation with
``gettext_noop``) and its parameters, and writes it out at display time with Django's
translation machinery, in the active language and time zone:

    reason = Text(N_("The other tunnel (%(ip)s) is %(status)s."), ip=ip, status=status)
    data = reason.as_data()      # {"msgid": "...", "params": {...}}: stored
    render(data)                 # later: "もう一方のトンネル (…) は DOWN です。"

Parameters may be plain values, other Texts, lazy labels (a choice's label: stored by its
message id) and datetimes (stored in UTC, written in the reader's zone). ``english()``
gives the sentence in the source language, for the plain-text columns that keep the
record readable without vpnctl.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext, override
from django.utils.translation import gettext_noop as N_

from . import times

__all__ = ["N_", "Text", "english", "render"]


class Text:
    """A sentence to be written later: a message id and its parameters."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, **params: Any) -> None:
        self.msgid = msgid
        self.params = params

    def as_data(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "params": {k: _data(v) for k, v in self.params.items()}}

    def __str__(self) -> str:
        return render(self.as_data())

    def __repr__(self) -> str:
        return f"Text({self.msgid!r}, {self.params!r})"


def _data(value: Any) -> Any:
    if isinstance(value, Text):
        return value.as_data()
    if isinstance(value, Promise):
        with override(None):  # no language active: the message id itself
            return {"msgid": str(value), "params": {}}
    if isinstance(value, datetime):
        return {"at": value.astimezone(UTC).isoformat()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def as_data(value: Any) -> Any:
    """What to store for a sentence given as a Text, a lazy string or plain text."""
    return _data(value)


def render(data: Any) -> Any:
    """Write stored data out in the active language and time zone."""
    if isinstance(data, dict) and "msgid" in data:
        params = {k: render(v) for k, v in (data.get("params") or {}).items()}
        sentence = gettext(data["msgid"]) if data["msgid"] else ""
        if not params:
            return sentence
        try:
            return sentence % params
        except (KeyError, TypeError, ValueError):
            # A translation that lost a placeholder must not hide the record: the source.
            return data["msgid"] % params
    if isinstance(data, dict) and "at" in data:
        try:
            return times.local(datetime.fromisoformat(data["at"]))
        except (TypeError, ValueError):
            return str(data["at"])
    if data is None:
        return ""
    return data


def english(value: Any) -> str:
    """The sentence in the source language (times in UTC): for plain-text columns."""
    with override(None), times.utc():
        return str(render(_data(value)))
