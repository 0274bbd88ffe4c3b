"""The demo commands: demo_users, demo_accounts, and run_demo end to end."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import override_settings

from maintenance import roles
from maintenance.models import AwsAccount

BASE_DIR = Path(__file__).resolve().parent.parent

EXPECTED_ROLES = {
    "requester": roles.REQUESTER,
    "approver": roles.APPROVER,
    "approver2": roles.APPROVER,
    "admin": roles.ADMIN,
    "auditor": roles.AUDITOR,
}


def run_demo_users(*args: str) -> dict[str, tuple[str, str]]:
    """Run demo_users; return {username: (role, password)} as read from its table."""
    out = StringIO()
    call_command("demo_users", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[0].split() == ["user", "role", "password"]
    return {user: (role, password) for user, role, password in (ln.split() for ln in lines[1:])}


# -- demo_users -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_users_creates_one_login_per_role():
    logins = run_demo_users()

    assert {user: role for user, (role, _pw) in logins.items()} == EXPECTED_ROLES
    for username, (role, password) in logins.items():
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password(password)
        assert user.is_active
        assert not user.is_superuser
        assert user.is_staff == (username == "admin")
    assert len({password for _role, password in logins.values()}) == len(logins)


@pytest.mark.django_db
def test_demo_users_second_run_resets_passwords_without_duplicates():
    first = run_demo_users()
    admin = User.objects.get(username="admin")
    admin.is_superuser = True
    admin.save()
    User.objects.get(username="auditor").groups.add(Group.objects.get(name=roles.ADMIN))

    second = run_demo_users()

    assert User.objects.filter(username__in=EXPECTED_ROLES).count() == len(EXPECTED_ROLES)
    assert User.objects.count() == len(EXPECTED_ROLES)
    for username, (role, password) in second.items():
        user = User.objects.get(username=username)
        assert user.check_password(password)
        assert not user.check_password(first[username][1])
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert not user.is_superuser


@pytest.mark.django_db
def test_demo_users_can_share_one_given_password():
    logins = run_demo_users("--password", "demo-pass-123")

    assert {password for _role, password in logins.values()} == {"demo-pass-123"}
    assert User.objects.get(username="approver2").check_password("demo-pass-123")


@pytest.mark.django_db
def test_demo_users_refuses_in_production():
    with override_settings(MODE="production"), pytest.raises(CommandError, match="demo"):
        call_command("demo_users", stdout=StringIO())

    assert not User.objects.exists()


# -- demo_accounts --------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_accounts_creates_the_two_simulated_accounts():
    from simulator import (
        DEFAULT_ACCOUNT_ID,
        SECOND_ACCOUNT_ID,
        SECOND_ACCOUNT_ROLE_ARN,
    )

    call_command("demo_accounts", stdout=StringIO())

    rows = {a.name: a for a in AwsAccount.objects.all()}
    assert set(rows) == {"default", "second"}
    assert rows["default"].account_id == DEFAULT_ACCOUNT_ID
    assert rows["default"].role_arn == ""
    assert rows["second"].account_id == SECOND_ACCOUNT_ID
    assert rows["second"].role_arn == SECOND_ACCOUNT_ROLE_ARN
    for account in rows.values():
        assert account.regions == ["ap-northeast-1", "us-east-1", "eu-west-1"]
        assert account.enabled


@pytest.mark.django_db
def test_demo_accounts_is_idempotent_and_repairs_its_rows():
    call_command("demo_accounts", stdout=StringIO())
    before = {a.name: a.pk for a in AwsAccount.objects.all()}
    AwsAccount.objects.filter(name="second").update(regions=["us-west-2"], enabled=False)
    other = AwsAccount.objects.create(name="prod", account_id="111122223333", regions=["us-east-1"])

    call_command("demo_accounts", stdout=StringIO())

    assert {a.name: a.pk for a in AwsAccount.objects.exclude(pk=other.pk)} == before
    second = AwsAccount.objects.get(name="second")
    assert second.regions == ["ap-northeast-1", "us-east-1", "eu-west-1"]
    assert second.enabled
    other.refresh_from_db()
    assert other.regions == ["us-east-1"]


@pytest.mark.django_db
def test_demo_accounts_refuses_in_production():
    with override_settings(MODE="production"), pytest.raises(CommandError, match="demo"):
        call_command("demo_accounts", stdout=StringIO())

    assert not AwsAccount.objects.exists()


# -- run_demo, end to end -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_with_env(marker: str) -> list[str]:
    """Command lines of the processes whose environment contains `marker` (Linux)."""
    found: list[str] = []
    if not Path("/proc/self/environ").exists():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


class DemoProcess:
    """`manage.py run_demo` in its own session, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["VPNCTL_MODE"] = "demo"
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_demo", *args],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not seen; output:\n{self.output}")

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def log_in(base_url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(base_url + "login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(
        base_url + "login/", data=data, headers={"Referer": base_url + "login/"}
    )
    with opener.open(request, timeout=10) as response:
        assert "/login/" not in response.geturl(), "the login was refused"
    return opener


def test_run_demo_refuses_a_port_in_use_before_starting_anything():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} on 127.0.0.1 is in use"):
            call_command("run_demo", "--port", str(port), stdout=StringIO())


def test_run_demo_refuses_in_production():
    with override_settings(MODE="production"), pytest.raises(CommandError, match="demo"):
        call_command("run_demo", stdout=StringIO())


@pytest.mark.cluster
def test_run_demo_starts_everything_and_ctrl_c_stops_it_all(tmp_path):
    web_port, aws_port = free_port(), free_port()
    demo = DemoProcess(
        "--port",
        str(web_port),
        "--aws-port",
        str(aws_port),
        "--data-dir",
        str(tmp_path),
    )
    try:
        demo.wait_for("vpnctl demo is ready", timeout=180)
        demo.wait_for("Press Ctrl-C", timeout=10)
        base_url = f"http://127.0.0.1:{web_port}/"
        assert f"Open {base_url}" in demo.output
        logins = dict(
            re.findall(
                r"^\s+(requester|approver2?|admin|auditor)\s+\w+\s+(\S+)$",
                demo.output,
                re.MULTILINE,
            )
        )
        assert set(logins) == set(EXPECTED_ROLES)

        opener = log_in(base_url, "requester", logins["requester"])
        with opener.open(base_url, timeout=10) as page:
            assert page.status == 200
        with sqlite3.connect(tmp_path / "vpnctl.sqlite3") as db:
            (connections,) = db.execute("SELECT count(*) FROM maintenance_vpnconnection").fetchone()
        assert connections >= 50

        os.kill(demo.proc.pid, signal.SIGINT)
        assert demo.finish(timeout=60) == 0, demo.output
    finally:
        demo.kill()

    assert "Demo stopped" in demo.output
    assert port_is_free(web_port) and port_is_free(aws_port)
    assert processes_with_env(f"VPNCTL_SQLITE_PATH={tmp_path}") == []
