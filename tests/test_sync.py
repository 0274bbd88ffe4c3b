"""maintenance/sync.py and the sync_vpn command, against the simulated AWS."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maintenance import aws as aws_api
from maintenance import enqueue, sync
from maintenance.choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    PendingMaintenance,
    SyncStatus,
    SyncTrigger,
    TunnelStatus,
)
from maintenance.models import (
    AuditEvent,
    ChangeRequest,
    Execution,
    SyncResult,
    Tunnel,
    VpnConnection,
)
from simulator import SECOND_ACCOUNT_ID, Throttling, TunnelSpec

TOKYO, VIRGINIA, IRELAND = "ap-northeast-1", "us-east-1", "eu-west-1"
INVENTORY_TABLES = ("maintenance_vpnconnection", "maintenance_tunnel")


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def _result(run, account_name: str, region: str) -> SyncResult:
    return run.results.get(account__name=account_name, region=region)


def _writes_to_inventory(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and any(f'"{table}"' in q["sql"] for table in INVENTORY_TABLES)
    ]


# --------------------------------------------------------------------------------------
# The whole inventory
# --------------------------------------------------------------------------------------


def test_sync_of_two_accounts_and_two_regions_each(aws, accounts):
    aws.create_connection(region=TOKYO, name="tokyo-a")
    aws.create_connection(region=TOKYO, name="tokyo-b", transit_gateway=True)
    aws.create_connection(region=VIRGINIA, name="virginia")
    theirs = aws.create_connection(region=TOKYO, account_id=SECOND_ACCOUNT_ID, name="theirs")
    aws.create_connection(region=IRELAND, account_id=SECOND_ACCOUNT_ID, name="dublin-a")
    aws.create_connection(region=IRELAND, account_id=SECOND_ACCOUNT_ID, name="dublin-b")
    # A region the second account is not configured for: not read.
    aws.create_connection(region=VIRGINIA, account_id=SECOND_ACCOUNT_ID, name="unread")

    run = sync.run_sync()

    assert run.status == SyncStatus.OK
    assert run.trigger == SyncTrigger.SCHEDULE
    assert run.finished_at is not None
    counts = {
        (r.account.name, r.region): (r.connections, r.tunnels, r.created, r.failed)
        for r in run.results.select_related("account")
    }
    assert counts == {
        ("default", TOKYO): (2, 4, 2, False),
        ("default", VIRGINIA): (1, 2, 1, False),
        ("second", TOKYO): (1, 2, 1, False),
        ("second", IRELAND): (2, 4, 2, False),
    }
    assert _result(run, "default", TOKYO).api_calls == 1 + 4
    names = set(VpnConnection.objects.values_list("name", flat=True))
    assert names == {"tokyo-a", "tokyo-b", "virginia", "theirs", "dublin-a", "dublin-b"}
    row = VpnConnection.objects.get(vpn_connection_id=theirs)
    assert (row.account, row.region) == (accounts["second"], TOKYO)
    assert VpnConnection.objects.get(name="tokyo-b").transit_gateway_id.startswith("tgw-")
    assert Tunnel.objects.count() == 12
    assert len(_events(AuditAction.CONNECTION_DISCOVERED)) == 6
    # Every tunnel's replacement status was read, in the right account.
    reads = {(c.account_id, c.region) for c in aws.call_log}
    assert (SECOND_ACCOUNT_ID, IRELAND) in reads
    assert (SECOND_ACCOUNT_ID, VIRGINIA) not in reads


def test_tunnel_fields_come_from_options_telemetry_and_replacement_status(aws, accounts):
    aws.configure(telemetry_reversed=True)  # telemetry in the opposite order to the options
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(days=9)
    applied = datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
    connection_id = aws.create_connection(
        region=TOKYO,
        tunnels=[
            TunnelSpec(status="UP", pending_maintenance="Available", auto_apply_after=deadline),
            TunnelSpec(status="DOWN", lifecycle_control=False, last_applied=applied),
        ],
    )
    up_ip, down_ip = aws.tunnel_ips(connection_id)

    sync.run_sync(account_name="default", region=TOKYO)

    up = Tunnel.objects.get(outside_ip=up_ip)
    down = Tunnel.objects.get(outside_ip=down_ip)
    assert (up.status, up.lifecycle_control, up.pending_maintenance) == (
        TunnelStatus.UP,
        True,
        PendingMaintenance.AVAILABLE,
    )
    assert up.maintenance_auto_applied_after == deadline
    assert up.accepted_route_count == aws.tunnel_state(connection_id, up_ip)["accepted_route_count"]
    assert (down.status, down.status_message, down.lifecycle_control) == (
        TunnelStatus.DOWN,
        "IPSEC IS DOWN",
        False,
    )
    assert (down.pending_maintenance, down.last_maintenance_applied) == ("None", applied)


def test_a_resync_with_nothing_changed_writes_no_inventory_row(aws, accounts):
    for n in range(3):
        aws.create_connection(region=TOKYO, name=f"site-{n}")
    aws.create_connection(region=IRELAND, account_id=SECOND_ACCOUNT_ID)
    sync.run_sync()
    before = list(VpnConnection.objects.values("pk", "last_seen"))
    events = AuditEvent.objects.count()

    with CaptureQueriesContext(db) as queries:
        run = sync.run_sync()

    assert run.status == SyncStatus.OK
    assert _writes_to_inventory(queries) == []
    assert list(VpnConnection.objects.values("pk", "last_seen")) == before
    assert AuditEvent.objects.count() == events
    assert sum(r.changed + r.created for r in run.results.all()) == 0


def test_a_real_change_is_written_with_only_the_changed_fields(aws, accounts):
    connection_id = aws.create_connection(region=TOKYO)
    aws.create_connection(region=TOKYO)  # unchanged
    ip = aws.tunnel_ips(connection_id)[0]
    sync.run_sync(account_name="default", region=TOKYO)
    aws.set_tunnel(connection_id, ip, status="DOWN")

    with CaptureQueriesContext(db) as queries:
        run = sync.run_sync(account_name="default", region=TOKYO)

    [update] = _writes_to_inventory(queries)
    assert update.startswith('UPDATE "maintenance_tunnel" SET "accepted_route_count"')
    assert '"pending_maintenance"' not in update  # not changed, not written
    assert _result(run, "default", TOKYO).changed == 1
    tunnel = Tunnel.objects.get(outside_ip=ip)
    assert tunnel.status == TunnelStatus.DOWN
    assert tunnel.synced_at >= run.started_at
    assert Tunnel.objects.filter(synced_at__gte=run.started_at).count() == 1


def _sync_queries_with_every_tunnel_changed(simulator, n: int) -> tuple[int, int]:
    """Queries of a sync of n connections where every tunnel changed, and of an idle one."""
    ids = [simulator.create_connection(region=TOKYO) for _ in range(n)]
    sync.run_sync(account_name="default", region=TOKYO)
    # One moment for every tunnel's status change: AWS reports whole seconds, and a change
    # made within the second the tunnel was created would leave that field unchanged for
    # some tunnels only, making a second group of UPDATEs.
    went_down = timezone.now().replace(microsecond=0) + timedelta(minutes=5)
    for connection_id in ids:
        for ip in simulator.tunnel_ips(connection_id):
            simulator.set_tunnel(
                connection_id,
                ip,
                status="DOWN",
                lifecycle_control=False,
                last_status_change=went_down,
            )
    with CaptureQueriesContext(db) as changed:
        sync.run_sync(account_name="default", region=TOKYO)
    assert Tunnel.objects.filter(status=TunnelStatus.DOWN).count() == 2 * n
    with CaptureQueriesContext(db) as idle:
        sync.run_sync(account_name="default", region=TOKYO)
    return len(changed), len(idle)


@pytest.mark.parametrize("n", [5, 50])
def test_the_query_count_does_not_grow_with_the_inventory(aws, accounts, settings, n):
    settings.AWS_READ_SHARE = 1  # EC2's whole bucket: this is about queries, not waiting
    changed, idle = _sync_queries_with_every_tunnel_changed(aws, n)

    # The accounts; the run (insert, update) and the result (insert, update); in the scope's
    # transaction (a savepoint pair here) the account lock, the connections, the tunnels;
    # and, when tunnels changed, one UPDATE for their one group of changed fields. Then
    # the maintenance policies draft (models/drafting.py): the enabled policies, and the
    # tunnels flagged as having no slot, read (written only when that changes).
    assert (changed, idle) == (13, 12)


def test_a_connection_gone_from_aws_is_marked_gone_never_deleted(aws, accounts):
    vanishing = aws.create_connection(region=TOKYO, name="vanishing")
    deleted = aws.create_connection(region=TOKYO, name="deleted")
    staying = aws.create_connection(region=TOKYO, name="staying")
    sync.run_sync(account_name="default", region=TOKYO)
    aws.remove_connection(vanishing)
    aws.delete_connection(deleted)

    run = sync.run_sync(account_name="default", region=TOKYO)

    rows = {c.vpn_connection_id: c for c in VpnConnection.objects.all()}
    assert rows[vanishing].gone_at is not None
    assert rows[deleted].gone_at is not None
    assert rows[deleted].state == ConnectionState.DELETED
    assert rows[staying].gone_at is None
    assert Tunnel.objects.count() == 6
    assert _result(run, "default", TOKYO).gone == 2
    assert {e.connection.vpn_connection_id for e in _events(AuditAction.CONNECTION_GONE)} == {
        vanishing,
        deleted,
    }
    # Gone stays gone, without a new event each time.
    sync.run_sync(account_name="default", region=TOKYO)
    assert len(_events(AuditAction.CONNECTION_GONE)) == 2


def test_a_connection_back_in_aws_is_no_longer_gone(aws, accounts):
    connection_id = aws.create_connection(region=TOKYO)
    sync.run_sync(account_name="default", region=TOKYO)
    VpnConnection.objects.filter(vpn_connection_id=connection_id).update(
        gone_at=timezone.now() - timedelta(hours=1)
    )

    sync.run_sync(account_name="default", region=TOKYO)

    assert VpnConnection.objects.get(vpn_connection_id=connection_id).gone_at is None
    [event] = _events(AuditAction.CONNECTION_RETURNED)
    assert event.connection.vpn_connection_id == connection_id
    assert event.actor_kind == ActorKind.SYSTEM


# --------------------------------------------------------------------------------------
# Failures and odd answers
# --------------------------------------------------------------------------------------


def test_one_account_with_broken_credentials_does_not_stop_the_others(aws, accounts):
    aws.create_connection(region=TOKYO)
    aws.create_connection(region=VIRGINIA)
    aws.create_connection(region=TOKYO, account_id=SECOND_ACCOUNT_ID)
    aws.create_connection(region=IRELAND, account_id=SECOND_ACCOUNT_ID)
    # What EC2 answers a request signed with credentials it does not know; the scope whose
    # DescribeVpnConnections reaches AWS first gets it (scopes are read at once).
    aws.inject_fault(
        "DescribeVpnConnections",
        "AuthFailure",
        "AWS was not able to validate the provided access credentials",
        http_status=401,
    )

    run = sync.run_sync()

    assert run.status == SyncStatus.PARTIAL
    [broken] = run.results.filter(failed=True).select_related("account")
    first = aws.call_log[0]
    assert (first.account_id, first.region) == (broken.account.account_id, broken.region)
    assert broken.errors[0]["code"] == "AuthFailure"
    assert broken.errors[0]["request_id"] == first.request_id
    assert run.results.filter(failed=False).count() == 3
    synced = VpnConnection.objects.values_list("account", "region")
    assert sorted(synced) == sorted(
        (r.account_id, r.region) for r in run.results.filter(failed=False)
    )
    [event] = _events(AuditAction.SYNC_FAILED)
    assert event.account == broken.account
    assert event.details["region"] == broken.region
    assert "AuthFailure" in event.message


def test_every_scope_failing_fails_the_run(aws_server, accounts, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.AWS_READ_MAX_ATTEMPTS = 1
    aws_api.reset_clients()

    run = sync.run_sync()

    assert run.status == SyncStatus.FAILED
    assert run.results.filter(failed=True).count() == 4
    assert {r.errors[0]["code"] for r in run.results.all()} == {"EndpointConnectionError"}
    assert len(_events(AuditAction.SYNC_FAILED)) == 4


def test_a_throttled_sync_completes(aws, accounts, settings):
    """Throttling on, our pacing off: EC2 refuses calls, the SDK's retries get them through."""
    aws.configure(throttling=Throttling(read_capacity=4, read_refill=40))
    settings.AWS_READ_RATE = 0
    settings.AWS_READ_RETRY_MODE = "standard"
    for _ in range(10):
        aws.create_connection(region=TOKYO)

    run = sync.run_sync(account_name="default", region=TOKYO)

    assert run.status == SyncStatus.OK
    assert aws.calls(outcome="throttled") > 0
    assert Tunnel.objects.exclude(synced_at=None).count() == 20
    assert aws.calls("GetVpnTunnelReplacementStatus", outcome="ok") == 20


def test_a_paced_sync_stays_under_the_throttling(aws, accounts, settings):
    """The same sync, paced by vpnctl's shared bucket (with headroom, see test_aws)."""
    aws.configure(throttling=Throttling(read_capacity=8, read_refill=40))
    # The whole of these numbers (test_sync_parallel.py checks the share).
    settings.AWS_READ_BURST, settings.AWS_READ_RATE, settings.AWS_READ_SHARE = 5, 36, 1
    ids = [aws.create_connection(region=TOKYO) for _ in range(15)]
    # moto's first use of each action is slow: not part of what is measured.
    aws_api.list_connections(accounts["default"], TOKYO)
    aws_api.get_replacement_status(accounts["default"], TOKYO, ids[0], aws.tunnel_ips(ids[0])[0])
    time.sleep(0.2)  # both buckets full again

    started = time.monotonic()
    run = sync.run_sync(account_name="default", region=TOKYO)

    assert run.status == SyncStatus.OK
    assert aws.calls(outcome="throttled") <= 1
    assert time.monotonic() - started >= (31 - 5) / 36 * 0.9


def test_malformed_items_are_skipped_and_recorded(aws, accounts, monkeypatch):
    sound = aws.create_connection(region=TOKYO, name="sound")
    broken = aws.create_connection(region=TOKYO, name="broken")
    odd_status = aws.create_connection(region=TOKYO, name="odd-status")
    sync.run_sync(account_name="default", region=TOKYO)
    for connection_id in (sound, broken):
        aws.set_tunnel(connection_id, aws.tunnel_ips(connection_id)[0], status="DOWN")
    odd_ip = aws.tunnel_ips(odd_status)[1]
    aws.set_tunnel(odd_status, odd_ip, pending_maintenance="Available")
    render, replacement_status = aws._render, aws._replacement_status

    def duplicate_outside_ip(connection, state):
        render(connection, state)
        if connection.id == broken:
            connection.options["TunnelOptions"][1]["OutsideIpAddress"] = aws.tunnel_ips(broken)[0]

    def unknown_pending_value(response):
        result = replacement_status(response)
        if result.result["VpnTunnelOutsideIpAddress"] == odd_ip:
            result.result["MaintenanceDetails"]["PendingMaintenance"] = "Sometime"
        return result

    monkeypatch.setattr(aws, "_render", duplicate_outside_ip)
    monkeypatch.setattr(aws, "_replacement_status", unknown_pending_value)

    run = sync.run_sync(account_name="default", region=TOKYO)

    assert run.status == SyncStatus.PARTIAL
    result = _result(run, "default", TOKYO)
    assert result.failed is False
    by_item = {e["item"]: e for e in result.errors}
    assert set(by_item) == {broken, f"{odd_status} {odd_ip}"}
    assert "twice" in by_item[broken]["message"]
    assert "Sometime" in by_item[f"{odd_status} {odd_ip}"]["message"]
    # The broken connection keeps what we knew, and is not taken for gone.
    rows = {c.vpn_connection_id: c for c in VpnConnection.objects.all()}
    assert rows[broken].gone_at is None
    assert Tunnel.objects.get(outside_ip=aws.tunnel_ips(broken)[0]).status == TunnelStatus.UP
    assert Tunnel.objects.get(outside_ip=aws.tunnel_ips(sound)[0]).status == TunnelStatus.DOWN
    assert Tunnel.objects.get(outside_ip=odd_ip).pending_maintenance == PendingMaintenance.NONE


# --------------------------------------------------------------------------------------
# Maintenance that AWS applied by itself
# --------------------------------------------------------------------------------------


def _let_aws_apply(simulator, connection_id: str, ip: str) -> None:
    """AWS's deadline for the tunnel passes: it replaces it itself (0.5 s down)."""
    simulator.set_tunnel(
        connection_id, ip, pending_maintenance="Available", auto_apply_after=datetime.now(UTC)
    )
    time.sleep(simulator.timings.replace_down_seconds + 0.1)


def test_maintenance_applied_by_aws_is_detected_and_audited(aws, accounts, requester):
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    connection_id = aws.create_connection(
        region=TOKYO, tunnels=[TunnelSpec(last_applied=earlier), TunnelSpec()]
    )
    first, second = aws.tunnel_ips(connection_id)
    sync.run_sync(account_name="default", region=TOKYO)
    # An old vpnctl execution on the tunnel explains the earlier maintenance, not this one.
    _execution(requester, Tunnel.objects.get(outside_ip=first), earlier - timedelta(minutes=5))
    _let_aws_apply(aws, connection_id, first)
    _let_aws_apply(aws, connection_id, second)

    sync.run_sync(account_name="default", region=TOKYO)

    events = _events(AuditAction.MAINTENANCE_APPLIED_BY_AWS)
    assert {e.tunnel.outside_ip for e in events} == {first, second}
    assert {e.actor_kind for e in events} == {ActorKind.AWS}
    by_ip = {e.tunnel.outside_ip: e for e in events}
    # EC2 reports whole seconds.
    applied = aws.tunnel_state(connection_id, first)["last_applied"].replace(microsecond=0)
    # The parameters, beside the sentence kept as data for each reader's language.
    assert {k: v for k, v in by_ip[first].details.items() if k != "text"} == {
        "previous": earlier.isoformat(),
        "applied": applied.isoformat(),
    }
    assert by_ip[first].sentence == (
        f"AWS applied maintenance to {connection_id} {first} at "
        f"{applied:%Y-%m-%d %H:%M} UTC without a vpnctl change."
    )
    assert by_ip[second].details["previous"] is None
    assert Tunnel.objects.get(outside_ip=first).last_maintenance_applied == applied
    # Seen once, audited once.
    sync.run_sync(account_name="default", region=TOKYO)
    assert len(_events(AuditAction.MAINTENANCE_APPLIED_BY_AWS)) == 2


def _execution(user, tunnel: Tunnel, calling_aws_at: datetime | None) -> Execution:
    now = timezone.now()
    request = ChangeRequest.objects.create(
        kind=ChangeKind.REPLACE,
        tunnel=tunnel,
        requester=user,
        reason="quarterly patching",
        window_start=now - timedelta(hours=1),
        window_end=now + timedelta(hours=1),
        status=ChangeStatus.RUNNING,
        fingerprint="0" * 64,
    )
    return Execution.objects.create(
        change_request=request, claimed_at=now, heartbeat_at=now, calling_aws_at=calling_aws_at
    )


def test_maintenance_applied_by_a_vpnctl_execution_is_not_flagged(aws, accounts, requester):
    deadline = datetime.now(UTC) + timedelta(days=5)
    connection_id = aws.create_connection(
        region=TOKYO,
        tunnels=[TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline)] * 2,
    )
    ip = aws.tunnel_ips(connection_id)[0]
    sync.run_sync(account_name="default", region=TOKYO)
    tunnel = Tunnel.objects.get(outside_ip=ip)
    # What tasks.py does: the durable "about to call AWS" mark, then the call.
    _execution(requester, tunnel, calling_aws_at=timezone.now())
    aws_api.replace_tunnel(accounts["default"], TOKYO, connection_id, ip)
    time.sleep(aws.timings.replace_down_seconds + 0.1)

    sync.run_sync(account_name="default", region=TOKYO)

    tunnel.refresh_from_db()
    applied = aws.tunnel_state(connection_id, ip)["last_applied"]
    assert tunnel.last_maintenance_applied == applied.replace(microsecond=0)
    assert tunnel.pending_maintenance == PendingMaintenance.NONE
    assert _events(AuditAction.MAINTENANCE_APPLIED_BY_AWS) == []


# --------------------------------------------------------------------------------------
# One connection, on demand
# --------------------------------------------------------------------------------------


def test_refresh_connection_reads_only_that_connection(aws, accounts):
    mine = aws.create_connection(region=TOKYO)
    other = aws.create_connection(region=TOKYO)
    sync.run_sync(account_name="default", region=TOKYO)
    ip = aws.tunnel_ips(mine)[1]
    aws.set_tunnel(mine, ip, status="DOWN", pending_maintenance="Available")
    aws.set_tunnel(other, aws.tunnel_ips(other)[0], status="DOWN")
    calls_before = len(aws.call_log)

    row = sync.refresh_connection(VpnConnection.objects.get(vpn_connection_id=mine))

    tunnel = row.tunnels.get(outside_ip=ip)
    assert (tunnel.status, tunnel.pending_maintenance) == ("DOWN", "Available")
    assert Tunnel.objects.filter(connection__vpn_connection_id=other, status="DOWN").count() == 0
    new_calls = aws.call_log[calls_before:]
    assert [c.action for c in new_calls].count("GetVpnTunnelReplacementStatus") == 2
    assert new_calls[0].action == "DescribeVpnConnections"
    assert mine in str(new_calls[0].params) and other not in str(new_calls[0].params)


def test_refresh_of_a_connection_aws_no_longer_knows_marks_it_gone(aws, accounts):
    connection_id = aws.create_connection(region=TOKYO)
    sync.run_sync(account_name="default", region=TOKYO)
    aws.remove_connection(connection_id)

    row = sync.refresh_connection(VpnConnection.objects.get(vpn_connection_id=connection_id))

    assert row.gone_at is not None
    assert len(_events(AuditAction.CONNECTION_GONE)) == 1


def test_refresh_raises_aws_errors_to_the_caller(aws, accounts):
    connection_id = aws.create_connection(region=TOKYO)
    sync.run_sync(account_name="default", region=TOKYO)
    ip = aws.tunnel_ips(connection_id)[0]
    aws.inject_fault("GetVpnTunnelReplacementStatus", "UnauthorizedOperation", "Not allowed")
    row = VpnConnection.objects.get(vpn_connection_id=connection_id)

    with pytest.raises(aws_api.AwsAuthError) as caught:
        sync.refresh_connection(row)
    assert caught.value.code == "UnauthorizedOperation"

    aws.inject_fault("GetVpnTunnelReplacementStatus", "InvalidParameterValue", "odd", count=2)
    with pytest.raises(aws_api.AwsError) as caught:
        sync.refresh_connection(row)
    assert caught.value.code == "InvalidParameterValue"
    assert ip in str(caught.value) or connection_id in str(caught.value)


# --------------------------------------------------------------------------------------
# Entry points: the queue and the command
# --------------------------------------------------------------------------------------


def test_manual_sync_is_queued_after_commit(
    aws, accounts, requester, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)  # run the task inline
    aws.create_connection(region=TOKYO)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue.manual_sync(requester)
        assert not VpnConnection.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()

    run = sync.SyncRun.objects.get()
    assert (run.trigger, run.requested_by) == (SyncTrigger.MANUAL, requester)
    assert VpnConnection.objects.count() == 1


def test_scheduled_sync_returns_the_run(aws, accounts):
    pk = sync.scheduled_sync()
    assert sync.SyncRun.objects.get(pk=pk).status == SyncStatus.OK


def test_sync_vpn_command_prints_a_table(aws, accounts):
    aws.create_connection(region=TOKYO)
    aws.create_connection(region=IRELAND, account_id=SECOND_ACCOUNT_ID)
    out = StringIO()

    call_command("sync_vpn", stdout=out, stderr=StringIO())

    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "account",
        "region",
        "connections",
        "tunnels",
        "new",
        "changed",
        "gone",
        "AWS",
        "calls",
        "errors",
        "result",
    ]
    assert lines[1].split() == ["default", TOKYO, "1", "2", "1", "0", "0", "3", "0", "ok"]
    assert lines[4].split() == ["second", IRELAND, "1", "2", "1", "0", "0", "3", "0", "ok"]
    assert lines[-1].endswith("succeeded.")
    assert sync.SyncRun.objects.get().trigger == SyncTrigger.COMMAND


def test_sync_vpn_command_exits_non_zero_when_a_scope_failed(aws, accounts):
    aws.inject_fault("DescribeVpnConnections", "UnauthorizedOperation", "You are not authorized")
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("sync_vpn", "--account", "default", stdout=out, stderr=err)

    assert caught.value.returncode == 1
    assert "1 of 2" in str(caught.value)
    assert "FAILED" in out.getvalue()
    assert "UnauthorizedOperation: You are not authorized" in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "No enabled AWS account is named 'nope'."),
        (["--region", "sa-east-1"], "No enabled AWS account syncs region 'sa-east-1'."),
    ],
)
def test_sync_vpn_command_refuses_unknown_scopes(aws, accounts, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("sync_vpn", *args, stdout=StringIO())
    assert not sync.SyncRun.objects.exists()


def test_sync_vpn_command_one_region(aws, accounts):
    out = StringIO()
    call_command("sync_vpn", "--region", IRELAND, stdout=out)
    assert [line.split()[:2] for line in out.getvalue().splitlines()[1:-1]] == [["second", IRELAND]]
