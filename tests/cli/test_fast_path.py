"""The fast start path reads every argv it accepts exactly as the typer app does, leaves the
rest to typer, and imports neither typer nor ruamel.yaml for a valid config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import clawctl
from clawctl.cli import errors, validate
from clawctl.cli.fast_path import FORMATS, parse_validate, run_fast
from tests.builders import write_fleet

ACCEPTED = [
    [],
    ["a.yaml"],
    ["a.yaml", "b.yaml", "-"],
    ["--strict", "a.yaml"],
    ["a.yaml", "--strict", "--each", "b.yaml"],
    ["--strict", "--strict", "a.yaml"],
    ["--format", "json", "a.yaml"],
    ["--format=github", "a.yaml"],
    ["-o", "junit", "a.yaml"],
    ["-ojson", "a.yaml"],
    ["-o", "json", "--format", "text", "a.yaml"],
    ["-f", "a.yaml", "b.yaml"],
    ["-fa.yaml", "--filename", "b.yaml", "--filename=c.yaml", "d.yaml"],
    ["-f", "-", "a.yaml"],
    ["-f=a.yaml"],
    ["--", "-x.yaml", "--strict"],
    ["a.yaml", "--", "--format"],
    ["--format="],
]
"""Argument lists after ``validate`` that the fast path reads itself (or rejects, for the last)."""

LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["a.yaml", "--help"],
    ["--bogus", "a.yaml"],
    ["--format", "xml", "a.yaml"],
    ["--format", "JSON", "a.yaml"],
    ["--format"],
    ["-o"],
    ["-f"],
    ["-f", "--strict", "a.yaml"],
    ["--strict=1", "a.yaml"],
    ["-x", "a.yaml"],
    ["--each", "--form", "json", "a.yaml"],
]


def typer_reading(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the typer app passes to run_validate for ``validate *argv``."""
    seen: dict[str, Any] = {}

    def record(paths: list[str] | None, files: list[str] | None, **options: Any) -> int:
        seen.update(paths=list(paths or []), files=list(files or []), **options)
        return 0

    monkeypatch.setattr(validate, "run_validate", record)
    assert errors._run_app(["validate", *argv]) == 0
    return seen


@pytest.mark.parametrize("argv", ACCEPTED[:-1], ids=" ".join)
def test_accepted_forms_read_as_typer_reads_them(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_validate(argv)
    assert fast is not None
    assert typer_reading(argv, monkeypatch) == {
        "paths": fast.paths, "files": fast.files, "output_format": fast.output_format, "strict": fast.strict,
        "each": fast.each}


@pytest.mark.parametrize("argv", [*LEFT_TO_TYPER, ACCEPTED[-1]], ids=" ".join)
def test_everything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_validate(argv) is None


def test_other_commands_and_global_options_are_left_to_typer() -> None:
    for argv in ([], ["--help"], ["schema"], ["--version", "validate"], ["--home", "x", "validate", "a.yaml"],
                 ["status"]):
        assert run_fast(argv) is None


def test_formats_are_the_report_formats() -> None:
    assert FORMATS == {f.value for f in validate.ReportFormat}


def test_version_prints_what_typer_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_fast(["--version"]) == 0
    fast = capsys.readouterr().out
    assert errors._run_app(["--version"]) == 0
    assert capsys.readouterr().out == fast == f"clawctl {clawctl.__version__}\n"


def test_help_still_works_through_typer(capsys: pytest.CaptureFixture[str]) -> None:
    assert errors.run_guarded(["validate", "--help"]) == 0
    assert "--strict" in capsys.readouterr().out


PROBE = """
import sys
before = set(sys.modules)
from clawctl.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("CODE", exit.code)
    print("MODULES", " ".join(sorted(set(sys.modules) - before)))
"""


def modules_of(*argv: str) -> tuple[int, set[str]]:
    """Exit code and the modules one CLI run imports (beyond what the interpreter already had)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60,
                          check=False)
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("CODE", "MODULES")))
    return int(lines["CODE"]), set(lines["MODULES"].split())


def test_version_imports_almost_nothing() -> None:
    code, modules = modules_of("--version")
    assert code == 0
    assert {m for m in modules if m.startswith("clawctl")} == {
        "clawctl", "clawctl.cli", "clawctl.cli.main", "clawctl.cli.errors", "clawctl.cli.fast_path", "clawctl.errors"}
    assert not modules & {"typer", "click", "typing", "dataclasses", "re"}


def test_valid_config_needs_neither_typer_nor_ruamel(tmp_path: Path) -> None:
    code, modules = modules_of("validate", str(write_fleet(tmp_path)))
    assert code == 0
    assert not modules & {"typer", "click", "rich", "ruamel.yaml", "jsonschema", "multiprocessing", "pickle"}


def test_findings_load_ruamel_for_positions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: clawctl/v1\nkind: Fleet\nmetadata:\n  name: Bad\n")
    code, modules = modules_of("validate", str(bad))
    assert code == 1
    assert "ruamel.yaml" in modules and "typer" not in modules
