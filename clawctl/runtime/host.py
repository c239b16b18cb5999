"""What this host lets the runtime enforce, found out once per launcher.

The parsers and ``locate_sites`` are pure (tested with literal /proc texts);
``probe_host`` reads /proc, creates and removes one test cgroup per hierarchy,
and runs the exec shim once in probe mode so that "enforced" is only claimed
for mechanisms that worked for a real child process.
"""

from __future__ import annotations

import errno
import os
import resource
import secrets
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

CONTROLLERS: tuple[str, ...] = ("memory", "cpu", "pids")
"""The cgroup controllers the runtime uses, in order of preference for tracking."""

DAEMON_LEAF = "clawctl-daemon"
"""Where the daemon moves itself on cgroup v2 so that its cgroup may delegate controllers."""

SHIM_PATH = Path(__file__).with_name("shim.py")

_CAP_SYS_RESOURCE = 24


@dataclass(frozen=True)
class CgroupMount:
    """One mounted cgroup hierarchy (from /proc/self/mountinfo)."""

    version: int
    controllers: frozenset[str]
    mountpoint: Path
    root: str


@dataclass(frozen=True)
class ProcCgroup:
    """One line of /proc/PID/cgroup."""

    hierarchy: int
    controllers: frozenset[str]
    path: str


@dataclass(frozen=True)
class CgroupSite:
    """The daemon's own cgroup in the hierarchy that holds ``controller``; per-agent
    cgroups are made beneath ``base``."""

    controller: str
    version: int
    base: Path


@dataclass(frozen=True)
class HostFacts:
    """What was found usable. ``sites`` has one entry per usable controller;
    ``unusable`` says why each other controller is not."""

    sites: Mapping[str, CgroupSite] = field(default_factory=dict)
    unusable: Mapping[str, str] = field(default_factory=dict)
    netns: bool = False
    netns_reason: str = "not probed"
    nofile_hard: int = resource.RLIM_INFINITY
    can_raise_nofile: bool = False
    mounts: tuple[CgroupMount, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", MappingProxyType(dict(self.sites)))
        object.__setattr__(self, "unusable", MappingProxyType(dict(self.unusable)))


# -- pure parsing --------------------------------------------------------------------


def _unescape(field_text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field_text):
        if field_text[i] == "\\" and i + 3 < len(field_text) and field_text[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> tuple[CgroupMount, ...]:
    """The cgroup (v1) and cgroup2 mounts listed in a /proc/PID/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or len(fields) < 6:
            continue
        fstype, superopts = fields[sep + 1], fields[sep + 3]
        root, mountpoint = _unescape(fields[3]), Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            mounts.append(CgroupMount(2, frozenset(), mountpoint, root))
        elif fstype == "cgroup":
            names = frozenset(opt for opt in superopts.split(",") if opt not in {"rw", "ro"})
            mounts.append(CgroupMount(1, names, mountpoint, root))
    return tuple(mounts)


def parse_proc_cgroup(text: str) -> tuple[ProcCgroup, ...]:
    """The entries of a /proc/PID/cgroup text (``0::/path`` is the v2 entry)."""
    entries = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        names = frozenset(name for name in parts[1].split(",") if name)
        entries.append(ProcCgroup(int(parts[0]), names, parts[2]))
    return tuple(entries)


def cgroup_dir(entry: ProcCgroup, mounts: Iterable[CgroupMount]) -> Path | None:
    """The directory of ``entry``'s cgroup under its mount, or None when no mount of
    that hierarchy shows it (e.g. a container sees only its own subtree)."""
    version = 2 if entry.hierarchy == 0 and not entry.controllers else 1
    for mount in mounts:
        if mount.version != version or (version == 1 and mount.controllers != entry.controllers):
            continue
        root = mount.root.rstrip("/")
        if entry.path == mount.root or entry.path.startswith(root + "/"):
            relative = entry.path[len(root) :].strip("/")
            return mount.mountpoint / relative if relative else mount.mountpoint
    return None


def own_base(path: Path) -> Path:
    """The cgroup to make agent cgroups under: the daemon's cgroup, or its parent when
    the daemon already moved itself into ``DAEMON_LEAF`` (cgroup v2 delegation)."""
    return path.parent if path.name == DAEMON_LEAF else path


def locate_sites(
    entries: Iterable[ProcCgroup],
    mounts: Iterable[CgroupMount],
    v2_available: frozenset[str],
) -> tuple[dict[str, CgroupSite], dict[str, str]]:
    """Per controller, where agent cgroups would go, or why nowhere.

    cgroup v2 is preferred for a controller that the daemon's v2 cgroup has
    available (``v2_available``, its cgroup.controllers); otherwise the v1
    hierarchy that carries it (hybrid hosts).
    """
    entries, mounts = tuple(entries), tuple(mounts)
    sites: dict[str, CgroupSite] = {}
    reasons: dict[str, str] = {}
    v2_entry = next((e for e in entries if e.hierarchy == 0 and not e.controllers), None)
    v2_dir = cgroup_dir(v2_entry, mounts) if v2_entry else None
    for controller in CONTROLLERS:
        if v2_dir is not None and controller in v2_available:
            sites[controller] = CgroupSite(controller, 2, own_base(v2_dir))
            continue
        v1_entry = next((e for e in entries if controller in e.controllers), None)
        if v1_entry is None:
            reasons[controller] = f"no cgroup hierarchy offers the {controller} controller"
            continue
        directory = cgroup_dir(v1_entry, mounts)
        if directory is None:
            reasons[controller] = f"the {controller} cgroup {v1_entry.path} is not visible under any mount"
            continue
        sites[controller] = CgroupSite(controller, 1, directory)
    return sites, reasons


def has_capability(status_text: str, bit: int) -> bool:
    """Whether CapEff in a /proc/PID/status text has capability ``bit``."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


# -- probing (effects) ---------------------------------------------------------------

_TEST_WRITES: dict[tuple[int, str], tuple[str, str]] = {
    (1, "memory"): ("memory.limit_in_bytes", "-1"),
    (1, "cpu"): ("cpu.cfs_quota_us", "-1"),
    (1, "pids"): ("pids.max", "max"),
    (2, "memory"): ("memory.max", "max"),
    (2, "cpu"): ("cpu.max", "max"),
    (2, "pids"): ("pids.max", "max"),
}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _why(exc: OSError, what: str) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{what}: permission denied (run the daemon as root or in a delegated cgroup)"
    if exc.errno == errno.EROFS:
        return f"{what}: the cgroup filesystem is read-only"
    return f"{what}: {exc.strerror or exc}"


def _delegate_v2(base: Path, controllers: list[str], *, move_self: bool) -> str | None:
    """Enable ``controllers`` for children of ``base``; None on success, else why not.

    cgroup v2 forbids enabling controllers for children of a cgroup that holds
    processes. When the daemon is the only process there, it moves itself into
    ``base/DAEMON_LEAF`` first (what systemd expects of a Delegate=yes service).
    """
    enabled = set(_read(base / "cgroup.subtree_control").split())
    missing = [c for c in controllers if c not in enabled]
    if not missing:
        return None
    request = " ".join(f"+{c}" for c in missing)
    try:
        (base / "cgroup.subtree_control").write_text(request)
        return None
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return _why(exc, f"cannot enable {', '.join(missing)} in {base}")
    procs = {int(p) for p in _read(base / "cgroup.procs").split()}
    if not move_self or procs - {os.getpid()}:
        return (
            f"the daemon's cgroup {base} holds other processes, and cgroup v2 delegates "
            "controllers only from a cgroup without processes (run the daemon in its own "
            "cgroup, e.g. a systemd service with Delegate=yes)"
        )
    try:
        leaf = base / DAEMON_LEAF
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (base / "cgroup.subtree_control").write_text(request)
    except OSError as exc:
        return _why(exc, f"cannot delegate {', '.join(missing)} from {base}")
    return None


def _run_shim_probe(cgroup_dirs: list[Path], timeout: float) -> tuple[dict[Path, str], str | None]:
    """Run the shim in probe mode: it joins each test cgroup and tries to unshare a
    network namespace. Returns per-directory error (absent = joined) and the netns
    error (None = works)."""
    argv = [sys.executable, "-I", "-S", str(SHIM_PATH), "--probe"]
    for directory in cgroup_dirs:
        argv += ["--cgroup", str(directory)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"the exec shim could not run: {exc}"
        return {d: reason for d in cgroup_dirs}, reason
    joined: dict[Path, str] = {d: f"the exec shim could not join it: {done.stderr.strip()}" for d in cgroup_dirs}
    netns: str | None = "the exec shim gave no answer"
    for line in done.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "cgroup-ok":
            joined.pop(Path(rest), None)
        elif kind == "cgroup-error":
            where, _, message = rest.partition("\t")
            joined[Path(where)] = f"cannot move a process into {where}: {message}"
        elif kind == "netns-ok":
            netns = None
        elif kind == "netns-error":
            netns = f"cannot create a network namespace: {rest}"
    return joined, netns


def probe_host(*, move_self: bool = True, timeout: float = 20.0) -> HostFacts:
    """Find out, for real, which isolation mechanisms work here for this process.

    Creates and removes one test cgroup per hierarchy beneath the daemon's own
    cgroup and runs the exec shim once (~20 ms). ``move_self`` allows the cgroup v2
    delegation step described in ``_delegate_v2``.
    """
    mounts = parse_mountinfo(_read(Path("/proc/self/mountinfo")))
    entries = parse_proc_cgroup(_read(Path("/proc/self/cgroup")))
    v2_entry = next((e for e in entries if e.hierarchy == 0 and not e.controllers), None)
    v2_dir = cgroup_dir(v2_entry, mounts) if v2_entry else None
    v2_available = frozenset(_read(own_base(v2_dir) / "cgroup.controllers").split()) if v2_dir else frozenset()
    sites, reasons = locate_sites(entries, mounts, v2_available)

    v2_controllers = [c for c, s in sites.items() if s.version == 2]
    if v2_controllers:
        why = _delegate_v2(sites[v2_controllers[0]].base, v2_controllers, move_self=move_self)
        if why:
            for c in v2_controllers:
                reasons[c] = why
                del sites[c]

    token = secrets.token_hex(4)
    tests: dict[Path, list[str]] = {}
    for controller, site in list(sites.items()):
        directory = site.base / f".clawctl-probe-{token}"
        name, value = _TEST_WRITES[(site.version, controller)]
        try:
            if directory not in tests:
                directory.mkdir()
                tests[directory] = []
            (directory / name).write_text(value)
            tests[directory].append(controller)
        except OSError as exc:
            reasons[controller] = _why(exc, f"cannot create a {controller} cgroup under {site.base}")
            del sites[controller]
    try:
        join_errors, netns_error = _run_shim_probe([d for d, cs in tests.items() if cs], timeout)
    finally:
        for directory in tests:
            try:
                directory.rmdir()
            except OSError:
                pass
    for directory, why in join_errors.items():
        for controller in tests[directory]:
            reasons[controller] = why
            sites.pop(controller, None)

    status = _read(Path("/proc/self/status"))
    return HostFacts(
        sites=sites,
        unusable=reasons,
        netns=netns_error is None,
        netns_reason=netns_error or "",
        nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        can_raise_nofile=has_capability(status, _CAP_SYS_RESOURCE),
        mounts=mounts,
    )
