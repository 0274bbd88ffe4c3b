"""Single sign-on against a real OpenID provider (tests/oidc_helpers.py), over HTTP.

Each person signs in with a real HTTP session: vpnctl's /oidc/authenticate/, the
provider's login form, the provider's redirect back, vpnctl's callback on the live
server. Nothing of the protocol is faked; a refused answer is made by tampering with
what the provider sent (state, issuer) or with what this browser's session holds (nonce).
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test.utils import CaptureQueriesContext

from maintenance import roles, sso
from maintenance.choices import AuditAction
from maintenance.models import AuditEvent
from tests.oidc_helpers import ACCOUNTS, CLIENT_ID, CLIENT_SECRET, sign_in_at_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def role_groups(db):
    # Transactional tests flush the tables, and with them the groups the migration made.
    roles.sync_roles(Group, Permission)


def _tampered(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return urlunsplit(parts._replace(query=urlencode(query)))


def _signed_in_as(browser: requests.Session, vpnctl_url: str) -> requests.Response:
    return browser.get(f"{vpnctl_url}/", allow_redirects=False)


def _refusals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.SSO_REFUSED).order_by("seq"))


def test_first_sign_in_makes_the_account_with_its_roles(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    landed = browser.get(back)

    assert landed.status_code == 200
    assert "Pending maintenance by deadline" in landed.text  # the dashboard
    assert "Alice Anders" in landed.text
    alice = User.objects.get(username="sso.alice")
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@example.org",
        "Alice",
        "Anders",
    )
    assert not alice.has_usable_password()
    assert not alice.is_superuser and not alice.is_staff
    # wiki-editors is not in the role map: only net-eng counts.
    assert [g.name for g in alice.groups.all()] == [roles.REQUESTER]
    roles_event = AuditEvent.objects.get(action=AuditAction.ROLES_FROM_IDP)
    assert roles_event.actor == alice
    assert roles_event.details["before"] == [] and roles_event.details["after"] == ["requester"]
    assert roles_event.details["mapped_groups"] == ["net-eng"]
    login_event = AuditEvent.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert login_event.details["method"] == "oidc"
    assert login_event.message.startswith("sso.alice signed in with single sign-on from ")
    # Never a token, a code or a secret in the audit log.
    for event in AuditEvent.objects.all():
        text = str(event.details) + event.message
        assert CLIENT_SECRET not in text
        assert parse_qs(urlsplit(back).query)["code"][0] not in text


def test_roles_follow_the_groups_at_every_sign_in(sso_on, live_server):
    sign_in_at_provider(session := requests.Session(), live_server.url, "alice")
    session.get(sign_in_at_provider(session, live_server.url, "alice"))
    alice = User.objects.get(username="sso.alice")
    # An account's approver group is vpnctl's own business: single sign-on leaves it alone.
    tokyo = Group.objects.create(name="tokyo-approvers")
    alice.groups.add(tokyo)

    # At the provider, alice moves from net-eng to netadmins.
    sso_on.set_accounts(ACCOUNTS | {"alice": ACCOUNTS["alice"] | {"groups": ["netadmins"]}})
    again = requests.Session()
    again.get(sign_in_at_provider(again, live_server.url, "alice"))

    alice.refresh_from_db()
    assert sorted(g.name for g in alice.groups.all()) == [roles.ADMIN, "tokyo-approvers"]
    assert alice.is_staff and not alice.is_superuser
    change = AuditEvent.objects.filter(action=AuditAction.ROLES_FROM_IDP).latest("seq")
    assert (change.details["before"], change.details["after"]) == (["requester"], ["admin"])
    assert "Roles of sso.alice set from the identity provider's groups: admin." == change.message

    # Out of every mapped group: no role at the next sign-in, and a page that says so.
    sso_on.set_accounts(ACCOUNTS | {"alice": ACCOUNTS["alice"] | {"groups": []}})
    last = requests.Session()
    last.get(sign_in_at_provider(last, live_server.url, "alice"))
    alice.refresh_from_db()
    assert [g.name for g in alice.groups.all()] == ["tokyo-approvers"]
    assert not alice.is_staff
    home = _signed_in_as(last, live_server.url)
    assert home.status_code == 403
    assert "Your account has no role yet." in home.text
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).count() == 3


def test_a_sign_in_that_changes_nothing_writes_no_role_event(sso_on, live_server):
    for _ in range(2):
        browser = requests.Session()
        browser.get(sign_in_at_provider(browser, live_server.url, "bob"))
    bob = User.objects.get(username="sso.bob")
    assert sorted(g.name for g in bob.groups.all()) == [roles.APPROVER, roles.AUDITOR]
    assert bob.get_full_name() == "Bob Berg"
    assert AuditEvent.objects.filter(action=AuditAction.ROLES_FROM_IDP).count() == 1


def test_no_groups_signs_in_with_no_role(sso_on, live_server):
    browser = requests.Session()
    landed = browser.get(sign_in_at_provider(browser, live_server.url, "carol"))
    assert landed.status_code == 403
    assert "Your account has no role yet." in landed.text
    assert "your roles come from your groups at the identity provider" in landed.text
    assert "Log out" in landed.text
    carol = User.objects.get(username="sso.carol")
    assert not carol.groups.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ROLES_FROM_IDP).exists()


def test_no_email_is_refused(sso_on, live_server):
    browser = requests.Session()
    refused = browser.get(sign_in_at_provider(browser, live_server.url, "dave"))
    assert refused.status_code == 403
    assert "Single sign-on failed: The identity provider sent no e-mail address for dave." in (
        refused.text
    )
    assert not User.objects.filter(username="sso.dave").exists()
    assert [e.details["reason"] for e in _refusals()] == ["no_email"]


def test_wrong_state_is_refused_and_audited(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    refused = browser.get(_tampered(back, state="forged-state"))

    assert refused.status_code == 403
    assert "Single sign-on failed: The answer does not belong to a sign-in started" in (
        refused.text
    )
    assert "Try single sign-on again" in refused.text
    assert _signed_in_as(browser, live_server.url).status_code == 302  # to the login page
    assert not User.objects.filter(username="sso.alice").exists()
    (event,) = _refusals()
    assert event.details["reason"] == "wrong_state"
    assert event.message.startswith("Single sign-on from 127.0.0.1 refused: The answer does")


def test_an_answer_is_used_once(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    assert browser.get(back).status_code == 200
    browser.post(f"{live_server.url}/logout/", headers={"Referer": live_server.url})
    replayed = requests.Session().get(back)
    assert replayed.status_code == 403
    assert [e.details["reason"] for e in _refusals()] == ["wrong_state"]


def test_wrong_nonce_is_refused_and_audited(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    # This browser's session now expects another nonce for the same state.
    session = SessionStore(session_key=browser.cookies["sessionid"])
    state = parse_qs(urlsplit(back).query)["state"][0]
    states = session["oidc_states"]
    states[state]["nonce"] = "another-nonce"
    session["oidc_states"] = states
    session.save()

    refused = browser.get(back)
    assert refused.status_code == 403
    assert "nonce is not the one this sign-in was started with" in refused.text
    assert [e.details["reason"] for e in _refusals()] == ["wrong_nonce"]
    assert not User.objects.filter(username="sso.alice").exists()


def test_an_answer_naming_another_issuer_is_refused(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    # RFC 9207: the provider names itself in its answer (a mix-up attack names another).
    assert parse_qs(urlsplit(back).query)["iss"] == [sso_on.issuer]
    refused = browser.get(_tampered(back, iss="https://evil.example"))
    assert refused.status_code == 403
    assert "comes from &#x27;https://evil.example&#x27;" in refused.text
    assert [e.details["reason"] for e in _refusals()] == ["wrong_issuer"]
    assert not User.objects.exists()


def test_a_provider_calling_itself_another_issuer_is_refused(settings, sso_on, live_server):
    # The same provider under another name: its discovery document names its real issuer.
    settings.OIDC_ISSUER = sso_on.issuer.replace("127.0.0.1", "localhost")
    refused = requests.get(f"{live_server.url}/oidc/authenticate/", allow_redirects=False)
    assert refused.status_code == 403
    assert "calls itself" in refused.text
    (event,) = _refusals()
    assert event.details["reason"] == "wrong_issuer"


def test_the_id_token_is_checked_for_issuer_audience_and_nonce(settings, sso_on, live_server):
    """A real ID token from the provider, checked against what vpnctl expects."""
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    session = SessionStore(session_key=browser.cookies["sessionid"])
    flow = session["oidc_states"][query["state"]]
    found = sso.provider()
    token = requests.post(
        found.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": f"{live_server.url}/oidc/callback/",
            "code_verifier": flow["code_verifier"],
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()["id_token"]
    backend = sso.OIDCBackend()
    backend.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
    key = backend.retrieve_matching_jwk(token)

    claims = sso.check_id_token(token, key, found, nonce=flow["nonce"])
    assert claims["sub"] == "alice" and claims["iss"] == sso_on.issuer

    def refusal(**kwargs) -> str:
        with pytest.raises(sso.Refused) as refused:
            sso.check_id_token(token, key, kwargs.pop("expected", found), **kwargs)
        return refused.value.code

    other = sso.Provider(**{**found.__dict__, "issuer": "https://other.example"})
    assert refusal(expected=other, nonce=flow["nonce"]) == "wrong_issuer"
    assert refusal(nonce="not-this-one") == "wrong_nonce"
    assert refusal(nonce=None) == "wrong_nonce"
    settings.OIDC_CLIENT_ID = "another-client"
    assert refusal(nonce=flow["nonce"]) == "wrong_audience"
    # Another signature over the same claims: refused.
    settings.OIDC_CLIENT_ID = CLIENT_ID
    forged = token.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(b"\0" * 256).decode()
    with pytest.raises(sso.Refused) as refused:
        sso.check_id_token(forged, key, found, nonce=flow["nonce"])
    assert refused.value.code == "bad_token"


def test_a_provider_error_is_refused_and_audited(sso_on, live_server):
    browser = requests.Session()
    back = sign_in_at_provider(browser, live_server.url, "alice")
    state = parse_qs(urlsplit(back).query)["state"][0]
    refused = browser.get(
        f"{live_server.url}/oidc/callback/?" + urlencode({"error": "access_denied", "state": state})
    )
    assert refused.status_code == 403
    assert "The identity provider answered access_denied." in refused.text
    # The state was used up: the real answer no longer counts either.
    assert browser.get(back).status_code == 403
    assert [e.details["reason"] for e in _refusals()] == ["provider_error", "wrong_state"]


def test_a_local_account_of_that_name_is_never_taken_over(sso_on, live_server):
    User.objects.create_user("sso.alice", password="local-password-123")
    browser = requests.Session()
    refused = browser.get(sign_in_at_provider(browser, live_server.url, "alice"))
    assert refused.status_code == 403
    assert "A local account named sso.alice exists" in refused.text
    assert [e.details["reason"] for e in _refusals()] == ["local_account"]


def test_a_switched_off_account_is_refused(sso_on, live_server):
    browser = requests.Session()
    browser.get(sign_in_at_provider(browser, live_server.url, "alice"))
    User.objects.filter(username="sso.alice").update(is_active=False)
    again = requests.Session()
    refused = again.get(sign_in_at_provider(again, live_server.url, "alice"))
    assert refused.status_code == 403
    assert [e.details["reason"] for e in _refusals()] == ["inactive"]


def test_pages_cost_the_same_after_single_sign_on(requester, client):
    def queries(backend: str) -> list[str]:
        client.force_login(requester, backend=backend)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        client.logout()
        return [q["sql"] for q in captured.captured_queries]

    assert len(queries(sso.BACKEND)) == len(queries("maintenance.permissions.ModelBackendOneQuery"))


def test_sso_off_answers_404_and_the_login_page_has_no_button(client):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    page = client.get("/login/")
    assert "Sign in with single sign-on" not in page.content.decode()


def test_login_page_offers_single_sign_on(sso_on, client):
    page = client.get("/login/?next=/requests/").content.decode()
    assert 'href="/oidc/authenticate/?next=/requests/"' in page
    assert "Or sign in with a password" in page


def test_usernames_come_from_the_subject():
    assert sso.sso_username("alice") == "sso.alice"
    assert sso.sso_username("auth0|5f1e2d") == "sso." + hashlib.sha256(b"auth0|5f1e2d").hexdigest()
    assert len(sso.sso_username("x" * 255)) <= 150


@pytest.mark.parametrize(
    ("claim", "groups"),
    [
        (["net-eng", "secops"], ["net-eng", "secops"]),
        ("net-eng", ["net-eng"]),
        (["net-eng", 7, None], ["net-eng"]),
        ({"net-eng": True}, []),
        (None, []),
    ],
)
def test_the_groups_claim_in_any_shape_never_fails(settings, claim, groups):
    settings.OIDC_GROUPS_CLAIM = "roles"
    assert sso.groups_from_claims({"roles": claim}) == groups
    assert sso.groups_from_claims({"groups": ["net-eng"]}) == []


def test_a_provider_that_is_down_is_said_so_never_a_500(settings, client):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    sso.forget_provider()
    refused = client.get("/oidc/authenticate/")
    assert refused.status_code == 403
    assert "Single sign-on failed: The identity provider could not be reached" in (
        refused.content.decode()
    )
    assert [e.details["reason"] for e in _refusals()] == ["provider_unreachable"]
    # Password sign-in still works: the login page itself never asks the provider.
    assert client.get("/login/").status_code == 200
