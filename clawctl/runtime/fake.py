"""FakeLauncher: an in-memory Launcher for unit tests of the daemon. No processes.

It behaves like ProcessLauncher from the outside: pids with create times, exits
reported once by ``reap()`` for its own children, ``alive()`` false after an exit,
``adopt()`` of a process that still "runs" after a simulated daemon restart
(``restarted()``). Tests drive it with ``exit()`` and read what happened from
``spawned``, ``signals`` and ``stops``.
"""

from __future__ import annotations

import itertools
import resource
import signal as _signal
from dataclasses import dataclass, field
from pathlib import Path

from clawctl.config.model import Isolation
from clawctl.errors import RuntimeFailure
from clawctl.runtime.enforcement import plan_quotas
from clawctl.runtime.host import CONTROLLERS, CgroupSite, HostFacts
from clawctl.runtime.logs import log_path
from clawctl.runtime.records import AgentProcess, Exit, LaunchSpec, Usage

CAPABLE_HOST = HostFacts(
    sites={c: CgroupSite(c, 2, Path("/sys/fs/cgroup/fake")) for c in CONTROLLERS},
    netns=True,
    nofile_hard=resource.RLIM_INFINITY,
    can_raise_nofile=True,
)
"""Host facts under which every quota is enforceable (the FakeLauncher default)."""


@dataclass
class _FakeProcess:
    proc: AgentProcess
    running: bool = True
    ignores_sigterm: bool = False
    oom_killed: bool = False


@dataclass
class _World:
    """The process table, shared by a launcher and its ``restarted()`` successors."""

    processes: dict[int, _FakeProcess] = field(default_factory=dict)
    pids: itertools.count[int] = field(default_factory=lambda: itertools.count(10_000))
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000))


class FakeLauncher:
    """A Launcher over an in-memory process table."""

    def __init__(self, *, host: HostFacts = CAPABLE_HOST, _world: _World | None = None) -> None:
        self.host = host
        self._world = _world or _World()
        self._children: set[int] = set()
        self._exits: list[Exit] = []
        self.spawned: list[LaunchSpec] = []
        self.signals: list[tuple[int, int]] = []
        self.stops: list[tuple[int, float]] = []
        self.usage: dict[int, Usage] = {}
        self.spawn_error: RuntimeFailure | None = None

    # -- Launcher ------------------------------------------------------------------

    def spawn(self, spec: LaunchSpec) -> AgentProcess:
        if self.spawn_error is not None:
            error, self.spawn_error = self.spawn_error, None
            raise error
        plan = plan_quotas(spec.limits, self.host)
        pid = next(self._world.pids)
        proc = AgentProcess(
            agent_id=spec.agent_id,
            pid=pid,
            create_time=float(next(self._world.clock)),
            pgid=pid,
            enforcement={k: v.value for k, v in plan.enforcement.items()},
            enforcement_notes=plan.notes,
            limits=spec.limits,
            log_path=log_path(spec.log_dir, spec.agent_id),
            workdir=spec.workdir,
        )
        self._world.processes[pid] = _FakeProcess(proc)
        self._children.add(pid)
        self.spawned.append(spec)
        return proc

    def alive(self, proc: AgentProcess) -> bool:
        entry = self._world.processes.get(proc.pid)
        return entry is not None and entry.running and entry.proc.create_time == proc.create_time

    def signal(self, proc: AgentProcess, sig: int) -> None:
        self.signals.append((proc.pid, sig))
        entry = self._entry(proc)
        if entry is None:
            return
        if sig == _signal.SIGKILL or (sig in (_signal.SIGTERM, _signal.SIGINT) and not entry.ignores_sigterm):
            self._end(entry, returncode=None, sig=sig)

    def stop(self, proc: AgentProcess, grace_seconds: float) -> None:
        self.stops.append((proc.pid, grace_seconds))
        entry = self._entry(proc)
        if entry is not None:
            self._end(entry, returncode=None, sig=_signal.SIGKILL if entry.ignores_sigterm else _signal.SIGTERM)

    def reap(self) -> list[Exit]:
        exits, self._exits = self._exits, []
        return exits

    def probe(self, proc: AgentProcess) -> Usage:
        running = self.alive(proc)
        return self.usage.get(proc.pid, Usage(0, 0.0, None, 1 if running else 0))

    def adopt(
        self,
        pid: int,
        create_time: float,
        *,
        agent_id: str,
        limits: Isolation | None = None,
        workdir: Path | None = None,
        log_dir: Path | None = None,
    ) -> AgentProcess | None:
        entry = self._world.processes.get(pid)
        if entry is None or not entry.running or entry.proc.create_time != create_time:
            return None
        return AgentProcess(
            agent_id=agent_id,
            pid=pid,
            create_time=create_time,
            pgid=entry.proc.pgid,
            enforcement=entry.proc.enforcement,
            enforcement_notes=entry.proc.enforcement_notes,
            limits=limits or entry.proc.limits,
            log_path=log_path(log_dir, agent_id) if log_dir else entry.proc.log_path,
            workdir=workdir or entry.proc.workdir,
            adopted=True,
        )

    def release(self, proc: AgentProcess) -> Exit:
        entry = self._entry(proc)
        oom = entry.oom_killed if entry else False
        if entry is not None and entry.running:
            self._end(entry, returncode=None, sig=_signal.SIGKILL)
        return Exit(proc.pid, proc.agent_id, None, None, oom)

    # -- test controls ---------------------------------------------------------------

    def exit(self, proc: AgentProcess, code: int | None = 0, *, sig: int | None = None, oom_killed: bool = False) -> None:
        """Make ``proc`` end with exit ``code`` (or by ``sig``; ``oom_killed`` implies SIGKILL)."""
        entry = self._entry(proc)
        if entry is None or not entry.running:
            raise ValueError(f"pid {proc.pid} is not running")
        if oom_killed:
            code, sig = None, _signal.SIGKILL
        entry.oom_killed = oom_killed
        self._end(entry, returncode=None if sig is not None else code, sig=sig)

    def ignore_sigterm(self, proc: AgentProcess) -> None:
        """Make ``proc`` survive SIGTERM (stop() then ends it with SIGKILL)."""
        entry = self._entry(proc)
        if entry is not None:
            entry.ignores_sigterm = True

    def restarted(self) -> FakeLauncher:
        """A launcher of a new daemon on the same host: same processes, none its children."""
        return FakeLauncher(host=self.host, _world=self._world)

    def running(self) -> list[AgentProcess]:
        """Every process of the shared table that still runs."""
        return [entry.proc for entry in self._world.processes.values() if entry.running]

    def _entry(self, proc: AgentProcess) -> _FakeProcess | None:
        entry = self._world.processes.get(proc.pid)
        if entry is None or entry.proc.create_time != proc.create_time:
            return None
        return entry

    def _end(self, entry: _FakeProcess, *, returncode: int | None, sig: int | None) -> None:
        if not entry.running:
            return
        entry.running = False
        if entry.proc.pid in self._children:
            self._children.discard(entry.proc.pid)
            self._exits.append(Exit(entry.proc.pid, entry.proc.agent_id, returncode, sig, entry.oom_killed))
