"""The systemd unit in contrib/ is one systemd accepts, and matches what docs/daemon.md says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "clawctl.service"


def test_the_unit_keeps_agents_running_and_fits_the_stop_budget() -> None:
    text = UNIT.read_text()
    assert "ExecStart=/opt/clawctl/.venv/bin/clawctl daemon run" in text
    assert "KillMode=process" in text and "Delegate=yes" in text
    budget = int(text.split("CLAWCTL_STOP_BUDGET=")[1].split()[0])
    timeout = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert budget + 10 <= timeout  # the budget, then writing what is pending, inside the stop timeout
    assert UNIT.name in (ROOT / "docs" / "daemon.md").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    clawctl = Path(sys.executable).parent / "clawctl"
    if not clawctl.exists():
        pytest.skip("the clawctl console script is not installed beside this interpreter")
    unit = tmp_path / "clawctl.service"
    unit.write_text(UNIT.read_text().replace("/opt/clawctl/.venv/bin/clawctl", str(clawctl)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
