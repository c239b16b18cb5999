"""Parse YAML bytes into plain documents that remember where each value came from.

Two parsers give the same documents: ``simple_yaml`` reads the simple subset
that config files are written in (fast, no node objects), and ``yaml_nodes``
(libyaml) reads everything else and turns every problem into a diagnostic.
Positions are looked up lazily, from the text, only when something needs
reporting: most documents are valid and never need one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clawctl.config.diagnostics import Diagnostic, Location
from clawctl.config.simple_yaml import parse_simple
from clawctl.config.sources import MAX_FILE_BYTES, Source

MAX_NODES = 50_000
"""Values per document after alias expansion; far above any real fleet, far below a "billion laughs"."""
MAX_DEPTH = 64


@dataclass(frozen=True)
class Document:
    """One YAML document: its plain data and a way back to line/column.

    Positions are found again from ``text`` when asked for: most documents are
    valid and never need one, and plain data is cheap to pass between processes.
    """

    file: str
    index: int
    data: Any
    text: str = field(repr=False, compare=False)

    def locate(self, path: Sequence[object], *, key: bool = False) -> Location:
        """Position of the value at ``path`` (of its key when ``key``), or of the deepest
        ancestor that exists when the path goes further than the document."""
        from clawctl.config.yaml_nodes import locate

        line, column = locate(self.text, self.index, path, key=key)
        return Location(self.file, line, column)


def parse_source(source: Source) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document of ``source``. Never raises for bad input: problems come back
    as diagnostics, and a file with a problem yields no documents at all."""
    name = source.name
    if source.oversized:
        return [], [diagnostic(name, 0, 0, f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
                               "split the fleet into several files; a config file is normally a few KiB", "too-large")]
    data = source.data
    if b"\x00" in data[:8192]:
        return [], [diagnostic(name, 0, 0, "file is binary, not YAML text", "config files must be UTF-8 text", "binary")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return [], [diagnostic(name, line, col, f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                               "save the file as UTF-8", "encoding")]
    simple = parse_simple(text)
    if not simple and (not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#")
                                                for ln in text.splitlines())):
        return [], [_empty(name)]  # (a text the simple parser read documents from is never empty)
    if simple is not None:
        docs = [Document(name, index, value, text) for index, value in simple]
        diags: list[Diagnostic] = []
    else:
        from clawctl.config.yaml_nodes import parse_text

        docs, diags = parse_text(name, text)
    if not docs and not diags:
        diags.append(_empty(name))
    return docs, diags


def _empty(name: str) -> Diagnostic:
    return diagnostic(name, 0, 0, "file is empty: it holds no YAML document",
                      "add a document with apiVersion: clawctl/v1 and a kind, or delete the file", "empty")


def diagnostic(file: str, line: int, col: int, message: str, hint: str | None, code: str,
               document: int = 0) -> Diagnostic:
    """A parse diagnostic at ``file:line:col`` (line 0: the file as a whole)."""
    return Diagnostic(Location(file, line, col), message, code=code, hint=hint, document=document)
