"""A <select> written in Python, for the filter forms' long lists (accounts, actions).

Django renders each option through its own template: a list of 100 accounts costs about
13 ms a page that way, most of a connection list's rendering at fleet scale
(bench/pages.py). This writes the same HTML directly, escaped by ``format_html``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join


class PlainSelect(forms.Select):
    """``forms.Select`` with the same markup, without a template per option (flat lists only)."""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> str:
        chosen = {str(v) for v in self.format_value(value)}
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option, " selected" if str(option) in chosen else "", label)
                for option, label in self.choices
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            options,
        )
