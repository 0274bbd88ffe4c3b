"""The simulator-only control channel: JSON routes under moto's own ``/moto-api/`` prefix.

Lifecycle control flags, pending maintenance and telemetry have no "create" API in AWS. To
seed a *running* simulator from another process, ``install()`` adds these routes, which real
AWS does not have (``CONTROL_PATH``):

- ``GET  /moto-api/vpnctl/ping``: ``{"simulator": "vpnctl", "protocol": 1}``; the seeder checks it
  so that it never creates resources in anything but the simulator.
- ``POST /moto-api/vpnctl/set-tunnels``: ``{"tunnels": [{"connection_id": ..., "outside_ip":
  ..., <set_tunnel fields>}]}``, datetimes as ISO 8601 strings.
- ``POST /moto-api/vpnctl/inject-fault``: the arguments of ``Simulator.inject_fault``.
- ``GET  /moto-api/vpnctl/calls``: ``{"calls": {action: {outcome: count}}}``.
- ``GET  /moto-api/vpnctl/tunnel-ips?connection_id=vpn-…``: ``{"outside_ips": [...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from simulator.calls import Answer
from simulator.constants import CONTROL_PATH, CONTROL_PROTOCOL
from simulator.state import SIMULATOR
from simulator.tunnels import UnknownConnection, UnknownTunnel, check_tunnel_fields

_JSON = {"Content-Type": "application/json"}
_DATETIME_FIELDS = ("auto_apply_after", "last_applied", "last_status_change")


def _json_answer(status: int, payload: dict[str, Any]) -> Answer:
    return status, dict(_JSON), json.dumps(payload)


def _control_ping(request: Any, full_url: str, headers: Any) -> Answer:
    return _json_answer(200, {"simulator": "vpnctl", "protocol": CONTROL_PROTOCOL})


def _control_set_tunnels(request: Any, full_url: str, headers: Any) -> Answer:
    if request.method != "POST":
        return _json_answer(405, {"error": "POST a JSON body"})
    try:
        updates = json.loads(request.data or b"{}")["tunnels"]
        parsed = []
        for update in updates:
            fields = dict(update)
            connection_id = fields.pop("connection_id")
            outside_ip = fields.pop("outside_ip")
            for name in _DATETIME_FIELDS:
                if fields.get(name) is not None:
                    fields[name] = datetime.fromisoformat(fields[name])
            check_tunnel_fields(fields)
            parsed.append((connection_id, outside_ip, fields))
        for connection_id, outside_ip, fields in parsed:
            SIMULATOR.set_tunnel(connection_id, outside_ip, **fields)
    except (UnknownConnection, UnknownTunnel) as exc:
        return _json_answer(404, {"error": f"not found: {exc}"})
    except KeyError as exc:
        return _json_answer(400, {"error": f"missing field {exc}"})
    except (TypeError, ValueError) as exc:
        return _json_answer(400, {"error": str(exc)})
    return _json_answer(200, {"updated": len(parsed)})


def _control_inject_fault(request: Any, full_url: str, headers: Any) -> Answer:
    if request.method != "POST":
        return _json_answer(405, {"error": "POST a JSON body"})
    try:
        spec = json.loads(request.data or b"{}")
        allowed = {"action", "code", "message", "count", "http_status", "applied"}
        SIMULATOR.inject_fault(**{k: v for k, v in spec.items() if k in allowed})
    except (TypeError, ValueError) as exc:
        return _json_answer(400, {"error": str(exc)})
    return _json_answer(200, {"injected": spec["action"]})


def _control_calls(request: Any, full_url: str, headers: Any) -> Answer:
    return _json_answer(200, {"calls": SIMULATOR.call_counts()})


def _control_tunnel_ips(request: Any, full_url: str, headers: Any) -> Answer:
    query = parse_qs(urlparse(full_url).query)
    connection_id = (query.get("connection_id") or [""])[0]
    try:
        return _json_answer(200, {"outside_ips": SIMULATOR.tunnel_ips(connection_id)})
    except UnknownConnection as exc:
        return _json_answer(404, {"error": f"not found: {exc}"})


# In the form of moto's url_paths, where "{0}" stands for the service's URL base.
CONTROL_ROUTES: dict[str, Callable[[Any, str, Any], Answer]] = {
    "{0}" + CONTROL_PATH + "/ping": _control_ping,
    "{0}" + CONTROL_PATH + "/set-tunnels": _control_set_tunnels,
    "{0}" + CONTROL_PATH + "/inject-fault": _control_inject_fault,
    "{0}" + CONTROL_PATH + "/calls": _control_calls,
    "{0}" + CONTROL_PATH + "/tunnel-ips": _control_tunnel_ips,
}
