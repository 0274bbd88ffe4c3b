"""How long from an approval to the AWS call, with a real django-q2 cluster.

    .venv/bin/python bench/queue_latency.py [--requests 50] [--workers N]

Sets up a scratch SQLite database (or uses DATABASE_URL), the simulated AWS served on a
loopback port, N connections with pending maintenance and one approved-ready request
each; starts ``manage.py qcluster`` with the project's default cluster settings; approves
all requests at once; and reads from the simulated AWS's own call log when each
``ReplaceVpnTunnel`` arrived. Prints p50 / p95 / max of approval → AWS call.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None, help="default: the project's")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="vpnctl-bench-"))
    env = {
        "VPNCTL_MODE": "demo",
        "VPNCTL_SQLITE_PATH": str(scratch / "bench.sqlite3"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LOG_LEVEL": "WARNING",
    }
    if args.workers:
        env["VPNCTL_Q_WORKERS"] = str(args.workers)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnctl.settings")

    import django

    django.setup()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.utils import timezone

    from maintenance import sync
    from maintenance.choices import ChangeKind
    from maintenance.models import AwsAccount, ChangeRequest, Tunnel
    from simulator import SIMULATOR, Timings, TunnelSpec, start_server

    call_command("migrate", verbosity=0)
    server, url = start_server()
    settings.AWS_ENDPOINT_URL = url
    os.environ["VPNCTL_AWS_ENDPOINT_URL"] = url
    SIMULATOR.configure(timings=Timings(replace_down_seconds=5, modify_seconds=3))

    AwsAccount.objects.create(name="default", account_id="123456789012", regions=["us-east-1"])
    deadline = timezone.now() + timedelta(days=10)
    first_ips = []
    for i in range(args.requests):
        connection_id = SIMULATOR.create_connection(
            region="us-east-1",
            name=f"bench-{i}",
            tunnels=[
                TunnelSpec(pending_maintenance="Available", auto_apply_after=deadline),
                TunnelSpec(),
            ],
        )
        first_ips.append(SIMULATOR.tunnel_ips(connection_id)[0])
    sync.run_sync()

    requester = User.objects.create_user("bench-requester", "r@example.com", "x")
    requester.groups.add(Group.objects.get(name="requester"))
    approver = User.objects.create_user("bench-approver", "a@example.com", "x")
    approver.groups.add(Group.objects.get(name="approver"))
    requests = [
        ChangeRequest.submit(
            user=requester,
            tunnel=Tunnel.objects.get(outside_ip=ip),
            kind=ChangeKind.REPLACE,
            reason="bench",
            window_start=None,
            window_end=timezone.now() + timedelta(hours=2),
        )
        for ip in first_ips
    ]

    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(4)  # let the cluster's workers come up
        calls_before = SIMULATOR.calls("ReplaceVpnTunnel")
        for request in requests:
            request.approve(user=approver)  # enqueues on commit
        approved_at = {
            r.tunnel.outside_ip: ChangeRequest.objects.get(pk=r.pk).approved_at for r in requests
        }
        deadline_wait = time.monotonic() + 120
        while SIMULATOR.calls("ReplaceVpnTunnel") - calls_before < len(requests):
            if time.monotonic() > deadline_wait:
                raise SystemExit("gave up waiting for the AWS calls")
            time.sleep(0.2)
        arrived = {
            record.params.get("VpnTunnelOutsideIpAddress"): record.at
            for record in SIMULATOR.call_log
            if record.action == "ReplaceVpnTunnel"
        }
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(timeout=10)
        server.stop()

    from maintenance.models import Execution

    stages = {"queue wait (approval → claim)": [], "preflight (claim → call)": []}
    for execution in Execution.objects.select_related("change_request"):
        approved = execution.change_request.approved_at
        stages["queue wait (approval → claim)"].append(
            (execution.claimed_at - approved).total_seconds()
        )
        stages["preflight (claim → call)"].append(
            (execution.calling_aws_at - execution.claimed_at).total_seconds()
        )
    for name, values in stages.items():
        values.sort()
        print(f"{name}: p50 {statistics.median(values):.2f} s, max {values[-1]:.2f} s")
    latencies = sorted((arrived[ip] - approved_at[ip]).total_seconds() for ip in first_ips)
    p50 = statistics.median(latencies)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    workers = settings.Q_CLUSTER["workers"]
    print(f"approval → AWS call, {len(latencies)} requests, qcluster with {workers} workers")
    print(f"{'p50 (s)':>10} {'p95 (s)':>10} {'max (s)':>10} {'calls':>7}")
    print(f"{p50:>10.2f} {p95:>10.2f} {latencies[-1]:>10.2f} {len(arrived):>7}")
    print("target: p95 ≤ 2 s —", "met" if p95 <= 2 else "NOT met")


if __name__ == "__main__":
    main()
