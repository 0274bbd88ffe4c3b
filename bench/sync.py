"""How close does a big inventory sync run to the floor of vpnctl's share of EC2's bucket?

    .venv/bin/python bench/sync.py [--connections N] [--scopes AxR] [--scale F] [--share S]
                                   [--scope-workers W] [--concurrency N]
                                   [--retry-mode standard|adaptive] [--no-pacing]
                                   [--simulator process|thread|in-process]

Sets up the simulated AWS with throttling ON: EC2's buckets per account and region (reads
100 burst and 20 per second, writes 50 and 5) multiplied by F (default 1; 0.5 with
``--scopes``, see the end). vpnctl's client-side buckets get the same numbers, and its reads
take their share S of the read bucket (``VPNCTL_AWS_READ_SHARE``, default 0.5: 10 of 20 per
second, 50 of 100). Then runs ``run_sync`` against a fresh database (a temporary SQLite
file, or DATABASE_URL, whose tables it migrates) and prints the elapsed time against the
floor that the share sets.

- One scope (the default): N connections (2N tunnels, default 1000) in one account and
  region, synced once.
- ``--scopes AxR``: A accounts (the first with plain credentials, the others through
  sts:AssumeRole) times R regions, N connections each (default 300), in three runs, each
  once every bucket is full again: one scope alone (the first account's first region, a
  first sync, as above); every scope, ``--scope-workers`` at once (default: all of them;
  a first sync for all but that one); and every scope again, with nothing left to write.
  The last is the read path alone; the one before adds the first sync's writes, which one
  thread makes one scope after another (SQLite has one writer, the audit chain one head).

The floor, in the limiter's own arithmetic (maintenance/aws/limiter.py): a scope's bucket
starts full with burst' = max(1, burst x share) tokens and refills refill' = refill x share
per second, so the k-th read of a scope waits (k - burst') / refill'. A scope making n reads
(its DescribeVpnConnections and one status call per tunnel: SyncResult.api_calls) cannot
finish reading before

    floor(scope) = (n - burst') / refill'

and a run's floor is that of its largest scope when every scope has a worker (otherwise the
scopes are dealt to the workers in order, as the pool does, and the floor is the longest
worker's sum). Target: elapsed / floor <= 1.15, for one scope and for all of them.

Where the simulated AWS runs (``--simulator``):

- ``process`` (default): ``manage.py run_simulator`` in its own process, seeded through the
  EC2 API, and vpnctl talks to it over loopback HTTP. This is the path production takes
  (botocore signs, serialises and sends every request through its connection pool; the
  answer comes back over a socket, with the latency and jitter that pacing has to survive),
  and AWS's side does not compete with vpnctl for this process's GIL, as EC2 would not.
- ``thread``: the same HTTP path, with moto's server on a thread of this process (the
  ``aws_server`` test fixture); its CPU time is taken from vpnctl's.
- ``in-process``: moto's ``mock_aws`` answers from inside botocore's send hook, no sockets.

moto needs a few milliseconds of CPU per call, so one simulator process answers about 150
to 200 calls per second: past ``--scale 5`` or so (one scope, share 1) the simulator, not
EC2's bucket, is what the sync waits for, and the ratio says more about moto than about
vpnctl. moto also answers one call at a time, where EC2 answers every region at once: six
DescribeVpnConnections of 300 connections each, all asked for at the start, come back one
after another over 4 to 9 s (timed on a 2-core machine), and until its own answer comes a
scope cannot start its status calls. That wait is moto's, and it costs the same seconds
whatever the rate, so ``--scopes`` defaults to ``--scale 0.5`` (EC2's 10 reads per second
per scope, 5 of them vpnctl's: 30 per second in all), where it weighs half as much against
a floor twice as long. The ratio then measures vpnctl: its pacing, its threads, and its
writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
REGIONS = (REGION, "us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2", "eu-central-1")
READ_BURST, READ_REFILL = 100, 20  # EC2's read bucket, before scaling
WRITE_BURST, WRITE_REFILL = 50, 5
CONTROL_PATH = "/moto-api/vpnctl"  # simulator.CONTROL_PATH (ROOT is not on sys.path yet)
# simulator.DEFAULT_ACCOUNT_ID (plain credentials) and SECOND_ACCOUNT_ID; more are made up
# (the simulated STS lets one assume a role in any account).
ACCOUNT_IDS = ("123456789012", "210987654321")

Place = tuple[str, str]  # (AWS account id, region)


def account_id(index: int) -> str:
    return ACCOUNT_IDS[index] if index < len(ACCOUNT_IDS) else f"{300000000000 + index:012d}"


def role_arn(account: str) -> str:
    return "" if account == ACCOUNT_IDS[0] else f"arn:aws:iam::{account}:role/vpnctl-reader"


def parse_scopes(text: str) -> tuple[int, int]:
    """``"2x3"`` → (2 accounts, 3 regions)."""
    try:
        accounts, regions = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not AxR, e.g. 2x3") from None
    if not (1 <= accounts <= 50 and 1 <= regions <= len(REGIONS)):
        raise argparse.ArgumentTypeError(f"1 to 50 accounts and 1 to {len(REGIONS)} regions")
    return accounts, regions


def configure_django(args: argparse.Namespace, workdir: str) -> None:
    """Environment for a throwaway demo-mode vpnctl, then django.setup() and migrate."""
    scale = args.scale
    os.environ.update(
        {
            "VPNCTL_MODE": "demo",
            "DJANGO_SETTINGS_MODULE": "vpnctl.settings",
            "VPNCTL_AWS_READ_RATE": "0" if args.no_pacing else str(READ_REFILL * scale),
            "VPNCTL_AWS_READ_BURST": str(READ_BURST * scale),
            "VPNCTL_AWS_WRITE_RATE": str(WRITE_REFILL * scale),
            "VPNCTL_AWS_WRITE_BURST": str(WRITE_BURST * scale),
            "VPNCTL_AWS_READ_SHARE": str(args.share),
            "VPNCTL_SYNC_SCOPE_WORKERS": str(args.scope_workers),
            "VPNCTL_AWS_SYNC_CONCURRENCY": str(args.concurrency),
            "VPNCTL_AWS_READ_RETRY_MODE": args.retry_mode,
            "LOG_LEVEL": "WARNING",
            # Fake credentials only: nothing here may reach a real AWS account.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/vpnctl-bench-aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/vpnctl-bench-aws-credentials",
        }
    )
    if not os.environ.get("DATABASE_URL"):
        os.environ["VPNCTL_SQLITE_PATH"] = str(Path(workdir) / "bench.sqlite3")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise


# --------------------------------------------------------------------------------------
# The simulated AWS, three ways. Each yields (calls(action, outcome) -> int,
# seed(places, n)), seed making n connections in each (account, region).
# --------------------------------------------------------------------------------------

Calls = Callable[..., int]
Seed = Callable[[list[Place], int], None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def simulator_process(args: argparse.Namespace) -> Iterator[tuple[Calls, Seed]]:
    """``manage.py run_simulator`` in a child process; seeded and counted over HTTP."""
    from django.conf import settings

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "manage.py"), "run_simulator", "--port", str(port)]
    command += ["--throttle-scale", str(args.scale)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}{CONTROL_PATH}/ping", timeout=1) as answer:
                    assert json.load(answer)["simulator"] == "vpnctl"
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("run_simulator did not start") from None
                time.sleep(0.2)
        settings.AWS_ENDPOINT_URL = url

        def calls(action: str | None = None, *, outcome: str | None = None) -> int:
            with urllib.request.urlopen(f"{url}{CONTROL_PATH}/calls", timeout=10) as answer:
                counts = json.load(answer)["calls"]
            return sum(
                n
                for a, outcomes in counts.items()
                for o, n in outcomes.items()
                if action in (None, a) and outcome in (None, o)
            )

        def seed(places: list[Place], n: int) -> None:
            import boto3

            # Plain moto calls (not throttled by the simulator, which leaves its buckets
            # full for the sync); other accounts through the simulated sts:AssumeRole.
            keys: dict[str, dict[str, str]] = {ACCOUNT_IDS[0]: {}}
            sts = boto3.client("sts", region_name=REGION, endpoint_url=url)
            for account, region in places:
                if account not in keys:
                    credentials = sts.assume_role(
                        RoleArn=role_arn(account), RoleSessionName="vpnctl-bench"
                    )["Credentials"]
                    keys[account] = {
                        "aws_access_key_id": credentials["AccessKeyId"],
                        "aws_secret_access_key": credentials["SecretAccessKey"],
                        "aws_session_token": credentials["SessionToken"],
                    }
                ec2 = boto3.client("ec2", region_name=region, endpoint_url=url, **keys[account])
                vgw = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
                cgw = ec2.create_customer_gateway(
                    Type="ipsec.1", PublicIp="203.0.113.1", BgpAsn=65000
                )
                for i in range(n):
                    ec2.create_vpn_connection(
                        Type="ipsec.1",
                        CustomerGatewayId=cgw["CustomerGateway"]["CustomerGatewayId"],
                        VpnGatewayId=vgw,
                        TagSpecifications=[
                            {
                                "ResourceType": "vpn-connection",
                                "Tags": [{"Key": "Name", "Value": f"site-{i:04d}"}],
                            }
                        ],
                    )

        yield calls, seed
    finally:
        child.terminate()
        child.wait(timeout=30)


@contextmanager
def simulator_here(args: argparse.Namespace) -> Iterator[tuple[Calls, Seed]]:
    """moto in this process: behind a server thread (``thread``) or ``mock_aws`` alone."""
    from django.conf import settings

    from simulator import Throttling, simulated_aws, start_server

    with simulated_aws() as simulator:
        server = None
        if args.simulator == "thread":
            server, settings.AWS_ENDPOINT_URL = start_server()

        def seed(places: list[Place], n: int) -> None:
            for account, region in places:
                for i in range(n):
                    simulator.create_connection(
                        region=region, account_id=account, name=f"site-{i:04d}"
                    )
            # Throttling from here on, with full buckets.
            simulator.configure(throttling=Throttling().scaled(args.scale))

        try:
            yield simulator.calls, seed
        finally:
            if server is not None:
                server.stop()


# --------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------


def scope_floor(reads: int, args: argparse.Namespace) -> float:
    """The limiter's floor for one scope making ``reads`` reads (see the docstring)."""
    burst = max(1.0, READ_BURST * args.scale * args.share)
    refill = READ_REFILL * args.scale * args.share
    return max(0.0, (reads - burst) / refill)


def run_floor(reads: list[int], workers: int, args: argparse.Namespace) -> float:
    """The floor of a run: the scopes' floors dealt in order to the first free worker."""
    finish = [0.0] * max(1, min(workers, len(reads)))
    for n in reads:
        free = finish.index(min(finish))
        finish[free] += scope_floor(n, args)
    return max(finish)


def sync_once(calls: Calls, workers: int, args: argparse.Namespace, **scope: str) -> dict:
    """One ``run_sync`` (of every scope, or the one named), timed and counted."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from maintenance.sync import run_sync

    before = {"calls": calls(), "throttled": calls(outcome="throttled")}
    # Django keeps the last 9,000 queries only: keep them all, and count this run's.
    connection.queries_log = deque()
    started = time.monotonic()
    # Every query of a sync is made on this thread (the pools only call AWS).
    with CaptureQueriesContext(connection) as queries:
        sync_run = run_sync(**scope)
    elapsed = time.monotonic() - started

    results = list(sync_run.results.order_by("pk"))
    bad = [r for r in results if r.failed or r.errors]
    if bad:
        raise SystemExit(f"the sync did not go through: {bad[0].errors[:3]}")
    if any(r.tunnels != 2 * args.connections for r in results):
        raise SystemExit("a scope did not read all its tunnels")
    reads = [r.api_calls for r in results]
    floor = run_floor(reads, workers, args)
    return {
        "scopes": len(results),
        "workers": max(1, min(workers, len(results))),
        "largest": max(reads),
        "elapsed": elapsed,
        "floor": floor,
        "ratio": elapsed / floor if floor > 0 else float("nan"),
        "calls": calls() - before["calls"],
        "throttled": calls(outcome="throttled") - before["throttled"],
        "queries": len(queries),
    }


def measure(args: argparse.Namespace) -> list[tuple[str, dict]]:
    from maintenance import aws
    from maintenance.models import AwsAccount

    accounts, regions = args.scopes or (1, 1)
    names = [f"bench-{a + 1}" for a in range(accounts)]
    places = [(account_id(a), region) for a in range(accounts) for region in REGIONS[:regions]]
    runner = simulator_process if args.simulator == "process" else simulator_here
    with runner(args) as (calls, seed):
        aws.reset_clients()
        seed(places, args.connections)
        for a, name in enumerate(names):
            AwsAccount.objects.create(
                name=name,
                account_id=account_id(a),
                role_arn=role_arn(account_id(a)),
                regions=list(REGIONS[:regions]),
            )
        if args.scopes is None:
            return [("1 scope", sync_once(calls, 1, args))]
        rows = [("1 scope", sync_once(calls, 1, args, account_name=names[0], region=REGIONS[0]))]
        for label in (f"{accounts}x{regions} scopes", f"{accounts}x{regions} scopes, again"):
            # Every bucket (ours and the simulator's) full again before the next run.
            time.sleep(READ_BURST / READ_REFILL + 1)
            rows.append((label, sync_once(calls, args.scope_workers, args)))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--connections", type=int, default=None, help="per scope (1000; 300 with --scopes)"
    )
    parser.add_argument("--scopes", type=parse_scopes, default=None, help="accounts x regions")
    parser.add_argument(
        "--scale", type=float, default=None, help="multiplies EC2's buckets (1; 0.5 with --scopes)"
    )
    parser.add_argument("--share", type=float, default=0.5, help="VPNCTL_AWS_READ_SHARE")
    parser.add_argument(
        "--scope-workers", type=int, default=None, help="SYNC_SCOPE_WORKERS (every scope)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="AWS_SYNC_CONCURRENCY")
    parser.add_argument("--retry-mode", default="standard", choices=["standard", "adaptive"])
    parser.add_argument(
        "--no-pacing", action="store_true", help="turn vpnctl's client-side bucket off"
    )
    parser.add_argument(
        "--simulator", default="process", choices=["process", "thread", "in-process"]
    )
    args = parser.parse_args()
    if args.scale is None:
        args.scale = 1.0 if args.scopes is None else 0.5
    if args.scale <= 0:
        parser.error("--scale must be above 0")
    if not 0 < args.share <= 1:
        parser.error("--share must be above 0 and at most 1")
    if args.connections is None:
        args.connections = 1000 if args.scopes is None else 300
    accounts, regions = args.scopes or (1, 1)
    if args.scope_workers is None:
        args.scope_workers = accounts * regions
    if args.scope_workers < 1:
        parser.error("--scope-workers must be at least 1")

    with tempfile.TemporaryDirectory(prefix="vpnctl-bench-") as workdir:
        configure_django(args, workdir)
        rows = measure(args)

    burst, refill = READ_BURST * args.scale, READ_REFILL * args.scale
    print(
        f"sync of {args.connections} connections ({2 * args.connections} tunnels) per scope; "
        f"EC2 read bucket {burst:g} burst, {refill:g}/s (scale {args.scale:g}), "
        f"vpnctl's share {args.share:g}: {max(1.0, burst * args.share):g} burst, "
        f"{refill * args.share:g}/s; simulator: {args.simulator}; "
        f"concurrency {args.concurrency}; retry mode {args.retry_mode}; "
        f"client-side pacing {'off' if args.no_pacing else 'on'}"
    )
    header = ("run", "workers", "elapsed", "floor", "ratio", "AWS calls", "throttled", "DB queries")

    def floor(n: dict) -> str:
        if n["workers"] < n["scopes"]:
            return f"{n['floor']:.1f} s ({n['scopes']} scopes, {n['workers']} at a time)"
        # The largest scope's reads, less the share's burst, over the share's refill.
        largest, share_burst = n["largest"], max(1.0, burst * args.share)
        return f"({largest} - {share_burst:g}) / {refill * args.share:g} = {n['floor']:.1f} s"

    table = [
        (
            label,
            str(n["workers"]),
            f"{n['elapsed']:.1f} s",
            floor(n),
            f"{n['ratio']:.3f}",
            f"{n['calls']:,}",
            f"{n['throttled']:,}",
            f"{n['queries']:,}",
        )
        for label, n in rows
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
