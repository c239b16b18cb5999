"""Terminal styling: colors only on a terminal, never in pipes or with NO_COLOR set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TextIO


def use_color(stream: TextIO | object) -> bool:
    """True when ``stream`` is a terminal and NO_COLOR is not set."""
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def arrow(stream: TextIO | object) -> str:
    """'→' when the stream can encode it, else '->'."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "→".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


@dataclass(frozen=True)
class Palette:
    """ANSI sequences, or empty strings when color is off."""

    red: str = ""
    green: str = ""
    yellow: str = ""
    dim: str = ""
    bold: str = ""
    reset: str = ""


PLAIN = Palette()
COLOR = Palette("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m")


def palette(enabled: bool) -> Palette:
    return COLOR if enabled else PLAIN
