"""An agent's process tree: find it, signal it, wait for it to be gone.

The tree is the union of three views, because each alone misses something:
the agent's process group (killpg reaches members the daemon cannot list
cheaply), its cgroups (catch processes that called setsid and whose parent
died), and the leader's descendants walked now (the fallback on hosts without
cgroups; it misses processes re-parented to init).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping

from clawctl.errors import RuntimeFailure
from clawctl.runtime import cgroups, identity
from clawctl.runtime.records import AgentProcess


def group_is_ours(proc: AgentProcess) -> bool:
    """Whether process group ``proc.pgid`` can still only be the agent's.

    A pgid cannot be reused while any member lives. It can be reused once the group
    is empty and a new process with pid == pgid calls setsid; that process would
    not have the agent's create_time.
    """
    if proc.pgid != proc.pid:
        return identity.exists(proc.pid, proc.create_time)
    current = identity.create_time(proc.pid)
    return current is None or abs(current - proc.create_time) <= identity.CREATE_TIME_TOLERANCE


_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
"""Whether the kernel lists each thread's children (CONFIG_PROC_CHILDREN): a walk of
the agent's own tree instead of a scan of every process on the host, which made
stopping 1000 agents quadratic."""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as listing:
                found.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> dict[int, float]:
    """``pid``'s descendants now, as pid -> create_time."""
    if not _PROC_CHILDREN:
        return _descendants_by_scan(pid)
    found: dict[int, float] = {}
    queue = _children(pid)
    while queue:
        child = queue.pop()
        if child in found:
            continue
        started = identity.create_time(child)
        if started is None:
            continue
        found[child] = started
        queue.extend(_children(child))
    return found


def _descendants_by_scan(pid: int) -> dict[int, float]:
    import psutil  # only on kernels that do not list children, so the daemon does not load it

    try:
        children = psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}
    found = {}
    for child in children:
        try:
            found[child.pid] = child.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def snapshot(proc: AgentProcess) -> dict[int, float]:
    """Every process of the agent's tree that can be named now (pid -> create_time)."""
    found: dict[int, float] = {}
    if identity.exists(proc.pid, proc.create_time):
        found[proc.pid] = proc.create_time
        found.update(descendants(proc.pid))
    for pid in cgroups.members(proc.cgroups):
        started = identity.create_time(pid)
        if started is not None:
            found[pid] = started
    return found


def send(proc: AgentProcess, sig: int, targets: Mapping[int, float] | None = None) -> None:
    """Send ``sig`` once to each process of the agent's tree: its process group, then
    cgroup members and ``targets`` (re-checked by create_time) outside that group.
    Vanished processes are skipped.

    Once, because a second SIGTERM can land after a Python agent's handler ran and
    the interpreter restored default dispositions while exiting, turning a clean
    exit 0 into death by SIGTERM.
    """
    group = proc.pgid if group_is_ours(proc) else None
    others = dict(targets or {})
    for pid in cgroups.members(proc.cgroups):
        others.setdefault(pid, -1.0)
    try:
        if sig == signal.SIGKILL:
            cgroups.kill_members(proc.cgroups, sig)  # cgroup.kill where it exists: atomic vs forks
        if group is not None:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                group = None
        for pid, started in others.items():
            try:
                if group is not None and os.getpgid(pid) == group:
                    continue
                if started >= 0 and not identity.exists(pid, started):
                    continue
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
    except PermissionError as exc:
        raise RuntimeFailure(
            f"cannot signal agent {proc.agent_id} (pid {proc.pid}): permission denied",
            hint="the daemon can only signal processes of its own user",
        ) from exc


def remaining(proc: AgentProcess, targets: Mapping[int, float]) -> dict[int, float]:
    """The members of ``targets`` and of the agent's cgroups still running (zombies
    are done: they only wait for their parent to collect them)."""
    left = {pid: t for pid, t in targets.items() if identity.is_running(pid, t)}
    for pid in cgroups.members(proc.cgroups) - left.keys():
        started = identity.create_time(pid)
        if started is not None and identity.is_running(pid, started):
            left[pid] = started
    return left


def wait_gone(
    proc: AgentProcess,
    targets: Mapping[int, float],
    timeout: float,
    *,
    resend: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[int, float]:
    """Poll until nothing of ``targets`` or the agent's cgroups runs, or ``timeout``.
    With ``resend``, signal again each round (catches processes forked meanwhile).
    Returns what is still running."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        left = remaining(proc, targets)
        if not left or time.monotonic() >= deadline:
            return left
        if resend is not None:
            send(proc, resend, left)
        sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.05)
