""""Did you mean …" suggestions and name repair."""

from __future__ import annotations

import re

import pytest

from clawctl.config.suggest import closest, did_you_mean, dns_label

KINDS = ["Fleet", "AgentPool", "CommunicationPolicy"]
STRATEGIES = ["round-robin", "least-connections", "weighted", "consistent-hash", "least-latency"]
SPEC_KEYS = ["replicas", "command", "env", "capacity", "priority", "capabilities", "dependsOn", "isolation",
             "sessions", "loadBalancing", "health", "failover", "drain", "rollout"]
NAME = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")


@pytest.mark.parametrize("word,choices,expected", [
    # same letters ignoring case and separators: the seed's snake_case and capitals
    ("on_demand", ["on-demand", "eager"], "on-demand"),
    ("activity-based", ["activity_based"], "activity_based"),
    ("least_connections", STRATEGIES, "least-connections"),
    ("Strict", ["strict", "moderate", "shared"], "strict"),
    ("Agentpool", KINDS, "AgentPool"),
    ("idle_timeout", ["idleTimeout", "maxLifetime"], "idleTimeout"),
    ("depends_on", SPEC_KEYS, "dependsOn"),
    ("ROUND ROBIN", STRATEGIES, "round-robin"),
    # near misses by edit similarity
    ("replica", SPEC_KEYS, "replicas"),
    ("comand", SPEC_KEYS, "command"),
    ("isolaton", SPEC_KEYS, "isolation"),
    ("leastconn", STRATEGIES, "least-connections"),
    ("AgentPol", KINDS, "AgentPool"),
])
def test_closest_finds_the_intended_word(word: str, choices: list[str], expected: str) -> None:
    assert closest(word, choices) == expected


@pytest.mark.parametrize("word,choices", [
    ("Deployment", KINDS),
    ("Policy", KINDS),
    ("gpu", ["level", "memory", "cpu", "network", "openFiles", "processes", "disk"]),
    ("random", STRATEGIES),
    ("anything", []),
    ("", ["a", "b"]),
])
def test_closest_stays_quiet_when_nothing_is_close(word: str, choices: list[str]) -> None:
    assert closest(word, choices) is None


def test_exact_normal_match_beats_a_closer_edit() -> None:
    """'on_demand' means 'on-demand' even if another choice is one edit away from the raw text."""
    assert closest("on_demand", ["on_demands", "on-demand"]) == "on-demand"


def test_closest_accepts_any_iterable() -> None:
    assert closest("replica", iter(["replicas"])) == "replicas"


def test_did_you_mean_sentence() -> None:
    assert did_you_mean("Strict", ["strict", "moderate"]) == "did you mean 'strict'?"
    assert did_you_mean("xyz", ["strict", "moderate"]) is None


@pytest.mark.parametrize("text,label", [
    ("Workers_1", "workers-1"),
    ("Demo", "demo"),
    ("--Hello World--", "hello-world"),
    ("1st-line", "x-1st-line"),
    ("second-", "second"),
    ("Zürich_Workers", "zurich-workers"),
    ("a" * 50, "a" * 40),
    ("already-fine", "already-fine"),
])
def test_dns_label(text: str, label: str) -> None:
    assert dns_label(text) == label


@pytest.mark.parametrize("text", ["Workers_1", "1st", "9" * 60, "UPPER CASE NAME", "x" * 39 + "_y", "Ünïcode"])
def test_dns_label_is_a_valid_name(text: str) -> None:
    """Whatever it is given, a non-empty repair satisfies the schema's name pattern."""
    label = dns_label(text)
    assert NAME.match(label), label


@pytest.mark.parametrize("text", ["", "___", "日本", "--"])
def test_dns_label_gives_nothing_for_nothing(text: str) -> None:
    assert dns_label(text) == ""
