"""The audit log through the API: events by cursor, and the JSON Lines export.

Both read the audit page's own filter form and cursor paging (views.audit), so a filter
means the same here, on the page and in its exports; invalid filters answer 400 rather
than a list of everything. The export streams oldest first, exactly as the page's JSON
Lines export does (the chain can be re-verified from it offline).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone, translation
from ninja import Query, Router, Schema

from ..choices import AuditAction
from ..forms.audit import AuditFilterForm
from ..models import AuditEvent
from ..views.audit import batched, events_page, in_readers_words, jsonl_lines
from .common import require
from .errors import COMMON_ERRORS, check
from .schemas import AuditPage, Id, Moment

router = Router(tags=["audit"])


class AuditFilters(Schema):
    """The audit page's filters (forms.audit.AuditFilterForm). ``actor``: a username,
    or ``system`` or ``aws``; ``request``: a change request's number."""

    time_from: Moment | None = None
    time_to: Moment | None = None
    actor: str | None = None
    action: AuditAction | None = None
    account: Id | None = None
    connection: str | None = None
    tunnel: str | None = None
    request: Id | None = None


class Cursor(Schema):
    """Where the page starts: older than ``before``, newer than ``after``, or the first
    events (``oldest``); none of them, the newest."""

    before: Id | None = None
    after: Id | None = None
    oldest: bool = False


def _filtered(filters: AuditFilters) -> Any:
    form = AuditFilterForm(filters.model_dump(exclude_none=True))
    check(form)
    return form.filter(AuditEvent.objects.all())


@router.get("/audit-events", response={200: AuditPage, **COMMON_ERRORS})
def list_audit_events(
    request: HttpRequest, filters: Query[AuditFilters], cursor: Query[Cursor]
) -> Any:
    """Audit events, newest first, 50 a page, found by cursor (admins and auditors)."""
    require(request, "maintenance.view_audit")
    qs = _filtered(filters).select_related("account", "connection", "tunnel", "change_request")
    page = events_page(qs, before=cursor.before, after=cursor.after, oldest=cursor.oldest)
    return {"count": page.count, "newer": page.newer, "older": page.older, "results": page.events}


@router.get(
    "/audit-events/export.jsonl",
    response={200: str, **COMMON_ERRORS},
    openapi_extra={
        "responses": {
            200: {
                "description": "One event a line, oldest first, as the audit page exports it.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        }
    },
)
def export_audit_events(request: HttpRequest, filters: Query[AuditFilters]) -> Any:
    """The filtered events as JSON Lines, streamed for any size (admins and auditors)."""
    require(request, "maintenance.view_audit")
    qs = _filtered(filters)
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = in_readers_words(
        jsonl_lines(qs), translation.get_language(), timezone.get_current_timezone()
    )
    response = StreamingHttpResponse(batched(lines), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="vpnctl-audit-{stamp}.jsonl"'
    response["Cache-Control"] = "no-store"
    return response
