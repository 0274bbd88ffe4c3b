"""Personal API tokens on the Preferences page: make one (shown once), list, revoke.

The new token is put in the session for the one page that follows the POST, which takes
it out again: it is shown once and never again, and only its digest is stored.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ..forms.accounts import PreferencesForm
from ..forms.tokens import ApiTokenForm
from ..models import ApiToken, UserProfile

NEW_TOKEN_KEY = "vpnctl_new_api_token"


def token_context(request: HttpRequest, form: ApiTokenForm | None = None) -> dict[str, Any]:
    """What the Preferences page shows of the user's tokens, and a new one once."""
    return {
        "api_tokens": list(ApiToken.objects.filter(user=request.user).order_by("-created_at")),
        "token_form": form or ApiTokenForm(),
        "new_token": request.session.pop(NEW_TOKEN_KEY, None),
        "now": timezone.now(),
    }


@login_required
@require_POST
def api_token_create(request: HttpRequest) -> HttpResponse:
    """Make a token and show it on the next page, once."""
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        profile = UserProfile.objects.filter(user=request.user).first()
        context = {
            "form": PreferencesForm(instance=profile or UserProfile(user=request.user)),
            **token_context(request, form),
        }
        return render(request, "maintenance/preferences.html", context, status=400)
    token, clear = ApiToken.issue(
        request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
    )
    request.session[NEW_TOKEN_KEY] = {"name": token.name, "value": clear}
    return redirect("maintenance:preferences")


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's own tokens (another's is 404: it is not theirs to see)."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoke(user=request.user):
        messages.success(
            request, _("API token %(name)s revoked: calls with it now fail.") % {"name": token.name}
        )
    return redirect("maintenance:preferences")
