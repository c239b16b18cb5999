"""Load a config set: read → parse → schema → build the model → semantic checks.

Every problem in every file is collected (never only the first); the result
holds the model only when there is no error.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clawctl.config.diagnostics import Diagnostic, Location, Severity
from clawctl.config.model import Fleet
from clawctl.config.schema import fast_validator
from clawctl.config.semantics import Finding, HostFacts, check_fleet
from clawctl.config.sources import Source, expand_paths, read_source
from clawctl.config.yaml_documents import Document, parse_source


@dataclass(frozen=True)
class LoadResult:
    """The outcome of loading one config set."""

    files: tuple[str, ...]
    documents: int
    diagnostics: tuple[Diagnostic, ...]
    fleet: Fleet | None = None
    raw_documents: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors


def host_facts() -> HostFacts:
    """Memory and cores of this machine (no psutil: this runs on every validate)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 1 << 62
    from clawctl.parallel import usable_cores

    return HostFacts(memory_bytes=memory, cpu_millis=usable_cores() * 1000)


def load_paths(paths: list[str], *, host: HostFacts | None = None) -> LoadResult:
    """Load the config set made of ``paths`` (files, directories, '-').

    Raises UsageError for a path that does not exist or cannot be read; every
    problem with the content comes back as a diagnostic instead.
    """
    names = expand_paths(paths)
    # stdin is read here; files are read by whichever process parses them.
    return load_sources([read_source(name) if name == "-" else name for name in names], host=host)


@dataclass(frozen=True)
class _Checked:
    """What the per-file phase found in one source (plain data: it may cross processes)."""

    name: str
    text: str
    documents: list[tuple[int, Any]]
    problems: list[Diagnostic]
    schema_failures: list[int]
    unit_failures: list[int]


def _check_source(source: Source | str) -> _Checked:
    """Read (when given a path), parse, schema-check and unit-check one source. Runs in worker processes."""
    if isinstance(source, str):
        source = read_source(source)
    documents, problems = parse_source(source)
    check_fast = fast_validator()
    schema_failures = []
    unit_failures = []
    for document in documents:
        try:
            check_fast(document.data)
        except Exception:  # noqa: BLE001 - any failure means "look closer"; jsonschema explains it
            schema_failures.append(document.index)
            continue
        found = _unit_errors(document)
        if found:
            problems += found
            unit_failures.append(document.index)
    text = documents[0].text if documents else ""
    return _Checked(source.name, text, [(d.index, d.data) for d in documents], problems, schema_failures,
                    unit_failures)


def load_sources(sources: Iterable[Source | str], *, host: HostFacts | None = None) -> LoadResult:
    """Load a config set from sources or file paths (see ``load_paths``)."""
    # Loading allocates a great many small containers and no reference cycles, so the
    # cyclic collector's passes are pure cost here (~5% of a 1000-file validate).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(list(sources), host)
    finally:
        if collecting:
            gc.enable()


def _load(source_list: list[Source | str], host: HostFacts | None) -> LoadResult:
    from clawctl.parallel import parallel_map

    fast_validator()  # load once here, so forked workers inherit it
    diagnostics: list[Diagnostic] = []
    valid: list[Document] = []
    files: list[str] = []
    count = 0
    for checked in parallel_map(_check_source, source_list):
        files.append(checked.name)
        diagnostics += checked.problems
        count += len(checked.documents)
        for index, data in checked.documents:
            if index in checked.unit_failures:
                continue  # its diagnostics are among checked.problems
            document = Document(checked.name, index, data, checked.text)
            if index in checked.schema_failures:
                found = _schema_errors(document)
                if not found:
                    # jsonschema accepts what the fast check did not: check units as for any valid document.
                    found = _unit_errors(document)
                if found:
                    diagnostics += found
                    continue
            valid.append(document)
    fleet = None
    # Cross-document checks need every document: on a partial set they would
    # report references to pools whose documents merely failed the schema.
    if not any(d.severity is Severity.ERROR for d in diagnostics):
        fleet, more = _assemble(valid, files, host)
        diagnostics += more
    ordered = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
    has_error = any(d.severity is Severity.ERROR for d in ordered)
    return LoadResult(
        files=tuple(files),
        documents=count,
        diagnostics=ordered,
        fleet=None if has_error else fleet,
        raw_documents=tuple(d.data for d in valid),
    )


def _schema_errors(document: Document) -> list[Diagnostic]:
    """Every schema error of a document that failed the fast check (jsonschema is slow to import:
    only invalid documents need it)."""
    from clawctl.config.schema import detailed_validator
    from clawctl.config.schema_errors import schema_errors

    return schema_errors(document, detailed_validator().iter_errors(document.data))


def _assemble(documents: list[Document], files: list[str], host: HostFacts | None) -> tuple[Fleet | None, list[Diagnostic]]:
    from clawctl.config.build import build_fleet

    diagnostics: list[Diagnostic] = []
    by_kind: dict[str, dict[str, Document]] = {"Fleet": {}, "AgentPool": {}, "CommunicationPolicy": {}}
    for document in documents:
        kind = document.data["kind"]
        name = document.data["metadata"]["name"]
        first = by_kind[kind].get(name)
        if first is not None:
            where = first.locate(["metadata", "name"])
            diagnostics.append(Diagnostic(
                document.locate(["metadata", "name"]), f"duplicate {kind} name '{name}' (first defined at {where})",
                code="duplicate-name", path="metadata.name", hint="names must be unique within a fleet; rename one",
                document=document.index))
            continue
        by_kind[kind][name] = document
    fleets = list(by_kind["Fleet"].values())
    if not fleets:
        anchor = Location(files[0]) if files else Location("<input>")
        diagnostics.append(Diagnostic(anchor, "no Fleet document in this config set", code="no-fleet",
                                      hint="add one document with kind: Fleet and metadata.name"))
        return None, diagnostics
    if len(fleets) > 1:
        for extra in fleets[1:]:
            diagnostics.append(Diagnostic(
                extra.locate(["kind"]), f"a second Fleet '{extra.data['metadata']['name']}' "
                f"(the config set already has '{fleets[0].data['metadata']['name']}' at {fleets[0].locate(['kind'])})",
                code="many-fleets", path="kind",
                hint="a config set describes exactly one fleet; validate each fleet's directory separately"))
        return None, diagnostics
    fleet_doc = fleets[0]
    pools = by_kind["AgentPool"]
    policies = by_kind["CommunicationPolicy"]
    fleet = build_fleet(fleet_doc.data, [d.data for d in pools.values()], [d.data for d in policies.values()])

    def locate(finding: Finding) -> Document:
        if finding.kind == "AgentPool":
            return pools[finding.name]
        if finding.kind == "CommunicationPolicy":
            return policies[finding.name]
        return fleet_doc

    seen: set[tuple[Location, str]] = set()
    for finding in check_fleet(fleet, host if host is not None else host_facts()):
        diagnostic = _finding_diagnostic(finding, locate(finding), fleet_doc)
        # A problem in a fleet default is found once per inheriting pool; report it once.
        if (diagnostic.location, diagnostic.message) not in seen:
            seen.add((diagnostic.location, diagnostic.message))
            diagnostics.append(diagnostic)
    return fleet, diagnostics


def _finding_diagnostic(finding: Finding, document: Document, fleet_doc: Document) -> Diagnostic:
    path = list(finding.path)
    target = document
    if finding.kind == "AgentPool" and len(path) >= 2 and not _has_path(document.data, path):
        inherited = ["spec", "defaults", *path[1:]]
        if _has_path(fleet_doc.data, inherited):
            target, path = fleet_doc, inherited
    from clawctl.config.diagnostics import format_path

    return Diagnostic(target.locate(path), finding.message, finding.severity, finding.code, format_path(path),
                      finding.hint, target.index,
                      extra={"kind": finding.kind, "name": finding.name})


def _has_path(data: Any, path: list[Any]) -> bool:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _unit_errors(document: Document) -> list[Diagnostic]:
    """Unit values of a schema-valid document that match the syntax but do not parse (e.g. cpu '0m'),
    each at its own place: a Fleet's defaults or a pool's own blocks."""
    from clawctl.config.diagnostics import format_path
    from clawctl.config.model import POLICY_BLOCKS, Policies, block_unit_errors

    kind = document.data["kind"]
    spec = document.data.get("spec", {})
    blocks, prefix = (spec.get("defaults", {}), ["spec", "defaults"]) if kind == "Fleet" else (spec, ["spec"])
    if kind == "CommunicationPolicy" or not any(block in blocks for block in POLICY_BLOCKS):
        return []
    out: list[Diagnostic] = []
    raw = {block: blocks[block] for block in POLICY_BLOCKS if block in blocks}
    for exc in block_unit_errors(Policies, raw):
        path = [*prefix, *exc.path]
        out.append(Diagnostic(document.locate(path), f"{exc.path[-1]} {exc.message}", code="bad-unit",
                              path=format_path(path), hint="use a value greater than zero", document=document.index))
    return out
