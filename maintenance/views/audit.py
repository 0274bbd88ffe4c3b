"""The audit log: a filtered, paginated page, and the same filtered set streamed as CSV
or JSON Lines so an auditor can re-verify the hash chain offline.

The chain's verification walks every event, so the page runs it only while the log is
small (VERIFY_ON_PAGE_LIMIT events); past that it says so and points at
``manage.py verify_audit``, which has no request timeout to fear.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET

from .. import times
from ..forms.audit import AuditFilterForm
from ..models import AuditEvent, ChangeRequest, Execution, Tunnel, canonical_json
from ..texts import render as render_text
from .helpers import IKE_ROWS, SNAPSHOT_ROWS

EVENTS_PER_PAGE = 50
# verify_chain() costs about 60 us an event on a small server (bench/export.py prints
# it): 5,000 events is 0.3 s, which a page an auditor opens can afford; 20,000 is not.
VERIFY_ON_PAGE_LIMIT = 5_000
EXPORT_CHUNK = 2000

EXPORT_COLUMNS = [
    "seq",
    "at",
    "actor",
    "actor_kind",
    "action",
    "account",
    "account_pk",
    "connection",
    "connection_pk",
    "tunnel",
    "tunnel_pk",
    "request",
    "message",
    "details",
    "prev_hash",
    "hash",
    "text",
]
# The columns the chain's hash covers come first and as stored; "text" is the event's
# sentence written for the reader who exported it (not hashed).
HASHED_EXPORT_COLUMNS = EXPORT_COLUMNS[:-1]


def _require_audit_perm(request: HttpRequest) -> None:
    if not request.user.has_perm("maintenance.view_audit"):
        raise PermissionDenied


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET or None)
    return form, form.filter(AuditEvent.objects.all())


# ---------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------


# What the details' keys mean to a reader; any other key falls back to the label of the
# model field of that name, then to the key itself.
DETAIL_LABELS: dict[str, Any] = {
    "before": gettext_lazy("Before"),
    "after": gettext_lazy("After"),
    "kind": gettext_lazy("Change"),
    "tunnel": gettext_lazy("Tunnel"),
    "connection": gettext_lazy("Connection"),
    "window_start": gettext_lazy("Window opens"),
    "window_end": gettext_lazy("Window closes"),
    "reason": gettext_lazy("Reason"),
    "comment": gettext_lazy("Comment"),
    "fingerprint": gettext_lazy("Fingerprint"),
    "batch": gettext_lazy("Batch"),
    "outcome": gettext_lazy("Outcome"),
    "previous": gettext_lazy("Before"),
    "applied": gettext_lazy("Applied"),
    "previous_deadline": gettext_lazy("Deadline before"),
    "deadline": gettext_lazy("Deadline now"),
    "request_id": gettext_lazy("AWS request id"),
    "aws_error_code": gettext_lazy("AWS error code"),
    "aws_error_message": gettext_lazy("AWS error message"),
    "ike": gettext_lazy("IKE"),
    "ike_error": gettext_lazy("IKE details unavailable"),
    "task_id": gettext_lazy("Task"),
    "worker": gettext_lazy("Worker"),
    "generation": gettext_lazy("Watch number"),
    "calling_aws_at": gettext_lazy("About to call AWS"),
    "required_approvals": gettext_lazy("Approvals needed"),
    "approver_groups": gettext_lazy("Approver groups"),
    "approver_users": gettext_lazy("Approver users"),
    "start_when_approved": gettext_lazy("As soon as approved"),
    "skip_tunnel_replacement": gettext_lazy("Skip tunnel replacement"),
    "username": gettext_lazy("Username"),
    "ip": gettext_lazy("Address"),
    # A tunnel's snapshot, labelled as the request page labels it.
    **dict(SNAPSHOT_ROWS),
    **dict(IKE_ROWS),
}
_FIELD_LABELS = {
    field.name: field.verbose_name
    for model in (ChangeRequest, Execution, Tunnel)
    for field in model._meta.get_fields()
    if hasattr(field, "verbose_name")
}


ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def detail_label(key: str) -> str:
    return _label_in(key, translation.get_language())


@functools.lru_cache(maxsize=1024)
def _label_in(key: str, language: str | None) -> str:
    # The page shows fifty events of a dozen labels each: translated once per language.
    return str(DETAIL_LABELS.get(key) or _FIELD_LABELS.get(key) or key.replace("_", " "))


def _show(value: Any) -> str:
    """A detail's value for a reader: yes / no, times in their zone, sentences in their words."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, dict) and ("msgid" in value or "at" in value):
        return str(render_text(value))
    if isinstance(value, dict | list):
        return canonical_json(value)
    if isinstance(value, str) and ISO_MOMENT.match(value):
        moment = parse_datetime(value)
        if moment is not None:
            return times.local(moment, seconds=True)
    return str(value)


@dataclass
class DetailRows:
    """An event's details as the page shows them: before/after side by side, then the rest."""

    changes: list[tuple[str, str, str, bool]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.other)


def detail_rows(details: Any) -> DetailRows:
    rows = DetailRows()
    if not isinstance(details, dict):
        if details:
            rows.other.append(("", _show(details)))
        return rows
    # "text" is the event's own sentence, shown above the details.
    details = {k: v for k, v in details.items() if k != "text"}
    before, after = details.get("before"), details.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            old, new = before.get(key), after.get(key)
            rows.changes.append((detail_label(key), _show(old), _show(new), old != new))
        rest = {k: v for k, v in details.items() if k not in ("before", "after")}
    else:
        rest = details
    for key in sorted(rest):
        value = rest[key]
        if isinstance(value, dict) and not ("msgid" in value or "at" in value):
            # One level of nesting reads better as "Before › Tunnel status" than as JSON.
            rows.other.extend(
                (f"{detail_label(key)} › {detail_label(k)}", _show(v))
                for k, v in sorted(value.items())
            )
        else:
            rows.other.append((detail_label(key), _show(value)))
    return rows


def _verification(total: int) -> dict[str, Any]:
    """The chain's state for the page: verified here if small, else point at the command.

    `total` is the unfiltered page's own COUNT(*), so deciding costs no query; the
    walk itself is two (the events through one cursor, then the chain head).
    """
    if total > VERIFY_ON_PAGE_LIMIT:
        return {"state": "skipped", "total": total, "limit": VERIFY_ON_PAGE_LIMIT}
    checked, bad, why = AuditEvent.verify_chain()
    return {
        "state": "broken" if why else "intact",
        "total": total,
        "checked": checked,
        "bad": bad,
        "why": why,
    }


# The page's position in the log: "?before=SEQ" (older than that event), "?after=SEQ"
# (newer), "?oldest=1" (the first events); none is the newest events.
CURSOR_PARAMS = ("before", "after", "oldest", "page")


@dataclass
class EventsPage:
    """A page of events found by their position in the chain (keyset), not by OFFSET.

    A deep page costs what the first does: an index range from the cursor, LIMIT 51.
    ``newer`` / ``older`` are the cursors of the neighbouring pages, None at either end.
    """

    events: list[AuditEvent]
    count: int
    newer: int | None
    older: int | None

    @property
    def has_other_pages(self) -> bool:
        return self.newer is not None or self.older is not None

    @property
    def oldest_seq(self) -> int | None:
        return self.events[-1].seq if self.events else None


def _cursor(request: HttpRequest, name: str) -> int | None:
    """A cursor from the query string; a malformed one is ignored (the newest page), as
    Django's ``Paginator.get_page`` treats a bad ``?page=``: links, not people, write it."""
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def events_page(
    qs: QuerySet[AuditEvent],
    *,
    before: int | None = None,
    after: int | None = None,
    oldest: bool = False,
) -> EventsPage:
    """The events a cursor points at, newest first; one query plus the count (the page
    and the API's list share it)."""
    size = EVENTS_PER_PAGE
    if after is not None or oldest:
        # Read upwards from the cursor (or the start), then show them newest first.
        upwards = qs.filter(seq__gt=after or 0).order_by("seq")[: size + 1]
        rows = list(upwards)
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        more_older = after is not None and rows and qs.filter(seq__lte=after).exists()
    else:
        downwards = qs.filter(seq__lt=before) if before is not None else qs
        rows = list(downwards.order_by("-seq")[: size + 1])
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = before is not None and rows and qs.filter(seq__gte=before).exists()
    return EventsPage(
        events=rows,
        count=qs.count(),
        newer=rows[0].seq if rows and more_newer else None,
        older=rows[-1].seq if rows and more_older else None,
    )


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Every audit event, newest first, filtered, 50 a page, with the chain's state."""
    _require_audit_perm(request)
    form, qs = _filtered(request)
    qs = qs.select_related("account", "connection", "tunnel", "change_request")
    page = events_page(
        qs,
        before=_cursor(request, "before"),
        after=_cursor(request, "after"),
        oldest=bool(request.GET.get("oldest")),
    )
    events = [(event, detail_rows(event.details)) for event in page.events]
    query = request.GET.copy()
    for name in CURSOR_PARAMS:
        query.pop(name, None)
    # "?actor=" (the form submitted with every field empty) is not a filter.
    filtered = any(query.dict().values())
    return render(
        request,
        "maintenance/audit_log.html",
        {
            "form": form,
            "page": page,
            "events": events,
            "filtered": filtered,
            "export_query": query.urlencode(),
            # Invalid filters offer no export: it would not be what the page shows.
            "exportable": not (form.is_bound and form.errors),
            # Filters do not change the chain: verify on the unfiltered log only, where the
            # page's count is the log's size (and the page stays within its query budget).
            "verification": None if filtered else _verification(page.count),
        },
    )


# ---------------------------------------------------------------------------------------
# Streamed exports
# ---------------------------------------------------------------------------------------


class _Echo:
    """A file-like object whose write() hands back what it is given (Django's CSV recipe)."""

    def write(self, value: str) -> str:
        return value


# What each export column is read from: the event's own fields and, through JOINs, the
# names of what it concerns. values_list() skips building four model instances a row
# (and decoding the related rows' JSON fields), which halves the export's CPU time.
_EXPORT_SOURCES = {
    "seq": "seq",
    "at": "at",
    "actor": "actor_name",
    "actor_kind": "actor_kind",
    "action": "action",
    "account": "account__name",
    "account_pk": "account_id",
    "connection": "connection__vpn_connection_id",
    "connection_pk": "connection_id",
    "tunnel": "tunnel__outside_ip",
    "tunnel_pk": "tunnel_id",
    "request": "change_request_id",
    "message": "message",
    "details": "details",
    "prev_hash": "prev_hash",
    "hash": "hash",
}
assert list(_EXPORT_SOURCES) == HASHED_EXPORT_COLUMNS


def export_rows(qs: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """The events oldest first, each as exported: what hashed_fields() covers, plus names.

    iterator() streams from a server-side cursor (PostgreSQL) or chunked fetchmany
    (SQLite) and skips the queryset cache: memory stays flat however many rows match.
    """
    rows = qs.order_by("seq").values_list(*_EXPORT_SOURCES.values())
    for values in rows.iterator(chunk_size=EXPORT_CHUNK):
        row = dict(zip(HASHED_EXPORT_COLUMNS, values, strict=True))
        # Exactly the form the hash covers, so the chain can be re-verified offline.
        row["at"] = row["at"].astimezone(UTC).isoformat(timespec="microseconds")
        for name in ("account", "connection", "tunnel"):
            row[name] = row[name] or ""
        sentence = (row["details"] or {}).get("text")
        row["text"] = str(render_text(sentence)) if sentence else row["message"]
        yield row


def in_readers_words(lines: Iterator[bytes], language: str, zone: Any) -> Iterator[bytes]:
    """Stream in the language and zone of the request: the response is written after the
    view returns, when the middleware has let go of both."""
    with translation.override(language), timezone.override(zone):
        yield from lines


def batched(lines: Iterator[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    # One chunk per ~64 KB, not per line: fewer, larger writes for the WSGI server.
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        buffer.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


# A spreadsheet takes a cell starting with one of these for a formula (=HYPERLINK(...)).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: one leading apostrophe before a would-be
    formula (strip it before re-hashing such a cell)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_lines(qs: QuerySet[AuditEvent]) -> Iterator[bytes]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS).encode()
    for row in export_rows(qs):
        row["details"] = canonical_json(row["details"])
        cells = ("" if v is None else neutralised(v) for v in row.values())
        yield writer.writerow(list(cells)).encode()


def jsonl_lines(qs: QuerySet[AuditEvent]) -> Iterator[bytes]:
    for row in export_rows(qs):
        yield (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode()


EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", _csv_lines),
    "jsonl": ("application/x-ndjson", jsonl_lines),
}


@login_required
@require_GET
def audit_export(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    """The filtered events, oldest first, streamed as CSV or JSON Lines."""
    _require_audit_perm(request)
    if fmt not in EXPORT_FORMATS:
        raise Http404
    content_type, lines = EXPORT_FORMATS[fmt]
    form, qs = _filtered(request)
    if form.is_bound and not form.is_valid():
        # Exactly the filters the page shows, or nothing: never "everything" by mistake.
        problems = [
            (f"{form.fields[name].label}: " if name in form.fields else "") + " ".join(errors)
            for name, errors in form.errors.items()
        ]
        return HttpResponse(
            "\n".join([gettext("These filters are not valid; nothing was exported."), *problems])
            + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows = in_readers_words(lines(qs), translation.get_language(), timezone.get_current_timezone())
    response = StreamingHttpResponse(batched(rows), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="vpnctl-audit-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
