"""The reading half of a sync: the scopes' connections and tunnel statuses from AWS.

No database here. Two levels of threads, both only calling AWS:

- ``read_scopes`` reads up to ``settings.SYNC_SCOPE_WORKERS`` scopes (account and region)
  at once: each has its own EC2 token bucket, so one scope waiting for its bucket need not
  hold the others up. It hands each scope's read to a callback on the *calling* thread as
  soon as it is done, where sync.py compares and writes it; so every query and every write
  stays on that one thread and its one connection (the pool never queries, and SQLite's
  single writer never sees two writes of one sync compete).
- ``fetch`` reads one scope, its status calls on a pool of ``settings.AWS_SYNC_CONCURRENCY``
  threads, with per-item errors recorded rather than raised.

At most ``SYNC_SCOPE_WORKERS × AWS_SYNC_CONCURRENCY`` threads call AWS during a sync; the
rate is the buckets' (maintenance/aws/limiter.py), not the threads'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from . import aws
from .choices import ConnectionState


@dataclass
class Fetched:
    """Everything one scope's AWS reads returned."""

    connections: list[aws.ConnectionInfo] = field(default_factory=list)
    statuses: dict[tuple[str, str], aws.ReplacementStatus] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    # Connections we learnt nothing reliable about this time: never marked gone for it.
    untrusted: set[str] = field(default_factory=set)
    api_calls: int = 0


# At most this many errors are stored on a SyncResult (a region where every status call
# fails would otherwise store thousands of identical lines).
MAX_STORED_ERRORS = 100


def error_entry(
    item: str, message: str, code: str = "", request_id: str = "", action: str = ""
) -> dict[str, str]:
    """One entry of SyncResult.errors: what was skipped and what AWS (or we) said."""
    entry = {"item": item, "message": message}
    for key, value in (("code", code), ("action", action), ("request_id", request_id)):
        if value:
            entry[key] = value
    return entry


def capped(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(errors) <= MAX_STORED_ERRORS:
        return errors
    dropped = len(errors) - MAX_STORED_ERRORS
    return [*errors[:MAX_STORED_ERRORS], error_entry("", f"... and {dropped} more errors.")]


def fetch(account: Any, region: str, connection_ids: list[str] | None = None) -> Fetched:
    """Read a scope's connections, then every live tunnel's replacement status.

    Raises an AwsError when the scope cannot be read at all (the connection list fails, or
    the credentials stop working half-way); per-tunnel failures are recorded instead.
    """
    fetched = Fetched()
    fetched.api_calls += 1
    connections, item_errors = aws.list_connections(account, region, connection_ids)
    fetched.connections = connections
    for item_error in item_errors:
        fetched.errors.append(
            error_entry(
                item_error.item,
                item_error.message,
                "MalformedAnswer",
                action="DescribeVpnConnections",
            )
        )
        fetched.untrusted.add(item_error.item)

    wanted = [
        (connection.vpn_connection_id, tunnel.outside_ip)
        for connection in connections
        if connection.state != ConnectionState.DELETED
        for tunnel in connection.tunnels
    ]
    if not wanted:
        return fetched
    workers = max(1, min(int(settings.AWS_SYNC_CONCURRENCY), len(wanted)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vpnctl-sync") as pool:
        futures = {
            pool.submit(aws.get_replacement_status, account, region, connection_id, ip): (
                connection_id,
                ip,
            )
            for connection_id, ip in wanted
        }
        for future in as_completed(futures):
            connection_id, ip = futures[future]
            fetched.api_calls += 1
            try:
                fetched.statuses[connection_id, ip] = future.result()
            except aws.AwsAuthError:
                # The credentials stopped working: every further call would fail the same
                # way, so stop asking and fail the scope.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            except aws.AwsError as exc:
                fetched.errors.append(
                    error_entry(
                        f"{connection_id} {ip}",
                        exc.message,
                        exc.code,
                        exc.request_id,
                        exc.action,
                    )
                )
    return fetched


# --------------------------------------------------------------------------------------
# Many scopes at once
# --------------------------------------------------------------------------------------


@dataclass
class ScopeRead:
    """What reading one scope gave: its answers, or (``error``) what stopped it."""

    started_at: datetime
    fetched: Fetched = field(default_factory=Fetched)
    error: Exception | None = None


def read_scope(account: Any, region: str) -> ScopeRead:
    """Read one scope (``fetch``); an error is returned for the caller to record, never raised."""
    started_at = timezone.now()
    try:
        return ScopeRead(started_at, fetched=fetch(account, region))
    except Exception as exc:  # noqa: BLE001 - the caller records it as the scope's failure
        return ScopeRead(started_at, error=exc)


def _read_on_pool(account: Any, region: str) -> ScopeRead:
    try:
        return read_scope(account, region)
    finally:
        # Nothing here queries; should something ever do, the connection it opened is this
        # thread's own: close it now rather than leave it open for the thread's lifetime.
        connections.close_all()


def read_scopes(pairs: Sequence[tuple[Any, str]], record: Callable[[int, ScopeRead], None]) -> None:
    """Read every (account, region); call ``record(index, read)`` on this thread for each.

    Up to ``settings.SYNC_SCOPE_WORKERS`` scopes are read at once and recorded in the order
    they finish; with 1 (or one scope) each is read and recorded before the next is read,
    on this thread. A scope that fails is recorded like the others and stops none of them.
    If ``record`` raises, the scopes not started yet are dropped, the running ones are
    waited for, and the exception goes to the caller.
    """
    workers = max(1, min(int(settings.SYNC_SCOPE_WORKERS), len(pairs)))
    if workers == 1:
        for index, (account, region) in enumerate(pairs):
            record(index, read_scope(account, region))
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vpnctl-scope")
    try:
        futures = {
            pool.submit(_read_on_pool, account, region): index
            for index, (account, region) in enumerate(pairs)
        }
        for future in as_completed(futures):
            record(futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
