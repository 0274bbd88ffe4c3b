"""Template helpers of the change workflow: ``{% load vpnctl_requests %}``.

``{% awaiting_count as n %}``: how many requests wait for the current user's decision
(one COUNT query, none for users who are not approvers).
"""

from __future__ import annotations

from typing import Any

from django import template

from maintenance.models import ChangeRequest

register = template.Library()


@register.simple_tag(takes_context=True)
def awaiting_count(context: Any) -> int:
    user = context.get("user")
    if user is None or not user.is_authenticated or not user.has_perm("maintenance.approve_change"):
        return 0
    return ChangeRequest.objects.awaiting_decision_of(user).count()
