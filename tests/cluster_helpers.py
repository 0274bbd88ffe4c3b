"""A real ``manage.py qcluster`` process on the test database and the simulated AWS server.

Shared by the tests that need the queue itself (test_cluster.py) and the browser test
(test_browser.py). The worker reads its settings from the environment ``cluster_env`` builds.

django-q2's scheduler, which runs the one-off schedules that book each look at a running
change (enqueue.watch_execution), wakes once every 30 s of guard cycles (django_q/cluster.py,
``Sentinel.guard``: ``counter += cycle; if counter >= 30``). A simulated outage has to last
longer than that for a look to be sure to see the tunnel DOWN.

Either broker: ``queue_broker("orm")`` is the test database's own queue table, and
``queue_broker("redis")`` a Redis database of the test's own (claimed on the local Redis,
emptied before and after, so parallel runs never meet). The test process queues into the
same broker as the clusters it starts with ``start_cluster(..., broker=...)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from unittest import mock

import pytest
import redis
from django.db import connection
from django_q.conf import Conf

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "var" / f"qcluster-test-{os.getpid()}.log"
SCHEDULER_PERIOD_SECONDS = 30

T = TypeVar("T")

BROKERS = ("orm", "redis")
# The Redis that .ci/run starts when it is down; the test claims one of its databases.
REDIS_SERVER = "redis://127.0.0.1:6379"
REDIS_CLAIM_KEY = "vpnctl-tests:redis-db:{}"  # in database 0, one per claimed database


@dataclass(frozen=True)
class QueueBroker:
    name: str  # "orm" or "redis"
    redis_url: str = ""  # the Redis database of this test, for the clusters it starts

    def env(self) -> dict[str, str]:
        return {"VPNCTL_Q_REDIS_URL": self.redis_url} if self.redis_url else {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _claim_redis_database(control: redis.Redis) -> int:
    """A database number no other test run uses now (a key in database 0 holds it)."""
    for number in range(1, int(control.config_get("databases")["databases"])):
        if control.set(REDIS_CLAIM_KEY.format(number), os.getpid(), nx=True, ex=900):
            return number
    pytest.fail("every Redis database is claimed by another test run")


@contextmanager
def queue_broker(name: str) -> Iterator[QueueBroker]:
    """The broker this test and its clusters share; ``redis`` skips when no Redis answers
    (and fails in CI, where .ci/run starts one)."""
    if name == "orm":
        yield QueueBroker("orm")
        return
    control = redis.Redis.from_url(f"{REDIS_SERVER}/0", socket_connect_timeout=2)
    try:
        control.ping()
    except redis.RedisError as exc:
        if _in_ci():
            pytest.fail(f"no Redis at {REDIS_SERVER} ({exc}); .ci/run should have started it")
        pytest.skip(f"no Redis at {REDIS_SERVER} ({exc})")
    number = _claim_redis_database(control)
    url = f"{REDIS_SERVER}/{number}"
    own = redis.Redis.from_url(url)
    own.flushdb()  # whatever a killed run left there
    try:
        # django-q2 reads its settings at import: the broker is chosen from Conf.
        with mock.patch.multiple(Conf, ORM=None, REDIS=url):
            yield QueueBroker("redis", url)
    finally:
        own.flushdb()
        own.close()
        control.delete(REDIS_CLAIM_KEY.format(number))
        control.close()


def cluster_env(endpoint: str, broker: QueueBroker | None = None) -> dict[str, str]:
    """The worker process sees the test database, the simulated AWS server and the broker
    (the database's own queue unless ``broker`` says Redis)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("VPNCTL_Q_REDIS_URL", None)
    env.update(broker.env() if broker else {})
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


def start_cluster(
    endpoint: str, *, broker: QueueBroker | None = None, **env: str
) -> subprocess.Popen:
    """Start qcluster in its own process group; its output goes to LOG. ``env`` overrides
    cluster_env's variables (e.g. ``VPNCTL_Q_WORKERS="2"``)."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:  # read it when a test that uses the cluster fails
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=cluster_env(endpoint, broker) | env,
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
