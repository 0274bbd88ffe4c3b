"""The one module that calls AWS: plain dataclasses out, the project's own errors.

Everything else in vpnctl talks to the functions at the bottom of this module. They take an
``AwsAccount`` and a region and hide boto3 entirely:

- **Clients.** One botocore client per (account, region, kind), created once and reused by
  every thread (botocore clients are thread-safe once created). ``read`` clients retry in
  ``settings.AWS_READ_RETRY_MODE`` (``standard`` or ``adaptive``) up to
  ``settings.AWS_READ_MAX_ATTEMPTS`` attempts in all. ``write`` clients (ReplaceVpnTunnel,
  ModifyVpnTunnelOptions) have the SDK's retries switched off: ReplaceVpnTunnel takes no
  client token, so a retry after a timeout or a 5xx could replace a tunnel twice.
- **Credentials.** An account without a role uses the server's own credentials (boto3's
  usual chain). An account with ``role_arn`` is reached through ``sts:AssumeRole`` with
  botocore's ``AssumeRoleCredentialFetcher`` and ``DeferredRefreshableCredentials``, which
  assume the role on first use and again 10 to 15 minutes before the credentials expire.
  Credentials live only in botocore's memory: never logged, stored or put in an error.
- **Throttling.** EC2 throttles each account and region with token buckets. A client-side
  bucket of the same shape (``settings.AWS_READ_RATE`` / ``AWS_READ_BURST``, and the write
  pair) is shared by every caller in the process and paces each HTTP attempt, retries
  included, so a large sync runs at EC2's refill rate instead of bouncing off
  ``RequestLimitExceeded``.
- **Errors.** Every failure becomes an :class:`AwsError` (or a subclass) carrying AWS's error
  code, message and request id. A mutating call whose fate is unknown (timeout, 5xx,
  connection lost after sending) raises :class:`AwsAmbiguousError`: the caller must read the
  replacement status before deciding anything. A throttled mutating call is a definite
  refusal, so it alone is retried here, a few times, before :class:`AwsThrottled`.
- **Endpoint.** ``settings.AWS_ENDPOINT_URL``, when set, points every client (STS included)
  at the simulated AWS.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    UnknownEndpointError,
)
from django.conf import settings

logger = logging.getLogger(__name__)

READ = "read"
WRITE = "write"

ROLE_SESSION_NAME = "vpnctl"

# A throttled mutating call was refused outright, so it is safe to send again; this many
# attempts in all, with jittered exponential backoff between them.
WRITE_THROTTLE_ATTEMPTS = 3
WRITE_THROTTLE_BASE_DELAY = 1.0

# Error codes that mean "slow down": the request was refused, nothing was done.
THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "EC2ThrottledException"}
)
# Error codes that mean the credentials, the role or the account cannot be used here.
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "RegionDisabledException",
    }
)
# Client-side errors raised before anything is sent: a mutating call that fails with one of
# these certainly did nothing in AWS.
_NOT_SENT_ERRORS = (
    ParamValidationError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
    UnknownEndpointError,
)
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


# --------------------------------------------------------------------------------------
# What comes out
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunnelInfo:
    """One tunnel of a connection, from DescribeVpnConnections (options and telemetry)."""

    outside_ip: str
    lifecycle_control: bool
    status: str
    status_message: str
    last_status_change: datetime | None
    accepted_route_count: int | None


@dataclass(frozen=True)
class ConnectionInfo:
    """One Site-to-Site VPN connection as DescribeVpnConnections reports it."""

    vpn_connection_id: str
    state: str
    type: str
    category: str
    customer_gateway_id: str
    vpn_gateway_id: str
    transit_gateway_id: str
    tags: dict[str, str]
    name: str
    static_routes_only: bool
    tunnels: tuple[TunnelInfo, ...]


@dataclass(frozen=True)
class ItemError:
    """An item of an answer that was skipped because it made no sense.

    ``item`` is the connection id when the item had one (so that callers can tell which
    connection they know nothing new about), else the item's position in the answer.
    """

    item: str
    message: str


@dataclass(frozen=True)
class ReplacementStatus:
    """GetVpnTunnelReplacementStatus for one tunnel."""

    vpn_connection_id: str
    outside_ip: str
    pending_maintenance: str  # "Available" or "None", as AWS spells them
    auto_applied_after: datetime | None
    last_applied: datetime | None


@dataclass(frozen=True)
class ActiveTunnelStatus:
    """GetActiveVpnTunnelStatus for one tunnel: evidence before and after a change."""

    provisioning_status: str
    provisioning_status_reason: str
    ike_version: str
    phase1_encryption: str
    phase2_encryption: str
    phase1_integrity: str
    phase2_integrity: str
    phase1_dh_group: int | None
    phase2_dh_group: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CallResult:
    """A mutating call that AWS accepted."""

    request_id: str


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class AwsError(Exception):
    """AWS refused or failed a call. Carries AWS's code, message and request id."""

    def __init__(self, action: str, code: str, message: str, request_id: str = "") -> None:
        self.action = action
        self.code = code
        self.message = _redact(message)
        self.request_id = request_id
        super().__init__(f"{self.code}: {self.message}")

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {
            "action": self.action,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
        }


class AwsThrottled(AwsError):
    """AWS kept answering RequestLimitExceeded after every retry."""


class AwsAmbiguousError(AwsError):
    """A mutating call whose fate is unknown (timeout, 5xx, connection lost).

    AWS may or may not have acted: read the replacement status before deciding anything,
    and never send the call again blindly.
    """


class AwsAuthError(AwsError):
    """The credentials or the assumed role cannot be used (or are not allowed)."""


class AwsMalformedAnswer(AwsError):
    """AWS answered, but the answer lacks a field we need or has the wrong type."""

    def __init__(self, action: str, message: str, request_id: str = "") -> None:
        super().__init__(action, "MalformedAnswer", message, request_id)


# Access key ids, and anything long and base64-like (secret keys, session tokens). Applied to
# every message we keep, so that no credential reaches a log, the database or a page even if
# an endpoint echoes one back.
_SECRET_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b|[A-Za-z0-9/+=]{40,}")


def _redact(text: str) -> str:
    return _SECRET_RE.sub("[redacted]", str(text))


def _from_client_error(exc: ClientError, action: str, *, mutating: bool) -> AwsError:
    """Map a botocore ClientError to our exception classes."""
    error = exc.response.get("Error") or {}
    meta = exc.response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    request_id = str(meta.get("RequestId") or "")
    status = meta.get("HTTPStatusCode")
    if exc.operation_name == "AssumeRole":
        # The role could not be assumed: nothing was sent to EC2.
        return AwsAuthError(action, code, f"AssumeRole failed: {message}", request_id)
    if code in THROTTLE_CODES:
        return AwsThrottled(action, code, message, request_id)
    if code in AUTH_CODES:
        return AwsAuthError(action, code, message, request_id)
    if mutating and (not isinstance(status, int) or status >= 500):
        return AwsAmbiguousError(action, code, message, request_id)
    return AwsError(action, code, message, request_id)


def _from_exception(exc: Exception, action: str, *, mutating: bool) -> AwsError:
    """Map anything a botocore call raised to our exception classes."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        return _from_client_error(exc, action, mutating=mutating)
    code = type(exc).__name__
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return AwsAuthError(action, code, "No usable AWS credentials were found.")
    if isinstance(exc, _NOT_SENT_ERRORS):
        return AwsError(action, code, str(exc))
    if mutating:
        # Timeouts, dropped connections, unparseable answers: the request may have reached
        # AWS and been acted on.
        return AwsAmbiguousError(action, code, str(exc) or code)
    return AwsError(action, code, str(exc) or code)


# --------------------------------------------------------------------------------------
# Client-side rate limiting
# --------------------------------------------------------------------------------------


class TokenBucket:
    """A token bucket shared by every thread calling one account and region.

    Each caller reserves a token under the lock (the count may go negative: that is the
    queue of callers already waiting) and sleeps, outside the lock, until its token is due.
    Callers are therefore served in order, exactly at ``rate`` per second once ``burst`` is
    spent, which is how EC2 refills its own bucket. A rate of 0 or less disables it.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; return how many seconds the caller must wait before using it."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Take a token, sleeping until it is due. Returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


# --------------------------------------------------------------------------------------
# Sessions and clients
# --------------------------------------------------------------------------------------

_lock = threading.RLock()
_sessions: dict[tuple[str, ...], botocore.session.Session] = {}
_clients: dict[tuple[str, ...], BaseClient] = {}
_buckets: dict[tuple[str, ...], TokenBucket] = {}


def reset_clients() -> None:
    """Forget every cached session, client and rate bucket (tests; credential changes)."""
    global _loader
    with _lock:
        _sessions.clear()
        _clients.clear()
        _buckets.clear()
        _loader = None


def _endpoint_url() -> str | None:
    return settings.AWS_ENDPOINT_URL or None


def _account_key(account: Any) -> tuple[str, str, str]:
    return (str(account.account_id), account.role_arn or "", account.external_id or "")


def _config(kind: str) -> Config:
    if kind == READ:
        # total_max_attempts counts the first attempt too (botocore's plain `max_attempts`
        # would count retries only).
        retries = {
            "mode": settings.AWS_READ_RETRY_MODE,
            "total_max_attempts": max(1, int(settings.AWS_READ_MAX_ATTEMPTS)),
        }
    else:
        # ReplaceVpnTunnel has no client token: the SDK must never send it twice.
        retries = {"mode": "standard", "total_max_attempts": 1}
    return Config(
        retries=retries,
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        # Enough pooled connections for the sync's thread pool, so none waits for a socket.
        max_pool_connections=max(10, 2 * int(settings.AWS_SYNC_CONCURRENCY)),
        user_agent_appid="vpnctl",
    )


class _FixedCredentialProvider(CredentialProvider):
    """Hands a session the refreshable assumed-role credentials built for it."""

    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


_loader: Any = None


def _new_session() -> botocore.session.Session:
    """A botocore session sharing one model loader: EC2's models are parsed once per process."""
    global _loader
    session = botocore.session.Session()
    if _loader is None:
        _loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _loader)
    return session


def warm_up(account: Any, region: str) -> None:
    """Build an account's clients for a region now, so the first change does not wait.

    Loading boto3 and EC2's service model takes about a second; a worker does it when it
    starts (see ``maintenance.apps``) instead of while an approved change waits. No AWS
    call is made.
    """
    _client(account, region, READ)
    _client(account, region, WRITE)


def _session(account: Any, region: str) -> botocore.session.Session:
    """The botocore session for an account: one per account, cached (caller holds _lock)."""
    key = (*_account_key(account), _endpoint_url() or "")
    session = _sessions.get(key)
    if session is not None:
        return session
    base = _new_session()
    if not account.role_arn:
        session = base
    else:
        source = base.get_credentials()
        if source is None:
            raise AwsAuthError(
                "AssumeRole", "NoCredentials", "No AWS credentials to assume the role with."
            )
        # STS is called lazily, on first use and before expiry, from whichever thread
        # needs credentials then; the fetcher caches in memory only.
        sts_client = functools.partial(
            base.create_client,
            region_name=region,
            endpoint_url=_endpoint_url(),
            config=_config(READ),
        )
        extra_args = {"RoleSessionName": ROLE_SESSION_NAME}
        if account.external_id:
            extra_args["ExternalId"] = account.external_id
        fetcher = AssumeRoleCredentialFetcher(
            sts_client, source, account.role_arn, extra_args=extra_args
        )
        credentials = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        session = _new_session()
        session.register_component(
            "credential_provider", CredentialResolver([_FixedCredentialProvider(credentials)])
        )
    _sessions[key] = session
    return session


def _bucket(account: Any, region: str, kind: str) -> TokenBucket:
    """The rate bucket of an AWS account, region and kind of call (caller holds _lock).

    Keyed by the AWS account number, not the vpnctl row: EC2 counts per AWS account.
    """
    key = (str(account.account_id), region, kind)
    bucket = _buckets.get(key)
    if bucket is None:
        if kind == READ:
            bucket = TokenBucket(settings.AWS_READ_RATE, settings.AWS_READ_BURST)
        else:
            bucket = TokenBucket(settings.AWS_WRITE_RATE, settings.AWS_WRITE_BURST)
        _buckets[key] = bucket
    return bucket


def _client(account: Any, region: str, kind: str) -> BaseClient:
    """The cached EC2 client for (account, region, kind), created on first use."""
    key = (*_account_key(account), region, kind, _endpoint_url() or "")
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _session(account, region).create_client(
                "ec2", region_name=region, endpoint_url=_endpoint_url(), config=_config(kind)
            )
            bucket = _bucket(account, region, kind)

            def pace(**kwargs: Any) -> None:
                bucket.acquire()

            # before-send fires for every HTTP attempt, retries included; registered first
            # on the most specific name so it runs before anything that answers the request.
            client.meta.events.register_first("before-send.ec2", pace)
            _clients[key] = client
    return client


def _credentials_ready(account: Any, region: str, action: str) -> None:
    """Resolve (assume) the account's credentials now, so that failures are auth errors.

    Called before mutating calls: an STS failure then happens before anything is sent to
    EC2 and cannot be mistaken for an ambiguous failure of the change itself.
    """
    with _lock:
        session = _session(account, region)
    try:
        credentials = session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        credentials.get_frozen_credentials()
    except Exception as exc:  # noqa: BLE001 - every failure here is an auth failure
        raise _auth_error(exc, action) from None


def _auth_error(exc: Exception, action: str) -> AwsError:
    error = _from_exception(exc, action, mutating=False)
    if isinstance(error, AwsAuthError):
        return error
    return AwsAuthError(action, error.code, error.message, error.request_id)


def _read(account: Any, region: str, action: str, **params: Any) -> dict[str, Any]:
    """Make a read call (SDK retries on); return its answer or raise an AwsError."""
    method = _snake(action)
    try:
        client = _client(account, region, READ)
        return getattr(client, method)(**params)
    except AwsError:
        raise
    except (ClientError, BotoCoreError) as exc:
        raise _from_exception(exc, action, mutating=False) from None


def _write(account: Any, region: str, action: str, **params: Any) -> dict[str, Any]:
    """Make a mutating call: no SDK retries; only a throttled refusal is sent again."""
    _credentials_ready(account, region, action)
    client = _client(account, region, WRITE)
    method = getattr(client, _snake(action))
    for attempt in range(1, WRITE_THROTTLE_ATTEMPTS + 1):
        try:
            return method(**params)
        except Exception as exc:  # noqa: BLE001 - after sending, anything is ambiguous
            error = _from_exception(exc, action, mutating=True)
        if not isinstance(error, AwsThrottled) or attempt == WRITE_THROTTLE_ATTEMPTS:
            raise error
        delay = WRITE_THROTTLE_BASE_DELAY * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
        logger.warning(
            "%s throttled (%s), attempt %d of %d; retrying in %.1f s",
            action,
            error.request_id or "no request id",
            attempt,
            WRITE_THROTTLE_ATTEMPTS,
            delay,
        )
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@functools.cache
def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _request_id(answer: dict[str, Any]) -> str:
    return str((answer.get("ResponseMetadata") or {}).get("RequestId") or "")


# --------------------------------------------------------------------------------------
# Parsing answers (never trusting their shape)
# --------------------------------------------------------------------------------------


class _Malformed(Exception):
    """An item of an answer lacks a field or has one of the wrong type."""


def _get_str(item: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise _Malformed(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{key} is not a string")
    return value


def _get_bool(item: dict[str, Any], key: str) -> bool:
    value = item.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Malformed(f"{key} is not a boolean")
    return value


def _get_int(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{key} is not a non-negative integer")
    return value


def _get_datetime(item: dict[str, Any], key: str) -> datetime | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _Malformed(f"{key} is not a timestamp")
    # botocore parses timestamps into aware datetimes; store everything in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _get_dict(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{key} is not an object")
    return value


def _get_list(item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{key} is not a list")
    return value


def _outside_ip(entry: Any, where: str) -> str:
    if not isinstance(entry, dict):
        raise _Malformed(f"an entry of {where} is not an object")
    ip = _get_str(entry, "OutsideIpAddress")
    if not ip:
        raise _Malformed(f"an entry of {where} has no OutsideIpAddress")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise _Malformed(f"{where} names {ip!r}, which is not an IPv4 address") from None
    return ip


def _by_outside_ip(entries: Iterable[Any], where: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        ip = _outside_ip(entry, where)
        if ip in found:
            raise _Malformed(f"{where} names {ip} twice")
        found[ip] = entry
    return found


def _parse_connection(raw: dict[str, Any]) -> ConnectionInfo:
    """One VpnConnections entry → ConnectionInfo; tunnels matched by outside IP.

    TunnelOptions and VgwTelemetry are two lists that need not come in the same order, so
    each telemetry entry is joined to the options entry with the same OutsideIpAddress.
    """
    connection_id = _get_str(raw, "VpnConnectionId", required=True)
    options = _get_dict(raw, "Options")
    tunnel_options = _by_outside_ip(_get_list(options, "TunnelOptions"), "TunnelOptions")
    telemetry = _by_outside_ip(_get_list(raw, "VgwTelemetry"), "VgwTelemetry")
    strays = sorted(set(telemetry) - set(tunnel_options))
    if strays:
        raise _Malformed(f"VgwTelemetry names {', '.join(strays)}, absent from TunnelOptions")

    tunnels = []
    for ip, option in tunnel_options.items():
        seen = telemetry.get(ip, {})
        tunnels.append(
            TunnelInfo(
                outside_ip=ip,
                lifecycle_control=_get_bool(option, "EnableTunnelLifecycleControl"),
                status=_get_str(seen, "Status"),
                status_message=_get_str(seen, "StatusMessage"),
                last_status_change=_get_datetime(seen, "LastStatusChange"),
                accepted_route_count=_get_int(seen, "AcceptedRouteCount"),
            )
        )

    tags: dict[str, str] = {}
    for tag in _get_list(raw, "Tags"):
        if not isinstance(tag, dict):
            raise _Malformed("a tag is not an object")
        tags[_get_str(tag, "Key", required=True)] = _get_str(tag, "Value")

    return ConnectionInfo(
        vpn_connection_id=connection_id,
        state=_get_str(raw, "State", required=True),
        type=_get_str(raw, "Type"),
        category=_get_str(raw, "Category"),
        customer_gateway_id=_get_str(raw, "CustomerGatewayId"),
        vpn_gateway_id=_get_str(raw, "VpnGatewayId"),
        transit_gateway_id=_get_str(raw, "TransitGatewayId"),
        tags=tags,
        name=tags.get("Name", ""),
        static_routes_only=_get_bool(options, "StaticRoutesOnly"),
        tunnels=tuple(sorted(tunnels, key=lambda t: ipaddress.IPv4Address(t.outside_ip))),
    )


def _item_name(raw: Any, index: int) -> str:
    connection_id = raw.get("VpnConnectionId") if isinstance(raw, dict) else None
    if isinstance(connection_id, str) and connection_id:
        return connection_id
    return f"VpnConnections[{index}]"


# --------------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------------


def list_connections(
    account: Any, region: str, connection_ids: list[str] | None = None
) -> tuple[list[ConnectionInfo], list[ItemError]]:
    """Every VPN connection of an account and region (or those named), with their tunnels.

    DescribeVpnConnections has no paginator in botocore today (it returns everything in one
    answer); should botocore ever gain one, it is used. A malformed entry is skipped and
    reported as an ItemError, never raised.
    """
    action = "DescribeVpnConnections"
    params: dict[str, Any] = {}
    if connection_ids is not None:
        params["VpnConnectionIds"] = list(connection_ids)
    try:
        client = _client(account, region, READ)
        if client.can_paginate("describe_vpn_connections"):
            pages: list[dict[str, Any]] = list(
                client.get_paginator("describe_vpn_connections").paginate(**params)
            )
        else:
            pages = [client.describe_vpn_connections(**params)]
    except (ClientError, BotoCoreError) as exc:
        raise _from_exception(exc, action, mutating=False) from None

    connections: list[ConnectionInfo] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    index = 0
    for page in pages:
        raw_items = page.get("VpnConnections") if isinstance(page, dict) else None
        if not isinstance(raw_items, list):
            raise AwsMalformedAnswer(action, "The answer has no VpnConnections list.")
        for raw in raw_items:
            name = _item_name(raw, index)
            index += 1
            try:
                if not isinstance(raw, dict):
                    raise _Malformed("the entry is not an object")
                connection = _parse_connection(raw)
                if connection.vpn_connection_id in seen:
                    raise _Malformed("the connection is listed twice")
            except _Malformed as exc:
                errors.append(ItemError(item=name, message=str(exc)))
                continue
            seen.add(connection.vpn_connection_id)
            connections.append(connection)
    return connections, errors


def get_replacement_status(
    account: Any, region: str, connection_id: str, outside_ip: str
) -> ReplacementStatus:
    """GetVpnTunnelReplacementStatus: pending maintenance of one tunnel.

    Raises AwsMalformedAnswer if the answer lacks MaintenanceDetails.PendingMaintenance or
    names another tunnel than the one asked about.
    """
    action = "GetVpnTunnelReplacementStatus"
    answer = _read(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
    )
    try:
        for key, asked in (
            ("VpnConnectionId", connection_id),
            ("VpnTunnelOutsideIpAddress", outside_ip),
        ):
            answered = _get_str(answer, key)
            if answered and answered != asked:
                raise _Malformed(f"{key} is {answered!r}, not the {asked!r} asked about")
        if answer.get("MaintenanceDetails") is None:
            raise _Malformed("MaintenanceDetails is missing")
        details = _get_dict(answer, "MaintenanceDetails")
        pending = _get_str(details, "PendingMaintenance", required=True)
        if pending not in ("Available", "None"):
            raise _Malformed(f"PendingMaintenance is {pending!r}")
        return ReplacementStatus(
            vpn_connection_id=connection_id,
            outside_ip=outside_ip,
            pending_maintenance=pending,
            auto_applied_after=_get_datetime(details, "MaintenanceAutoAppliedAfter"),
            last_applied=_get_datetime(details, "LastMaintenanceApplied"),
        )
    except _Malformed as exc:
        raise AwsMalformedAnswer(action, str(exc), _request_id(answer)) from None


def get_active_tunnel_status(
    account: Any, region: str, connection_id: str, outside_ip: str
) -> ActiveTunnelStatus:
    """GetActiveVpnTunnelStatus: what the tunnel negotiated, as evidence for an execution."""
    action = "GetActiveVpnTunnelStatus"
    answer = _read(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
    )
    try:
        status = _get_dict(answer, "ActiveVpnTunnelStatus")
        return ActiveTunnelStatus(
            provisioning_status=_get_str(status, "ProvisioningStatus"),
            provisioning_status_reason=_get_str(status, "ProvisioningStatusReason"),
            ike_version=_get_str(status, "IkeVersion"),
            phase1_encryption=_get_str(status, "Phase1EncryptionAlgorithm"),
            phase2_encryption=_get_str(status, "Phase2EncryptionAlgorithm"),
            phase1_integrity=_get_str(status, "Phase1IntegrityAlgorithm"),
            phase2_integrity=_get_str(status, "Phase2IntegrityAlgorithm"),
            phase1_dh_group=_get_int(status, "Phase1DHGroup"),
            phase2_dh_group=_get_int(status, "Phase2DHGroup"),
        )
    except _Malformed as exc:
        raise AwsMalformedAnswer(action, str(exc), _request_id(answer)) from None


def replace_tunnel(account: Any, region: str, connection_id: str, outside_ip: str) -> CallResult:
    """ReplaceVpnTunnel(ApplyPendingMaintenance=True). Mutating: sent at most once by the SDK.

    Raises AwsAmbiguousError when the fate of the call is unknown.
    """
    action = "ReplaceVpnTunnel"
    answer = _write(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
        ApplyPendingMaintenance=True,
    )
    if answer.get("Return") is False:
        raise AwsError(action, "ReturnFalse", "AWS answered Return=false.", _request_id(answer))
    return CallResult(request_id=_request_id(answer))


def modify_lifecycle_control(
    account: Any,
    region: str,
    connection_id: str,
    outside_ip: str,
    *,
    enabled: bool,
    skip_replacement: bool,
) -> CallResult:
    """ModifyVpnTunnelOptions turning tunnel endpoint lifecycle control on or off.

    Mutating: sent at most once by the SDK; AwsAmbiguousError when its fate is unknown.
    """
    action = "ModifyVpnTunnelOptions"
    answer = _write(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
        TunnelOptions={"EnableTunnelLifecycleControl": enabled},
        SkipTunnelReplacement=skip_replacement,
    )
    return CallResult(request_id=_request_id(answer))
