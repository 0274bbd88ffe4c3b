"""A real OpenID provider for the single sign-on tests, and a person signing in through it.

``oidc_provider`` (session-wide) installs panva's oidc-provider with
scripts/ensure-oidc-provider.sh, starts ``node tests/oidc_provider/provider.mjs`` on a free
loopback port with vpnctl's live server as its client, waits for its discovery document,
and stops it at the end. In CI (CI set) a provider that cannot be installed or started
fails the tests: a skipped sign-on test proves nothing. ``sso_on`` points vpnctl at it.

``sign_in_at_provider`` is a person with a real HTTP session (``requests``): it opens
vpnctl's /oidc/authenticate/, follows the redirects to the provider's login page, posts
the login form there, and returns the URL the provider sends the browser back to, which a
test may call as it is or tamper with first.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from maintenance import sso

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_DIR = ROOT / "tests" / "oidc_provider"
CLIENT_ID = "vpnctl-tests"
CLIENT_SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"
ROLE_MAP = {
    "net-eng": ("requester",),
    "net-leads": ("approver",),
    "secops": ("auditor",),
    "netadmins": ("admin",),
}
# The provider's people: the login is their `sub`. Any password opens the login page.
ACCOUNTS = {
    "alice": {
        "email": "alice@example.org",
        "given_name": "Alice",
        "family_name": "Anders",
        "name": "Alice Anders",
        "groups": ["net-eng", "wiki-editors"],
    },
    "bob": {"email": "bob@example.org", "name": "Bob Berg", "groups": ["net-leads", "secops"]},
    "carol": {"email": "carol@example.org", "name": "Carol Chen"},  # no groups at all
    "dave": {"name": "Dave Dunn", "groups": ["net-eng"]},  # no e-mail address
}
START_SECONDS = 30


@dataclass
class OIDCProvider:
    issuer: str
    accounts_file: Path
    log_file: Path

    def set_accounts(self, accounts: dict) -> None:
        """Who the provider knows, from now on (read at every sign-in)."""
        self.accounts_file.write_text(json.dumps(accounts))

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory) -> Iterator[OIDCProvider]:
    install = subprocess.run(
        [ROOT / "scripts" / "ensure-oidc-provider.sh"], capture_output=True, text=True
    )
    if install.returncode != 0:
        _unavailable(f"the test OpenID provider could not be installed:\n{install.stderr}")
    workdir = tmp_path_factory.mktemp("oidc-provider")
    port = _free_port()
    vpnctl_port = live_server.url.rsplit(":", 1)[1]
    found = OIDCProvider(
        issuer=f"http://127.0.0.1:{port}",
        accounts_file=workdir / "accounts.json",
        log_file=workdir / "provider.log",
    )
    found.set_accounts(ACCOUNTS)
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(
            f"http://{host}:{vpnctl_port}/oidc/callback/" for host in ("localhost", "127.0.0.1")
        ),
        "OIDC_ACCOUNTS_FILE": str(found.accounts_file),
    }
    with found.log_file.open("w") as log:
        process = subprocess.Popen(
            ["node", "provider.mjs"], cwd=PROVIDER_DIR, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                requests.get(f"{found.issuer}/.well-known/openid-configuration", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"the test OpenID provider did not start:\n{found.log_tail()}")
                time.sleep(0.1)
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def sso_on(settings, oidc_provider) -> Iterator[OIDCProvider]:
    """vpnctl with single sign-on through the test provider, everyone's password still on."""
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ROLE_MAP = ROLE_MAP
    sso.forget_provider()
    oidc_provider.set_accounts(ACCOUNTS)
    yield oidc_provider
    sso.forget_provider()


def _form(html: str) -> tuple[str, dict[str, str]]:
    """The login form of the provider's page: where it posts, and its hidden fields."""
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, f"no form on the provider's page:\n{html[:2000]}"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return unescape(action.group(1)), hidden


def sign_in_at_provider(
    browser: requests.Session, vpnctl_url: str, login: str, *, password: str = "any"
) -> str:
    """Start single sign-on at vpnctl, log in at the provider; the URL it sends back to."""
    response = browser.get(f"{vpnctl_url}/oidc/authenticate/", allow_redirects=False)
    assert response.status_code == 302, response.text[:2000]
    url = response.headers["Location"]
    for _ in range(10):
        if url.startswith(vpnctl_url):
            return url
        response = browser.get(url, allow_redirects=False)
        if response.status_code == 200:
            action, fields = _form(response.text)
            response = browser.post(
                urljoin(url, action),
                data={**fields, "login": login, "password": password},
                allow_redirects=False,
            )
        assert response.status_code in {302, 303}, response.text[:2000]
        url = urljoin(url, response.headers["Location"])
    raise AssertionError(f"the provider never sent the browser back to vpnctl (last: {url})")
