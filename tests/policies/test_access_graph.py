"""The CommunicationPolicy as a directed graph: every verb, globs, first-rule reporting, the matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawctl.config.loader import load_paths
from clawctl.config.model import CommunicationPolicy, CommunicationRule
from clawctl.policies.access import (
    VERB_SPELLINGS,
    Grant,
    PoolAccess,
    Verb,
    access_matrix,
    first_grant,
    glob_covers,
    glob_match,
    may,
    may_message,
    may_publish,
    may_read_state,
    may_receive,
    may_subscribe,
    may_write_state,
    parse_verb,
)

MANUFACTURING = Path(__file__).resolve().parents[2] / "sample-configs" / "manufacturing"

POLICIES = (
    CommunicationPolicy("alpha", (
        CommunicationRule("monitor", publish=("production.*",), state_write=("lines/*/telemetry",)),
        CommunicationRule("quality", message_targets=("supply",), publish=("quality.*",),
                          subscribe=("production.*",), state_read=("lines/*/telemetry",)),
        CommunicationRule("quality", publish=("quality.rejects.line?",), state_read=("config/[prod]",)),
    )),
    CommunicationPolicy("beta", (
        CommunicationRule("*", message_targets=("audit",), subscribe=("broadcast.?",)),
        CommunicationRule("quality", publish=("quality.*", "alerts.*")),
    )),
)


def rule(policy: str, index: int) -> str:
    return f"policy {policy} rule {index}"


# -------------------------------------------------------------------- globs
@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("production.*", "production.line1", True),
    ("production.*", "production.line1.output", True),   # '*' crosses separators
    ("production.*", "production.", True),               # '*' matches the empty run
    ("production.*", "production", False),
    ("production.*", "quality.line1", False),
    ("lines/*/telemetry", "lines/7/telemetry", True),
    ("lines/*/telemetry", "lines/a/b/telemetry", True),
    ("lines/*/telemetry", "lines/7/telemetry/raw", False),
    ("*", "", True),
    ("*", "anything/at.all", True),
    ("line?", "line1", True),
    ("line?", "line", False),                             # '?' is exactly one character
    ("line?", "line12", False),
    ("line?", "line.", True),
    ("config/[prod]", "config/[prod]", True),             # brackets are literal
    ("config/[prod]", "config/p", False),
    ("config/[!a]", "config/[!a]", True),
    ("config/[!a]", "config/b", False),
    ("a.b", "aXb", False),                                # '.' is literal, not a regex dot
    ("exact", "exact", True),
    ("exact", "exactly", False),
    ("*a*b", "xaxxab", True),
])
def test_glob_match(pattern: str, text: str, matches: bool) -> None:
    assert glob_match(pattern, text) is matches
    if "*" not in text and "?" not in text:
        assert glob_covers(pattern, text) is matches  # the same for names without wildcards


@pytest.mark.parametrize(("pattern", "requested", "covers"), [
    ("production.*", "production.*", True),
    ("production.*", "production.line?.*", True),
    ("production.*", "production.line1", True),
    ("production.*", "*", False),
    ("production.*", "production*", False),      # would reach production-secrets
    ("*", "*", True),
    ("*", "a?b*", True),
    ("a?c", "a?c", True),
    ("a?c", "a*c", False),                       # a*c matches abbc, a?c does not
    ("a?c", "abc", True),
    ("quality.rejects.*", "quality.*", False),
])
def test_glob_covers_never_grants_more_than_the_pattern(pattern: str, requested: str, covers: bool) -> None:
    assert glob_covers(pattern, requested) is covers


def test_glob_matching_is_not_exponential() -> None:
    assert not glob_match("*a" * 60 + "*b", "a" * 400)
    assert glob_match("*a" * 60 + "*", "a" * 400)


# -------------------------------------------------------------------- verbs
@pytest.mark.parametrize(("source", "verb", "target", "decided_by"), [
    ("quality", Verb.MESSAGE, "supply", rule("alpha", 2)),
    ("quality", Verb.MESSAGE, "monitor", None),
    ("quality", Verb.MESSAGE, "audit", rule("beta", 1)),          # from: '*' applies to every pool
    ("monitor", Verb.PUBLISH, "production.line1", rule("alpha", 1)),
    ("monitor", Verb.PUBLISH, "quality.line1", None),
    ("quality", Verb.PUBLISH, "quality.rejects.line2", rule("alpha", 2)),  # first rule, not the narrower third
    ("quality", Verb.PUBLISH, "alerts.fire", rule("beta", 2)),
    ("quality", Verb.SUBSCRIBE, "production.*", rule("alpha", 2)),
    ("quality", Verb.SUBSCRIBE, "*", None),
    ("monitor", Verb.SUBSCRIBE, "production.*", None),            # publishing does not imply subscribing
    ("monitor", Verb.SUBSCRIBE, "broadcast.x", rule("beta", 1)),
    ("monitor", Verb.SUBSCRIBE, "broadcast.xy", None),
    ("quality", Verb.READ, "lines/3/telemetry", rule("alpha", 2)),
    ("quality", Verb.READ, "config/[prod]", rule("alpha", 3)),
    ("quality", Verb.READ, "config/p", None),
    ("quality", Verb.WRITE, "lines/3/telemetry", None),           # reading does not imply writing
    ("monitor", Verb.WRITE, "lines/3/telemetry", rule("alpha", 1)),
    ("monitor", Verb.READ, "lines/3/telemetry", None),            # writing does not imply reading
    ("stranger", Verb.PUBLISH, "production.line1", None),
])
def test_may(source: str, verb: Verb, target: str, decided_by: str | None) -> None:
    decision = may(POLICIES, source, verb, target)
    assert (decision.allowed, decision.rule) == (decided_by is not None, decided_by)


def test_thin_helpers_agree_with_may() -> None:
    assert may_message(POLICIES, "quality", "supply") == may(POLICIES, "quality", Verb.MESSAGE, "supply")
    assert may_publish(POLICIES, "monitor", "production.x").rule == rule("alpha", 1)
    assert not may_publish(POLICIES, "monitor", "production").allowed
    assert may_subscribe(POLICIES, "quality", "production.line1.*").rule == rule("alpha", 2)
    assert not may_subscribe(POLICIES, "quality", "production*").allowed
    assert may_read_state(POLICIES, "quality", "lines/1/telemetry").rule == rule("alpha", 2)
    assert not may_read_state(POLICIES, "monitor", "lines/1/telemetry").allowed
    assert may_write_state(POLICIES, "monitor", "lines/1/telemetry").rule == rule("alpha", 1)
    assert not may_write_state(POLICIES, "quality", "lines/1/telemetry").allowed


def test_may_receive_checks_each_delivered_topic_literally() -> None:
    assert may_receive(POLICIES, "quality", "production.line1.output").rule == rule("alpha", 2)
    assert not may_receive(POLICIES, "quality", "quality.line1").allowed
    assert may_receive(POLICIES, "monitor", "broadcast.*").rule == rule("beta", 1)  # '*' here is just a character
    assert not may_subscribe(POLICIES, "monitor", "broadcast.*").allowed          # ... but as a pattern, too wide


def test_directional_and_no_right_over_itself() -> None:
    policies = (CommunicationPolicy("p", (CommunicationRule("a", message_targets=("b",), publish=("a.*",)),)),)
    assert may_message(policies, "a", "b").allowed
    assert not may_message(policies, "b", "a").allowed
    assert not may_message(policies, "a", "a").allowed
    assert not may_subscribe(policies, "a", "a.*").allowed  # publishing its topics does not let it read them
    assert not may(policies, "a", Verb.READ, "anything").allowed
    assert not may((), "a", Verb.PUBLISH, "x").allowed


def test_message_star_reaches_every_pool_including_itself() -> None:
    policies = (CommunicationPolicy("p", (CommunicationRule("hub", message_targets=("*",)),)),)
    assert may_message(policies, "hub", "hub").rule == rule("p", 1)
    assert may_message(policies, "hub", "anyone").allowed
    assert not may_message(policies, "anyone", "hub").allowed


def test_first_grant_names_the_entry() -> None:
    grant = first_grant(POLICIES, "quality", Verb.PUBLISH, "quality.rejects.line1")
    assert grant == Grant(target="quality.rejects.line1", policy="alpha", index=2, entry="quality.*")
    assert grant.rule == rule("alpha", 2)
    assert first_grant(POLICIES, "quality", Verb.WRITE, "x") is None


def test_verb_spellings() -> None:
    assert parse_verb("open-session") is Verb.MESSAGE
    assert [parse_verb(v) for v in ("message", "publish", "subscribe", "read", "write")] == list(Verb)
    assert parse_verb("Read") is None and parse_verb("send") is None
    assert set(VERB_SPELLINGS) == {"message", "open-session", "publish", "subscribe", "read", "write"}
    assert Verb.SUBSCRIBE.phrase == "subscribe to" and Verb.READ.phrase == "read"


# -------------------------------------------------------------------- matrix
def test_matrix() -> None:
    matrix = access_matrix(POLICIES, ["quality", "monitor", "supply", "audit"])
    assert [a.pool for a in matrix] == ["quality", "monitor", "supply", "audit"]
    quality, monitor, supply, audit = matrix
    assert [(g.target, g.rule) for g in quality.message] == [("supply", rule("alpha", 2)), ("audit", rule("beta", 1))]
    # quality.rejects.line? (rule 3) and quality.* (beta rule 2) are covered by quality.* (rule 2): not repeated
    assert [(g.target, g.rule) for g in quality.publish] == [("quality.*", rule("alpha", 2)),
                                                           ("alerts.*", rule("beta", 2))]
    assert [(g.target, g.rule) for g in quality.subscribe] == [("production.*", rule("alpha", 2)),
                                                             ("broadcast.?", rule("beta", 1))]
    assert [g.target for g in quality.read] == ["lines/*/telemetry", "config/[prod]"]
    assert quality.write == ()
    assert [g.target for g in monitor.write] == ["lines/*/telemetry"] and monitor.read == ()
    assert supply == PoolAccess("supply", message=(Grant("audit", "beta", 1, "audit"),),
                                subscribe=(Grant("broadcast.?", "beta", 1, "broadcast.?"),))
    assert [g.target for g in audit.message] == ["audit"]  # from '*' to audit: audit itself too


def test_matrix_expands_star_against_known_pools_and_keeps_named_unknown_ones() -> None:
    policies = (CommunicationPolicy("p", (CommunicationRule("hub", message_targets=("*",)),
                                          CommunicationRule("edge", message_targets=("hub", "elsewhere")))),)
    hub, edge = access_matrix(policies, ["hub", "edge"])
    assert [(g.target, g.entry) for g in hub.message] == [("hub", "*"), ("edge", "*")]
    assert [(g.target, g.entry, g.index) for g in edge.message] == [("hub", "hub", 2), ("elsewhere", "elsewhere", 2)]
    assert not hub.empty


def test_matrix_of_a_pool_without_rules_is_empty() -> None:
    (lonely,) = access_matrix(POLICIES[:1], ["lonely"])
    assert lonely.empty and all(lonely.grants(v) == () for v in Verb)


# -------------------------------------------------------------------- the manufacturing sample
def test_manufacturing_sample() -> None:
    fleet = load_paths([str(MANUFACTURING)]).fleet
    assert fleet is not None
    policies = fleet.policies
    assert may_read_state(policies, "quality-control", "lines/1/telemetry").rule == rule("plant-events", 2)
    assert not may_write_state(policies, "quality-control", "lines/1/telemetry").allowed
    assert may_write_state(policies, "production-monitoring", "lines/1/telemetry").rule == rule("plant-events", 1)
    assert not may_read_state(policies, "production-monitoring", "lines/1/telemetry").allowed
    assert may_subscribe(policies, "supply-chain", "quality.rejects.*").rule == rule("plant-events", 3)
    assert not may_subscribe(policies, "supply-chain", "quality.*").allowed
    assert may_message(policies, "coordination", "supply-chain").rule == rule("plant-events", 5)
    assert not may_message(policies, "supply-chain", "coordination").allowed
    matrix = {a.pool: a for a in access_matrix(policies, [p.name for p in fleet.pools])}
    assert [g.target for g in matrix["coordination"].message] == [p.name for p in fleet.pools]
    assert all(not matrix[p].message for p in matrix if p != "coordination")
    assert [g.target for g in matrix["compliance"].read] == ["*"] and matrix["compliance"].publish == ()
