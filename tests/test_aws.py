"""maintenance/aws/ against the simulated AWS: parsing, errors, retries, clients, pacing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from moto.sts.models import sts_backends

from maintenance import aws as aws_api
from simulator import (
    DEFAULT_ACCOUNT_ID,
    SECOND_ACCOUNT_ID,
    Throttling,
    TunnelSpec,
)

REGION = "ap-northeast-1"


def _pending_tunnels() -> list[TunnelSpec]:
    soon = datetime.now(UTC) + timedelta(days=7)
    return [
        TunnelSpec(pending_maintenance="Available", auto_apply_after=soon),
        TunnelSpec(pending_maintenance="Available", auto_apply_after=soon),
    ]


# --------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------


def test_telemetry_is_matched_to_tunnel_options_by_outside_ip(aws, accounts):
    aws.configure(telemetry_reversed=True)
    connection_id = aws.create_connection(
        region=REGION,
        name="osaka",
        tunnels=[TunnelSpec(status="UP"), TunnelSpec(status="DOWN", lifecycle_control=False)],
    )
    up_ip, down_ip = aws.tunnel_ips(connection_id)

    connections, errors = aws_list(accounts["default"])

    assert errors == []
    [connection] = connections
    assert connection.vpn_connection_id == connection_id
    assert connection.name == "osaka"
    tunnels = {t.outside_ip: t for t in connection.tunnels}
    assert tunnels[up_ip].status == "UP"
    assert tunnels[up_ip].lifecycle_control is True
    assert tunnels[up_ip].accepted_route_count > 0
    assert tunnels[down_ip].status == "DOWN"
    assert tunnels[down_ip].status_message == "IPSEC IS DOWN"
    assert tunnels[down_ip].lifecycle_control is False
    assert tunnels[down_ip].accepted_route_count == 0


def aws_list(account, region=REGION):
    return aws_api.list_connections(account, region)


def test_assumed_role_reads_the_other_account_only(aws, accounts):
    mine = aws.create_connection(region=REGION, name="mine")
    theirs = aws.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID, name="theirs")

    default_ids = [c.vpn_connection_id for c in aws_list(accounts["default"])[0]]
    second_ids = [c.vpn_connection_id for c in aws_list(accounts["second"])[0]]

    assert default_ids == [mine]
    assert second_ids == [theirs]
    assert [call.account_id for call in aws.call_log] == [DEFAULT_ACCOUNT_ID, SECOND_ACCOUNT_ID]


def test_describe_is_one_call_because_botocore_has_no_paginator(aws, accounts):
    for n in range(30):
        aws.create_connection(region=REGION, name=f"site-{n}")

    connections, _ = aws_list(accounts["default"])

    client = aws_api.clients._client(accounts["default"], REGION, aws_api.READ)
    assert client.can_paginate("describe_vpn_connections") is False
    assert len(connections) == 30
    assert aws.calls("DescribeVpnConnections") == 1


def test_replacement_status(aws, accounts):
    applied = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    deadline = datetime.now(UTC) + timedelta(days=3)
    connection_id = aws.create_connection(
        region=REGION,
        tunnels=[
            TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(last_applied=applied),
        ],
    )
    pending_ip, quiet_ip = aws.tunnel_ips(connection_id)

    pending = aws_api.get_replacement_status(accounts["default"], REGION, connection_id, pending_ip)
    quiet = aws_api.get_replacement_status(accounts["default"], REGION, connection_id, quiet_ip)

    assert pending.pending_maintenance == "Available"
    assert pending.auto_applied_after == deadline.replace(microsecond=0)
    assert pending.last_applied is None
    assert quiet.pending_maintenance == "None"
    assert quiet.auto_applied_after is None
    assert quiet.last_applied == applied


def test_a_replacement_status_without_pending_maintenance_is_malformed(aws, accounts, monkeypatch):
    connection_id = aws.create_connection(region=REGION)
    ip = aws.tunnel_ips(connection_id)[0]
    original = aws._replacement_status

    def without_pending(response):
        result = original(response)
        result.result["MaintenanceDetails"].pop("PendingMaintenance")
        return result

    monkeypatch.setattr(aws, "_replacement_status", without_pending)

    with pytest.raises(aws_api.AwsMalformedAnswer) as caught:
        aws_api.get_replacement_status(accounts["default"], REGION, connection_id, ip)
    assert caught.value.code == "MalformedAnswer"
    assert "PendingMaintenance is missing" in str(caught.value)
    assert caught.value.request_id == aws.call_log[-1].request_id


def test_active_tunnel_status(aws, accounts):
    connection_id = aws.create_connection(region=REGION)
    ip = aws.tunnel_ips(connection_id)[0]

    status = aws_api.get_active_tunnel_status(accounts["default"], REGION, connection_id, ip)

    assert status.provisioning_status == "available"
    assert status.ike_version == "ikev2"
    assert status.phase1_dh_group == 20
    assert status.as_dict()["phase2_encryption"] == "AES256-GCM-16"


def test_reads_are_retried_by_the_sdk_after_a_5xx(aws, accounts):
    connection_id = aws.create_connection(region=REGION)
    ip = aws.tunnel_ips(connection_id)[0]
    aws.inject_fault("GetVpnTunnelReplacementStatus", "InternalError", http_status=500)

    status = aws_api.get_replacement_status(accounts["default"], REGION, connection_id, ip)

    assert status.pending_maintenance == "None"
    assert aws.calls("GetVpnTunnelReplacementStatus", outcome="fault") == 1
    assert aws.calls("GetVpnTunnelReplacementStatus", outcome="ok") == 1


def test_a_read_refused_keeps_the_code_message_and_request_id(aws, accounts):
    with pytest.raises(aws_api.AwsError) as caught:
        aws_api.list_connections(accounts["default"], REGION, ["vpn-0123456789abcdef0"])
    error = caught.value
    assert error.code == "InvalidVpnConnectionID.NotFound"
    assert error.action == "DescribeVpnConnections"
    assert "vpn-0123456789abcdef0" in error.message
    assert str(error).startswith("InvalidVpnConnectionID.NotFound: ")


# --------------------------------------------------------------------------------------
# Parsing answers that make no sense (the simulator only produces sound ones)
# --------------------------------------------------------------------------------------


def _raw(**override):
    raw = {
        "VpnConnectionId": "vpn-0a",
        "State": "available",
        "Type": "ipsec.1",
        "Options": {
            "TunnelOptions": [
                {"OutsideIpAddress": "3.0.0.1", "EnableTunnelLifecycleControl": True},
                {"OutsideIpAddress": "3.0.0.2"},
            ]
        },
        "VgwTelemetry": [
            {"OutsideIpAddress": "3.0.0.2", "Status": "DOWN"},
            {"OutsideIpAddress": "3.0.0.1", "Status": "UP", "AcceptedRouteCount": 3},
        ],
        "Tags": [{"Key": "Name", "Value": "hq"}],
    }
    raw.update(override)
    return raw


def test_parse_a_sound_connection():
    info = aws_api.reads._parse_connection(_raw())

    assert info.name == "hq"
    assert [(t.outside_ip, t.status, t.lifecycle_control) for t in info.tunnels] == [
        ("3.0.0.1", "UP", True),
        ("3.0.0.2", "DOWN", False),
    ]


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"VpnConnectionId": None}, "VpnConnectionId is missing"),
        ({"VpnConnectionId": 7}, "VpnConnectionId is not a string"),
        ({"State": None}, "State is missing"),
        ({"Options": {"TunnelOptions": [{"OutsideIpAddress": "3.0.0.1"}] * 2}}, "twice"),
        ({"Options": {"TunnelOptions": [{}, {"OutsideIpAddress": "3.0.0.2"}]}}, "no OutsideIp"),
        ({"Options": {"TunnelOptions": "both"}}, "TunnelOptions is not a list"),
        ({"VgwTelemetry": [{"Status": "UP"}]}, "no OutsideIpAddress"),
        ({"VgwTelemetry": [{"OutsideIpAddress": "3.9.9.9"}]}, "absent from TunnelOptions"),
        ({"VgwTelemetry": [{"OutsideIpAddress": "3.0.0.1", "AcceptedRouteCount": "x"}]}, "integer"),
        ({"VgwTelemetry": [{"OutsideIpAddress": "not-an-ip"}]}, "not an IPv4"),
        ({"Tags": [{"Value": "orphan"}]}, "Key is missing"),
        (
            {
                "Options": {
                    "TunnelOptions": [
                        {"OutsideIpAddress": "3.0.0.1", "EnableTunnelLifecycleControl": "yes"}
                    ]
                },
                "VgwTelemetry": [],
            },
            "not a boolean",
        ),
    ],
)
def test_parse_refuses_malformed_connections(override, why):
    with pytest.raises(aws_api.reads._Malformed, match=why):
        aws_api.reads._parse_connection(_raw(**override))


def test_a_malformed_connection_is_skipped_as_an_item_error(aws, accounts, monkeypatch):
    sound = aws.create_connection(region=REGION, name="sound")
    broken = aws.create_connection(region=REGION, name="broken")
    original = aws._render

    def render(connection, state):
        original(connection, state)
        if connection.id == broken:  # both telemetry entries name the first tunnel
            first = connection.vgw_telemetry[0]["OutsideIpAddress"]
            for entry in connection.vgw_telemetry:
                entry["OutsideIpAddress"] = first

    monkeypatch.setattr(aws, "_render", render)

    connections, errors = aws_list(accounts["default"])

    assert [c.vpn_connection_id for c in connections] == [sound]
    assert [e.item for e in errors] == [broken]
    assert "twice" in errors[0].message


# --------------------------------------------------------------------------------------
# Mutating calls: at most once, unless AWS refused outright
# --------------------------------------------------------------------------------------


def test_replace_tunnel_returns_the_request_id(aws, accounts):
    connection_id = aws.create_connection(region=REGION, tunnels=_pending_tunnels())
    ip = aws.tunnel_ips(connection_id)[0]

    result = aws_api.replace_tunnel(accounts["default"], REGION, connection_id, ip)

    assert result.request_id == aws.call_log[-1].request_id
    assert aws.tunnel_state(connection_id, ip)["replacing"] is True


def test_a_5xx_on_a_mutating_call_is_ambiguous_and_not_retried(aws, accounts):
    connection_id = aws.create_connection(region=REGION, tunnels=_pending_tunnels())
    ip = aws.tunnel_ips(connection_id)[0]
    # AWS acts on the call, and the answer is lost on the way back as a 500.
    aws.inject_fault("ReplaceVpnTunnel", "InternalError", "We hit a snag", 1, 500, applied=True)

    with pytest.raises(aws_api.AwsAmbiguousError) as caught:
        aws_api.replace_tunnel(accounts["default"], REGION, connection_id, ip)

    assert aws.calls("ReplaceVpnTunnel") == 1  # the SDK did not send it again
    assert caught.value.code == "InternalError"
    assert caught.value.request_id == aws.call_log[-1].request_id
    # ... and it was right not to: AWS had started the replacement.
    assert aws.tunnel_state(connection_id, ip)["replacing"] is True


def test_a_connection_lost_on_a_mutating_call_is_ambiguous(aws_server, accounts, settings):
    connection_id = aws_server.create_connection(region=REGION, tunnels=_pending_tunnels())
    ip = aws_server.tunnel_ips(connection_id)[0]
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens
    aws_api.reset_clients()

    with pytest.raises(aws_api.AwsAmbiguousError) as caught:
        aws_api.modify_lifecycle_control(
            accounts["default"], REGION, connection_id, ip, enabled=True, skip_replacement=True
        )
    assert caught.value.code == "EndpointConnectionError"
    assert aws_server.calls("ModifyVpnTunnelOptions") == 0


def test_a_definite_refusal_of_a_mutating_call_is_not_ambiguous(aws, accounts):
    connection_id = aws.create_connection(region=REGION)  # nothing pending
    ip = aws.tunnel_ips(connection_id)[0]

    with pytest.raises(aws_api.AwsError) as caught:
        aws_api.replace_tunnel(accounts["default"], REGION, connection_id, ip)

    assert type(caught.value) is aws_api.AwsError
    assert caught.value.code == "InvalidParameterValue"
    assert "no pending maintenance" in caught.value.message
    assert aws.calls("ReplaceVpnTunnel") == 1


def test_a_throttled_mutating_call_is_retried_because_aws_refused_it(aws, accounts, monkeypatch):
    monkeypatch.setattr(aws_api.changes, "WRITE_THROTTLE_BASE_DELAY", 0.01)
    connection_id = aws.create_connection(region=REGION, tunnels=_pending_tunnels())
    ip = aws.tunnel_ips(connection_id)[0]
    aws.inject_fault("ReplaceVpnTunnel", "RequestLimitExceeded", "Request limit exceeded.", 1, 503)

    aws_api.replace_tunnel(accounts["default"], REGION, connection_id, ip)

    assert aws.calls("ReplaceVpnTunnel", outcome="fault") == 1
    assert aws.calls("ReplaceVpnTunnel", outcome="ok") == 1


def test_a_mutating_call_throttled_every_time_raises_aws_throttled(aws, accounts, monkeypatch):
    monkeypatch.setattr(aws_api.changes, "WRITE_THROTTLE_BASE_DELAY", 0.01)
    # EC2's own write bucket, nearly empty and refilling once a minute.
    aws.configure(throttling=Throttling(write_capacity=1, write_refill=1 / 60))
    connection_id = aws.create_connection(region=REGION, tunnels=_pending_tunnels())
    first, second = aws.tunnel_ips(connection_id)
    aws_api.modify_lifecycle_control(
        accounts["default"], REGION, connection_id, first, enabled=True, skip_replacement=True
    )

    with pytest.raises(aws_api.AwsThrottled) as caught:
        aws_api.modify_lifecycle_control(
            accounts["default"], REGION, connection_id, second, enabled=True, skip_replacement=True
        )

    assert caught.value.code == "RequestLimitExceeded"
    assert aws.calls("ModifyVpnTunnelOptions", outcome="throttled") == (
        aws_api.changes.WRITE_THROTTLE_ATTEMPTS
    )


def test_write_clients_have_sdk_retries_off_and_read_clients_on(aws, accounts, settings):
    settings.AWS_READ_RETRY_MODE = "standard"
    settings.AWS_READ_MAX_ATTEMPTS = 4

    read = aws_api.clients._client(accounts["default"], REGION, aws_api.READ)
    write = aws_api.clients._client(accounts["default"], REGION, aws_api.WRITE)

    assert read.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert write.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}


# --------------------------------------------------------------------------------------
# Credentials and clients
# --------------------------------------------------------------------------------------

SECRET = "vpnctlTestSecret/0123456789abcdefghijKLMNOPQRSTUVWX"
KEY_ID = "AKIAVPNCTLTESTKEY123"


def test_no_credentials_appear_in_errors(aws, accounts, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    aws_api.reset_clients()
    connection_id = aws.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID)
    ip = aws.tunnel_ips(connection_id)[0]
    # An endpoint that echoes a key id back, as some proxies do.
    aws.inject_fault("DescribeVpnConnections", "AuthFailure", f"Key {KEY_ID} is not valid")
    aws.inject_fault("ReplaceVpnTunnel", "InternalError", "boom", 1, 500)

    errors = []
    for call in (
        lambda: aws_api.list_connections(accounts["second"], REGION),
        lambda: aws_api.replace_tunnel(accounts["second"], REGION, connection_id, ip),
        lambda: aws_api.replace_tunnel(accounts["second"], REGION, connection_id, ip),
    ):
        with pytest.raises(aws_api.AwsError) as caught:
            call()
        errors.append(caught.value)

    assert isinstance(errors[0], aws_api.AwsAuthError)
    assert isinstance(errors[1], aws_api.AwsAmbiguousError)
    frozen = aws_api.clients._session(accounts["second"], REGION).get_credentials()
    frozen = frozen.get_frozen_credentials()
    for error in errors:
        text = f"{error} {error!r} {error.args} {error.as_dict()}"
        for secret in (KEY_ID, SECRET, frozen.access_key, frozen.secret_key, frozen.token):
            assert secret not in text


def test_missing_credentials_are_an_auth_error(aws, accounts, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws_api.reset_clients()

    with pytest.raises(aws_api.AwsAuthError) as caught:
        aws_api.list_connections(accounts["default"], REGION)
    assert caught.value.code == "NoCredentialsError"
    with pytest.raises(aws_api.AwsAuthError):
        aws_api.list_connections(accounts["second"], REGION)


def test_assume_role_sends_external_id_and_session_name(aws, accounts):
    account = accounts["second"]
    account.external_id = "vpnctl-ext-42"
    aws.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID)

    aws_api.list_connections(account, REGION)

    roles = _assumed_roles()
    assert [(r.role_arn, r.session_name, r.external_id) for r in roles] == [
        (account.role_arn, "vpnctl", "vpnctl-ext-42")
    ]


def _assumed_roles() -> list:
    return [
        role
        for backend in sts_backends[SECOND_ACCOUNT_ID].values()
        for role in backend.assumed_roles
    ]


def test_assumed_role_credentials_are_refreshed_before_they_expire(aws, accounts):
    aws.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID)
    aws_list(accounts["second"])
    aws_list(accounts["second"])
    assert len(_assumed_roles()) == 1  # cached, not assumed for every call

    # moto's role credentials last an hour; botocore renews them in the last 15 minutes.
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=50)):
        connections, _ = aws_list(accounts["second"])

    assert len(connections) == 1
    assert len(_assumed_roles()) == 2


def test_sts_goes_to_the_endpoint_override_and_its_failure_is_an_auth_error(
    aws_server, accounts, settings
):
    """Before a mutating call the role is assumed first: an STS failure sends nothing."""
    connection_id = aws_server.create_connection(
        region=REGION, account_id=SECOND_ACCOUNT_ID, tunnels=_pending_tunnels()
    )
    ip = aws_server.tunnel_ips(connection_id)[0]
    # Nothing listens there. Had STS ignored the override, mock_aws (still active under
    # the server) would have answered it, and the failure would be EC2's: ambiguous.
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.AWS_READ_MAX_ATTEMPTS = 1
    aws_api.reset_clients()

    with pytest.raises(aws_api.AwsAuthError) as caught:
        aws_api.replace_tunnel(accounts["second"], REGION, connection_id, ip)

    assert caught.value.code == "EndpointConnectionError"
    assert aws_server.calls("ReplaceVpnTunnel") == 0
    assert _assumed_roles() == []


def test_one_client_per_account_region_and_kind_even_across_threads(aws, accounts):
    seen = []
    barrier = threading.Barrier(12)

    def grab():
        barrier.wait()
        seen.append(aws_api.clients._client(accounts["second"], REGION, aws_api.READ))

    threads = [threading.Thread(target=grab) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(client) for client in seen}) == 1
    others = {
        id(aws_api.clients._client(accounts["second"], REGION, aws_api.WRITE)),
        id(aws_api.clients._client(accounts["second"], "eu-west-1", aws_api.READ)),
        id(aws_api.clients._client(accounts["default"], REGION, aws_api.READ)),
    }
    assert len(others | {id(seen[0])}) == 4


def test_the_endpoint_override_reaches_the_simulator_for_sts_and_ec2(
    aws_server, accounts, settings
):
    theirs = aws_server.create_connection(region=REGION, account_id=SECOND_ACCOUNT_ID)

    connections, _ = aws_api.list_connections(accounts["second"], REGION)

    assert [c.vpn_connection_id for c in connections] == [theirs]
    client = aws_api.clients._client(accounts["second"], REGION, aws_api.READ)
    assert client.meta.endpoint_url == settings.AWS_ENDPOINT_URL


# --------------------------------------------------------------------------------------
# Pacing
# --------------------------------------------------------------------------------------


def test_token_bucket_spends_the_burst_then_paces_at_the_rate():
    now = [100.0]
    bucket = aws_api.TokenBucket(rate=10, burst=3, clock=lambda: now[0], sleep=lambda s: None)

    waits = [bucket.reserve() for _ in range(6)]

    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    now[0] += 1.0  # a second later, the queue is served and the bucket holds 7 - 3 = ...
    assert bucket.reserve() == 0  # ... enough again
    assert aws_api.TokenBucket(rate=0, burst=1).reserve() == 0  # 0 turns it off


def _read_statuses_at_once(account, targets) -> float:
    """Ask for every target's replacement status, all threads released together."""
    start = threading.Barrier(len(targets))

    def read(connection_id: str, ip: str) -> None:
        start.wait()
        aws_api.get_replacement_status(account, REGION, connection_id, ip)

    started = time.monotonic()
    threads = [threading.Thread(target=read, args=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


@pytest.mark.parametrize("limiter", [True, False])
def test_the_client_side_bucket_keeps_reads_under_ec2s_limit(aws, accounts, settings, limiter):
    """Paced a little under EC2's bucket, 40 simultaneous reads are (almost) never throttled.

    Without the client-side bucket the same reads bounce off RequestLimitExceeded and only
    get through on the SDK's retries. Pacing cannot promise zero: a stall between our
    bucket and EC2's (a GC pause, a busy CPU) lets paced calls arrive bunched, which the
    headroom (a smaller burst, 90 % of the rate) absorbs.
    """
    throttling = Throttling(read_capacity=8, read_refill=40)
    aws.configure(throttling=throttling)
    settings.AWS_READ_RETRY_MODE = "standard"
    settings.AWS_READ_BURST = 5
    settings.AWS_READ_RATE = 36 if limiter else 0
    connection_ids = [aws.create_connection(region=REGION) for _ in range(20)]
    targets = [(c, ip) for c in connection_ids for ip in aws.tunnel_ips(c)]
    # One call first, so that moto's first-use set-up is not part of the measurement.
    aws_api.get_replacement_status(accounts["default"], REGION, *targets.pop())

    elapsed = _read_statuses_at_once(accounts["default"], targets)

    assert aws.calls("GetVpnTunnelReplacementStatus", outcome="ok") == 40
    throttled = aws.calls(outcome="throttled")
    if limiter:
        assert throttled <= 1
        assert elapsed >= (39 - 5) / 36 * 0.9
    else:
        assert throttled >= 5
