"""The mutating calls: ReplaceVpnTunnel and ModifyVpnTunnelOptions, each sent at most once.

Write clients have the SDK's retries off (``clients``). A mutating call whose fate is unknown
(timeout, 5xx, connection lost after sending) raises :class:`AwsAmbiguousError`: the caller
must read the replacement status before deciding anything. A throttled mutating call is a
definite refusal, so it alone is retried here, a few times, before :class:`AwsThrottled`.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from .clients import _client, _credentials_ready, _request_id, _snake
from .errors import AwsError, AwsThrottled, _from_exception
from .limiter import WRITE
from .results import CallResult

logger = logging.getLogger(__name__)

# A throttled mutating call was refused outright, so it is safe to send again; this many
# attempts in all, with jittered exponential backoff between them.
WRITE_THROTTLE_ATTEMPTS = 3
WRITE_THROTTLE_BASE_DELAY = 1.0


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
