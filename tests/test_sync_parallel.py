"""Scopes synced at once, each within vpnctl's share of its EC2 read bucket.

Counted where AWS would count: in the simulated AWS's call log, which stamps every call it
answers. Rates are scaled down so that a scope takes a second or two; the assertions are on
counted calls and recorded timestamps, with tolerances for a loaded machine, never on how
long the test took.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from maintenance import aws as aws_api
from maintenance import sync
from maintenance.aws import limiter
from maintenance.choices import SyncStatus
from maintenance.models import SyncResult, Tunnel
from simulator import DEFAULT_ACCOUNT_ID, READ_ACTIONS, Throttling

TOKYO, VIRGINIA = "ap-northeast-1", "us-east-1"
ROOT = Path(__file__).resolve().parent.parent


def _pace(settings, *, rate: float, burst: float, share: float = 0.5) -> tuple[float, float]:
    """vpnctl's read bucket set to `share` of (rate, burst); returns what vpnctl may use."""
    settings.AWS_READ_RATE, settings.AWS_READ_BURST, settings.AWS_READ_SHARE = rate, burst, share
    settings.AWS_READ_RETRY_MODE = "standard"
    return rate * share, max(1.0, burst * share)


def _read_times(simulator, account_id: str, region: str) -> list[float]:
    """When the simulated AWS answered each read of one account and region (seconds)."""
    return sorted(
        call.at.timestamp()
        for call in simulator.call_log
        if call.action in READ_ACTIONS and (call.account_id, call.region) == (account_id, region)
    )


def _most_in_one_second(times: list[float], start: int = 0) -> int:
    """The most calls in a window [t, t + 1 s) that opens at one of the calls from `start`."""
    return max(sum(1 for t in times[i:] if t < times[i] + 1) for i in range(start, len(times)))


def _interval(result: SyncResult) -> tuple[float, float]:
    return result.started_at.timestamp(), result.finished_at.timestamp()


# --------------------------------------------------------------------------------------
# Each scope's reads stay within the share
# --------------------------------------------------------------------------------------


def test_each_scopes_reads_stay_within_its_share_of_ec2s_bucket(aws, accounts, settings):
    # EC2's bucket, scaled down: 10 burst, 20 per second. vpnctl may use half: 5 and 10.
    aws.configure(throttling=Throttling(read_capacity=10, read_refill=20))
    rate, burst = _pace(settings, rate=20, burst=10, share=0.5)
    for region in (TOKYO, VIRGINIA):
        for _ in range(12):  # 24 status calls and one DescribeVpnConnections: 2 s at 10/s
            aws.create_connection(region=region)

    run = sync.run_sync(account_name="default")

    assert run.status == SyncStatus.OK
    assert Tunnel.objects.exclude(synced_at=None).count() == 48
    assert aws.calls(outcome="throttled") == 0
    for region in (TOKYO, VIRGINIA):
        times = _read_times(aws, DEFAULT_ACCOUNT_ID, region)
        assert len(times) == 25
        # From the first read on, never more than the share's burst plus its refill (+2:
        # the first read's own latency, and calls bunched on the way to AWS).
        over_budget = [
            (k + 1, round(t - times[0], 3))
            for k, t in enumerate(times)
            if k + 1 > burst + rate * (t - times[0]) + 2
        ]
        assert over_budget == []
        # Once the burst is spent: at most the share's rate in any second (+1 for the
        # window's two ends, +1 for bunching).
        assert _most_in_one_second(times, start=int(burst)) <= rate + 2
    # The two regions' buckets are their own: together they read faster than one could.
    both = sorted(
        _read_times(aws, DEFAULT_ACCOUNT_ID, TOKYO) + _read_times(aws, DEFAULT_ACCOUNT_ID, VIRGINIA)
    )
    assert _most_in_one_second(both, start=2 * int(burst)) > rate + 2


def test_the_share_scales_the_read_bucket_rate_and_burst_alike(aws, accounts, settings):
    settings.AWS_READ_RATE, settings.AWS_READ_BURST, settings.AWS_READ_SHARE = 20, 100, 0.5
    settings.AWS_WRITE_RATE, settings.AWS_WRITE_BURST = 5, 50

    read = limiter._bucket(accounts["default"], TOKYO, aws_api.READ)
    write = limiter._bucket(accounts["default"], TOKYO, aws_api.WRITE)

    assert (read.rate, read.burst) == (10, 50)
    assert (write.rate, write.burst) == (5, 50)  # the share is of reads only
    waits = [read.reserve() for _ in range(52)]
    assert waits[49] == 0
    assert waits[50] == pytest.approx(0.1, abs=0.01)  # then one every 1/10 s
    assert waits[51] == pytest.approx(0.2, abs=0.01)


# --------------------------------------------------------------------------------------
# Scopes overlap in time
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 1])
def test_scopes_are_read_at_once_up_to_the_workers(aws, accounts, settings, workers):
    settings.SYNC_SCOPE_WORKERS = workers
    rate, burst = _pace(settings, rate=20, burst=2, share=0.5)  # 10 per second, burst 1
    for region in (TOKYO, VIRGINIA):
        for _ in range(6):  # 13 reads: at least 1.2 s per scope
            aws.create_connection(region=region)

    run = sync.run_sync(account_name="default")

    assert run.status == SyncStatus.OK
    results = list(run.results.order_by("pk"))
    # One row per scope, in the scopes' order.
    assert [(r.account.name, r.region) for r in results] == [
        (account.name, region) for account, region in sync.scopes(account_name="default")
    ]
    (start_a, end_a), (start_b, end_b) = (_interval(r) for r in results)
    floor = (13 - burst) / rate
    assert min(end_a - start_a, end_b - start_b) >= floor * 0.9  # each waited for its bucket
    overlap = min(end_a, end_b) - max(start_a, start_b)
    if workers == 2:
        assert overlap >= floor / 2  # not one after the other
    else:
        assert overlap <= 0  # 1: one after another
    assert run.started_at.timestamp() <= min(start_a, start_b)
    assert run.finished_at.timestamp() >= max(end_a, end_b)


# --------------------------------------------------------------------------------------
# A failing scope stops none of the others
# --------------------------------------------------------------------------------------


def test_a_scope_failing_half_way_does_not_stop_the_others(aws, accounts, settings):
    _pace(settings, rate=20, burst=2, share=0.5)  # 10 per second: each scope takes 1.2 s
    # Two status calls in flight per scope: a failing scope waits for its other one only
    # (0.2 s), well before the others are done.
    settings.AWS_SYNC_CONCURRENCY = 2
    for account_id, region in (
        (DEFAULT_ACCOUNT_ID, TOKYO),
        (DEFAULT_ACCOUNT_ID, VIRGINIA),
        (accounts["second"].account_id, TOKYO),
        (accounts["second"].account_id, "eu-west-1"),
    ):
        for _ in range(6):
            aws.create_connection(region=region, account_id=account_id)
    # The first status call to reach AWS is refused as if its credentials had stopped
    # working: that scope stops asking and fails; the others are already under way.
    aws.inject_fault(
        "GetVpnTunnelReplacementStatus",
        "AuthFailure",
        "AWS was not able to validate the provided access credentials",
        http_status=401,
    )

    run = sync.run_sync()

    assert run.status == SyncStatus.PARTIAL
    assert run.finished_at is not None
    [broken] = run.results.filter(failed=True)
    assert broken.errors[0]["code"] == "AuthFailure"
    assert broken.finished_at is not None
    others = list(run.results.filter(failed=False))
    assert len(others) == 3
    assert all(r.errors == [] and r.tunnels == 12 and r.created == 6 for r in others)
    # They were running when it failed, and went on to the end.
    assert all(r.started_at < broken.finished_at < r.finished_at for r in others)
    assert Tunnel.objects.exclude(synced_at=None).count() == 36
    assert aws.calls("GetVpnTunnelReplacementStatus", outcome="ok") >= 36


# --------------------------------------------------------------------------------------
# The share must make sense
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0, -0.5, 1.5, float("nan"), "0.5"])
def test_a_read_with_a_share_out_of_range_says_what_is_wrong(aws, accounts, settings, share):
    settings.AWS_READ_SHARE = share

    with pytest.raises(ImproperlyConfigured, match="VPNCTL_AWS_READ_SHARE must be a number"):
        aws_api.list_connections(accounts["default"], TOKYO)


@pytest.mark.parametrize("value", ["0", "1.01", "half"])
def test_vpnctl_refuses_to_start_with_a_share_out_of_range(tmp_path, value):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VPNCTL_MODE": "demo",
        "VPNCTL_SQLITE_PATH": str(tmp_path / "share.sqlite3"),
        "VPNCTL_AWS_READ_SHARE": value,
    }
    started = subprocess.run(
        [sys.executable, "-c", "import vpnctl.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode != 0
    assert (
        f"ImproperlyConfigured: VPNCTL_AWS_READ_SHARE must be a number above 0 and at most 1, "
        f"not {value!r}"
    ) in started.stderr
