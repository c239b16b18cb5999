"""Disk usage of a workdir and the probe's rate limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clawctl.runtime import HostFacts, ProcessLauncher
from clawctl.runtime.usage import disk_usage, measure

from .conftest import Harness


def test_disk_usage_counts_blocks_once_per_inode(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.bin").write_bytes(b"a" * 100_000)
    os.link(root / "sub" / "a.bin", root / "b.bin")
    (root / "link").symlink_to("/usr")
    assert 100_000 <= disk_usage(root) < 200_000
    assert disk_usage(tmp_path / "missing") == 0
    many = tmp_path / "many"
    many.mkdir()
    for index in range(10):
        (many / str(index)).write_bytes(b"m" * 10_000)
    assert disk_usage(many, max_entries=3) < disk_usage(many)  # bounded walk: a lower bound


def test_measure_skips_vanished_pids() -> None:
    rss, cpu, count = measure([os.getpid(), 2**22 + 12345])
    assert count == 1 and rss > 0 and cpu > 0


def test_measure_gives_psutils_values() -> None:
    import subprocess
    import sys

    import psutil

    child = subprocess.Popen([sys.executable, "-c", "x = bytearray(20 << 20); sum(range(3_000_000)); "
                              "print('ready', flush=True); input()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        process = psutil.Process(child.pid)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"  # then it only waits
        rss, cpu, count = measure([child.pid])
        times = process.cpu_times()
        assert count == 1
        assert rss == process.memory_info().rss
        assert cpu == pytest.approx(times.user + times.system, abs=0.011)  # the sums round differently
    finally:
        child.kill()
        child.communicate()
    assert measure([child.pid]) == (0, 0.0, 0)


def test_workdir_walks_are_rate_limited(host: HostFacts, tmp_path: Path) -> None:
    now = [1000.0]
    harness = Harness(ProcessLauncher(host=host, disk_interval=30.0, clock=lambda: now[0]), tmp_path)
    proc = harness.python("disk", "import time; open('f', 'wb').write(b'x' * 65536); print('ready', flush=True); time.sleep(60)")
    try:
        harness.wait_log(proc, "ready")
        first = harness.launcher.probe(proc)
        assert first.disk_bytes is not None and first.disk_bytes >= 65536
        (harness.root / "work" / "disk" / "g").write_bytes(b"y" * 1_000_000)
        now[0] += 10
        assert harness.launcher.probe(proc).disk_bytes == first.disk_bytes
        now[0] += 30
        assert harness.launcher.probe(proc).disk_bytes >= 1_000_000  # type: ignore[operator]
    finally:
        harness.launcher.stop(proc, 1.0)
        harness.wait_exit(proc)
        harness.launcher.close()
