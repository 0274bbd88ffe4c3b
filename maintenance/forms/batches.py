"""The form that asks for lifecycle control on many tunnels at once (a ChangeBatch).

Like the single request form it only parses; ChangeBatch.submit applies the rules.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..models import Tunnel
from .changes import MAX_ID, SKIP_CHOICES, WindowForm, reason_field


class TunnelChoiceField(forms.ModelMultipleChoiceField):
    """Tunnels by id; an id no database column can hold is an invalid choice, not a 500."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            text = str(pk)
            if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID):
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)


class BatchRequestForm(WindowForm):
    """Reason, window and one skip-replacement choice, for every tunnel ticked."""

    tunnels = TunnelChoiceField(
        label=_("Tunnels"),
        queryset=Tunnel.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one tunnel.")},
    )
    reason = reason_field()
    skip_tunnel_replacement = forms.ChoiceField(
        label=_("Pending maintenance"),
        choices=SKIP_CHOICES,
        widget=forms.RadioSelect,
        help_text=_(
            "Applies to every tunnel of the batch. Turning lifecycle control on applies a "
            "tunnel's pending maintenance at once, unless the replacement is skipped."
        ),
        error_messages={
            "required": _("Choose whether pending maintenance is applied together with the switch.")
        },
    )

    field_order = [
        "tunnels",
        "reason",
        "window_start",
        "window_end",
        "start_when_approved",
        "skip_tunnel_replacement",
    ]

    def __init__(self, *args: Any, tunnels: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tunnels"].queryset = tunnels

    @property
    def skip(self) -> bool:
        return self.cleaned_data.get("skip_tunnel_replacement") == "skip"

    def chosen_pks(self) -> set[str]:
        """The tunnels ticked in the submitted form (strings, as the checkboxes send them)."""
        return set(self.data.getlist("tunnels")) if self.is_bound else set()


class BatchDecisionForm(forms.Form):
    """Approve or reject a whole batch, with a comment (required to reject)."""

    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional to approve; needed to reject. It is recorded on every request."),
    )
