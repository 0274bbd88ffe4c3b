"""The filter forms' PlainSelect writes what Django's Select writes, escaped, without a
template per option."""

from __future__ import annotations

import re

import pytest
from django import forms

from maintenance.forms.widgets import PlainSelect

CHOICES = [("", "Any"), ("1", "prod <tokyo> & co"), ("2", 'say "hi"'), ("3", "三番")]


def _tags(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


@pytest.mark.parametrize("value", [None, "", "2", 3])
def test_same_markup_as_djangos_select(value):
    ours = PlainSelect(choices=CHOICES).render("account", value, {"id": "id_account"})
    django = forms.Select(choices=CHOICES).render("account", value, {"id": "id_account"})
    assert _tags(ours) == _tags(django)


def test_labels_and_values_are_escaped():
    html = PlainSelect(choices=[('"><script>', "<b>x</b>")]).render("a", None)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and 'value="&quot;&gt;&lt;script&gt;"' in html


def test_in_a_form_it_keeps_the_choice_and_the_error(db):
    from maintenance.forms.audit import AuditFilterForm

    form = AuditFilterForm({"action": "no.such.action"})
    assert not form.is_valid()
    assert "Select a valid choice" in str(form.errors["action"])
    html = str(AuditFilterForm({"action": "sync.failed"})["action"])
    assert '<option value="sync.failed" selected>' in html
