"""The admin's form for maintenance policies: regions and tags typed as text, kinds as
checkboxes, the time zone from the list."""

from __future__ import annotations

import re
from datetime import time

from django import forms
from django.utils.translation import gettext_lazy as _

from ..choices import ChangeKind
from ..models import MaintenancePolicy
from .accounts import RegionListField, _zone_choices

TAG = re.compile(r"^\s*([^=,]+?)\s*=\s*([^,]*?)\s*$")
DAYS = {
    name: i
    for i, names in enumerate(
        [
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ]
    )
    for name in names
}
DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WINDOW = re.compile(r"^(\w+)\s+(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$")


class WindowsField(forms.CharField):
    """Weekly windows typed one a line or separated by commas, ``Sun 02:00-04:00``; a list
    of ``[weekday, "HH:MM", "HH:MM"]`` in Python (0 is Monday)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(f"{DAY_NAMES[d]} {a}-{b}" for d, a, b in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        windows = []
        for part in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
            match = WINDOW.match(part)
            day = DAYS.get(match[1].lower()) if match else None
            try:
                start, end = (
                    (time.fromisoformat(t.zfill(5)) for t in match.groups()[1:])
                    if match
                    else (None, None)
                )
            except ValueError:
                start = end = None
            if day is None or start is None or end is None:
                raise forms.ValidationError(
                    _("“%(part)s” is not a weekly window such as Sun 02:00-04:00."),
                    params={"part": part},
                )
            windows.append([day, start.strftime("%H:%M"), end.strftime("%H:%M")])
        return sorted(windows)

    def has_changed(self, initial, data) -> bool:
        try:
            return sorted(initial or []) != self.to_python(data or "")
        except forms.ValidationError:
            return True


class TagsField(forms.CharField):
    """Tags typed as ``env=prod, team=network``; a dict in Python."""

    def prepare_value(self, value):
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return value

    def to_python(self, value):
        text = super().to_python(value).strip()
        tags: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            match = TAG.match(part)
            if match is None:
                raise forms.ValidationError(
                    _("“%(part)s” is not name=value, e.g. env=prod."), params={"part": part}
                )
            tags[match[1]] = match[2]
        return tags

    def has_changed(self, initial, data) -> bool:
        try:
            return (initial or {}) != self.to_python(data or "")
        except forms.ValidationError:
            return True


class MaintenancePolicyForm(forms.ModelForm):
    regions = RegionListField(
        label=_("Regions"), required=False, help_text=_("Empty: every region.")
    )
    tags = TagsField(
        label=_("Tags"),
        required=False,
        help_text=_("Every tag listed must be on the connection, e.g. env=prod. Empty: any."),
    )
    kinds = forms.MultipleChoiceField(
        label=_("Kinds of change"),
        choices=ChangeKind.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "What it drafts for a tunnel with pending maintenance: the replacement, and where "
            "lifecycle control is off, turning it on (which applies the maintenance at once)."
        ),
    )
    windows = WindowsField(
        label=_("Preferred windows"),
        required=False,
        help_text=_(
            "One a line, in the policy's time zone: Sun 02:00-04:00. An end at or before the "
            "start runs past midnight. None: drafts go into the latest slot before AWS's "
            "deadline."
        ),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"))

    class Meta:
        model = MaintenancePolicy
        fields = [
            "name",
            "description",
            "enabled",
            "accounts",
            "regions",
            "tags",
            "windows",
            "time_zone",
            "lead_time_hours",
            "change_minutes",
            "kinds",
            "approver_groups",
            "approver_users",
            "required_approvals",
            "standard_from",
            "standard_until",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _zone_choices()
