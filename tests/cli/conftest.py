"""CLI fixtures: run clawctl in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from clawctl.cli.errors import run_guarded


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``cli("apply", path)`` runs clawctl with those arguments (stdin/stdout are not terminals)."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = run_guarded([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
