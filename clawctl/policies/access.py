"""Who may do what across pools, decided from CommunicationPolicy rules. Pure.

Default deny: a pool may act on another only where a rule whose ``from`` is
that pool (or ``*``) grants it. Rules are directional: A → B says nothing
about B → A. A pool gets no right over itself without a rule either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from clawctl.config.model import CommunicationPolicy


@dataclass(frozen=True)
class AccessDecision:
    """Allowed or not, and the rule that decided (``None`` for the default deny)."""

    allowed: bool
    rule: str | None
    """``policy NAME rule N`` (1-based), the first rule that granted it."""

    def describe(self, source: str, verb: str, target: str) -> str:
        if self.allowed:
            return f"pool {source} may {verb} {target} ({self.rule})"
        return f"pool {source} may not {verb} {target}: no CommunicationPolicy rule allows it"


def _matches(pattern: str, name: str) -> bool:
    return pattern == "*" or pattern == name


def may_message(policies: Sequence[CommunicationPolicy], source_pool: str, target_pool: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may talk to ``target_pool``: send it messages and open
    sessions in it (the rule's ``messages`` list)."""
    for policy in policies:
        for index, rule in enumerate(policy.rules, start=1):
            if _matches(rule.source, source_pool) and any(_matches(t, target_pool) for t in rule.message_targets):
                return AccessDecision(True, f"policy {policy.name} rule {index}")
    return AccessDecision(False, None)


class SessionAction(str, Enum):
    """What a caller wants to do with one session."""

    OWN = "own"        # reply to its messages, read and write its state: its owner only
    TALK = "talk"      # send it messages: the operator, or the agent that opened it
    SEE = "see"        # show it: the operator, its owner, or the agent that opened it
    CLOSE = "close"    # close it (or acknowledge its closing): same as SEE


def session_access(action: SessionAction, *, operator: bool, caller: str | None, owner: str | None,
                   opened_by: str | None) -> bool:
    """Whether a caller (the operator, or agent ``caller`` = ``fleet/agent-id``) may do ``action``
    to a session owned by ``owner`` and opened by ``opened_by`` (None: the operator opened it).
    An agent never reaches a session it neither owns nor opened."""
    if action is SessionAction.OWN:
        return not operator and caller is not None and caller == owner
    if operator:
        return True
    if caller is None:
        return False
    if action is SessionAction.TALK:
        return caller == opened_by
    return caller in (owner, opened_by)
