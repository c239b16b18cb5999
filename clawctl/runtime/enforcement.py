"""Which quotas are enforced, how, and what to write where (pure).

``plan_quotas`` turns an agent's ``Isolation`` and the probed ``HostFacts`` into a
``QuotaPlan``: per quota "enforced" / "monitored" / "unlimited" with a note, the
cgroup files to write, the rlimit and the network namespace to set up. The
helpers at the bottom judge measured usage against monitored quotas.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from clawctl.config.model import Isolation, NetworkMode
from clawctl.runtime.host import HostFacts
from clawctl.runtime.records import Enforcement, Usage

CPU_PERIOD_US = 100_000
"""CFS period; quota = cpu_millis/1000 of it (1500m -> 150 ms per 100 ms)."""

MIN_CPU_QUOTA_US = 1_000
"""The kernel refuses CFS quotas below 1 ms."""

TRACKING_ORDER: tuple[str, ...] = ("pids", "memory", "cpu")
"""Preference for the one cgroup made only to find an agent's whole tree."""

DEFAULT_DISK_INTERVAL = 30.0


@dataclass(frozen=True)
class CgroupWrite:
    """One value written into a per-agent cgroup; a failed optional write is ignored
    (e.g. swap limits on a host without swap accounting)."""

    file: str
    value: str
    required: bool = True


@dataclass(frozen=True)
class QuotaPlan:
    """What to set up for one agent. ``cgroup_writes`` has a key for every
    controller to make a cgroup in (possibly with no writes: tracking only)."""

    enforcement: Mapping[str, Enforcement]
    notes: Mapping[str, str]
    cgroup_writes: Mapping[str, tuple[CgroupWrite, ...]] = field(default_factory=dict)
    open_files: int | None = None
    network: NetworkMode | None = None

    def __post_init__(self) -> None:
        for name in ("enforcement", "notes", "cgroup_writes"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def cpu_quota_us(cpu_millis: int) -> int:
    """CFS quota in microseconds per ``CPU_PERIOD_US`` for ``cpu_millis`` (1000 = one core)."""
    return max(MIN_CPU_QUOTA_US, cpu_millis * CPU_PERIOD_US // 1000)


def cgroup_writes(controller: str, version: int, limits: Isolation) -> tuple[CgroupWrite, ...]:
    """The files to write in an agent's ``controller`` cgroup, in order."""
    if controller == "memory" and limits.memory_bytes is not None:
        value = str(limits.memory_bytes)
        if version == 1:
            # Limit first: memsw must never be below it. Without swap accounting the
            # memsw file is missing; with swap and no memsw limit the agent would swap
            # instead of being OOM-killed.
            return (
                CgroupWrite("memory.limit_in_bytes", value),
                CgroupWrite("memory.memsw.limit_in_bytes", value, required=False),
            )
        return (
            CgroupWrite("memory.max", value),
            CgroupWrite("memory.swap.max", "0", required=False),
            # Kill the whole agent tree together on OOM, not one random tool process.
            CgroupWrite("memory.oom.group", "1", required=False),
        )
    if controller == "cpu" and limits.cpu_millis is not None:
        quota = cpu_quota_us(limits.cpu_millis)
        if version == 1:
            return (
                CgroupWrite("cpu.cfs_period_us", str(CPU_PERIOD_US)),
                CgroupWrite("cpu.cfs_quota_us", str(quota)),
            )
        return (CgroupWrite("cpu.max", f"{quota} {CPU_PERIOD_US}"),)
    if controller == "pids" and limits.processes is not None:
        return (CgroupWrite("pids.max", str(limits.processes)),)
    return ()


_QUOTA_CONTROLLER = {"memory": "memory", "cpu": "cpu", "processes": "pids"}

_MONITORED_SUFFIX = {
    "memory": "; RSS is measured and the daemon stops an agent over its quota",
    "cpu": "; CPU use is only measured",
    "processes": (
        "; RLIMIT_NPROC counts every process of the user (and root ignores it), so the "
        "process count is measured and the daemon stops an agent over its quota"
    ),
}


def _quota_value(limits: Isolation, quota: str) -> int | None:
    return {
        "memory": limits.memory_bytes,
        "cpu": limits.cpu_millis,
        "processes": limits.processes,
        "openFiles": limits.open_files,
        "disk": limits.disk_bytes,
    }.get(quota)


def plan_quotas(limits: Isolation, facts: HostFacts, *, disk_interval: float = DEFAULT_DISK_INTERVAL) -> QuotaPlan:
    """Decide, per quota, how ``limits`` will be held on a host described by ``facts``."""
    enforcement: dict[str, Enforcement] = {}
    notes: dict[str, str] = {}
    writes: dict[str, tuple[CgroupWrite, ...]] = {}

    for quota, controller in _QUOTA_CONTROLLER.items():
        value = _quota_value(limits, quota)
        if value is None:
            enforcement[quota], notes[quota] = Enforcement.UNLIMITED, "no quota set"
            continue
        site = facts.sites.get(controller)
        if site is None:
            enforcement[quota] = Enforcement.MONITORED
            notes[quota] = f"no usable {controller} cgroup: {facts.unusable.get(controller, 'unknown')}"
            notes[quota] += _MONITORED_SUFFIX[quota]
            continue
        writes[controller] = cgroup_writes(controller, site.version, limits)
        enforcement[quota] = Enforcement.ENFORCED
        notes[quota] = f"cgroup v{site.version} " + ", ".join(f"{w.file}={w.value}" for w in writes[controller] if w.required)

    open_files = None
    if limits.open_files is None:
        enforcement["openFiles"], notes["openFiles"] = Enforcement.UNLIMITED, "no quota set"
    else:
        open_files = limits.open_files
        hard = facts.nofile_hard
        capped = hard != resource.RLIM_INFINITY and open_files > hard and not facts.can_raise_nofile
        if capped:
            open_files = hard
        enforcement["openFiles"] = Enforcement.ENFORCED
        notes["openFiles"] = f"RLIMIT_NOFILE={open_files}" + (
            f" (the host's hard limit, below the {limits.open_files} asked)" if capped else ""
        )

    network = None
    if limits.network == NetworkMode.HOST:
        enforcement["network"], notes["network"] = Enforcement.UNLIMITED, "host network"
    elif facts.netns:
        network = limits.network
        enforcement["network"] = Enforcement.ENFORCED
        notes["network"] = (
            "own network namespace, loopback only"
            if network == NetworkMode.LOOPBACK
            else "own network namespace without interfaces"
        )
    else:
        enforcement["network"] = Enforcement.MONITORED
        notes["network"] = f"{facts.netns_reason or 'no network namespaces'}; the agent shares the host network"

    if limits.disk_bytes is None:
        enforcement["disk"], notes["disk"] = Enforcement.UNLIMITED, "no quota set"
    else:
        enforcement["disk"] = Enforcement.MONITORED
        notes["disk"] = (
            f"workdir size measured at most every {disk_interval:g}s; "
            "the daemon stops an agent over its quota"
        )

    if not writes:
        tracker = next((c for c in TRACKING_ORDER if c in facts.sites), None)
        if tracker is not None:
            writes[tracker] = ()
    return QuotaPlan(enforcement, notes, writes, open_files, network)


def adopted_enforcement(
    plan: QuotaPlan,
    *,
    controllers_present: frozenset[str],
    own_network_namespace: bool,
    open_files_limit: int | None,
) -> tuple[dict[str, Enforcement], dict[str, str]]:
    """The enforcement of an adopted agent: what ``plan`` promises, downgraded to
    "monitored" where the running process shows the mechanism is not in place
    (no cgroup of that controller, the daemon's network namespace, another rlimit)."""
    enforcement, notes = dict(plan.enforcement), dict(plan.notes)

    def downgrade(quota: str, why: str) -> None:
        if enforcement.get(quota) == Enforcement.ENFORCED:
            enforcement[quota], notes[quota] = Enforcement.MONITORED, why

    for quota, controller in _QUOTA_CONTROLLER.items():
        if controller not in controllers_present:
            downgrade(quota, f"the adopted process is not in a clawctl {controller} cgroup")
    if own_network_namespace:
        downgrade("network", "the adopted process shares the host network")
    if plan.open_files is not None and open_files_limit != plan.open_files:
        downgrade("openFiles", f"the adopted process has RLIMIT_NOFILE={open_files_limit}")
    return enforcement, notes


def over_disk_quota(usage: Usage, limits: Isolation) -> bool:
    """True when the last measured workdir size exceeds the disk quota."""
    return limits.disk_bytes is not None and usage.disk_bytes is not None and usage.disk_bytes > limits.disk_bytes


def monitored_violations(usage: Usage, limits: Isolation, enforcement: Mapping[str, str]) -> tuple[str, ...]:
    """Quotas that are only monitored for this agent and that ``usage`` exceeds; the
    daemon stops such an agent and reports the names."""
    measured = {"memory": usage.rss_bytes, "processes": usage.processes, "disk": usage.disk_bytes}
    violations = []
    for quota, value in measured.items():
        limit = _quota_value(limits, quota)
        if enforcement.get(quota) == Enforcement.MONITORED and limit is not None and value is not None and value > limit:
            violations.append(quota)
    return tuple(violations)
