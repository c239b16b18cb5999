"""Who may do what across pools, decided from CommunicationPolicy rules. Pure.

Default deny: a pool may act on another only where a rule whose ``from`` is
that pool (or ``*``) grants it. Rules are directional: A → B says nothing
about B → A. A pool gets no right over itself without a rule either.

The policy is a directed graph: an edge ``source --verb--> target`` exists when
some rule grants it. Five verbs (``Verb``): ``message`` (send direct messages to
a pool and open sessions in it: the rule's ``messages``, pool names or ``*``),
``publish`` and ``subscribe`` (event topics), ``read`` and ``write``
(shared-state keys). No verb implies another: sending does not imply reading.

Topics and keys are matched by globs (``glob_match``): ``*`` matches any run of
characters, separators (``.``, ``/``) included, ``?`` exactly one character,
every other character itself (``[`` and ``]`` too: there are no character
classes, and no escape character).

``may`` answers one question with the first rule that allows it (policies in
the order given, rules in file order, 1-based); ``access_matrix`` lists every
grant per source pool for display (``clawctl policy show``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from clawctl.config.model import CommunicationPolicy, CommunicationRule
from clawctl.protocol.globs import glob_covers, glob_match


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


class Verb(str, Enum):
    """What a source pool may be allowed to do, and to what."""

    MESSAGE = "message"      # a pool: send it direct messages, open sessions in it
    PUBLISH = "publish"      # an event topic
    SUBSCRIBE = "subscribe"  # an event topic pattern
    READ = "read"            # a shared-state key
    WRITE = "write"          # a shared-state key

    @property
    def phrase(self) -> str:
        """The verb as it reads in a sentence: ``pool A may <phrase> B``."""
        return "subscribe to" if self is Verb.SUBSCRIBE else self.value


VERB_SPELLINGS: dict[str, Verb] = {
    "message": Verb.MESSAGE,
    "open-session": Verb.MESSAGE,  # opening a session is the same right as messaging
    "publish": Verb.PUBLISH,
    "subscribe": Verb.SUBSCRIBE,
    "read": Verb.READ,
    "write": Verb.WRITE,
}
"""Every accepted spelling of a verb on the command line (``clawctl policy check``)."""


def parse_verb(text: str) -> Verb | None:
    """The verb ``text`` names (see ``VERB_SPELLINGS``), or None."""
    return VERB_SPELLINGS.get(text)


def _granted(rule: CommunicationRule, verb: Verb) -> tuple[str, ...]:
    if verb is Verb.MESSAGE:
        return rule.message_targets
    if verb is Verb.PUBLISH:
        return rule.publish
    if verb is Verb.SUBSCRIBE:
        return rule.subscribe
    if verb is Verb.READ:
        return rule.state_read
    return rule.state_write


@dataclass(frozen=True)
class Grant:
    """One edge of the policy graph: what a rule lets a source pool do."""

    target: str
    """A pool name (``message``), else the granted glob as written in the rule."""
    policy: str
    index: int
    """The rule's position in the policy, 1-based."""
    entry: str
    """The rule's entry that granted it: the glob, or for ``message`` the pool name or ``*``."""

    @property
    def rule(self) -> str:
        return f"policy {self.policy} rule {self.index}"


def _first_grant(policies: Sequence[CommunicationPolicy], source_pool: str, verb: Verb, target: str,
                 allows: Callable[[str, str], bool]) -> Grant | None:
    for policy in policies:
        for index, rule in enumerate(policy.rules, start=1):
            if not _matches(rule.source, source_pool):
                continue
            for entry in _granted(rule, verb):
                if allows(entry, target):
                    return Grant(target=target, policy=policy.name, index=index, entry=entry)
    return None


def first_grant(policies: Sequence[CommunicationPolicy], source_pool: str, verb: Verb, target: str) -> Grant | None:
    """The first rule (and its entry) that lets ``source_pool`` do ``verb`` to ``target``; None: denied.

    ``target`` is a pool for ``message`` (matched by name or ``*``), else a topic, topic pattern or
    key, allowed when a granted glob covers it (``glob_covers``)."""
    allows = _matches if verb is Verb.MESSAGE else glob_covers
    return _first_grant(policies, source_pool, verb, target, allows)


def _decision(grant: Grant | None) -> AccessDecision:
    return AccessDecision(True, grant.rule) if grant is not None else AccessDecision(False, None)


def may(policies: Sequence[CommunicationPolicy], source_pool: str, verb: Verb, target: str) -> AccessDecision:
    """Whether ``source_pool`` may do ``verb`` to ``target``, and the first rule that allows it.

    Default deny; directional; a rule ``from: '*'`` applies to every pool (itself included)."""
    return _decision(first_grant(policies, source_pool, verb, target))


def may_message(policies: Sequence[CommunicationPolicy], source_pool: str, target_pool: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may talk to ``target_pool``: send it messages and open
    sessions in it (the rule's ``messages`` list)."""
    return may(policies, source_pool, Verb.MESSAGE, target_pool)


def may_publish(policies: Sequence[CommunicationPolicy], source_pool: str, topic: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may publish events on ``topic``."""
    return may(policies, source_pool, Verb.PUBLISH, topic)


def may_subscribe(policies: Sequence[CommunicationPolicy], source_pool: str, pattern: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may subscribe with topic ``pattern``: allowed iff an allowed
    subscribe glob covers it (``glob_covers``). Check each delivered event with ``may_receive`` too."""
    return may(policies, source_pool, Verb.SUBSCRIBE, pattern)


def may_receive(policies: Sequence[CommunicationPolicy], source_pool: str, topic: str) -> AccessDecision:
    """Whether an event published on ``topic`` (a concrete name, taken literally) may be delivered to
    agents of ``source_pool``: some allowed subscribe glob matches it."""
    return _decision(_first_grant(policies, source_pool, Verb.SUBSCRIBE, topic, glob_match))


def may_read_state(policies: Sequence[CommunicationPolicy], source_pool: str, key: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may read shared-state ``key``."""
    return may(policies, source_pool, Verb.READ, key)


def may_write_state(policies: Sequence[CommunicationPolicy], source_pool: str, key: str) -> AccessDecision:
    """Whether agents of ``source_pool`` may write shared-state ``key`` (writing does not imply reading)."""
    return may(policies, source_pool, Verb.WRITE, key)


@dataclass(frozen=True)
class PoolAccess:
    """Every grant of one source pool, per verb, in rule order (plain data for display)."""

    pool: str
    message: tuple[Grant, ...] = ()
    publish: tuple[Grant, ...] = ()
    subscribe: tuple[Grant, ...] = ()
    read: tuple[Grant, ...] = ()
    write: tuple[Grant, ...] = ()

    def grants(self, verb: Verb) -> tuple[Grant, ...]:
        return tuple(getattr(self, verb.value))

    @property
    def empty(self) -> bool:
        return not any(self.grants(verb) for verb in Verb)


def _message_grants(policies: Sequence[CommunicationPolicy], source_pool: str, pools: Sequence[str]) -> tuple[Grant, ...]:
    named = [t for p in policies for r in p.rules if _matches(r.source, source_pool) for t in r.message_targets
             if t != "*" and t not in pools]
    grants = (first_grant(policies, source_pool, Verb.MESSAGE, target) for target in [*pools, *dict.fromkeys(named)])
    return tuple(g for g in grants if g is not None)


def _glob_grants(policies: Sequence[CommunicationPolicy], source_pool: str, verb: Verb) -> tuple[Grant, ...]:
    grants: list[Grant] = []
    for policy in policies:
        for index, rule in enumerate(policy.rules, start=1):
            if not _matches(rule.source, source_pool):
                continue
            for entry in _granted(rule, verb):
                if not any(glob_covers(g.target, entry) for g in grants):
                    grants.append(Grant(target=entry, policy=policy.name, index=index, entry=entry))
    return tuple(grants)


def access_matrix(policies: Sequence[CommunicationPolicy], pools: Sequence[str]) -> tuple[PoolAccess, ...]:
    """What each of ``pools`` may do, in the order given: the effective graph, for display.

    ``message``: one grant per pool it may message, ``*`` expanded against ``pools`` (the grant's
    ``entry`` says ``*``), plus pools a rule names that are not in ``pools``; the rule is the one
    ``may`` would report. Other verbs: the granted globs in rule order, leaving out a glob an
    earlier grant already covers. A pool without grants has only empty tuples (default deny)."""
    known = list(dict.fromkeys(pools))
    return tuple(
        PoolAccess(pool=pool, message=_message_grants(policies, pool, known),
                   publish=_glob_grants(policies, pool, Verb.PUBLISH),
                   subscribe=_glob_grants(policies, pool, Verb.SUBSCRIBE),
                   read=_glob_grants(policies, pool, Verb.READ),
                   write=_glob_grants(policies, pool, Verb.WRITE))
        for pool in known
    )


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
