"""Signing in: the login page, and single sign-on's start and callback (maintenance/sso.py).

The callback is vpnctl's own, not mozilla-django-oidc's: that one answers a wrong state
with a bare SuspiciousOperation (a 400 and a log line) and every other failure with a
redirect, saying nothing. Here each refusal is an audit event with its reason, and the
person reads the reason on a page with a link to try again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from .. import sso
from ..choices import ActorKind, AuditAction
from ..forms.signin import LoginForm
from ..models import AuditEvent
from ..signin import client_ip, record_sign_in
from ..texts import N_, Text

# What a provider may put in ``error`` is its own to choose: keep the audit log's copy short.
MAX_ERROR_CHARS = 100


class LoginView(auth_views.LoginView):
    """Django's login page, offering single sign-on when it is configured."""

    authentication_form = LoginForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = sso.enabled()
        context["local_login"] = settings.LOCAL_LOGIN
        return context


def _sso_off() -> Http404:
    return Http404(_("Single sign-on is not configured here (VPNCTL_OIDC_ISSUER is not set)."))


def refuse(request: HttpRequest, refused: sso.Refused) -> HttpResponse:
    """Audit a refused single sign-on and say why, with a link to try again."""
    ip = client_ip(request) or ""
    AuditEvent.record(
        AuditAction.SSO_REFUSED,
        actor_kind=ActorKind.SYSTEM,
        message=Text(
            N_("Single sign-on from %(ip)s refused: %(reason)s"), ip=ip, reason=refused.reason
        ),
        details={"reason": refused.code, "ip": ip},
    )
    return render(
        request, "registration/sso_failed.html", {"reason": str(refused.reason)}, status=403
    )


class AuthenticateView(OIDCAuthenticationRequestView):
    """Start a sign-in: to the provider's login page, with a fresh state, nonce and PKCE."""

    def __init__(self, **kwargs: Any) -> None:
        # mozilla-django-oidc reads the endpoint from settings here; vpnctl discovers it.
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not sso.enabled():
            raise _sso_off()
        try:
            found = sso.provider()
        except sso.Refused as refused:
            return refuse(request, refused)
        self.OIDC_OP_AUTH_ENDPOINT = found.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        return super().get(request)


authenticate = never_cache(AuthenticateView.as_view())


@never_cache
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """The provider's answer: check it, sign the person in, or refuse it and say why.

    1. the state must be one this browser's session started, and is used up at once
       (a replayed or forged answer finds nothing);
    2. the issuer, when the provider names it (RFC 9207), must be the configured one;
    3. the backend exchanges the code and checks the ID token (signature, issuer,
       audience, nonce), finds or makes the account and sets its roles.
    """
    if not sso.enabled():
        raise _sso_off()
    states = request.session.get("oidc_states") or {}
    state = request.GET.get("state", "")
    entry = states.pop(state, None) if state else None
    if entry is not None:
        request.session["oidc_states"] = states  # used up, even if refused below
    error = request.GET.get("error")
    if error:
        return refuse(
            request,
            sso.Refused(
                "provider_error",
                Text(
                    N_("The identity provider answered %(error)s."),
                    error=error[:MAX_ERROR_CHARS],
                ),
            ),
        )
    if entry is None:
        return refuse(
            request,
            sso.Refused(
                "wrong_state",
                Text(
                    N_(
                        "The answer does not belong to a sign-in started in this browser "
                        "(unknown or used state)."
                    )
                ),
            ),
        )
    if not request.GET.get("code"):
        return refuse(
            request, sso.Refused("no_code", Text(N_("The identity provider sent no code.")))
        )
    issuer = request.GET.get("iss")
    if issuer is not None and issuer != settings.OIDC_ISSUER:
        return refuse(
            request,
            sso.Refused(
                "wrong_issuer",
                Text(
                    N_("The answer comes from %(found)r, not %(expected)r."),
                    found=issuer[:MAX_ERROR_CHARS],
                    expected=settings.OIDC_ISSUER,
                ),
            ),
        )
    try:
        user = sso.OIDCBackend().authenticate(
            request, nonce=entry.get("nonce"), code_verifier=entry.get("code_verifier")
        )
    except sso.Refused as refused:
        return refuse(request, refused)
    if user is None:  # mozilla-django-oidc's own refusals (several accounts match)
        return refuse(
            request,
            sso.Refused("no_account", Text(N_("No single vpnctl account matches this person."))),
        )
    if not user.is_active:
        return refuse(
            request,
            sso.Refused("inactive", Text(N_("This account is switched off in vpnctl."))),
        )
    next_url = request.session.get("oidc_login_next")
    auth.login(request, user, backend=sso.BACKEND)
    record_sign_in(request, user, method="oidc")
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
