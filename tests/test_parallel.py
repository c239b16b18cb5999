"""parallel_map gives the serial result, in order, whether or not it forks."""

from __future__ import annotations

from pathlib import Path

import os

import pytest

import clawctl.parallel as parallel
from clawctl.config.loader import load_paths


def _square(x: int) -> int:
    return x * x


def test_parallel_map_keeps_order_and_values() -> None:
    items = list(range(1000))
    assert parallel.parallel_map(_square, items) == [x * x for x in items]


def test_small_inputs_do_not_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("forked for a small input")

    monkeypatch.setattr(os, "fork", refuse)
    assert parallel.parallel_map(_square, [1, 2, 3]) == [1, 4, 9]


def _fails_on_multiples_of_7(x: int) -> int:
    if x % 7 == 0 and x > 500:
        raise ValueError(f"item {x}")
    return x


def test_the_first_failure_in_item_order_is_raised() -> None:
    with pytest.raises(ValueError, match="item 504"):
        parallel.parallel_map(_fails_on_multiples_of_7, list(range(1000)))


PARENT = os.getpid()


def _dies_in_a_worker(x: int) -> int:
    if x == 777 and os.getpid() != PARENT:
        os._exit(1)  # a worker killed mid-way (say, by the OOM killer)
    return -x


def test_chunks_of_a_dead_worker_are_done_by_the_caller() -> None:
    items = list(range(1000))
    assert parallel.parallel_map(_dies_in_a_worker, items) == [-x for x in items]


def test_many_workers_share_the_chunks() -> None:
    items = list(range(5000))
    assert parallel.parallel_map(_square, items, max_workers=4) == [x * x for x in items]


def test_large_config_sets_load_the_same_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fleet.yaml").write_text("apiVersion: clawctl/v1\nkind: Fleet\nmetadata: {name: big}\n")
    for i in range(300):
        body = f"apiVersion: clawctl/v1\nkind: AgentPool\nmetadata: {{name: p{i}}}\nspec:\n  command: [x]\n"
        if i == 123:
            body += "  replica: 2\n"  # one bad file among many: found wherever it is parsed
        (tmp_path / f"p{i:03d}.yaml").write_text(body)
    forked = load_paths([str(tmp_path)])
    monkeypatch.setattr(parallel, "MIN_ITEMS_PER_WORKER", 10**9)
    serial = load_paths([str(tmp_path)])
    assert forked.diagnostics == serial.diagnostics
    assert [str(d.location) for d in forked.diagnostics] == [f"{tmp_path}/p123.yaml:6:3"]
    assert forked.documents == serial.documents == 301
