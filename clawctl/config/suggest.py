""""Did you mean …" for keys and enum values."""

from __future__ import annotations

import re
from collections.abc import Iterable


def _normal(word: str) -> str:
    return re.sub(r"[^a-z0-9]", "", word.lower())


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice the user most likely meant: same letters ignoring case and separators
    (on_demand → on-demand, idle_timeout → idleTimeout), else the nearest by edit similarity."""
    options = list(choices)
    normal = _normal(word)
    for choice in options:
        if _normal(choice) == normal:
            return choice
    import difflib  # here: only a finding needs it, and validate's start-up is measured

    by_normal = {_normal(c): c for c in options}
    match = difflib.get_close_matches(normal, list(by_normal), n=1, cutoff=0.7)
    return by_normal[match[0]] if match else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint sentence, or None when nothing is close."""
    options = list(choices)
    best = closest(word, options)
    if best is not None:
        return f"did you mean '{best}'?"
    return None


def dns_label(text: str) -> str:
    """The nearest valid name: accents dropped, lowercase, runs of other characters turned into '-'."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    label = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if label and not label[0].isalpha():
        label = "x-" + label
    return label[:40].rstrip("-")
