"""Per-agent cgroups: names, OOM counters, removal of empty parents (on plain
directories), and real creation with limits where this host allows it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from clawctl.config.model import Isolation
from clawctl.runtime import HostFacts, plan_quotas
from clawctl.runtime import cgroups
from clawctl.runtime.host import CgroupSite


def test_agent_cgroup_names() -> None:
    assert cgroups.is_agent_cgroup(Path("/x/clawctl/support-3.0a1b2c3d"), "support-3")
    assert not cgroups.is_agent_cgroup(Path("/x/clawctl/support-3.b.0a1b2c3d"), "support-3")
    assert not cgroups.is_agent_cgroup(Path("/x/clawctl/support-3"), "support-3")
    assert not cgroups.is_agent_cgroup(Path("/x/process_api/8d83"), "support-3")


def test_oom_counters_v1_v2_and_old_kernels(tmp_path: Path) -> None:
    v1, v2, old, none = (tmp_path / name for name in ("v1", "v2", "old", "none"))
    for directory in (v1, v2, old, none):
        directory.mkdir()
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n")
    (old / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (old / "memory.failcnt").write_text("17\n")
    assert cgroups.oom_kills([v1]) == 2
    assert cgroups.oom_kills([v2]) == 1
    assert cgroups.oom_kills([old]) == 1
    assert cgroups.oom_kills([none, tmp_path / "missing"]) == 0


def test_members_of_missing_or_empty_cgroups(tmp_path: Path) -> None:
    (tmp_path / "cgroup.procs").write_text("12\n34\n")
    assert cgroups.members([tmp_path, tmp_path / "gone"]) == {12, 34}


def test_remove_takes_empty_parents_up_to_the_daemon_cgroup(tmp_path: Path) -> None:
    base = tmp_path / "daemon"
    leaf = base / "clawctl" / "fleet-a" / "agent.0a1b2c3d"
    sibling = base / "clawctl" / "fleet-b" / "other.0a1b2c3d"
    leaf.mkdir(parents=True)
    sibling.mkdir(parents=True)
    facts = HostFacts(sites={"pids": CgroupSite("pids", 1, base)})
    assert cgroups.remove_cgroups([leaf], facts)
    assert not (base / "clawctl" / "fleet-a").exists()
    assert (base / "clawctl").exists()  # still holds fleet-b
    assert cgroups.remove_cgroups([sibling, leaf], facts)
    assert base.exists() and not (base / "clawctl").exists()


def test_remove_reports_a_busy_cgroup(tmp_path: Path) -> None:
    leaf = tmp_path / "clawctl" / "agent.0a1b2c3d"
    (leaf / "child").mkdir(parents=True)  # rmdir fails like a cgroup with processes
    assert not cgroups.remove_cgroups([leaf], HostFacts(sites={"pids": CgroupSite("pids", 1, tmp_path)}))
    assert leaf.exists()


def test_real_cgroups_get_their_limits_and_are_removed(host: HostFacts) -> None:
    if "memory" not in host.sites:
        pytest.skip(f"no usable memory cgroup: {host.unusable.get('memory')}")
    plan = plan_quotas(Isolation(memory_bytes=64 << 20, cpu_millis=500, processes=10), host)
    parent = f"clawctl-test-{secrets.token_hex(4)}"
    made = cgroups.create_agent_cgroups(plan, host, agent_id="unit/1", parent=parent)
    try:
        assert all(cgroups.is_agent_cgroup(path, "unit/1") and path.parent.name == parent for path in made)
        values = {f.name: f.read_text().split()[0] for path in made for f in path.iterdir()
                  if f.name in ("memory.limit_in_bytes", "memory.max", "pids.max", "cpu.cfs_quota_us", "cpu.max")}
        assert values.get("memory.limit_in_bytes", values.get("memory.max")) == str(64 << 20)
        if "pids" in host.sites:
            assert values["pids.max"] == "10"
        assert cgroups.members(made) == set()
    finally:
        assert cgroups.remove_cgroups(made, host)
    assert not any(path.exists() or path.parent.exists() for path in made)
