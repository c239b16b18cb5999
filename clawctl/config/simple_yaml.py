"""The simple subset of YAML that config files are written in, parsed straight to plain data.

Nearly every config file is block mappings and sequences of one-line plain or
quoted scalars, one-line flow lists and mappings, and comments. ``parse_simple``
reads exactly that subset with no node objects and no libyaml, several times
faster than composing nodes, and returns None for anything else: anchors,
aliases, tags, merge keys, block and multi-line scalars, escapes, tabs,
non-ASCII text and every syntax error. The caller then takes the full libyaml
path (``yaml_documents``), which also explains problems and finds positions.

For every text it accepts the result equals the full path's: same documents,
same indices, same YAML 1.2 core typing (tests/config/test_simple_yaml.py
compares the two on a corpus and on thousands of mutated files).
"""

from __future__ import annotations

import re
from typing import Any

_OUTSIDE = re.compile(r"[^\n\x20-\x7e]")
"""Tabs, lone CRs, control characters and non-ASCII text: rules (line breaks, printable
characters, BOMs) that only the full parser implements."""

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-/]*):(?: +(.*))?$")
"""``key: rest`` (rest None for a bare ``key:``); rows are stripped, so the rest is too."""
_FLOW_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-/]*): +")
_FLOW_PLAIN = re.compile(r"[^\s,\[\]{}#:'\"&*!|>%@`?][^,\[\]{}#:'\"?]*")
"""A plain scalar inside [...] or {...}; libyaml ends one at '?' there, so none may hold one."""
_COMMENT_TAIL = re.compile(r"(?: +#.*)?")
_SPACES = re.compile(r" *")
_NOT_STR_KEYS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"})
"""Keys the key pattern admits that YAML 1.2 resolves to a boolean or null, not a string."""
_BLOCK_INDICATORS = frozenset(",[]{}#&*!|>'\"%@`")
_NOT_PLAIN_START = _BLOCK_INDICATORS | frozenset("-?:")
"""First characters of a value that is not simply a plain scalar (or may not be one)."""
_MAX_DEPTH = 40
"""Deeper documents take the full path, which enforces (and reports) the real limit."""
_MAX_VALUES = 20_000
"""Larger texts take the full path, which enforces (and reports) the real value limit."""

# YAML 1.2 core schema implicit typing, as ruamel.yaml's resolver defines it for
# version (1, 2) (a test pins these against ruamel's table), by first character.
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$", re.X)
_FLOAT = re.compile(r"""^(?:
         [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""", re.X)
_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_NULL = re.compile(r"""^(?: ~
        |null|Null|NULL
        | )$""", re.X)
_TIMESTAMP = re.compile(r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", re.X)
_MERGE = re.compile(r"^(?:<<)$", re.X)

TYPING_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("bool", _BOOL, "tTfF"),
    ("float", _FLOAT, "-+0123456789."),
    ("int", _INT, "-+0123456789"),
    ("merge", _MERGE, "<"),
    ("null", _NULL, "~nN"),
    ("timestamp", _TIMESTAMP, "0123456789"),
)
"""(tag, pattern, first characters), in ruamel.yaml's order: the first match wins."""

_RULES_BY_FIRST: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, _pattern, _firsts in TYPING_RULES:
    for _first in _firsts:
        _RULES_BY_FIRST.setdefault(_first, []).append((_tag, _pattern))


class _Unsupported(Exception):
    """The text leaves the simple subset: the full parser must read it."""


def parse_simple(text: str) -> list[tuple[int, Any]] | None:
    """``(index, data)`` of every non-empty document of ``text``, or None when the text is
    not entirely in the simple subset (then nothing about its validity is implied)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")  # Windows line ends are line ends to YAML too; a lone CR is not ours
    if _OUTSIDE.search(text):
        return None
    try:
        return _Parser().documents(text)
    except (_Unsupported, IndexError, ValueError):
        return None


def _split_documents(text: str) -> list[list[tuple[int, str]]]:
    """Each document's significant lines as (indent, content); comments and blank lines dropped."""
    documents: list[list[tuple[int, str]]] = []
    rows: list[tuple[int, str]] = []
    explicit = False
    for line in text.split("\n"):
        content = line.lstrip(" ")
        if not content or content[0] == "#":
            continue
        if content[0] in "-.%" and content.startswith(("---", "...", "%")):
            if line == "---" or (line.startswith("--- ") and line[4:].lstrip(" ")[:1] in ("", "#")):
                # An implicit first document without content is no document; an explicit one is (empty).
                if rows or explicit:
                    documents.append(rows)
                rows, explicit = [], True
                continue
            raise _Unsupported(content)  # document end, directive, or content after '---'
        rows.append((len(line) - len(content), content.rstrip(" ") if content[-1] == " " else content))
    if rows or explicit:
        documents.append(rows)
    return documents


class _Parser:
    """One text's documents; counts values across the whole text."""

    def __init__(self) -> None:
        self.values = 0

    def documents(self, text: str) -> list[tuple[int, Any]]:
        out = []
        for index, rows in enumerate(_split_documents(text)):
            if not rows:
                continue  # an empty document: the full path skips it too, keeping the index
            data, end = self._node(rows, 0, rows[0][0], 0)
            if end != len(rows):
                raise _Unsupported("content after the root collection")
            if self.values > _MAX_VALUES:
                raise _Unsupported("large")
            out.append((index, data))
        return out

    def _node(self, rows: list[tuple[int, str]], pos: int, indent: int, depth: int) -> tuple[Any, int]:
        """The block collection starting at ``rows[pos]`` (indented by ``indent``) and the row after it."""
        if depth > _MAX_DEPTH:
            raise _Unsupported("deep")
        content = rows[pos][1]
        if content[0] == "-" and (len(content) == 1 or content[1] == " "):
            return self._sequence(rows, pos, indent, depth)
        return self._mapping(rows, pos, indent, depth)

    def _nested(self, rows: list[tuple[int, str]], pos: int, indent: int, depth: int,
                *, same_indent_sequence: bool) -> tuple[Any, int]:
        """The value written on the rows after a bare ``key:`` or ``-``: a deeper collection,
        a sequence at the key's own indent (allowed after a key), or null."""
        if pos < len(rows):
            next_indent, content = rows[pos]
            if next_indent > indent:
                return self._node(rows, pos, next_indent, depth + 1)
            if same_indent_sequence and next_indent == indent and content[0] == "-" and (
                    len(content) == 1 or content[1] == " "):
                return self._sequence(rows, pos, indent, depth + 1)
        self.values += 1
        return None, pos

    def _sequence(self, rows: list[tuple[int, str]], pos: int, indent: int, depth: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        self.values += 1
        while pos < len(rows):
            row_indent, content = rows[pos]
            if row_indent < indent:
                break
            if row_indent > indent:
                raise _Unsupported("continuation or bad indentation")
            if content[0] != "-" or (len(content) > 1 and content[1] != " "):
                break  # not an item: the parent collection goes on (or rejects it)
            rest = content[1:].lstrip(" ")
            if not rest or rest[0] == "#":
                value, pos = self._nested(rows, pos + 1, indent, depth, same_indent_sequence=False)
            elif _KEY.match(rest) or (rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")):
                # "- key: value" or "- - item": a collection starting inside the item's line
                column = indent + len(content) - len(rest)
                rows[pos] = (column, rest)
                value, pos = self._node(rows, pos, column, depth + 1)
            else:
                value = self._inline(rest, depth)
                pos += 1
            items.append(value)
        return items, pos

    def _mapping(self, rows: list[tuple[int, str]], pos: int, indent: int, depth: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        end = len(rows)
        while pos < end:
            row_indent, content = rows[pos]
            if row_indent != indent:
                if row_indent < indent:
                    break
                raise _Unsupported("continuation or bad indentation")
            match = _KEY.match(content)
            if match is None:
                raise _Unsupported("not a simple key")
            key, rest = match.groups()
            if key in out or key in _NOT_STR_KEYS:
                raise _Unsupported("duplicate or non-string key")
            if rest is None or rest[0] == "#":
                out[key], pos = self._nested(rows, pos + 1, indent, depth, same_indent_sequence=True)
                continue
            if rest[0] in _NOT_PLAIN_START:
                out[key] = self._inline(rest, depth)
            else:  # a plain scalar, the common case: inline here, it is the hot loop
                if " #" in rest:
                    rest = rest[:rest.index(" #")].rstrip(" ")
                if ": " in rest or rest[-1] == ":":
                    raise _Unsupported("mapping value in a plain scalar")
                value = _TYPED.get(rest, _MISSING)
                out[key] = _typed(rest) if value is _MISSING else value
            pos += 1
        self.values += len(out) + 1
        return out, pos

    def _inline(self, text: str, depth: int) -> Any:
        """A value written on the rest of a line (``text`` is stripped and not a comment)."""
        first = text[0]
        if first == "[" or first == "{":
            value, end = self._flow(text, 0, depth + 1)
        elif first == "'" or first == '"':
            value, end = self._quoted(text, 0)
        else:
            if first in _BLOCK_INDICATORS or (first in "-?:" and (len(text) == 1 or text[1] == " ")):
                raise _Unsupported("indicator")
            cut = text.find(" #")
            if cut >= 0:
                text = text[:cut].rstrip(" ")
            if ": " in text or text.endswith(":"):
                raise _Unsupported("mapping value in a plain scalar")
            return self._plain(text)
        if end < len(text) and _COMMENT_TAIL.fullmatch(text, end) is None:
            raise _Unsupported("text after a quoted or flow value")
        return value

    def _flow(self, text: str, pos: int, depth: int) -> tuple[Any, int]:
        """A one-line flow sequence or mapping starting at ``text[pos]``; returns it and the
        position after its closing bracket."""
        if depth > _MAX_DEPTH:
            raise _Unsupported("deep")
        closing = "]" if text[pos] == "[" else "}"
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        self.values += 1
        pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]  # ' *' always matches
        if text[pos] == closing:
            return (items if closing == "]" else mapping), pos + 1
        while True:
            if closing == "}":
                key_match = _FLOW_KEY.match(text, pos)
                if key_match is None:
                    raise _Unsupported("flow key")
                key = key_match.group(1)
                if key in mapping or key in _NOT_STR_KEYS:
                    raise _Unsupported("duplicate or non-string key")
                pos = key_match.end()
            if text[pos] == "'" or text[pos] == '"':
                value, pos = self._quoted(text, pos)
            elif text[pos] == "[" or text[pos] == "{":
                value, pos = self._flow(text, pos, depth + 1)
            else:
                plain = _FLOW_PLAIN.match(text, pos)
                if plain is None:
                    raise _Unsupported("flow scalar")
                word = plain.group().rstrip(" ")
                if word[0] == "-" and (len(word) == 1 or word[1] == " "):
                    raise _Unsupported("indicator")
                value, pos = self._plain(word), plain.end()
            if closing == "}":
                mapping[key] = value
            else:
                items.append(value)
            pos = _SPACES.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos] == closing:
                return (items if closing == "]" else mapping), pos + 1
            if text[pos] != ",":
                raise _Unsupported("flow separator")
            pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
            if text[pos] == closing:
                raise _Unsupported("trailing comma")

    def _quoted(self, text: str, pos: int) -> tuple[str, int]:
        """A one-line quoted scalar starting at ``text[pos]``; returns it and the position after it."""
        self.values += 1
        if text[pos] == '"':
            end = text.index('"', pos + 1)
            body = text[pos + 1:end]
            if "\\" in body:
                raise _Unsupported("escape")
            return body, end + 1
        parts = []
        start = pos + 1
        while True:
            end = text.index("'", start)
            if text.startswith("''", end):
                parts.append(text[start:end + 1])  # '' is one quote
                start = end + 2
                continue
            parts.append(text[start:end])
            return "".join(parts), end + 1

    def _plain(self, text: str) -> Any:
        """A plain scalar with YAML 1.2 core typing."""
        self.values += 1
        value = _TYPED.get(text, _MISSING)
        return _typed(text) if value is _MISSING else value


_MISSING = object()
_TYPED: dict[str, Any] = {}


def _typed(text: str) -> Any:
    """The value of a plain scalar, converted as the full path converts it (and remembered)."""
    value = _convert(text)
    if len(_TYPED) < 4096 and len(text) < 64:
        _TYPED[text] = value  # keys and short values repeat across thousands of files
    return value


def _convert(text: str) -> Any:
    for tag, pattern in _RULES_BY_FIRST.get(text[:1], ()):
        if not pattern.match(text):
            continue
        if tag == "bool":
            return text.lower() == "true"
        if tag == "int":
            if text.isdigit():
                return int(text)
            digits = text.replace("_", "")
            try:
                return int(digits, 0)
            except ValueError:
                return int(digits, 10)  # '010' is ten in YAML 1.2; a ValueError here means "full path"
        if tag == "float":
            lowered = text.replace("_", "").lower()
            if lowered.endswith((".inf", ".nan")):
                raise _Unsupported("not finite")  # the full path reports it
            return float(lowered)
        if tag == "null":
            return None
        if tag == "timestamp":
            return text
        raise _Unsupported(tag)  # merge
    return text
