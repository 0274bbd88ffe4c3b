"""AWS Health events as EventBridge delivers them: both shapes, and every bad body refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from maintenance.choices import HealthMeaning
from maintenance.health_events import MAX_BODY_BYTES, BadHealthEvent, parse

ARN = (
    "arn:aws:health:ap-northeast-1::event/VPN/AWS_VPN_REDUNDANCY_LOSS/"
    "AWS_VPN_REDUNDANCY_LOSS-1a2b3c4d5e6f7a8b9c0d"
)


def health_event(**changes):
    """An event as EventBridge delivers it (AWS's published sample, VPN redundancy loss)."""
    event = {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": "123456789012",
        "time": "2026-12-01T06:27:57Z",
        "region": "ap-northeast-1",
        "resources": ["vpn-0123456789abcdef0"],
        "detail": {
            "eventArn": ARN,
            "service": "VPN",
            "eventScopeCode": "ACCOUNT_SPECIFIC",
            "communicationId": "1234abc01232a4012345678-1",
            "lastUpdatedTime": "Tue, 01 Dec 2026 06:27:57 GMT",
            "statusCode": "open",
            "eventRegion": "ap-northeast-1",
            "eventTypeCode": "AWS_VPN_REDUNDANCY_LOSS",
            "eventTypeCategory": "accountNotification",
            "startTime": "Tue, 01 Dec 2026 06:20:00 GMT",
            "eventDescription": [
                {"language": "ja_JP", "latestDescription": "冗長性が失われました"},
                {"language": "en_US", "latestDescription": "Your VPN lost redundancy."},
            ],
            "affectedEntities": [{"entityValue": "vpn-0123456789abcdef0"}],
        },
    }
    detail = changes.pop("detail", {})
    event.update(changes)
    event["detail"].update(detail)
    return json.dumps(event).encode()


def test_an_eventbridge_delivery_is_read():
    notice = parse(health_event())
    assert notice.key == (ARN, "1234abc01232a4012345678-1")
    assert notice.type_code == "AWS_VPN_REDUNDANCY_LOSS"
    assert notice.meaning == HealthMeaning.REDUNDANCY_LOSS
    assert notice.aws_account_id == "123456789012"
    assert notice.region == "ap-northeast-1"
    assert notice.started_at == datetime(2026, 12, 1, 6, 20, tzinfo=UTC)
    assert notice.description == "Your VPN lost redundancy."
    assert notice.connection_ids == ("vpn-0123456789abcdef0",)


def test_connections_named_only_in_affected_entities_are_read():
    notice = parse(
        health_event(
            resources=[],
            detail={
                "affectedEntities": [
                    {"entityValue": "vpn-0aaaaaaaaaaaaaaa1"},
                    {"entityValue": "arn:aws:ec2:ap-northeast-1:123:vpn-connection/vpn-0bbbbbbb"},
                    {"entityValue": "vgw-0123"},
                ]
            },
        )
    )
    assert notice.connection_ids == ("vpn-0aaaaaaaaaaaaaaa1", "vpn-0bbbbbbb")
    assert notice.other_entities == ("vgw-0123",)


def test_connections_named_only_in_resources_are_read_once():
    notice = parse(
        health_event(
            resources=["vpn-0aaaaaaaaaaaaaaa1", "vpn-0aaaaaaaaaaaaaaa1"],
            detail={"affectedEntities": []},
        )
    )
    assert notice.connection_ids == ("vpn-0aaaaaaaaaaaaaaa1",)


def test_an_unknown_code_is_read_and_means_nothing_to_act_on():
    notice = parse(health_event(detail={"eventTypeCode": "AWS_VPN_SOMETHING_NEW"}))
    assert notice.type_code == "AWS_VPN_SOMETHING_NEW"
    assert notice.meaning == HealthMeaning.UNKNOWN


def test_an_iso_start_time_is_read_too():
    notice = parse(health_event(detail={"startTime": "2026-12-01T06:20:00Z"}))
    assert notice.started_at == datetime(2026, 12, 1, 6, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "The body is not JSON"),
        (b"[1, 2]", "The body must be one JSON object"),
        (health_event(source="aws.ec2"), 'source must be “aws.health”, not "aws.ec2"'),
        (health_event(**{"detail-type": "EC2 Instance"}), "detail-type must be"),
        (
            health_event(detail={"service": "EC2"}),
            'Only events of the VPN service are taken, not "EC2"',
        ),
        (health_event(detail={"eventArn": ""}), "detail.eventArn is missing or empty"),
        (health_event(detail={"eventTypeCode": None}), "detail.eventTypeCode is missing"),
        (health_event(detail={"startTime": "yesterday"}), "detail.startTime is not a time"),
        (health_event(resources="vpn-1"), "must be lists"),
        (b" " * (MAX_BODY_BYTES + 1), "larger than 256 KB"),
    ],
)
def test_a_bad_body_is_refused_saying_why(body, message):
    with pytest.raises(BadHealthEvent) as refused:
        parse(body)
    assert message in str(refused.value)


def test_a_code_an_admin_names_gets_its_meaning(settings):
    settings.HEALTH_EVENT_CODES = {"AWS_VPN_SOMETHING_NEW": HealthMeaning.MAINTENANCE_SCHEDULED}
    notice = parse(health_event(detail={"eventTypeCode": "AWS_VPN_SOMETHING_NEW"}))
    assert notice.meaning == HealthMeaning.MAINTENANCE_SCHEDULED
