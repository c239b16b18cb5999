"""The typed, immutable model of a validated config set.

Units are normalized: durations in seconds, memory and disk in bytes, cpu in
millicores. Each policy block is a frozen dataclass whose fields name their
config-language key and unit in ``metadata``, so one pair of generic functions
(``block_from_raw`` / ``block_to_raw``) converts in both directions and the
normalized documents stored in the registry read back into the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, TypeVar

from clawctl.config import units


def _f(key: str, default: Any, unit: str | None = None) -> Any:
    return field(default=default, metadata={"key": key, "unit": unit})


class IsolationLevel(str, Enum):
    STRICT = "strict"
    MODERATE = "moderate"
    SHARED = "shared"


class NetworkMode(str, Enum):
    NONE = "none"
    LOOPBACK = "loopback"
    HOST = "host"


class LoadBalancingStrategy(str, Enum):
    ROUND_ROBIN = "round-robin"
    LEAST_CONNECTIONS = "least-connections"
    WEIGHTED = "weighted"
    CONSISTENT_HASH = "consistent-hash"
    LEAST_LATENCY = "least-latency"


class FailoverStrategy(str, Enum):
    RESTART = "restart"
    HOT_STANDBY = "hot-standby"
    DEGRADE = "degrade"


class RestartPolicy(str, Enum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


@dataclass(frozen=True)
class Isolation:
    """Quotas per agent. None means "no limit set"."""

    level: IsolationLevel = _f("level", IsolationLevel.SHARED)
    memory_bytes: int | None = _f("memory", None, "memory")
    cpu_millis: int | None = _f("cpu", None, "cpu")
    network: NetworkMode = _f("network", NetworkMode.HOST)
    open_files: int | None = _f("openFiles", None)
    processes: int | None = _f("processes", None)
    disk_bytes: int | None = _f("disk", None, "memory")


ISOLATION_PRESETS: dict[IsolationLevel, dict[str, Any]] = {
    IsolationLevel.STRICT: {"network": "none", "openFiles": 256, "processes": 64},
    IsolationLevel.MODERATE: {"network": "loopback", "openFiles": 1024, "processes": 256},
    IsolationLevel.SHARED: {"network": "host"},
}
"""What each isolation level fills in for the fields a pool leaves out."""


@dataclass(frozen=True)
class Sessions:
    creation: str = _f("creation", "on-demand")
    idle_timeout: float | None = _f("idleTimeout", 1800.0, "duration")
    max_lifetime: float | None = _f("maxLifetime", 86400.0, "duration")
    retention: str = _f("retention", "ephemeral")
    cleanup: str = _f("cleanup", "graceful")
    recovery: str = _f("recovery", "automatic")


@dataclass(frozen=True)
class LoadBalancing:
    strategy: LoadBalancingStrategy = _f("strategy", LoadBalancingStrategy.LEAST_CONNECTIONS)
    weights: tuple[int, ...] = _f("weights", ())
    ewma_alpha: float = _f("ewmaAlpha", 0.3)


@dataclass(frozen=True)
class Health:
    heartbeat_interval: float = _f("heartbeatInterval", 5.0, "duration")
    heartbeat_timeout: float = _f("heartbeatTimeout", 15.0, "duration")
    start_timeout: float = _f("startTimeout", 30.0, "duration")
    readiness: str = _f("readiness", "process")


@dataclass(frozen=True)
class Backoff:
    initial: float = _f("initial", 1.0, "duration")
    max: float = _f("max", 60.0, "duration")
    factor: float = _f("factor", 2.0)
    jitter: float = _f("jitter", 0.2)
    reset_after: float = _f("resetAfter", 300.0, "duration")


@dataclass(frozen=True)
class Failover:
    strategy: FailoverStrategy = _f("strategy", FailoverStrategy.RESTART)
    restart: RestartPolicy = _f("restart", RestartPolicy.ON_FAILURE)
    backoff: Backoff = _f("backoff", Backoff())
    max_restarts: int = _f("maxRestarts", 5)
    window: float = _f("window", 300.0, "duration")
    standbys: int = _f("standbys", 0)
    min_ready: int = _f("minReady", 0)
    fallback_pool: str | None = _f("fallbackPool", None)


@dataclass(frozen=True)
class Drain:
    grace_period: float = _f("gracePeriod", 30.0, "duration")


@dataclass(frozen=True)
class Rollout:
    max_unavailable: int | str = _f("maxUnavailable", 1)
    max_surge: int | str = _f("maxSurge", 1)


@dataclass(frozen=True)
class Policies:
    """The seven policy blocks, as a pool ends up with them after inheritance."""

    isolation: Isolation = _f("isolation", Isolation())
    sessions: Sessions = _f("sessions", Sessions())
    load_balancing: LoadBalancing = _f("loadBalancing", LoadBalancing())
    health: Health = _f("health", Health())
    failover: Failover = _f("failover", Failover())
    drain: Drain = _f("drain", Drain())
    rollout: Rollout = _f("rollout", Rollout())


POLICY_BLOCKS = tuple(f.metadata["key"] for f in fields(Policies))


@dataclass(frozen=True)
class AgentPool:
    name: str
    command: tuple[str, ...]
    replicas: int = 1
    env: tuple[tuple[str, str], ...] = ()
    capacity: int = 10
    priority: int = 0
    capabilities: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    policies: Policies = Policies()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CommunicationRule:
    source: str
    message_targets: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    state_read: tuple[str, ...] = ()
    state_write: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommunicationPolicy:
    name: str
    rules: tuple[CommunicationRule, ...]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Fleet:
    """A whole config set: the fleet, its pools (sorted by name) and its policies."""

    name: str
    description: str = ""
    pools: tuple[AgentPool, ...] = ()
    policies: tuple[CommunicationPolicy, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def pool(self, name: str) -> AgentPool | None:
        return next((p for p in self.pools if p.name == name), None)


B = TypeVar("B")


class UnitValueError(ValueError):
    """A unit value that does not parse; ``path`` is its key path inside the policy blocks."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    key: str
    unit: str | None
    nested: type[Any] | None
    enum: type[Enum] | None


_PLANS: dict[type[Any], tuple[_FieldPlan, ...]] = {}


def _plan(cls: type[Any]) -> tuple[_FieldPlan, ...]:
    """How to convert each field of a block class; computed once per class (validate reads
    thousands of blocks, and dataclasses.fields() is not free)."""
    known = _PLANS.get(cls)
    if known is not None:
        return known
    plan = tuple(
        _FieldPlan(
            name=f.name,
            key=f.metadata["key"],
            unit=f.metadata["unit"],
            nested=type(f.default) if is_dataclass(f.default) else None,
            enum=type(f.default) if isinstance(f.default, Enum) else None,
        )
        for f in fields(cls)
    )
    _PLANS[cls] = plan
    return plan


def block_from_raw(cls: type[B], raw: dict[str, Any]) -> B:
    """Build a policy block dataclass from its config-language mapping (already schema-valid).

    Missing keys take the dataclass defaults. Raises UnitValueError for a unit that does not parse.
    """
    values: dict[str, Any] = {}
    for f in _plan(cls):
        if f.key not in raw:
            continue
        value = raw[f.key]
        if f.nested is not None:
            try:
                value = block_from_raw(f.nested, value)
            except UnitValueError as exc:
                raise UnitValueError((f.key, *exc.path), exc.message) from exc
        elif f.unit is not None:
            try:
                value = _PARSERS[f.unit](value)
            except ValueError as exc:
                raise UnitValueError((f.key,), str(exc)) from exc
        elif f.enum is not None:
            value = f.enum(value)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, int) and f.key in _FLOAT_KEYS:
            value = float(value)
        values[f.name] = value
    return cls(**values)


_FLOAT_KEYS = frozenset({"factor", "jitter", "ewmaAlpha"})
_PARSERS = {"duration": units.parse_duration, "memory": units.parse_memory, "cpu": units.parse_cpu}


def block_unit_errors(cls: type[Any], raw: dict[str, Any]) -> list[UnitValueError]:
    """Every unit value of ``raw`` (a block's config-language mapping) that does not parse, not only the first."""
    out: list[UnitValueError] = []
    for f in _plan(cls):
        key = f.key
        if key not in raw:
            continue
        if f.nested is not None and isinstance(raw[key], dict):
            out += [UnitValueError((key, *e.path), e.message) for e in block_unit_errors(f.nested, raw[key])]
        elif f.unit is not None:
            try:
                _PARSERS[f.unit](raw[key])
            except ValueError as exc:
                out.append(UnitValueError((key,), str(exc)))
    return out


def block_to_raw(block: Any) -> dict[str, Any]:
    """The normalized config-language mapping of a block: every field, canonical unit spelling."""
    out: dict[str, Any] = {}
    for f in _plan(type(block)):
        value = getattr(block, f.name)
        if value is None:
            continue
        if f.nested is not None:
            value = block_to_raw(value)
        elif f.unit is not None:
            value = _FORMATTERS[f.unit](value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[f.key] = value
    return out


_FORMATTERS = {"duration": units.format_duration, "memory": units.format_bytes, "cpu": units.format_cpu}
