"""Does the audit export stream with flat memory? 100,000 then 1,000,000 events.

    .venv/bin/python bench/export.py [--sizes 100000,1000000] [--formats csv,jsonl]

Sets up a throwaway demo-mode vpnctl (a SQLite file in a temporary directory, or
DATABASE_URL if set, whose tables it migrates), writes a valid hash chain of audit events
fast (raw bulk INSERTs of rows hashed here exactly as AuditEvent.compute_hash() does, the
chain head set to match), then downloads the whole log through the real view
(``maintenance:audit_export``, Django's test Client logged in as an auditor), reading
``response.streaming_content`` and throwing it away.

How memory is measured: each export runs in a FRESH child process (this script with
``--child``), which logs in, warms up with one tiny export, resets the kernel's peak-RSS
mark (``/proc/self/clear_refs``), streams the whole log, then reads the peak (``VmHWM``).
RSS counts everything the process holds, including what tracemalloc cannot see (SQLite's
page cache and fetch buffers, psycopg's, the C side of json/csv), and tracing every
allocation would slow the export several times over; a fresh process per run keeps the
generation of a million rows (done in the parent) out of the number. "peak MB" is the
child's peak RSS during the export; "growth MB" is how much the export added to the
warmed-up process. Flat memory: the 1M peak is at most 1.2 times the 100k peak.

Not part of the test suite (pytest collects tests/ only). About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDITOR = "bench-auditor"
BATCH = 20_000


def configure_django(workdir: str | None, migrate: bool) -> None:
    os.environ.update(
        {
            "VPNCTL_MODE": "demo",
            "DJANGO_SETTINGS_MODULE": "vpnctl.settings",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",  # no query log growing during the export
        }
    )
    if workdir and not os.environ.get("DATABASE_URL"):
        os.environ["VPNCTL_SQLITE_PATH"] = str(Path(workdir) / "bench.sqlite3")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


# --------------------------------------------------------------------------------------
# Writing the chain fast
# --------------------------------------------------------------------------------------


def _canonical(value) -> str:
    # maintenance.models.canonical_json, repeated here so its cost is counted once per row.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def setup_inventory() -> list[tuple[int, int, int]]:
    """An account, 50 connections, 100 tunnels, an auditor: (account, connection, tunnel)."""
    from django.contrib.auth.models import Group, Permission, User
    from django.utils import timezone

    from maintenance import roles
    from maintenance.models import AwsAccount, Tunnel, VpnConnection

    roles.sync_roles(Group, Permission)
    user, _ = User.objects.get_or_create(username=AUDITOR)
    user.groups.add(Group.objects.get(name=roles.AUDITOR))
    account, _ = AwsAccount.objects.get_or_create(
        name="bench", defaults={"account_id": "123456789012", "regions": ["ap-northeast-1"]}
    )
    now = timezone.now()
    targets = []
    for n in range(50):
        connection, _ = VpnConnection.objects.get_or_create(
            account=account,
            region="ap-northeast-1",
            vpn_connection_id=f"vpn-{n:017x}",
            defaults={"state": "available", "first_seen": now, "last_seen": now},
        )
        for i in range(2):
            tunnel, _ = Tunnel.objects.get_or_create(
                connection=connection, outside_ip=f"198.51.100.{2 * n + i + 1}"
            )
            targets.append((account.pk, connection.pk, tunnel.pk))
    return targets


def append_events(n: int, targets: list[tuple[int, int, int]]) -> float:
    """Append n chained events in raw executemany batches; returns seconds taken."""
    from django.db import connection, transaction

    from maintenance.choices import AuditAction
    from maintenance.models import GENESIS_HASH, AuditChainHead, AuditEvent

    started = time.perf_counter()
    if connection.vendor == "sqlite":
        # A throwaway file: no fsync per batch, and a page cache big enough for the two
        # unique indexes on random hashes (hash, prev_hash), whose inserts land anywhere
        # in their B-trees: with SQLite's default 2 MB cache, a million rows take 10 min.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -262144")  # 256 MiB, this process only
    head, _ = AuditChainHead.objects.get_or_create(pk=1)
    prev, seq = head.last_hash or GENESIS_HASH, head.count
    at_field = AuditEvent._meta.get_field("at")
    details_field = AuditEvent._meta.get_field("details")
    table = AuditEvent._meta.db_table
    columns = (
        "seq, at, actor_id, actor_name, actor_kind, action, account_id, connection_id, "
        "tunnel_id, change_request_id, message, details, prev_hash, hash"
    )
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 14)})"  # noqa: S608
    base = datetime(2026, 1, 1, tzinfo=UTC)
    actions = [AuditAction.MAINTENANCE_APPLIED_BY_AWS, AuditAction.CONNECTION_DISCOVERED]
    end = seq + n
    while seq < end:
        first, last = seq + 1, min(seq + BATCH, end)
        rows = []
        for seq in range(first, last + 1):
            account, conn, tunnel = targets[seq % len(targets)]
            at = base + timedelta(seconds=seq)
            action = actions[seq % 2]
            kind = "aws" if seq % 2 == 0 else "system"
            message = f"event {seq}: tunnel 198.51.100.{seq % 100} seen by sync"
            details = {
                "before": {"pending_maintenance": "Available", "status": "UP"},
                "after": {"pending_maintenance": "None", "status": "UP", "seq": seq},
            }
            # Exactly AuditEvent.hashed_fields(), in the same canonical JSON.
            hashed = {
                "seq": seq,
                "at": at.isoformat(timespec="microseconds"),
                "actor_name": kind,
                "actor_kind": kind,
                "action": str(action),
                "account": account,
                "connection": conn,
                "tunnel": tunnel,
                "change_request": None,
                "message": message,
                "details": details,
                "prev_hash": prev,
            }
            digest = hashlib.sha256(_canonical(hashed).encode()).hexdigest()
            rows.append(
                (
                    seq,
                    at_field.get_db_prep_value(at, connection),
                    None,
                    kind,
                    kind,
                    str(action),
                    account,
                    conn,
                    tunnel,
                    None,
                    message,
                    details_field.get_db_prep_value(details, connection),
                    prev,
                    digest,
                )
            )
            prev = digest
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            # AuditQuerySet refuses update() on events, not on the head.
            AuditChainHead.objects.filter(pk=1).update(last_hash=prev, count=seq)
    return time.perf_counter() - started


def check_hashes_match_the_model() -> None:
    """The rows hashed here must hash the same through the model (first and last)."""
    from maintenance.models import AuditEvent

    for event in (AuditEvent.objects.order_by("seq").first(), AuditEvent.objects.last()):
        if event.compute_hash() != event.hash:
            raise SystemExit(f"bench bug: event #{event.seq} hashes differently in the model")


# --------------------------------------------------------------------------------------
# One export, in a fresh process
# --------------------------------------------------------------------------------------


def vm_kb(name: str) -> int:
    """VmRSS (now) or VmHWM (peak since exec or the last reset) from /proc, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise SystemExit(f"{name} not in /proc/self/status: Linux only")


def reset_peak() -> None:
    # "5" resets this process's peak RSS (VmHWM) to its current RSS (Linux 4.0+).
    # getrusage's ru_maxrss cannot be reset, and survives exec: it would report the
    # parent's peak from writing a million rows.
    Path("/proc/self/clear_refs").write_text("5")


def child(fmt: str) -> None:
    """Log in, warm up, stream the whole log once; print JSON with time and memory."""
    configure_django(None, migrate=False)
    import gc

    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    setup_test_environment()  # lets the test Client's "testserver" host in
    client = Client()
    client.force_login(User.objects.get(username=AUDITOR))
    url = reverse("maintenance:audit_export", args=[fmt])
    for _chunk in client.get(url, {"request": 999_999_999}).streaming_content:
        pass  # warm-up: imports, URL resolving, template-free view path, a tiny query
    gc.collect()
    reset_peak()
    before = vm_kb("VmRSS")
    started = time.perf_counter()
    response = client.get(url)
    assert response.streaming, "the export must stream"
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += 1
    seconds = time.perf_counter() - started
    peak = vm_kb("VmHWM")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_kb": peak,
                "before_kb": before,
                "bytes": size,
                "chunks": lines,
            }
        )
    )


def run_child(fmt: str, env: dict[str, str]) -> dict:
    out = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child", fmt],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--formats", default="csv,jsonl")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory(prefix="vpnctl-bench-export-") as workdir:
        configure_django(workdir, migrate=True)
        from maintenance.models import AuditEvent

        if AuditEvent.objects.exists():
            raise SystemExit("the database already holds audit events: use an empty one")
        targets = setup_inventory()
        env = dict(os.environ)
        results = []
        have = 0
        for size in sizes:
            seconds = append_events(size - have, targets)
            have = size
            check_hashes_match_the_model()
            print(f"wrote {size:,} chained events in {seconds:.1f} s", flush=True)
            if size <= 100_000:
                started = time.perf_counter()
                checked, _bad, why = AuditEvent.verify_chain()
                took = time.perf_counter() - started
                if why or checked != size:
                    raise SystemExit(f"chain invalid: {why} ({checked} checked)")
                print(
                    f"verify_chain: {checked:,} events intact in {took:.1f} s "
                    f"({took / checked * 1e6:.0f} us per event)",
                    flush=True,
                )
            for fmt in formats:
                result = run_child(fmt, env)
                results.append((size, fmt, result))
                print(
                    f"  exported {size:,} as {fmt}: {result['seconds']:.1f} s, "
                    f"{result['bytes'] / 1e6:.0f} MB of output",
                    flush=True,
                )

    print()
    print(
        f"{'size':>10}  {'format':<6}  {'seconds':>8}  {'rows/s':>8}  {'peak MB':>8}  "
        f"{'growth MB':>9}"
    )
    for size, fmt, r in results:
        print(
            f"{size:>10,}  {fmt:<6}  {r['seconds']:>8.1f}  {size / r['seconds']:>8,.0f}  "
            f"{r['peak_kb'] / 1024:>8.1f}  {(r['peak_kb'] - r['before_kb']) / 1024:>9.1f}"
        )
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for fmt in formats:
            peaks = {s: r["peak_kb"] for s, f, r in results if f == fmt}
            ratio = peaks[big] / peaks[small]
            verdict = "OK" if ratio <= 1.2 else "NOT FLAT"
            print(f"peak ratio {fmt} {big:,}/{small:,}: {ratio:.2f} (target <= 1.2) {verdict}")


if __name__ == "__main__":
    main()
