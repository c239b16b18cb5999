"""Glob patterns over topics and shared-state keys, as CommunicationPolicy and subscriptions use them.

``*`` matches any run of characters (``.`` and ``/`` included, also none), ``?`` exactly one
character, anything else itself (``[`` too: there are no character classes). Standard library
only: the daemon's policy checks and the agent SDK's local dispatch share this one matcher.
"""

from __future__ import annotations

from collections.abc import Callable


def _wildcard_match(pattern: str, text: str, any_char: Callable[[str], bool]) -> bool:
    """Whether glob ``pattern`` matches all of ``text``; ``?`` matches a character where ``any_char`` says so.

    Greedy with backtracking to the last ``*`` only: O(len(pattern) * len(text)) at worst, never exponential.
    """
    p = t = 0
    star = -1      # index of the last '*' seen in pattern
    resume = 0     # where in text that '*' currently stops
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and (any_char(text[t]) if pattern[p] == "?" else pattern[p] == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches the concrete name ``text`` (a topic or key taken literally).

    ``*`` matches any run of characters (``.`` and ``/`` included, also none), ``?`` exactly one
    character, anything else itself: ``[1]`` is the three characters ``[``, ``1``, ``]``."""
    return _wildcard_match(pattern, text, lambda _char: True)


def glob_covers(pattern: str, requested: str) -> bool:
    """Whether ``pattern`` matches every name the glob ``requested`` can match.

    ``requested`` is matched as text, except that its ``*`` can only fall under a ``*`` of
    ``pattern`` and its ``?`` under a ``?`` or ``*``: ``production.*`` covers ``production.*``
    and ``production.line?.*``, not ``*``; ``a?c`` does not cover ``a*c``. Sound (never grants
    more than ``pattern`` does); for a ``requested`` without wildcards it is ``glob_match``."""
    return _wildcard_match(pattern, requested, lambda char: char != "*")
