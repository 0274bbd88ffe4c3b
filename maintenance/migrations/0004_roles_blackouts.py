from django.db import migrations

from maintenance.migrations._roles import noop, roles_applier

ROLES = {
    "requester": [
        "view_awsaccount",
        "view_vpnconnection",
        "view_tunnel",
        "view_syncrun",
        "view_syncresult",
        "view_changerequest",
        "view_approval",
        "view_execution",
        "view_executionstep",
        "request_change",
    ],
    "approver": [
        "view_awsaccount",
        "view_vpnconnection",
        "view_tunnel",
        "view_syncrun",
        "view_syncresult",
        "view_changerequest",
        "view_approval",
        "view_execution",
        "view_executionstep",
        "approve_change",
    ],
    "auditor": [
        "view_awsaccount",
        "view_vpnconnection",
        "view_tunnel",
        "view_syncrun",
        "view_syncresult",
        "view_changerequest",
        "view_approval",
        "view_execution",
        "view_executionstep",
        "view_auditevent",
        "view_audit",
    ],
    "admin": [
        "view_awsaccount",
        "view_vpnconnection",
        "view_tunnel",
        "view_syncrun",
        "view_syncresult",
        "view_changerequest",
        "view_approval",
        "view_execution",
        "view_executionstep",
        "view_auditevent",
        "view_audit",
        "manage_changes",
        "add_awsaccount",
        "change_awsaccount",
        "view_blackoutperiod",
        "add_blackoutperiod",
        "change_blackoutperiod",
        "delete_blackoutperiod",
    ],
}


class Migration(migrations.Migration):
    """Admins manage blackout periods (the model arrived in 0003)."""

    dependencies = [("maintenance", "0003_operations")]

    operations = [migrations.RunPython(roles_applier(ROLES), noop)]
