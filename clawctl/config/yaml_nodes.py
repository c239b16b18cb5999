"""The full YAML path: libyaml's composer, the node graph turned into plain data, positions.

ruamel.yaml's C composer builds the node graph; this module turns nodes into
plain JSON-like data itself, so that duplicate keys, alias bombs, unsupported
tags and non-string keys become diagnostics instead of surprises. It also
finds the line and column of a value when a finding needs one (``locate``).
Imported only when a text leaves the simple subset or a position is needed:
ruamel.yaml takes longer to import than a small config takes to validate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import implicit_resolvers
from ruamel.yaml.tag import Tag

try:
    from _ruamel_yaml import CParser
except ImportError:  # pragma: no cover - ruamel.yaml.clib is a declared dependency on CPython
    CParser = None

from clawctl.config.diagnostics import Diagnostic
from clawctl.config.yaml_documents import MAX_DEPTH, MAX_NODES, Document, diagnostic as _diag

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
_TAGS = {name: Tag(suffix=_TAG + name) for name in ("str", "int", "float", "bool", "null", "timestamp", "merge", "map", "seq")}
_STR, _MAP, _SEQ, _MERGE_TAG, _INT = _TAGS["str"], _TAGS["map"], _TAGS["seq"], _TAGS["merge"], _TAGS["int"]

# YAML 1.2 implicit typing, taken from ruamel.yaml's own table and indexed by first character.
_IMPLICIT: dict[str, list[tuple[Tag, Any]]] = {}
for _versions, _tag, _regexp, _firsts in implicit_resolvers:
    if (1, 2) in _versions and _tag.rsplit(":", 1)[1] in _TAGS:
        for _first in _firsts:
            _IMPLICIT.setdefault(_first, []).append((_TAGS[_tag.rsplit(":", 1)[1]], _regexp))


class _ParseProblem(Exception):
    def __init__(self, node: Node | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
        self.hint = hint


class _Composer(CParser):
    """libyaml's parser and composer (via ruamel.yaml.clib) with a resolver that only knows
    YAML 1.2 core types: ruamel's own versioned resolver costs more than the parsing."""

    def descend_resolver(self, *args: Any) -> None:
        pass

    def ascend_resolver(self, *args: Any) -> None:
        pass

    def resolve(self, kind: Any, value: str, implicit: tuple[bool, bool]) -> Tag:
        if kind is ScalarNode:
            if implicit[0]:
                known = _RESOLVED.get(value)
                if known is not None:
                    return known
                tag = _STR
                for candidate, regexp in _IMPLICIT.get(value[:1], ()):
                    if regexp.match(value):
                        tag = candidate
                        break
                if len(_RESOLVED) < 4096 and len(value) < 64:
                    _RESOLVED[value] = tag  # keys and short values repeat across thousands of files
                return tag
            return _STR
        return _MAP if kind is MappingNode else _SEQ


_RESOLVED: dict[str, Tag] = {}


@lru_cache(maxsize=32)
def _nodes_of(text: str) -> list[Node]:
    return _compose_all(text)


_SAFE_NESTING_BOUND = 2000
"""libyaml's composer recurses in C once per nesting level and overflows the C stack (a
segfault) somewhere past ~30,000 levels. Nesting needs a '[', '{', '-', '?' or a new line
per level, so a text with fewer of those than this bound is safe to compose directly."""


def _check_nesting(text: str) -> None:
    """Raise _TooDeep before composing a text that nests deeper than MAX_DEPTH, using
    libyaml's event parser (which keeps its stack on the heap); cheap for normal files."""
    bound = text.count("[") + text.count("{") + text.count("-") + text.count("?") + text.count("\n")
    if bound < _SAFE_NESTING_BOUND:
        return
    parser = _Composer(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH + 1:  # the builder counts the root collection as depth 0
                    raise _TooDeep(event.start_mark)
            elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                depth -= 1
    finally:
        parser.dispose()


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too deep")
        self.mark = mark


def _compose_all(text: str) -> list[Node]:
    _check_nesting(text)
    composer = _Composer(text)
    try:
        nodes = []
        while composer.check_node():
            nodes.append(composer.get_node())
        return nodes
    finally:
        composer.dispose()


def parse_text(name: str, text: str) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document of ``text`` with libyaml; problems come back as diagnostics,
    and a text with a syntax problem yields no documents at all."""
    try:
        nodes = _compose_all(text)
    except MarkedYAMLError as exc:
        return [], [_yaml_error(name, exc, text)]
    except ReaderError as exc:  # a control character
        raw = text.encode("utf-8")  # libyaml reports a byte offset into the UTF-8 text
        if not isinstance(exc.position, int) or not 0 <= exc.position <= len(raw):
            return [], [_diag(name, 0, 0, f"file is not valid YAML: {exc.reason}", None, "yaml")]
        before = raw[: exc.position].decode("utf-8", errors="ignore")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        return [], [_diag(name, line, col, f"control character {exc.character:#06x} is not allowed in YAML",
                          f"remove it, or write it as the escape \\x{exc.character:02x} inside double quotes", "yaml")]
    except YAMLError as exc:
        return [], [_diag(name, 0, 0, f"file is not valid YAML: {str(exc).splitlines()[0]}", None, "yaml")]
    except _TooDeep as exc:
        return [], [_diag(name, exc.mark.line + 1, exc.mark.column + 1, f"document nests deeper than {MAX_DEPTH} levels",
                          "a clawctl document nests a few levels deep; flatten it", "too-deep")]
    except RecursionError:
        return [], [_diag(name, 0, 0, f"file nests deeper than {MAX_DEPTH} levels", None, "too-deep")]
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    for index, node in enumerate(nodes):
        if isinstance(node, ScalarNode) and node.ctag is _TAGS["null"]:
            continue  # an empty document between '---' separators
        try:
            value = _Builder().build(node)
        except _ParseProblem as problem:
            mark = (problem.node or node).start_mark
            diags.append(_diag(name, mark.line + 1, mark.column + 1, problem.message, problem.hint, "yaml", index))
            continue
        docs.append(Document(name, index, value, text))
    return docs, diags


def locate(text: str, index: int, path: Sequence[object], *, key: bool = False) -> tuple[int, int]:
    """1-based (line, column) of the value at ``path`` in document ``index`` of ``text`` (of its
    key when ``key``), or of the deepest ancestor that exists when the path goes further."""
    node: Node = _nodes_of(text)[index]
    mark = node.start_mark
    for part in path:
        found = _child(node, part)
        if found is None:
            break
        key_node, node = found
        mark = key_node.start_mark if key and key_node is not None else node.start_mark
    return mark.line + 1, mark.column + 1


def _yaml_error(name: str, exc: MarkedYAMLError, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 0
    col = mark.column + 1 if mark else 0
    problem = (exc.problem or exc.context or "syntax error").strip()
    hint: str | None = None
    lines = text.splitlines()
    bad_line = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in bad_line and ("cannot start any token" in problem or "\t" in bad_line[: max(col, 1)]):
        tab_col = bad_line.index("\t") + 1
        return _diag(name, line, tab_col, "tab character in indentation", "YAML indents with spaces only; replace the tab", "tab")
    if "escape character" in problem:
        return _diag(name, line, col, f"invalid YAML: {problem} in a double-quoted string",
                     "in double quotes a backslash starts an escape such as \\n; "
                     "use single quotes, or write \\\\ for a backslash", "yaml")
    opened = _OPENERS.get(exc.context or "")
    if opened is not None and exc.context_mark is not None and exc.problem:
        what, closer = opened
        at = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        if closer == "the same quote":
            return _diag(name, line, col, f"invalid YAML: the {what} opened at {at} is never closed",
                         "close it with the same quote", "yaml")
        return _diag(name, line, col, f"invalid YAML: {problem} in the {what} opened at {at}",
                     f"close it with {closer}, and separate its items with ','", "yaml")
    if "undefined alias" in problem:
        alias = re.match(r"\*([^\s,\]}]+)", bad_line[col - 1:]) if col else None
        if alias:
            problem = f"undefined alias '*{alias.group(1)}'"
        hint = "define the anchor (&name) before using the alias (*name)"
    elif "mapping values are not allowed" in problem:
        hint = "a value containing ': ' must be quoted, or a key is mis-indented"
    elif "expected <block end>" in problem or "did not find expected" in problem:
        hint = "check the indentation of this line against the lines above"
    return _diag(name, line, col, f"invalid YAML: {problem}", hint, "yaml")


_OPENERS = {
    "while parsing a flow mapping": ("'{'", "'}'"),
    "while parsing a flow sequence": ("'['", "']'"),
    "while scanning a quoted scalar": ("quoted string", "the same quote"),
}
"""Parser contexts whose start mark is the bracket or quote that was never closed."""


def _child(node: Node, part: object) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
            elif isinstance(key_node, ScalarNode) and key_node.value == part:
                return key_node, value_node
        for source in merged:
            found = _child(source, part)
            if found is not None:
                return found
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


class _Builder:
    """Node graph → plain data, with limits; one instance per document."""

    def __init__(self) -> None:
        self.count = 0
        self.open: set[int] = set()  # ids of the collections being built, to catch recursive aliases
        self.built: set[int] = set()  # ids of the collections built so far: seeing one again is an alias
        self.expanding = 0  # > 0 while building a collection reached through an alias
        self.where: Node | None = None  # the last key written out in the text, not reached through an alias

    def build(self, node: Node, depth: int = 0, *, via: Node | None = None) -> Any:
        """Plain data of ``node``; ``via`` is the key or collection that refers to it (for positions)."""
        self.count += 1
        if self.count > MAX_NODES:
            raise _ParseProblem(self.where or node, f"document expands to more than {MAX_NODES} values",
                                "this looks like an alias bomb; write the values out instead of nesting aliases")
        if depth > MAX_DEPTH:
            raise _ParseProblem(node, f"document nests deeper than {MAX_DEPTH} levels",
                                "a clawctl document nests a few levels deep; flatten it")
        if isinstance(node, ScalarNode):
            return _scalar(node)
        ident = id(node)
        if ident in self.open:
            raise _ParseProblem(via or node, "recursive alias: this value contains itself",
                                "an alias (*name) cannot be used inside the anchored value (&name) it refers to")
        reused = ident in self.built
        if reused:
            self.expanding += 1
        elif not self.expanding and via is not None:
            self.where = via
        self.built.add(ident)
        self.open.add(ident)
        try:
            if isinstance(node, SequenceNode):
                _check_tag(node, "seq")
                items = node.value
                self.count += len(items)  # plain strings are taken inline below (the common case, and hot)
                return [item.value if item.ctag is _STR and type(item) is ScalarNode
                        else self._counted_build(item, depth + 1, node) for item in items]
            if isinstance(node, MappingNode):
                _check_tag(node, "map")
                return self._mapping(node, depth)
        finally:
            self.open.discard(ident)
            if reused:
                self.expanding -= 1
        raise _ParseProblem(node, "unsupported YAML node", None)

    def _counted_build(self, node: Node, depth: int, via: Node) -> Any:
        self.count -= 1  # already counted by the sequence
        return self.build(node, depth, via=via)

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[tuple[Node, Node]] = []  # (the '<<' key, a mapping to merge)
        for key_node, value_node in node.value:
            if key_node.ctag is _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                merges.extend((key_node, source) for source in sources)
                continue
            if not isinstance(key_node, ScalarNode) or (key_node.ctag is not _STR and key_node.tag != _TAG + "str"):
                if isinstance(key_node, ScalarNode):
                    raise _ParseProblem(key_node, f"key {key_node.value} is not a string",
                                        f"quote the key: '{key_node.value}'")
                raise _ParseProblem(key_node, "a list or mapping cannot be a key", "keys are plain words such as name")
            key = key_node.value
            if key in out:
                first = next(k for k, _ in node.value if isinstance(k, ScalarNode) and k.value == key)
                raise _ParseProblem(
                    key_node,
                    f"duplicate key '{key}' (first defined at line {first.start_mark.line + 1})",
                    "remove one of them; YAML keeps only one value per key",
                )
            if value_node.ctag is _STR and type(value_node) is ScalarNode:
                self.count += 1
                out[key] = value_node.value
            else:
                out[key] = self.build(value_node, depth + 1, via=key_node)
        for merge_key, source in merges:
            if not isinstance(source, MappingNode):
                raise _ParseProblem(merge_key, "'<<' merges only mappings", "merge an anchored mapping: <<: *defaults")
            for key, value in self._mapping(source, depth).items():
                out.setdefault(key, value)
        return out


def _check_tag(node: Node, kind: str) -> None:
    if node.ctag is not _TAGS[kind] and node.tag != _TAG + kind:
        raise _ParseProblem(node, f"unsupported YAML tag {_shown_tag(node.tag or '')}", "remove the tag; clawctl reads plain YAML")


def _shown_tag(tag: str) -> str:
    """A tag as it was written: 'tag:yaml.org,2002:python/object' → '!!python/object'."""
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    ctag = node.ctag
    if ctag is _STR:
        return value
    if ctag is _INT and value.isdigit():
        return int(value)
    tag = node.tag
    if tag == _TAG + "str":
        return value
    if tag == _TAG + "int":
        digits = value.replace("_", "")
        try:
            return int(digits, 0)
        except ValueError:
            pass
        try:
            return int(digits, 10)  # '010' is ten in YAML 1.2
        except ValueError:  # the int pattern also matches '-_' and '0o_', which hold no digits
            raise _ParseProblem(node, f"{value} is not a usable number", "quote it if it is meant as text") from None
    if tag == _TAG + "float":
        lowered = value.replace("_", "").lower()
        if lowered.endswith((".inf", ".nan")):
            raise _ParseProblem(node, f"{value} is not a usable number", "write a finite number")
        return float(lowered)
    if tag == _TAG + "bool":
        return value.lower() == "true"
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "timestamp":
        return value
    raise _ParseProblem(node, f"unsupported YAML tag {_shown_tag(tag or '')}", "remove the tag; clawctl reads plain YAML")
