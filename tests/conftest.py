"""Fixtures shared by every test: each test gets its own CLAWCTL_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clawctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point CLAWCTL_HOME at a fresh temporary directory, so no test touches the real home."""
    home = tmp_path / "clawctl-home"
    home.mkdir()
    monkeypatch.setenv("CLAWCTL_HOME", str(home))
    # setenv first so that teardown also removes values a test (or --registry) set later on
    for name in ("CLAWCTL_REGISTRY", "CLAWCTL_REGISTRY_TIMEOUT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # `apply` starts a daemon by default; tests that want one start it themselves (tests/daemon).
    monkeypatch.setenv("CLAWCTL_AUTOSTART", "0")
    return home
