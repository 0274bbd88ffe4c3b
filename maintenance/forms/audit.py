"""The audit log's GET filters, shared by the page and its CSV / JSON Lines exports.

Times are typed into `datetime-local` inputs and read in the user's own time zone (the
middleware activates it). Whatever parses is applied; an invalid field is shown and ignored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..choices import ActorKind, AuditAction
from ..models import AuditEvent, AwsAccount
from .changes import LOCAL_FORMAT, MAX_ID, LocalDateTimeInput, within_years
from .widgets import PlainSelect

_INPUT_FORMATS = [LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _moment(label: Any) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        widget=LocalDateTimeInput(),
        input_formats=_INPUT_FORMATS,
        validators=[within_years],
    )


class AuditFilterForm(forms.Form):
    time_from = _moment(_("From"))
    time_to = _moment(_("To"))
    actor = forms.CharField(
        label=_("Actor"),
        required=False,
        max_length=150,
        help_text=_('A username, or "system" or "aws".'),
    )
    action = forms.ChoiceField(
        label=_("Action"),
        required=False,
        choices=[("", _("Any")), *AuditAction.choices],
        widget=PlainSelect,
    )
    # A plain choice (not ModelChoiceField): one query both lists and validates accounts.
    account = forms.TypedChoiceField(
        label=_("Account"), required=False, coerce=int, empty_value=None, widget=PlainSelect
    )
    connection = forms.CharField(
        label=_("Connection id"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "vpn-0123456789abcdef0"}),
    )
    tunnel = forms.GenericIPAddressField(
        label=_("Tunnel outside IP"), required=False, protocol="IPv4"
    )
    request = forms.IntegerField(
        label=_("Request number"), required=False, min_value=1, max_value=MAX_ID
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        for name in ("time_from", "time_to"):
            self.fields[name].help_text = _("In your time zone, %(zone)s.") % {"zone": zone}
        self.fields["account"].choices = [
            ("", _("Any")),
            *AwsAccount.objects.order_by("name").values_list("pk", "name"),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("time_from"), data.get("time_to")
        if start and end and end < start:
            raise ValidationError(_('"To" is before "From".'))
        return data

    def filter(self, qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """The events matching every filter that parsed."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if data.get("time_from"):
            qs = qs.filter(at__gte=data["time_from"])
        end = data.get("time_to")
        if end:
            if not end.second and not end.microsecond:
                # "To 10:00" typed to the minute includes the events of 10:00 itself.
                end += timedelta(minutes=1)
            qs = qs.filter(at__lt=end)
        actor = (data.get("actor") or "").strip()
        if actor.lower() in (ActorKind.SYSTEM, ActorKind.AWS):
            qs = qs.filter(actor_kind=actor.lower())
        elif actor:
            qs = qs.filter(actor_kind=ActorKind.USER, actor_name__iexact=actor)
        if data.get("action"):
            qs = qs.filter(action=data["action"])
        if data.get("account"):
            qs = qs.filter(account_id=data["account"])
        if data.get("connection"):
            qs = qs.filter(connection__vpn_connection_id=data["connection"].strip())
        if data.get("tunnel"):
            qs = qs.filter(tunnel__outside_ip=data["tunnel"])
        if data.get("request"):
            qs = qs.filter(change_request_id=data["request"])
        return qs
