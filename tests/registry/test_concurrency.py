"""Concurrent applies from real processes are serialized and never corrupt each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from clawctl.config.normalize import content_hash, fleet_to_documents
from clawctl.registry import store
from clawctl.registry.engine import Registry
from clawctl.registry.tables import pools
from tests.builders import fleet_docs, to_yaml, write_fleet, write_text
from tests.registry.fleets import load


SLOW_CLAWCTL = """
import sys, time
from clawctl.registry import store
real = store._write_objects
def slow(*args, **kwargs):
    real(*args, **kwargs)
    time.sleep(0.3)  # hold the write transaction open, so that the other applies must wait
store._write_objects = slow
from clawctl.cli.main import main
main(sys.argv[1:])
"""


def run_together(commands: list[list[str]], *, slow: bool = False,
                 separate_homes: Path | None = None) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once and wait for all of them (killing any left on failure).

    With ``slow`` each apply holds its write transaction open for 0.3 s, so they overlap.
    With ``separate_homes`` each process gets its own CLAWCTL_HOME below it, like clawctl on
    different hosts sharing one registry: only the database serializes them then.
    """
    prefix = [sys.executable, "-c", SLOW_CLAWCTL] if slow else [sys.executable, "-m", "clawctl"]

    def env(i: int) -> dict[str, str] | None:
        return None if separate_homes is None else dict(os.environ, CLAWCTL_HOME=str(separate_homes / f"host{i}"))

    procs = [subprocess.Popen([*prefix, *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(i))
             for i, c in enumerate(commands)]
    results = []
    try:
        for proc, command in zip(procs, commands):
            out, err = proc.communicate(timeout=90)
            results.append(subprocess.CompletedProcess(command, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_concurrent_applies_of_different_configs(tmp_path: Path, clawctl_home: Path, registry_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_REGISTRY", registry_url)
    monkeypatch.setenv("CLAWCTL_REGISTRY_TIMEOUT", "60")  # a loaded CI machine must not turn waiting into failing
    variants = {
        "a": fleet_docs(4, isolation={"memory": "1Gi"}),
        "b": fleet_docs(4, isolation={"memory": "2Gi"}, capacity=3),
    }
    paths = {k: write_text(tmp_path / k / "fleet.yaml", to_yaml(v)) for k, v in variants.items()}
    hashes = {content_hash(fleet_to_documents(load(v))): k for k, v in variants.items()}
    commands = [["apply", str(paths[k]), "--yes", "-m", f"{k}{i}"] for i, k in enumerate("abab")]
    shared_server = None if registry_url.startswith("sqlite") else tmp_path / "hosts"
    results = run_together(commands, slow=True, separate_homes=shared_server)
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert all("Traceback" not in r.stderr for r in results)
    with Registry(registry_url, home=clawctl_home) as reg:
        with reg.reading() as conn:
            assert conn is not None
            revs = store.list_revisions(conn)
            snap = store.fleet_snapshot(conn, "demo")
            pool_specs = [spec for (spec,) in conn.execute(sa.select(pools.c.spec).order_by(pools.c.name))]
            stored = [store.get_revision(conn, r.number)[1] for r in revs]  # type: ignore[index]
    assert 2 <= len(revs) <= 4
    assert [r.number for r in revs] == list(range(1, len(revs) + 1))
    # every revision holds exactly one of the two configs, whole, and matches its hash
    for info, docs in zip(revs, stored):
        assert info.content_hash in hashes
        assert docs == fleet_to_documents(load(variants[hashes[info.content_hash]]))
    # consecutive revisions differ: equal content is never recorded twice in a row
    assert all(a.content_hash != b.content_hash for a, b in zip(revs, revs[1:]))
    # the desired-state tables hold exactly the newest revision
    assert snap is not None and snap.revision == revs[-1].number
    assert list(snap.documents) == stored[-1]
    assert pool_specs == [d for d in stored[-1] if d["kind"] == "AgentPool"]


def test_concurrent_applies_of_the_same_config_record_one_revision(
        tmp_path: Path, clawctl_home: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_REGISTRY", registry_url)
    monkeypatch.setenv("CLAWCTL_REGISTRY_TIMEOUT", "60")  # a loaded CI machine must not turn waiting into failing
    path = write_fleet(tmp_path / "fleet", 3)
    shared_server = None if registry_url.startswith("sqlite") else tmp_path / "hosts"
    results = run_together([["apply", str(path)] for _ in range(3)], slow=True, separate_homes=shared_server)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    with Registry(registry_url, home=clawctl_home) as reg:
        with reg.reading() as conn:
            assert conn is not None
            assert [r.number for r in store.list_revisions(conn)] == [1]
