"""CommunicationPolicy decisions and session access: default deny, directional, exact rules."""

from __future__ import annotations

import pytest

from clawctl.config.model import CommunicationPolicy, CommunicationRule
from clawctl.policies.access import SessionAction, may_message, session_access

POLICIES = (
    CommunicationPolicy("plant", (CommunicationRule("coordination", message_targets=("*",)),
                                  CommunicationRule("quality", message_targets=("supply",)))),
    CommunicationPolicy("extra", (CommunicationRule("*", message_targets=("audit",)),)),
)


@pytest.mark.parametrize(("source", "target", "allowed", "rule"), [
    ("coordination", "quality", True, "policy plant rule 1"),
    ("coordination", "coordination", True, "policy plant rule 1"),
    ("quality", "supply", True, "policy plant rule 2"),
    ("supply", "quality", False, None),          # A → B does not imply B → A
    ("quality", "quality", False, None),         # no right over itself without a rule
    ("supply", "audit", True, "policy extra rule 1"),
    ("unknown", "supply", False, None),
])
def test_may_message_is_directional_and_denies_by_default(source: str, target: str, allowed: bool,
                                                          rule: str | None) -> None:
    decision = may_message(POLICIES, source, target)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    text = decision.describe(source, "open sessions in", target)
    assert (rule in text) if rule else "no CommunicationPolicy rule allows it" in text


def test_no_policies_means_no_access() -> None:
    assert not may_message((), "a", "b").allowed


A, B, C = "t/a-0", "t/b-0", "t/c-0"


@pytest.mark.parametrize(("action", "operator", "caller", "allowed"), [
    (SessionAction.OWN, False, A, True),
    (SessionAction.OWN, False, B, False),     # the opener does not own it
    (SessionAction.OWN, True, None, False),   # owner-only calls are for agents
    (SessionAction.TALK, False, B, True),
    (SessionAction.TALK, False, A, False),    # the owner answers, it does not send to itself
    (SessionAction.TALK, True, None, True),
    (SessionAction.SEE, False, A, True),
    (SessionAction.SEE, False, B, True),
    (SessionAction.SEE, False, C, False),
    (SessionAction.CLOSE, False, C, False),
    (SessionAction.CLOSE, True, None, True),
    (SessionAction.SEE, False, None, False),
])
def test_session_access(action: SessionAction, operator: bool, caller: str | None, allowed: bool) -> None:
    assert session_access(action, operator=operator, caller=caller, owner=A, opened_by=B) is allowed


def test_a_session_the_operator_opened_is_reachable_by_no_other_agent() -> None:
    assert not session_access(SessionAction.TALK, operator=False, caller=B, owner=A, opened_by=None)
    assert not session_access(SessionAction.SEE, operator=False, caller=B, owner=A, opened_by=None)
