"""The reading half of a sync: one scope's connections and tunnel statuses from AWS.

No database here: ``fetch`` calls AWS on a small thread pool
(``settings.AWS_SYNC_CONCURRENCY``) and returns what it read, with per-item errors
recorded rather than raised; sync.py compares and writes on the calling thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

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
