"""botocore sessions, credentials and clients: built once per process, shared by every thread.

- **Clients.** One botocore client per (account, region, kind), created once and reused by
  every thread (botocore clients are thread-safe once created). ``read`` clients retry in
  ``settings.AWS_READ_RETRY_MODE`` (``standard`` or ``adaptive``) up to
  ``settings.AWS_READ_MAX_ATTEMPTS`` attempts in all. ``write`` clients (ReplaceVpnTunnel,
  ModifyVpnTunnelOptions) have the SDK's retries switched off: ReplaceVpnTunnel takes no
  client token, so a retry after a timeout or a 5xx could replace a tunnel twice. Each client
  is paced by its rate bucket (``limiter``) on every HTTP attempt.
- **Credentials.** An account without a role uses the server's own credentials (boto3's
  usual chain). An account with ``role_arn`` is reached through ``sts:AssumeRole`` with
  botocore's ``AssumeRoleCredentialFetcher`` and ``DeferredRefreshableCredentials``, which
  assume the role on first use and again 10 to 15 minutes before the credentials expire.
  Credentials live only in botocore's memory: never logged, stored or put in an error.
- **Endpoint.** ``settings.AWS_ENDPOINT_URL``, when set, points every client (STS included)
  at the simulated AWS.
"""

from __future__ import annotations

import functools
import re
import threading
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
from botocore.exceptions import NoCredentialsError
from django.conf import settings

from .errors import AwsAuthError, _auth_error
from .limiter import READ, WRITE, _bucket, _buckets

ROLE_SESSION_NAME = "vpnctl"

# Guards the caches below and the rate buckets (``limiter._buckets``).
_lock = threading.RLock()
_sessions: dict[tuple[str, ...], botocore.session.Session] = {}
_clients: dict[tuple[str, ...], BaseClient] = {}


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


@functools.cache
def _snake(action: str) -> str:
    """The client method of an API action: ``ReplaceVpnTunnel`` → ``replace_vpn_tunnel``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _request_id(answer: dict[str, Any]) -> str:
    return str((answer.get("ResponseMetadata") or {}).get("RequestId") or "")
