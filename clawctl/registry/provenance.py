"""Who applies a revision and which git commit its config files come from.

git is called with argument lists (never through a shell), with a timeout and
GIT_OPTIONAL_LOCKS=0 so that reading status never writes to the repository.
A missing git, a directory outside any repository or any git failure simply
means "no git information".
"""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

from clawctl.registry.records import GitInfo

GIT_TIMEOUT = 5.0


def current_user() -> str:
    """The login name of the operator (the uid when it has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _git(args: list[str], cwd: Path) -> str | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(name, None)
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_info(paths: list[str]) -> GitInfo | None:
    """Git provenance of the config ``paths`` (files or directories; '-' is ignored).

    None when the paths are not inside a git work tree or git is unavailable.
    The repository is the one holding the first path.
    """
    real = [Path(p).resolve() for p in paths if p != "-"]
    if not real:
        return None
    first = real[0] if real[0].is_dir() else real[0].parent
    top = _git(["rev-parse", "--show-toplevel"], first)
    if top is None or not top.strip():
        return None
    root = Path(top.strip())
    head = _git(["rev-parse", "--verify", "--quiet", "HEAD"], root)
    inside = [str(p.relative_to(root)) for p in real if p == root or root in p.parents]
    status = _git(["status", "--porcelain", "--untracked-files=all", "--", *(inside or ["."])], root)
    dirty = True if status is None else bool(status.strip())
    return GitInfo(root=str(root), commit=head.strip() if head and head.strip() else None, dirty=dirty)
