"""The simulated AWS, seen the way vpnctl sees it: through plain boto3 EC2 clients.

No vpnctl code is involved here: if these pass, maintenance/aws.py talks to something that
answers with AWS's own shapes, errors and limits.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import boto3
import pytest
import time_machine
from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.management import call_command
from moto.ec2.responses import EC2Response

import simulator
from simulator import (
    CONTROL_PATH,
    DEFAULT_ACCOUNT_ID,
    SECOND_ACCOUNT_ID,
    SECOND_ACCOUNT_ROLE_ARN,
    Throttling,
    Timings,
    TunnelSpec,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
REPLACE = "ReplaceVpnTunnel"
MODIFY = "ModifyVpnTunnelOptions"
# One attempt, no SDK retries: every call in these tests reaches the simulator once.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def ec2(region: str = REGION, endpoint: str | None = None, credentials: dict | None = None):
    """A plain boto3 EC2 client: the fixture's fake keys, or assumed-role credentials."""
    if credentials is None:
        return _plain_client(region, endpoint)
    return boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint,
        config=NO_RETRIES,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


@functools.cache
def _plain_client(region: str, endpoint: str | None):
    # Building an EC2 client takes a good part of a second; the plain ones are the same in
    # every test (moto intercepts them whenever mock_aws is active), so they are shared.
    # Clients with assumed-role keys are not: moto forgets the role at each reset.
    return boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint,
        config=NO_RETRIES,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def second_account_credentials(endpoint: str | None = None) -> dict:
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint)
    return sts.assume_role(RoleArn=SECOND_ACCOUNT_ROLE_ARN, RoleSessionName="vpnctl-test")[
        "Credentials"
    ]


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def pending(days: float = 5, **extra) -> TunnelSpec:
    return TunnelSpec(pending_maintenance="Available", auto_apply_after=in_days(days), **extra)


def describe_one(client, connection_id: str) -> dict:
    return client.describe_vpn_connections(VpnConnectionIds=[connection_id])["VpnConnections"][0]


def telemetry_of(client, connection_id: str) -> dict[str, dict]:
    return {t["OutsideIpAddress"]: t for t in describe_one(client, connection_id)["VgwTelemetry"]}


def replacement_status(client, connection_id: str, ip: str) -> dict:
    return client.get_vpn_tunnel_replacement_status(
        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=ip
    )["MaintenanceDetails"]


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"still false after {timeout} s")


# -- moto itself: the day it changes, we must know ------------------------------------------


@contextmanager
def moto_as_shipped():
    """moto's EC2 without our additions, for as long as the block lasts."""
    ours = {
        name: value
        for name, value in vars(EC2Response).items()
        if getattr(value, "vpnctl_simulator", False)
    }
    for name in ours:
        delattr(EC2Response, name)
    try:
        yield
    finally:
        for name, value in ours.items():
            setattr(EC2Response, name, value)


def test_moto_still_lacks_what_we_add(aws):
    """Fails the day moto implements these calls itself: then review simulator/moto_additions.py."""
    client = ec2()
    target = {"VpnConnectionId": "vpn-1", "VpnTunnelOutsideIpAddress": "1.1.1.1"}
    with moto_as_shipped():
        calls = {
            "GetVpnTunnelReplacementStatus": lambda: client.get_vpn_tunnel_replacement_status(
                **target
            ),
            "GetActiveVpnTunnelStatus": lambda: client.get_active_vpn_tunnel_status(**target),
            "ReplaceVpnTunnel": lambda: client.replace_vpn_tunnel(**target),
            "ModifyVpnTunnelOptions": lambda: client.modify_vpn_tunnel_options(
                **target, TunnelOptions={"EnableTunnelLifecycleControl": True}
            ),
        }
        for action, call in calls.items():
            with pytest.raises(NotImplementedError):
                call()
                pytest.fail(f"moto now implements {action}")
        cgw = client.create_customer_gateway(BgpAsn=65000, PublicIp="198.51.100.1", Type="ipsec.1")
        vgw = client.create_vpn_gateway(Type="ipsec.1")
        client.create_vpn_connection(
            Type="ipsec.1",
            CustomerGatewayId=cgw["CustomerGateway"]["CustomerGatewayId"],
            VpnGatewayId=vgw["VpnGateway"]["VpnGatewayId"],
        )
        connection = client.describe_vpn_connections()["VpnConnections"][0]
    assert "Options" not in connection, "moto now describes TunnelOptions"
    assert "VgwTelemetry" not in connection, "moto now describes VgwTelemetry"
    # And with our additions back, the same connection has both.
    assert "VgwTelemetry" in describe_one(client, connection["VpnConnectionId"])


def test_our_methods_are_the_ones_installed(aws):
    for action, method in simulator.ADDED_ACTIONS.items():
        assert getattr(EC2Response, method).vpnctl_simulator, action
        # Defined by us on EC2Response, by nobody in moto's own classes.
        assert not any(method in vars(base) for base in EC2Response.__mro__[1:]), action
    assert EC2Response.call_action.vpnctl_simulator
    assert EC2Response.describe_vpn_connections.vpnctl_simulator

    simulator.install()  # idempotent
    assert EC2Response.call_action.vpnctl_simulator


# -- DescribeVpnConnections ------------------------------------------------------------------


def test_describe_has_tunnel_options_and_telemetry_in_botocores_shape(aws):
    connection_id = aws.create_connection(
        region=REGION,
        name="osaka-dc",
        tags={"Owner": "network-team"},
        tunnels=[TunnelSpec(), TunnelSpec(status="DOWN", lifecycle_control=False)],
    )
    other_id = aws.create_connection(region=REGION, transit_gateway=True, static_routes_only=True)
    client = ec2()

    answer = client.describe_vpn_connections(VpnConnectionIds=[connection_id])
    connection = answer["VpnConnections"][0]

    assert connection["VpnConnectionId"] == connection_id
    assert connection["State"] == "available"
    assert connection["Type"] == "ipsec.1"
    assert connection["Category"] == "VPN"
    assert connection["VpnGatewayId"].startswith("vgw-")
    assert connection["CustomerGatewayId"].startswith("cgw-")
    assert {t["Key"]: t["Value"] for t in connection["Tags"]} == {
        "Name": "osaka-dc",
        "Owner": "network-team",
    }
    options = connection["Options"]["TunnelOptions"]
    ips = [t["OutsideIpAddress"] for t in options]
    assert ips == aws.tunnel_ips(connection_id)
    assert [t["EnableTunnelLifecycleControl"] for t in options] == [True, False]
    assert connection["Options"]["StaticRoutesOnly"] is False
    telemetry = connection["VgwTelemetry"]
    assert [t["OutsideIpAddress"] for t in telemetry] == ips
    assert [t["Status"] for t in telemetry] == ["UP", "DOWN"]
    assert isinstance(telemetry[0]["LastStatusChange"], datetime)
    assert telemetry[0]["AcceptedRouteCount"] > 0
    assert telemetry[0]["StatusMessage"].endswith("BGP ROUTES")
    assert telemetry[1]["AcceptedRouteCount"] == 0
    assert telemetry[1]["StatusMessage"] == "IPSEC IS DOWN"
    uuid.UUID(answer["ResponseMetadata"]["RequestId"])  # AWS's request ids are UUIDs

    other = describe_one(client, other_id)
    assert other["TransitGatewayId"].startswith("tgw-")
    assert "VpnGatewayId" not in other
    assert other["Options"]["StaticRoutesOnly"] is True
    assert all(t["AcceptedRouteCount"] == 0 for t in other["VgwTelemetry"])


def test_outside_ips_look_public_and_are_unique(aws):
    ids = [aws.create_connection(region=REGION) for _ in range(25)]
    ids.append(aws.create_connection(region="us-east-1", account_id=SECOND_ACCOUNT_ID))
    ips = [ip for connection_id in ids for ip in aws.tunnel_ips(connection_id)]

    assert len(ips) == len(set(ips)) == 52
    assert all(ipaddress.ip_address(ip).is_global for ip in ips)


def test_connections_created_through_the_ec2_api_get_tunnels(aws):
    client = ec2()
    cgw = client.create_customer_gateway(BgpAsn=65010, PublicIp="198.51.100.7", Type="ipsec.1")
    vgw = client.create_vpn_gateway(Type="ipsec.1")
    created = client.create_vpn_connection(
        Type="ipsec.1",
        CustomerGatewayId=cgw["CustomerGateway"]["CustomerGatewayId"],
        VpnGatewayId=vgw["VpnGateway"]["VpnGatewayId"],
        Options={
            "StaticRoutesOnly": True,
            "TunnelOptions": [
                {"EnableTunnelLifecycleControl": True, "IKEVersions": [{"Value": "ikev1"}]},
                {},
            ],
        },
        TagSpecifications=[
            {"ResourceType": "vpn-connection", "Tags": [{"Key": "Name", "Value": "x"}]}
        ],
    )["VpnConnection"]

    connection = describe_one(client, created["VpnConnectionId"])
    options = connection["Options"]
    assert options["StaticRoutesOnly"] is True
    assert [t["EnableTunnelLifecycleControl"] for t in options["TunnelOptions"]] == [True, False]
    assert options["TunnelOptions"][0]["IkeVersions"] == [{"Value": "ikev1"}]
    assert created["Options"] == options
    assert [t["Status"] for t in connection["VgwTelemetry"]] == ["UP", "UP"]


def test_telemetry_reversed_lists_telemetry_in_the_other_order(aws):
    connection_id = aws.create_connection(region=REGION)
    ips = aws.tunnel_ips(connection_id)

    aws.configure(telemetry_reversed=True)
    connection = describe_one(ec2(), connection_id)

    assert [t["OutsideIpAddress"] for t in connection["Options"]["TunnelOptions"]] == ips
    assert [t["OutsideIpAddress"] for t in connection["VgwTelemetry"]] == ips[::-1]


def test_deleted_connection_stays_listed_and_removed_one_vanishes(aws):
    deleted = aws.create_connection(region=REGION)
    removed = aws.create_connection(region=REGION)
    aws.delete_connection(deleted)
    aws.remove_connection(removed)
    client = ec2()

    states = {
        c["VpnConnectionId"]: c["State"]
        for c in client.describe_vpn_connections()["VpnConnections"]
    }

    assert states == {deleted: "deleted"}
    assert aws.connection_state(deleted) == "deleted"


def test_unknown_connection_id_is_not_found(aws):
    known = aws.create_connection(region=REGION)
    client = ec2()
    calls = [
        lambda: client.describe_vpn_connections(VpnConnectionIds=["vpn-0123456789abcdef0"]),
        lambda: client.get_vpn_tunnel_replacement_status(
            VpnConnectionId="vpn-0123456789abcdef0", VpnTunnelOutsideIpAddress="3.3.3.3"
        ),
        lambda: client.get_active_vpn_tunnel_status(
            VpnConnectionId="vpn-0123456789abcdef0", VpnTunnelOutsideIpAddress="3.3.3.3"
        ),
        lambda: client.replace_vpn_tunnel(
            VpnConnectionId="vpn-0123456789abcdef0", VpnTunnelOutsideIpAddress="3.3.3.3"
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo)[0] == "InvalidVpnConnectionID.NotFound"

    # A known connection, but not its tunnel.
    with pytest.raises(ClientError) as excinfo:
        client.get_vpn_tunnel_replacement_status(
            VpnConnectionId=known, VpnTunnelOutsideIpAddress="3.3.3.3"
        )
    assert error_of(excinfo)[0] == "InvalidParameterValue"


# -- GetVpnTunnelReplacementStatus, GetActiveVpnTunnelStatus -----------------------------------


def test_replacement_status_in_botocores_shape(aws):
    deadline = in_days(12).replace(microsecond=0)
    applied = in_days(-40).replace(microsecond=0)
    connection_id = aws.create_connection(
        region=REGION,
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(last_applied=applied),
        ],
    )
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()

    answer = client.get_vpn_tunnel_replacement_status(
        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first
    )
    assert answer["VpnConnectionId"] == connection_id
    assert answer["VpnTunnelOutsideIpAddress"] == first
    assert answer["VpnGatewayId"].startswith("vgw-")
    assert answer["MaintenanceDetails"] == {
        "PendingMaintenance": "Available",
        "MaintenanceAutoAppliedAfter": deadline,  # parsed by botocore into a datetime
    }
    assert replacement_status(client, connection_id, second) == {
        "PendingMaintenance": "None",
        "LastMaintenanceApplied": applied,
    }


def test_active_tunnel_status_while_up_and_while_replaced(aws):
    connection_id = aws.create_connection(
        region=REGION, tunnels=[pending(), TunnelSpec(ike_version="ikev1")]
    )
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()

    def active(ip: str) -> dict:
        return client.get_active_vpn_tunnel_status(
            VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=ip
        )["ActiveVpnTunnelStatus"]

    up = active(first)
    assert up["ProvisioningStatus"] == "available"
    assert up["IkeVersion"] == "ikev2"
    assert up["Phase1EncryptionAlgorithm"] and up["Phase2IntegrityAlgorithm"]
    assert isinstance(up["Phase1DHGroup"], int)
    assert active(second)["IkeVersion"] == "ikev1"

    client.replace_vpn_tunnel(
        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first, ApplyPendingMaintenance=True
    )
    replacing = active(first)
    assert replacing["ProvisioningStatus"] == "pending"
    assert replacing["ProvisioningStatusReason"]
    assert "Phase1EncryptionAlgorithm" not in replacing  # nothing negotiated while DOWN


# -- ReplaceVpnTunnel ----------------------------------------------------------------------


def test_replace_takes_the_tunnel_down_then_up_and_clears_the_maintenance(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), TunnelSpec()])
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()
    before = telemetry_of(client, connection_id)[first]["LastStatusChange"]

    answer = client.replace_vpn_tunnel(
        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first, ApplyPendingMaintenance=True
    )

    assert answer["Return"] is True
    called_at = datetime.now(UTC)
    telemetry = telemetry_of(client, connection_id)
    assert telemetry[first]["Status"] == "DOWN"
    assert telemetry[first]["LastStatusChange"] >= before
    assert telemetry[second]["Status"] == "UP"  # one tunnel at a time
    assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "None"

    wait_until(lambda: telemetry_of(client, connection_id)[first]["Status"] == "UP")
    up_after = datetime.now(UTC) - called_at
    assert up_after >= timedelta(seconds=aws.timings.replace_down_seconds - 0.05)
    details = replacement_status(client, connection_id, first)
    assert details["PendingMaintenance"] == "None"
    assert details["LastMaintenanceApplied"] >= called_at - timedelta(seconds=1)
    assert aws.calls(REPLACE) == aws.calls(REPLACE, outcome="ok") == 1
    record = next(r for r in aws.call_log if r.action == REPLACE)
    assert record.action == REPLACE
    assert record.params["VpnTunnelOutsideIpAddress"] == first
    assert record.request_id == answer["ResponseMetadata"]["RequestId"]
    assert (record.account_id, record.region) == (DEFAULT_ACCOUNT_ID, REGION)


def test_replace_without_pending_maintenance_is_refused(aws):
    connection_id = aws.create_connection(region=REGION)
    first = aws.tunnel_ips(connection_id)[0]

    with pytest.raises(ClientError) as excinfo:
        ec2().replace_vpn_tunnel(
            VpnConnectionId=connection_id,
            VpnTunnelOutsideIpAddress=first,
            ApplyPendingMaintenance=True,
        )

    code, status, message = error_of(excinfo)
    assert (code, status) == ("InvalidParameterValue", 400)
    assert "no pending maintenance" in message
    assert aws.tunnel_state(connection_id, first)["status"] == "UP"
    assert aws.calls(REPLACE) == 1
    assert aws.calls(REPLACE, outcome="ok") == 0
    assert aws.calls(REPLACE, outcome="InvalidParameterValue") == 1


def test_replace_while_the_connection_is_modifying_is_refused(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), pending()])
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()
    client.modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=second,
        TunnelOptions={"EnableTunnelLifecycleControl": True},
        SkipTunnelReplacement=True,
    )

    with pytest.raises(ClientError) as excinfo:
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)

    assert error_of(excinfo)[0] == "IncorrectState"
    assert aws.tunnel_state(connection_id, first)["pending_maintenance"] == "Available"


# -- ModifyVpnTunnelOptions ------------------------------------------------------------------


def test_turning_lifecycle_control_on_starts_the_pending_replacement(aws):
    connection_id = aws.create_connection(
        region=REGION, tunnels=[pending(lifecycle_control=False), TunnelSpec()]
    )
    first = aws.tunnel_ips(connection_id)[0]
    client = ec2()

    answer = client.modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=first,
        TunnelOptions={"EnableTunnelLifecycleControl": True},
    )

    assert answer["VpnConnection"]["State"] == "modifying"
    assert answer["VpnConnection"]["Options"]["TunnelOptions"][0]["EnableTunnelLifecycleControl"]
    assert describe_one(client, connection_id)["State"] == "modifying"
    assert telemetry_of(client, connection_id)[first]["Status"] == "DOWN"
    assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "None"

    wait_until(lambda: describe_one(client, connection_id)["State"] == "available")
    wait_until(lambda: telemetry_of(client, connection_id)[first]["Status"] == "UP")
    assert "LastMaintenanceApplied" in replacement_status(client, connection_id, first)
    assert aws.calls(MODIFY, outcome="ok") == 1


def test_turning_lifecycle_control_on_can_skip_the_replacement(aws):
    connection_id = aws.create_connection(
        region=REGION, tunnels=[pending(lifecycle_control=False), TunnelSpec()]
    )
    first = aws.tunnel_ips(connection_id)[0]
    client = ec2()

    client.modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=first,
        TunnelOptions={"EnableTunnelLifecycleControl": True},
        SkipTunnelReplacement=True,
    )

    assert describe_one(client, connection_id)["State"] == "modifying"
    wait_until(lambda: describe_one(client, connection_id)["State"] == "available")
    wait_until(lambda: telemetry_of(client, connection_id)[first]["Status"] == "UP")
    details = replacement_status(client, connection_id, first)
    assert details["PendingMaintenance"] == "Available"
    assert "LastMaintenanceApplied" not in details
    assert aws.tunnel_state(connection_id, first)["lifecycle_control"] is True


def test_turning_lifecycle_control_off_applies_pending_maintenance_and_refuses_skipping(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), TunnelSpec()])
    first = aws.tunnel_ips(connection_id)[0]
    client = ec2()

    with pytest.raises(ClientError) as excinfo:
        client.modify_vpn_tunnel_options(
            VpnConnectionId=connection_id,
            VpnTunnelOutsideIpAddress=first,
            TunnelOptions={"EnableTunnelLifecycleControl": False},
            SkipTunnelReplacement=True,
        )
    assert error_of(excinfo)[0] == "InvalidParameterCombination"
    assert describe_one(client, connection_id)["State"] == "available"
    assert aws.tunnel_state(connection_id, first)["lifecycle_control"] is True

    client.modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=first,
        TunnelOptions={"EnableTunnelLifecycleControl": False},
    )
    assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "None"
    assert telemetry_of(client, connection_id)[first]["Status"] == "DOWN"
    assert aws.tunnel_state(connection_id, first)["lifecycle_control"] is False
    assert aws.calls(MODIFY, outcome="InvalidParameterCombination") == 1
    assert aws.calls(MODIFY, outcome="ok") == 1


def test_modifying_without_pending_maintenance_only_interrupts_the_tunnel(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[TunnelSpec(), TunnelSpec()])
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()

    client.modify_vpn_tunnel_options(
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=second,
        TunnelOptions={"EnableTunnelLifecycleControl": False},
    )

    assert telemetry_of(client, connection_id)[second]["Status"] == "DOWN"
    assert telemetry_of(client, connection_id)[first]["Status"] == "UP"
    wait_until(lambda: telemetry_of(client, connection_id)[second]["Status"] == "UP")
    assert "LastMaintenanceApplied" not in replacement_status(client, connection_id, second)


# -- AWS applies maintenance by itself ------------------------------------------------------


def test_aws_applies_overdue_maintenance_itself(aws):
    aws.configure(timings=Timings(replace_down_seconds=600, auto_apply_delay_seconds=3600))
    deadline = in_days(3).replace(microsecond=0)
    connection_id = aws.create_connection(
        region=REGION,
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(),
        ],
    )
    first = aws.tunnel_ips(connection_id)[0]
    client = ec2()
    applies_at = deadline + timedelta(hours=1)

    with time_machine.travel(applies_at - timedelta(seconds=5), tick=False):
        # Past the deadline, before AWS's cycle comes round: still pending.
        assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "Available"
        assert telemetry_of(client, connection_id)[first]["Status"] == "UP"
    with time_machine.travel(applies_at + timedelta(seconds=5), tick=False):
        assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "None"
        telemetry = telemetry_of(client, connection_id)[first]
        assert telemetry["Status"] == "DOWN"
        assert telemetry["LastStatusChange"] == applies_at
    with time_machine.travel(applies_at + timedelta(minutes=11), tick=False):
        telemetry = telemetry_of(client, connection_id)[first]
        assert telemetry["Status"] == "UP"
        assert telemetry["LastStatusChange"] == applies_at + timedelta(minutes=10)
        details = replacement_status(client, connection_id, first)
        assert details["LastMaintenanceApplied"] == applies_at + timedelta(minutes=10)
    assert aws.calls(REPLACE) == 0  # nobody asked: AWS did it


def test_maintenance_long_overdue_is_applied_at_its_time_not_at_the_read(aws):
    with time_machine.travel(datetime(2026, 1, 10, 9, 0, tzinfo=UTC), tick=False):
        connection_id = aws.create_connection(
            region=REGION,
            tunnels=[
                TunnelSpec(
                    pending_maintenance="Available",
                    auto_apply_after=datetime(2026, 1, 12, 0, 0, tzinfo=UTC),
                ),
                TunnelSpec(),
            ],
        )
    first = aws.tunnel_ips(connection_id)[0]

    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        state = aws.tunnel_state(connection_id, first)

    assert state["status"] == "UP"
    assert state["pending_maintenance"] == "None"
    assert state["last_applied"] == datetime(2026, 1, 12, 0, 0, 0, 500000, tzinfo=UTC)


# -- throttling ----------------------------------------------------------------------------


@pytest.fixture
def clock(aws, monkeypatch) -> list[float]:
    """Throttling's clock, stopped: buckets refill only when the test moves it."""
    now = [1000.0]
    monkeypatch.setattr(aws, "_monotonic", lambda: now[0])
    return now


def test_throttling_per_account_region_and_kind_with_refill(aws, clock):
    aws.configure(
        throttling=Throttling(read_capacity=3, read_refill=2, write_capacity=1, write_refill=0.5)
    )
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), pending()])
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()

    for _ in range(3):
        client.describe_vpn_connections()
    with pytest.raises(ClientError) as excinfo:
        client.describe_vpn_connections()
    assert error_of(excinfo)[:2] == ("RequestLimitExceeded", 503)
    with pytest.raises(ClientError) as excinfo:  # all reads share the bucket
        client.get_vpn_tunnel_replacement_status(
            VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first
        )
    assert error_of(excinfo)[0] == "RequestLimitExceeded"

    # Other buckets are full: writes, another region, another account.
    client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    ec2("eu-west-1").describe_vpn_connections()
    ec2(credentials=second_account_credentials()).describe_vpn_connections()
    with pytest.raises(ClientError) as excinfo:
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=second)
    assert error_of(excinfo)[0] == "RequestLimitExceeded"

    clock[0] += 1.0  # two reads and half a write come back
    client.describe_vpn_connections()
    client.describe_vpn_connections()
    with pytest.raises(ClientError):
        client.describe_vpn_connections()
    with pytest.raises(ClientError):
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=second)
    clock[0] += 60  # a bucket never holds more than its capacity
    for _ in range(3):
        client.describe_vpn_connections()
    with pytest.raises(ClientError):
        client.describe_vpn_connections()

    assert aws.calls("DescribeVpnConnections", outcome="throttled") == 3
    assert aws.calls(REPLACE, outcome="throttled") == 2
    assert aws.calls(outcome="throttled") == 6


def test_throttled_mutation_does_nothing(aws, clock):
    aws.configure(throttling=Throttling(write_capacity=1, write_refill=0.01))
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), pending()])
    first, second = aws.tunnel_ips(connection_id)
    client = ec2()
    client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)

    with pytest.raises(ClientError) as excinfo:
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=second)

    assert error_of(excinfo)[0] == "RequestLimitExceeded"
    assert aws.tunnel_state(connection_id, second)["pending_maintenance"] == "Available"
    assert aws.calls(REPLACE, outcome="ok") == 1


def test_throttling_scaled_and_off(aws, clock):
    assert Throttling().scaled(0.5) == Throttling(50, 10, 25, 2.5)
    aws.configure(throttling=Throttling(read_capacity=1, read_refill=0.01))
    client = ec2()
    client.describe_vpn_connections()
    with pytest.raises(ClientError):
        client.describe_vpn_connections()

    aws.configure(throttling=None)
    for _ in range(5):
        client.describe_vpn_connections()


# -- injected faults, DryRun ---------------------------------------------------------------


def test_injected_faults_answer_the_next_calls_then_stop(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), TunnelSpec()])
    first = aws.tunnel_ips(connection_id)[0]
    aws.inject_fault(REPLACE, "InternalError", "We encountered an internal error.", 2, 500)
    client = ec2()

    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            client.replace_vpn_tunnel(
                VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first
            )
        assert error_of(excinfo) == ("InternalError", 500, "We encountered an internal error.")
        uuid.UUID(excinfo.value.response["ResponseMetadata"]["RequestId"])
    assert aws.tunnel_state(connection_id, first)["pending_maintenance"] == "Available"
    client.describe_vpn_connections()  # other actions are not affected

    client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    assert aws.calls(REPLACE, outcome="fault") == 2
    assert aws.calls(REPLACE, outcome="ok") == 1
    assert aws.calls(REPLACE) == 3


def test_a_fault_after_the_effect_loses_the_answer_not_the_change(aws):
    connection_id = aws.create_connection(region=REGION, tunnels=[pending(), TunnelSpec()])
    first = aws.tunnel_ips(connection_id)[0]
    aws.inject_fault(REPLACE, "InternalError", http_status=500, applied=True)

    with pytest.raises(ClientError) as excinfo:
        ec2().replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)

    assert error_of(excinfo)[:2] == ("InternalError", 500)
    state = aws.tunnel_state(connection_id, first)
    assert state["pending_maintenance"] == "None" and state["status"] == "DOWN"
    assert aws.calls(REPLACE, outcome="ok") == 1
    assert aws.call_log[-1].fault == "InternalError"


def test_inject_fault_rejects_actions_it_cannot_intercept(aws):
    with pytest.raises(ValueError, match="not simulated"):
        aws.inject_fault("RebootInstances", "InternalError")


def test_dry_run_answers_dry_run_operation_and_changes_nothing(aws):
    connection_id = aws.create_connection(
        region=REGION, tunnels=[pending(lifecycle_control=False), TunnelSpec()]
    )
    first = aws.tunnel_ips(connection_id)[0]
    client = ec2()
    calls = [
        lambda: client.replace_vpn_tunnel(
            VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first, DryRun=True
        ),
        lambda: client.modify_vpn_tunnel_options(
            VpnConnectionId=connection_id,
            VpnTunnelOutsideIpAddress=first,
            TunnelOptions={"EnableTunnelLifecycleControl": True},
            DryRun=True,
        ),
        lambda: client.describe_vpn_connections(DryRun=True),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo)[:2] == ("DryRunOperation", 412)

    state = aws.tunnel_state(connection_id, first)
    assert state["pending_maintenance"] == "Available"
    assert state["lifecycle_control"] is False
    assert aws.connection_state(connection_id) == "available"
    assert aws.calls(outcome="ok") == 0
    assert aws.calls(REPLACE, outcome="DryRunOperation") == 1


# -- accounts ------------------------------------------------------------------------------


def test_assumed_role_sees_only_its_own_accounts_connections(aws):
    mine = aws.create_connection(region=REGION, name="default-one")
    theirs = aws.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID, name="second-one")
    second = ec2(credentials=second_account_credentials())

    listed = [c["VpnConnectionId"] for c in second.describe_vpn_connections()["VpnConnections"]]
    assert listed == [theirs]
    assert [c["VpnConnectionId"] for c in ec2().describe_vpn_connections()["VpnConnections"]] == [
        mine
    ]
    with pytest.raises(ClientError) as excinfo:
        second.get_vpn_tunnel_replacement_status(
            VpnConnectionId=mine, VpnTunnelOutsideIpAddress=aws.tunnel_ips(mine)[0]
        )
    assert error_of(excinfo)[0] == "InvalidVpnConnectionID.NotFound"
    assert aws.call_log[-1].account_id == SECOND_ACCOUNT_ID


# -- the in-process API --------------------------------------------------------------------


def test_set_tunnel_validates_and_changes_what_aws_reports(aws):
    connection_id = aws.create_connection(region=REGION)
    first = aws.tunnel_ips(connection_id)[0]
    deadline = in_days(9)

    aws.set_tunnel(
        connection_id,
        first,
        status="DOWN",
        pending_maintenance="Available",
        auto_apply_after=deadline,
    )

    client = ec2()
    assert telemetry_of(client, connection_id)[first]["Status"] == "DOWN"
    assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "Available"
    with pytest.raises(TypeError):
        aws.set_tunnel(connection_id, first, colour="blue")
    with pytest.raises(ValueError):
        aws.set_tunnel(connection_id, first, status="SIDEWAYS")
    with pytest.raises(simulator.UnknownConnection):
        aws.set_tunnel("vpn-0000000000000000f", first, status="UP")
    with pytest.raises(simulator.UnknownTunnel):
        aws.set_tunnel(connection_id, "192.0.2.1", status="UP")


def test_a_down_tunnel_replaced_stays_down(aws):
    """The customer side is broken: a new AWS endpoint does not fix it."""
    connection_id = aws.create_connection(
        region=REGION, tunnels=[pending(status="DOWN"), TunnelSpec()]
    )
    first = aws.tunnel_ips(connection_id)[0]
    since = aws.tunnel_state(connection_id, first)["last_status_change"]

    ec2().replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    wait_until(lambda: not aws.tunnel_state(connection_id, first)["replacing"])

    state = aws.tunnel_state(connection_id, first)
    assert state["status"] == "DOWN"
    assert state["last_status_change"] == since
    assert state["last_applied"] is not None


# -- server mode ---------------------------------------------------------------------------


def control(endpoint: str, what: str, payload: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{endpoint}{CONTROL_PATH}/{what}",
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if payload is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_server_mode_behaves_the_same(aws_server, settings):
    endpoint = settings.AWS_ENDPOINT_URL
    assert endpoint.startswith("http://127.0.0.1:")
    connection_id = aws_server.create_connection(region=REGION, tunnels=[pending(), TunnelSpec()])
    first = aws_server.tunnel_ips(connection_id)[0]
    client = ec2(endpoint=endpoint)

    connection = describe_one(client, connection_id)
    assert [t["OutsideIpAddress"] for t in connection["VgwTelemetry"]] == aws_server.tunnel_ips(
        connection_id
    )
    assert replacement_status(client, connection_id, first)["PendingMaintenance"] == "Available"
    client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    assert telemetry_of(client, connection_id)[first]["Status"] == "DOWN"
    with pytest.raises(ClientError) as excinfo:
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    assert error_of(excinfo)[0] == "InvalidParameterValue"
    assert aws_server.calls(REPLACE, outcome="ok") == 1

    # Through another account, over HTTP too.
    second = ec2(endpoint=endpoint, credentials=second_account_credentials(endpoint))
    assert second.describe_vpn_connections()["VpnConnections"] == []


def test_control_channel_sets_tunnels_injects_faults_and_counts(aws_server, settings):
    endpoint = settings.AWS_ENDPOINT_URL
    connection_id = aws_server.create_connection(region=REGION)
    first, second = aws_server.tunnel_ips(connection_id)
    deadline = in_days(4).replace(microsecond=0)

    assert control(endpoint, "ping") == {"simulator": "vpnctl", "protocol": 1}
    answer = control(
        endpoint,
        "set-tunnels",
        {
            "tunnels": [
                {
                    "connection_id": connection_id,
                    "outside_ip": first,
                    "pending_maintenance": "Available",
                    "auto_apply_after": deadline.isoformat(),
                },
                {"connection_id": connection_id, "outside_ip": second, "status": "DOWN"},
            ]
        },
    )
    assert answer == {"updated": 2}
    client = ec2(endpoint=endpoint)
    assert replacement_status(client, connection_id, first) == {
        "PendingMaintenance": "Available",
        "MaintenanceAutoAppliedAfter": deadline,
    }
    assert telemetry_of(client, connection_id)[second]["Status"] == "DOWN"

    control(
        endpoint, "inject-fault", {"action": REPLACE, "code": "InternalError", "http_status": 500}
    )
    with pytest.raises(ClientError) as excinfo:
        client.replace_vpn_tunnel(VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=first)
    assert error_of(excinfo)[:2] == ("InternalError", 500)
    assert control(endpoint, "calls")["calls"][REPLACE] == {"fault": 1}

    for bad in (
        {"tunnels": [{"connection_id": "vpn-0000000000000000f", "outside_ip": first}]},
        {"tunnels": [{"connection_id": connection_id, "outside_ip": first, "status": "ON"}]},
        {"nothing": []},
    ):
        with pytest.raises(urllib.error.HTTPError) as http_error:
            control(endpoint, "set-tunnels", bad)
        assert http_error.value.code in (400, 404)


def test_server_survives_twenty_threads_hammering_it(aws_server, settings, clock):
    # The clock is stopped: exactly the buckets' capacity gets through.
    aws_server.configure(
        throttling=Throttling(read_capacity=40, read_refill=50, write_capacity=5, write_refill=1)
    )
    ids = [
        aws_server.create_connection(region=REGION, tunnels=[pending(), pending()])
        for _ in range(5)
    ]
    endpoint = settings.AWS_ENDPOINT_URL
    clients = [ec2(endpoint=endpoint) for _ in range(20)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def hammer(client, number: int) -> None:
        for i in range(6):
            connection_id = ids[(number + i) % len(ids)]
            ip = aws_server.tunnel_ips(connection_id)[i % 2]
            try:
                if i == 0:
                    client.replace_vpn_tunnel(
                        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=ip
                    )
                elif i % 2:
                    client.describe_vpn_connections()
                else:
                    client.get_vpn_tunnel_replacement_status(
                        VpnConnectionId=connection_id, VpnTunnelOutsideIpAddress=ip
                    )
                outcome = "ok"
            except ClientError as exc:
                outcome = exc.response["Error"]["Code"]
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=hammer, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(outcomes) == 120
    assert set(outcomes) <= {"ok", "RequestLimitExceeded", "InvalidParameterValue"}
    assert "RequestLimitExceeded" in outcomes
    assert aws_server.calls() == 120
    reads = ("DescribeVpnConnections", "GetVpnTunnelReplacementStatus")
    assert sum(aws_server.calls(action, outcome="ok") for action in reads) == 40
    # Five writes got a token; a tunnel can be replaced only once.
    assert aws_server.calls(REPLACE, outcome="throttled") == 15
    replaced = aws_server.calls(REPLACE, outcome="ok")
    assert replaced + aws_server.calls(REPLACE, outcome="InvalidParameterValue") == 5
    assert (
        sum(
            1
            for connection_id in ids
            for ip in aws_server.tunnel_ips(connection_id)
            if aws_server.tunnel_state(connection_id, ip)["pending_maintenance"] == "None"
        )
        == replaced
    )


def test_start_server_on_a_taken_port_fails_at_once(aws_server, settings):
    port = int(settings.AWS_ENDPOINT_URL.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        start_server(port)


# -- run_simulator and seed_simulator: the demo's simulated AWS ------------------------------


@pytest.fixture
def simulator_process() -> Iterator[str]:
    """``manage.py run_simulator`` in its own process, as the demo runs it; yields its URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "PYTEST", "DJANGO_SETTINGS"))
    }
    env["VPNCTL_MODE"] = "demo"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_simulator", "--port", "0", "--no-throttle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if "listening on" in line:
                url = line.split("listening on", 1)[1].strip()
        yield url

        # Stopped the way run_demo stops it.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        output = []
        while not lines.empty():
            output.append(lines.get())
        assert "stopped" in "".join(output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_seed_simulator_fills_a_running_simulator_once(simulator_process, monkeypatch):
    endpoint = simulator_process
    assert endpoint.startswith("http://127.0.0.1:")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = StringIO()

    call_command("seed_simulator", endpoint=endpoint, connections=12, stdout=out)
    call_command("seed_simulator", endpoint=endpoint, connections=12, stdout=out)

    assert "12 connections created" in out.getvalue()
    assert "0 connections created, 12 already there" in out.getvalue()
    second_credentials = second_account_credentials(endpoint)
    connections = []
    for credentials in (None, second_credentials):
        for region in ("ap-northeast-1", "us-east-1", "eu-west-1"):
            client = ec2(region, endpoint, credentials)
            found = client.describe_vpn_connections()["VpnConnections"]
            assert found, (credentials is not None, region)
            connections += [(client, c) for c in found]
    assert len(connections) == 12
    names = [next(t["Value"] for t in c["Tags"] if t["Key"] == "Name") for _, c in connections]
    assert len(set(names)) == 12

    tunnels = [t for _, c in connections for t in c["VgwTelemetry"]]
    statuses = [t["Status"] for t in tunnels]
    assert statuses.count("UP") > statuses.count("DOWN") > 0
    lifecycle = [
        [t["EnableTunnelLifecycleControl"] for t in c["Options"]["TunnelOptions"]]
        for _, c in connections
    ]
    assert any(flags.count(True) == 1 for flags in lifecycle)
    with_pending = 0
    now = datetime.now(UTC)
    for client, c in connections:
        deadlines = []
        for tunnel in c["Options"]["TunnelOptions"]:
            details = replacement_status(client, c["VpnConnectionId"], tunnel["OutsideIpAddress"])
            if details["PendingMaintenance"] == "Available":
                deadlines.append(details["MaintenanceAutoAppliedAfter"])
        with_pending += bool(deadlines)
        assert all(now + timedelta(hours=23) < d < now + timedelta(days=31) for d in deadlines)
    assert with_pending == 4  # one in three
    assert control(endpoint, "calls")["calls"]["GetVpnTunnelReplacementStatus"] == {"ok": 24}


def test_seed_simulator_refuses_what_is_not_the_simulator():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="refusing"):
        call_command(
            "seed_simulator", endpoint="http://127.0.0.1:9", connections=1, stdout=StringIO()
        )
