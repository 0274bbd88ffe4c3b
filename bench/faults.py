"""The database-fault matrix: PostgreSQL restarted, or the worker's connection terminated.

    .venv/bin/python bench/faults.py            # DATABASE_URL defaults to the local vpnctl

Runs tests/test_db_faults.py (six cases, a real ``qcluster`` each, on PostgreSQL; Django
creates and drops test_<name>) and prints one row per fault and step: how many
``ReplaceVpnTunnel`` calls the simulated AWS received, the request's final state, who
ended it (its worker, or the sweeper after the worker went silent), whether the audit
chain verifies, and the seconds from the fault to the end. Exits non-zero if a case failed.
Restarting PostgreSQL cuts every other client of it, so run it where nobody else uses it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/vpnctl"
COLUMNS = [
    ("fault", "fault"),
    ("after", "step"),
    ("ReplaceVpnTunnel calls", "calls"),
    ("final state", "status"),
    ("ended by", "ended_by"),
    ("audit chain", "chain"),
    ("fault → end (s)", "seconds"),
    ("case", "outcome"),
]
FAULT_NAMES = {"restart": "PostgreSQL restarted", "terminate": "worker's connection terminated"}
STEP_NAMES = {
    "claim": "the claim",
    "calling_aws": '"about to call AWS" committed',
    "aws_call": "the AWS call",
}
ENDED_BY = {"worker": "its worker", "sweeper": "the sweeper, worker lost"}


class Matrix:
    """A pytest plugin: the properties each case recorded, and whether it passed."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            case = report.nodeid.rsplit("[", 1)[-1].rstrip("]")  # "restart-claim"
            fault, _, step = case.partition("-")
            row = {"fault": fault, "step": step, **dict(report.user_properties)}
            row["outcome"] = report.outcome
            self.rows.append(row)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in rows:
        shown = dict(row)
        shown["fault"] = FAULT_NAMES.get(str(row["fault"]), row["fault"])
        shown["step"] = STEP_NAMES.get(str(row["step"]), row["step"])
        shown["ended_by"] = ENDED_BY.get(str(row.get("ended_by")), "?")
        lines.append("| " + " | ".join(str(shown.get(key, "?")) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url or DEFAULT_DATABASE_URL
    if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        parser.error("the database faults need PostgreSQL: a postgres:// DATABASE_URL")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))

    import pytest  # before Django's settings: they recognise the test mode by it

    matrix = Matrix()
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "tests/test_db_faults.py"], plugins=[matrix]
    )
    print()
    print(table(matrix.rows))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
