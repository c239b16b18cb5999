"""Every command meets an unusable registry with one error line and leaves the file alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builders import write_fleet
from tests.cli.conftest import Run

CLI = Callable[..., Run]

COMMANDS: dict[str, list[str]] = {
    "diff": ["diff", "{config}"],
    "apply": ["apply", "{config}", "--yes"],
    "status": ["status"],
    "history": ["history"],
    "rollback": ["rollback", "1", "--yes"],
    "delete": ["delete", "demo", "--yes"],
}


def make_newer(home: Path, cli: CLI, config: Path) -> None:
    assert cli("apply", config).code == 0
    db = sqlite3.connect(home / "registry.db")
    db.execute("UPDATE clawctl_schema SET version_num = 'ffff'")
    db.commit()
    db.close()


def make_garbage(home: Path, cli: CLI, config: Path) -> None:
    (home / "registry.db").write_bytes(b"\x00garbage" * 512)


def make_foreign(home: Path, cli: CLI, config: Path) -> None:
    db = sqlite3.connect(home / "registry.db")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()


KINDS = {"newer": (make_newer, "was written by a newer clawctl"),
         "garbage": (make_garbage, "is not a clawctl registry"),
         "foreign": (make_foreign, "is not a clawctl registry")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", COMMANDS)
def test_unusable_registry(cli: CLI, tmp_path: Path, clawctl_home: Path, kind: str, command: str) -> None:
    config = write_fleet(tmp_path / "cfg")
    make, message = KINDS[kind]
    make(clawctl_home, cli, config)
    path = clawctl_home / "registry.db"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    result = cli(*[a.format(config=config) for a in COMMANDS[command]])
    assert result.code == (2 if command == "diff" else 1)
    lines = result.err.splitlines()
    assert lines[0].startswith("error: ") and message in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not (clawctl_home / "registry.db-wal").exists()
