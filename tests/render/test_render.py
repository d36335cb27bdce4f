"""Every view of one report, compared with golden files (the HTML page with its fresh
element id normalized), and the README's freeze strip kept current.

Regenerate after an intended change: ``pytest tests/render/test_render.py --update-golden``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

import tlrules
from tests.toys import Containers, Tied
from tlrules.models import build
from tlrules.render import CHECK_FORMATS, FORMATS, PICTURES, render, render_check
from tlrules.render.html import asset
from tlrules.report.checked import CheckResult, CheckSummary, CheckWarning, Violation

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
        "optimizer",  # issue 26: a backward-compatible addition
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


ASSETS = ("glob.js", "report.css", "report.js")  # what the audit page inlines
CHECK_ASSETS = ("report.css", "check.css")  # what the check page inlines


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
    root = Path(__file__).parents[2]
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


def test_every_asset_is_inlined_by_a_page() -> None:
    folder = Path(__file__).parents[2] / "src/tlrules/render/assets"
    assert {p.name for p in folder.iterdir()} == {*ASSETS, *CHECK_ASSETS}


HOSTILE = "x</td><script>alert(1)</script>.w"
CHECKED = CheckResult(
    CheckSummary(
        compared=12_345, frozen_ok=12_000, violations=3, unchanged_trainable=1, only_before=1,
        only_after=1, frozen=12_003, frozen_numel=25_557_032, frozen_ok_numel=25_000_000,
    ),
    (
        Violation("layer2.0.conv1.weight", 3, "frozen by rule 3 '*' (p.yaml:6)", 7.45e-09, 1.4e-05),
        Violation(
            "bn1.running_var", None,
            "statistics of norm layer 'bn1', which the policy keeps fixed (norm_stats)",
            None, None,
        ),
        Violation(HOSTILE, 1, "frozen by rule 1 'x*' (p.yaml:4)", None, None, "shape [3] -> [4]"),
    ),
    (
        CheckWarning("unchanged-trainable", "'fc.bias' is trained by rule 2 'fc' (p.yaml:5) "
                     "but did not change at all", "fc.bias", 2),
        CheckWarning("only-before", f"{HOSTILE!r} is in the checkpoint before training but "
                     "not after", HOSTILE, 1),
        CheckWarning("only-after", "'head.w' is in the checkpoint after training but not "
                     "before", "head.w"),
    ),
    before="runs/<before>.safetensors",
    after="runs/after.safetensors",
    policy_name="<b>fixture</b>",
    policy_path="p.yaml",
    stage="head",
    atol=1e-6,
)  # fmt: skip


@pytest.mark.parametrize("fmt", CHECK_FORMATS)
def test_check_views_match_golden(fmt: str, update_golden: bool) -> None:
    """What ``tlrules check`` found, in each view; the page's inlined styles are named."""
    text = render_check(CHECKED, fmt)
    for name in CHECK_ASSETS if fmt == "html" else ():
        assert text.count(asset(name)) == 1
        text = text.replace(asset(name), f"/* render/assets/{name} */")
    path = GOLDEN / f"check-{fmt}.{ {'text': 'txt', 'markdown': 'md'}.get(fmt, fmt) }"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text()


def test_the_check_page_escapes_names_and_shows_a_verdict_either_way() -> None:
    page = render_check(CHECKED, "html")
    assert "<script>" not in page and "<b>" not in page
    assert f'<tr data-name="{html.escape(HOSTILE)}">' in page
    assert (
        '<p class="tlr-verdict tlr-failed"><span class="tlr-sym">\u2717</span> FAILED: 3 ' in page
    )
    summary = CheckSummary(2, 1, 0, 0, 0, 0, frozen=1, frozen_numel=6, frozen_ok_numel=6)
    held = CheckResult(summary, (), (), "a", "b")
    shown = render_check(held, "html")
    assert (
        '<p class="tlr-verdict tlr-ok"><span class="tlr-sym">\u2713</span> ok: 1 frozen '
        "tensor, 6 elements, bit-identical" in shown
    )
    assert "<h2>" not in shown  # no violations, no warnings: no sections for them
    assert held._repr_html_() == shown.split("<body>\n")[1].split("</body>")[0]


@pytest.mark.slow
def test_the_strip_of_an_llm_draws_each_layer_and_its_trained_norms(tmp_path: Path) -> None:
    """A stack's layers are bands of their own, none too thin to see, with the stack's
    range under them; a trained norm inside a frozen layer is a visible run."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=2, num_key_value_heads=1, intermediate_size=128,
        vocab_size=256, num_hidden_layers=8, architectures=["LlamaForCausalLM"],
    )  # fmt: skip
    config.save_pretrained(tmp_path)
    policy = tlrules.Policy.from_text(
        "version: 1\nrules:\n  - model.layers.{-2..-1}: train\n  - '*norm': train\n"
        "  - '*': freeze\n"
    )
    strip = render(policy.audit(build(f"hf:{tmp_path}")), "svg")
    bands = re.findall(
        r"<g><title>([^:]+): ([\d,]+) of ([\d,]+) elements train</title>(.*?)</g>", strip, re.S
    )
    assert [name for name, *_ in bands] == [
        "model",
        *(f"model.layers.{k}" for k in range(8)),
        "model",
        "lm_head",
    ]
    for name, trained, total, rects in bands:
        widths = [float(w) for w in re.findall(r'width="([\d.]+)"', rects)]
        frame, runs = widths[-1], widths[:-1]
        assert frame >= 3 and all(w >= 1.5 for w in runs), name
        if name.startswith("model.layers.") and int(name.rsplit(".", 1)[1]) < 6:
            # frozen layers whose two norms train: a frozen run, then a visible trained one
            assert trained == "128" and len(runs) == 2 and 'class="train"' in rects, name
        elif name.startswith("model.layers."):
            assert trained == total and len(runs) == 1, name
    assert 'class="label">model.layers.{0..7}</text>' in strip
