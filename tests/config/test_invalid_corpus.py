"""The invalid-config corpus: every file under tests/fixtures/invalid/ states, in its
header, every diagnostic it must produce, exactly.

Header format (one pair per diagnostic, in file:line:col order)::

    # expect: LINE:COL SEVERITY MESSAGE
    # hint: HINT            (or "# hint: none")

``{file}`` in a message stands for the path the file was loaded as. Line 0
means "the file as a whole". The test compares against *all* diagnostics, so
an unexpected extra one fails as surely as a missing one.

Cases that cannot be committed as text (empty, binary, oversized, several
files) are generated into tmp_path below.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import pytest

from clawctl.config.loader import LoadResult, load_paths
from clawctl.config.semantics import HostFacts
from tests.builders import fleet_doc, pool_doc, to_yaml, write_text

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "invalid"
HOST = HostFacts(memory_bytes=8 * 1024**3, cpu_millis=4000)
"""A small, fixed host so quota warnings do not depend on the machine running the tests."""


class Expected(NamedTuple):
    line: int
    column: int
    severity: str
    message: str
    hint: str | None


def parse_expectations(path: Path) -> list[Expected]:
    """The ``# expect:`` / ``# hint:`` pairs from the leading comment block of ``path``."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    out: list[Expected] = []
    pending: tuple[int, int, str, str] | None = None
    for raw in text.splitlines():
        if not raw.startswith("#"):
            break
        if raw.startswith("# expect: "):
            assert pending is None, f"{path.name}: '# expect:' without its '# hint:' line"
            position, severity, message = raw[len("# expect: "):].split(" ", 2)
            line, column = position.split(":")
            pending = (int(line), int(column), severity, message)
        elif raw.startswith("# hint: "):
            assert pending is not None, f"{path.name}: '# hint:' without an '# expect:' line before it"
            hint = raw[len("# hint: "):]
            out.append(Expected(*pending, None if hint == "none" else hint))
            pending = None
    assert pending is None, f"{path.name}: the last '# expect:' has no '# hint:' line"
    return out


def actual(result: LoadResult, file: str) -> list[Expected]:
    """The diagnostics of ``result`` in the same shape, with the file name folded into ``{file}``."""
    return [
        Expected(d.location.line, d.location.column, d.severity.value, d.message.replace(file, "{file}"), d.hint)
        for d in result.diagnostics
    ]


CASES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_invalid_config(path: Path) -> None:
    expected = parse_expectations(path)
    assert expected, f"{path.name} states no expected diagnostic"
    result = load_paths([str(path)], host=HOST)
    assert actual(result, str(path)) == expected
    assert {d.location.file for d in result.diagnostics} == {str(path)}
    if any(e.severity == "error" for e in expected):
        assert not result.ok and result.fleet is None


def test_alias_bomb_is_refused_fast() -> None:
    """A billion-laughs document must not be expanded: refused in well under a second."""
    start = time.perf_counter()
    result = load_paths([str(CORPUS / "yaml-alias-bomb.yaml")], host=HOST)
    assert time.perf_counter() - start < 1.0
    assert [d.code for d in result.diagnostics] == ["yaml"]


def test_deeper_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    """Twenty levels of ten aliases each (10**20 values) still stop at the value limit."""
    lines = ["apiVersion: clawctl/v1", "kind: Fleet", "metadata:", "  name: demo", "  labels:",
             "    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 20)]
    path = write_text(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    start = time.perf_counter()
    result = load_paths([str(path)], host=HOST)
    assert time.perf_counter() - start < 1.0
    assert [(d.location.line, d.message) for d in result.diagnostics] == [
        (10, "document expands to more than 50000 values")]


# Cases built in tmp_path: (file name, content, [(line, column, severity, message, hint)]).
EMPTY_HINT = "add a document with apiVersion: clawctl/v1 and a kind, or delete the file"
DEEP_HINT = "a clawctl document nests a few levels deep; flatten it"
GENERATED = [
    ("empty.yaml", b"", [Expected(0, 0, "error", "file is empty: it holds no YAML document", EMPTY_HINT)]),
    ("blank.yaml", b"\n   \n\n", [Expected(0, 0, "error", "file is empty: it holds no YAML document", EMPTY_HINT)]),
    ("separators.yaml", b"---\n---\n...\n",
     [Expected(0, 0, "error", "file is empty: it holds no YAML document", EMPTY_HINT)]),
    ("binary.yaml", bytes(range(256)) * 4,
     [Expected(0, 0, "error", "file is binary, not YAML text", "config files must be UTF-8 text")]),
    ("nul-after-text.yaml", b"apiVersion: clawctl/v1\nkind: Fleet\n\x00\x00\x00",
     [Expected(0, 0, "error", "file is binary, not YAML text", "config files must be UTF-8 text")]),
    ("utf16.yaml", "apiVersion: clawctl/v1\n".encode("utf-16"),
     [Expected(0, 0, "error", "file is binary, not YAML text", "config files must be UTF-8 text")]),
    # Deep nesting: below and far above the depth where libyaml's composer would crash.
    ("deep-flow.yaml", b"a: " + b"[" * 100 + b"]" * 100,
     [Expected(1, 68, "error", "document nests deeper than 64 levels", DEEP_HINT)]),
    ("very-deep-flow.yaml", b"a: " + b"[" * 300_000 + b"]" * 300_000,
     [Expected(1, 68, "error", "document nests deeper than 64 levels", DEEP_HINT)]),
    ("very-deep-block.yaml", b"- " * 400_000 + b"x\n",
     [Expected(1, 131, "error", "document nests deeper than 64 levels", DEEP_HINT)]),
    ("oversized.yaml", b"# padding\n" * (110 * 1024),
     [Expected(0, 0, "error", "file is larger than 1024 KiB",
               "split the fleet into several files; a config file is normally a few KiB")]),
]


@pytest.mark.parametrize("name,content,expected", GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_invalid_file(tmp_path: Path, name: str, content: bytes, expected: list[Expected]) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = load_paths([str(path)], host=HOST)
    assert actual(result, str(path)) == expected


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    """Editors on Windows may write a byte-order mark; it is not an error."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + to_yaml([fleet_doc("demo")]).encode())
    result = load_paths([str(path)], host=HOST)
    assert result.diagnostics == ()
    assert result.fleet is not None and result.fleet.name == "demo"


def test_duplicate_pool_across_files_names_both_places(tmp_path: Path) -> None:
    first = write_text(tmp_path / "set" / "a.yaml", to_yaml([fleet_doc("demo"), pool_doc("workers")]))
    second = write_text(tmp_path / "set" / "b.yaml", "# the same pool again\n" + to_yaml([pool_doc("workers")]))
    result = load_paths([str(tmp_path / "set")], host=HOST)
    assert [(str(d.location), d.message, d.hint) for d in result.diagnostics] == [
        (f"{second}:5:9", f"duplicate AgentPool name 'workers' (first defined at {first}:9:9)",
         "names must be unique within a fleet; rename one"),
    ]


def test_no_fleet_in_a_directory_points_at_its_first_file(tmp_path: Path) -> None:
    write_text(tmp_path / "set" / "b.yaml", to_yaml([pool_doc("beta")]))
    write_text(tmp_path / "set" / "a.yaml", to_yaml([pool_doc("alpha")]))
    result = load_paths([str(tmp_path / "set")], host=HOST)
    assert [(str(d.location), d.message) for d in result.diagnostics] == [
        (str(tmp_path / "set" / "a.yaml"), "no Fleet document in this config set")]


def test_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    """Every file of a set is checked, not only up to the first bad one."""
    good = write_text(tmp_path / "set" / "fleet.yaml", to_yaml([fleet_doc("demo")]))
    bad1 = write_text(tmp_path / "set" / "one.yaml", to_yaml([pool_doc("one", replicas=-1)]))
    bad2 = write_text(tmp_path / "set" / "two.yaml", to_yaml([pool_doc("Two")]))
    result = load_paths([str(tmp_path / "set")], host=HOST)
    assert [(d.location.file, d.message) for d in result.diagnostics] == [
        (str(bad1), "replicas must be at least 0, not -1"),
        (str(bad2), "'Two' is not a valid name"),
    ]
    assert result.files == (str(good), str(bad1), str(bad2))
