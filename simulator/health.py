"""AWS Health events as EventBridge delivers them, for the demo and the tests.

``health_event_body`` builds one in AWS's published shape (the VPN samples); the demo's
``emit_health_event`` command posts it to vpnctl's intake, as an EventBridge API
destination would.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from simulator.constants import DEFAULT_ACCOUNT_ID

# A stand-in for AWS's code of "tunnel endpoint maintenance available", which AWS has not
# published: the demo names it in VPNCTL_HEALTH_EVENT_CODES so that its events are acted upon.
DEMO_MAINTENANCE_CODE = "AWS_VPN_TUNNEL_ENDPOINT_MAINTENANCE_SCHEDULED"


def health_event_body(
    connection_ids: list[str],
    *,
    code: str = DEMO_MAINTENANCE_CODE,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = "ap-northeast-1",
    communication_id: str | None = None,
    event_id: str | None = None,
    start: datetime | None = None,
    entities_in: str = "both",
    description: str = "A tunnel endpoint replacement is available for your VPN connection.",
) -> dict[str, Any]:
    """One delivery: ``entities_in`` is ``resources``, ``affectedEntities`` or ``both``."""
    start = start or datetime.now(UTC)
    event_id = event_id or uuid.uuid4().hex[:20]
    detail: dict[str, Any] = {
        "eventArn": f"arn:aws:health:{region}::event/VPN/{code}/{code}_{event_id}",
        "service": "VPN",
        "eventScopeCode": "ACCOUNT_SPECIFIC",
        "communicationId": communication_id or f"{event_id}-1",
        "lastUpdatedTime": format_datetime(start, usegmt=True),
        "statusCode": "upcoming",
        "eventRegion": region,
        "eventTypeCode": code,
        "eventTypeCategory": "scheduledChange",
        "startTime": format_datetime(start, usegmt=True),
        "eventDescription": [{"language": "en_US", "latestDescription": description}],
    }
    if entities_in in ("affectedEntities", "both"):
        detail["affectedEntities"] = [{"entityValue": c} for c in connection_ids]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": account_id,
        "time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(connection_ids) if entities_in in ("resources", "both") else [],
        "detail": detail,
    }


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
