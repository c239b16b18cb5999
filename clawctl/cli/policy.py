"""``clawctl policy show|check``: the CommunicationPolicy graph, from config files or the registry.

``show`` prints who may do what (every grant and the rule behind it); ``check FROM TO VERB``
answers one question, exit 0 allow / 1 deny, so config repositories can assert their intent in CI.
Without PATHs both read the policies of the fleets applied to the registry.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from clawctl.cli.options import FileOption, PathsArgument
from clawctl.errors import ClawctlError, ExitCode, NotFound, UsageError

if TYPE_CHECKING:
    from clawctl.config.model import CommunicationPolicy

policy_app = typer.Typer(help="Show and check who may do what (CommunicationPolicy).", no_args_is_help=True)


class Output(str, Enum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
FleetOption = Annotated[Optional[str], typer.Option(
    "--fleet", help="The fleet to read from the registry (needed by check only when several are applied).")]


@dataclass(frozen=True)
class PolicySet:
    """One fleet's pools and policies, and where they were read from."""

    fleet: str
    source: str  # "files" or "registry"
    revision: int | None
    pools: tuple[str, ...]
    policies: tuple[CommunicationPolicy, ...]


def _from_files(paths: list[str], fleet: str | None, *, as_json: bool) -> PolicySet | None:
    """The config set's policies; None after printing validate's report when it is invalid."""
    from clawctl.cli.configset import load_fleet

    loaded = load_fleet(paths, as_json=as_json)
    if loaded is None:
        return None
    if fleet is not None and fleet != loaded.name:
        raise UsageError(f"the config set is fleet {loaded.name}, not {fleet}",
                         hint="leave out --fleet when giving config paths")
    return PolicySet(fleet=loaded.name, source="files", revision=None, pools=tuple(p.name for p in loaded.pools),
                     policies=loaded.policies)


def _from_registry(fleet: str | None) -> tuple[list[PolicySet], str]:
    """The applied fleets' policies (only ``fleet`` when given), and where the registry is."""
    from clawctl.config.build import build_policy
    from clawctl.registry import store
    from clawctl.registry.engine import Registry

    sets: list[PolicySet] = []
    with Registry() as registry:
        where = registry.where
        with registry.reading() as conn:
            names = store.fleet_names(conn) if conn is not None else []
            if fleet is not None and fleet not in names:
                from clawctl.config.suggest import did_you_mean

                raise NotFound(f"no fleet named {fleet} in the registry {where}",
                               hint=did_you_mean(fleet, names) or (f"fleets: {', '.join(names)}" if names else
                                                                   "no fleet has been applied yet"))
            for name in ([fleet] if fleet is not None else names):
                snapshot = store.fleet_snapshot(conn, name) if conn is not None else None
                if snapshot is None:
                    continue
                docs: list[dict[str, Any]] = [dict(d) for d in snapshot.documents]
                pools = tuple(d["metadata"]["name"] for d in docs if d.get("kind") == "AgentPool")
                policies = tuple(sorted((build_policy(d["metadata"]["name"], d["spec"])
                                         for d in docs if d.get("kind") == "CommunicationPolicy"),
                                        key=lambda p: p.name))
                sets.append(PolicySet(fleet=name, source="registry", revision=snapshot.revision, pools=pools,
                                      policies=policies))
    return sets, where


def _paths(paths: list[str] | None, files: list[str] | None) -> list[str]:
    combined = list(paths or []) + list(files or [])
    if combined.count("-") > 1:
        raise UsageError("'-' (standard input) can be given only once")
    return combined


@policy_app.command("show")
def show_command(
    paths: PathsArgument = None,
    files: FileOption = None,
    fleet: FleetOption = None,
    output: OutputOption = Output.TABLE,
) -> int:
    """Print who may do what: every grant of every pool, and the rule behind it.

    From the config files at PATH, or without PATH from the fleets applied to the registry.
    Exit 0, 1 invalid config or unknown fleet, 2 usage error.
    """
    from clawctl.cli.render import policy as render
    from clawctl.cli.render.style import palette, use_color
    from clawctl.policies.access import access_matrix

    combined = _paths(paths, files)
    where: str | None = None
    if combined:
        loaded = _from_files(combined, fleet, as_json=output is Output.JSON)
        if loaded is None:
            return ExitCode.FAILED
        sets = [loaded]
    else:
        sets, where = _from_registry(fleet)
    views = [render.PolicyView(fleet=s.fleet, source=s.source, revision=s.revision,
                               policies=tuple(p.name for p in s.policies),
                               matrix=access_matrix(s.policies, s.pools)) for s in sets]
    if output is Output.JSON:
        sys.stdout.write(render.render_json(views))
    else:
        sys.stdout.write(render.render_table(views, colors=palette(use_color(sys.stdout)), where=where))
    return ExitCode.OK


@policy_app.command("check")
def check_command(
    source: Annotated[str, typer.Argument(metavar="FROM", help="The source pool.", show_default=False)],
    target: Annotated[str, typer.Argument(metavar="TO", show_default=False,
                                          help="A pool (message, open-session), a topic or topic pattern "
                                               "(publish, subscribe), or a shared-state key (read, write).")],
    verb: Annotated[str, typer.Argument(metavar="VERB", show_default=False,
                                        help="message, open-session, publish, subscribe, read or write.")],
    paths: PathsArgument = None,
    files: FileOption = None,
    fleet: FleetOption = None,
    output: OutputOption = Output.TABLE,
) -> int:
    """Whether pool FROM may VERB TO, and the rule that decides.

    From the config files at PATH, or without PATH from the fleet applied to the registry.
    Exit 0 allow, 1 deny, 2 anything else (unknown pool or verb, invalid config, registry problem).
    """
    try:
        return _check(source, target, verb, _paths(paths, files), fleet, output)
    except ClawctlError as exc:
        exc.exit_code = ExitCode.USAGE  # check reserves 1 for "denied"
        raise


def _check(source: str, target: str, verb_text: str, paths: list[str], fleet: str | None, output: Output) -> int:
    from clawctl.config.suggest import did_you_mean
    from clawctl.policies.access import VERB_SPELLINGS, AccessDecision, Verb, first_grant, parse_verb

    verb = parse_verb(verb_text)
    if verb is None:
        spellings = ", ".join(VERB_SPELLINGS)
        raise UsageError(f"unknown verb '{verb_text}'",
                         hint=f"{did_you_mean(verb_text, VERB_SPELLINGS) or ''} verbs: {spellings}".strip())
    if not target:
        raise UsageError("TO is empty", hint="name a pool, a topic or a shared-state key")
    if paths:
        loaded = _from_files(paths, fleet, as_json=output is Output.JSON)
        if loaded is None:
            return ExitCode.USAGE
    else:
        loaded = _one_fleet(fleet)
    pools_named = [("FROM", source)] + ([("TO", target)] if verb is Verb.MESSAGE else [])
    for role, name in pools_named:
        if name not in loaded.pools:
            raise UsageError(f"{role} {name} is not a pool of fleet {loaded.fleet}",
                             hint=did_you_mean(name, loaded.pools) or f"pools: {', '.join(loaded.pools) or '(none)'}")
    grant = first_grant(loaded.policies, source, verb, target)
    decision = AccessDecision(True, grant.rule) if grant is not None else AccessDecision(False, None)
    phrase = "open sessions in" if verb_text == "open-session" else verb.phrase
    if output is Output.JSON:
        data = {"version": 1, "fleet": loaded.fleet, "source": loaded.source, "revision": loaded.revision,
                "from": source, "verb": verb.value, "target": target, "allowed": grant is not None,
                "rule": grant.rule if grant else None, "policy": grant.policy if grant else None,
                "index": grant.index if grant else None}
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(f"{'allow' if decision.allowed else 'deny'}: {decision.describe(source, phrase, target)}\n")
    return ExitCode.OK if grant is not None else ExitCode.FAILED


def _one_fleet(fleet: str | None) -> PolicySet:
    sets, where = _from_registry(fleet)
    if not sets:
        raise UsageError(f"no fleet has been applied to the registry {where}",
                         hint="give the config files: clawctl policy check FROM TO VERB PATH")
    if len(sets) > 1:
        raise UsageError(f"the registry holds several fleets ({', '.join(s.fleet for s in sets)})",
                         hint="name one with --fleet, or give the config files as PATH")
    return sets[0]
