"""Forms for people's preferences and, in the admin, for AWS accounts."""

from __future__ import annotations

import json
import re
import zoneinfo
from functools import cache

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import AwsAccount, UserProfile

# ---------------------------------------------------------------------------------------
# Preferences
# ---------------------------------------------------------------------------------------


@cache
def _zone_choices() -> list[tuple[str, str]]:
    names = sorted(
        z
        for z in zoneinfo.available_timezones()
        if "/" in z and not z.startswith(("Etc/", "posix"))
    )
    return [("UTC", "UTC"), *((z, z.replace("_", " ")) for z in names)]


class PreferencesForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        help_text=_("Every time on these pages is shown in this zone."),
    )

    class Meta:
        model = UserProfile
        fields = ["time_zone", "language"]
        labels = {"language": _("Language of emails")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _zone_choices()


# ---------------------------------------------------------------------------------------
# Admin: AWS accounts
# ---------------------------------------------------------------------------------------


class RegionListField(forms.CharField):
    """Regions typed as text, separated by commas or spaces; a list in Python."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        if isinstance(value, str) and value.startswith("["):
            # A JSON list coming back from the model field's initial value.
            try:
                return ", ".join(json.loads(value))
            except (ValueError, TypeError):
                return value
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [r for r in re.split(r"[\s,]+", text.strip()) if r]

    def has_changed(self, initial, data) -> bool:
        initial_list = initial if isinstance(initial, list) else self.to_python(initial or "")
        return initial_list != self.to_python(data or "")


class AwsAccountForm(forms.ModelForm):
    """The admin's account form; the model's clean() checks the role ARN and the regions."""

    regions = RegionListField(
        label=_("Regions"),
        required=False,  # the model's clean() says "Name at least one region."
        help_text=_(
            "EC2 regions to sync, separated by commas or spaces, e.g. ap-northeast-1, us-east-1."
        ),
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = AwsAccount
        fields = [
            "name",
            "account_id",
            "role_arn",
            "external_id",
            "regions",
            "enabled",
            "approver_groups",
            "approver_users",
            "required_approvals",
        ]
