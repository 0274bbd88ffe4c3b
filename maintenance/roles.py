"""vpnctl's roles as Django groups, and the permissions each one holds.

The migration 0002_roles creates them; ``sync_roles`` in this module is re-used by
``make demo`` to bring old databases up to date.
"""

from __future__ import annotations

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
    ],
}


def sync_roles(group_model, permission_model) -> None:
    """Create the four groups and give each exactly its permissions."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        perms = permission_model.objects.filter(
            content_type__app_label="maintenance", codename__in=codenames
        )
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions missing for role {role}: {sorted(missing)}")
        group.permissions.set(perms)
