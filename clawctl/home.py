"""Where clawctl keeps its state: CLAWCTL_HOME, or the platform's user state directory."""

from __future__ import annotations

import os
from pathlib import Path


def clawctl_home(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory (not created here): ``override``, else $CLAWCTL_HOME, else the
    platform's user state dir for clawctl."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("CLAWCTL_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("clawctl", appauthor=False))


def cache_dir(home: Path | None = None) -> Path:
    """Directory for derived, disposable files (compiled schema validators)."""
    return (home or clawctl_home()) / "cache"
