"""AWS Health events as EventBridge delivers them, read into plain data.

A leaf with no model in it: ``parse`` takes the body an EventBridge API destination posts
and returns a ``HealthNotice``, or raises ``BadHealthEvent`` with a sentence saying what is
wrong (the intake answers 400 with it and stores nothing). ``MEANINGS`` is the table of
event type codes vpnctl knows; an unknown code is read, stored and shown, never acted upon.

The shape (see ../shared/DOMAIN.md): ``source`` ``aws.health``, ``detail-type``
``AWS Health Event``, ``detail.service`` ``VPN``, ``detail.eventTypeCode``,
``detail.eventArn`` and ``detail.communicationId`` (together the key for duplicates: the
delivery is at least once, per region), ``detail.startTime``, ``detail.eventDescription[]``,
and the connections named in ``resources[]`` or ``detail.affectedEntities[].entityValue``
(either or both, depending on the event).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .choices import HealthMeaning

# EventBridge's own limit on an event is 256 KB: a larger body is not an event of theirs.
MAX_BODY_BYTES = 256 * 1024

VPN_ID = re.compile(r"^vpn-[0-9a-f]{8,17}$")

# What vpnctl does with each code it knows: the codes seen in AWS's public samples. AWS has
# not published the codes of "maintenance available" and "maintenance completed"; a code
# not known is stored and shown, never acted upon, until an admin names it in
# VPNCTL_HEALTH_EVENT_CODES (settings.HEALTH_EVENT_CODES, added to this table).
MEANINGS: dict[str, HealthMeaning] = {
    "AWS_VPN_REDUNDANCY_LOSS": HealthMeaning.REDUNDANCY_LOSS,
    "AWS_VPN_SINGLE_TUNNEL_NOTIFICATION": HealthMeaning.SINGLE_TUNNEL,
}


def meaning_of(type_code: str) -> HealthMeaning:
    known = {**MEANINGS, **getattr(settings, "HEALTH_EVENT_CODES", {})}
    return HealthMeaning(known.get(type_code, HealthMeaning.UNKNOWN))


class BadHealthEvent(ValueError):
    """The body is not an AWS Health event for VPN; the message says why."""

    @classmethod
    def too_large(cls) -> BadHealthEvent:
        return cls(
            _("The body is larger than %(limit)d KB, which no AWS Health event is.")
            % {"limit": MAX_BODY_BYTES // 1024}
        )


@dataclass(frozen=True)
class HealthNotice:
    event_arn: str
    communication_id: str
    type_code: str
    category: str
    status_code: str
    aws_account_id: str
    region: str
    started_at: datetime | None
    description: str
    connection_ids: tuple[str, ...]  # every vpn-… named, in order, without repeats
    other_entities: tuple[str, ...]  # what was named that is not a VPN connection id

    @property
    def meaning(self) -> HealthMeaning:
        return meaning_of(self.type_code)

    @property
    def key(self) -> tuple[str, str]:
        """Two deliveries of one notice share it."""
        return self.event_arn, self.communication_id


def parse(body: bytes) -> HealthNotice:
    """Read one EventBridge delivery; raise BadHealthEvent saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise BadHealthEvent.too_large()
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadHealthEvent(_("The body is not JSON: %(error)s") % {"error": str(error)}) from None
    if not isinstance(event, dict):
        raise BadHealthEvent(_("The body must be one JSON object (an EventBridge event)."))
    if event.get("source") != "aws.health":
        raise BadHealthEvent(
            _("The event's source must be “aws.health”, not %(source)s.")
            % {"source": json.dumps(event.get("source"))}
        )
    if event.get("detail-type") != "AWS Health Event":
        raise BadHealthEvent(
            _("The event's detail-type must be “AWS Health Event”, not %(type)s.")
            % {"type": json.dumps(event.get("detail-type"))}
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadHealthEvent(_("The event has no detail object."))
    if detail.get("service") != "VPN":
        raise BadHealthEvent(
            _("Only events of the VPN service are taken, not %(service)s.")
            % {"service": json.dumps(detail.get("service"))}
        )
    event_arn = _required_text(detail, "eventArn")
    type_code = _required_text(detail, "eventTypeCode")
    named = _named_entities(event, detail)
    return HealthNotice(
        event_arn=event_arn,
        communication_id=_text(detail, "communicationId"),
        type_code=type_code,
        category=_text(detail, "eventTypeCategory"),
        status_code=_text(detail, "statusCode"),
        aws_account_id=_text(event, "account"),
        region=_text(detail, "eventRegion") or _text(event, "region"),
        started_at=_time(detail.get("startTime")),
        description=_description(detail.get("eventDescription")),
        connection_ids=tuple(v for v in named if VPN_ID.match(v)),
        other_entities=tuple(v for v in named if not VPN_ID.match(v)),
    )


def _text(source: dict[str, Any], name: str) -> str:
    value = source.get(name)
    return value.strip() if isinstance(value, str) else ""


def _required_text(source: dict[str, Any], name: str) -> str:
    value = _text(source, name)
    if not value:
        raise BadHealthEvent(_("The event's detail.%(name)s is missing or empty.") % {"name": name})
    return value


def _named_entities(event: dict[str, Any], detail: dict[str, Any]) -> list[str]:
    """Both delivery shapes: top-level ``resources`` and ``detail.affectedEntities``."""
    values: list[str] = []
    resources = event.get("resources") or []
    entities = detail.get("affectedEntities") or []
    if not isinstance(resources, list) or not isinstance(entities, list):
        raise BadHealthEvent(_("resources and detail.affectedEntities must be lists."))
    for resource in resources:
        if isinstance(resource, str):
            values.append(resource.strip())
    for entity in entities:
        if isinstance(entity, dict) and isinstance(entity.get("entityValue"), str):
            values.append(entity["entityValue"].strip())
    # An ARN names the connection at its end (arn:aws:ec2:…:vpn-connection/vpn-…).
    values = [v.rsplit("/", 1)[-1] for v in values if v]
    return list(dict.fromkeys(values))


def _time(value: Any) -> datetime | None:
    """Health writes ``Fri, 27 Jan 2023 01:43:21 GMT``; ISO 8601 is read too."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadHealthEvent(
                _("detail.startTime is not a time: %(value)s") % {"value": value[:64]}
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _description(value: Any) -> str:
    """The English description if there is one, else the first."""
    if not isinstance(value, list):
        return ""
    texts = [
        (d.get("language", ""), d.get("latestDescription", ""))
        for d in value
        if isinstance(d, dict) and isinstance(d.get("latestDescription"), str)
    ]
    for language, text in texts:
        if language.lower().startswith("en"):
            return text
    return texts[0][1] if texts else ""
