"""The simple-subset parser agrees with the full libyaml path on every text it accepts.

It may decline any text (the full path then reads it); it must never accept a text
the full path rejects, nor read one differently: same documents, indices, values
and value types. Checked on handwritten cases, on every config file in the repository
and on thousands of randomly mutated ones.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml.resolver import implicit_resolvers

from clawctl.config.simple_yaml import TYPING_RULES, parse_simple
from clawctl.config.yaml_nodes import parse_text
from tests.builders import fleet_yaml

ROOT = Path(__file__).resolve().parents[2]


def typed(value: Any) -> Any:
    """``value`` with every scalar's type spelled out (1 == 1.0 == True in Python)."""
    if isinstance(value, dict):
        return {"dict": [(k, typed(v)) for k, v in value.items()]}
    if isinstance(value, list):
        return {"list": [typed(v) for v in value]}
    return (type(value).__name__, value)


def full(text: str) -> list[tuple[int, Any]] | None:
    """The full path's documents, or None when it reports any problem."""
    documents, problems = parse_text("f.yaml", text)
    return None if problems else [(d.index, typed(d.data)) for d in documents]


def agrees(text: str) -> bool:
    """True when the simple parser declines ``text`` or reads it as the full path does."""
    simple = parse_simple(text)
    return simple is None or full(text) == [(i, typed(data)) for i, data in simple]


def test_typing_rules_are_ruamels_yaml_1_2_table() -> None:
    theirs = [(tag.rsplit(":", 1)[1], regexp.pattern, "".join(firsts))
              for versions, tag, regexp, firsts in implicit_resolvers
              if (1, 2) in versions and not tag.endswith((":value", ":yaml"))]
    assert [(tag, pattern.pattern, firsts) for tag, pattern, firsts in TYPING_RULES] == theirs


ACCEPTED = {
    "scalars": "a: -5\nb: +3\nc: 0o17\nd: 0x1F\ne: 1_000\nf: 1.5e3\ng: .5\nh: ~\ni: null\nj: True\n"
               "k: 2001-12-14\nl: 2001-12-14 10:00:00\nm: yes\no: 010\np: 0b1_1\nq: =\nr:\n",
    "plain and quoted": "a: 'it''s'  # c\nb: \"q: x\"\nc: a:b\nd: x#y\ne: x # y\nf: -m\ng: --flag=1\n"
                        "h: http://x/y?z=1\ni: a, b\nj: x[1]\nk: ''\nl: \"\"\n",
    "sequences": "- - a\n  - b\n- - c\n-\n  - d\n- e: 1\n  f:\n  - g\n  - h\n  i: {j: k, l: 'm'}\n-\n",
    "same-indent lists": "top:\n  list:\n  - x\n  - y\n  after: 1\nother:\n    deep:\n        deeper: [1, '3', \"4\"]\n",
    "flow": "a: []\nb: {}\nc: [a, [b, {c: d}], 'e']\nd: {e: [1, 2], f: {g: h}}\ne: [ x , y ]\n",
    "keys": "k.e-y/x_: v\n_k: v\nA: {B: [c, d]}\nyes: 1\nno: 2\non: 3\n",
    "documents": "--- # doc\na: 1\n--- \n---\n- x\n",
    "leading comment": "# c\n---\na: 1\n",
    "trailing marker": "a: 1\n---\n",
    "crlf": "a: 1\r\nb:\r\n  - 'x' # c\r\n  - [y, z]\r\n---\r\nc: d\r\n",
    "policy rules": "rules:\n- from: a\n  messages: [b, c]\n  events: {publish: [a.*], subscribe: []}\n"
                    "- from: b\n  sharedState:\n    read: [x]\n",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_texts_read_as_the_full_path_reads_them(name: str) -> None:
    text = ACCEPTED[name]
    assert parse_simple(text) is not None, "meant to exercise the simple path"
    assert full(text) is not None
    assert agrees(text)


DECLINED = {
    "anchor": "a: &x 1\nb: *x\n",
    "tag": "a: !!str 1\n",
    "merge": "a: {x: 1}\nb:\n  <<: {y: 2}\n",
    "block scalar": "a: |\n  text\n",
    "multi-line plain": "a: one\n  two\n",
    "multi-line flow": "a: [1,\n  2]\n",
    "escape": "a: \"x\\ny\"\n",
    "tab": "a:\tb\n",
    "lone cr": "a: 1\rb: 2\n",
    "non-ascii": "a: 'Zürich'\n",
    "document end": "a: 1\n...\n",
    "directive": "%YAML 1.2\n---\na: 1\n",
    "duplicate key": "a: 1\na: 2\n",
    "non-string key": "1: a\n",
    "boolean key": "true: a\n",
    "quoted key": "'a': 1\n",
    "infinity": "a: .inf\n",
    "scalar document": "just text\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "value after mapping": "a: b: c\n",
    "unclosed": "a: [b\n",
    "question mark in flow": "a: [b?c]\n",
    "trailing comma": "a: [b, ]\n",
    "deep": "a: " + "[" * 50 + "]" * 50 + "\n",
}


@pytest.mark.parametrize("name", DECLINED)
def test_everything_else_is_declined(name: str) -> None:
    assert parse_simple(DECLINED[name]) is None


def corpus() -> list[str]:
    files = [*ROOT.glob("sample-configs/**/*.yaml"), *ROOT.glob("tests/fixtures/**/*.yaml")]
    return [path.read_text(encoding="utf-8", errors="replace") for path in sorted(files)]


def test_every_config_in_the_repository() -> None:
    texts = [*corpus(), fleet_yaml(3), fleet_yaml(2).replace("\n", "\r\n"), *ACCEPTED.values()]
    assert all(agrees(text) for text in texts)
    simple = sum(parse_simple(text) is not None for text in texts)
    assert simple > len(texts) // 2, "most real files are meant to take the simple path"


SIGNIFICANT = [*" -:#'\"[]{},\n&*!|>?%@`~.0123456789aetn_\\\t\r", "\r\n"]


def mutate(text: str, rng: random.Random) -> str:
    """``text`` with one to three random edits of characters, indentation or lines."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        at = rng.randrange(len(text) + 1)
        edit = rng.randrange(6)
        if edit == 0:
            text = text[:at] + text[at + 1:]
        elif edit == 1:
            text = text[:at] + rng.choice(SIGNIFICANT) + text[at:]
        else:
            if edit == 2:
                lines.insert(i, lines[j])
            elif edit == 3:
                lines[i] = " " * rng.randint(0, 4) + lines[i].lstrip(" ")
            elif edit == 4:
                lines[i], lines[j] = lines[j], lines[i]
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


def test_mutated_configs_are_declined_or_read_alike() -> None:
    rng = random.Random(20261122)
    seeds = [*corpus(), fleet_yaml(3), fleet_yaml(2).replace("\n", "\r\n"), *ACCEPTED.values()]
    accepted = 0
    for _ in range(6000):
        text = mutate(rng.choice(seeds), rng)
        assert agrees(text), text
        accepted += parse_simple(text) is not None
    assert accepted > 1000, "the mutations are meant to exercise the simple path"
