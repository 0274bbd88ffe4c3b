"""A worker SIGKILLed while it waits on django-q2's task queue (django-q2 issue 23).

With django-q2's own queue lock the whole cluster stalls: the health command, /healthz/
and the pages say so within the configured age, and a restarted cluster runs the approved
change with one AWS call. With vpnctl's lock (maintenance/queue_lock.py, the default) the
cluster goes on by itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from maintenance import enqueue, liveness, sync
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import ChangeRequest, Execution, Tunnel
from simulator import TunnelSpec
from tests.cluster_helpers import LOG, ROOT, cluster_env, kill, start_cluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

STALE = 6  # seconds: VPNCTL_WORKER_STALE_SECONDS for these tests
BANNER = "Approved changes will not run until the worker is back."


@pytest.fixture
def cluster(aws_server) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        kill(process)


# -- looking into the cluster's processes (Linux /proc) ----------------------------------


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            found.append(int(stat.parent.name))
    return found


def worker_pids(cluster: subprocess.Popen) -> list[int]:
    """The cluster's live workers: the sentinel's children that logged "ready for work"."""
    ready = {int(pid) for pid in re.findall(r"ready for work at (\d+)", LOG.read_text())}
    sentinels = children(cluster.pid)
    return sorted(pid for s in sentinels for pid in children(s) if pid in ready)


def waiting_on(pid: int) -> str:
    """Where the process sleeps in the kernel: "read" (the queue's pipe) or "lock"."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "gone"
    if "pipe" in wchan:
        return "read"
    if "futex" in wchan or "lock" in wchan:  # django-q2's semaphore, or vpnctl's fcntl lock
        return "lock"
    try:  # no symbol names: the system call it is in (read is 0 on x86-64, 63 on arm64)
        number = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return wchan
    return "read" if number in {"0", "63"} else "lock"


def the_worker_reading_the_task_queue(cluster: subprocess.Popen, workers: int) -> int:
    """An idle cluster has exactly one worker inside read() on the task queue, holding its
    lock; the others wait for that lock."""

    def found() -> int | None:
        pids = worker_pids(cluster)
        states = {pid: waiting_on(pid) for pid in pids}
        readers = [pid for pid, where in states.items() if where == "read"]
        if len(pids) == workers and len(readers) == 1:
            return readers[0]
        return None

    return wait_for(found, timeout=20)


def enqueue_sweep() -> None:
    """What the schedule does every minute, at once."""
    async_task(enqueue.SWEEP, task_name=f"test-sweep-{time.time_ns()}")


def heartbeat_pid() -> int | None:
    state = liveness.state(queue=False)
    return int(state.worker.rsplit(":", 1)[1]) if state.worker else None


def check_worker_process(endpoint: str) -> subprocess.CompletedProcess:
    """``manage.py check_worker`` as a probe runs it: its own process, exit code and line."""
    env = cluster_env(endpoint) | {"VPNCTL_WORKER_STALE_SECONDS": str(STALE)}
    return subprocess.run(
        [sys.executable, "manage.py", "check_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def check_worker() -> str:
    out = StringIO()
    call_command("check_worker", stdout=out)
    return out.getvalue()


def submitted_request(aws, requester) -> ChangeRequest:
    """A replacement waiting for approval, its window open as soon as it is approved."""
    connection_id = aws.create_connection(
        region="ap-northeast-1",
        tunnels=[
            TunnelSpec(
                pending_maintenance="Available",
                auto_apply_after=timezone.now() + timedelta(days=5),
            ),
            TunnelSpec(),
        ],
    )
    sync.run_sync()
    return ChangeRequest.submit(
        user=requester,
        tunnel=Tunnel.objects.get(outside_ip=aws.tunnel_ips(connection_id)[0]),
        kind=ChangeKind.REPLACE,
        reason="worker stall test",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=1),
    )


def status_of(request: ChangeRequest) -> str:
    return ChangeRequest.objects.values_list("status", flat=True).get(pk=request.pk)


def aws_answered(request) -> bool:
    return Execution.objects.filter(change_request=request, aws_answered_at__isnull=False).exists()


# -- the tests ----------------------------------------------------------------------------


def test_a_killed_reader_stalls_django_q2_and_every_check_says_so_until_a_restart(
    aws_server, accounts, cluster, requester, approver, settings, client
):
    settings.WORKER_STALE_SECONDS = STALE
    endpoint = settings.AWS_ENDPOINT_URL
    first = start_cluster(endpoint, VPNCTL_Q_WORKERS="2", VPNCTL_Q_ROBUST_LOCK="false")
    cluster.append(first)
    request = submitted_request(aws_server, requester)

    # The cluster works: a sweeper run is its heartbeat.
    enqueue_sweep()
    wait_for(lambda: heartbeat_pid() not in (None, os.getpid()), timeout=30)
    check_worker()  # passes
    beat_at = liveness.state(queue=False).heartbeat_at

    # Kill the worker that sits in read() on the task queue; django-q2 starts another.
    reader = the_worker_reading_the_task_queue(first, workers=2)
    os.kill(reader, signal.SIGKILL)
    wait_for(lambda: reader not in worker_pids(first) and len(worker_pids(first)) == 2)

    # A change approved now, and the schedule's sweeps, stay where they are.
    request.approve(user=approver)  # queues its execution

    def check_fails() -> CommandError | None:
        enqueue_sweep()
        try:
            check_worker()
        except CommandError as exc:
            return exc
        return None

    failure = wait_for(check_fails, timeout=STALE + 10, interval=0.5)
    state = liveness.state()
    assert STALE < state.heartbeat_age <= STALE + 2, "fails once, and as soon as, it is stale"
    assert liveness.state(queue=False).heartbeat_at == beat_at, "no sweeper run since the kill"
    assert "NOT heard of: no sweeper run for" in str(failure)
    assert status_of(request) == ChangeStatus.APPROVED
    assert aws_server.calls("ReplaceVpnTunnel") == 0

    # The probe's view: exit code 1 and one line saying why.
    probe = check_worker_process(endpoint)
    assert probe.returncode == 1, probe
    assert "worker NOT heard of: no sweeper run for" in probe.stderr
    assert "task(s) waiting, the oldest for" in probe.stderr

    # /healthz/ keeps the web server in rotation and says why; /healthz/worker/ fails.
    web = client.get("/healthz/")
    worker = client.get("/healthz/worker/")
    assert web.status_code == 200 and worker.status_code == 503
    said = worker.json()["worker"]
    assert said["ok"] is False and said["reason"].startswith("no sweeper run for")
    assert said["queued_tasks"] >= 1 and said["oldest_queued_task_age_seconds"] >= 1

    # The pages tell the people waiting for the change.
    client.force_login(approver)
    assert BANNER in client.get(reverse("maintenance:home")).content.decode()
    page = client.get(reverse("maintenance:request", args=[request.pk])).content.decode()
    assert BANNER in page

    # Stuck for good: even SIGTERM does not stop it (its sentinel waits for the workers).
    os.killpg(first.pid, signal.SIGTERM)
    time.sleep(3)
    assert first.poll() is None
    kill(first)

    # After a restart, the sweeper queues the change again (what the stuck cluster took stays
    # locked for `retry`), and it runs with one AWS call.
    second = start_cluster(endpoint, VPNCTL_EXECUTION_REQUEUE_SECONDS="1")
    cluster.append(second)
    time.sleep(1.5)  # past the requeue age of the execution the first cluster swallowed
    enqueue_sweep()
    wait_for(lambda: aws_answered(request), timeout=40)
    assert aws_server.calls("ReplaceVpnTunnel") == 1
    assert status_of(request) in {ChangeStatus.RUNNING, ChangeStatus.SUCCEEDED}
    assert heartbeat_pid() != os.getpid()
    check_worker()  # passes again
    assert BANNER not in client.get(reverse("maintenance:home")).content.decode()


def test_with_vpnctls_queue_lock_the_cluster_survives_the_same_kill(
    aws_server, accounts, cluster, requester, approver, settings
):
    settings.WORKER_STALE_SECONDS = STALE
    process = start_cluster(settings.AWS_ENDPOINT_URL, VPNCTL_Q_WORKERS="2")  # the default lock
    cluster.append(process)
    request = submitted_request(aws_server, requester)
    enqueue_sweep()
    wait_for(lambda: heartbeat_pid() not in (None, os.getpid()), timeout=30)

    reader = the_worker_reading_the_task_queue(process, workers=2)
    os.kill(reader, signal.SIGKILL)
    wait_for(lambda: reader not in worker_pids(process) and len(worker_pids(process)) == 2)
    before = liveness.state(queue=False).heartbeat_at

    request.approve(user=approver)
    enqueue_sweep()

    wait_for(lambda: aws_answered(request), timeout=30)
    assert aws_server.calls("ReplaceVpnTunnel") == 1
    wait_for(lambda: liveness.state(queue=False).heartbeat_at > before, timeout=10)
    check_worker()  # passes
