"""The simulated AWS: moto, plus the Site-to-Site VPN behaviour vpnctl depends on.

For the test suite and for the demo that runs without an AWS account (``manage.py
run_simulator`` / ``seed_simulator`` / ``run_demo``). A Django app of its own, installed only
when ``VPNCTL_MODE`` is ``demo`` or ``test``: production never installs it, and nothing in
``maintenance`` or ``vpnctl`` imports it (or moto).

- ``constants``: accounts, actions, statuses; ``tunnels``: a tunnel and how time moves it
  (neither needs moto).
- ``state``: ``Simulator`` and its one instance ``SIMULATOR``: connections, tunnels and the
  rules of the VPN calls; ``calls``: throttling, injected faults, DryRun and the call log.
- ``moto_additions``: ``install()``, which adds the missing EC2 actions to moto;
  ``control``: the simulator-only HTTP routes; ``server``: ``simulated_aws()`` (in-process,
  under ``mock_aws``) and ``start_server()`` (HTTP on loopback).

moto takes about a second to import, and Django imports this package whenever the app is
installed (every demo process: web, worker, migrate...). So the names that need moto are
loaded on first use, through ``__getattr__``; the others are plain imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simulator.constants import (
    ADDED_ACTIONS,
    CONTROL_PATH,
    DEFAULT_ACCOUNT_ID,
    READ_ACTIONS,
    SECOND_ACCOUNT_ID,
    SECOND_ACCOUNT_ROLE_ARN,
    SIMULATED_ACTIONS,
    WRITE_ACTIONS,
)
from simulator.tunnels import Timings, TunnelSpec, UnknownConnection, UnknownTunnel

if TYPE_CHECKING:
    from simulator.calls import CallRecord, Throttling
    from simulator.moto_additions import install
    from simulator.server import simulated_aws, start_server
    from simulator.state import SIMULATOR, Simulator

# The names that import moto, and the module of each.
_NEEDS_MOTO = {
    "CallRecord": "simulator.calls",
    "Throttling": "simulator.calls",
    "SIMULATOR": "simulator.state",
    "Simulator": "simulator.state",
    "install": "simulator.moto_additions",
    "simulated_aws": "simulator.server",
    "start_server": "simulator.server",
}

__all__ = [
    "ADDED_ACTIONS",
    "CONTROL_PATH",
    "DEFAULT_ACCOUNT_ID",
    "READ_ACTIONS",
    "SECOND_ACCOUNT_ID",
    "SECOND_ACCOUNT_ROLE_ARN",
    "SIMULATED_ACTIONS",
    "SIMULATOR",
    "WRITE_ACTIONS",
    "CallRecord",
    "Simulator",
    "Throttling",
    "Timings",
    "TunnelSpec",
    "UnknownConnection",
    "UnknownTunnel",
    "install",
    "simulated_aws",
    "start_server",
]


def __getattr__(name: str) -> Any:
    module = _NEEDS_MOTO.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "moto":
            raise
        # A plain `pip install .` (production's) has no moto: say what to install.
        raise ModuleNotFoundError(
            "The simulated AWS needs moto: pip install '.[simulator]'", name=exc.name
        ) from exc
    value = getattr(loaded, name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
