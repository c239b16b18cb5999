"""Parse YAML bytes into plain documents that remember where each value came from.

ruamel.yaml's C composer builds the node graph; this module turns nodes into
plain JSON-like data itself, so that duplicate keys, alias bombs, unsupported
tags and non-string keys become diagnostics instead of surprises, and so that
positions are looked up lazily (only when something needs reporting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from clawctl.config.diagnostics import Diagnostic, Location
from clawctl.config.sources import MAX_FILE_BYTES, Source

MAX_NODES = 50_000
"""Values per document after alias expansion; far above any real fleet, far below a "billion laughs"."""
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"


@dataclass(frozen=True)
class Document:
    """One YAML document: its plain data and a way back to line/column."""

    file: str
    index: int
    data: Any
    root: Node

    def locate(self, path: tuple[object, ...] | list[object], *, key: bool = False) -> Location:
        """Position of the value at ``path`` (of its key when ``key``), or of the deepest
        ancestor that exists when the path goes further than the document."""
        node: Node = self.root
        mark = node.start_mark
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            mark = key_node.start_mark if key and key_node is not None else node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)


class _ParseProblem(Exception):
    def __init__(self, node: Node | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
        self.hint = hint


_YAML: YAML | None = None


def parse_source(source: Source) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document of ``source``. Never raises for bad input: problems come back
    as diagnostics, and a file with a problem yields no documents at all."""
    global _YAML
    name = source.name
    if source.oversized:
        return [], [_diag(name, 0, 0, f"file is larger than {MAX_FILE_BYTES // 1024} KiB",
                          "split the fleet into several files; a config file is normally a few KiB", "too-large")]
    data = source.data
    if b"\x00" in data[:8192]:
        return [], [_diag(name, 0, 0, "file is binary, not YAML text", "config files must be UTF-8 text", "binary")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return [], [_diag(name, line, col, f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                          "save the file as UTF-8", "encoding")]
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        return [], [_diag(name, 0, 0, "file is empty: it holds no YAML document",
                          "add a document with apiVersion: clawctl/v1 and a kind, or delete the file", "empty")]
    if _YAML is None:
        _YAML = YAML(typ="safe", pure=False)
    try:
        nodes = [n for n in _YAML.compose_all(text) if n is not None]
    except MarkedYAMLError as exc:
        return [], [_yaml_error(name, exc, text)]
    except YAMLError as exc:  # ReaderError (control characters) and friends
        return [], [_diag(name, 0, 0, f"file is not valid YAML: {str(exc).splitlines()[0]}", None, "yaml")]
    except RecursionError:
        return [], [_diag(name, 0, 0, f"file nests deeper than {MAX_DEPTH} levels", None, "too-deep")]
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    for index, node in enumerate(nodes):
        if isinstance(node, ScalarNode) and node.tag == _TAG + "null":
            continue  # an empty document between '---' separators
        try:
            value = _Builder().build(node)
        except _ParseProblem as problem:
            mark = (problem.node or node).start_mark
            diags.append(_diag(name, mark.line + 1, mark.column + 1, problem.message, problem.hint, "yaml", index))
            continue
        docs.append(Document(name, index, value, node))
    if not docs and not diags:
        diags.append(_diag(name, 0, 0, "file is empty: it holds no YAML document",
                           "add a document with apiVersion: clawctl/v1 and a kind, or delete the file", "empty"))
    return docs, diags


def _diag(file: str, line: int, col: int, message: str, hint: str | None, code: str, document: int = 0) -> Diagnostic:
    return Diagnostic(Location(file, line, col), message, code=code, hint=hint, document=document)


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
    if "undefined alias" in problem:
        hint = "define the anchor (&name) before using the alias (*name)"
    elif "mapping values are not allowed" in problem:
        hint = "a value containing ': ' must be quoted, or a key is mis-indented"
    elif "expected <block end>" in problem or "did not find expected" in problem:
        hint = "check the indentation of this line against the lines above"
    return _diag(name, line, col, f"invalid YAML: {problem}", hint, "yaml")


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

    def build(self, node: Node, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _ParseProblem(node, f"document expands to more than {MAX_NODES} values",
                                "this looks like an alias bomb; write the values out instead of nesting aliases")
        if depth > MAX_DEPTH:
            raise _ParseProblem(node, f"document nests deeper than {MAX_DEPTH} levels", None)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            _check_tag(node, "seq")
            return [self.build(item, depth + 1) for item in node.value]
        if isinstance(node, MappingNode):
            _check_tag(node, "map")
            return self._mapping(node, depth)
        raise _ParseProblem(node, "unsupported YAML node", None)

    def _mapping(self, node: MappingNode, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _TAG + "str":
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                raise _ParseProblem(key_node, f"key {shown!s} is not a string", "quote the key")
            key = key_node.value
            if key in out:
                first = next(k for k, _ in node.value if isinstance(k, ScalarNode) and k.value == key)
                raise _ParseProblem(
                    key_node,
                    f"duplicate key '{key}' (first defined at line {first.start_mark.line + 1})",
                    "remove one of them; YAML keeps only one value per key",
                )
            out[key] = self.build(value_node, depth + 1)
        for source in merges:
            if not isinstance(source, MappingNode):
                raise _ParseProblem(source, "'<<' merges only mappings", "merge an anchored mapping: <<: *defaults")
            for key, value in self._mapping(source, depth).items():
                out.setdefault(key, value)
        return out


def _check_tag(node: Node, kind: str) -> None:
    if node.tag != _TAG + kind:
        raise _ParseProblem(node, f"unsupported YAML tag {node.tag}", "remove the tag; clawctl reads plain YAML")


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    value: str = node.value
    if tag == _TAG + "str":
        return value
    if tag == _TAG + "int":
        digits = value.replace("_", "")
        try:
            return int(digits, 0)
        except ValueError:
            return int(digits, 10)
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
    raise _ParseProblem(node, f"unsupported YAML tag {tag}", "remove the tag; clawctl reads plain YAML")
