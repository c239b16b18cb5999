"""Parse ``kind/NAME`` targets (``agent/support-3``, ``pool/web``, ``fleet/prod``)."""

from __future__ import annotations

from clawctl.errors import UsageError

KINDS = ("fleet", "pool", "agent")


def parse_target(text: str, *, allowed: tuple[str, ...] = KINDS) -> tuple[str, str]:
    """``("agent", "support-3")`` from ``agent/support-3``; the name may itself hold a '/'
    (``agent/FLEET/ID``) to pick an agent of one fleet. Raises UsageError otherwise."""
    kind, sep, name = text.partition("/")
    if not sep or kind not in allowed or not name:
        raise UsageError(f"'{text}' is not a target", hint="write " + " or ".join(f"{k}/NAME" for k in allowed))
    return kind, name
