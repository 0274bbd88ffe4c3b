"""run_demo: the first signal stops everything, whatever comes second; a stalled worker is
restarted by the demo itself."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from io import StringIO

import pytest

from simulator.management.commands.run_demo import STOP_SIGNALS, Command, Service, Stop
from tests.test_commands_demo import DemoProcess, free_port, port_is_free, processes_with_env

# -- the handlers, in this process ------------------------------------------------------


@pytest.fixture
def command():
    """A run_demo command as handle() sets it up, with nothing started; handlers restored."""
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    cmd = Command(stdout=StringIO())
    cmd.lock = threading.Lock()
    cmd.services, cmd.steps = [], []
    cmd.hurry, cmd.stopping_since = False, None
    cmd.spawning, cmd.pending_signal = False, None
    cmd.env = dict(os.environ)
    cmd.worker_grace, cmd.restart_grace = 0.0, 0.5
    yield cmd
    cmd.kill_steps()
    for service in cmd.services:
        service.signal_group(signal.SIGKILL)
        service.proc.wait()
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_after_the_first_signal_the_next_ones_only_hurry_the_stop(command):
    with pytest.raises(Stop):
        command.on_signal(signal.SIGTERM, None)

    assert all(signal.getsignal(s) == command.on_signal_while_stopping for s in STOP_SIGNALS)
    command.on_signal_while_stopping(signal.SIGTERM, None)  # make's copy, at once: no raise
    assert command.hurry is False
    command.stopping_since -= 1.5
    command.on_signal_while_stopping(signal.SIGINT, None)  # Ctrl-C again, later
    assert command.hurry is True


def test_a_signal_while_a_child_starts_stops_once_it_is_tracked(command):
    with pytest.raises(Stop), command.spawning_child():
        command.on_signal(signal.SIGTERM, None)
        command.on_signal(signal.SIGTERM, None)
        assert command.pending_signal == signal.SIGTERM  # held back, nothing raised yet

    assert all(signal.getsignal(s) == command.on_signal_while_stopping for s in STOP_SIGNALS)


# -- the worker watchdog ------------------------------------------------------------------

# A stalled qcluster: SIGTERM does nothing (its sentinel waits on its stuck workers).
STALLED = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stuck', flush=True); time.sleep(120)"
)
NOT_HEARD_OF = "import sys; sys.exit('CommandError: worker NOT heard of: no sweeper run for 200 s')"


def start_worker(command) -> Service:
    return command.start_service("worker", [sys.executable, "-c", STALLED])


def test_the_demo_restarts_a_worker_that_is_not_heard_of(command, capsys):
    old = start_worker(command)
    command.worker_probe = [sys.executable, "-c", NOT_HEARD_OF]

    assert command.check_worker() is True

    assert old.proc.returncode == -signal.SIGKILL  # SIGTERM was not enough
    [new] = command.services
    assert new.name == "worker" and new.running() and new.proc.pid != old.proc.pid
    assert new.proc.args == old.proc.args
    assert (
        "worker NOT heard of: no sweeper run for 200 s: restarting the worker"
        in command.stdout.getvalue()
    )
    assert command.steps == []  # the probe is gone


def test_a_worker_heard_of_or_just_started_is_left_alone(command):
    worker = start_worker(command)
    command.worker_probe = [sys.executable, "-c", "pass"]
    assert command.check_worker() is False

    command.worker_probe = [sys.executable, "-c", NOT_HEARD_OF]
    command.worker_grace = 600.0  # its first sweeper run is still to come
    assert command.check_worker() is False

    assert command.services == [worker] and worker.running()


# -- the whole demo -----------------------------------------------------------------------


def two_sigterms(demo: DemoProcess) -> None:
    """What `make demo` gets from `kill -TERM -PGID`: one SIGTERM, and make's copy."""
    os.killpg(demo.proc.pid, signal.SIGTERM)
    time.sleep(0.002)  # make's copy comes a moment later: while the first is being handled
    os.killpg(demo.proc.pid, signal.SIGTERM)


@pytest.mark.cluster
@pytest.mark.parametrize("when", ["starting", "running"])
def test_two_sigterms_to_the_demos_group_stop_every_service(tmp_path, when):
    web_port, aws_port = free_port(), free_port()
    demo = DemoProcess(
        "--port", str(web_port), "--aws-port", str(aws_port), "--data-dir", str(tmp_path)
    )
    try:
        if when == "starting":  # the simulator is up; migrate, seeding and the rest run
            demo.wait_for("aws answers on port", timeout=120)
        else:
            demo.wait_for("Press Ctrl-C", timeout=180)
        two_sigterms(demo)
        assert demo.finish(timeout=60) == 0, demo.output
    finally:
        demo.kill()

    assert "SIGTERM: stopping the demo" in demo.output
    assert "Demo stopped" in demo.output
    assert port_is_free(web_port) and port_is_free(aws_port)
    assert processes_with_env(f"VPNCTL_SQLITE_PATH={tmp_path}") == []
