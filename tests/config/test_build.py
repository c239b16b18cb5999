"""Building the typed model: fleet defaults, isolation presets and env merging.

Precedence for every policy field: the pool's own value, then the fleet's
``spec.defaults``, then the isolation level preset, then the built-in default.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from clawctl.config.build import build_fleet, build_policy, build_pool, deep_merge, effective_pool_spec
from clawctl.config.model import (
    ISOLATION_PRESETS,
    FailoverStrategy,
    IsolationLevel,
    LoadBalancingStrategy,
    NetworkMode,
    Policies,
    RestartPolicy,
    UnitValueError,
)
from tests.builders import fleet_doc, fleet_docs, pool_doc, policy_doc

GI = 1024**3
COMMAND = {"command": ["agent"]}


def spec(**fields: Any) -> dict[str, Any]:
    return {**COMMAND, **fields}


def test_pool_without_anything_gets_builtin_defaults() -> None:
    built = build_pool("a", spec(), {})
    assert (built.replicas, built.capacity, built.priority, built.env, built.depends_on) == (1, 10, 0, (), ())
    assert built.policies == Policies()
    assert built.policies.isolation.level is IsolationLevel.SHARED
    assert built.policies.isolation.network is NetworkMode.HOST
    assert built.policies.isolation.memory_bytes is None


@pytest.mark.parametrize("level", list(IsolationLevel))
def test_isolation_preset_fills_missing_fields(level: IsolationLevel) -> None:
    iso = build_pool("a", spec(isolation={"level": level.value}), {}).policies.isolation
    preset = ISOLATION_PRESETS[level]
    assert iso.level is level
    assert iso.network.value == preset["network"]
    assert iso.open_files == preset.get("openFiles")
    assert iso.processes == preset.get("processes")


def test_strict_preset_values() -> None:
    iso = build_pool("a", spec(isolation={"level": "strict"}), {}).policies.isolation
    assert (iso.network, iso.open_files, iso.processes) == (NetworkMode.NONE, 256, 64)


def test_fleet_default_beats_preset() -> None:
    defaults = {"isolation": {"network": "host", "openFiles": 4096}}
    iso = build_pool("a", spec(isolation={"level": "strict"}), defaults).policies.isolation
    assert (iso.level, iso.network, iso.open_files, iso.processes) == (IsolationLevel.STRICT, NetworkMode.HOST, 4096, 64)


def test_pool_value_beats_fleet_default() -> None:
    defaults = {"isolation": {"level": "strict", "memory": "1Gi", "network": "loopback"}}
    iso = build_pool("a", spec(isolation={"memory": "2Gi"}), defaults).policies.isolation
    assert (iso.level, iso.memory_bytes, iso.network) == (IsolationLevel.STRICT, 2 * GI, NetworkMode.LOOPBACK)


def test_pool_level_chooses_the_preset_over_the_fleet_level() -> None:
    defaults = {"isolation": {"level": "strict"}}
    iso = build_pool("a", spec(isolation={"level": "moderate"}), defaults).policies.isolation
    assert (iso.level, iso.network, iso.open_files) == (IsolationLevel.MODERATE, NetworkMode.LOOPBACK, 1024)


def test_all_four_layers_at_once() -> None:
    """One field from each layer: pool (cpu), fleet default (memory), preset (network), built-in (disk)."""
    defaults = {"isolation": {"level": "strict", "memory": "1Gi", "cpu": 1}}
    iso = build_pool("a", spec(isolation={"cpu": "1500m"}), defaults).policies.isolation
    assert iso.cpu_millis == 1500
    assert iso.memory_bytes == GI
    assert iso.network is NetworkMode.NONE
    assert iso.disk_bytes is None


def test_nested_blocks_merge_field_by_field() -> None:
    defaults = {"failover": {"strategy": "restart", "restart": "always", "backoff": {"initial": "2s", "max": "1m"}}}
    failover = build_pool("a", spec(failover={"backoff": {"max": "5m"}}), defaults).policies.failover
    assert (failover.strategy, failover.restart) == (FailoverStrategy.RESTART, RestartPolicy.ALWAYS)
    assert (failover.backoff.initial, failover.backoff.max, failover.backoff.factor) == (2.0, 300.0, 2.0)


@pytest.mark.parametrize("block,raw,attribute,expected", [
    ("sessions", {"idleTimeout": "5m"}, "idle_timeout", 300.0),
    ("loadBalancing", {"strategy": "round-robin"}, "strategy", LoadBalancingStrategy.ROUND_ROBIN),
    ("health", {"heartbeatInterval": "1s", "heartbeatTimeout": "3s"}, "heartbeat_timeout", 3.0),
    ("drain", {"gracePeriod": "1m"}, "grace_period", 60.0),
    ("rollout", {"maxSurge": "25%"}, "max_surge", "25%"),
])
def test_every_policy_block_is_inherited(block: str, raw: dict[str, Any], attribute: str, expected: object) -> None:
    model_key = {"loadBalancing": "load_balancing"}.get(block, block)
    inherited = getattr(build_pool("a", spec(), {block: raw}).policies, model_key)
    assert getattr(inherited, attribute) == expected


def test_lists_replace_instead_of_merging() -> None:
    defaults = {"loadBalancing": {"strategy": "weighted", "weights": [1, 2, 3]}}
    built = build_pool("a", spec(loadBalancing={"weights": [5]}), defaults)
    assert built.policies.load_balancing.weights == (5,)


def test_env_merges_key_by_key_pool_wins() -> None:
    defaults = {"env": {"LOG_LEVEL": "info", "REGION": "eu"}}
    built = build_pool("a", spec(env={"LOG_LEVEL": "debug", "PORT": "8080"}), defaults)
    assert built.env == (("LOG_LEVEL", "debug"), ("PORT", "8080"), ("REGION", "eu"))


def test_env_from_defaults_only() -> None:
    assert build_pool("a", spec(), {"env": {"A": "1"}}).env == (("A", "1"),)


def test_units_are_normalized() -> None:
    raw = spec(isolation={"memory": "4GB", "cpu": 1.5, "disk": "10Gi"},
               sessions={"idleTimeout": "1h30m", "maxLifetime": "2d"}, failover={"window": "500ms"})
    policies = build_pool("a", raw, {}).policies
    assert (policies.isolation.memory_bytes, policies.isolation.cpu_millis) == (4_000_000_000, 1500)
    assert policies.isolation.disk_bytes == 10 * GI
    assert (policies.sessions.idle_timeout, policies.sessions.max_lifetime) == (5400.0, 172800.0)
    assert policies.failover.window == 0.5


def test_integer_factors_become_floats() -> None:
    backoff = build_pool("a", spec(failover={"backoff": {"factor": 3, "jitter": 0}}), {}).policies.failover.backoff
    assert (backoff.factor, backoff.jitter) == (3.0, 0.0)
    assert isinstance(backoff.factor, float) and isinstance(backoff.jitter, float)


def test_unit_that_does_not_parse_names_its_path() -> None:
    with pytest.raises(UnitValueError) as caught:
        build_pool("a", spec(isolation={"cpu": "0m"}), {})
    assert caught.value.path == ("isolation", "cpu")


def test_inputs_are_not_modified() -> None:
    defaults = {"isolation": {"level": "strict", "memory": "1Gi"}, "env": {"A": "1"}, "failover": {"backoff": {"max": "1m"}}}
    pool_spec = spec(isolation={"cpu": 2}, env={"B": "2"}, failover={"backoff": {"initial": "1s"}})
    before = copy.deepcopy((defaults, pool_spec))
    build_pool("a", pool_spec, defaults)
    effective_pool_spec(pool_spec, defaults)
    assert (defaults, pool_spec) == before


def test_deep_merge() -> None:
    base = {"a": 1, "nested": {"x": 1, "y": 2}, "items": [1, 2]}
    override = {"nested": {"y": 3, "z": 4}, "items": [9], "b": 2}
    assert deep_merge(base, override) == {"a": 1, "b": 2, "nested": {"x": 1, "y": 3, "z": 4}, "items": [9]}
    assert base == {"a": 1, "nested": {"x": 1, "y": 2}, "items": [1, 2]}


def test_deep_merge_mapping_replaces_scalar_and_back() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


def test_build_policy() -> None:
    raw = {"rules": [{"from": "web", "messages": ["db"], "events": {"publish": ["orders.*"], "subscribe": ["x"]},
                      "sharedState": {"read": ["cfg/*"], "write": ["cache/*"]}}, {"from": "*"}]}
    policy = build_policy("traffic", raw, {"team": "ops"})
    first, second = policy.rules
    assert (first.source, first.message_targets, first.publish, first.subscribe) == ("web", ("db",), ("orders.*",), ("x",))
    assert (first.state_read, first.state_write) == (("cfg/*",), ("cache/*",))
    assert (second.source, second.message_targets, second.publish) == ("*", (), ())
    assert policy.labels == (("team", "ops"),)


def test_build_fleet_sorts_pools_and_policies() -> None:
    docs = [fleet_doc("demo", defaults={"isolation": {"level": "moderate"}}, description="d"),
            pool_doc("zeta"), pool_doc("alpha"), policy_doc("p2", [{"from": "*"}]), policy_doc("p1", [{"from": "*"}])]
    fleet = build_fleet(docs[0], docs[1:3], docs[3:])
    assert [p.name for p in fleet.pools] == ["alpha", "zeta"]
    assert [p.name for p in fleet.policies] == ["p1", "p2"]
    assert fleet.description == "d"
    assert all(p.policies.isolation.level is IsolationLevel.MODERATE for p in fleet.pools)
    assert fleet.pool("zeta") is fleet.pools[1] and fleet.pool("nope") is None


def test_equal_configs_give_equal_models() -> None:
    docs = fleet_docs(3)
    pools = [d for d in docs if d["kind"] == "AgentPool"]
    policies = [d for d in docs if d["kind"] == "CommunicationPolicy"]
    assert build_fleet(docs[0], pools, policies) == build_fleet(docs[0], list(reversed(pools)), policies)
    assert hash(build_fleet(docs[0], pools, policies)) == hash(build_fleet(docs[0], pools, policies))
