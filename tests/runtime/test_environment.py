"""The agent environment is built from an allow-list, the pool's env and the runtime's ids."""

from __future__ import annotations

from clawctl.runtime.environment import FALLBACK_PATH, agent_environment, prepend_path

PARENT = {
    "PATH": "/usr/bin:/opt/py/bin:/bin",
    "HOME": "/home/op",
    "LANG": "C.UTF-8",
    "LC_TIME": "de_DE.UTF-8",
    "TZ": "UTC",
    "https_proxy": "http://proxy:3128",
    "AWS_SECRET_ACCESS_KEY": "nope",
    "PYTHONPATH": "/somewhere",
    "VIRTUAL_ENV": "/venv",
}


def build(agent_env: dict[str, str] | None = None, parent: dict[str, str] | None = None) -> dict[str, str]:
    return agent_environment(agent_env or {}, agent_id="pool-1", parent_env=PARENT if parent is None else parent, python_dir="/opt/py/bin")


def test_only_allow_listed_parent_variables_pass() -> None:
    env = build()
    assert env["HOME"] == "/home/op" and env["LANG"] == "C.UTF-8" and env["LC_TIME"] == "de_DE.UTF-8"
    assert env["https_proxy"] == "http://proxy:3128"
    for secret in ("AWS_SECRET_ACCESS_KEY", "PYTHONPATH", "VIRTUAL_ENV"):
        assert secret not in env


def test_pool_env_wins_and_runtime_ids_are_set() -> None:
    env = build({"HOME": "/agent-home", "PYTHONUNBUFFERED": "0", "CLAWCTL_AGENT_ID": "spoofed", "KEY": "v"})
    assert env["HOME"] == "/agent-home"
    assert env["PYTHONUNBUFFERED"] == "0"
    assert env["KEY"] == "v"
    assert env["CLAWCTL_AGENT_ID"] == "pool-1"


def test_python_dir_comes_first_on_path_exactly_once() -> None:
    assert build()["PATH"] == "/opt/py/bin:/usr/bin:/bin"
    assert build({"PATH": "/custom"})["PATH"] == "/opt/py/bin:/custom"
    assert build(parent={})["PATH"] == "/opt/py/bin:" + FALLBACK_PATH


def test_unbuffered_output_by_default() -> None:
    assert build()["PYTHONUNBUFFERED"] == "1"


def test_prepend_path_drops_empty_entries() -> None:
    assert prepend_path("/a", "::/b:/a:") == "/a:/b"
