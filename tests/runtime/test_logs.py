"""Log paths and size-based rotation with bounded retention."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clawctl.errors import RuntimeFailure
from clawctl.runtime import log_path, rotate_logs
from clawctl.runtime.logs import rotate_file


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    return directory


def test_log_path_is_one_safe_file_per_agent(tmp_path: Path) -> None:
    assert log_path(tmp_path, "support-3") == tmp_path / "support-3.log"
    assert log_path(tmp_path, "../evil/x").parent == tmp_path
    assert log_path(tmp_path, ".hidden").name == "_.hidden.log"


def test_rotation_keeps_a_bounded_number_of_copies(logs: Path) -> None:
    log = logs / "a.log"
    for generation in range(6):
        log.write_text(f"generation {generation}\n" * 20)
        assert rotate_logs(logs, 100, 3) == [log]
    assert sorted(p.name for p in logs.iterdir()) == ["a.log", "a.log.1", "a.log.2", "a.log.3"]
    assert log.read_text() == ""
    assert (logs / "a.log.1").read_text().startswith("generation 5")
    assert (logs / "a.log.3").read_text().startswith("generation 3")


def test_small_logs_are_left_alone_and_excess_copies_removed(logs: Path) -> None:
    (logs / "a.log").write_text("short\n")
    for index in (1, 2, 5):
        (logs / f"a.log.{index}").write_text("old\n")
    (logs / "notes.txt").write_text("not a log")
    assert rotate_logs(logs, 100, 2) == []
    assert sorted(p.name for p in logs.iterdir()) == ["a.log", "a.log.1", "a.log.2", "notes.txt"]


def test_keep_zero_drops_the_content(logs: Path) -> None:
    log = logs / "a.log"
    log.write_text("x" * 500)
    rotate_file(log, 0)
    assert log.read_text() == "" and sorted(p.name for p in logs.iterdir()) == ["a.log"]


def test_truncation_keeps_an_o_append_writer_at_the_end(logs: Path) -> None:
    log = logs / "a.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"x" * 300)
        rotate_logs(logs, 100, 1)
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert log.read_bytes() == b"after\n"
    assert (logs / "a.log.1").read_bytes() == b"x" * 300


def test_missing_directory_and_bad_arguments(tmp_path: Path) -> None:
    assert rotate_logs(tmp_path / "nope", 100, 1) == []
    with pytest.raises(ValueError):
        rotate_logs(tmp_path, 0, 1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_an_unwritable_log_is_reported_after_the_others(logs: Path) -> None:
    (logs / "a.log").write_text("x" * 200)
    (logs / "b.log").write_text("x" * 200)
    (logs / "b.log").chmod(0o200)
    with pytest.raises(RuntimeFailure, match="cannot rotate logs"):
        rotate_logs(logs, 100, 1)
    assert (logs / "a.log").read_text() == ""
