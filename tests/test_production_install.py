"""Production as an operator installs it: no simulated AWS, no moto, no demo commands.

The simulator app (moto and the demo commands) is installed only in demo and test mode, and
`pip install .` does not bring moto. Each case that starts Django does it in a new
interpreter, with nothing in its environment but what is given: this process runs pytest,
which settings take for test mode.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import string
import subprocess
import sys
import tomllib
from pathlib import Path

from django.core.management import get_commands
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCT_COMMANDS = ("sync_vpn", "verify_audit", "setup_schedules")
SIMULATOR_COMMANDS = ("run_simulator", "seed_simulator", "run_demo", "demo_users", "demo_accounts")
# What the simulated AWS pulls in: moto, and Flask and docker through moto's extras.
SIMULATOR_ONLY = ("moto", "flask", "docker", "simulator")

# Run by the child: Django as gunicorn and qcluster start it, then every product module an
# operator's process loads (the URLs and views, the tasks, the admin, sync, the commands).
LOAD_THE_PRODUCT = """
import json, sys
import django
django.setup()
import maintenance.urls, maintenance.tasks, maintenance.admin, maintenance.sync
import vpnctl.urls
from django.conf import settings
from django.core.management import get_commands, load_command_class
for name, app in sorted(get_commands().items()):
    if app == "maintenance":
        load_command_class(app, name)
print(json.dumps({
    "mode": settings.MODE,
    "installed_apps": settings.INSTALLED_APPS,
    "modules": sorted(sys.modules),
}))
"""


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "-_"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "vpnctl.settings",
        "VPNCTL_MODE": "production",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(50)),
        "ALLOWED_HOSTS": "vpnctl.example.com",
        "VPNCTL_SQLITE_PATH": str(tmp_path / "production.sqlite3"),
        **extra,
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def simulator_only(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in SIMULATOR_ONLY]


def test_production_loads_no_simulator_and_no_moto(tmp_path):
    result = run(["-c", LOAD_THE_PRODUCT], production_env(tmp_path))

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["mode"] == "production"
    assert "pytest" not in loaded["modules"]
    assert "simulator" not in loaded["installed_apps"]
    assert "maintenance" in loaded["installed_apps"]
    # The product itself was loaded, or the check below proves nothing.
    assert {"maintenance.views", "maintenance.tasks", "django.contrib.admin"} <= set(
        loaded["modules"]
    )
    assert simulator_only(loaded["modules"]) == []


def test_production_lists_the_product_commands_and_no_demo_command(tmp_path):
    env = production_env(tmp_path)
    result = run(["manage.py", "help"], env)

    assert result.returncode == 0, result.stderr
    listed = result.stdout.split()
    for command in PRODUCT_COMMANDS:
        assert command in listed, command
    for command in SIMULATOR_COMMANDS:
        assert command not in listed, command
    assert "[simulator]" not in result.stdout

    refused = run(["manage.py", "run_simulator"], env)
    assert refused.returncode != 0
    assert "Unknown command: 'run_simulator'" in refused.stderr


def test_demo_mode_has_the_simulator_commands_without_loading_moto(tmp_path):
    env = production_env(tmp_path, VPNCTL_MODE="demo")
    del env["SECRET_KEY"]
    result = run(["manage.py", "help"], env)

    assert result.returncode == 0, result.stderr
    assert "[simulator]" in result.stdout
    for command in (*SIMULATOR_COMMANDS, *PRODUCT_COMMANDS):
        assert command in result.stdout.split(), command

    # Every demo process (web, worker, migrate) installs the app: it must not cost moto's
    # import, which only the simulator's own commands need.
    loaded = json.loads(run(["-c", LOAD_THE_PRODUCT], env).stdout.strip().splitlines()[-1])
    assert loaded["mode"] == "demo"
    assert "simulator" in loaded["installed_apps"]
    assert "simulator" in loaded["modules"]
    assert [m for m in loaded["modules"] if m.split(".")[0] == "moto"] == []


def test_test_mode_finds_the_simulator_commands():
    commands = get_commands()

    for command in SIMULATOR_COMMANDS:
        assert commands.get(command) == "simulator", command
    for command in PRODUCT_COMMANDS:
        assert commands.get(command) == "maintenance", command


def test_runtime_dependencies_leave_the_simulator_out():
    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}

    assert "django" in runtime  # the list was read
    assert runtime.isdisjoint({"moto", "flask", "docker"})
    extra = {Requirement(d).name for d in project["optional-dependencies"]["simulator"]}
    assert "moto" in extra


def test_requires_python_admits_the_supported_versions():
    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    supported = SpecifierSet(project["requires-python"])

    for version in ("3.11", "3.11.7", "3.12", "3.13"):
        assert supported.contains(version), version
    assert not supported.contains("3.10")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute import in the module, at any depth, with importlib's by name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_product_never_imports_the_simulator_or_moto():
    sources = [
        path
        for package in ("maintenance", "vpnctl")
        for path in sorted((BASE_DIR / package).rglob("*.py"))
    ]
    offenders = []
    imports = 0
    for path in sources:
        for line, module in _imported_modules(ast.parse(path.read_text(), str(path))):
            imports += 1
            if module.split(".")[0] in {"simulator", "moto"}:
                offenders.append(f"{path.relative_to(BASE_DIR)}:{line}: {module}")

    assert len(sources) > 10 and imports > 100  # the walk saw the code
    assert offenders == []


def test_the_ast_check_sees_an_import_inside_a_function():
    tree = ast.parse(
        "def f():\n    from simulator import SIMULATOR\n"
        "def g():\n    import importlib\n    importlib.import_module('moto.ec2')\n"
    )
    assert sorted(m for _, m in _imported_modules(tree)) == ["importlib", "moto.ec2", "simulator"]
