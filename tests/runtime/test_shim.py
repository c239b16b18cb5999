"""The exec shim on its own: argument parsing, failures with distinct exit codes,
the setup steps a child can observe, and probe output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clawctl.runtime import SETUP_FAILED
from clawctl.runtime.host import SHIM_PATH
from clawctl.runtime.shim import parse


def run_shim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SHIM_PATH), *args], capture_output=True, text=True, timeout=10, cwd=cwd, check=False
    )


def test_parse() -> None:
    assert parse(["--cgroup", "/a", "--cgroup", "/b", "--nofile", "9", "--", "prog", "--cgroup", "x"]) == (
        {"cgroup": ["/a", "/b"], "nofile": ["9"]},
        ["prog", "--cgroup", "x"],
    )
    assert parse(["--probe"]) == ({"probe": [""]}, [])
    with pytest.raises(ValueError):
        parse(["stray"])
    with pytest.raises(ValueError):
        parse(["--cwd"])


def test_applies_cwd_and_open_files_then_execs(tmp_path: Path) -> None:
    done = run_shim(
        "--cwd", str(tmp_path), "--nofile", "50", "--exe", sys.executable, "--",
        "agent-name", "-c", "import os, resource, sys; print(os.getcwd(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], sys.argv[0])",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path), "50", "-c"]


def test_signal_dispositions_are_reset_before_exec() -> None:
    # Python ignores SIGPIPE, and exec keeps ignored signals ignored.
    done = run_shim("--exe", "/bin/sh", "--", "sh", "-c", "grep SigIgn /proc/self/status")
    ignored = int(done.stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE must not stay ignored across exec"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--exe", "/nonexistent/prog", "--", "prog"], 127, "cannot execute /nonexistent/prog"),
        (["--exe", "/etc/hostname", "--", "x"], 126, "cannot execute /etc/hostname"),
        (["--cwd", "/nonexistent", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "cannot enter workdir"),
        (["--cgroup", "/nonexistent", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "cannot join cgroup"),
        (["--nofile", "many", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "open files limit"),
        (["bogus"], SETUP_FAILED, "bad arguments"),
        (["--exe", "/bin/true"], SETUP_FAILED, "need --exe PATH and -- ARGV"),
    ],
)
def test_failures_name_the_step_and_exit_distinctly(args: list[str], code: int, message: str) -> None:
    done = run_shim(*args)
    assert done.returncode == code
    assert done.stderr.startswith("clawctl-shim: ") and message in done.stderr


def test_probe_reports_each_cgroup_and_the_network(tmp_path: Path) -> None:
    done = run_shim("--probe", "--cgroup", str(tmp_path / "missing"))
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"cgroup-error {tmp_path / 'missing'}\t")
    assert lines[1].split()[0] in ("netns-ok", "netns-error")
