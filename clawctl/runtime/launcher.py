"""The Launcher seam, and ProcessLauncher: the only code that spawns, signals and
measures agent processes.

Spawn path (no shell, no preexec_fn, no fd kept per agent): the fork server
(clawctl/runtime/forkserver.py, one ``python -I -S shim.py --serve`` per launcher)
clones a child of this process with stdin=/dev/null and stdout+stderr on the
agent's log (O_APPEND); the child starts a new session, enters the workdir, joins
the agent's cgroups, closes stray fds, sets rlimits, unshares the network, then
execs the agent. Where the fork server cannot work, ``os.posix_spawn`` (vfork-based)
starts ``python -I -S shim.py`` per agent, which takes the same steps. Either way
the pid and create_time are the agent's from the start (exec keeps both).

Exits: ``reap()`` collects every exited child of this process without blocking
(``waitpid(-1)`` semantics), so the daemon should call it on SIGCHLD and on its
periodic tick, and should not start other children that it waits for itself: their
exit status could be collected (and returned with ``agent_id`` None) by ``reap()``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clawctl.config.model import Isolation
from clawctl.errors import RuntimeFailure
from clawctl.runtime import cgroups, forkserver, identity, tree, usage
from clawctl.runtime.cgroups import DEFAULT_PARENT
from clawctl.runtime.enforcement import DEFAULT_DISK_INTERVAL, QuotaPlan, adopted_enforcement, plan_quotas
from clawctl.runtime.environment import agent_environment
from clawctl.runtime.host import CONTROLLERS, SHIM_PATH, HostFacts, cgroup_dir, probe_host
from clawctl.runtime.logs import log_path
from clawctl.runtime.records import AgentProcess, Exit, LaunchSpec, Usage

_log = logging.getLogger(__name__)

KILL_WAIT = 5.0
"""How long stop() and release() wait for a SIGKILLed tree to vanish before failing."""

_DEFAULT_SIGNALS = forkserver.DEFAULT_SIGNALS


class Launcher(Protocol):
    """The seam between the daemon and processes. ``ProcessLauncher`` is the real one;
    ``FakeLauncher`` (clawctl.runtime.fake) is an in-memory one for tests."""

    def spawn(self, spec: LaunchSpec) -> AgentProcess:
        """Start the agent; returns once the process exists (its exec follows within
        milliseconds). Raises RuntimeFailure when it cannot be started."""
        ...

    def alive(self, proc: AgentProcess) -> bool:
        """True when ``proc.pid`` still is that process (create_time matches) and is
        not a zombie."""
        ...

    def signal(self, proc: AgentProcess, sig: int) -> None:
        """Send ``sig`` once to each process of the agent's tree (process group, cgroup
        members, descendants)."""
        ...

    def stop(self, proc: AgentProcess, grace_seconds: float) -> None:
        """SIGTERM the tree, wait up to ``grace_seconds``, SIGKILL what is left; on
        return nothing of the tree runs and its cgroups are removed. A child's exit
        is still reported by ``reap()``."""
        ...

    def reap(self) -> list[Exit]:
        """Collect exited children without blocking; each exit is reported once.
        Leftovers of an exited agent's tree are SIGKILLed and its cgroups removed."""
        ...

    def probe(self, proc: AgentProcess) -> Usage:
        """Measure the agent's tree (zeros when it is gone)."""
        ...

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
        """A handle on an agent started by an earlier daemon, or None when ``pid`` is
        not that process any more."""
        ...

    def release(self, proc: AgentProcess) -> Exit:
        """Finish an agent that is dead (or must be): SIGKILL what is left of its tree,
        remove its cgroups, forget it. Returns its exit as far as known."""
        ...


@dataclass
class _Record:
    proc: AgentProcess
    child: bool
    oom: bool | None = None


def resolve_executable(command: str, path: str, workdir: Path) -> str:
    """The file ``command`` names: searched on ``path`` (the agent's PATH) unless it
    contains a slash, then relative to ``workdir``. Raises RuntimeFailure."""
    if "/" in command:
        candidate = Path(command) if os.path.isabs(command) else workdir / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise RuntimeFailure(
            f"cannot start {command}: not an executable file",
            hint="check the pool's command; relative paths are resolved in the agent's workdir",
        )
    found = shutil.which(command, path=path)
    if found is None:
        raise RuntimeFailure(
            f"cannot start {command}: not found on the agent's PATH",
            hint=f"PATH is {path}; give an absolute path or set PATH in the pool's env",
        )
    return os.path.abspath(found)


def shim_args(plan: QuotaPlan, *, cgroup_dirs: tuple[Path, ...], workdir: Path, exe: str, argv: tuple[str, ...]) -> list[str]:
    """The exec shim's arguments for one agent, as the shim and the fork server take them (pure)."""
    command = ["--cwd", str(workdir)]
    for directory in cgroup_dirs:
        command += ["--cgroup", str(directory)]
    if plan.open_files is not None:
        command += ["--nofile", str(plan.open_files)]
    if plan.network is not None:
        command += ["--net", plan.network.value]
    return [*command, "--exe", exe, "--", *argv]


class ProcessLauncher:
    """Real processes. Thread-safe; one instance per daemon.

    ``host`` skips the host probe (tests share one); ``disk_interval`` is the
    minimum time between two workdir walks of one agent; ``clock`` drives that
    rate limit and the CPU percentage; ``fork_server`` False starts the exec shim
    per agent instead of cloning the fork server. Call ``close()`` when done (it
    stops the fork server; agents keep running).
    """

    def __init__(
        self,
        *,
        host: HostFacts | None = None,
        disk_interval: float = DEFAULT_DISK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        move_self: bool = True,
        fork_server: bool = True,
    ) -> None:
        self._host = host
        self._fork_server = forkserver.ForkServer() if fork_server else None
        self._move_self = move_self
        self._disk_interval = disk_interval
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[int, _Record] = {}
        self._pending: list[tuple[Path, ...]] = []
        self._cpu: dict[tuple[int, float], tuple[float, float]] = {}
        self._disk: dict[tuple[int, float], tuple[float, int, float]] = {}

    @property
    def host(self) -> HostFacts:
        """The probed host facts (probed on first use)."""
        with self._lock:
            if self._host is None:
                self._host = probe_host(move_self=self._move_self)
            return self._host

    def tracked(self) -> tuple[AgentProcess, ...]:
        """Agents this launcher spawned and has not reaped, or adopted and not released."""
        with self._lock:
            return tuple(record.proc for record in self._records.values())

    # -- spawn ---------------------------------------------------------------------

    def spawn(self, spec: LaunchSpec) -> AgentProcess:
        facts = self.host
        plan = plan_quotas(spec.limits, facts, disk_interval=self._disk_interval)
        env = agent_environment(
            spec.env, agent_id=spec.agent_id, parent_env=os.environ, python_dir=os.path.dirname(sys.executable)
        )
        try:
            spec.workdir.mkdir(parents=True, exist_ok=True)
            spec.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot prepare the directories of agent {spec.agent_id}: {exc.strerror or exc}",
                hint=f"check that {exc.filename or spec.workdir} is writable",
            ) from exc
        exe = resolve_executable(spec.argv[0], env["PATH"], spec.workdir)
        cgroup_dirs: tuple[Path, ...] = ()
        if plan.cgroup_writes:
            cgroup_dirs = cgroups.create_agent_cgroups(
                plan, facts, agent_id=spec.agent_id, parent=spec.cgroup_parent or DEFAULT_PARENT
            )
        args = shim_args(plan, cgroup_dirs=cgroup_dirs, workdir=spec.workdir, exe=exe, argv=spec.argv)
        log = log_path(spec.log_dir, spec.agent_id)
        try:
            with self._lock:  # reap() must not collect the pid before it is recorded
                pid = self._start(args, env, log)
                started = identity.create_time(pid) or time.time()
                proc = AgentProcess(
                    agent_id=spec.agent_id,
                    pid=pid,
                    create_time=started,
                    pgid=pid,
                    cgroups=cgroup_dirs,
                    enforcement={k: v.value for k, v in plan.enforcement.items()},
                    enforcement_notes=plan.notes,
                    limits=spec.limits,
                    log_path=log,
                    workdir=spec.workdir,
                )
                self._records[pid] = _Record(proc, child=True)
        except OSError as exc:
            cgroups.remove_cgroups(cgroup_dirs, facts)
            raise RuntimeFailure(
                f"cannot start agent {spec.agent_id}: {exc.strerror or exc}",
                hint=f"the log file is {log}",
            ) from exc
        return proc

    def prepare(self) -> None:
        """Probe the host and start the fork server now, so that the first spawn does not wait
        for either (the server boots while the caller goes on)."""
        self.host  # noqa: B018 - the probe, before the server: it may move this process's cgroup
        if self._fork_server is not None:
            with self._lock:
                self._fork_server.start()

    def close(self) -> None:
        """Stop the fork server, if one runs (agents keep running; a later spawn starts another)."""
        if self._fork_server is not None:
            with self._lock:
                self._fork_server.close()

    def _start(self, args: list[str], env: dict[str, str], log: Path) -> int:
        """Start the agent through the fork server, else through the shim. Raises OSError."""
        server = self._fork_server
        if server is not None and server.broken is None:
            try:
                return server.spawn(args, env, str(log))
            except forkserver.Unavailable as exc:
                _log.warning("%s; starting each agent through the exec shim instead", exc)
        return _posix_spawn([sys.executable, "-I", "-S", str(SHIM_PATH), *args], env, log)

    # -- observe and signal --------------------------------------------------------

    def alive(self, proc: AgentProcess) -> bool:
        return identity.is_running(proc.pid, proc.create_time)

    def signal(self, proc: AgentProcess, sig: int) -> None:
        # Descendants too: on hosts without cgroups they are the only way to reach a
        # tool process that called setsid.
        targets = tree.descendants(proc.pid) if identity.exists(proc.pid, proc.create_time) else {}
        tree.send(proc, sig, targets)

    def stop(self, proc: AgentProcess, grace_seconds: float) -> None:
        targets = tree.snapshot(proc)
        tree.send(proc, signal.SIGTERM, targets)
        tree.send(proc, signal.SIGCONT, targets)  # a stopped process cannot act on SIGTERM
        left = tree.wait_gone(proc, targets, max(0.0, grace_seconds))
        if left:
            targets = {**targets, **tree.snapshot(proc), **left}
            tree.send(proc, signal.SIGKILL, targets)
            left = tree.wait_gone(proc, targets, KILL_WAIT, resend=signal.SIGKILL)
            if left:
                raise RuntimeFailure(
                    f"agent {proc.agent_id}: processes {sorted(left)} survived SIGKILL",
                    hint="they are probably blocked in the kernel (state D); the daemon retries",
                )
        self._cleanup(proc)
        with self._lock:
            record = self._records.get(proc.pid)
            if record is not None and not record.child:
                self._forget(proc.pid)  # no exit to report for an adopted agent

    # -- exits -----------------------------------------------------------------------

    def reap(self) -> list[Exit]:
        self._retry_pending()
        exits = []
        with self._lock:
            while True:
                try:
                    # Peek first: while the child is a zombie its pid (and so its process
                    # group id) cannot be reused, so killing leftovers here is safe.
                    info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    break
                if info is None or info.si_pid == 0:
                    break
                pid = info.si_pid
                if pid in forkserver.SERVER_PIDS:  # a fork server of this process, not an agent
                    forkserver.SERVER_PIDS.discard(pid)
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                    continue
                record = self._records.get(pid)
                if record is not None and record.child:
                    try:
                        self._cleanup(record.proc)
                    except RuntimeFailure as exc:  # the exit must still be reported
                        _log.warning("cleaning up after agent %s: %s", record.proc.agent_id, exc.message)
                try:
                    _, status = os.waitpid(pid, 0)
                except ChildProcessError:
                    continue  # collected by someone else meanwhile
                exits.append(
                    Exit.from_wait_status(
                        pid,
                        status,
                        agent_id=record.proc.agent_id if record else None,
                        oom_killed=bool(record and record.oom),
                    )
                )
                self._forget(pid)
        return exits

    def release(self, proc: AgentProcess) -> Exit:
        self._retry_pending()
        targets = tree.snapshot(proc)
        if targets or cgroups.members(proc.cgroups):
            tree.send(proc, signal.SIGKILL, targets)
            tree.wait_gone(proc, targets, KILL_WAIT, resend=signal.SIGKILL)
        oom = self._cleanup(proc)
        with self._lock:
            record = self._records.get(proc.pid)
            if record is not None and record.child:
                try:
                    pid, status = os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status = 0, 0
                if pid == proc.pid:
                    self._forget(pid)
                    return Exit.from_wait_status(pid, status, agent_id=proc.agent_id, oom_killed=oom)
                return Exit(proc.pid, proc.agent_id, None, None, oom)  # reap() reports it later
            self._forget(proc.pid)
        return Exit(proc.pid, proc.agent_id, None, None, oom)

    # -- measure ---------------------------------------------------------------------

    def probe(self, proc: AgentProcess) -> Usage:
        key = (proc.pid, proc.create_time)
        rss, cpu, count = usage.measure(usage.tree_pids(proc))
        now = self._clock()
        with self._lock:
            previous = self._cpu.get(key)
            self._cpu[key] = (now, cpu)
            disk = self._disk.get(key)
        percent = None
        if previous is not None and now > previous[0]:
            percent = max(0.0, (cpu - previous[1]) / (now - previous[0]) * 100.0)
        if proc.workdir is not None and (disk is None or now - disk[0] >= self._disk_interval):
            disk = (now, usage.disk_usage(proc.workdir), time.time())
            with self._lock:
                self._disk[key] = disk
        return Usage(
            rss_bytes=rss,
            cpu_seconds=cpu,
            cpu_percent=percent,
            processes=count,
            disk_bytes=disk[1] if disk else None,
            disk_measured_at=disk[2] if disk else None,
        )

    # -- adopt -----------------------------------------------------------------------

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
        if not identity.is_running(pid, create_time):
            return None
        with self._lock:
            known = self._records.get(pid)
            if known is not None and abs(known.proc.create_time - create_time) <= identity.CREATE_TIME_TOLERANCE:
                return known.proc if known.proc.agent_id == agent_id else None
        facts = self.host
        limits = limits or Isolation()
        dirs: list[Path] = []
        present: set[str] = set()
        for entry in identity.cgroup_entries(pid):
            directory = cgroup_dir(entry, facts.mounts)
            if directory is None or not cgroups.is_agent_cgroup(directory, agent_id):
                continue  # never take over a cgroup that is not the agent's own
            if directory not in dirs:
                dirs.append(directory)
            if entry.controllers:
                present.update(entry.controllers & set(CONTROLLERS))
            else:
                present.update(_read_words(directory / "cgroup.controllers") & set(CONTROLLERS))
        try:
            pgid = os.getpgid(pid)
            nofile = _open_files_limit(pid)
        except OSError:
            return None
        plan = plan_quotas(limits, facts, disk_interval=self._disk_interval)
        enforcement, notes = adopted_enforcement(
            plan,
            controllers_present=frozenset(present),
            own_network_namespace=_same_network_namespace(pid),
            open_files_limit=nofile,
        )
        proc = AgentProcess(
            agent_id=agent_id,
            pid=pid,
            create_time=create_time,
            pgid=pgid,
            cgroups=tuple(dirs),
            enforcement={k: v.value for k, v in enforcement.items()},
            enforcement_notes=notes,
            limits=limits,
            log_path=log_path(log_dir, agent_id) if log_dir else None,
            workdir=workdir,
            adopted=True,
        )
        with self._lock:
            self._records[pid] = _Record(proc, child=False)
        return proc

    # -- internals -------------------------------------------------------------------

    def _cleanup(self, proc: AgentProcess) -> bool:
        """Record an OOM kill, SIGKILL leftovers of a dead leader, remove the cgroups
        (or queue them until their last process is gone). Returns whether the
        agent's cgroups counted an OOM kill."""
        with self._lock:
            record = self._records.get(proc.pid)
            if record is not None and record.oom is not None:
                oom = record.oom
            else:
                oom = cgroups.oom_kills(proc.cgroups) > 0
                if record is not None:
                    record.oom = oom
        if not identity.is_running(proc.pid, proc.create_time):
            tree.send(proc, signal.SIGKILL)  # tool processes never outlive their agent
        if proc.cgroups and not cgroups.remove_cgroups(proc.cgroups, self.host):
            with self._lock:
                self._pending.append(proc.cgroups)
        return oom

    def _retry_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        still = [dirs for dirs in pending if not cgroups.remove_cgroups(dirs, self.host)]
        if still:
            with self._lock:
                self._pending.extend(still)

    def _forget(self, pid: int) -> None:
        with self._lock:
            record = self._records.pop(pid, None)
            if record is not None:
                key = (pid, record.proc.create_time)
                self._cpu.pop(key, None)
                self._disk.pop(key, None)


def _posix_spawn(argv: list[str], env: dict[str, str], log: Path) -> int:
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawn(
            argv[0], argv, env, file_actions=file_actions, setsid=True, setsigmask=(), setsigdef=_DEFAULT_SIGNALS
        )
    except NotImplementedError:  # libc without POSIX_SPAWN_SETSID: the shim calls setsid
        return os.posix_spawn(
            argv[0], [*argv[:4], "--setsid", "1", *argv[4:]], env,  # argv[:4]: python -I -S shim.py
            file_actions=file_actions, setpgroup=0, setsigmask=(), setsigdef=_DEFAULT_SIGNALS,
        )


def _open_files_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of process ``pid``. Raises OSError."""
    import resource

    if hasattr(resource, "prlimit"):  # Linux: what psutil calls too, without loading psutil
        return resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]
    import psutil

    try:
        return int(psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)[0])
    except psutil.Error as exc:
        raise OSError(str(exc)) from exc


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _same_network_namespace(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True  # cannot tell: do not claim isolation
