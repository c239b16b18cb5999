"""pool_progress: what `status` and `apply --wait` call ready, updating, degraded or drained (pure)."""

from __future__ import annotations

from typing import Any

from clawctl.daemon.convergence import AgentView, pool_progress, spec_hash


def doc(name: str = "web", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas, "command": ["agent"], **spec}}


def test_ready_when_every_slot_runs_the_current_spec() -> None:
    d = doc()
    agents = [AgentView("web", i, "Running", spec_hash(d)) for i in range(2)]
    (p,) = pool_progress([d], agents)
    assert p.state == "Ready" and p.converged


def test_only_what_a_process_runs_makes_an_agent_out_of_date() -> None:
    assert spec_hash(doc(replicas=2)) == spec_hash(doc(replicas=5, loadBalancing={"strategy": "round-robin"}))
    assert spec_hash(doc()) != spec_hash(doc(env={"V": "2"}))


def test_a_rollout_is_updating_until_outdated_and_surge_agents_are_gone() -> None:
    d, old = doc(env={"V": "2"}), doc(env={"V": "1"})
    agents = [AgentView("web", 0, "Running", spec_hash(d)), AgentView("web", 1, "Running", spec_hash(old)),
              AgentView("web", 2, "Running", spec_hash(d), "surge")]
    (p,) = pool_progress([d], agents)
    assert p.state == "Updating" and p.outdated == 1 and not p.converged
    agents[1] = AgentView("web", 1, "Running", spec_hash(d))
    (p,) = pool_progress([d], agents)
    assert p.state == "Updating" and p.extra == 1 and not p.converged
    (p,) = pool_progress([d], agents[:2])
    assert p.state == "Ready" and p.converged


def test_hot_standby_counts_roles_not_slots() -> None:
    d = doc(replicas=1, failover={"strategy": "hot-standby", "standbys": 1})
    h = spec_hash(d)
    swapped = [AgentView("web", 0, "Running", h, "standby"), AgentView("web", 1, "Running", h, "primary")]
    (p,) = pool_progress([d], swapped)
    assert (p.ready, p.standbys_ready, p.state) == (1, 1, "Ready")


def test_degraded_below_min_ready_and_drained_when_cordoned() -> None:
    d = doc(failover={"strategy": "degrade", "minReady": 2})
    h = spec_hash(d)
    agents = [AgentView("web", 0, "Running", h), AgentView("web", 1, "BackOff", h)]
    (p,) = pool_progress([d], agents)
    assert p.state == "Degraded" and not p.converged
    (p,) = pool_progress([d], [AgentView("web", 0, "Draining", h)], frozenset({"web"}))
    assert p.state == "Draining 1 agent(s)" and not p.converged
    (p,) = pool_progress([d], [], frozenset({"web"}))
    assert p.state == "Drained" and p.converged
