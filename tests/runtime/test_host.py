"""Host facts: /proc parsing and where agent cgroups go, on hybrid, v2-only and
container hosts (pure); the real probe on this machine (smoke)."""

from __future__ import annotations

from pathlib import Path

from clawctl.runtime.host import (
    DAEMON_LEAF,
    CgroupSite,
    ProcCgroup,
    cgroup_dir,
    has_capability,
    locate_sites,
    own_base,
    parse_mountinfo,
    parse_proc_cgroup,
    probe_host,
)

HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_SELF = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/8d83
2:cpuacct:/
1:cpu:/
0::/
"""
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V2_SELF = "0::/system.slice/clawctl.service\n"
COMOUNTED = "35 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"


def test_parse_mountinfo_finds_v1_and_v2_mounts() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTS)
    assert [(m.version, sorted(m.controllers), str(m.mountpoint)) for m in mounts][:2] == [
        (1, ["cpu"], "/sys/fs/cgroup/cpu"),
        (1, ["cpuacct"], "/sys/fs/cgroup/cpuacct"),
    ]
    assert mounts[-1].version == 2 and mounts[-1].mountpoint == Path("/sys/fs/cgroup/unified")
    assert parse_mountinfo(COMOUNTED)[0].controllers == {"cpu", "cpuacct"}


def test_parse_mountinfo_unescapes_paths_and_skips_garbage() -> None:
    text = "1 2 0:1 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\nnonsense line\n"
    assert parse_mountinfo(text)[0].mountpoint == Path("/mnt/with space")


def test_parse_proc_cgroup() -> None:
    entries = parse_proc_cgroup(HYBRID_SELF)
    assert entries[0] == ProcCgroup(9, frozenset({"name=systemd"}), "/")
    assert entries[-1] == ProcCgroup(0, frozenset(), "/")
    assert parse_proc_cgroup("garbage\n1:cpu,cpuacct:/a:b\n") == (ProcCgroup(1, frozenset({"cpu", "cpuacct"}), "/a:b"),)


def test_cgroup_dir_maps_paths_under_mount_roots() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTS)
    assert cgroup_dir(ProcCgroup(4, frozenset({"memory"}), "/process_api/8d83"), mounts) == Path(
        "/sys/fs/cgroup/memory/process_api/8d83"
    )
    assert cgroup_dir(ProcCgroup(8, frozenset({"pids"}), "/"), mounts) == Path("/sys/fs/cgroup/pids")
    # A container sees its own subtree mounted as the root of the hierarchy.
    container = parse_mountinfo("1 2 0:1 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert cgroup_dir(ProcCgroup(0, frozenset(), "/docker/abc/app"), container) == Path("/sys/fs/cgroup/app")
    assert cgroup_dir(ProcCgroup(0, frozenset(), "/docker/other"), container) is None


def test_hybrid_host_uses_v1_controllers_when_v2_has_none() -> None:
    sites, reasons = locate_sites(parse_proc_cgroup(HYBRID_SELF), parse_mountinfo(HYBRID_MOUNTS), frozenset({"hugetlb"}))
    assert sites == {
        "memory": CgroupSite("memory", 1, Path("/sys/fs/cgroup/memory/process_api/8d83")),
        "cpu": CgroupSite("cpu", 1, Path("/sys/fs/cgroup/cpu")),
        "pids": CgroupSite("pids", 1, Path("/sys/fs/cgroup/pids")),
    }
    assert reasons == {}


def test_v2_host_prefers_the_unified_hierarchy() -> None:
    sites, reasons = locate_sites(parse_proc_cgroup(V2_SELF), parse_mountinfo(V2_MOUNTS), frozenset({"memory", "cpu", "io"}))
    base = Path("/sys/fs/cgroup/system.slice/clawctl.service")
    assert sites == {"memory": CgroupSite("memory", 2, base), "cpu": CgroupSite("cpu", 2, base)}
    assert "pids" in reasons


def test_v2_daemon_already_in_its_leaf_uses_the_parent() -> None:
    entries = parse_proc_cgroup(f"0::/system.slice/clawctl.service/{DAEMON_LEAF}\n")
    sites, _ = locate_sites(entries, parse_mountinfo(V2_MOUNTS), frozenset({"memory"}))
    assert sites["memory"].base == Path("/sys/fs/cgroup/system.slice/clawctl.service")
    assert own_base(Path("/x/y")) == Path("/x/y")


def test_no_cgroups_at_all_gives_reasons_for_every_controller() -> None:
    sites, reasons = locate_sites((), (), frozenset())
    assert sites == {} and set(reasons) == {"memory", "cpu", "pids"}
    invisible = locate_sites(parse_proc_cgroup("4:memory:/elsewhere\n"), parse_mountinfo(
        "1 2 0:1 /mine /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"), frozenset())
    assert "not visible" in invisible[1]["memory"]


def test_capabilities_from_status() -> None:
    status = "Name:\tx\nCapEff:\t000001fffeffffff\n"
    assert has_capability(status, 21)  # CAP_SYS_ADMIN
    assert not has_capability(status, 24)  # CAP_SYS_RESOURCE dropped
    assert not has_capability("Name:\tx\n", 0)


def test_probe_on_this_host_is_consistent() -> None:
    facts = probe_host()
    assert set(facts.sites) | set(facts.unusable) == {"memory", "cpu", "pids"}
    assert set(facts.sites).isdisjoint(facts.unusable)
    assert facts.netns or facts.netns_reason
    for site in facts.sites.values():
        assert site.base.is_dir()
        assert not any(p.name.startswith(".clawctl-probe-") for p in site.base.iterdir())
