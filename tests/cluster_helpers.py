"""A real ``manage.py qcluster`` process on the test database and the simulated AWS server.

Shared by the tests that need the queue itself (test_cluster.py) and the browser test
(test_browser.py). The worker reads its settings from the environment ``cluster_env`` builds.

django-q2's scheduler, which runs the one-off schedules that book each look at a running
change (enqueue.watch_execution), wakes once every 30 s of guard cycles (django_q/cluster.py,
``Sentinel.guard``: ``counter += cycle; if counter >= 30``). A simulated outage has to last
longer than that for a look to be sure to see the tunnel DOWN.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "var" / f"qcluster-test-{os.getpid()}.log"
SCHEDULER_PERIOD_SECONDS = 30

T = TypeVar("T")


def cluster_env(endpoint: str) -> dict[str, str]:
    """The worker process sees the test database and the simulated AWS server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["VPNCTL_SQLITE_PATH"] = str(db["NAME"])
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        )
    env.update(
        {
            "VPNCTL_MODE": "demo",
            "VPNCTL_AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "VPNCTL_WATCH_INTERVAL_SECONDS": "1",
            "VPNCTL_WATCH_TIMEOUT_MINUTES": "2",
            "VPNCTL_Q_WORKERS": "1",
        }
    )
    return env


def start_cluster(endpoint: str, **env: str) -> subprocess.Popen:
    """Start qcluster in its own process group; its output goes to LOG. ``env`` overrides
    cluster_env's variables (e.g. ``VPNCTL_Q_WORKERS="2"``)."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:  # read it when a test that uses the cluster fails
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=cluster_env(endpoint) | env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can kill it and its workers
        )


def kill(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the cluster's whole process group and reap it."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    process.wait(timeout=30)


def log_tail(chars: int = 3000) -> str:
    return LOG.read_text(errors="replace")[-chars:] if LOG.exists() else ""


def wait_for(predicate: Callable[[], T], timeout: float = 60, interval: float = 0.3) -> T:
    """Poll until predicate() is truthy and return it; fail with the cluster's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout} s; the cluster's log ends:\n{log_tail()}")
