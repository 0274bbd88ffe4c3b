"""How long from an approval to the AWS call, with a real django-q2 cluster.

    .venv/bin/python bench/queue_latency.py [--requests 50] [--workers N] [--broker orm|redis|both]

Each run sets up a scratch database: an SQLite file, or with DATABASE_URL a new database on
that PostgreSQL server (dropped afterwards; the database the URL names is left alone). It
serves the simulated AWS on a loopback port, makes N connections with pending maintenance
and one request each, starts ``manage.py qcluster`` with the project's default cluster
settings, approves all requests at once, and reads from the simulated AWS's own call log
when each ``ReplaceVpnTunnel`` arrived. Prints p50 / p95 / max of approval → AWS call.

``--broker redis`` queues through Redis (``VPNCTL_Q_REDIS_URL``) in the database that
``--redis-url`` names, which nothing else may use: a run refuses one that holds other data,
and empties it before and after. ``--broker both`` runs the ORM broker, then Redis, and
prints one table. Exits 1 if a change was not sent to AWS exactly once, or did not arrive
within two minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BROKERS = ("orm", "redis")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_OWNER_KEY = "vpnctl-bench:owner"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None, help="default: the project's")
    parser.add_argument("--broker", choices=(*BROKERS, "both"), default="orm")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="an empty database")
    parser.add_argument("--run", choices=BROKERS, help=argparse.SUPPRESS)  # one run, as JSON
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.run, args)))
        return

    brokers = BROKERS if args.broker == "both" else (args.broker,)
    results = []
    for broker in brokers:
        command = [sys.executable, __file__, "--run", broker, "--requests", str(args.requests)]
        command += ["--redis-url", args.redis_url]
        command += ["--workers", str(args.workers)] if args.workers else []
        child = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
        if child.returncode != 0:
            raise SystemExit(f"the {broker} run failed (exit {child.returncode})")
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))

    first = results[0]
    print(
        f"\napproval → AWS call, {first['requests']} requests approved at once, "
        f"qcluster with {first['workers']} workers"
    )
    print("| database | broker | p50 | p95 | max | calls |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['database']} | {r['broker']} | {r['p50']:.2f} s | {r['p95']:.2f} s "
            f"| {r['max']:.2f} s | {r['calls']} |"
        )
    for r in results:
        print(f"{r['broker']}: target p95 ≤ 2 s —", "met" if r["p95"] <= 2 else "NOT met")


def run(broker: str, args: argparse.Namespace) -> dict:
    """One run with one broker, in this process; the stages go to stderr."""
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
    os.environ.pop("VPNCTL_Q_REDIS_URL", None)
    drop_database = scratch_postgres() if os.environ.get("DATABASE_URL") else None
    redis = None
    if broker == "redis":
        redis = own_redis_database(args.redis_url)
        os.environ["VPNCTL_Q_REDIS_URL"] = args.redis_url
    try:
        return measure(broker, args.requests)
    finally:
        if redis is not None:
            redis.flushdb()
        if drop_database is not None:
            drop_database()
        shutil.rmtree(scratch, ignore_errors=True)


def scratch_postgres():
    """Point DATABASE_URL at a new database on the same server; returns what drops it."""
    import dj_database_url
    import psycopg

    server = dj_database_url.parse(os.environ["DATABASE_URL"])
    name = f"vpnctl_bench_{uuid.uuid4().hex[:8]}"
    params = {
        "host": server["HOST"],
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
        "dbname": server["NAME"] or "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    user = server["USER"] + (f":{server['PASSWORD']}" if server["PASSWORD"] else "")
    os.environ["DATABASE_URL"] = f"postgres://{user}@{params['host']}:{params['port']}/{name}"

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return drop


def own_redis_database(url: str):
    """The Redis database of this run, emptied. Refused when another run holds it, or when
    it holds anything but what a benchmark run leaves (django-q2's keys), so that nobody's
    data is lost."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    if not client.set(REDIS_OWNER_KEY, os.getpid(), nx=True, ex=300):
        raise SystemExit(f"{url} is in use by another benchmark run; pass another --redis-url")
    ours = (b"django_q:", REDIS_OWNER_KEY.encode())
    foreign = [key for key in client.scan_iter(count=1000) if not key.startswith(ours)]
    if foreign:
        client.delete(REDIS_OWNER_KEY)
        raise SystemExit(f"{url} holds other data ({foreign[:3]}...); pass an empty database")
    client.flushdb()  # a killed run's tasks, if any
    client.set(REDIS_OWNER_KEY, os.getpid(), ex=300)
    return client


def measure(broker: str, count: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnctl.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from maintenance import sync
    from maintenance.choices import ChangeKind
    from maintenance.models import AwsAccount, ChangeRequest, Execution, Tunnel
    from simulator import SIMULATOR, Timings, TunnelSpec, start_server

    call_command("migrate", verbosity=0)
    server, url = start_server()
    settings.AWS_ENDPOINT_URL = url
    os.environ["VPNCTL_AWS_ENDPOINT_URL"] = url
    SIMULATOR.configure(timings=Timings(replace_down_seconds=5, modify_seconds=3))

    AwsAccount.objects.create(name="default", account_id="123456789012", regions=["us-east-1"])
    deadline = timezone.now() + timedelta(days=10)
    first_ips = []
    for i in range(count):
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
        time.sleep(1)  # a second call, if any, would come now
        replaced = [r for r in SIMULATOR.call_log if r.action == "ReplaceVpnTunnel"]
    finally:
        # SIGTERM to qcluster itself: it stops its processes. Sent to all of them at once,
        # it stops none (checked with django-q2 1.11.1).
        os.kill(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait(timeout=10)
        server.stop()

    sent = Counter(record.params.get("VpnTunnelOutsideIpAddress") for record in replaced)
    if sent != Counter(first_ips):
        raise SystemExit(f"not exactly one ReplaceVpnTunnel per change: {dict(sent)}")
    arrived = {record.params.get("VpnTunnelOutsideIpAddress"): record.at for record in replaced}

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
        print(
            f"{broker}: {name}: p50 {statistics.median(values):.2f} s, max {values[-1]:.2f} s",
            file=sys.stderr,
        )
    latencies = sorted((arrived[ip] - approved_at[ip]).total_seconds() for ip in first_ips)
    connection.close()
    return {
        "database": "PostgreSQL" if connection.vendor == "postgresql" else "SQLite",
        "broker": {"orm": "ORM (the database)", "redis": "Redis"}[broker],
        "requests": len(latencies),
        "workers": settings.Q_CLUSTER["workers"],
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "max": latencies[-1],
        "calls": len(replaced),
    }


if __name__ == "__main__":
    main()
