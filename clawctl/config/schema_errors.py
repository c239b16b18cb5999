"""Turn jsonschema errors into diagnostics a person can act on.

Messages and hints come from the schema itself where it can say them
(``title``, ``x-hint``, ``x-unit``), so the schema stays the one place that
describes the language.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clawctl.config.diagnostics import Diagnostic, format_path
from clawctl.config.suggest import did_you_mean, dns_label
from clawctl.config.units import suggest_spelling
from clawctl.config.yaml_documents import Document

_JSON_TYPES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def schema_errors(document: Document, errors: Iterator[Any]) -> list[Diagnostic]:
    """Diagnostics for every jsonschema error of ``document``, one finding per problem."""
    out: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        for diag in _translate(document, error):
            key = (diag.path, diag.message)
            if key not in seen:
                seen.add(key)
                out.append(diag)
    return out


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _subject(path: list[Any], schema: dict[str, Any]) -> str:
    """What the message is about: the last key, with the list index after it (``command[1]``)."""
    for i in range(len(path) - 1, -1, -1):
        if isinstance(path[i], str):
            return format_path(path[i:])
    return "a document" if not path else str(schema.get("title") or "document")


def _diag(document: Document, path: list[Any], message: str, hint: str | None, *, key: bool = False, code: str = "schema") -> Diagnostic:
    return Diagnostic(document.locate(path, key=key), message, code=code, path=format_path(path), hint=hint,
                      document=document.index)


def _translate(document: Document, error: Any) -> list[Diagnostic]:
    path = list(error.absolute_path)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    keyword = error.validator
    value = error.instance
    subject = _subject(path, schema)
    x_hint = schema.get("x-hint")

    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in value if k not in schema.get("properties", {})]
        return [
            _diag(document, path + [extra], f"unknown key '{extra}'" + (f" in {format_path(path)}" if path else ""),
                  did_you_mean(extra, allowed) or ("allowed keys: " + ", ".join(allowed) if allowed else None),
                  key=True, code="unknown-key")
            for extra in extras
        ]
    if keyword == "required":
        missing = [k for k in error.validator_value if k not in value]
        where = f"in {format_path(path)}" if path else "in this document"
        return [_diag(document, path, f"missing required key '{name}' {where}", _required_hint(name), key=True,
                      code="missing-key") for name in missing]
    if "propertyNames" in error.schema_path:
        if path and path[-1] == "env" and str(value).startswith("CLAWCTL_"):
            return [_diag(document, path + [value], f"environment variable '{value}' is reserved for clawctl",
                          "clawctl sets the CLAWCTL_* variables of each agent itself; rename this one",
                          key=True, code="bad-key")]
        return [_diag(document, path + [value], f"'{value}' is not allowed as a key in {format_path(path)}",
                      _property_name_hint(path), key=True, code="bad-key")]
    if keyword == "const":
        expected = error.validator_value
        return [_diag(document, path, f"{subject} must be '{expected}', not {_describe(value)}",
                      x_hint or f"write {subject}: {expected}", code="bad-value")]
    if keyword == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else None
        title = schema.get("title") or subject
        return [_diag(document, path, f"{_describe(value)} is not a valid {title}; expected one of: " + ", ".join(choices),
                      hint or x_hint, code="bad-value")]
    if keyword == "type":
        expected = error.validator_value
        unit = schema.get("x-unit")
        if unit:
            suggestion = suggest_spelling(unit, value)
            hint = f"write {subject}: {suggestion}" if suggestion else x_hint
            return [_diag(document, path, f"{subject} must be a {schema.get('title') or unit}, not {_describe(value)}",
                          hint, code="bad-unit")]
        wanted = " or ".join(_JSON_TYPES.get(str(t), str(t))
                             for t in (expected if isinstance(expected, list) else [expected]))
        return [_diag(document, path, f"{subject} must be {wanted}, not {_describe(value)}",
                      _quoted_number_hint(value, expected) or x_hint or _type_hint(value, expected), code="bad-type")]
    if keyword == "pattern":
        unit = schema.get("x-unit")
        title = schema.get("title") or subject
        if unit:
            suggestion = suggest_spelling(unit, value)
            hint = f"write {subject}: {suggestion}" if suggestion else x_hint
            return [_diag(document, path, f"'{value}' is not a {title}", hint, code="bad-unit")]
        if title in ("name", "pool name", "pool name or '*'"):
            fixed = dns_label(str(value))
            hint = f"try '{fixed}'; {x_hint}" if fixed and fixed != value else x_hint
            return [_diag(document, path, f"'{value}' is not a valid {title}", hint, code="bad-name")]
        return [_diag(document, path, f"'{value}' is not a valid {title}", x_hint, code="bad-value")]
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = error.validator_value
        words = {"minimum": "at least", "exclusiveMinimum": "greater than", "maximum": "at most",
                 "exclusiveMaximum": "less than"}[keyword]
        return [_diag(document, path, f"{subject} must be {words} {bound}, not {_describe(value)}", x_hint,
                      code="out-of-range")]
    if keyword == "minItems":
        what = "must not be empty" if error.validator_value == 1 else f"needs at least {error.validator_value} items"
        return [_diag(document, path, f"{subject} {what}", x_hint, code="bad-value")]
    if keyword == "maxItems":
        return [_diag(document, path, f"{subject} has more than {error.validator_value} items", x_hint, code="bad-value")]
    if keyword == "uniqueItems":
        dupes = sorted({str(v) for i, v in enumerate(value) if v in value[:i]})
        return [_diag(document, path, f"{subject} lists {', '.join(repr(d) for d in dupes)} more than once",
                      "remove the repeated entries", code="duplicate")]
    if keyword in ("minLength", "maxLength"):
        words = "must not be empty" if keyword == "minLength" else f"is longer than {error.validator_value} characters"
        return [_diag(document, path, f"{subject} {words}", x_hint, code="bad-value")]
    return [_diag(document, path, error.message, x_hint)]


def _quoted_number_hint(value: Any, expected: Any) -> str | None:
    """The hint for the commonest type slip: a number written in quotes."""
    wanted = expected if isinstance(expected, list) else [expected]
    if isinstance(value, str) and ("integer" in wanted or "number" in wanted):
        try:
            float(value)
        except ValueError:
            return None
        return "remove the quotes around the number"
    return None


def _type_hint(value: Any, expected: Any) -> str | None:
    wanted = expected if isinstance(expected, list) else [expected]
    if isinstance(value, str) and "boolean" in wanted:
        return "YAML 1.2 booleans are true and false"
    if "string" in wanted and isinstance(value, (int, float, bool)):
        return "quote the value to make it a string"
    if "array" in wanted and isinstance(value, str):
        return "write a list: [a, b] or one '- item' per line"
    return None


def _required_hint(name: str) -> str | None:
    return {
        "apiVersion": "every document starts with apiVersion: clawctl/v1",
        "kind": "add kind: Fleet, AgentPool or CommunicationPolicy",
        "metadata": "add metadata: {name: my-name}",
        "name": "add name: with a lowercase name such as my-pool",
        "spec": "add the spec: block",
        "command": "add command: the agent's argv as a list, e.g. [python, -m, my_agent]",
        "rules": "add rules: a list of allow-rules, each with from:",
        "from": "add from: the pool the rule applies to, or '*'",
    }.get(name)


def _property_name_hint(path: list[Any]) -> str:
    if path and path[-1] == "env":
        return "variable names are letters, digits and '_', not starting with a digit; CLAWCTL_* names are reserved"
    return "use letters, digits, '.', '-', '_' and '/'"
