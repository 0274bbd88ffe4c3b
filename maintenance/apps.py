from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import queue_lock


class MaintenanceConfig(AppConfig):
    name = "maintenance"
    verbose_name = _("VPN maintenance")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers

        if settings.Q_ROBUST_LOCK:
            queue_lock.install()  # django-q2 issue 23: see maintenance/queue_lock.py
