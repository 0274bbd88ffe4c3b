"""Shared by the data migrations that apply vpnctl's roles.

Each migration passes its own frozen copy of the roles, as they were when it was written:
a migration must not change meaning when maintenance/roles.py changes later.
"""

from django.contrib.auth.management import create_permissions


def roles_applier(role_permissions: dict[str, list[str]]):
    def apply(apps, schema_editor):
        from maintenance.roles import sync_roles

        # Permissions are normally created after all migrations; the roles need them now.
        for app_config in apps.get_app_configs():
            app_config.models_module = True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = None
        sync_roles(
            apps.get_model("auth", "Group"),
            apps.get_model("auth", "Permission"),
            role_permissions,
        )

    return apply


def noop(apps, schema_editor):
    pass
