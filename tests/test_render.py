"""Every view of one report, compared with golden files (the HTML page with its fresh
element id normalized), and the README's freeze strip kept current.

Regenerate after an intended change: ``pytest tests/test_render.py --update-golden``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tlrules
from tests.models import Containers, Tied
from tlrules.models import build
from tlrules.render import FORMATS, PICTURES, render
from tlrules.render.html import asset

GOLDEN = Path(__file__).parent / "golden"
RULES = """\
version: 1
name: fixture
rules:
  - "blocks.{-2..-1}": train
  - heads.cls: train
  - heads.cls.bias: freeze
  - "*norm*": freeze
  - embed: freeze
  - "*": freeze
"""


SELECTORS = """\
version: 1
name: selectors
rules:
  - match: "*"
    module: "BatchNorm*"
    action: freeze
  - "{blocks,heads}": train
  - match: "*"
    module: Sequential
    action: train
  - "*": freeze
"""


def _report(model_cls: type, rules: str = RULES) -> tlrules.Report:
    policy = tlrules.Policy.from_text(rules, "rules/fixture.yaml")
    return policy.audit(model_cls(), source=model_cls.__name__)


@pytest.mark.parametrize("model_cls", [Containers, Tied])
@pytest.mark.parametrize("fmt", FORMATS)
def test_render_matches_golden(fmt: str, model_cls: type, update_golden: bool) -> None:
    text = render(_report(model_cls), fmt)
    suffix = {"json": "json", "markdown": "md"}.get(fmt, "txt")
    path = GOLDEN / f"{model_cls.__name__.lower()}-{fmt}.{suffix}"
    if update_golden:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_rules_are_shown_with_their_module_selector(fmt: str, update_golden: bool) -> None:
    text = render(_report(Containers, SELECTORS), fmt)
    suffix = {"json": "json", "markdown": "md"}.get(fmt, "txt")
    path = GOLDEN / f"selectors-{fmt}.{suffix}"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text()
    label = {"json": '"module": "BatchNorm*"', "markdown": "`*` [module: `BatchNorm*`]"}
    assert label.get(fmt, "rule 1 '*' [module: BatchNorm*]") in text


def test_json_is_the_report_contract() -> None:
    report = _report(Tied)
    doc = json.loads(render(report, "json"))
    assert doc == report.to_dict()
    assert list(doc) == [
        "format",
        "policy",
        "model",
        "summary",
        "parameters",
        "rules",
        "norm_layers",
        "warnings",
    ]
    assert doc["format"] == "tlrules-report/1"
    assert doc["policy"] == {"name": "fixture", "path": "rules/fixture.yaml", "stage": None}
    assert doc["model"] == {"source": "Tied", "class": "Tied"}
    assert set(doc["parameters"][0]) == {"name", "shape", "numel", "action", "rule", "group"}
    assert doc["rules"][0] == {
        "rule": 1,
        "pattern": "blocks.{-2..-1}",
        "action": "train",
        "where": "fixture.yaml:4",
        "parameters": 0,
        "numel": 0,
    }
    assert {w["code"] for w in doc["warnings"]} == {"dead-rule", "nothing-trains"}
    with_selector = _report(Containers, SELECTORS).to_dict()["rules"]
    assert with_selector[0] == {
        "rule": 1,
        "pattern": "*",
        "module": "BatchNorm*",
        "action": "freeze",
        "where": "fixture.yaml:4",
        "parameters": 2,
        "numel": 6,
    }
    assert "module" not in with_selector[1]


def test_str_of_a_summary_is_the_headline_count() -> None:
    report = _report(Containers)
    assert str(report.summary) == "33 parameters (189 elements); train 6 (32), freeze 27 (157)"
    assert str(report).splitlines()[0] == f"Containers under fixture: {report.summary}"


def test_str_of_a_report_is_the_tree() -> None:
    report = _report(Containers)
    assert str(report) == render(report, "tree")


ASSETS = sorted(p.name for p in (Path(__file__).parents[1] / "src/tlrules/render/assets").iterdir())


@pytest.mark.parametrize(
    ("model_cls", "rules"), [(Containers, RULES), (Tied, RULES), (Containers, SELECTORS)]
)
@pytest.mark.parametrize("fmt", PICTURES)
def test_pictures_match_golden(fmt: str, model_cls: type, rules: str, update_golden: bool) -> None:
    text = re.sub(r"\btlr-[0-9a-f]{8}\b", "tlr-ID", render(_report(model_cls, rules), fmt))
    for name in ASSETS if fmt == "html" else ():  # the page's own files, inlined whole:
        assert asset(name) in text  # kept once, in render/assets
        text = text.replace(asset(name), f"/* render/assets/{name} */")
    which = "selectors" if rules is SELECTORS else model_cls.__name__.lower()
    path = GOLDEN / f"{which}-{fmt}.{fmt}"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text()


def test_readme_strip_is_current(update_golden: bool) -> None:
    """docs/resnet50-layer4-fc.svg is what ``tlrules audit resnet50
    rules/torchvision/resnet-layer4-fc.yaml --format svg`` draws today."""
    root = Path(__file__).parents[1]
    policy = tlrules.load(root / "rules" / "torchvision" / "resnet-layer4-fc.yaml")
    strip = render(policy.audit(build("resnet50"), source="resnet50"), "svg")
    path = root / "docs" / "resnet50-layer4-fc.svg"
    if update_golden:
        path.write_text(strip)
    assert strip == path.read_text()


def test_ipython_shows_the_tree_and_a_notebook_the_page() -> None:
    class Printer:  # what IPython's pretty printer hands _repr_pretty_
        def __init__(self) -> None:
            self.out: list[str] = []

        def text(self, chunk: str) -> None:
            self.out.append(chunk)

    report = _report(Containers)
    printer = Printer()
    report._repr_pretty_(printer, False)
    assert printer.out == [str(report)]
    page = report._repr_html_()
    assert page.startswith('<div class="tlrules" id="tlr-')
    assert '"title":"Containers under fixture"' in page
