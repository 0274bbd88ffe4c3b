"""The shape of the product's code: which module may import which, and how large one grows.

Read from the source with ``ast``, so a rule broken anywhere (a function body included)
fails here, with the file and line that broke it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("maintenance", "vpnctl")
MAX_MODULE_LINES = 700


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    line: int
    in_function: bool
    commented: bool


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join(parts), path))
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    if node.module:
        return [base]
    # "from . import aws, tasks": each name is a module of the package.
    return [f"{base}.{alias.name}" for alias in node.names]


def _imports() -> list[Import]:
    found = []
    for module, path in _modules():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(module, path, node)
            else:
                continue
            previous = lines[node.lineno - 2] if node.lineno > 1 else ""
            commented = "#" in lines[node.lineno - 1] or previous.strip().startswith("#")
            for target in targets:
                found.append(Import(module, target, node.lineno, id(node) in inside, commented))
    return found


IMPORTS = _imports()


def _offending(importer: str, targets: tuple[str, ...]) -> list[str]:
    return [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if (i.module == importer or i.module.startswith(importer + "."))
        and any(i.target == t or i.target.startswith(t + ".") for t in targets)
    ]


def test_the_product_never_imports_the_simulated_aws():
    assert _offending("maintenance", ("simulator", "moto")) == []
    assert _offending("vpnctl", ("simulator", "moto")) == []


def test_models_use_only_leaves():
    """Models import no tasks, views, API, forms or AWS code: they are what those build on."""
    forbidden = tuple(
        f"maintenance.{name}" for name in ("tasks", "views", "api", "forms", "aws", "sync", "admin")
    )
    assert _offending("maintenance.models", forbidden) == []
    assert _offending("maintenance.models", ("boto3", "botocore")) == []


def test_the_api_is_imported_only_by_the_url_configuration():
    """The API uses views, forms and models; nothing of the product builds on it."""
    importers = {
        i.module
        for i in IMPORTS
        if i.target.startswith("maintenance.api") and not i.module.startswith("maintenance.api")
    }
    assert importers == {"vpnctl.urls"}


def test_the_aws_seam_imports_no_model():
    assert _offending("maintenance.aws", ("maintenance.models", "django.db")) == []


LEAVES = {
    "maintenance.enqueue": set(),
    "maintenance.notifications": {"maintenance.choices", "maintenance.times"},
    "maintenance.times": set(),
    "maintenance.texts": {"maintenance.times"},
    "maintenance.choices": set(),
    "maintenance.roles": set(),
    "maintenance.secrets": set(),
    "maintenance.planning": set(),
    "maintenance.health_events": {"maintenance.choices"},
}


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_the_leaves_import_nothing_of_vpnctl_but_other_leaves(leaf):
    """What models may use outside their package imports (almost) nothing of vpnctl."""
    project = {i.target for i in IMPORTS if i.module == leaf and i.target.split(".")[0] in PRODUCT}
    assert project == LEAVES[leaf]


def test_models_use_no_project_module_but_the_leaves():
    outside = {
        i.target
        for i in IMPORTS
        if i.module.startswith("maintenance.models")
        and i.target.split(".")[0] in PRODUCT
        and not i.target.startswith("maintenance.models")
    }
    assert outside - set(LEAVES) == {"maintenance.regions"}


def test_only_aws_calls_boto3():
    """boto3 and botocore live in maintenance/aws/; regions.py only reads botocore's bundled
    list of regions (no client, no call), to check the regions an admin types."""
    users = {i.module for i in IMPORTS if i.target.split(".")[0] in ("boto3", "botocore")}
    assert "maintenance.aws.clients" in users
    assert {m for m in users if not m.startswith("maintenance.aws.")} == {"maintenance.regions"}
    assert _offending("maintenance.regions", ("boto3", "botocore.client")) == []


def test_no_function_imports_a_project_module_without_saying_why():
    silent = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.in_function and i.target.split(".")[0] in PRODUCT and not i.commented
    ]
    assert silent == []


def test_no_product_module_outgrows_one_reading():
    too_long = {
        module: n
        for module, path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_the_rules_above_do_see_imports():
    """The walk finds a known import, a relative one and one inside a function."""
    assert any(
        i.module == "maintenance.models.changes" and i.target == "maintenance.enqueue"
        for i in IMPORTS
    )
    assert any(i.module == "maintenance.signals" and i.in_function for i in IMPORTS)
