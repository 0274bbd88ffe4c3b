"""Single sign-on in a real browser, through the provider's own login page.

Debian's Chromium (tests/test_browser.py's fixture) against the live server and the real
OpenID provider (tests/oidc_helpers.py): a requester chooses *Sign in with single sign-on*,
types their login and password on the provider's page, and lands on vpnctl's dashboard
under their name; someone in no mapped group lands on the page saying they have no role.
Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from playwright.sync_api import Browser, expect

from maintenance import roles
from maintenance.choices import AuditAction
from maintenance.models import AuditEvent
from tests import test_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

chromium = test_browser.chromium  # Debian's Chromium; CI fails without it


def test_sign_in_through_the_providers_login_page(chromium, live_server, sso_on):
    # The database is read before the browser opens and after it closes (test_browser.py
    # says why: Playwright's loop in this thread).
    roles.sync_roles(Group, Permission)
    with test_browser.headless_chromium(chromium) as browser:
        sign_in_and_out(browser, live_server.url)

    alice = User.objects.get(username="sso.alice")
    assert [g.name for g in alice.groups.all()] == [roles.REQUESTER]
    assert not User.objects.get(username="sso.carol").groups.exists()
    methods = AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).values_list(
        "details__method", flat=True
    )
    assert list(methods) == ["oidc", "oidc"]


def sign_in_and_out(browser: Browser, url: str) -> None:
    """Alice (a requester), then Carol (no mapped group), each in a browser of their own."""
    test_browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for login, name, sees in [
        ("alice", "Alice Anders", "Pending maintenance by deadline"),
        ("carol", "Carol Chen", "Your account has no role yet."),
    ]:
        context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            page.goto("/")
            expect(page.get_by_role("heading", name="Log in to vpnctl")).to_be_visible()
            page.get_by_role("link", name="Sign in with single sign-on").click()
            # The provider's own login page, on its own origin.
            expect(page.get_by_placeholder("Enter any login")).to_be_visible()
            assert not page.url.startswith(url)
            test_browser.shoot(page, f"sso-{login}-1-provider")
            page.get_by_placeholder("Enter any login").fill(login)
            page.get_by_placeholder("and password").fill("correct horse battery staple")
            page.get_by_role("button", name="Sign-in").click()
            expect(page.get_by_text(sees).first).to_be_visible()
            expect(page.get_by_text(name)).to_be_visible()
            assert page.url.startswith(url)
            test_browser.shoot(page, f"sso-{login}-2-vpnctl")
            page.get_by_role("button", name="Log out").click()
            expect(page.get_by_role("heading", name="Log in to vpnctl")).to_be_visible()
        finally:
            context.close()
