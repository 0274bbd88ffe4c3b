"""Run the whole demo on this machine; Ctrl-C stops all of it.

Steps, each started as soon as what it needs is there:
1. Start the simulated AWS on loopback and seed it once it answers; meanwhile migrate a
   new demo database (every run starts from an empty one: the simulator keeps nothing
   between runs either) and collect the static files.
2. Start the web server (gunicorn); create the demo users (new random passwords each run),
   the demo accounts and, where the command exists, the schedules; then sync.
3. Start the django-q2 worker, wait until the login page answers, and print the address
   and the logins.
4. Every 30 s, ask ``manage.py check_worker`` whether the worker still runs tasks, and
   restart it when it has not been heard of for ``VPNCTL_WORKER_STALE_SECONDS``
   (django-q2 can stall for good: README, "Running it in production").
5. On Ctrl-C, SIGTERM or SIGHUP, or when one of the three stops by itself, stop the web
   server and the worker, then the simulated AWS. From the first signal on, signals only
   hurry that: make forwards the SIGTERM it gets, so one often comes twice at once, and
   a copy within a second is ignored; a later one kills what is left.

Every child runs in its own process group, so that a Ctrl-C in the terminal reaches this
command only and the shutdown happens in order, and so that stopping a child's group also
stops the processes it started (gunicorn's workers, qcluster's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser

LOOPBACK = "127.0.0.1"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A second signal this soon after the first is its copy (make forwards what it gets).
SAME_SIGNAL_SECONDS = 1.0
# How often the demo asks whether the worker still runs tasks.
WORKER_CHECK_SECONDS = 30.0


class Stop(Exception):
    """Raised by the signal handler to leave whatever the command is waiting for."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Step:
    """A one-off command (migrate, seed, ...) running in the background."""

    title: str
    proc: subprocess.Popen
    log: IO[str]
    show: bool
    started: float


class Service:
    """A long-running child in its own process group, its output prefixed with its name."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], out: IO[str], lock: threading.Lock
    ) -> None:
        self.name = name
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self._out = out
        self._lock = lock
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            # A closed terminal (SIGHUP) must not stop the copy: the child would block on
            # a full pipe.
            with self._lock, contextlib.suppress(OSError, ValueError):
                self._out.write(f"[{self.name}] {line}")
                self._out.flush()

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """Ask the service to stop. Only its leader: gunicorn's master and qcluster's
        sentinel stop their own processes in order, and do it badly when those are
        signalled behind their back."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def signal_group(self, signum: int) -> None:
        # The group outlives its leader while a grandchild is left: signal it all the same.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


class Command(BaseCommand):
    help = (
        "Start the simulated AWS, a new demo database, the web server and the worker, "
        "and print the logins. Ctrl-C stops all of it. Used by `make demo`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="web server port")
        parser.add_argument("--aws-port", type=int, default=5055, help="simulated AWS port")
        parser.add_argument(
            "--connections",
            type=int,
            default=60,
            help="VPN connections to seed in the simulated AWS",
        )
        parser.add_argument(
            "--replace-down-seconds",
            type=float,
            help="how long a replaced tunnel stays DOWN (default: run_simulator's)",
        )
        parser.add_argument(
            "--modify-seconds",
            type=float,
            help="how long a connection stays 'modifying' (default: run_simulator's)",
        )
        parser.add_argument(
            "--data-dir",
            default=str(Path(settings.BASE_DIR) / "var" / "demo"),
            help="where the demo database lives (emptied at every start)",
        )
        parser.add_argument("--password", help="one password for all demo users (default: random)")

    # -- the run ---------------------------------------------------------------------------

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError("run_demo only runs with VPNCTL_MODE=demo (make demo sets it).")
        self.options = options
        self.lock = threading.Lock()
        self.services: list[Service] = []
        self.steps: list[Step] = []
        self.hurry = False
        self.stopping_since: float | None = None
        self.spawning = False
        self.pending_signal: int | None = None
        py = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        self.worker_probe = [*py, "check_worker"]
        # A new cluster's first sweeper run comes 30-90 s after it starts.
        self.worker_grace = float(settings.WORKER_STALE_SECONDS)
        self.restart_grace = 10.0
        self.next_worker_check = 0.0
        self.web_url = f"http://{LOOPBACK}:{options['port']}/"
        self.aws_url = f"http://{LOOPBACK}:{options['aws_port']}"
        for port in (options["port"], options["aws_port"]):
            ensure_port_free(port)
        self.env = self.demo_env(Path(options["data_dir"]))
        self.fleet = ""  # what demo_policy printed, for the banner

        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_signal)
        started = time.monotonic()
        exit_code = 0
        try:
            logins = self.start_all()
            self.banner(logins, time.monotonic() - started)
            self.watch()
        except Stop as stop:
            self.say(f"\n{stop.args[0]}: stopping the demo...")
        except CommandError as exc:
            self.say(self.style.ERROR(f"\n{exc}"))
            exit_code = 1
        finally:
            self.stopping()
            self.kill_steps()
            self.stop_all()
        if exit_code:
            sys.exit(exit_code)

    def start_all(self) -> str:
        """Start everything, each step as soon as what it needs is there; return the logins."""
        o = self.options
        py = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        simulator = [*py, "run_simulator", "--port", str(o["aws_port"])]
        for option in ("replace_down_seconds", "modify_seconds"):
            if o[option] is not None:
                simulator += ["--" + option.replace("_", "-"), str(o[option])]
        self.start_service("aws", simulator)
        database = self.start_steps(
            ("migrate a new database", [*py, "migrate", "--noinput"], False),
            ("collect static files", [*py, "collectstatic", "--noinput"], False),
        )
        self.wait_for_port("aws", o["aws_port"])
        seed = [*py, "seed_simulator", "--endpoint", self.aws_url]
        seeding = self.start_steps(
            ("seed the simulated AWS", [*seed, "--connections", str(o["connections"])], True)
        )
        self.finish_steps(database)
        # The web server has all it needs now: let it boot while the rest runs.
        self.start_service("web", self.gunicorn_args())
        users = [*py, "demo_users"]
        if o["password"]:
            users += ["--password", o["password"]]
        steps = [
            ("create the demo users", users, False),
            ("create the demo AWS accounts", [*py, "demo_accounts"], True),
        ]
        if "setup_schedules" in get_commands():
            steps.append(("set up the schedules", [*py, "setup_schedules"], False))
        logins = self.finish_steps(self.start_steps(*steps))[0]
        self.fleet = self.finish_steps(
            self.start_steps(("create the demo maintenance policy", [*py, "demo_policy"], False))
        )[0]
        self.finish_steps(seeding)
        self.finish_steps(
            self.start_steps(("sync from the simulated AWS", [*py, "sync_vpn"], True))
        )
        # The worker last: its schedules would otherwise sync at the same time as the step above.
        self.start_service("worker", [*py, "qcluster"])
        self.wait_for_page("web", self.web_url + "login/")
        return logins

    def gunicorn_args(self) -> list[str]:
        """gunicorn, as in production: two worker processes of four threads each."""
        from gunicorn.config import Config

        args = [sys.executable, "-m", "gunicorn", "vpnctl.wsgi"]
        args += ["--bind", f"{LOOPBACK}:{self.options['port']}"]
        args += ["--workers", "2", "--threads", "4", "--graceful-timeout", "5"]
        if "control_socket_disable" in Config().settings:
            # gunicorn 25+ opens ~/.gunicorn/gunicorn.ctl; two demos would share it.
            args.append("--no-control-socket")
        return args

    def watch(self) -> None:
        """Wait for a signal; if a service stops by itself, stop the rest and fail; restart
        a worker that has not been heard of."""
        self.next_worker_check = time.monotonic() + WORKER_CHECK_SECONDS
        while True:
            for service in self.services:
                if not service.running():
                    raise CommandError(
                        f"The {service.name} process stopped by itself "
                        f"(exit code {service.proc.returncode}); stopping the demo."
                    )
            if time.monotonic() >= self.next_worker_check:
                self.check_worker()
                self.next_worker_check = time.monotonic() + WORKER_CHECK_SECONDS
            time.sleep(0.5)

    def check_worker(self) -> bool:
        """Restart the worker if ``check_worker`` says it has not been heard of; True if so.

        django-q2 stalls for good when a worker dies at the wrong moment (django-q2 issue
        23), and a stalled cluster ignores SIGTERM: it gets SIGKILL after ``restart_grace``.
        """
        worker = self.service("worker")
        if time.monotonic() - worker.started < self.worker_grace:
            return False
        [probe] = self.start_steps(("check the worker", self.worker_probe, False))
        with contextlib.suppress(subprocess.TimeoutExpired):
            probe.proc.wait(timeout=60)
        probe.log.seek(0)
        said = probe.log.read().strip().splitlines()
        self.kill_steps()  # the probe, if it still runs, and its output file
        if probe.proc.returncode == 0:
            return False
        why = said[-1] if said else f"check_worker exit code {probe.proc.returncode}"
        self.say(f"  {why.removeprefix('CommandError: ')}: restarting the worker")
        worker.terminate()
        deadline = time.monotonic() + self.restart_grace
        while worker.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker.signal_group(signal.SIGKILL)
        worker.proc.wait()
        self.services.remove(worker)
        self.start_service("worker", list(worker.proc.args))
        return True

    # -- environment ---------------------------------------------------------------------

    def demo_env(self, data_dir: Path) -> dict[str, str]:
        """The children's environment: a fresh SQLite file, the simulator, fake keys."""
        data_dir.mkdir(parents=True, exist_ok=True)
        db = data_dir / "vpnctl.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{db}{suffix}").unlink()
        env = dict(os.environ)
        # Nothing may lead the demo to a real database or a real AWS account.
        for name in (
            "DATABASE_URL",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "SECRET_KEY",
        ):
            env.pop(name, None)
        env.update(
            {
                "VPNCTL_MODE": "demo",
                "VPNCTL_SQLITE_PATH": str(db),
                "VPNCTL_AWS_ENDPOINT_URL": self.aws_url,
                "VPNCTL_SITE_URL": self.web_url.rstrip("/"),
                "VPNCTL_WATCH_INTERVAL_SECONDS": "5",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.db_path = db
        return env

    # -- children ------------------------------------------------------------------------

    @contextlib.contextmanager
    def spawning_child(self) -> Iterator[None]:
        """Hold a signal back while a child starts, so that no child is left untracked."""
        self.spawning = True
        try:
            yield
        finally:
            self.spawning = False
        if self.pending_signal is not None:
            self.stopping()
            raise Stop(self.pending_signal)

    def start_service(self, name: str, args: list[str]) -> Service:
        with self.spawning_child():
            service = Service(name, args, self.env, sys.stdout, self.lock)
            self.services.append(service)
        return service

    def start_steps(self, *steps: tuple[str, list[str], bool]) -> list[Step]:
        """Start one-off commands side by side: (title, arguments, show the output?)."""
        started = []
        for title, args, show in steps:
            log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
            with self.spawning_child():
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    args,
                    cwd=settings.BASE_DIR,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                step = Step(title, proc, log, show, time.monotonic())
                self.steps.append(step)
            started.append(step)
        return started

    def finish_steps(self, steps: list[Step]) -> list[str]:
        """Wait for the steps; fail with a step's output if it failed. Returns their outputs."""
        outputs = []
        for step in steps:
            step.proc.wait()
            step.log.seek(0)
            output = step.log.read()
            step.log.close()
            self.steps.remove(step)
            outputs.append(output)
            if step.proc.returncode != 0:
                raise CommandError(
                    f"Step failed: {step.title} (exit code {step.proc.returncode}):\n"
                    f"$ {' '.join(step.proc.args[1:])}\n{output.rstrip()}"
                )
            self.say(f"  ok  {step.title} ({time.monotonic() - step.started:.1f} s)")
            if step.show and output.strip():
                self.say("\n".join("        " + line for line in output.rstrip().splitlines()))
        return outputs

    def kill_steps(self) -> None:
        for step in self.steps:
            if step.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(step.proc.pid, signal.SIGKILL)
                step.proc.wait()
            step.log.close()
        self.steps.clear()

    def wait_for_port(self, name: str, port: int, timeout: float = 60) -> None:
        service = self.service(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.running():
                raise CommandError(f"The {name} process exited (code {service.proc.returncode}).")
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
                took = time.monotonic() - service.started
                self.say(f"  ok  {name} answers on port {port} ({took:.1f} s)")
                return
            time.sleep(0.1)
        raise CommandError(f"The {name} process did not open port {port} in {timeout:.0f} s.")

    def wait_for_page(self, name: str, url: str, timeout: float = 60) -> None:
        service = self.service(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.running():
                raise CommandError(f"The {name} process exited (code {service.proc.returncode}).")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        self.say(f"  ok  {url} answers")
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise CommandError(f"{url} did not answer in {timeout:.0f} s.")

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    # -- stopping ------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: object) -> None:
        if self.spawning:
            self.pending_signal = signum
            return
        # Before raising: a second signal must not raise again and cut the cleanup short
        # (that left the services running, once in eleven `make demo` stops).
        self.stopping()
        raise Stop(signum)

    def stopping(self) -> None:
        """From now on a signal only hurries the stop (SIGKILL instead of waiting)."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_signal_while_stopping)

    def on_signal_while_stopping(self, signum: int, frame: object) -> None:
        assert self.stopping_since is not None
        if time.monotonic() - self.stopping_since >= SAME_SIGNAL_SECONDS:
            self.hurry = True

    def stop_all(self) -> None:
        """Web server and worker first (they call the simulator), then the simulator."""
        if not self.services:
            return
        first = [s for s in self.services if s.name != "aws"]
        last = [s for s in self.services if s.name == "aws"]
        for group, grace in ((first, 15.0), (last, 10.0)):
            for service in group:
                if service.running():
                    service.terminate()
            deadline = time.monotonic() + grace
            while any(s.running() for s in group):
                if self.hurry or time.monotonic() > deadline:
                    for service in group:
                        if service.running():
                            self.say(f"  {service.name} did not stop: killing it")
                    break
                time.sleep(0.1)
            for service in group:
                # Also whatever the service left behind in its process group.
                service.signal_group(signal.SIGKILL)
                service.proc.wait()
        self.say("Demo stopped: simulated AWS, web server and worker are down.")

    # -- output --------------------------------------------------------------------------

    def say(self, text: str) -> None:
        # Never fail on a closed terminal (SIGHUP): the stop must go on.
        with self.lock, contextlib.suppress(OSError, ValueError):
            self.stdout.write(text)
            self.stdout.flush()

    def banner(self, logins: str, seconds: float) -> None:
        rel_db = os.path.relpath(self.db_path, settings.BASE_DIR)
        self.say(
            "\n".join(
                [
                    "",
                    self.style.SUCCESS(f"vpnctl demo is ready ({seconds:.1f} s)."),
                    "",
                    f"  Open {self.web_url} and sign in as one of:",
                    "",
                    logins.rstrip(),
                    "",
                    f"  Simulated AWS: {self.aws_url} ({self.options['connections']} connections,"
                    " accounts default and second)",
                    f"  Database: {rel_db} (new at every start; passwords too)",
                    "  Emails are printed below by the web server and the worker.",
                    "",
                    *("  " + line for line in self.fleet.strip().splitlines()),
                    "  Send an AWS Health event, as EventBridge would (README, Fleet automation):",
                    f"    VPNCTL_MODE=demo VPNCTL_AWS_ENDPOINT_URL={self.aws_url}"
                    f" {sys.executable} manage.py emit_health_event <vpn-… of a staging"
                    " connection> --pending-days 10 --url "
                    f"{self.web_url.rstrip('/')} --token <the token above>",
                    "",
                    "  Press Ctrl-C to stop the web server, the worker and the simulated AWS.",
                    "",
                ]
            )
        )


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise CommandError(
                f"Port {port} on {LOOPBACK} is in use ({exc.strerror}). Is another demo still "
                f"running? `ss -ltnp 'sport = :{port}'` shows which process holds it."
            ) from exc
