"""The typed model: blocks convert to their normalized config-language form and back."""

from __future__ import annotations

import dataclasses

import pytest

from clawctl.config.model import (
    POLICY_BLOCKS,
    Backoff,
    Failover,
    FailoverStrategy,
    Isolation,
    IsolationLevel,
    LoadBalancing,
    LoadBalancingStrategy,
    Policies,
    Rollout,
    Sessions,
    UnitValueError,
    block_from_raw,
    block_to_raw,
    block_unit_errors,
)

CUSTOM = Policies(
    isolation=Isolation(level=IsolationLevel.STRICT, memory_bytes=4_000_000_000, cpu_millis=1500, disk_bytes=1024**3),
    sessions=Sessions(idle_timeout=0.0005, max_lifetime=7200.0),
    load_balancing=LoadBalancing(strategy=LoadBalancingStrategy.WEIGHTED, weights=(1, 2), ewma_alpha=0.5),
    failover=Failover(strategy=FailoverStrategy.DEGRADE, backoff=Backoff(initial=0.25, factor=1.5),
                      fallback_pool="spare", min_ready=1),
    rollout=Rollout(max_unavailable="25%", max_surge=0),
)


@pytest.mark.parametrize("policies", [Policies(), CUSTOM], ids=["defaults", "custom"])
def test_policies_round_trip_through_raw(policies: Policies) -> None:
    assert block_from_raw(Policies, block_to_raw(policies)) == policies


def test_block_to_raw_spells_units_canonically() -> None:
    raw = block_to_raw(CUSTOM)
    assert raw["isolation"]["memory"] == "4G"
    assert raw["isolation"]["cpu"] == "1.5"
    assert raw["isolation"]["disk"] == "1Gi"
    assert raw["sessions"]["idleTimeout"] == "0.0005s"
    assert raw["sessions"]["maxLifetime"] == "2h"
    assert "openFiles" not in raw["isolation"]
    assert raw["failover"]["backoff"]["initial"] == "250ms"
    assert raw["loadBalancing"]["weights"] == [1, 2]


def test_policy_blocks_are_the_seven_of_the_design() -> None:
    assert POLICY_BLOCKS == ("isolation", "sessions", "loadBalancing", "health", "failover", "drain", "rollout")


def test_models_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CUSTOM.isolation.cpu_millis = 1  # type: ignore[misc]


def test_block_from_raw_reports_the_first_bad_unit_with_its_path() -> None:
    with pytest.raises(UnitValueError) as caught:
        block_from_raw(Policies, {"failover": {"backoff": {"initial": "1s"}}, "isolation": {"cpu": "0m"}})
    assert caught.value.path == ("isolation", "cpu")


def test_block_unit_errors_reports_every_bad_unit() -> None:
    raw = {"isolation": {"cpu": "0m", "memory": "0Mi", "disk": "1Gi"}, "sessions": {"idleTimeout": "forever"}}
    assert [(e.path, e.message) for e in block_unit_errors(Policies, raw)] == [
        (("isolation", "memory"), "'0Mi' is less than one byte"),
        (("isolation", "cpu"), "'0m' is less than one millicore"),
        (("sessions", "idleTimeout"), "'forever' is not a duration"),
    ]


def test_block_unit_errors_is_empty_for_good_units() -> None:
    assert block_unit_errors(Policies, block_to_raw(CUSTOM)) == []
