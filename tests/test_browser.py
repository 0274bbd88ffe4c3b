"""End to end in a real browser: one person asks for maintenance, another approves, it runs.

Two people in two browser contexts (their own cookies) against the live server, a real
``manage.py qcluster`` worker on the same test database, and the simulated AWS behind HTTP:

1. a connection synced from the simulated AWS: tunnel 1 has pending maintenance, tunnel 2 is UP;
2. the requester logs in, finds the tunnel, reads the plan and the risks, asks for the
   change "as soon as approved" and lands on the request, waiting for approval;
3. the approver (on a phone-sized screen) opens "Waiting for my approval" and approves it;
4. the requester's page, never reloaded, follows the change through its own polling: the
   tunnel DOWN, UP again, then "Succeeded"; AWS accepted exactly one ReplaceVpnTunnel.

Screenshots of each step go to var/screenshots/. Elements are found by role and label, as
a screen reader would find them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from maintenance import sync
from maintenance.choices import ChangeStatus
from maintenance.models import ChangeRequest
from simulator import Timings, TunnelSpec
from tests.cluster_helpers import ROOT, SCHEDULER_PERIOD_SECONDS, kill, log_tail, start_cluster

pytestmark = [
    pytest.mark.browser,
    pytest.mark.cluster,
    # live_server needs committed data that its thread and the worker process can read.
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# The whole run, from the approval to "Succeeded", is bounded by this.
BUDGET_SECONDS = 150
# Each look at the running change waits for django-q2's scheduler (every 30 s): the outage
# outlasts one period, so some look is sure to see the tunnel DOWN, and the next one UP.
OUTAGE_SECONDS = SCHEDULER_PERIOD_SECONDS + 15


@dataclass
class Scene:
    connection_id: str
    pending_ip: str  # tunnel 1, with pending maintenance
    other_ip: str  # tunnel 2, UP


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium. A skipped browser test proves nothing, so CI fails without it."""
    if not CHROMIUM.exists():
        message = (
            f"{CHROMIUM} is missing: the browser test drives Debian's Chromium, never a "
            "downloaded one. Install it with scripts/ensure-chromium.sh "
            "(apt-get install chromium)."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture
def scene(aws_server, accounts) -> Scene:
    aws_server.configure(timings=Timings(replace_down_seconds=OUTAGE_SECONDS, modify_seconds=1))
    connection_id = aws_server.create_connection(
        region="ap-northeast-1",
        name="tokyo-office",
        tunnels=[
            TunnelSpec(
                pending_maintenance="Available",
                auto_apply_after=timezone.now() + timedelta(days=5),
            ),
            TunnelSpec(),
        ],
    )
    sync.run_sync()
    # The connection page numbers tunnels by outside IP: make "tunnel 1" the pending one.
    pending_ip, other_ip = aws_server.tunnel_ips(connection_id)
    if _ip_key(pending_ip) > _ip_key(other_ip):
        aws_server.set_tunnel(connection_id, pending_ip, pending_maintenance="None")
        aws_server.set_tunnel(
            connection_id,
            other_ip,
            pending_maintenance="Available",
            auto_apply_after=timezone.now() + timedelta(days=5),
        )
        sync.run_sync()
        pending_ip, other_ip = other_ip, pending_ip
    return Scene(connection_id, pending_ip, other_ip)


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ip.split("."))


@pytest.fixture
def cluster(aws_server, scene, settings) -> Iterator[subprocess.Popen]:
    """The worker, started early (it takes a few seconds), killed whatever happens."""
    process = start_cluster(settings.AWS_ENDPOINT_URL)
    yield process
    kill(process)


@contextmanager
def headless_chromium(executable: str) -> Iterator[Browser]:
    """Debian's Chromium through Playwright's sync API, closed whatever happens."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, username: str) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in to vpnctl")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def local_input(moment: datetime) -> str:
    """How a datetime-local input takes a moment, in the zone the pages use (no profile)."""
    zone = zoneinfo.ZoneInfo(django_settings.DISPLAY_TIME_ZONE)
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def test_request_approve_and_watch_it_run(
    chromium, live_server, scene, cluster, requester, approver, aws_server
):
    # Playwright's sync API runs an asyncio loop in this thread while the browser is open:
    # Django refuses ORM calls then (SynchronousOnlyOperation), and a connection opened under
    # DJANGO_ALLOW_ASYNC_UNSAFE would belong to another context, which the test database's
    # teardown cannot close (PostgreSQL then refuses to drop it). So the database is read
    # before the browser opens and after it has closed, never in between.
    with headless_chromium(chromium) as browser:
        pk = walk_through(browser, live_server.url, scene, requester.username, approver.username)

    assert aws_server.calls("ReplaceVpnTunnel", outcome="ok") == 1
    change = ChangeRequest.objects.select_related("execution").get(pk=pk)
    assert change.status == ChangeStatus.SUCCEEDED
    # The worker process ran it, not this one.
    assert change.execution.worker.split(":")[1] != str(os.getpid())


def walk_through(browser: Browser, url: str, scene: Scene, requester: str, approver: str) -> int:
    """Steps 2 to 4 in the browser; returns the request's number."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    rei = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    aiko = browser.new_context(base_url=url, viewport={"width": 390, "height": 844})
    rei.set_default_timeout(20_000)
    aiko.set_default_timeout(20_000)
    page = rei.new_page()
    try:
        # 2. The requester asks for the change.
        log_in(page, requester)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Connections").click()
        page.get_by_role("link", name=scene.connection_id).click()
        expect(page.get_by_role("heading", name=f"Tunnel 1 — {scene.pending_ip}")).to_be_visible()
        shoot(page, "1-connection")
        page.get_by_role("link", name=f"Request maintenance for tunnel {scene.pending_ip}").click()

        expect(page.get_by_role("heading", level=1)).to_contain_text(
            "Request a change: Apply pending maintenance"
        )
        plan = page.get_by_role("region", name="What will happen")
        expect(plan).to_contain_text("ReplaceVpnTunnel")
        expect(plan).to_contain_text("This tunnel goes DOWN for several minutes.")
        expect(plan).to_contain_text(f"Meanwhile the other tunnel, {scene.other_ip}, carries")
        expect(page.get_by_role("region", name="Risks")).to_be_visible()
        page.get_by_label("Reason").fill("Apply AWS's pending maintenance before its deadline.")
        page.get_by_label("As soon as approved").check()
        page.get_by_label("Window closes").fill(local_input(timezone.now() + timedelta(hours=2)))
        shoot(page, "2-request-form")
        page.get_by_role("button", name="Submit request").click()

        expect(page).to_have_url(re.compile(r"/requests/\d+/$"))
        pk = int(re.search(r"/requests/(\d+)/$", page.url).group(1))
        status = page.get_by_role("status").filter(has_text="Status:")
        expect(status).to_contain_text("Waiting for approval")
        expect(status).to_contain_text("This page updates itself")
        # Anything the page shows from here on, its own polling brought: proof it never reloads.
        page.evaluate("window.vpnctlNotReloaded = true")
        shoot(page, "3-waiting-for-approval")

        # 3. The approver, in a browser context of their own, approves it.
        other = aiko.new_page()
        log_in(other, approver)
        other.get_by_role("link", name="Waiting for my approval").click()
        other.get_by_role("link", name=f"#{pk} Apply pending maintenance").click()
        expect(other.get_by_role("heading", level=1)).to_contain_text(f"Request #{pk}")
        other.get_by_label("Comment").fill("Tunnel 2 is UP and carries the traffic. Go.")
        shoot(other, "4-approver-decides")
        other.get_by_role("button", name="Approve").click()
        expect(other.get_by_role("status").first).to_contain_text(f"You approved request #{pk}")
        shoot(other, "5-approver-approved")

        # 4. The requester's page follows the change by itself.
        deadline = time.monotonic() + BUDGET_SECONDS

        def left_ms() -> float:
            return max(1.0, deadline - time.monotonic()) * 1000

        timeline = page.get_by_role("region", name="Timeline")
        expect(timeline).to_contain_text(f"{approver} approved", timeout=left_ms())
        expect(timeline).to_contain_text(
            f"Tunnel {scene.pending_ip} is DOWN: AWS is working on it.", timeout=left_ms()
        )
        expect(status).to_contain_text("Running")
        shoot(page, "6-tunnel-down")
        expect(timeline).to_contain_text(
            f"Tunnel {scene.pending_ip} is UP again.", timeout=left_ms()
        )
        expect(status).to_contain_text("Succeeded", timeout=left_ms())
        expect(status).to_contain_text("Done: the change is applied and the tunnel is UP.")
        expect(timeline).to_contain_text("Succeeded: the tunnel is UP and the change is done.")
        shoot(page, "7-succeeded")
        assert page.evaluate("window.vpnctlNotReloaded") is True
    except BaseException:
        shoot(page, "failure-requester")
        print(f"The cluster's log ends:\n{log_tail()}")
        raise
    finally:
        rei.close()
        aiko.close()
    return pk
