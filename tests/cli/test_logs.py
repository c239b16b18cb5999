"""clawctl logs: whole file, --tail, unknown agents, ids shared by two fleets."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawctl.cli.errors import run_guarded
from clawctl.daemon.paths import agent_log_dir
from clawctl.runtime.logs import log_path


def write_log(home: Path, fleet: str, agent: str, lines: int) -> Path:
    path = log_path(agent_log_dir(home, fleet), agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {i}\n" for i in range(lines)))
    return path


def test_whole_log_and_tail(clawctl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_log(clawctl_home, "f", "web-0", 5000)
    assert run_guarded(["logs", "agent/web-0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "line 4999"
    assert run_guarded(["logs", "agent/web-0", "--tail", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == ["line 4997", "line 4998", "line 4999"]
    assert run_guarded(["logs", "agent/web-0", "--tail", "0"]) == 0
    assert capsys.readouterr().out == ""


def test_unknown_and_ambiguous_agents(clawctl_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(["logs", "agent/nope"]) == 1
    assert "no log for agent nope" in capsys.readouterr().err
    write_log(clawctl_home, "a", "web-0", 1)
    write_log(clawctl_home, "b", "web-0", 2)
    assert run_guarded(["logs", "agent/web-0"]) == 1
    err = capsys.readouterr().err
    assert "exists in several fleets" in err and "agent/a/web-0" in err and "agent/b/web-0" in err
    assert run_guarded(["logs", "agent/b/web-0"]) == 0
    assert capsys.readouterr().out == "line 0\nline 1\n"
    assert run_guarded(["logs", "web-0"]) == 2
