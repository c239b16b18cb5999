"""SDK fixtures: a fake daemon on a short socket path, and agents stopped at teardown."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clawctl.agent.sdk import Agent
from tests.agent.fakedaemon import PATIENCE, FakeDaemon

AgentFactory = Callable[..., Agent]


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short directory for sockets (AF_UNIX paths must stay under 108 bytes; tmp_path may not)."""
    path = tempfile.mkdtemp(prefix="clawsdk-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(sockdir: str) -> Iterator[FakeDaemon]:
    """A listening fake daemon; stopped at teardown, which also asserts it did not fail itself."""
    fake = FakeDaemon(os.path.join(sockdir, "control.sock"))
    fake.start()
    yield fake
    fake.stop()
    assert not fake.errors, fake.errors


@pytest.fixture
def new_agent(daemon: FakeDaemon, tmp_path: Path) -> Iterator[AgentFactory]:
    """``new_agent(agent_id="a-0", pool="p", start=True, **options)``: an agent registered with the fake
    daemon (fast backoff, patient timeouts, ``state_dir`` tmp_path/AGENT_ID unless given), started unless
    ``start=False``; every one is stopped at teardown."""
    made: list[Agent] = []

    def make(agent_id: str = "a-0", pool: str = "p", *, start: bool = True, **options: Any) -> Agent:
        env = daemon.add_agent(agent_id, pool)
        state_dir = tmp_path / agent_id
        state_dir.mkdir(exist_ok=True)
        settings: dict[str, Any] = {"backoff_min": 0.01, "backoff_max": 0.2, "call_timeout": PATIENCE,
                                    "connect_timeout": PATIENCE, "state_dir": state_dir}
        settings.update(options)
        agent = Agent.from_env(env, **settings)
        made.append(agent)
        if start:
            agent.start()
        return agent

    yield make
    for agent in made:
        agent.stop()
