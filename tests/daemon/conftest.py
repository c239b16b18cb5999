"""A real daemon per test, and a teardown that leaves no process behind.

Teardown stops the daemon it started (by pid), then ends every agent process the
registry recorded — verified by pid and start time — with its whole tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clawctl.daemon import client
from clawctl.daemon.instance import read_info


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Fleet:
    """Helpers around one CLAWCTL_HOME with a running daemon."""

    home: Path
    workdir: Path

    def cli(self, *args: str, timeout: float = 60.0) -> Run:
        proc = subprocess.run([sys.executable, "-m", "clawctl", *args], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, CLAWCTL_HOME=str(self.home)))
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(textwrap.dedent(text))
        return path

    def status(self) -> dict[str, Any]:
        run = self.cli("status", "-o", "json")
        assert run.code == 0, run.err
        return json.loads(run.out)

    def agents(self, fleet: str = "t") -> list[dict[str, Any]]:
        for entry in self.status()["fleets"]:
            if entry["name"] == fleet:
                return list(entry.get("agents", []))
        return []

    def events(self, fleet: str = "t") -> list[dict[str, Any]]:
        run = self.cli("events", "--fleet", fleet, "-n", "500", "-o", "json")
        assert run.code == 0, run.err
        return list(json.loads(run.out)["events"])

    def wait_for(self, check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


def pool_yaml(name: str, command: list[str], *, replicas: int = 1, extra: str = "") -> str:
    """An AgentPool document; ``extra`` is indented spec YAML."""
    spec_extra = textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") + "\n" if extra.strip() else ""
    return (f"---\napiVersion: clawctl/v1\nkind: AgentPool\nmetadata: {{name: {name}}}\nspec:\n"
            f"  replicas: {replicas}\n  command: {json.dumps(command)}\n" + spec_extra)


FLEET = "apiVersion: clawctl/v1\nkind: Fleet\nmetadata: {name: t}\n"
PY = sys.executable


def _end_recorded_agents(home: Path) -> None:
    """SIGKILL every recorded agent tree still running (pid + start time checked)."""
    from clawctl.runtime import identity
    from clawctl.runtime.launcher import ProcessLauncher

    db = home / "registry.db"
    if not db.exists():
        return
    import sqlite3

    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("select id, pid, process_started from agents where pid is not null").fetchall()
        except sqlite3.Error:
            rows = []
    conn.close()
    launcher = ProcessLauncher()
    for agent_id, pid, started in rows:
        if started is None or not identity.is_running(pid, started):
            continue
        proc = launcher.adopt(pid, started, agent_id=agent_id.split("/", 1)[-1])
        if proc is not None:
            launcher.release(proc)


@pytest.fixture
def fleet(clawctl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("CLAWCTL_AUTOSTART", "1")
    workdir = tmp_path / "configs"
    workdir.mkdir()
    helper = Fleet(clawctl_home, workdir)
    try:
        yield helper
    finally:
        info = read_info(clawctl_home)
        if info is not None:
            try:
                client.stop(clawctl_home, timeout=10)
            except Exception:  # noqa: BLE001 - fall back to SIGKILL of the daemon we started
                os.kill(info.pid, signal.SIGKILL)
        _end_recorded_agents(clawctl_home)
