"""Quota planning from Isolation x HostFacts, and judging usage (pure)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from clawctl.config.model import Isolation, NetworkMode
from clawctl.runtime import HostFacts, Usage, monitored_violations, over_disk_quota, plan_quotas
from clawctl.runtime.enforcement import CgroupWrite, adopted_enforcement, cgroup_writes, cpu_quota_us
from clawctl.runtime.host import CgroupSite

V1 = HostFacts(
    sites={c: CgroupSite(c, 1, Path(f"/sys/fs/cgroup/{c}")) for c in ("memory", "cpu", "pids")},
    netns=True,
    nofile_hard=4096,
)
V2 = HostFacts(sites={c: CgroupSite(c, 2, Path("/sys/fs/cgroup/svc")) for c in ("memory", "cpu", "pids")}, netns=True)
BARE = HostFacts(
    unusable={c: "permission denied" for c in ("memory", "cpu", "pids")},
    netns=False,
    netns_reason="cannot create a network namespace: Operation not permitted",
    nofile_hard=1024,
)
ALL = Isolation(memory_bytes=512 << 20, cpu_millis=1500, network=NetworkMode.NONE, open_files=256, processes=64, disk_bytes=1 << 30)


def test_everything_enforced_on_a_capable_v1_host() -> None:
    plan = plan_quotas(ALL, V1)
    assert {k: v.value for k, v in plan.enforcement.items()} == {
        "memory": "enforced", "cpu": "enforced", "processes": "enforced",
        "openFiles": "enforced", "network": "enforced", "disk": "monitored",
    }
    assert plan.cgroup_writes["memory"] == (
        CgroupWrite("memory.limit_in_bytes", str(512 << 20)),
        CgroupWrite("memory.memsw.limit_in_bytes", str(512 << 20), required=False),
    )
    assert plan.cgroup_writes["cpu"] == (CgroupWrite("cpu.cfs_period_us", "100000"), CgroupWrite("cpu.cfs_quota_us", "150000"))
    assert plan.cgroup_writes["pids"] == (CgroupWrite("pids.max", "64"),)
    assert (plan.open_files, plan.network) == (256, NetworkMode.NONE)
    assert plan.notes["memory"] == f"cgroup v1 memory.limit_in_bytes={512 << 20}"


def test_v2_files() -> None:
    plan = plan_quotas(ALL, V2)
    assert [w.file for w in plan.cgroup_writes["memory"]] == ["memory.max", "memory.swap.max", "memory.oom.group"]
    assert plan.cgroup_writes["cpu"] == (CgroupWrite("cpu.max", "150000 100000"),)


def test_nothing_enforceable_means_monitored_with_reasons_and_the_agent_still_runs() -> None:
    plan = plan_quotas(ALL, BARE)
    for quota in ("memory", "cpu", "processes", "network", "disk"):
        assert plan.enforcement[quota] == "monitored", quota
    assert "permission denied" in plan.notes["memory"] and "stops an agent" in plan.notes["memory"]
    assert "RLIMIT_NPROC" in plan.notes["processes"]
    assert "Operation not permitted" in plan.notes["network"]
    assert plan.cgroup_writes == {} and plan.network is None


def test_open_files_are_capped_by_the_hard_limit_without_cap_sys_resource() -> None:
    plan = plan_quotas(Isolation(open_files=65536), BARE)
    assert plan.open_files == 1024
    assert plan.enforcement["openFiles"] == "enforced" and "hard limit" in plan.notes["openFiles"]
    raised = plan_quotas(Isolation(open_files=65536), HostFacts(nofile_hard=1024, can_raise_nofile=True))
    assert raised.open_files == 65536
    unbounded = plan_quotas(Isolation(open_files=65536), HostFacts(nofile_hard=resource.RLIM_INFINITY))
    assert unbounded.open_files == 65536


@pytest.mark.parametrize(
    ("mode", "expected", "namespace"),
    [(NetworkMode.HOST, "unlimited", None), (NetworkMode.LOOPBACK, "enforced", NetworkMode.LOOPBACK), (NetworkMode.NONE, "enforced", NetworkMode.NONE)],
)
def test_network_modes(mode: NetworkMode, expected: str, namespace: NetworkMode | None) -> None:
    plan = plan_quotas(Isolation(network=mode), V1)
    assert (plan.enforcement["network"], plan.network) == (expected, namespace)


def test_no_quotas_is_unlimited_but_keeps_one_cgroup_to_track_the_tree() -> None:
    plan = plan_quotas(Isolation(), V1)
    assert set(plan.enforcement.values()) == {"unlimited"}
    assert plan.cgroup_writes == {"pids": ()}
    assert plan_quotas(Isolation(), BARE).cgroup_writes == {}


def test_only_needed_controllers_get_cgroups() -> None:
    assert set(plan_quotas(Isolation(memory_bytes=1 << 30), V1).cgroup_writes) == {"memory"}


def test_cpu_quota_values() -> None:
    assert cpu_quota_us(1000) == 100_000
    assert cpu_quota_us(250) == 25_000
    assert cpu_quota_us(1) == 1_000  # the kernel's minimum
    assert cgroup_writes("cpu", 1, Isolation()) == ()


def test_adopted_agents_are_downgraded_where_the_mechanism_is_missing() -> None:
    plan = plan_quotas(ALL, V1)
    intact, _ = adopted_enforcement(
        plan, controllers_present=frozenset({"memory", "cpu", "pids"}), own_network_namespace=False, open_files_limit=256
    )
    assert intact == plan.enforcement
    broken, notes = adopted_enforcement(plan, controllers_present=frozenset({"cpu"}), own_network_namespace=True, open_files_limit=1024)
    assert {k for k, v in broken.items() if v == "monitored"} == {"memory", "processes", "network", "openFiles", "disk"}
    assert "RLIMIT_NOFILE=1024" in notes["openFiles"]


def test_over_disk_quota() -> None:
    limits = Isolation(disk_bytes=1000)
    assert over_disk_quota(Usage(0, 0.0, None, 1, disk_bytes=1001), limits)
    assert not over_disk_quota(Usage(0, 0.0, None, 1, disk_bytes=1000), limits)
    assert not over_disk_quota(Usage(0, 0.0, None, 1, disk_bytes=None), limits)
    assert not over_disk_quota(Usage(0, 0.0, None, 1, disk_bytes=10**12), Isolation())


def test_monitored_violations_ignore_enforced_quotas() -> None:
    limits = Isolation(memory_bytes=100, processes=2, disk_bytes=10)
    usage = Usage(rss_bytes=500, cpu_seconds=1.0, cpu_percent=None, processes=3, disk_bytes=50)
    monitored = {"memory": "monitored", "processes": "monitored", "disk": "monitored"}
    assert monitored_violations(usage, limits, monitored) == ("memory", "processes", "disk")
    assert monitored_violations(usage, limits, {**monitored, "memory": "enforced"}) == ("processes", "disk")
    assert monitored_violations(Usage(1, 0.0, None, 1, 1), limits, monitored) == ()
