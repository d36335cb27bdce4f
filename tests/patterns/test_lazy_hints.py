"""The closest names a dead rule's warning suggests are found when the message is first
read (by a view, ``to_dict`` or the caller), once, also when threads read it at once;
the text is the one the eager code wrote (issue 16)."""

from __future__ import annotations

import copy
import difflib
import functools
import json
import pickle
import re
import sys
import threading
from collections.abc import Iterator, Sequence

import pytest
import torch
import torchvision
from torch import nn

import tlrules
from tests.llm_names import all_llm_names
from tlrules.engine import reporting
from tlrules.patterns import NameShapes, closest_names
from tlrules.render import to_json
from tlrules.report import AuditWarning, HintedWarning

POLICY = """\
version: 1
rules:
  - layer4: train
  - "layer4.{3..5}": train
  - fc: train
  - fc.bias: freeze
  - layer5: train
  - "*": freeze
"""
DEAD = {
    2: "<policy>:4:5: rule 2: pattern 'layer4.{3..5}' matched no parameter; the closest "
    "names are 'layer3.5', 'layer4.2', 'layer4.1'",
    5: "<policy>:7:5: rule 5: pattern 'layer5' matched no parameter; the closest names are "
    "'layer3.5', 'layer4', 'layer3'",
}
SHADOWED = (
    "<policy>:6:5: rule 4: pattern 'fc.bias' only matches parameters that earlier rules "
    "already decided (rule 3); move it up or remove it"
)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The patterns ``closest_names`` is asked about while the test runs."""
    asked: list[str] = []
    real = reporting.closest_names

    def counted(pattern: str, names: Sequence[str] | NameShapes, n: int = 3) -> list[str]:
        asked.append(pattern)
        return real(pattern, names, n)

    monkeypatch.setattr(reporting, "closest_names", counted)
    yield asked


def resnet() -> nn.Module:
    with torch.device("meta"):
        return torchvision.models.resnet50()


def test_apply_finds_no_hint_and_every_view_shows_the_same_one(calls: list[str]) -> None:
    applied = tlrules.Policy.from_text(POLICY).apply(resnet())
    warnings = applied.report.warnings
    assert [(w.code, w.rule) for w in warnings] == [
        ("dead-rule", 2),
        ("shadowed-rule", 4),
        ("dead-rule", 5),
    ]
    assert calls == []  # which rules are dead is known; their hints are not looked for
    text = str(applied)
    assert calls == ["layer4.{3..5}", "layer5"]
    assert all(f"warning[dead-rule]: {m}" in text for m in DEAD.values())
    assert f"warning[shadowed-rule]: {SHADOWED}" in text
    doc = json.loads(to_json(applied.report))
    assert [w["message"] for w in doc["warnings"]] == [DEAD[2], SHADOWED, DEAD[5]]
    assert applied.to_dict()["warnings"] == doc["warnings"]
    assert calls == ["layer4.{3..5}", "layer5"]  # found once, then kept


def test_a_hinted_warning_is_the_plain_warning() -> None:
    report = tlrules.Policy.from_text(POLICY).audit(resnet())
    dead = report.warnings[0]
    assert isinstance(dead, HintedWarning)
    plain = AuditWarning("dead-rule", DEAD[2], 2)
    assert dead == plain
    assert plain == dead
    assert hash(dead) == hash(plain)
    assert repr(dead) == repr(plain).replace("AuditWarning", "HintedWarning", 1)
    for copied in (pickle.loads(pickle.dumps(dead)), copy.deepcopy(dead)):
        assert type(copied) is AuditWarning
        assert copied == plain


@pytest.fixture
def switching_often() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_reading_one_report_find_each_hint_once(
    calls: list[str], switching_often: None
) -> None:
    report = tlrules.Policy.from_text(POLICY).audit(resnet())
    start = threading.Barrier(8)
    seen: list[list[str]] = []

    def read() -> None:
        start.wait()
        seen.append([w.message for w in report.warnings])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [[DEAD[2], SHADOWED, DEAD[5]]] * 8
    assert sorted(calls) == ["layer4.{3..5}", "layer5"]


_DIGITS = re.compile(r"\d+")
_META = re.compile(r"^re:|[*?\[\]{}()\\^$+|]|\{[^}]*\}")


def eager_closest(pattern: str, names: Sequence[str], n: int = 3) -> list[str]:
    """``closest_names`` as it was before issue 16: the reference."""
    literal = _META.sub("", pattern).strip(".")
    depth = literal.count(".") + 2
    shapes: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".")
        for k in range(min(len(parts), depth)):
            prefix = ".".join(parts[: k + 1])
            shapes.setdefault(_DIGITS.sub("#", prefix), set()).add(prefix)
    near = difflib.get_close_matches(_DIGITS.sub("#", literal), list(shapes), n=n, cutoff=0.5)
    numbers = set(_DIGITS.findall(literal))
    pool: list[str] = []
    for shape in near:
        ranked = sorted(shapes[shape], key=lambda c: (-len(numbers & set(_DIGITS.findall(c))), c))
        pool += ranked[:100]
    return difflib.get_close_matches(literal, pool, n=n, cutoff=0.5)


PATTERNS = [
    "layer5",
    "layer4.{3..5}",
    "re:.*\\.mlp\\.experts\\..*",
    "model.layers.{80..95}",
    "model.layers.*.mlp.experts.{64..}",
    "model.layer.3.self_attn.q",
    "mlp.experts.12.gate_proj",
    "lm_heads",
    "encoder.layer.11",
    "",
    "...",
    "*",
]


@functools.cache
def name_lists() -> list[list[str]]:
    return [
        [n for n, _ in resnet().named_parameters()],
        list(all_llm_names()),
        ["", ".a", "a..b", "a.", "x.1.y", "x.10.y", "x.1"],
    ]


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_closest_names_are_the_eager_ones(pattern: str) -> None:
    for names in name_lists():
        shared = NameShapes(names)
        assert closest_names(pattern, names) == eager_closest(pattern, names)
        assert closest_names(pattern, shared) == eager_closest(pattern, names)
