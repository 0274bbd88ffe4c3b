"""The AWS Health intake: what an EventBridge API destination posts.

EventBridge's connection sends the intake's API token (``manage.py health_intake_token``)
as ``Authorization: Bearer <token>``; its user holds one permission,
``receive_health_events``, and no role. The body is read by ``health_events.parse``
(400 with its sentence, nothing stored, when it is not a VPN Health event or is larger
than 256 KB) and stored by ``HealthEvent.receive``: once per notice, audited, with a read
of the named connections queued when vpnctl knows the event's code.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema, Status

from ..health_events import MAX_BODY_BYTES, BadHealthEvent, parse
from ..models import HealthEvent
from .common import require
from .errors import COMMON_ERRORS, ApiError

router = Router(tags=["aws-health"])


class HealthEventOut(Schema):
    """What the intake made of a delivery."""

    stored: bool  # False: a second delivery of a notice already stored
    event: int
    type_code: str
    meaning: str
    acted_upon: bool  # its code is known: the named connections are read again
    connections: list[str]
    unknown_connections: list[str]


EVENTBRIDGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "An AWS Health event as EventBridge delivers it (source aws.health).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/aws-health/events",
    response={200: HealthEventOut, **COMMON_ERRORS},
    url_name="receive_health_event",
    openapi_extra=EVENTBRIDGE_BODY,
)
def receive_health_event(request: HttpRequest) -> Any:
    """Take one AWS Health event about VPN connections, as EventBridge posts it."""
    require(request, "maintenance.receive_health_events")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        # Refused before the body is read at all.
        raise ApiError(400, str(BadHealthEvent.too_large()))
    try:
        notice = parse(request.body)
    except BadHealthEvent as exc:
        raise ApiError(400, str(exc)) from None
    event, stored = HealthEvent.receive(
        notice, json.loads(request.body), actor=request.user, now=timezone.now()
    )
    return Status(
        200,
        {
            "stored": stored,
            "event": event.pk,
            "type_code": event.type_code,
            "meaning": event.meaning,
            "acted_upon": event.acted_upon,
            "connections": sorted(c.vpn_connection_id for c in event.connections.all()),
            "unknown_connections": event.unknown_connection_ids,
        },
    )
