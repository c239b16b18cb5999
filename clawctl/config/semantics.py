"""Checks the schema cannot express, over the typed model. Pure: no files, no clock.

Each finding names the document (kind, name) and the key path inside it; the
loader turns that into file:line:col.
"""

from __future__ import annotations

from dataclasses import dataclass

from clawctl.config.diagnostics import Severity
from clawctl.config.model import AgentPool, FailoverStrategy, Fleet, LoadBalancingStrategy
from clawctl.config.suggest import did_you_mean
from clawctl.config.units import format_bytes, format_cpu

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class HostFacts:
    """What the host offers, for quota warnings."""

    memory_bytes: int
    cpu_millis: int


@dataclass(frozen=True)
class Finding:
    kind: str
    name: str
    path: Path
    message: str
    hint: str | None = None
    severity: Severity = Severity.ERROR
    code: str = "semantic"


def check_fleet(fleet: Fleet, host: HostFacts | None = None) -> list[Finding]:
    """Every semantic problem of ``fleet``; empty when it is consistent."""
    findings: list[Finding] = []
    names = [p.name for p in fleet.pools]
    for pool in fleet.pools:
        findings += _check_pool(pool, names)
        if host is not None:
            findings += _check_quotas(pool, host)
    findings += _check_dependency_cycles(fleet)
    findings += _check_fallback_cycles(fleet)
    findings += _check_policies(fleet, names)
    return findings


def _unknown_pool(kind: str, name: str, path: Path, ref: str, names: list[str], what: str) -> Finding:
    hint = did_you_mean(ref, names) or (f"pools of this fleet: {', '.join(names)}" if names else "this fleet has no pools")
    return Finding(kind, name, path, f"{what} names unknown pool '{ref}'", hint, code="unknown-pool")


def _check_pool(pool: AgentPool, names: list[str]) -> list[Finding]:
    out: list[Finding] = []
    kind, name = "AgentPool", pool.name
    for i, dep in enumerate(pool.depends_on):
        if dep == pool.name:
            out.append(Finding(kind, name, ("spec", "dependsOn", i), f"pool '{name}' depends on itself",
                               "remove it from dependsOn", code="self-reference"))
        elif dep not in names:
            out.append(_unknown_pool(kind, name, ("spec", "dependsOn", i), dep, names, "dependsOn"))
    fo = pool.policies.failover
    fo_path: Path = ("spec", "failover")
    if fo.fallback_pool is not None:
        if fo.fallback_pool == pool.name:
            out.append(Finding(kind, name, fo_path + ("fallbackPool",), f"pool '{name}' falls back to itself",
                               "name another pool, or remove fallbackPool", code="self-reference"))
        elif fo.fallback_pool not in names:
            out.append(_unknown_pool(kind, name, fo_path + ("fallbackPool",), fo.fallback_pool, names, "fallbackPool"))
    if fo.strategy is FailoverStrategy.HOT_STANDBY and fo.standbys < 1:
        out.append(Finding(kind, name, fo_path + ("standbys",), "hot-standby needs at least one standby",
                           "set failover.standbys: 1 (or more)", code="standbys"))
    if fo.standbys > pool.replicas:
        out.append(Finding(kind, name, fo_path + ("standbys",),
                           f"{_count(fo.standbys, 'standby')} for {_count(pool.replicas, 'replica')}: "
                           "more standbys than replicas",
                           f"use at most {_count(pool.replicas, 'standby')}, or raise replicas", code="standbys"))
    if fo.standbys and fo.strategy is not FailoverStrategy.HOT_STANDBY:
        out.append(Finding(kind, name, fo_path + ("standbys",),
                           f"standbys are only used by the hot-standby strategy, not {fo.strategy.value}",
                           "set failover.strategy: hot-standby, or remove standbys", Severity.WARNING, "unused"))
    if fo.min_ready > pool.replicas:
        out.append(Finding(kind, name, fo_path + ("minReady",),
                           f"minReady {fo.min_ready} is more than the pool's {_count(pool.replicas, 'replica')}",
                           f"use at most {pool.replicas}", code="min-ready"))
    if fo.backoff.initial > fo.backoff.max:
        out.append(Finding(kind, name, fo_path + ("backoff", "initial"),
                           "backoff.initial is longer than backoff.max", "make initial at most max", code="backoff"))
    health = pool.policies.health
    if health.heartbeat_timeout <= health.heartbeat_interval:
        out.append(Finding(kind, name, ("spec", "health", "heartbeatTimeout"),
                           "heartbeatTimeout must be longer than heartbeatInterval",
                           "a timeout of about three intervals tolerates a missed beat", code="health"))
    sessions = pool.policies.sessions
    if sessions.idle_timeout and sessions.max_lifetime and sessions.idle_timeout > sessions.max_lifetime:
        out.append(Finding(kind, name, ("spec", "sessions", "idleTimeout"),
                           "idleTimeout is longer than maxLifetime, so it never applies",
                           "shorten idleTimeout or lengthen maxLifetime", Severity.WARNING, "sessions"))
    lb = pool.policies.load_balancing
    if lb.weights and lb.strategy is not LoadBalancingStrategy.WEIGHTED:
        out.append(Finding(kind, name, ("spec", "loadBalancing", "weights"),
                           f"weights are only used by the weighted strategy, not {lb.strategy.value}",
                           "set loadBalancing.strategy: weighted, or remove weights", Severity.WARNING, "unused"))
    if len(lb.weights) > pool.replicas:
        out.append(Finding(kind, name, ("spec", "loadBalancing", "weights"),
                           f"{_count(len(lb.weights), 'weight')} for {_count(pool.replicas, 'replica')}",
                           "give one weight per agent", Severity.WARNING, "weights"))
    rollout = pool.policies.rollout
    if _is_zero(rollout.max_unavailable) and _is_zero(rollout.max_surge):
        out.append(Finding(kind, name, ("spec", "rollout"),
                           "maxUnavailable and maxSurge are both 0, so a rollout could never replace an agent",
                           "allow one of them to be at least 1", code="rollout"))
    return out


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _is_zero(value: int | str) -> bool:
    return value == 0 or value == "0%"


def _check_quotas(pool: AgentPool, host: HostFacts) -> list[Finding]:
    out: list[Finding] = []
    iso = pool.policies.isolation
    if iso.memory_bytes is not None and iso.memory_bytes > host.memory_bytes:
        out.append(Finding("AgentPool", pool.name, ("spec", "isolation", "memory"),
                           f"memory quota {format_bytes(iso.memory_bytes)} is more than this host's "
                           f"{format_bytes(host.memory_bytes)}",
                           "agents could not use it here; lower it or run on a larger host",
                           Severity.WARNING, "quota"))
    if iso.cpu_millis is not None and iso.cpu_millis > host.cpu_millis:
        out.append(Finding("AgentPool", pool.name, ("spec", "isolation", "cpu"),
                           f"cpu quota {format_cpu(iso.cpu_millis)} is more than this host's {host.cpu_millis // 1000} cores",
                           "agents could not use it here; lower it or run on a larger host",
                           Severity.WARNING, "quota"))
    return out


def _cycle_from(start: str, edges: dict[str, list[str]]) -> list[str] | None:
    """The first cycle reachable from ``start`` as a list of names (start..start), or None."""
    stack: list[tuple[str, int]] = [(start, 0)]
    path: list[str] = [start]
    on_path = {start}
    while stack:
        node, i = stack[-1]
        targets = edges.get(node, [])
        if i >= len(targets):
            stack.pop()
            on_path.discard(path.pop())
            continue
        stack[-1] = (node, i + 1)
        nxt = targets[i]
        if nxt == start:
            return path + [start]
        if nxt in on_path or nxt not in edges:
            continue
        stack.append((nxt, 0))
        path.append(nxt)
        on_path.add(nxt)
    return None


def _report_cycles(edges: dict[str, list[str]], what: str, path_of: dict[str, Path], hint: str) -> list[Finding]:
    out: list[Finding] = []
    reported: set[frozenset[str]] = set()
    for name in sorted(edges):
        cycle = _cycle_from(name, edges)
        if cycle is None:
            continue
        members = frozenset(cycle)
        if members in reported:
            continue
        reported.add(members)
        out.append(Finding("AgentPool", name, path_of[name], f"{what} cycle: {' → '.join(cycle)}", hint, code="cycle"))
    return out


def _check_dependency_cycles(fleet: Fleet) -> list[Finding]:
    edges = {p.name: [d for d in p.depends_on if d != p.name] for p in fleet.pools}
    return _report_cycles(edges, "dependsOn", {n: ("spec", "dependsOn") for n in edges},
                          "pools start after the pools they depend on, so a cycle can never start; break it")


def _check_fallback_cycles(fleet: Fleet) -> list[Finding]:
    edges = {
        p.name: [p.policies.failover.fallback_pool]
        for p in fleet.pools
        if p.policies.failover.fallback_pool and p.policies.failover.fallback_pool != p.name
    }
    for p in fleet.pools:
        edges.setdefault(p.name, [])
    return _report_cycles(edges, "fallbackPool", {n: ("spec", "failover", "fallbackPool") for n in edges},
                          "a degraded pool hands work to its fallback; a cycle would hand it back; break it")


def _check_policies(fleet: Fleet, names: list[str]) -> list[Finding]:
    out: list[Finding] = []
    known = set(names)
    for policy in fleet.policies:
        for i, rule in enumerate(policy.rules):
            base: Path = ("spec", "rules", i)
            if rule.source != "*" and rule.source not in known:
                out.append(_unknown_pool("CommunicationPolicy", policy.name, base + ("from",), rule.source, names, "rule 'from'"))
            for j, target in enumerate(rule.message_targets):
                if target != "*" and target not in known:
                    out.append(_unknown_pool("CommunicationPolicy", policy.name, base + ("messages", j), target, names,
                                             "rule 'messages'"))
    return out
