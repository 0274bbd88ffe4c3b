from __future__ import annotations

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """The simulated AWS and the demo commands; installed in demo and test mode only."""

    name = "simulator"
    verbose_name = "Simulated AWS"
