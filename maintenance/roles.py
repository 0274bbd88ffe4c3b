"""vpnctl's roles as Django groups, and the permissions each one holds.

Data migrations (0002_roles, 0004_roles_blackouts, 0016_roles_chat, 0018_roles_fleet)
apply them with ``sync_roles``; a change here needs a new data migration that calls it
again.
"""

from __future__ import annotations

from typing import Any

REQUESTER = "requester"
APPROVER = "approver"
ADMIN = "admin"
AUDITOR = "auditor"

_VIEW_ALL = [
    "view_awsaccount",
    "view_vpnconnection",
    "view_tunnel",
    "view_syncrun",
    "view_syncresult",
    "view_changerequest",
    "view_approval",
    "view_execution",
    "view_executionstep",
    "view_maintenancepolicy",
    "view_policyapproval",
    "view_healthevent",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    REQUESTER: [*_VIEW_ALL, "request_change"],
    APPROVER: [*_VIEW_ALL, "approve_change"],
    AUDITOR: [*_VIEW_ALL, "view_auditevent", "view_audit"],
    ADMIN: [
        *_VIEW_ALL,
        "view_auditevent",
        "view_audit",
        "manage_changes",
        "add_awsaccount",
        "change_awsaccount",
        "view_blackoutperiod",
        "add_blackoutperiod",
        "change_blackoutperiod",
        "delete_blackoutperiod",
        "view_chatchannel",
        "add_chatchannel",
        "change_chatchannel",
        "delete_chatchannel",
        "view_chatdelivery",
        "add_maintenancepolicy",
        "change_maintenancepolicy",
    ],
}


def sync_roles(group_model, permission_model, role_permissions=None) -> None:
    """Create the four groups and give each exactly its permissions."""
    for role, codenames in (role_permissions or ROLE_PERMISSIONS).items():
        group, _ = group_model.objects.get_or_create(name=role)
        perms = permission_model.objects.filter(
            content_type__app_label="maintenance", codename__in=codenames
        )
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions missing for role {role}: {sorted(missing)}")
        group.permissions.set(perms)


def has_perm(user: Any, perm: str) -> bool:
    """Whether `user` (perhaps anonymous, perhaps None) is active and holds `perm`."""
    return bool(
        user is not None and user.is_authenticated and user.is_active and user.has_perm(perm)
    )
