"""Builders for clawctl config sets, shared by every test that needs a config.

``fleet_docs(pools=3)`` gives the documents of a valid config set as plain
data; ``fleet_yaml(pools=3)`` the same as YAML text; ``write_fleet(tmp_path)``
puts it in a file. Pass overrides to shape one pool or the fleet defaults.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

API_VERSION = "clawctl/v1"
DEFAULT_COMMAND = ["python3", "-m", "clawctl.agent.examples.echo"]


def fleet_doc(name: str = "demo", *, defaults: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
    """A Fleet document."""
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Fleet", "metadata": {"name": name}}
    spec: dict[str, Any] = {}
    if description is not None:
        spec["description"] = description
    if defaults is not None:
        spec["defaults"] = defaults
    if spec:
        doc["spec"] = spec
    return doc


def pool_doc(name: str, *, replicas: int = 1, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    """An AgentPool document; extra keyword arguments become spec keys (``dependsOn=[...]``, ``failover={...}``)."""
    body: dict[str, Any] = {"replicas": replicas, "command": list(command or DEFAULT_COMMAND)}
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": "AgentPool", "metadata": {"name": name}, "spec": body}


def policy_doc(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A CommunicationPolicy document."""
    return {"apiVersion": API_VERSION, "kind": "CommunicationPolicy", "metadata": {"name": name},
            "spec": {"rules": rules}}


def pool_names(count: int) -> list[str]:
    """Names of the pools ``fleet_docs`` makes: pool-1 … pool-N."""
    return [f"pool-{i}" for i in range(1, count + 1)]


def fleet_docs(pools: int = 2, *, name: str = "demo", defaults: dict[str, Any] | None = None,
               policy: bool = True, **pool_spec: Any) -> list[dict[str, Any]]:
    """A valid config set: one Fleet, ``pools`` AgentPools (each with ``pool_spec``) and,
    when there are pools and ``policy``, a CommunicationPolicy letting each pool message the next."""
    names = pool_names(pools)
    docs = [fleet_doc(name, defaults=defaults)]
    docs += [pool_doc(n, replicas=2, **pool_spec) for n in names]
    if policy and names:
        rules = [{"from": n, "messages": [names[(i + 1) % len(names)]], "events": {"publish": [f"{n}.*"]}}
                 for i, n in enumerate(names)]
        docs.append(policy_doc("traffic", rules))
    return docs


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """Block-style YAML text of ``docs``, separated by '---'."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump_all(docs, stream)
    return stream.getvalue()


def fleet_yaml(pools: int = 2, **kwargs: Any) -> str:
    """YAML text of ``fleet_docs(pools, **kwargs)``."""
    return to_yaml(fleet_docs(pools, **kwargs))


def write_fleet(directory: Path, pools: int = 2, *, filename: str = "fleet.yaml", **kwargs: Any) -> Path:
    """Write a valid config set to ``directory/filename`` and return its path."""
    path = directory / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fleet_yaml(pools, **kwargs), encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating parents) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def git_repo_with_fleet(directory: Path, pools: int = 1) -> str:
    """A git repository in ``directory`` whose one commit holds a fleet in ``directory/fleet``;
    returns the commit's sha."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "T")
    write_fleet(directory / "fleet", pools)
    git("add", ".")
    git("commit", "-qm", "one")
    return git("rev-parse", "HEAD").strip()
