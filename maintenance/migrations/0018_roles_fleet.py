from django.db import migrations

from maintenance.migrations._roles import noop, roles_applier

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

ROLES = {
    "requester": [*_VIEW_ALL, "request_change"],
    "approver": [*_VIEW_ALL, "approve_change"],
    "auditor": [*_VIEW_ALL, "view_auditevent", "view_audit"],
    "admin": [
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


class Migration(migrations.Migration):
    """Everyone reads policies and AWS Health events; admins edit policies (0017)."""

    dependencies = [("maintenance", "0017_fleet_automation")]

    operations = [migrations.RunPython(roles_applier(ROLES), noop)]
