"""moto's EC2, taught the Site-to-Site VPN calls it lacks: ``install()``.

moto 5.2.5 knows VPN connections, customer gateways, virtual private gateways and transit
gateways, but not the tunnel endpoint lifecycle calls, and its DescribeVpnConnections has no
``Options.TunnelOptions`` and no ``VgwTelemetry``. moto has no plugin hook, so ``install()``
adds methods named after the actions (snake_case) to ``moto.ec2.responses.EC2Response``,
wraps its ``call_action`` for the five simulated actions (simulator/calls.py) and its
``DescribeVpnConnections`` / ``CreateVpnConnection``, and adds the control routes
(simulator/control.py). moto then parses requests and serialises answers with botocore's own
shapes. The rules themselves are ``Simulator``'s (simulator/state.py).

This leans on moto's internals: moto is pinned, and ``install()`` refuses to shadow an
action the day moto implements it itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.responses import EC2Response
from moto.ec2.responses.vpn_connections import VPNConnections
from moto.moto_api._internal import urls as moto_api_urls

from simulator.constants import ADDED_ACTIONS, NEGOTIATED, SIMULATED_ACTIONS
from simulator.control import CONTROL_ROUTES
from simulator.state import SIMULATOR
from simulator.tunnels import TunnelSpec, utc_now

# moto's originals, kept for the wrappers.
_MOTO: dict[str, Callable[..., Any]] = {}


def _call_action(self: EC2Response) -> Any:
    action = self._get_action()
    if action in SIMULATED_ACTIONS:
        return SIMULATOR._handle_call(self, action, _MOTO["call_action"])
    return _MOTO["call_action"](self)


def _describe_vpn_connections(self: EC2Response) -> ActionResult:
    SIMULATOR._refresh_backend(self.ec2_backend)
    return _MOTO["describe_vpn_connections"](self)


def _create_vpn_connection(self: EC2Response) -> ActionResult:
    result = _MOTO["create_vpn_connection"](self)
    connection = result.result["VpnConnection"]  # type: ignore[index]
    options = self._get_param("Options") or {}
    tunnel_options = list(options.get("TunnelOptions") or [])
    tunnel_options += [{}] * (2 - len(tunnel_options))
    specs = [
        TunnelSpec(
            lifecycle_control=bool(o.get("EnableTunnelLifecycleControl", False)),
            ike_version=next(
                (
                    v.get("Value")
                    for v in o.get("IKEVersions") or []
                    if v.get("Value") in NEGOTIATED
                ),
                "ikev2",
            ),
        )
        for o in tunnel_options[:2]
    ]
    with SIMULATOR._lock:
        SIMULATOR._attach(connection, bool(options.get("StaticRoutesOnly")), specs, utc_now())
    return result


# Looked up on SIMULATOR at each call, so that a test may replace one of its handlers.


def _get_vpn_tunnel_replacement_status(self: EC2Response) -> ActionResult:
    return SIMULATOR._replacement_status(self)


def _get_active_vpn_tunnel_status(self: EC2Response) -> ActionResult:
    return SIMULATOR._active_status(self)


def _replace_vpn_tunnel(self: EC2Response) -> ActionResult:
    return SIMULATOR._replace(self)


def _modify_vpn_tunnel_options(self: EC2Response) -> ActionResult:
    return SIMULATOR._modify(self)


_install_lock = threading.Lock()


def install() -> None:
    """Add the missing EC2 actions and the control channel to moto. Idempotent.

    Raises RuntimeError if moto has come to implement one of the actions itself: then this
    module would shadow moto's version, and must be reviewed (moto is pinned for this).
    """
    with _install_lock:
        if getattr(EC2Response.call_action, "vpnctl_simulator", False):
            return
        # moto loads thousands of default AMIs into every EC2 region it touches: half a
        # second per region and per reset, for images a VPN simulator never shows. moto's
        # own switch, unless someone set it on purpose.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        for action, method in ADDED_ACTIONS.items():
            if hasattr(EC2Response, method):
                raise RuntimeError(
                    f"moto now implements {action} itself: review simulator/moto_additions.py "
                    "before upgrading moto."
                )
        _MOTO["call_action"] = EC2Response.call_action
        _MOTO["describe_vpn_connections"] = VPNConnections.describe_vpn_connections
        _MOTO["create_vpn_connection"] = VPNConnections.create_vpn_connection
        additions: dict[str, Callable[..., Any]] = {
            "get_vpn_tunnel_replacement_status": _get_vpn_tunnel_replacement_status,
            "get_active_vpn_tunnel_status": _get_active_vpn_tunnel_status,
            "replace_vpn_tunnel": _replace_vpn_tunnel,
            "modify_vpn_tunnel_options": _modify_vpn_tunnel_options,
            "describe_vpn_connections": _describe_vpn_connections,
            "create_vpn_connection": _create_vpn_connection,
            "call_action": _call_action,
        }
        for name, function in additions.items():
            function.vpnctl_simulator = True  # type: ignore[attr-defined]
            setattr(EC2Response, name, function)
        moto_api_urls.url_paths.update(CONTROL_ROUTES)
