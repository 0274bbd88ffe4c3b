"""Database faults on PostgreSQL with a real cluster: no change is sent twice or left running.

Six cases: PostgreSQL restarted, or the worker's own connection terminated
(``pg_terminate_backend``), right after each of three steps of an execution: the claim,
"about to call AWS" committed, and the AWS call answered. The worker pauses there
(tests/fault_worker.py), the test applies the fault and lets it go on; its next database
operation fails, the task dies, and the sweeper (django-q2's schedule, as in production)
reconciles the silent execution. Each case checks what an operator would see: at most one
``ReplaceVpnTunnel`` reached AWS, the request ended in a named state and the audit chain
verifies. ``bench/faults.py`` runs this module and prints the matrix the README shows.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.utils import Error as DatabaseError

from maintenance.choices import ChangeStatus
from maintenance.models import AuditEvent, ChangeRequest
from maintenance.schedules import ensure_schedules
from tests.cluster_helpers import (
    LOG,
    ROOT,
    SCHEDULER_PERIOD_SECONDS,
    cluster_env,
    kill,
    log_tail,
    wait_for,
)
from tests.fault_worker import PAUSED
from tests.test_cluster import make_request, status_of

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="database faults are run on PostgreSQL"
    ),
]

REPLACE = "ReplaceVpnTunnel"
# Short enough that the scheduler's first sweep (about 30 s after the cluster starts)
# already finds the faulted execution silent.
STALE_SECONDS = 5
# What an operator sees once it is over, per step (the fault does not change it).
EXPECTED = {
    # The claim is committed, nothing prepared: the sweeper fails it, nothing was sent.
    "claim": (0, ChangeStatus.FAILED, "nothing was sent"),
    # "About to call AWS" is committed: the worker's next step is the call, which needs no
    # database, so it goes out once; the answer is never recorded, the sweeper watches.
    "calling_aws": (1, ChangeStatus.SUCCEEDED, ""),
    # The call answered, the answer never recorded: the sweeper watches, never re-sends.
    "aws_call": (1, ChangeStatus.SUCCEEDED, ""),
}


def _postgresql_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
    return versions[-1] if versions else ""


def _can_restart() -> str:
    """Why this machine cannot restart the test's PostgreSQL ("" when it can)."""
    if connection.settings_dict["HOST"] not in ("127.0.0.1", "localhost", "::1", ""):
        return "PostgreSQL is not on this machine"
    if shutil.which("pg_ctlcluster") is None or not _postgresql_version():
        return "no pg_ctlcluster (Debian's postgresql-common) to restart PostgreSQL with"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "only root or postgres may restart PostgreSQL"
    return ""


def _query(sql: str, params: tuple = ()) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def reconnect(timeout: float = 60) -> None:
    """Drop this process's dead connections and wait until PostgreSQL answers again."""
    deadline = time.monotonic() + timeout
    while True:
        connections.close_all()
        try:
            _query("SELECT 1")
            return
        except DatabaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def restart_postgresql(paused: dict) -> None:
    """``pg_ctlcluster restart``: every connection dies, the worker's and ours included."""
    before = _query("SELECT pg_postmaster_start_time()")[0]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            _postgresql_version(),
            "main",
            "restart",
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    reconnect()
    after = _query("SELECT pg_postmaster_start_time()")[0]
    assert after > before, "PostgreSQL did not restart"


def terminate_worker_connection(paused: dict) -> None:
    """``pg_terminate_backend`` on the paused worker's own connection, and on no other."""
    row = _query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE pid = %s AND datname = current_database()",
        (paused["backend_pid"],),
    )
    assert row == (True,), f"the worker's backend {paused['backend_pid']} was not terminated"


FAULTS = {"restart": restart_postgresql, "terminate": terminate_worker_connection}


@pytest.fixture
def fault_cluster(aws_server, settings, tmp_path) -> Iterator:
    """Start the pausing cluster for a step: ``fault_cluster(step)``; killed at the end."""
    processes: list[subprocess.Popen] = []

    def start(step: str) -> subprocess.Popen:
        env = cluster_env(settings.AWS_ENDPOINT_URL)
        env.update(
            {
                "VPNCTL_FAULT_STEP": step,
                "VPNCTL_FAULT_DIR": str(tmp_path),
                "VPNCTL_STALE_EXECUTION_SECONDS": str(STALE_SECONDS),
            }
        )
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with LOG.open("ab") as log:
            log.write(f"\n=== database fault case after {step}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.fault_worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        kill(process)
    reconnect()  # whatever happened, leave this process a live connection for the flush


def _paused(directory: Path, cluster: subprocess.Popen) -> dict | None:
    """What the paused worker wrote; fails at once if the cluster did not even start."""
    path = directory / PAUSED
    if path.exists():
        return json.loads(path.read_text())
    if cluster.poll() is not None:
        raise AssertionError(f"qcluster exited ({cluster.returncode}); its log ends:\n{log_tail()}")
    return None


@pytest.mark.parametrize("step", list(EXPECTED))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_database_fault_sends_at_most_once_and_ends_named(
    aws_server, accounts, requester, approver, fault_cluster, tmp_path, record_property, fault, step
):
    if fault == "restart" and (why := _can_restart()):
        pytest.skip(why)
    ensure_schedules()  # the sweeper every minute, run by the cluster's own scheduler
    request = make_request(aws_server, requester, approver)  # queues its execution
    cluster = fault_cluster(step)

    paused = wait_for(lambda: _paused(tmp_path, cluster), timeout=60)
    assert paused["step"] == step and paused["backend_pid"]
    faulted_at = time.monotonic()
    FAULTS[fault](paused)
    (tmp_path / "go").touch()

    try:
        # The first sweep comes with the scheduler's first wake-up, about 30 s after the
        # cluster started; the margin covers a lost one (the sweep is due every minute).
        wait_for(
            lambda: status_of(request) in ChangeStatus.TERMINAL,
            timeout=4 * SCHEDULER_PERIOD_SECONDS + 30,
        )
    except AssertionError:
        pass  # recorded below, then failed with the cluster's log
    seconds = time.monotonic() - faulted_at

    request = ChangeRequest.objects.select_related("execution").get(pk=request.pk)
    execution = request.execution
    calls = aws_server.calls(REPLACE)
    checked, _, broken = AuditEvent.verify_chain()
    for name, value in {
        "fault": fault,
        "step": step,
        "calls": calls,
        "status": request.status,
        "ended_by": "sweeper" if execution.taken_over_at else "worker",
        "chain": broken or f"ok ({checked} events)",
        "seconds": round(seconds, 1),
    }.items():
        record_property(name, value)

    assert calls <= 1
    assert request.status in ChangeStatus.TERMINAL, (
        f"left {request.status} {seconds:.0f} s after the fault; the log ends:\n{log_tail()}"
    )
    assert broken == "", broken
    expected_calls, expected_status, reason = EXPECTED[step]
    assert (calls, request.status) == (expected_calls, expected_status), request.status_reason
    assert reason in request.status_reason
