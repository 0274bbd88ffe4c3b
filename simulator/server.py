"""The simulated AWS in this process (``simulated_aws``) or served over HTTP (``start_server``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from moto import mock_aws
from moto.server import ThreadedMotoServer

from simulator.calls import Throttling
from simulator.moto_additions import install
from simulator.state import SIMULATOR, Simulator
from simulator.tunnels import Timings


@contextmanager
def simulated_aws(
    *, timings: Timings | None = None, throttling: Throttling | None = None
) -> Iterator[Simulator]:
    """moto's ``mock_aws`` with the additions installed and the simulator reset."""
    install()
    with mock_aws():
        SIMULATOR.reset()
        SIMULATOR.configure(timings=timings or Timings(), throttling=throttling)
        try:
            yield SIMULATOR
        finally:
            SIMULATOR.reset()


def start_server(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Serve the simulated AWS on 127.0.0.1 (``port=0``: any free port); return it and its URL.

    Stop it with ``server.stop()``. It shares this process's state (and ``mock_aws``, if
    active), so tests can set it up through ``SIMULATOR``.
    """
    install()
    if port:
        # moto's server thread dies silently on a taken port and start() then waits for
        # ever: find out here instead.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    return server, f"http://{host}:{bound_port}"
