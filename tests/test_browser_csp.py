"""In a real browser, under the real Content-Security-Policy: no page breaks a rule, and the
timeline's bars stand where the page put them (timeline.js, not style attributes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from maintenance.models import BlackoutPeriod
from tests.factories import make_connection, pending
from tests.test_browser import chromium, headless_chromium, log_in  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["/", "/connections/", "/timeline/", "/requests/", "/login/", "/no-such-page/"]


def test_no_page_breaks_the_policy_and_the_timeline_is_placed(
    chromium,  # noqa: F811
    live_server,
    requester,
):
    make_connection(name="tokyo-office", tunnels=[pending(days=10), {}])
    BlackoutPeriod.objects.create(
        name="Year-end freeze",
        starts_at=timezone.now() + timedelta(days=20),
        ends_at=timezone.now() + timedelta(days=24),
    )
    violations: list[str] = []
    with headless_chromium(chromium) as browser:
        context = browser.new_context(base_url=live_server.url)
        page = context.new_page()
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        log_in(page, "rei")
        for path in PAGES:
            page.goto(path)
            page.wait_for_load_state("load")

        page.goto("/timeline/")
        expect(page.locator("table.tl.tl-placed")).to_have_count(1)
        blackout = page.locator("table.tl .tl-bar.tl-blackout").first
        left = blackout.get_attribute("data-left")
        assert blackout.evaluate("el => el.style.left") == f"{left}%"
        assert blackout.evaluate("el => getComputedStyle(el).position") == "absolute"
        deadline = page.locator("table.tl .tl-mark.tl-deadline").first
        assert deadline.evaluate("el => el.style.left") == deadline.get_attribute("data-left") + "%"

        # Without JavaScript the rows read as lists, every description visible.
        plain = browser.new_context(base_url=live_server.url, java_script_enabled=False)
        plain_page = plain.new_page()
        log_in(plain_page, "rei")
        plain_page.goto("/timeline/")
        expect(plain_page.get_by_text("Blackout: Year-end freeze")).to_be_visible()
        expect(plain_page.get_by_text("AWS deadline for tunnel")).to_be_visible()
        context.close()
        plain.close()
    assert violations == []
