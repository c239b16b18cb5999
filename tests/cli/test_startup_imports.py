"""`clawctl --version` and `clawctl validate` never import the registry stack (startup time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.builders import write_fleet

HEAVY = ["sqlalchemy", "alembic", "filelock", "clawctl.registry", "clawctl.plan"]

PROBE = """
import json, sys
from clawctl.cli.errors import run_guarded
code = run_guarded(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def probe(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
                          check=False)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_version_does_not_import_the_registry() -> None:
    assert probe("--version") == {"code": 0, "loaded": []}


def test_validate_does_not_import_the_registry(tmp_path: Path) -> None:
    assert probe("validate", str(write_fleet(tmp_path))) == {"code": 0, "loaded": []}


def test_help_lists_the_registry_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "clawctl", "--help"], capture_output=True, text=True, timeout=60,
                          check=False)
    for command in ("diff", "apply", "status", "history", "rollback", "delete"):
        assert command in done.stdout


def test_planning_needs_no_database_library() -> None:
    code = ("import sys, clawctl.plan, clawctl.config.normalize; "
            "print([m for m in ('sqlalchemy', 'alembic', 'clawctl.registry') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
