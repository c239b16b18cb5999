"""Launch specs validate themselves; exits decode wait statuses into reasons."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from clawctl.runtime import SETUP_FAILED, AgentProcess, Exit, LaunchSpec


def spec(**overrides: object) -> LaunchSpec:
    values: dict[str, object] = dict(agent_id="a-1", argv=["python3", "-V"], env={"K": "v"}, workdir="/w", log_dir="/l")
    values.update(overrides)
    return LaunchSpec(**values)  # type: ignore[arg-type]


def test_spec_normalises_argv_env_and_paths() -> None:
    made = spec()
    assert made.argv == ("python3", "-V")
    assert made.workdir == Path("/w") and made.log_dir == Path("/l")
    with pytest.raises(TypeError):
        made.env["K"] = "changed"  # type: ignore[index]


@pytest.mark.parametrize(
    "overrides",
    [dict(argv=[]), dict(argv=[""]), dict(argv="python3 -V".split() + [3]), dict(agent_id=""), dict(cgroup_parent="../up"), dict(cgroup_parent="/")],
)
def test_spec_rejects_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**overrides)


def test_exit_from_wait_status() -> None:
    exited = Exit.from_wait_status(10, 3 << 8, agent_id="a", oom_killed=True)
    assert (exited.returncode, exited.signal, exited.oom_killed, exited.reason) == (3, None, False, "exit 3")
    killed = Exit.from_wait_status(10, signal.SIGKILL, agent_id="a", oom_killed=True)
    assert (killed.returncode, killed.signal, killed.oom_killed, killed.reason) == (None, 9, True, "OOMKilled")
    termed = Exit.from_wait_status(10, signal.SIGTERM, agent_id="a", oom_killed=True)
    assert (termed.oom_killed, termed.reason) == (False, "SIGTERM")


def test_exit_reasons() -> None:
    assert Exit(1, "a", 0, None).success
    assert Exit(1, "a", SETUP_FAILED, None).reason == "setup failed"
    assert Exit(1, "a", None, None).reason == "unknown"
    assert Exit(1, "a", None, 200).reason == "signal 200"


def test_agent_process_is_hashable_by_identity() -> None:
    proc = AgentProcess("a", os.getpid(), 1.5, os.getpid(), cgroups=["/x"])  # type: ignore[arg-type]
    assert proc.cgroups == (Path("/x"),)
    assert {proc: 1}[AgentProcess("a", os.getpid(), 1.5, os.getpid(), cgroups=(Path("/x"),))] == 1
