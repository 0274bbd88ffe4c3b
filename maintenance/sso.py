"""Single sign-on with OpenID Connect: the provider, the backend, the roles from its groups.

mozilla-django-oidc runs the authorization code flow (with PKCE and a nonce); this module
adds what vpnctl needs around it:

1. the provider's endpoints come from its discovery document, fetched on first use and
   cached (``provider()``): a provider that is down never keeps vpnctl from starting, and
   a document naming another issuer is refused;
2. the ID token is checked for its signature (RS256, the provider's published keys), its
   issuer, audience, expiry and nonce (``OIDCBackend.verify_token``): mozilla-django-oidc
   checks neither the issuer nor the audience;
3. each person is found by the provider's ``sub``, kept in the username (``sso_username``),
   never by e-mail, which a provider may give to someone else later; the account is made
   at the first sign-in with their e-mail and name;
4. at every sign-in their vpnctl roles are set to exactly those that the groups claim maps
   to (``settings.OIDC_ROLE_MAP``), and a change is an audit event; other Django groups
   (an account's approver groups) are left as they are, and superuser is never given.

Every refusal raises ``Refused`` with its reason; ``views.sso`` audits it and says it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from . import roles
from .choices import AuditAction
from .models import AuditEvent
from .permissions import ModelBackendOneQuery
from .texts import N_, Text

log = logging.getLogger(__name__)

BACKEND = "maintenance.sso.OIDCBackend"
# How long a discovery document is trusted before it is fetched again.
DISCOVERY_TTL_SECONDS = 3600
# Usernames of accounts made by single sign-on start with this; their `sub` follows.
USERNAME_PREFIX = "sso."
_SAFE_SUB = re.compile(r"[\w.@+-]{1,140}")
# The ID token's clock may run a little ahead of ours.
LEEWAY_SECONDS = 60


class Refused(Exception):
    """A sign-in refused, with its reason in words and a short code for the audit log."""

    def __init__(self, code: str, reason: Text) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


@dataclass(frozen=True)
class Provider:
    """What vpnctl uses of an OpenID provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


_discovered: dict[str, tuple[float, Provider]] = {}
_discovery_lock = threading.Lock()


def provider() -> Provider:
    """The configured provider's endpoints, from its discovery document (cached)."""
    issuer = settings.OIDC_ISSUER
    now = time.monotonic()
    with _discovery_lock:
        cached = _discovered.get(issuer)
    if cached and now - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("OpenID discovery at %s failed: %s", url, exc)
        raise Refused(
            "provider_unreachable",
            Text(N_("The identity provider could not be reached at %(url)s."), url=url),
        ) from None
    if document.get("issuer") != issuer:
        raise Refused(
            "wrong_issuer",
            Text(
                N_("The identity provider at %(url)s calls itself %(found)r, not %(expected)r."),
                url=url,
                found=str(document.get("issuer")),
                expected=issuer,
            ),
        )
    try:
        found = Provider(
            issuer=issuer,
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            userinfo_endpoint=document["userinfo_endpoint"],
            jwks_uri=document["jwks_uri"],
        )
    except KeyError as exc:
        raise Refused(
            "bad_discovery",
            Text(
                N_("The identity provider's discovery document has no %(field)s."),
                field=exc.args[0],
            ),
        ) from None
    with _discovery_lock:
        _discovered[issuer] = (now, found)
    return found


def forget_provider() -> None:
    """Fetch the discovery document again on next use (tests; a provider that moved)."""
    with _discovery_lock:
        _discovered.clear()


def sso_username(sub: str) -> str:
    """The username of the account for a provider's `sub`: stable, and never a local one's.

    A `sub` made of the characters Django allows in usernames is kept readable; any other
    (or a long one) is replaced by its SHA-256, so that it always fits in 150 characters.
    """
    if _SAFE_SUB.fullmatch(sub):
        return f"{USERNAME_PREFIX}{sub}"
    return f"{USERNAME_PREFIX}{hashlib.sha256(sub.encode()).hexdigest()}"


def groups_from_claims(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list of names; missing or of an unknown shape, none."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def mapped_roles(groups: list[str]) -> set[str]:
    return {role for group in groups for role in settings.OIDC_ROLE_MAP.get(group, ())}


def apply_roles(user: Any, groups: list[str]) -> None:
    """Give `user` exactly the vpnctl roles their provider groups map to; audit a change.

    Only the four role groups are touched; ``is_staff`` follows the admin role (the
    Django admin is where admins edit accounts), ``is_superuser`` is never set here.
    """
    wanted = mapped_roles(groups)
    role_groups = {g.name: g for g in Group.objects.filter(name__in=roles.ROLE_PERMISSIONS)}
    held = set(user.groups.filter(name__in=roles.ROLE_PERMISSIONS).values_list("name", flat=True))
    if wanted == held and user.is_staff == (roles.ADMIN in wanted):
        return
    user.groups.remove(*[role_groups[name] for name in held - wanted])
    user.groups.add(*[role_groups[name] for name in wanted - held if name in role_groups])
    user.is_staff = roles.ADMIN in wanted
    user.save(update_fields=["is_staff"])
    shown = ", ".join(sorted(wanted)) or "-"
    AuditEvent.record(
        AuditAction.ROLES_FROM_IDP,
        actor=user,
        message=Text(
            N_("Roles of %(username)s set from the identity provider's groups: %(roles)s."),
            username=user.get_username(),
            roles=shown,
        ),
        details={
            "before": sorted(held),
            "after": sorted(wanted),
            # Only the groups vpnctl maps: the others are the provider's business.
            "mapped_groups": sorted(g for g in set(groups) if g in settings.OIDC_ROLE_MAP),
        },
    )


def _names(claims: dict[str, Any]) -> tuple[str, str]:
    given, family = claims.get("given_name"), claims.get("family_name")
    if isinstance(given, str) or isinstance(family, str):
        return (given or "")[:150], (family or "")[:150]
    name = claims.get("name")
    return ((name if isinstance(name, str) else "")[:150], "")


class OIDCBackend(ModelBackendOneQuery, OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with vpnctl's checks, accounts and roles.

    ``ModelBackendOneQuery`` comes first: a signed-in person's user and permissions are
    read as for a password sign-in (one query each), so pages cost the same either way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every request of a signed-in person (get_user): no
        # settings read and no discovery here, only when someone signs in.
        self.UserModel = get_user_model()

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        """The user for a callback from the provider; None for any other sign-in.

        Only ``views.sso.callback`` passes a nonce; a password form never reaches the
        provider, whatever its URL carries.
        """
        if request is None or not enabled() or "nonce" not in kwargs:
            return None
        found = provider()
        self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.expected = found
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as exc:
            # Never the body: a provider's error page may repeat the code it refused.
            status = exc.response.status_code if exc.response is not None else "?"
            raise Refused(
                "token_refused",
                Text(
                    N_("The identity provider refused to exchange the code (HTTP %(status)s)."),
                    status=status,
                ),
            ) from None
        except requests.RequestException:
            raise Refused(
                "provider_unreachable",
                Text(N_("The identity provider could not be reached to finish signing in.")),
            ) from None
        except SuspiciousOperation as exc:
            raise Refused(
                "bad_token",
                Text(N_("The identity provider's answer was refused: %(why)s"), why=str(exc)),
            ) from None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience, time and nonce hold."""
        return check_id_token(
            token,
            self.retrieve_matching_jwk(token),
            self.expected,
            nonce=kwargs.get("nonce"),
        )

    def get_userinfo(self, access_token: str, id_token: str, payload: dict) -> dict[str, Any]:
        claims = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: the UserInfo answer must be about the token's subject.
        if claims.get("sub") != payload.get("sub"):
            raise Refused(
                "wrong_subject",
                Text(N_("The identity provider's user information is about someone else.")),
            )
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Refused("no_subject", Text(N_("The identity provider sent no subject (sub).")))
        if not isinstance(claims.get("email"), str) or "@" not in claims["email"]:
            raise Refused(
                "no_email",
                Text(
                    N_("The identity provider sent no e-mail address for %(sub)s."),
                    sub=claims["sub"],
                ),
            )
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        username = sso_username(claims["sub"])
        users = self.UserModel.objects.filter(username=username)
        existing = users.first()
        if existing is not None and existing.has_usable_password():
            # Someone made a local account with this name: it is not theirs to take over.
            raise Refused(
                "local_account",
                Text(
                    N_("A local account named %(username)s exists; single sign-on never uses it."),
                    username=username,
                ),
            )
        return users

    @transaction.atomic
    def create_user(self, claims: dict[str, Any]) -> Any:
        first, last = _names(claims)
        user = self.UserModel(
            username=sso_username(claims["sub"]),
            email=claims["email"],
            first_name=first,
            last_name=last,
        )
        user.set_unusable_password()
        user.save()
        apply_roles(user, groups_from_claims(claims))
        return user

    @transaction.atomic
    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        first, last = _names(claims)
        if (user.email, user.first_name, user.last_name) != (claims["email"], first, last):
            user.email, user.first_name, user.last_name = claims["email"], first, last
            user.save(update_fields=["email", "first_name", "last_name"])
        apply_roles(user, groups_from_claims(claims))
        return user


def check_id_token(token: str, key: Any, expected: Provider, *, nonce: str | None) -> dict:
    """The claims of an ID token signed with `key` by `expected`'s issuer for vpnctl.

    PyJWT checks the signature, ``exp``, ``iat``, ``iss`` and ``aud`` (which may list
    several clients: vpnctl's must be among them); the nonce is the one this browser's
    sign-in was started with.
    """
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=settings.OIDC_CLIENT_ID,
            issuer=expected.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.InvalidIssuerError:
        found = jwt.decode(token, options={"verify_signature": False}).get("iss")
        raise Refused(
            "wrong_issuer",
            Text(
                N_("The ID token was issued by %(found)r, not %(expected)r."),
                found=str(found),
                expected=expected.issuer,
            ),
        ) from None
    except jwt.InvalidAudienceError:
        raise Refused("wrong_audience", Text(N_("The ID token is for another client."))) from None
    except jwt.ExpiredSignatureError:
        raise Refused("expired_token", Text(N_("The ID token has expired."))) from None
    except jwt.PyJWTError as exc:
        raise Refused(
            "bad_token", Text(N_("The ID token was refused: %(why)s"), why=str(exc))
        ) from None
    if nonce is None or payload.get("nonce") != nonce:
        raise Refused(
            "wrong_nonce",
            Text(N_("The ID token's nonce is not the one this sign-in was started with.")),
        )
    return payload
