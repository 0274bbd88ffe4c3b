"""The form that makes a personal API token (Preferences): a name and how long it lives."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

LIFETIMES = [
    ("30", _("30 days")),
    ("90", _("90 days")),
    ("365", _("a year")),
    ("", _("until I revoke it")),
]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What the token is for, such as the script or machine that uses it."),
        error_messages={"required": _("Name the token, so that you can tell it apart later.")},
    )
    lifetime = forms.ChoiceField(
        label=_("Expires after"), choices=LIFETIMES, initial="90", required=False
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("lifetime")
        return timezone.now() + timedelta(days=int(days)) if days else None
