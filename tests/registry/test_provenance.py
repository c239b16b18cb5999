"""Git provenance of applied config files, and who applied them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clawctl.registry.provenance import current_user, git_info
from tests.builders import write_fleet

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "Tester")
    write_fleet(root / "fleet")
    (root / "README").write_text("hello\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "fleet")
    return root


@needs_git
def test_clean_checkout_records_the_commit(repo: Path) -> None:
    info = git_info([str(repo / "fleet")])
    assert info is not None
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert info.dirty is False and Path(info.root) == repo.resolve()


@needs_git
def test_modified_or_untracked_config_is_dirty(repo: Path) -> None:
    (repo / "fleet" / "fleet.yaml").write_text((repo / "fleet" / "fleet.yaml").read_text() + "# edit\n")
    assert git_info([str(repo / "fleet" / "fleet.yaml")]).dirty is True  # type: ignore[union-attr]
    git(repo, "checkout", "--", "fleet")
    (repo / "fleet" / "extra.yaml").write_text("# new\n")
    assert git_info([str(repo / "fleet")]).dirty is True  # type: ignore[union-attr]


@needs_git
def test_changes_outside_the_config_files_do_not_make_it_dirty(repo: Path) -> None:
    (repo / "README").write_text("changed\n")
    assert git_info([str(repo / "fleet")]).dirty is False  # type: ignore[union-attr]


@needs_git
def test_reading_status_does_not_write_to_the_repository(repo: Path) -> None:
    index = repo / ".git" / "index"
    before = index.stat().st_mtime_ns
    (repo / "fleet" / "fleet.yaml").touch()
    git_info([str(repo / "fleet")])
    assert index.stat().st_mtime_ns == before


@needs_git
def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    path = write_fleet(tmp_path / "fleet")
    info = git_info([str(path)])
    assert info is not None and info.commit is None and info.dirty is True


def test_outside_a_repository(tmp_path: Path) -> None:
    assert git_info([str(write_fleet(tmp_path / "plain"))]) is None


def test_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_info([str(write_fleet(tmp_path))]) is None


def test_stdin_has_no_provenance() -> None:
    assert git_info(["-"]) is None


def test_current_user_is_a_name() -> None:
    assert current_user()
