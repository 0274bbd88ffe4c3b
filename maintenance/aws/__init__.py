"""AWS for vpnctl: the one place that calls boto3. Plain dataclasses out, our own errors.

Everything else in vpnctl talks to the functions re-exported here. They take an
``AwsAccount`` (any object with ``account_id``, ``role_arn`` and ``external_id``) and a
region and hide boto3 entirely. By topic:

- ``errors``: :class:`AwsError` and its subclasses, carrying AWS's code, message and request
  id (credentials redacted), and the translation of botocore's failures into them.
- ``results``: the plain dataclasses the calls return.
- ``limiter``: the client-side token buckets, one per AWS account, region and kind of call,
  that pace every HTTP attempt at EC2's own refill rate.
- ``clients``: configuration, sessions, assumed-role credentials and the cached clients
  (one per account, region and kind, shared by every thread); :func:`warm_up`,
  :func:`reset_clients`, and ``settings.AWS_ENDPOINT_URL`` for the simulated AWS.
- ``reads``: DescribeVpnConnections, GetVpnTunnelReplacementStatus and
  GetActiveVpnTunnelStatus, and the parsing of their answers.
- ``changes``: ReplaceVpnTunnel and ModifyVpnTunnelOptions, sent at most once by the SDK;
  :class:`AwsAmbiguousError` when their fate is unknown.

Nothing here imports a Django model; ``django.conf.settings`` is the only Django it reads.
Module-level state (sessions, clients, buckets, the lock) lives in ``clients`` and
``limiter`` only: patch a private name in the submodule that uses it, not here.
"""

from __future__ import annotations

from .changes import modify_lifecycle_control, replace_tunnel
from .clients import reset_clients, warm_up
from .errors import (
    AUTH_CODES,
    THROTTLE_CODES,
    AwsAmbiguousError,
    AwsAuthError,
    AwsError,
    AwsMalformedAnswer,
    AwsThrottled,
)
from .limiter import READ, WRITE, TokenBucket
from .reads import get_active_tunnel_status, get_replacement_status, list_connections
from .results import (
    ActiveTunnelStatus,
    CallResult,
    ConnectionInfo,
    ItemError,
    ReplacementStatus,
    TunnelInfo,
)

__all__ = [
    "AUTH_CODES",
    "READ",
    "THROTTLE_CODES",
    "WRITE",
    "ActiveTunnelStatus",
    "AwsAmbiguousError",
    "AwsAuthError",
    "AwsError",
    "AwsMalformedAnswer",
    "AwsThrottled",
    "CallResult",
    "ConnectionInfo",
    "ItemError",
    "ReplacementStatus",
    "TokenBucket",
    "TunnelInfo",
    "get_active_tunnel_status",
    "get_replacement_status",
    "list_connections",
    "modify_lifecycle_control",
    "replace_tunnel",
    "reset_clients",
    "warm_up",
]
