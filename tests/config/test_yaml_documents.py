"""Parsing YAML into plain documents: YAML 1.2 typing, positions, merge keys and limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from clawctl.config.diagnostics import Diagnostic, Location
from clawctl.config.sources import Source
from clawctl.config.yaml_documents import MAX_DEPTH, MAX_NODES, Document, parse_source


def parse(text: str | bytes) -> tuple[list[Document], list[Diagnostic]]:
    return parse_source(Source("f.yaml", text.encode() if isinstance(text, str) else text))


def one(text: str | bytes) -> Document:
    """The only document of ``text``; fails on any diagnostic."""
    documents, problems = parse(text)
    assert problems == []
    assert len(documents) == 1
    return documents[0]


def problem(text: str | bytes) -> tuple[str, str, str | None]:
    """(line:col, message, hint) of the only diagnostic of ``text``."""
    documents, problems = parse(text)
    assert documents == [] or len(problems) == 1
    assert len(problems) == 1, problems
    p = problems[0]
    return f"{p.location.line}:{p.location.column}", p.message, p.hint


@pytest.mark.parametrize("scalar,value", [
    ("true", True), ("false", False), ("TRUE", True), ("False", False),
    # YAML 1.1 booleans are plain strings in YAML 1.2
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("Yes", "Yes"), ("y", "y"),
    ("0o17", 15), ("0x1f", 31), ("010", 10), ("-2", -2), ("+3", 3), ("1_000", 1000),
    ("1e3", 1000.0), ("1.5", 1.5), (".5", 0.5),
    ("~", None), ("null", None), ("Null", None), ("", None),
    ("'1'", "1"), ('"true"', "true"), ("2001-12-14", "2001-12-14"), ("1.5_cores", "1.5_cores"),
])
def test_yaml_1_2_core_typing(scalar: str, value: Any) -> None:
    data = one(f"a: {scalar}\n").data
    assert data == {"a": value}
    assert type(data["a"]) is type(value)


@pytest.mark.parametrize("scalar", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_numbers_are_refused(scalar: str) -> None:
    assert problem(f"a: {scalar}\n") == ("1:4", f"{scalar} is not a usable number", "write a finite number")


@pytest.mark.parametrize("scalar", ["-_", "0o_", "+_"])
def test_integers_without_digits_are_refused_not_a_crash(scalar: str) -> None:
    assert problem(f"a: {scalar}\n") == ("1:4", f"{scalar} is not a usable number", "quote it if it is meant as text")


def test_documents_keep_their_index_and_empty_ones_are_skipped() -> None:
    documents, problems = parse("---\n---\nkind: Fleet\n---\n\n---\nkind: AgentPool\n")
    assert problems == []
    assert [(d.index, d.data) for d in documents] == [(1, {"kind": "Fleet"}), (3, {"kind": "AgentPool"})]
    assert [d.locate(["kind"]) for d in documents] == [Location("f.yaml", 3, 7), Location("f.yaml", 7, 7)]


TEXT = """\
apiVersion: clawctl/v1
kind: AgentPool
metadata:
  name: workers
spec:
  command:
    - python
    - -m
    - agent
  env: {A: "1", B: "2"}
"""


@pytest.mark.parametrize("path,key,position", [
    ([], False, (1, 1)),
    (["kind"], False, (2, 7)),
    (["kind"], True, (2, 1)),
    (["metadata", "name"], False, (4, 9)),
    (["metadata", "name"], True, (4, 3)),
    (["spec", "command"], False, (7, 5)),
    (["spec", "command", 2], False, (9, 7)),
    (["spec", "env", "B"], False, (10, 20)),
    (["spec", "env", "B"], True, (10, 17)),
    # paths going past the document stop at the deepest ancestor that exists
    (["spec", "replicas"], False, (6, 3)),
    (["spec", "command", 7], False, (7, 5)),
    (["spec", "command", "x"], False, (7, 5)),
    (["nope", "deeper"], False, (1, 1)),
])
def test_locate(path: list[object], key: bool, position: tuple[int, int]) -> None:
    location = one(TEXT).locate(path, key=key)
    assert (location.file, location.line, location.column) == ("f.yaml", *position)


def test_locate_in_a_later_document() -> None:
    documents, _ = parse("kind: Fleet\n---\n# comment\nkind: AgentPool\nspec:\n  replicas: 3\n")
    assert documents[1].locate(["spec", "replicas"]) == Location("f.yaml", 6, 13)


def test_positions_with_crlf_and_bom() -> None:
    document = one(b"\xef\xbb\xbfa: 1\r\nb:\r\n  c: [1, 2]\r\n")
    assert document.data == {"a": 1, "b": {"c": [1, 2]}}
    assert document.locate(["b", "c", 1]) == Location("f.yaml", 3, 10)


def test_positions_count_characters_not_bytes() -> None:
    document = one("name: 'Zürich'\nother: 'ü' \nx: [é, y]\n")
    assert document.locate(["x", 1]) == Location("f.yaml", 3, 8)


MERGE = """\
base: &base {x: 1, y: 2}
more: &more {y: 3, z: 4}
single:
  <<: *base
  y: 20
several:
  <<: [*base, *more]
  x: 10
"""


def test_merge_key_fills_missing_keys_own_keys_win() -> None:
    data = one(MERGE).data
    assert data["single"] == {"x": 1, "y": 20}
    assert data["several"] == {"x": 10, "y": 2, "z": 4}  # earlier merged mappings win over later ones


def test_locate_follows_merge_keys_to_the_anchor() -> None:
    document = one(MERGE)
    assert document.locate(["single", "x"]) == Location("f.yaml", 1, 17)
    assert document.locate(["single", "y"]) == Location("f.yaml", 5, 6)
    assert document.locate(["several", "z"], key=True) == Location("f.yaml", 2, 20)


def test_merge_in_a_real_config() -> None:
    document = one("x-defaults: &sessions {idleTimeout: 5m}\nspec:\n  sessions:\n    <<: *sessions\n    maxLifetime: 1h\n")
    assert document.data["spec"]["sessions"] == {"idleTimeout": "5m", "maxLifetime": "1h"}


def test_merge_of_a_scalar_is_an_error() -> None:
    assert problem("a: &a 1\nb:\n  <<: *a\n") == ("3:3", "'<<' merges only mappings",
                                                   "merge an anchored mapping: <<: *defaults")


def test_duplicate_key_names_the_first_line() -> None:
    assert problem("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n") == (
        "5:3", "duplicate key 'c' (first defined at line 3)", "remove one of them; YAML keeps only one value per key")


def test_same_key_in_different_mappings_is_fine() -> None:
    assert one("a: {name: x}\nb: {name: y}\n").data == {"a": {"name": "x"}, "b": {"name": "y"}}


@pytest.mark.parametrize("key", ["1", "true", "~", "1.5"])
def test_non_string_keys(key: str) -> None:
    assert problem(f"env:\n  {key}: x\n") == ("2:3", f"key {key} is not a string", f"quote the key: '{key}'")


def test_quoted_number_key_is_a_string() -> None:
    assert one("env:\n  '8080': x\n").data == {"env": {"8080": "x"}}


def test_a_problem_in_one_document_keeps_the_others() -> None:
    documents, problems = parse("kind: Fleet\n---\na: 1\na: 2\n---\nkind: AgentPool\n")
    assert [d.data for d in documents] == [{"kind": "Fleet"}, {"kind": "AgentPool"}]
    assert [(p.location.line, p.document) for p in problems] == [(4, 1)]


def test_a_syntax_error_drops_the_whole_file() -> None:
    documents, problems = parse("kind: Fleet\n---\nkind: [AgentPool\n")
    assert documents == []
    assert [p.code for p in problems] == ["yaml"]


def test_depth_limit_is_exact() -> None:
    def nested(levels: int) -> str:
        return "a: " + "[" * levels + "]" * levels + "\n"

    assert one(nested(MAX_DEPTH)).data["a"] is not None
    assert problem(nested(MAX_DEPTH + 1)) == (
        f"1:{4 + MAX_DEPTH}", f"document nests deeper than {MAX_DEPTH} levels",
        "a clawctl document nests a few levels deep; flatten it")


def test_value_limit_applies_to_plain_lists_too() -> None:
    fits = one("a: [" + ", ".join(["1"] * (MAX_NODES - 2)) + "]\n")
    assert len(fits.data["a"]) == MAX_NODES - 2
    where, message, _ = problem("a: [" + ", ".join(["1"] * MAX_NODES) + "]\n")
    assert (where, message) == ("1:1", f"document expands to more than {MAX_NODES} values")


def test_aliases_that_stay_small_are_fine() -> None:
    data = one("a: &a [1, 2]\nb: [*a, *a, *a]\n").data
    assert data == {"a": [1, 2], "b": [[1, 2], [1, 2], [1, 2]]}


def test_alias_bomb_points_at_the_key_that_expands() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    start = time.perf_counter()
    where, message, hint = problem("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 1.0
    assert (where, message) == ("5:1", f"document expands to more than {MAX_NODES} values")
    assert hint == "this looks like an alias bomb; write the values out instead of nesting aliases"


@pytest.mark.parametrize("text,where", [
    ("a: &a\n  b: *a\n", "2:3"),
    ("a: &a [1, *a]\n", "1:4"),
    ("a: &a\n  b:\n    - c: *a\n", "3:7"),
])
def test_recursive_aliases(text: str, where: str) -> None:
    assert problem(text) == (where, "recursive alias: this value contains itself",
                             "an alias (*name) cannot be used inside the anchored value (&name) it refers to")


@pytest.mark.parametrize("text,tag", [
    ("a: !!python/name:os.system x\n", "!!python/name:os.system"),
    ("a: !Ref x\n", "!Ref"),
    ("a: !!binary aGVsbG8=\n", "!!binary"),
    ("a: !!set {x, y}\n", "!!set"),
    ("a: !!omap [x: 1]\n", "!!omap"),
])
def test_tags_are_refused(text: str, tag: str) -> None:
    assert problem(text) == ("1:4", f"unsupported YAML tag {tag}", "remove the tag; clawctl reads plain YAML")


@pytest.mark.parametrize("text", ["a: !!str 1\n", "a: !!int '1'\n"])
def test_standard_tags_are_fine(text: str) -> None:
    assert list(one(text).data) == ["a"]


@pytest.mark.parametrize("text,where,message", [
    ("a: [1, 2\n", "2:1", "invalid YAML: did not find expected ',' or ']' in the '[' opened at line 1, column 4"),
    ("a: {x: 1 y: 2}\n", "1:11", "invalid YAML: did not find expected ',' or '}' in the '{' opened at line 1, column 4"),
    ("a: 'x\n", "2:1", "invalid YAML: the quoted string opened at line 1, column 4 is never closed"),
    ("a: *missing\n", "1:4", "invalid YAML: undefined alias '*missing'"),
    ("a:\n\tb: 1\n", "2:1", "tab character in indentation"),
    ("a: b: c\n", "1:5", "invalid YAML: mapping values are not allowed in this context"),
])
def test_syntax_errors(text: str, where: str, message: str) -> None:
    assert problem(text)[:2] == (where, message)
