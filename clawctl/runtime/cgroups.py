"""Per-agent cgroups: create with limits, list members, kill, read OOM kills, remove.

Layout: ``<daemon's own cgroup>/<cgroup_parent>/<agent-id>.<8 hex>`` in every
hierarchy that carries a controller the agent needs (one directory on cgroup v2,
one per controller mount on v1). The random suffix keeps a replacement's cgroup
apart from its predecessor's while the old one is still being emptied, and marks
the directory as clawctl's when an agent is re-adopted.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path

from clawctl.errors import RuntimeFailure
from clawctl.runtime.enforcement import QuotaPlan
from clawctl.runtime.host import HostFacts
from clawctl.runtime.naming import safe_name

DEFAULT_PARENT = "clawctl"

def is_agent_cgroup(path: Path, agent_id: str) -> bool:
    """Whether ``path`` is named like a cgroup this runtime made for ``agent_id``."""
    return re.fullmatch(re.escape(safe_name(agent_id)) + r"\.[0-9a-f]{8}", path.name) is not None


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enable_subtree(directory: Path, controllers: Iterable[str]) -> None:
    # cgroup v2: a child only gets a controller its parent lists in subtree_control.
    wanted = [c for c in controllers if c in (directory / "cgroup.controllers").read_text().split()]
    enabled = (directory / "cgroup.subtree_control").read_text().split()
    missing = [c for c in wanted if c not in enabled]
    if missing:
        _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _make_leaf(base: Path, parent: str, leaf: str, version: int, controllers: list[str]) -> Path:
    for _attempt in range(3):
        try:
            directory = base
            for part in Path(parent).parts:
                directory = directory / part
                directory.mkdir(exist_ok=True)
                if version == 2:
                    _enable_subtree(directory, controllers)
            (directory / leaf).mkdir()
            return directory / leaf
        except FileNotFoundError:
            continue  # another agent's release removed the empty parent meanwhile
    raise FileNotFoundError(errno.ENOENT, "cgroup parent keeps disappearing", str(base / parent))


def create_agent_cgroups(plan: QuotaPlan, facts: HostFacts, *, agent_id: str, parent: str) -> tuple[Path, ...]:
    """Make the agent's cgroups and write its limits; all or nothing.

    Raises RuntimeFailure when a directory or a required value cannot be written.
    """
    by_base: dict[Path, list[str]] = {}
    for controller in plan.cgroup_writes:
        by_base.setdefault(facts.sites[controller].base, []).append(controller)
    leaf = f"{safe_name(agent_id)}.{secrets.token_hex(4)}"
    created: list[Path] = []
    try:
        for base, controllers in by_base.items():
            version = facts.sites[controllers[0]].version
            directory = _make_leaf(base, parent, leaf, version, controllers)
            created.append(directory)
            for controller in controllers:
                for write in plan.cgroup_writes[controller]:
                    try:
                        _write(directory / write.file, write.value)
                    except OSError:
                        if write.required:
                            raise
    except OSError as exc:
        remove_cgroups(created, facts)
        raise RuntimeFailure(
            f"cannot set up the cgroups of agent {agent_id}: {exc.strerror or exc}",
            hint="check that the cgroup filesystem is writable; status shows which quotas are enforced",
        ) from exc
    return tuple(created)


def members(cgroups: Iterable[Path]) -> set[int]:
    """Pids of every process in any of ``cgroups`` (missing directories are empty)."""
    pids: set[int] = set()
    for directory in cgroups:
        try:
            pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def kill_members(cgroups: Iterable[Path], sig: int) -> None:
    """Send ``sig`` to every process in ``cgroups`` (cgroup.kill where the kernel has it)."""
    for directory in cgroups:
        if sig == signal.SIGKILL and (directory / "cgroup.kill").exists():
            try:
                _write(directory / "cgroup.kill", "1")
                continue
            except OSError:
                pass
        for pid in members([directory]):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                raise RuntimeFailure(f"cannot signal process {pid} in {directory}: permission denied") from exc


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def oom_kills(cgroups: Iterable[Path]) -> int:
    """How many processes the kernel OOM-killed in ``cgroups`` (v2 memory.events,
    v1 memory.oom_control; on v1 kernels older than 4.13, which lack the counter,
    a non-zero memory.failcnt counts as one)."""
    total = 0
    for directory in cgroups:
        try:
            if (directory / "memory.events").exists():
                total += _counter((directory / "memory.events").read_text(), "oom_kill")
            elif (directory / "memory.oom_control").exists():
                text = (directory / "memory.oom_control").read_text()
                if "oom_kill " in text:
                    total += _counter(text, "oom_kill")
                else:
                    total += int((directory / "memory.failcnt").read_text().strip() or 0) > 0
        except (OSError, ValueError):
            continue
    return total


def remove_cgroups(cgroups: Iterable[Path], facts: HostFacts) -> bool:
    """Remove the agent's cgroups and then their parents up to the daemon's own cgroup
    while they are empty. True when every agent cgroup is gone; False when one still
    has processes (try again once they are dead)."""
    bases = {site.base for site in facts.sites.values()}
    done = True
    for directory in cgroups:
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                done = False
                continue
            raise RuntimeFailure(f"cannot remove cgroup {directory}: {exc.strerror or exc}") from exc
        base = next((b for b in bases if b in directory.parents), None)
        parent = directory.parent
        while base is not None and parent != base and base in parent.parents:
            try:
                parent.rmdir()  # only succeeds when no other agent uses it
            except OSError:
                break
            parent = parent.parent
    return done
