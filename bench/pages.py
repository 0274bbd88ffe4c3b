"""How fast is every page of vpnctl over a big estate, next to the Django admin's lists?

    .venv/bin/python bench/pages.py [--connections 5000] [--requests 30] [--pages SUBSTR]
                                    [--keep] [--reuse PATH|DBNAME] [--timeout 120] [--budget 60]
                                    [--sql]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/pages.py

Steps:

1. A database: a new temporary SQLite file (``VPNCTL_SQLITE_PATH``), or with DATABASE_URL a
   scratch PostgreSQL database, ``vpnctl_bench_pages`` on that server (never the database
   the URL names), created and dropped here. Migrated, then seeded by ``seed_fleet.seed``:
   by default 5,000 connections, 10,000 tunnels, 2,000 change requests and 100,000 chained
   audit events (``--connections`` scales it all). PostgreSQL then gets the VACUUM ANALYZE
   that autovacuum would give it (SQLite is left without statistics, as in production).
   ``--keep`` keeps the database and prints the ``--reuse`` that skips the seeding next
   time (for iterating on a fix; migrations are applied to a reused database).
2. Settings as in production (``VPNCTL_MODE=production``: DEBUG off, no simulator app,
   static files collected with their manifest, served by WhiteNoise), but for plain http
   on loopback: a random SECRET_KEY, secure cookies and the https redirect off, and the
   static files collected into the scratch directory. AWS: fake credentials and an
   endpoint on a closed loopback port: no page may call AWS, and one that tried would
   fail here rather than reach an account.
3. Queries: every page through Django's test Client in this process, signed in as
   ``bench-lead`` (every role, staff), under CaptureQueriesContext, against the same
   database: the count does not depend on the server. The second request of a page is
   counted (the first fills per-process caches), unless the first took over 5 s.
4. Time: gunicorn on a free loopback port as ``run_demo`` starts it (2 workers of 4
   threads), signed in through the real login form (CSRF token, django-axes). Per page, 2
   warm-ups then ``--requests`` sequential GETs, timed to the last byte of the body: p50,
   p95 and the size of the body. Then the admin changelist of the page's model, measured
   the same way in the same run; ``ratio`` is the page's p50 over the admin's. The admin
   list is the page's model's (``admin_pages``), with the page's filter where the admin
   has it; batches, which have no admin, are compared with the batch requests' list, and
   the preferences page with nothing.
   A request slower than ``--timeout`` seconds is reported as a timeout; once a page's
   timed requests have taken ``--budget`` seconds, it stops (at least 3 are timed, and
   the notes say how many).
5. The table, each miss of a target marked ✗; for the pages that miss one, the time spent
   in-process and in queries, with the slowest query (``--sql``: in full, parameters
   inlined, ready for EXPLAIN); and a last line that sums it up.

Targets: at most 10 queries a page; p50 at most half its admin changelist's; 300 KB.
About 6 minutes at 5,000 connections on 2 cores. Not part of the test suite
(tests/test_bench_pages.py runs the seeding and step 3 at a tiny size).
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import math
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent  # seed_fleet's directory, first on sys.path as a script
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRATCH_PG = "vpnctl_bench_pages"
MAX_QUERIES = 10
MAX_RATIO = 0.5
MAX_KB = 300
MISS = " ✗"
SLOW_FIRST_REQUEST = 5.0  # seconds: past this, the first in-process request is the count
SLOWEST_SHOWN = 8  # pages whose slowest query the report prints


# --------------------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    admin: str | None  # a key of admin_pages(), or None: no admin counterpart
    login: bool = True
    headers: tuple[tuple[str, str], ...] = ()


def admin_pages(s: Any) -> dict[str, str]:
    """The admin changelists the pages are compared with (100 rows a page, ``?p=``)."""
    base = "/admin/maintenance"
    audit_last = max(1, math.ceil(s.audit_events / 100))
    deep = _deep_page(s)
    return {
        "VpnConnection": f"{base}/vpnconnection/",
        "VpnConnection ?account": f"{base}/vpnconnection/?account__id__exact={s.account}",
        # The same rows as the page's ?page=N, at the admin's 100 a page.
        "VpnConnection same offset": f"{base}/vpnconnection/?p={(deep - 1) * 50 // 100 + 1}",
        "Tunnel": f"{base}/tunnel/",
        "Tunnel lifecycle off": f"{base}/tunnel/?lifecycle_control__exact=0",
        "ChangeRequest": f"{base}/changerequest/",
        "ChangeRequest waiting": f"{base}/changerequest/?status__exact=pending_approval",
        "ChangeRequest ?requester": f"{base}/changerequest/?requester__id__exact={s.lead.pk}",
        "ChangeRequest ?batch": f"{base}/changerequest/?batch__isnull=False",
        "AuditEvent": f"{base}/auditevent/",
        "AuditEvent ?account": f"{base}/auditevent/?account__id__exact={s.account}",
        "AuditEvent ?action": f"{base}/auditevent/?action__exact=maintenance.applied_by_aws",
        "AuditEvent last page": f"{base}/auditevent/?p={audit_last}",
        "AuditEvent middle page": f"{base}/auditevent/?p={max(1, audit_last // 2)}",
        "SyncRun": f"{base}/syncrun/",
    }


def _deep_page(s: Any) -> int:
    """?page=50 where there are 50 pages of connections (50 a page), else the last one."""
    return max(1, min(50, math.ceil(s.connections / 50)))


def page_list(s: Any) -> list[Page]:
    """Every page of the product, with the rows of ``seed_fleet.samples()``."""
    fetch = (("X-Requested-With", "fetch"),)  # request-live.js's refresh
    return [
        Page("dashboard", "/", "VpnConnection"),
        Page("connections", "/connections/", "VpnConnection"),
        Page("connections ?pending=yes", "/connections/?pending=yes", "VpnConnection"),
        Page("connections ?aws_applied=1", "/connections/?aws_applied=1", "VpnConnection"),
        Page("connections ?deadline_within=7", "/connections/?deadline_within=7", "VpnConnection"),
        Page(
            "connections ?no_approved_request=1",
            "/connections/?no_approved_request=1",
            "VpnConnection",
        ),
        Page(
            "connections ?account", f"/connections/?account={s.account}", "VpnConnection ?account"
        ),
        Page(
            f"connections ?page={_deep_page(s)}",
            f"/connections/?page={_deep_page(s)}",
            "VpnConnection same offset",
        ),
        Page("connection", f"/connections/{s.connection}/", "VpnConnection"),
        Page("connection history", f"/connections/{s.busy_connection}/history/", "Tunnel"),
        Page("tunnel history", f"/tunnels/{s.busy_tunnel}/history/", "Tunnel"),
        Page("request form", f"/tunnels/{s.pending_tunnel}/request/replace/", "ChangeRequest"),
        Page("requests", "/requests/", "ChangeRequest"),
        Page("requests ?account", f"/requests/?account={s.account}", "ChangeRequest"),
        Page("requests waiting for me", "/requests/waiting/", "ChangeRequest waiting"),
        Page("my requests", "/requests/mine/", "ChangeRequest ?requester"),
        Page("request (succeeded)", f"/requests/{s.request_done}/", "ChangeRequest"),
        Page("request (waiting)", f"/requests/{s.request_waiting}/", "ChangeRequest"),
        Page(
            "request live refresh",
            f"/requests/{s.request_waiting}/timeline/",
            "ChangeRequest",
            headers=fetch,
        ),
        Page("batches", "/batches/", "ChangeRequest ?batch"),
        Page("batch", f"/batches/{s.batch}/", "ChangeRequest ?batch"),
        Page(
            "batch form (account, lifecycle off)",
            f"/batches/new/?account={s.account}&lifecycle_off=on",
            "Tunnel lifecycle off",
        ),
        Page("audit", "/audit/", "AuditEvent"),
        Page("audit ?account", f"/audit/?account={s.account}", "AuditEvent ?account"),
        Page(
            "audit ?action",
            "/audit/?action=maintenance.applied_by_aws",
            "AuditEvent ?action",
        ),
        # The audit log pages by position in the chain: the oldest events, and a page deep
        # in the middle of the log (as "Older" links reach it).
        Page("audit oldest page", "/audit/?oldest=1", "AuditEvent last page"),
        Page(
            "audit deep page",
            f"/audit/?before={max(1, s.audit_events // 2)}",
            "AuditEvent middle page",
        ),
        Page("timeline", "/timeline/", "ChangeRequest"),
        Page("calendar", "/calendar/", "ChangeRequest"),
        Page("calendar feed .ics", f"/calendar/{s.feed_token}.ics", "ChangeRequest", login=False),
        Page("sync runs", "/sync/", "SyncRun"),
        Page("sync run", f"/sync/{s.sync_run}/", "SyncRun"),
        Page("preferences", "/preferences/", None),
        Page("chat channels", "/chat/", None),
        Page("chat channel form", "/chat/new/", None),
        Page("chat delivery log", "/chat/deliveries/", None),
        Page("plan", "/plan/", "Tunnel"),
        Page("plan ?problem", "/plan/?problem=nothing_planned", "Tunnel"),
        Page("policies", "/policies/", None),
        Page("policy", f"/policies/{s.policy}/", None),
        Page("health events", "/health-events/", None),
    ]


def selected(pages: list[Page], pattern: str | None) -> list[Page]:
    if not pattern:
        return pages
    return [p for p in pages if pattern.lower() in p.name.lower()]


# --------------------------------------------------------------------------------------
# Queries, in this process
# --------------------------------------------------------------------------------------


@dataclass
class Counted:
    name: str
    status: int
    queries: int
    seconds: float
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, sql)


def count_queries(pages: list[Page], lead: Any) -> list[Counted]:
    """Each page through the test Client, signed in as `lead`: its status and queries."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from maintenance.models import WorkerHeartbeat

    signed_in, anonymous = Client(), Client()
    signed_in.force_login(lead, backend=session_backend())
    if signed_in.get("/preferences/").status_code != 200:
        raise SystemExit("the in-process client is not signed in")
    counted = []
    for page in pages:
        client = signed_in if page.login else anonymous
        headers = dict(page.headers)
        for attempt in range(2):
            _beat(WorkerHeartbeat)
            timings: list[tuple[float, str]] = []
            started = time.perf_counter()
            with (
                CaptureQueriesContext(connection) as queries,
                connection.execute_wrapper(_Timer(timings)),
            ):
                response = client.get(page.url, headers=headers)
                _drain(response)
            seconds = time.perf_counter() - started
            if attempt == 0 and seconds > SLOW_FIRST_REQUEST:
                break
        timings.sort(key=lambda item: -item[0])
        counted.append(Counted(page.name, response.status_code, len(queries), seconds, timings))
    return counted


def session_backend() -> str:
    """The first authentication backend that can load a session's user (not django-axes's,
    which only refuses sign-ins): whatever the settings name, the one real sign-ins use."""
    from django.conf import settings
    from django.contrib.auth import load_backend

    for path in settings.AUTHENTICATION_BACKENDS:
        if hasattr(load_backend(path), "get_user"):
            return path
    raise SystemExit("no authentication backend loads users")


class _Timer:
    """An execute wrapper noting each query's time to the microsecond (CaptureQueries-
    Context rounds to the millisecond), with its SQL and parameters."""

    def __init__(self, into: list[tuple[float, str]]) -> None:
        self.into = into

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.into.append((time.perf_counter() - started, _with_params(sql, params)))


def _with_params(sql: str, params: Any) -> str:
    if not params or _many(params):
        return sql
    try:
        return sql % tuple(_literal(p) for p in params)
    except (TypeError, ValueError):
        return f"{sql} -- params {params!r}"


def _literal(value: Any) -> str:
    """A parameter as an SQL literal, so that the printed query runs as it is (EXPLAIN)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _many(params: Any) -> bool:
    return isinstance(params, list | tuple) and bool(params) and isinstance(params[0], list | tuple)


def _drain(response: Any) -> None:
    if getattr(response, "streaming", False):
        for _chunk in response.streaming_content:
            pass


def _beat(heartbeat_model: Any) -> None:
    # The worker's sweeper beats every minute; without it the pages would show the
    # "worker not heard of" banner, as they do when it is down.
    from django.utils import timezone

    heartbeat_model.beat(timezone.now(), "bench:pages")


# --------------------------------------------------------------------------------------
# Time, through gunicorn
# --------------------------------------------------------------------------------------


def serve_app() -> Any:
    """gunicorn's entry point (``pages:serve_app()``): vpnctl's WSGI application, reading
    the static files this benchmark collected."""
    import django

    django.setup()
    use_static_root(os.environ["VPNCTL_BENCH_STATIC_ROOT"])
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def use_static_root(path: str) -> None:
    # STATIC_ROOT is not read from the environment; the checkout's staticfiles/ belongs
    # to whoever runs `make demo`. override_settings resets the storages that read it.
    from django.test.utils import override_settings

    override_settings(STATIC_ROOT=path).enable()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(workdir: Path, timeout: float) -> Iterator[str]:
    """gunicorn in its own process group on a free loopback port; yields its base URL."""
    from gunicorn.config import Config

    port = _free_port()
    log = workdir / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--pythonpath", f"{BENCH},{ROOT}"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"]
    command += ["--timeout", str(int(timeout) + 30), "--graceful-timeout", "5"]
    if "control_socket_disable" in Config().settings:
        command.append("--no-control-socket")  # gunicorn 25+: one ~/.gunicorn socket
    command.append("pages:serve_app()")
    with open(log, "wb") as out:
        child = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"gunicorn did not start:\n{tail}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the login's 302 is the answer we check


def sign_in(url: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """Sign in through the real login form; an opener that carries the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    with opener.open(f"{url}/login/", timeout=30) as answer:
        form = answer.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    if token is None:
        raise SystemExit("no CSRF token in the login form")
    body = urllib.parse.urlencode(
        {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/preferences/",  # not the dashboard: a sign-in should not cost 19 s
        }
    ).encode()
    try:
        opener.open(f"{url}/login/", data=body, timeout=30)
    except urllib.error.HTTPError as answer:
        if answer.code != 302:
            raise SystemExit(f"sign-in answered {answer.code}, not 302") from None
    else:
        raise SystemExit("sign-in did not redirect: wrong password, or locked out?")
    if not any(c.name == "sessionid" for c in jar):
        raise SystemExit("sign-in set no session cookie")
    return opener


@dataclass
class Timed:
    status: int = 0
    samples: list[float] = field(default_factory=list)  # seconds
    size: int = 0
    timed_out: bool = False
    budget_hit: bool = False

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.p50
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]


def _get(opener, url: str, headers: tuple, timeout: float) -> tuple[int, int, float]:
    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310
    started = time.perf_counter()
    try:
        with opener.open(request, timeout=timeout) as answer:
            size, status = len(answer.read()), answer.status
    except urllib.error.HTTPError as answer:
        size, status = len(answer.read()), answer.code
    return status, size, time.perf_counter() - started


def time_page(opener, url: str, args: argparse.Namespace, headers: tuple = ()) -> Timed:
    """2 warm-ups (1 if it is slow), then up to --requests sequential GETs."""
    result = Timed()
    try:
        for _ in range(2):
            result.status, result.size, seconds = _get(opener, url, headers, args.timeout)
            if seconds > SLOW_FIRST_REQUEST:
                break
        spent = 0.0
        while len(result.samples) < args.requests:
            result.status, result.size, seconds = _get(opener, url, headers, args.timeout)
            result.samples.append(seconds)
            spent += seconds
            if spent > args.budget and len(result.samples) >= 3:
                result.budget_hit = len(result.samples) < args.requests
                break
    except (TimeoutError, urllib.error.URLError) as exc:
        if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, TimeoutError):
            raise
        result.timed_out = True
    return result


# --------------------------------------------------------------------------------------
# The database and the settings
# --------------------------------------------------------------------------------------


def configure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Production-like environment for this process and gunicorn; returns what the DB is."""
    os.environ.update(
        {
            "VPNCTL_MODE": "production",
            "DJANGO_SETTINGS_MODULE": "vpnctl.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,testserver",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_COOKIES": "false",
            "SECURE_HSTS_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "VPNCTL_BENCH_STATIC_ROOT": str(workdir / "static"),
            # No page may call AWS: fake credentials, and an endpoint nothing listens on.
            "VPNCTL_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "ap-northeast-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/vpnctl-bench-aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/vpnctl-bench-aws-credentials",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    server_url = os.environ.get("DATABASE_URL")
    if server_url:
        name = args.reuse or SCRATCH_PG
        if name == "vpnctl" or name.startswith("test") or not name.startswith("vpnctl_bench"):
            raise SystemExit(f"refusing database {name!r}: use a vpnctl_bench* scratch database")
        parts = urllib.parse.urlsplit(server_url)
        admin_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        os.environ["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
        if not args.reuse:
            _pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg(admin_url, f'CREATE DATABASE "{name}"')
        return {
            "vendor": "PostgreSQL",
            "name": name,
            "admin_url": admin_url,
            "fresh": not args.reuse,
        }
    if args.reuse:
        path = Path(args.reuse)
        if not path.exists():
            raise SystemExit(f"--reuse {path}: no such file")
    elif args.keep:
        path = Path(tempfile.gettempdir()) / f"vpnctl-bench-pages-{args.connections}.sqlite3"
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    else:
        path = workdir / "bench.sqlite3"
    os.environ["VPNCTL_SQLITE_PATH"] = str(path)
    return {"vendor": "SQLite", "name": str(path), "fresh": not args.reuse}


def _pg(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


def prepare(args: argparse.Namespace, db: dict[str, Any], workdir: Path) -> tuple[Any, str, float]:
    """Migrate, seed (unless reused), collect static files; returns (samples, password, s)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from seed_fleet import samples, seed

    call_command("migrate", verbosity=0)
    seconds = 0.0
    if db["fresh"]:
        started = time.perf_counter()
        seed(args.connections, log=lambda text: print(f"  {text}", flush=True))
        seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        # What autovacuum does within a minute of a bulk load, done before measuring rather
        # than during it: planner statistics (the plans, and JIT's cost threshold, follow
        # them) and a visibility map. SQLite gets no ANALYZE, as in production.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    use_static_root(os.environ["VPNCTL_BENCH_STATIC_ROOT"])
    call_command("collectstatic", interactive=False, verbosity=0)
    picked = samples()
    password = secrets.token_urlsafe(16)
    picked.lead.set_password(password)
    picked.lead.save(update_fields=["password"])
    return picked, password, seconds


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def _short(sql: str, width: int = 400) -> str:
    """The SQL with its lists of columns elided, cut at `width` characters."""
    sql = re.sub(r'(?:"\w+"\."\w+"(?: AS "\w+")?, ){2,}', "…, ", sql)
    return sql if len(sql) <= width else sql[:width] + " …"


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def report(
    pages: list[Page],
    counted: dict[str, Counted],
    timed: dict[str, Timed],
    admin_timed: dict[str, Timed],
    args: argparse.Namespace,
) -> list[str]:
    lines = [
        "| page | queries | p50 ms | p95 ms | KB | admin page | admin p50 ms | ratio |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    notes: list[str] = []
    worst = (-1.0, "")
    most = (-1, "")
    largest = (-1.0, "")
    misses: list[str] = []
    for page in pages:
        c, t = counted[page.name], timed[page.name]
        a = admin_timed.get(page.admin) if page.admin else None
        kb = t.size / 1024
        q_cell = f"{c.queries}" + (MISS if c.queries > MAX_QUERIES else "")
        p50 = f">{args.timeout * 1000:,.0f}" if t.timed_out and not t.samples else _ms(t.p50)
        kb_cell = f"{kb:.1f}" + (MISS if kb > MAX_KB else "")
        if t.timed_out:
            p50 += MISS
        ratio_cell, admin_cell = "—", "—"
        if a is not None:
            admin_cell = _ms(a.p50)
            if t.samples and a.samples:
                ratio = t.p50 / a.p50
                ratio_cell = f"{ratio:.2f}"
                if float(ratio_cell) <= MAX_RATIO < ratio:
                    ratio_cell = f"{ratio:.3f}"  # not "0.50 ✗"
                ratio_cell += MISS if ratio > MAX_RATIO else ""
                worst = max(worst, (ratio, page.name))
            elif t.timed_out:
                ratio_cell = "timeout" + MISS
                worst = max(worst, (math.inf, page.name))
        status = (
            "" if c.status == 200 and t.status in (0, 200) else f" (HTTP {c.status}/{t.status})"
        )
        lines.append(
            f"| {page.name}{status} | {q_cell} | {p50} | {_ms(t.p95)} | {kb_cell} | "
            f"{page.admin or '—'} | {admin_cell} | {ratio_cell} |"
        )
        most = max(most, (c.queries, page.name))
        largest = max(largest, (kb, page.name))
        if status or MISS in q_cell + ratio_cell + p50 + kb_cell:
            misses.append(page.name)
        if status:
            notes.append(f"{page.name}: answered HTTP {c.status} in-process, {t.status} served")
        if t.timed_out:
            notes.append(f"{page.name}: a request took over {args.timeout:g} s (--timeout)")
        elif t.budget_hit:
            notes.append(
                f"{page.name}: {len(t.samples)} timed requests (they took over the "
                f"{args.budget:g} s --budget)"
            )
    for key, a in admin_timed.items():
        if a.timed_out:
            notes.append(f"admin {key}: a request took over {args.timeout:g} s (--timeout)")
        elif a.status != 200:
            notes.append(f"admin {key}: HTTP {a.status}")
    lines.append("")
    lines.extend(f"note: {n}" for n in notes)
    # Where the time goes, for the pages that miss a target: the database or Python.
    # The slowest query of the SLOWEST_SHOWN pages whose slowest query takes longest.
    shown = sorted(
        (counted[name] for name in misses if counted[name].slowest),
        key=lambda c: -c.slowest[0][0],
    )[:SLOWEST_SHOWN]
    for c in shown:
        seconds, sql = c.slowest[0]
        total = sum(s for s, _ in c.slowest)
        lines.append(
            f"{c.name}: {c.seconds * 1000:,.0f} ms in-process, {total * 1000:,.1f} ms of it in "
            f"{len(c.slowest)} queries; the slowest, {seconds * 1000:,.1f} ms: "
            + (sql if args.sql else _short(sql))
        )
    ratio_text = {math.inf: "timeout", -1.0: "—"}.get(worst[0], f"{worst[0]:.2f}")
    lines.append(
        f"worst p50 ratio to admin: {ratio_text} ({worst[1]}); most queries: {most[0]} "
        f"({most[1]}); largest page: {largest[0]:.0f} KB ({largest[1]})"
    )
    return lines


# --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=5000, help="scales the whole estate")
    parser.add_argument("--requests", type=int, default=30, help="timed GETs per page")
    parser.add_argument("--pages", help="only the pages whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument(
        "--reuse", help="a kept database: SQLite file, or PostgreSQL name with DATABASE_URL"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--budget", type=float, default=60, help="timed seconds per page")
    parser.add_argument("--sql", action="store_true", help="print the slowest queries in full")
    args = parser.parse_args()
    if args.requests < 1 or args.connections < 1:
        parser.error("--requests and --connections must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="vpnctl-bench-pages-"))
    db = configure(args, workdir)
    try:
        started = time.perf_counter()
        picked, password, seed_seconds = prepare(args, db, workdir)
        setup_seconds = time.perf_counter() - started
        pages = selected(page_list(picked), args.pages)
        if not pages:
            raise SystemExit(f"no page matches {args.pages!r}")
        admins = admin_pages(picked)
        from maintenance.models import ChangeRequest, Tunnel, WorkerHeartbeat

        print(
            f"{db['vendor']} database {db['name']}: {picked.connections:,} "
            f"connections, {Tunnel.objects.count():,} tunnels, "
            f"{ChangeRequest.objects.count():,} requests, {picked.audit_events:,} audit events "
            + (f"(seeded in {seed_seconds:.0f} s; " if db["fresh"] else "(reused; ")
            + f"ready in {setup_seconds:.0f} s)",
            flush=True,
        )
        counted = {c.name: c for c in count_queries(pages, picked.lead)}
        print(f"queries counted for {len(counted)} pages", flush=True)
        timed: dict[str, Timed] = {}
        admin_timed: dict[str, Timed] = {}
        with gunicorn(workdir, args.timeout) as url:
            opener = sign_in(url, picked.lead.username, password)
            anonymous = urllib.request.build_opener()
            for page in pages:
                _beat(WorkerHeartbeat)
                timed[page.name] = time_page(
                    opener if page.login else anonymous, url + page.url, args, page.headers
                )
                print(f"  {page.name}: p50 {_ms(timed[page.name].p50)} ms", flush=True)
                if page.admin and page.admin not in admin_timed:
                    admin_timed[page.admin] = time_page(opener, url + admins[page.admin], args)
                    print(
                        f"  admin {page.admin}: p50 {_ms(admin_timed[page.admin].p50)} ms",
                        flush=True,
                    )
        print()
        print(
            f"{args.requests} sequential GETs a page after 2 warm-ups, gunicorn 2 workers x 4 "
            f"threads on loopback, production settings, {db['vendor']}; "
            f"targets: <= {MAX_QUERIES} queries, p50 <= {MAX_RATIO} x admin, <= {MAX_KB} KB"
        )
        for line in report(pages, counted, timed, admin_timed, args):
            print(line)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep or args.reuse:
            print(f"kept: --reuse {db['name']}", file=sys.stderr)
        elif db["vendor"] == "PostgreSQL":
            _pg(db["admin_url"], f'DROP DATABASE IF EXISTS "{db["name"]}" WITH (FORCE)')
        _remove(workdir)


def _remove(workdir: Path) -> None:
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
