from django.db import migrations

from maintenance.migrations._roles import roles_applier

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
    ],
}


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("maintenance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_applier(ROLES), remove_roles)]
