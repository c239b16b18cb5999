"""What ``clawctl validate`` does once its options are parsed: load, report, exit code.

Free of typer, so that the fast start path (``cli/fast_path.py``) and the typer
command (``cli/validate.py``) run the very same code.
"""

from __future__ import annotations

import os
import sys

from clawctl.cli.arguments import collect_paths
from clawctl.errors import ExitCode

def run_validate(paths: list[str] | None, files: list[str] | None, *, output_format: str = "text",
                 strict: bool = False, each: bool = False) -> int:
    """Validate the config set(s), write the report to stdout and return the exit code:
    0 valid, 1 invalid. Raises UsageError for no path or an unreadable one (exit 2)."""
    from clawctl.cli.render import validation as render
    from clawctl.cli.render.style import use_color
    from clawctl.config.loader import load_paths  # here, not at the top: tests replace it

    combined = collect_paths(paths, files)
    groups = [[p] for p in combined] if each else [combined]
    results = [load_paths(group) for group in groups]
    summary = render.summarize(results, strict=strict)
    diagnostics = [d for r in results for d in r.diagnostics]
    if output_format == "json":
        text = render.render_json(diagnostics, summary, strict=strict)
    elif output_format == "github":
        text = render.render_github(diagnostics, summary, strict=strict)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(render.render_step_summary(diagnostics, summary, strict=strict))
    elif output_format == "junit":
        text = render.render_junit(results, summary, strict=strict)
    else:
        text = render.render_text(diagnostics, summary, strict=strict, color=use_color(sys.stdout))
    sys.stdout.write(text)
    return ExitCode.OK if summary.valid else ExitCode.FAILED
