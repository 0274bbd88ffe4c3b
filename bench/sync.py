"""How close does a big inventory sync run to EC2's throttling floor?

    .venv/bin/python bench/sync.py [--connections 1000] [--scale F] [--concurrency N]
                                   [--retry-mode standard|adaptive] [--no-pacing]
                                   [--simulator process|thread|in-process]

Sets up the simulated AWS with N connections (2N tunnels) in one account and region, with
throttling ON: EC2's buckets (reads 100 burst and 20 per second, writes 50 and 5) multiplied
by F, and vpnctl's client-side buckets set to the same numbers. Then runs ``run_sync`` once
against a fresh database (a temporary SQLite file, or DATABASE_URL, whose tables it
migrates) and prints the elapsed time against the floor that EC2's refill rate sets for the
replacement-status calls, one per tunnel:

    floor = (status calls - burst) / refill

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
to 200 calls per second: past ``--scale 5`` or so the simulator, not EC2's bucket, is what
the sync waits for, and the ratio says more about moto than about vpnctl.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
READ_BURST, READ_REFILL = 100, 20  # EC2's read bucket, before scaling
WRITE_BURST, WRITE_REFILL = 50, 5
CONTROL_PATH = "/moto-api/vpnctl"  # simulator.CONTROL_PATH (ROOT is not on sys.path yet)


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
# The simulated AWS, three ways. Each yields (calls(action, outcome) -> int, seed(n)).
# --------------------------------------------------------------------------------------

Calls = Callable[..., int]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def simulator_process(args: argparse.Namespace) -> Iterator[tuple[Calls, Callable[[int], None]]]:
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

        def seed(n: int) -> None:
            import boto3

            # Plain moto calls (not throttled by the simulator, which leaves its buckets
            # full for the sync).
            ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)
            vgw = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
            cgw = ec2.create_customer_gateway(Type="ipsec.1", PublicIp="203.0.113.1", BgpAsn=65000)
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
def simulator_here(args: argparse.Namespace) -> Iterator[tuple[Calls, Callable[[int], None]]]:
    """moto in this process: behind a server thread (``thread``) or ``mock_aws`` alone."""
    from django.conf import settings

    from simulator import Throttling, simulated_aws, start_server

    with simulated_aws() as simulator:
        server = None
        if args.simulator == "thread":
            server, settings.AWS_ENDPOINT_URL = start_server()

        def seed(n: int) -> None:
            for i in range(n):
                simulator.create_connection(region=REGION, name=f"site-{i:04d}")
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


def measure(args: argparse.Namespace) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from maintenance import aws
    from maintenance.models import AwsAccount, Tunnel
    from maintenance.sync import run_sync
    from simulator import DEFAULT_ACCOUNT_ID

    runner = simulator_process if args.simulator == "process" else simulator_here
    with runner(args) as (calls, seed):
        aws.reset_clients()
        seed(args.connections)
        AwsAccount.objects.create(name="bench", account_id=DEFAULT_ACCOUNT_ID, regions=[REGION])

        started = time.monotonic()
        with CaptureQueriesContext(connection) as queries:
            sync_run = run_sync()
        elapsed = time.monotonic() - started

        result = sync_run.results.get()
        if result.failed or result.errors:
            raise SystemExit(f"the sync did not go through: {result.errors[:3]}")
        assert Tunnel.objects.exclude(synced_at=None).count() == 2 * args.connections
        status_calls = calls("GetVpnTunnelReplacementStatus", outcome="ok")
        burst, refill = READ_BURST * args.scale, READ_REFILL * args.scale
        floor = (status_calls - burst) / refill
        return {
            "elapsed": elapsed,
            "floor": floor,
            "ratio": elapsed / floor if floor > 0 else float("nan"),
            "calls": calls(),
            "status_calls": status_calls,
            "throttled": calls(outcome="throttled"),
            "queries": len(queries),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies EC2's buckets")
    parser.add_argument("--concurrency", type=int, default=8, help="AWS_SYNC_CONCURRENCY")
    parser.add_argument("--retry-mode", default="standard", choices=["standard", "adaptive"])
    parser.add_argument(
        "--no-pacing", action="store_true", help="turn vpnctl's client-side bucket off"
    )
    parser.add_argument(
        "--simulator", default="process", choices=["process", "thread", "in-process"]
    )
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be above 0")

    with tempfile.TemporaryDirectory(prefix="vpnctl-bench-") as workdir:
        configure_django(args, workdir)
        numbers = measure(args)

    burst, refill = READ_BURST * args.scale, READ_REFILL * args.scale
    print(
        f"sync of {args.connections} connections ({2 * args.connections} tunnels); "
        f"EC2 read bucket {burst:g} burst, {refill:g}/s (scale {args.scale:g}); "
        f"simulator: {args.simulator}; concurrency {args.concurrency}; "
        f"retry mode {args.retry_mode}; client-side pacing {'off' if args.no_pacing else 'on'}"
    )
    rows = [
        ("elapsed", f"{numbers['elapsed']:.2f} s"),
        ("floor = (status calls - burst) / refill", f"{numbers['floor']:.2f} s"),
        ("ratio elapsed / floor", f"{numbers['ratio']:.3f}"),
        ("AWS calls made (every answer)", f"{numbers['calls']}"),
        ("  replacement-status calls answered", f"{numbers['status_calls']}"),
        ("throttled answers", f"{numbers['throttled']}"),
        ("DB queries", f"{numbers['queries']}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value:>10}")


if __name__ == "__main__":
    main()
