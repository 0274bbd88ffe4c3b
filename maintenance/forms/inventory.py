"""The connection list's filters: they parse; the queries are VpnConnectionQuerySet's."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..choices import ConnectionState, TunnelStatus
from ..models import AwsAccount, Tunnel
from ..models.inventory import VpnConnectionQuerySet
from .widgets import PlainSelect

YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
DEADLINE_DAYS = (3, 7, 30)
AWS_APPLIED_DAYS = 30


class ConnectionFilterForm(forms.Form):
    """The connection list's GET filters. Always valid enough to filter by what parsed."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        help_text=_("Connection id, Name, or any tag value"),
    )
    account = forms.ModelChoiceField(
        label=_("Account"),
        queryset=AwsAccount.objects.all(),
        required=False,
        empty_label=_("Any"),
        widget=PlainSelect,
    )
    region = forms.ChoiceField(label=_("Region"), required=False)
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("Any")), *ConnectionState.choices]
    )
    pending = forms.ChoiceField(label=_("Pending maintenance"), required=False, choices=YES_NO)
    lifecycle_off = forms.BooleanField(label=_("Lifecycle control off on a tunnel"), required=False)
    tunnel_down = forms.BooleanField(label=_("A tunnel is DOWN"), required=False)
    deadline_within = forms.TypedChoiceField(
        label=_("AWS applies maintenance itself"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[
            ("", _("Any time")),
            ("3", _("within 3 days")),
            ("7", _("within 7 days")),
            ("30", _("within 30 days")),
        ],
    )
    no_approved_request = forms.BooleanField(
        label=_("Pending maintenance with no approved change before AWS applies it"),
        required=False,
    )
    both_down = forms.BooleanField(label=_("Both tunnels DOWN"), required=False)
    half_lifecycle = forms.BooleanField(
        label=_("Lifecycle control on one tunnel only"), required=False
    )
    aws_applied = forms.BooleanField(
        label=_("AWS applied maintenance itself in the last 30 days"), required=False
    )
    include_gone = forms.BooleanField(label=_("Include connections gone from AWS"), required=False)

    def __init__(self, *args, regions: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", _("Any")), *((r, r) for r in regions or [])]

    def filter(self, qs: VpnConnectionQuerySet) -> VpnConnectionQuerySet:
        """Apply whatever parsed; a field that did not parse is ignored, not an error page."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if not data.get("include_gone"):
            qs = qs.live()
        if data.get("account"):
            qs = qs.filter(account=data["account"])
        if data.get("region"):
            qs = qs.filter(region=data["region"])
        if data.get("state"):
            qs = qs.filter(state=data["state"])
        tunnels = Tunnel.objects.all()
        if data.get("pending") == "yes":
            qs = qs.with_tunnels(tunnels.pending())
        elif data.get("pending") == "no":
            qs = qs.without_tunnels(tunnels.pending())
        if data.get("lifecycle_off"):
            qs = qs.with_tunnels(tunnels.filter(lifecycle_control=False))
        if data.get("tunnel_down"):
            qs = qs.with_tunnels(tunnels.filter(status=TunnelStatus.DOWN))
        now = timezone.now()
        # Deadline and "no approved change" name the same tunnel: one subquery for both.
        if data.get("deadline_within") or data.get("no_approved_request"):
            due = tunnels.pending()
            if data.get("deadline_within"):
                due = due.due_within(data["deadline_within"], now)
            if data.get("no_approved_request"):
                due = due.unplanned()
            qs = qs.with_tunnels(due)
        if data.get("both_down"):
            qs = qs.both_down()
        if data.get("half_lifecycle"):
            qs = qs.half_lifecycle()
        if data.get("aws_applied"):
            qs = qs.with_tunnels(
                tunnels.applied_by_aws_since(now - timedelta(days=AWS_APPLIED_DAYS))
            )
        if data.get("q"):
            qs = qs.search(data["q"])
        return qs
