"""Semantic checks over models built in code: no files, no YAML."""

from __future__ import annotations

from dataclasses import replace

from clawctl.config.diagnostics import Severity
from clawctl.config.model import (
    AgentPool,
    Backoff,
    CommunicationPolicy,
    CommunicationRule,
    Failover,
    FailoverStrategy,
    Fleet,
    Health,
    Isolation,
    LoadBalancing,
    LoadBalancingStrategy,
    Policies,
    Rollout,
    Sessions,
)
from clawctl.config.semantics import Finding, HostFacts, check_fleet

GI = 1024**3
HOST = HostFacts(memory_bytes=8 * GI, cpu_millis=4000)


def pool(name: str, *, replicas: int = 2, depends_on: tuple[str, ...] = (), **blocks: object) -> AgentPool:
    """A pool with default policies, except the blocks given (``failover=Failover(...)``)."""
    return AgentPool(name=name, command=("agent",), replicas=replicas, depends_on=depends_on,
                     policies=replace(Policies(), **blocks))


def fleet(*pools: AgentPool, policies: tuple[CommunicationPolicy, ...] = ()) -> Fleet:
    return Fleet(name="demo", pools=tuple(pools), policies=policies)


def summary(findings: list[Finding]) -> list[tuple[str, str, tuple[str | int, ...], str, str]]:
    """(pool or policy, code, path, severity, message) of each finding, for compact assertions."""
    return [(f.name, f.code, f.path, f.severity.value, f.message) for f in findings]


def test_consistent_fleet_has_no_findings() -> None:
    rules = (CommunicationRule("web", message_targets=("db", "*")), CommunicationRule("*", publish=("events.*",)))
    model = fleet(
        pool("db", replicas=3, failover=Failover(strategy=FailoverStrategy.HOT_STANDBY, standbys=1)),
        pool("web", depends_on=("db",), failover=Failover(strategy=FailoverStrategy.DEGRADE, fallback_pool="db",
                                                           min_ready=2)),
        policies=(CommunicationPolicy("traffic", rules),),
    )
    assert check_fleet(model, HOST) == []


def test_empty_fleet_is_consistent() -> None:
    assert check_fleet(fleet(), HOST) == []


def test_unknown_dependency_suggests_the_near_miss() -> None:
    findings = check_fleet(fleet(pool("database"), pool("web", depends_on=("databse", "cache"))))
    assert summary(findings) == [
        ("web", "unknown-pool", ("spec", "dependsOn", 0), "error", "dependsOn names unknown pool 'databse'"),
        ("web", "unknown-pool", ("spec", "dependsOn", 1), "error", "dependsOn names unknown pool 'cache'"),
    ]
    assert [f.hint for f in findings] == ["did you mean 'database'?", "pools of this fleet: database, web"]


def test_self_dependency_is_not_also_a_cycle() -> None:
    findings = check_fleet(fleet(pool("web", depends_on=("web",))))
    assert summary(findings) == [("web", "self-reference", ("spec", "dependsOn", 0), "error",
                                  "pool 'web' depends on itself")]


def test_dependency_cycle_is_reported_once() -> None:
    model = fleet(pool("a", depends_on=("b",)), pool("b", depends_on=("c",)), pool("c", depends_on=("a",)))
    assert summary(check_fleet(model)) == [("a", "cycle", ("spec", "dependsOn"), "error", "dependsOn cycle: a → b → c → a")]


def test_two_separate_cycles_are_both_reported() -> None:
    model = fleet(pool("a", depends_on=("b",)), pool("b", depends_on=("a",)),
                  pool("x", depends_on=("y",)), pool("y", depends_on=("x",)))
    assert [f.message for f in check_fleet(model)] == ["dependsOn cycle: a → b → a", "dependsOn cycle: x → y → x"]


def test_dependency_chain_without_cycle_is_fine() -> None:
    model = fleet(pool("a"), pool("b", depends_on=("a",)), pool("c", depends_on=("a", "b")))
    assert check_fleet(model) == []


def test_cycle_through_an_unknown_pool_does_not_crash() -> None:
    model = fleet(pool("a", depends_on=("ghost",)), pool("b", depends_on=("a", "b")))
    assert [f.code for f in check_fleet(model)] == ["unknown-pool", "self-reference"]


def degrade(fallback: str | None = None, **kwargs: object) -> Failover:
    return Failover(strategy=FailoverStrategy.DEGRADE, fallback_pool=fallback, **kwargs)  # type: ignore[arg-type]


def test_fallback_to_unknown_and_to_itself() -> None:
    model = fleet(pool("a", failover=degrade("spare")), pool("b", failover=degrade("b")))
    assert summary(check_fleet(model)) == [
        ("a", "unknown-pool", ("spec", "failover", "fallbackPool"), "error", "fallbackPool names unknown pool 'spare'"),
        ("b", "self-reference", ("spec", "failover", "fallbackPool"), "error", "pool 'b' falls back to itself"),
    ]


def test_fallback_cycle() -> None:
    model = fleet(pool("a", failover=degrade("b")), pool("b", failover=degrade("c")), pool("c", failover=degrade("a")))
    assert summary(check_fleet(model)) == [
        ("a", "cycle", ("spec", "failover", "fallbackPool"), "error", "fallbackPool cycle: a → b → c → a")]


def test_fallback_chain_is_fine() -> None:
    model = fleet(pool("a", failover=degrade("b")), pool("b", failover=degrade("c")), pool("c"))
    assert check_fleet(model) == []


def test_fallback_without_degrade_is_fine() -> None:
    # `clawctl drain pool/a` moves a's sessions to its fallbackPool whatever the strategy.
    model = fleet(pool("a", failover=Failover(fallback_pool="b")), pool("b"))
    assert summary(check_fleet(model)) == []


def test_hot_standby_needs_a_standby() -> None:
    findings = check_fleet(fleet(pool("a", failover=Failover(strategy=FailoverStrategy.HOT_STANDBY))))
    assert summary(findings) == [("a", "standbys", ("spec", "failover", "standbys"), "error",
                                  "hot-standby needs at least one standby")]
    assert findings[0].hint == "set failover.standbys: 1 (or more)"


def test_more_standbys_than_replicas() -> None:
    failover = Failover(strategy=FailoverStrategy.HOT_STANDBY, standbys=3)
    findings = check_fleet(fleet(pool("a", replicas=2, failover=failover)))
    assert summary(findings) == [("a", "standbys", ("spec", "failover", "standbys"), "error",
                                  "3 standbys for 2 replicas: more standbys than replicas")]
    assert findings[0].hint == "use at most 2 standbys, or raise replicas"


def test_standbys_equal_to_replicas_are_allowed() -> None:
    failover = Failover(strategy=FailoverStrategy.HOT_STANDBY, standbys=2)
    assert check_fleet(fleet(pool("a", replicas=2, failover=failover))) == []


def test_standbys_without_hot_standby_is_a_warning() -> None:
    findings = check_fleet(fleet(pool("a", failover=Failover(standbys=1))))
    assert summary(findings) == [("a", "unused", ("spec", "failover", "standbys"), "warning",
                                  "standbys are only used by the hot-standby strategy, not restart")]


def test_min_ready_over_replicas() -> None:
    findings = check_fleet(fleet(pool("a", replicas=1, failover=degrade(min_ready=2))))
    assert summary(findings) == [("a", "min-ready", ("spec", "failover", "minReady"), "error",
                                  "minReady 2 is more than the pool's 1 replica")]


def test_backoff_initial_longer_than_max() -> None:
    findings = check_fleet(fleet(pool("a", failover=Failover(backoff=Backoff(initial=120.0, max=30.0)))))
    assert summary(findings) == [("a", "backoff", ("spec", "failover", "backoff", "initial"), "error",
                                  "backoff.initial is longer than backoff.max")]


def test_backoff_initial_equal_to_max_is_fine() -> None:
    assert check_fleet(fleet(pool("a", failover=Failover(backoff=Backoff(initial=30.0, max=30.0))))) == []


def test_heartbeat_timeout_must_exceed_interval() -> None:
    equal = pool("a", health=Health(heartbeat_interval=10.0, heartbeat_timeout=10.0))
    shorter = pool("b", health=Health(heartbeat_interval=60.0, heartbeat_timeout=30.0))
    longer = pool("c", health=Health(heartbeat_interval=10.0, heartbeat_timeout=10.5))
    assert [(f.name, f.code) for f in check_fleet(fleet(equal, shorter, longer))] == [("a", "health"), ("b", "health")]


def test_idle_timeout_longer_than_lifetime_is_a_warning() -> None:
    findings = check_fleet(fleet(pool("a", sessions=Sessions(idle_timeout=7200.0, max_lifetime=3600.0))))
    assert summary(findings) == [("a", "sessions", ("spec", "sessions", "idleTimeout"), "warning",
                                  "idleTimeout is longer than maxLifetime, so it never applies")]


def test_no_lifetime_limit_means_no_idle_warning() -> None:
    assert check_fleet(fleet(pool("a", sessions=Sessions(idle_timeout=7200.0, max_lifetime=None)))) == []


def test_weights_need_the_weighted_strategy_and_fit_the_replicas() -> None:
    findings = check_fleet(fleet(pool("a", replicas=2, load_balancing=LoadBalancing(weights=(1, 2, 3)))))
    assert summary(findings) == [
        ("a", "unused", ("spec", "loadBalancing", "weights"), "warning",
         "weights are only used by the weighted strategy, not least-connections"),
        ("a", "weights", ("spec", "loadBalancing", "weights"), "warning", "3 weights for 2 replicas"),
    ]
    weighted = LoadBalancing(strategy=LoadBalancingStrategy.WEIGHTED, weights=(1, 2))
    assert check_fleet(fleet(pool("b", replicas=2, load_balancing=weighted))) == []


def test_rollout_that_can_never_progress() -> None:
    for unavailable, surge in [(0, 0), (0, "0%"), ("0%", "0%")]:
        findings = check_fleet(fleet(pool("a", rollout=Rollout(max_unavailable=unavailable, max_surge=surge))))
        assert [(f.code, f.path) for f in findings] == [("rollout", ("spec", "rollout"))]
    assert check_fleet(fleet(pool("a", rollout=Rollout(max_unavailable=0, max_surge="25%")))) == []


def test_quotas_beyond_the_host_are_warnings() -> None:
    big = pool("big", isolation=Isolation(memory_bytes=16 * GI, cpu_millis=6000))
    findings = check_fleet(fleet(big), HOST)
    assert summary(findings) == [
        ("big", "quota", ("spec", "isolation", "memory"), "warning", "memory quota 16Gi is more than this host's 8Gi"),
        ("big", "quota", ("spec", "isolation", "cpu"), "warning", "cpu quota 6 is more than this host's 4 cores"),
    ]
    assert all(f.severity is Severity.WARNING for f in findings)


def test_quotas_are_not_checked_without_host_facts() -> None:
    assert check_fleet(fleet(pool("big", isolation=Isolation(memory_bytes=16 * GI)))) == []


def test_quota_equal_to_the_host_is_fine() -> None:
    assert check_fleet(fleet(pool("a", isolation=Isolation(memory_bytes=8 * GI, cpu_millis=4000))), HOST) == []


def test_rules_naming_unknown_pools() -> None:
    rules = (
        CommunicationRule("worker", message_targets=("web",)),
        CommunicationRule("web", message_targets=("*", "reporting", "web")),
    )
    findings = check_fleet(fleet(pool("web"), pool("workers"), policies=(CommunicationPolicy("traffic", rules),)))
    assert summary(findings) == [
        ("traffic", "unknown-pool", ("spec", "rules", 0, "from"), "error", "rule 'from' names unknown pool 'worker'"),
        ("traffic", "unknown-pool", ("spec", "rules", 1, "messages", 1), "error",
         "rule 'messages' names unknown pool 'reporting'"),
    ]
    assert [f.kind for f in findings] == ["CommunicationPolicy", "CommunicationPolicy"]
    assert findings[0].hint == "did you mean 'workers'?"


def test_rules_in_a_fleet_without_pools() -> None:
    findings = check_fleet(fleet(policies=(CommunicationPolicy("p", (CommunicationRule("a"),)),)))
    assert [(f.message, f.hint) for f in findings] == [("rule 'from' names unknown pool 'a'", "this fleet has no pools")]


def test_every_problem_of_one_pool_is_reported() -> None:
    troubled = pool(
        "a", replicas=1, depends_on=("ghost",),
        health=Health(heartbeat_interval=30.0, heartbeat_timeout=5.0),
        failover=Failover(strategy=FailoverStrategy.HOT_STANDBY, standbys=2, min_ready=4,
                          backoff=Backoff(initial=300.0, max=60.0)),
        rollout=Rollout(max_unavailable=0, max_surge=0),
    )
    assert [f.code for f in check_fleet(fleet(troubled))] == [
        "unknown-pool", "standbys", "min-ready", "backoff", "health", "rollout"]


def test_check_fleet_is_pure() -> None:
    """Same model, same findings; the model is not changed."""
    model = fleet(pool("a", depends_on=("b",)), pool("b", depends_on=("a",)))
    before = repr(model)
    assert check_fleet(model) == check_fleet(model)
    assert repr(model) == before
