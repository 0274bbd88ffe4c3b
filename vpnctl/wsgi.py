"""WSGI entry point: ``gunicorn vpnctl.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnctl.settings")

application = get_wsgi_application()
