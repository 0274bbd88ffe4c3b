"""Values every page's navigation needs."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone


def navigation(request: HttpRequest) -> dict[str, object]:
    return {"current_time_zone": timezone.get_current_timezone_name()}
