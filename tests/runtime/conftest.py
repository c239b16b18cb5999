"""Runtime fixtures: a real launcher that stops, reaps and cleans up everything it
started, spec builders, and polling helpers with deadlines (no test may hang)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from clawctl.config.model import Isolation
from clawctl.runtime import AgentProcess, Exit, HostFacts, LaunchSpec, ProcessLauncher, probe_host
from clawctl.runtime.host import CgroupSite

PY = sys.executable

PATIENCE = 30.0
"""Upper bound for waits that normally end in milliseconds: CI machines (and this
one, when other suites run) can be slower by orders of magnitude; a passing test
never waits this long."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a second or two (many real processes)")


@pytest.fixture(scope="session")
def host() -> HostFacts:
    """This machine's facts, probed once per test session."""
    return probe_host()


@pytest.fixture
def no_cgroup_host(host: HostFacts) -> HostFacts:
    """The same host, as if it had no usable cgroups (the psutil fallback paths)."""
    return HostFacts(
        sites={},
        unusable={c: "disabled for this test" for c in ("memory", "cpu", "pids")},
        netns=host.netns,
        netns_reason=host.netns_reason,
        nofile_hard=host.nofile_hard,
        can_raise_nofile=host.can_raise_nofile,
        mounts=host.mounts,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = PATIENCE, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class Strays:
    """Pids a test learned of (grandchildren); killed on teardown if still running."""

    def __init__(self) -> None:
        self.known: dict[int, float] = {}

    def add(self, pid: int) -> int:
        self.known[pid] = psutil.Process(pid).create_time()
        return pid

    def running(self, pid: int) -> bool:
        try:
            process = psutil.Process(pid)
            return process.create_time() == self.known[pid] and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


@pytest.fixture
def strays() -> Iterator[Strays]:
    found = Strays()
    yield found
    for pid in found.known:
        if found.running(pid):
            os.kill(pid, signal.SIGKILL)


class Harness:
    """A ProcessLauncher plus builders and waits bound to one test's directories."""

    def __init__(self, launcher: ProcessLauncher, root: Path) -> None:
        self.launcher = launcher
        self.root = root
        self.cgroup_parent = f"clawctl-test-{secrets.token_hex(4)}"
        self.exits: list[Exit] = []

    def spec(self, agent_id: str, *argv: str, env: dict[str, str] | None = None, **limits: Any) -> LaunchSpec:
        return LaunchSpec(
            agent_id=agent_id,
            argv=argv,
            env=env or {},
            workdir=self.root / "work" / agent_id,
            log_dir=self.root / "logs",
            limits=Isolation(**limits),
            cgroup_parent=self.cgroup_parent,
        )

    def spawn(self, agent_id: str, *argv: str, env: dict[str, str] | None = None, **limits: Any) -> AgentProcess:
        return self.launcher.spawn(self.spec(agent_id, *argv, env=env, **limits))

    def python(self, agent_id: str, code: str, **kwargs: Any) -> AgentProcess:
        return self.spawn(agent_id, PY, "-c", code, **kwargs)

    def log(self, proc: AgentProcess) -> str:
        assert proc.log_path is not None
        return proc.log_path.read_text() if proc.log_path.exists() else ""

    def wait_log(self, proc: AgentProcess, pattern: str, timeout: float = PATIENCE) -> re.Match[str]:
        return wait_for(lambda: re.search(pattern, self.log(proc)), timeout, f"{pattern!r} in the log of {proc.agent_id}")

    def wait_exit(self, proc: AgentProcess, timeout: float = PATIENCE) -> Exit:
        def collected() -> Exit | None:
            self.exits.extend(self.launcher.reap())
            return next((e for e in self.exits if e.pid == proc.pid), None)

        return wait_for(collected, timeout, f"the exit of {proc.agent_id}")


@pytest.fixture(params=["fork-server", "shim"])
def harness(host: HostFacts, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A real launcher, once spawning through its fork server and once through the exec shim
    per agent; on teardown every agent it tracks is stopped and reaped, and the test's
    cgroup parent must be gone."""
    h = Harness(ProcessLauncher(host=host, fork_server=request.param == "fork-server"), tmp_path)
    yield h
    launcher = h.launcher
    for proc in launcher.tracked():
        launcher.stop(proc, 0)

    def leftovers() -> list[Path]:
        return [site.base / h.cgroup_parent for site in host.sites.values() if (site.base / h.cgroup_parent).exists()]

    # reap() also retries cgroups whose last process was still exiting at first.
    wait_for(lambda: (launcher.reap() or True) and not launcher.tracked() and not leftovers(), PATIENCE,
             "every child reaped and every cgroup removed")
    launcher.close()


def fake_sites(base: Path, version: int = 1) -> dict[str, CgroupSite]:
    """CgroupSites rooted in a plain directory (for tests of the pure/file parts)."""
    return {c: CgroupSite(c, version, base / (c if version == 1 else "")) for c in ("memory", "cpu", "pids")}
