"""Render validation results as text, JSON, GitHub annotations or JUnit XML.

Pure functions from results to strings; the JSON shape is documented in
docs/validate-json.md and is stable within ``"version": 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clawctl.cli.render.style import palette
from clawctl.config.diagnostics import Diagnostic, Severity
from clawctl.config.loader import LoadResult


@dataclass(frozen=True)
class Summary:
    files: int
    documents: int
    errors: int
    warnings: int
    fleets: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.errors == 0


def summarize(results: Sequence[LoadResult], *, strict: bool) -> Summary:
    """Counts over every config set; with ``strict`` warnings count as errors."""
    diagnostics = [d for r in results for d in r.diagnostics]
    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR) + (warnings if strict else 0)
    return Summary(
        files=sum(len(r.files) for r in results),
        documents=sum(r.documents for r in results),
        errors=errors,
        warnings=0 if strict else warnings,
        fleets=tuple(r.fleet.name for r in results if r.fleet is not None),
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _severity(d: Diagnostic, strict: bool) -> str:
    return "error" if strict or d.severity is Severity.ERROR else "warning"


def summary_line(summary: Summary) -> str:
    where = f"in {_plural(summary.files, 'file')} ({_plural(summary.documents, 'document')})"
    if summary.valid:
        tail = f", {_plural(summary.warnings, 'warning')}" if summary.warnings else ""
        fleets = f"; fleet {', '.join(summary.fleets)}" if summary.fleets else ""
        return f"valid: {summary.files} {'file' if summary.files == 1 else 'files'}, " \
               f"{_plural(summary.documents, 'document')}{fleets}{tail}"
    return f"invalid: {_plural(summary.errors, 'error')}, {_plural(summary.warnings, 'warning')} {where}"


def render_text(diagnostics: Sequence[Diagnostic], summary: Summary, *, strict: bool, color: bool) -> str:
    """``file:line:col: error: message [path]`` lines, hints below, a summary line last."""
    colors = palette(color)
    red, yellow, dim, bold, green, reset = (colors.red, colors.yellow, colors.dim, colors.bold, colors.green,
                                            colors.reset)
    lines: list[str] = []
    for d in diagnostics:
        sev = _severity(d, strict)
        tint = red if sev == "error" else yellow
        path = f" {dim}[{d.path}]{reset}" if d.path else ""
        lines.append(f"{bold}{d.location}{reset}: {tint}{sev}{reset}: {d.message}{path}")
        if d.hint:
            lines.append(f"  {dim}hint:{reset} {d.hint}")
    tint = green if summary.valid else red
    lines.append(f"{tint}{summary_line(summary)}{reset}")
    return "\n".join(lines) + "\n"


def diagnostic_json(d: Diagnostic, strict: bool) -> dict[str, object]:
    return {
        "file": d.location.file,
        "line": d.location.line,
        "column": d.location.column,
        "severity": _severity(d, strict),
        "code": d.code,
        "message": d.message,
        "path": d.path,
        "hint": d.hint,
        "document": d.document,
    }


def render_json(diagnostics: Sequence[Diagnostic], summary: Summary, *, strict: bool) -> str:
    import json

    return json.dumps({
        "version": 1,
        "valid": summary.valid,
        "summary": {"files": summary.files, "documents": summary.documents, "errors": summary.errors,
                    "warnings": summary.warnings},
        "fleets": list(summary.fleets),
        "diagnostics": [diagnostic_json(d, strict) for d in diagnostics],
    }, indent=2) + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diagnostics: Sequence[Diagnostic], summary: Summary, *, strict: bool) -> str:
    """GitHub Actions workflow commands (annotations), then the summary line."""
    lines = []
    for d in diagnostics:
        props = [f"file={_gh_property(d.location.file)}"]
        if d.location.line:
            props += [f"line={d.location.line}", f"col={d.location.column}"]
        props.append(f"title={_gh_property('clawctl ' + d.code)}")
        body = d.message + (f" [{d.path}]" if d.path else "") + (f"\nhint: {d.hint}" if d.hint else "")
        lines.append(f"::{_severity(d, strict)} {','.join(props)}::{_gh_data(body)}")
    lines.append(summary_line(summary))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_step_summary(diagnostics: Sequence[Diagnostic], summary: Summary, *, strict: bool) -> str:
    """A Markdown table of every finding for $GITHUB_STEP_SUMMARY (annotations are capped per step)."""
    lines = [f"### clawctl validate: {summary_line(summary)}", ""]
    if diagnostics:
        lines += ["| location | severity | message | path | hint |", "|---|---|---|---|---|"]
        for d in diagnostics:
            lines.append(f"| `{_md(str(d.location))}` | {_severity(d, strict)} | {_md(d.message)} | "
                         f"{_md(d.path)} | {_md(d.hint or '')} |")
    return "\n".join(lines) + "\n"


def render_junit(results: Sequence[LoadResult], summary: Summary, *, strict: bool) -> str:
    """JUnit XML: one test case per file, a failure listing that file's findings."""
    from xml.etree import ElementTree as ET
    by_file: dict[str, list[Diagnostic]] = {}
    for r in results:
        for name in r.files:
            by_file.setdefault(name, [])
        for d in r.diagnostics:
            by_file.setdefault(d.location.file, []).append(d)
    failing = {f for f, ds in by_file.items() if any(_severity(d, strict) == "error" for d in ds)}
    suites = ET.Element("testsuites", name="clawctl validate", tests=str(len(by_file)), failures=str(len(failing)))
    suite = ET.SubElement(suites, "testsuite", name="clawctl validate", tests=str(len(by_file)),
                          failures=str(len(failing)), errors="0", skipped="0")
    for name, ds in by_file.items():
        case = ET.SubElement(suite, "testcase", classname="clawctl.validate", name=name, file=name)
        errors = [d for d in ds if _severity(d, strict) == "error"]
        if errors:
            failure = ET.SubElement(case, "failure", message=f"{_plural(len(errors), 'error')}: {errors[0].message}",
                                    type="invalid")
            failure.text = "\n".join(
                f"{d.location}: {_severity(d, strict)}: {d.message}" + (f" (hint: {d.hint})" if d.hint else "")
                for d in ds)
        elif ds:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"{d.location}: warning: {d.message}" for d in ds)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
