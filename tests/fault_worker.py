"""``manage.py qcluster`` whose worker pauses right after one step of an execution (test-only).

    VPNCTL_FAULT_STEP=claim VPNCTL_FAULT_DIR=/tmp/x python -m tests.fault_worker

tests/test_db_faults.py starts the cluster this way. Right after the named step has
returned, the worker writes ``paused.json`` into the directory (its pid and its database
connection's backend pid) and waits for a file named ``go`` there; meanwhile the test
restarts PostgreSQL or terminates that backend. Then the worker goes on as production
would, and its next database operation meets the fault. The steps:

- ``claim``: ``Execution.claim`` committed (the request is ``running``);
- ``calling_aws``: ``Execution.mark_calling_aws`` committed "about to call AWS";
- ``aws_call``: ``aws.replace_tunnel`` answered (the name ``tasks.py`` calls it by).

It pauses once per directory, and only after a step that happened (a claim won, a call
answered). The names are patched in this process before django-q2 forks its workers;
nothing in the product imports this module.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("claim", "calling_aws", "aws_call")
PAUSED = "paused.json"
GO = "go"
# A test that died never writes "go": the worker does not wait for it forever.
PAUSE_LIMIT_SECONDS = 120


def pause(step: str, directory: Path) -> None:
    """Say where the worker stands, then wait for the test's "go"."""
    from django.db import connection

    raw = connection.connection  # psycopg's connection, open since the step's own queries
    info = {
        "step": step,
        "pid": os.getpid(),
        "backend_pid": raw.info.backend_pid if raw is not None else None,
    }
    partial = directory / (PAUSED + ".part")
    partial.write_text(json.dumps(info))
    partial.rename(directory / PAUSED)  # whole or absent, for the test polling it
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not (directory / GO).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _pausing(step: str, directory: Path, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def paused_after(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if result and not (directory / PAUSED).exists():
            pause(step, directory)
        return result

    return paused_after


def install(step: str, directory: Path) -> None:
    """Patch the function behind ``step`` in this process."""
    from maintenance import aws
    from maintenance.models import Execution

    if step == "claim":
        # A classmethod: getattr gives it bound to the class already.
        Execution.claim = staticmethod(_pausing(step, directory, Execution.claim))
    elif step == "calling_aws":
        Execution.mark_calling_aws = _pausing(step, directory, Execution.mark_calling_aws)
    elif step == "aws_call":
        # tasks.py calls ``aws.replace_tunnel``: the package's attribute, looked up per call.
        aws.replace_tunnel = _pausing(step, directory, aws.replace_tunnel)
    else:
        raise SystemExit(f"VPNCTL_FAULT_STEP must be one of {', '.join(STEPS)}, not {step!r}")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnctl.settings")
    import django

    django.setup()
    install(os.environ["VPNCTL_FAULT_STEP"], Path(os.environ["VPNCTL_FAULT_DIR"]))
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "qcluster"])


if __name__ == "__main__":
    main()
