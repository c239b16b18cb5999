"""``clawctl validate`` end to end: exit codes, every output format, path handling, crash
handling and a light import footprint. Runs the real CLI in-process through
``run_guarded`` (and a few times as a real subprocess)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from clawctl.cli.errors import run_guarded
from tests.builders import fleet_doc, fleet_yaml, pool_doc, to_yaml, write_fleet, write_text

BAD_POOL = """\
apiVersion: clawctl/v1
kind: Fleet
metadata:
  name: demo
---
apiVersion: clawctl/v1
kind: AgentPool
metadata:
  name: workers
spec:
  command: [python, -m, agent]
  replica: 2
  sessions:
    creation: on_demand
"""
"""Two errors: line 12 (unknown key) and line 14 (enum)."""

WARNING_ONLY = to_yaml([fleet_doc("demo"), pool_doc("workers", replicas=2, failover={"standbys": 1})])
"""Valid, with one warning: standbys without the hot-standby strategy."""

HEAVY = ("sqlalchemy", "apscheduler", "alembic", "jsonschema", "rich", "psutil")


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests running inside GitHub Actions must not write to the real step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run clawctl in-process; return (exit code, stdout, stderr)."""
    code = run_guarded(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write_fleet(tmp_path / "valid", 2)


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    return write_text(tmp_path / "invalid" / "fleet.yaml", BAD_POOL)


@pytest.fixture
def warning_only(tmp_path: Path) -> Path:
    return write_text(tmp_path / "warn" / "fleet.yaml", WARNING_ONLY)


# --- exit codes and text output -------------------------------------------------------------

def test_valid_config_exits_0(capsys: pytest.CaptureFixture[str], valid: Path) -> None:
    code, out, err = run(capsys, "validate", str(valid))
    assert (code, err) == (0, "")
    assert out == "valid: 1 file, 4 documents; fleet demo\n"


def test_invalid_config_exits_1_with_every_error(capsys: pytest.CaptureFixture[str], invalid: Path) -> None:
    code, out, err = run(capsys, "validate", str(invalid))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{invalid}:12:3: error: unknown key 'replica' in spec [spec.replica]",
        "  hint: did you mean 'replicas'?",
        f"{invalid}:14:15: error: the string 'on_demand' is not a valid session creation; "
        "expected one of: on-demand, eager [spec.sessions.creation]",
        "  hint: did you mean 'on-demand'?",
        "invalid: 2 errors, 0 warnings in 1 file (2 documents)",
    ]


def test_warnings_alone_pass_but_fail_with_strict(capsys: pytest.CaptureFixture[str], warning_only: Path) -> None:
    code, out, _ = run(capsys, "validate", str(warning_only))
    assert code == 0
    assert out.splitlines()[0] == (f"{warning_only}:16:15: warning: standbys are only used by the hot-standby "
                                   "strategy, not restart [spec.failover.standbys]")
    assert out.splitlines()[-1] == "valid: 1 file, 2 documents; fleet demo, 1 warning"

    code, out, _ = run(capsys, "validate", "--strict", str(warning_only))
    assert code == 1
    assert out.splitlines()[0].startswith(f"{warning_only}:16:15: error: standbys are only used")
    assert out.splitlines()[-1] == "invalid: 1 error, 0 warnings in 1 file (2 documents)"


@pytest.mark.parametrize("argv,lines", [
    (["validate"], ["error: no config path given", "hint: name files or directories, e.g. clawctl validate fleet/"]),
    (["validate", "does-not-exist.yaml"], ["error: does-not-exist.yaml does not exist",
                                           "hint: check the path; use '-' to read from standard input"]),
    (["validate", "-", "-"], ["error: '-' (standard input) can be given only once"]),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], lines: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.splitlines() == lines


def test_directory_without_yaml_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_text(tmp_path / "empty-dir" / "notes.txt", "not a config\n")
    code, _, err = run(capsys, "validate", str(tmp_path / "empty-dir"))
    assert code == 2
    assert err.splitlines()[0] == f"error: directory {tmp_path / 'empty-dir'} holds no .yaml or .yml files"


@pytest.mark.parametrize("argv", [["validate", "--format", "xml", "x.yaml"], ["validate", "--bogus", "x.yaml"]])
def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err
    assert err.strip()


# --- JSON ------------------------------------------------------------------------------------

DIAGNOSTIC_KEYS = {"file", "line", "column", "severity", "code", "message", "path", "hint", "document"}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "validate", "--format", "json", *argv)
    assert err == ""
    return code, json.loads(out)


def test_json_for_an_invalid_config(capsys: pytest.CaptureFixture[str], invalid: Path) -> None:
    code, report = run_json(capsys, str(invalid))
    assert code == 1
    assert report == {
        "version": 1,
        "valid": False,
        "summary": {"files": 1, "documents": 2, "errors": 2, "warnings": 0},
        "fleets": [],
        "diagnostics": [
            {"file": str(invalid), "line": 12, "column": 3, "severity": "error", "code": "unknown-key",
             "message": "unknown key 'replica' in spec", "path": "spec.replica",
             "hint": "did you mean 'replicas'?", "document": 1},
            {"file": str(invalid), "line": 14, "column": 15, "severity": "error", "code": "bad-value",
             "message": "the string 'on_demand' is not a valid session creation; expected one of: on-demand, eager",
             "path": "spec.sessions.creation", "hint": "did you mean 'on-demand'?", "document": 1},
        ],
    }


def test_json_for_a_valid_config(capsys: pytest.CaptureFixture[str], valid: Path) -> None:
    code, report = run_json(capsys, str(valid))
    assert code == 0
    assert report == {"version": 1, "valid": True, "summary": {"files": 1, "documents": 4, "errors": 0, "warnings": 0},
                      "fleets": ["demo"], "diagnostics": []}


def test_json_warning_and_strict(capsys: pytest.CaptureFixture[str], warning_only: Path) -> None:
    code, report = run_json(capsys, str(warning_only))
    assert (code, report["valid"], report["summary"]["warnings"]) == (0, True, 1)
    (diagnostic,) = report["diagnostics"]
    assert set(diagnostic) == DIAGNOSTIC_KEYS
    assert (diagnostic["severity"], diagnostic["code"], diagnostic["path"]) == ("warning", "unused",
                                                                                 "spec.failover.standbys")

    code, report = run_json(capsys, "--strict", str(warning_only))
    assert (code, report["valid"], report["summary"]["errors"], report["summary"]["warnings"]) == (1, False, 1, 0)
    assert report["diagnostics"][0]["severity"] == "error"


def test_json_whole_file_problems_have_line_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = write_text(tmp_path / "empty.yaml", "")
    code, report = run_json(capsys, str(empty))
    assert code == 1
    assert [(d["line"], d["column"], d["code"], d["hint"] is not None) for d in report["diagnostics"]] == [
        (0, 0, "empty", True)]


# --- GitHub ----------------------------------------------------------------------------------

def test_github_annotations(capsys: pytest.CaptureFixture[str], invalid: Path) -> None:
    code, out, _ = run(capsys, "validate", "--format", "github", str(invalid))
    assert code == 1
    assert out.splitlines() == [
        f"::error file={invalid},line=12,col=3,title=clawctl unknown-key::unknown key 'replica' in spec "
        "[spec.replica]%0Ahint: did you mean 'replicas'?",
        f"::error file={invalid},line=14,col=15,title=clawctl bad-value::the string 'on_demand' is not a valid "
        "session creation; expected one of: on-demand, eager [spec.sessions.creation]%0Ahint: did you mean 'on-demand'?",
        "invalid: 2 errors, 0 warnings in 1 file (2 documents)",
    ]


def test_github_warning_annotation_and_whole_file_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          warning_only: Path) -> None:
    empty = write_text(tmp_path / "e.yaml", "# nothing\n")
    code, out, _ = run(capsys, "validate", "--each", "--format", "github", str(warning_only), str(empty))
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith(f"::warning file={warning_only},line=16,col=15,title=clawctl unused::")
    assert lines[1].startswith(f"::error file={empty},title=clawctl empty::file is empty")


def test_github_escapes_workflow_command_syntax(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file name with ':' and ',' and a message with '%' must not break the annotation."""
    odd = write_text(tmp_path / "a:b,c.yaml", to_yaml([fleet_doc("demo"), pool_doc("p", rollout={"maxSurge": "50"})]))
    code, out, _ = run(capsys, "validate", "--format", "github", str(odd))
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("::error file=" + str(odd).replace(":", "%3A").replace(",", "%2C") + ",line=")
    assert first.count("::") == 2


def test_github_step_summary_is_written_when_set(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 invalid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _ = run(capsys, "validate", "--format", "github", str(invalid))
    assert code == 1
    assert summary.read_text(encoding="utf-8").splitlines() == [
        "earlier step",
        "### clawctl validate: invalid: 2 errors, 0 warnings in 1 file (2 documents)",
        "",
        "| location | severity | message | path | hint |",
        "|---|---|---|---|---|",
        f"| `{invalid}:12:3` | error | unknown key 'replica' in spec | spec.replica | did you mean 'replicas'? |",
        f"| `{invalid}:14:15` | error | the string 'on_demand' is not a valid session creation; expected one of: "
        "on-demand, eager | spec.sessions.creation | did you mean 'on-demand'? |",
    ]


def test_github_step_summary_untouched_for_other_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         invalid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run(capsys, "validate", str(invalid))
    assert not summary.exists()


# --- JUnit -----------------------------------------------------------------------------------

def test_junit_has_one_testcase_per_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = write_text(tmp_path / "set" / "a-fleet.yaml", to_yaml([fleet_doc("demo"), pool_doc("one")]))
    bad = write_text(tmp_path / "set" / "b-pool.yaml", to_yaml([pool_doc("Two")]))
    code, out, _ = run(capsys, "validate", "--format", "junit", str(tmp_path / "set"))
    assert code == 1
    root = ET.fromstring(out)
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [str(good), str(bad)]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "1 error: 'Two' is not a valid name"
    assert (failure.text or "").startswith(f"{bad}:4:9: error: 'Two' is not a valid name (hint: try 'two';")
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")


def test_junit_with_each_and_warnings(capsys: pytest.CaptureFixture[str], valid: Path, warning_only: Path) -> None:
    code, out, _ = run(capsys, "validate", "--each", "--format", "junit", str(valid), str(warning_only))
    assert code == 0
    cases = ET.fromstring(out).findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [str(valid), str(warning_only)]
    assert all(c.find("failure") is None for c in cases)
    system_out = cases[1].find("system-out")
    assert system_out is not None and "warning: standbys are only used" in (system_out.text or "")


# --- paths -----------------------------------------------------------------------------------

def test_each_treats_every_path_as_its_own_fleet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = write_fleet(tmp_path / "one", 1, name="one")
    second = write_fleet(tmp_path / "two", 1, name="two")
    code, out, _ = run(capsys, "validate", "--each", str(first), str(second))
    assert (code, out) == (0, "valid: 2 files, 6 documents; fleet one, two\n")
    code, out, _ = run(capsys, "validate", str(first), str(second))
    assert code == 1
    assert "a second Fleet 'two'" in out


def test_dash_f_paths_combine_with_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fleet = write_text(tmp_path / "fleet.yaml", to_yaml([fleet_doc("demo")]))
    pools = write_text(tmp_path / "pools" / "p.yaml", to_yaml([pool_doc("one"), pool_doc("two")]))
    code, out, _ = run(capsys, "validate", str(fleet), "-f", str(pools.parent))
    assert (code, out) == (0, "valid: 2 files, 3 documents; fleet demo\n")
    code, out, _ = run(capsys, "validate", "-f", str(fleet), "--filename", str(pools))
    assert (code, out) == (0, "valid: 2 files, 3 documents; fleet demo\n")


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD_POOL.encode())))
    code, report = run_json(capsys, "-")
    assert code == 1
    assert [(d["file"], d["line"]) for d in report["diagnostics"]] == [("<stdin>", 12), ("<stdin>", 14)]


def test_stdin_combines_with_files(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = write_text(tmp_path / "fleet.yaml", to_yaml([fleet_doc("demo")]))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(to_yaml([pool_doc("one")]).encode())))
    code, out, _ = run(capsys, "validate", str(fleet), "-")
    assert (code, out) == (0, "valid: 2 files, 2 documents; fleet demo\n")


def test_directory_is_read_recursively(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    write_text(root / "fleet.yaml", to_yaml([fleet_doc("demo")]))
    write_text(root / "pools" / "a.yml", to_yaml([pool_doc("a")]))
    write_text(root / "pools" / "deeper" / "b.yaml", to_yaml([pool_doc("b")]))
    # none of these may be read: they are broken on purpose
    write_text(root / ".git" / "config.yaml", "{{{ not yaml")
    write_text(root / "pools" / ".hidden" / "c.yaml", "{{{ not yaml")
    write_text(root / ".draft.yaml", "{{{ not yaml")
    write_text(root / "README.md", "{{{ not yaml")
    write_text(root / "pools" / "notes.txt", "{{{ not yaml")
    code, report = run_json(capsys, str(root))
    assert code == 0, report
    assert report["summary"] == {"files": 3, "documents": 3, "errors": 0, "warnings": 0}


def test_every_file_of_a_directory_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_text(tmp_path / "d" / "a.yaml", "")
    write_text(tmp_path / "d" / "b.yaml", "a: [1\n")
    write_text(tmp_path / "d" / "c.yaml", "- 1\n")
    code, report = run_json(capsys, str(tmp_path / "d"))
    assert code == 1
    assert [(Path(d["file"]).name, d["code"]) for d in report["diagnostics"]] == [
        ("a.yaml", "empty"), ("b.yaml", "yaml"), ("c.yaml", "bad-type")]


# --- failures of clawctl itself --------------------------------------------------------------

def test_internal_error_exits_3_naming_the_log(capsys: pytest.CaptureFixture[str], valid: Path,
                                               clawctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clawctl.config.loader

    def explode(paths: list[str], **kwargs: object) -> None:
        raise RuntimeError("boom from a test")

    monkeypatch.setattr(clawctl.config.loader, "load_paths", explode)
    code, out, err = run(capsys, "validate", str(valid))
    log = clawctl_home / "logs" / "cli-errors.log"
    assert (code, out) == (3, "")
    assert err.splitlines()[0] == f"error: internal error; the traceback is in {log}"
    assert "Traceback" not in err and "boom" not in err
    assert len(err.splitlines()) <= 2
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom from a test" in text


def test_broken_files_never_crash(capsys: pytest.CaptureFixture[str]) -> None:
    """Every invalid fixture at once: exit 1 with diagnostics, never 3."""
    files = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "fixtures" / "invalid").glob("*.yaml"))
    code, out, err = run(capsys, "validate", "--each", "--format", "json", *files)
    report = json.loads(out)
    assert (code, err) == (1, "")
    assert report["summary"]["files"] == len(files)
    assert {d["file"] for d in report["diagnostics"]} == set(files)


# --- real processes and import footprint -----------------------------------------------------

def clawctl_process(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "clawctl", *argv], input=stdin, capture_output=True,
                          timeout=60, check=False, env={**os.environ, "NO_COLOR": "1"})


def test_subprocess_exit_codes(tmp_path: Path, valid: Path, invalid: Path) -> None:
    ok = clawctl_process("validate", str(valid))
    assert (ok.returncode, ok.stdout.decode(), ok.stderr) == (0, "valid: 1 file, 4 documents; fleet demo\n", b"")
    bad = clawctl_process("validate", str(invalid))
    assert bad.returncode == 1 and b"unknown key 'replica'" in bad.stdout
    missing = clawctl_process("validate", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and missing.stderr.startswith(b"error: ")


def test_subprocess_reads_stdin() -> None:
    result = clawctl_process("validate", "--format", "json", "-", stdin=fleet_yaml(2).encode())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fleets"] == ["demo"]


MODULES_SCRIPT = """
import sys
from clawctl.cli.errors import run_guarded
code = run_guarded(sys.argv[1:])
print("MODULES", " ".join(sorted({name.split(".")[0] for name in sys.modules})))
print("CODE", code)
"""


def loaded_modules(*argv: str) -> tuple[int, set[str]]:
    """Top-level modules imported by one CLI run in a fresh interpreter, and its exit code."""
    result = subprocess.run([sys.executable, "-c", MODULES_SCRIPT, *argv], capture_output=True, timeout=60,
                            check=False, text=True)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("MODULES", "CODE")))
    return int(lines["CODE"]), set(lines["MODULES"].split())


@pytest.mark.parametrize("argv", [["--version"], ["validate", "VALID"]], ids=["version", "validate"])
def test_cli_imports_nothing_heavy(argv: list[str], valid: Path) -> None:
    code, modules = loaded_modules(*[str(valid) if a == "VALID" else a for a in argv])
    assert code == 0
    assert "clawctl" in modules
    assert sorted(modules & set(HEAVY)) == []


def test_invalid_config_loads_jsonschema_only_then(invalid: Path) -> None:
    """jsonschema is the slow path that explains schema errors: needed for an invalid file only."""
    code, modules = loaded_modules("validate", str(invalid))
    assert code == 1
    assert "jsonschema" in modules
    assert sorted(modules & {"sqlalchemy", "apscheduler", "rich"}) == []


def test_importtime_of_version() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "clawctl", "--version"], capture_output=True,
                            timeout=60, check=False, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("clawctl ")
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "clawctl" in imported
    assert sorted(imported & set(HEAVY)) == []
