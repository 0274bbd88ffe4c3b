"""Serve the simulated AWS (moto plus vpnctl's additions) on 127.0.0.1 until stopped.

Anyone can then point boto3 or the AWS CLI at it, with any credentials (``testing`` /
``testing`` is the default account; ``sts assume-role`` into
``arn:aws:iam::210987654321:role/vpnctl-reader`` reaches the second). Fill it with
``manage.py seed_simulator``. Nothing is kept: stopping it forgets everything.

The default timings are the demo's: a replaced tunnel stays DOWN for 90 s, a modified
connection is 'modifying' for 60 s, and AWS applies overdue maintenance 60 s after its
deadline. Throttling follows EC2's limits unless scaled or turned off.
"""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from simulator import SIMULATOR, Throttling, Timings, start_server


class Command(BaseCommand):
    help = gettext_lazy(
        "Serve the simulated AWS on 127.0.0.1 until Ctrl-C or SIGTERM (tests and demo only)."
    )
    # Needs no database and no checks: it may start before the demo database exists.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port", type=int, default=5055, help=gettext_lazy("port on 127.0.0.1 (0: any)")
        )
        parser.add_argument(
            "--replace-down-seconds",
            type=float,
            default=90.0,
            help=gettext_lazy("how long a replaced tunnel stays DOWN"),
        )
        parser.add_argument(
            "--modify-seconds",
            type=float,
            default=60.0,
            help=gettext_lazy("how long a connection stays 'modifying' after a modification"),
        )
        parser.add_argument(
            "--auto-apply-delay-seconds",
            type=float,
            default=60.0,
            help=gettext_lazy(
                "how long after MaintenanceAutoAppliedAfter AWS applies the maintenance itself"
            ),
        )
        throttle = parser.add_mutually_exclusive_group()
        throttle.add_argument(
            "--throttle-scale",
            type=float,
            default=1.0,
            help=gettext_lazy("multiply EC2's request limits by this (default 1: EC2's own)"),
        )
        throttle.add_argument(
            "--no-throttle", action="store_true", help=gettext_lazy("never throttle")
        )

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError(_("run_simulator only runs with VPNCTL_MODE=demo (or in tests)."))
        port = options["port"]
        if not 0 <= port <= 65535:
            raise CommandError(_("--port must be between 0 and 65535."))
        seconds = {
            name: options[name]
            for name in ("replace_down_seconds", "modify_seconds", "auto_apply_delay_seconds")
        }
        if any(value < 0 for value in seconds.values()):
            raise CommandError(_("Durations cannot be negative."))
        if options["throttle_scale"] <= 0:
            raise CommandError(_("--throttle-scale must be above 0 (or use --no-throttle)."))
        throttling = (
            None if options["no_throttle"] else Throttling().scaled(options["throttle_scale"])
        )

        # werkzeug logs every request at INFO; keep the demo's output readable unless asked.
        if options["verbosity"] < 2:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

        SIMULATOR.reset()
        SIMULATOR.configure(timings=Timings(**seconds), throttling=throttling)

        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                server, url = start_server(port)
            except OSError as exc:
                raise CommandError(
                    _("Cannot listen on 127.0.0.1:%(port)s: %(error)s")
                    % {"port": port, "error": exc}
                ) from exc
            self._banner(url, seconds, options)
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                server.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(_("Simulated AWS stopped; its state is gone."))

    def _banner(self, url: str, seconds: dict[str, float], options: dict) -> None:
        if options["no_throttle"]:
            throttling = _("off")
        else:
            throttling = _("EC2's limits × %(scale)s") % {"scale": options["throttle_scale"]}
        lines = [
            self.style.SUCCESS(_("Simulated AWS listening on %(url)s") % {"url": url}),
            _(
                "  Replaced tunnels stay DOWN %(replace)s s; modifications take %(modify)s s; "
                "AWS applies overdue maintenance %(delay)s s after its deadline."
            )
            % {
                "replace": f"{seconds['replace_down_seconds']:g}",
                "modify": f"{seconds['modify_seconds']:g}",
                "delay": f"{seconds['auto_apply_delay_seconds']:g}",
            },
            _("  Throttling: %(throttling)s.") % {"throttling": throttling},
            _("  Seed it:  manage.py seed_simulator --endpoint %(url)s --connections 60")
            % {"url": url},
            _(
                "  Try it:   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
                "aws --endpoint-url %(url)s --region ap-northeast-1 ec2 describe-vpn-connections"
            )
            % {"url": url},
            _("  Ctrl-C stops it."),
        ]
        for line in lines:
            self.stdout.write(line)
        self.stdout.flush()
