"""The HTML page and the SVG strip in a real browser: headless Chromium (Debian's
``chromium``) driven by Playwright. Each page is drawn from one audit, as
``tlrules audit ... --format html`` draws it, next to the JSON report of the same audit,
and every figure the page shows is compared with that JSON. No request may leave the page
(every request is routed, and a URL that is not ``file:`` fails the test), and the
console stays free of errors. A screenshot of each view is written to the test's tmp
folder; ``--update-golden`` also rewrites ``docs/report.png``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from benchmarks.policies import policy_text
from playwright.sync_api import Browser, Page, sync_playwright

import tlrules
from tests.toys import Containers
from tlrules.cli import main
from tlrules.engine import audit
from tlrules.models import build
from tlrules.patterns import Pattern, PatternSyntaxError, compiled
from tlrules.policy import load
from tlrules.render import fragment, html_page, render, stage_changes
from tlrules.render.text import size
from tlrules.report import Decision, Report, RuleUse

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,  # a real browser: its start alone takes seconds
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH: install Debian's 'chromium' package (.ci/run installs it)",
    ),
]

# name -> (model spec, policy, --stage)
CASES = {
    "resnet50": ("resnet50", "rules/torchvision/resnet-layer4-fc.yaml", None),
    "vit_b_16": ("torchvision:vit_b_16", "rules/torchvision/vit-last-blocks.yaml", None),
    "moe": ("benchmarks.models:DeepseekV3ForCausalLM", "moe-30.yaml", None),
    "stages": ("resnet50", "rules/torchvision/resnet-two-stage.yaml", "all"),
}


@dataclass
class Audit:
    page: Path  # the HTML page the CLI wrote
    stages: list[dict[str, Any]]  # the JSON report of each stage (one without stages)

    @property
    def names(self) -> list[str]:
        return [p["name"] for p in self.stages[0]["parameters"]]


@pytest.fixture(scope="module")
def audits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Audit]:
    """Each case audited once; its page and its JSON documents drawn from that audit."""
    folder = tmp_path_factory.mktemp("pages")
    (folder / "moe-30.yaml").write_text(policy_text("deepseek_v3", 30))
    out = {}
    for case, (spec, policy, stage) in CASES.items():
        loaded = load(str(ROOT / policy) if policy.startswith("rules/") else str(folder / policy))
        model = build(spec)
        parts = loaded.every_stage() if stage else [loaded]
        reports = [audit(part, model, source=spec) for part in parts]
        page = folder / f"{case}.html"
        page.write_text(stage_changes(reports, "html") if stage else render(reports[0], "html"))
        out[case] = Audit(page, [json.loads(render(r, "json")) for r in reports])
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@contextmanager
def opened(browser: Browser, url: str, scheme: str = "light") -> Iterator[Page]:
    """``url`` in a fresh page; afterwards, no console error and no request but ``file:``."""
    page = browser.new_page(color_scheme=scheme, viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else 0)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

    def only_files(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            problems.append(f"request: {route.request.url}")
            route.abort()

    page.route("**/*", only_files)
    page.goto(url)
    try:
        yield page
    finally:
        page.close()
    assert problems == []


def _open(browser: Browser, audit: Audit, scheme: str = "light") -> Any:
    return opened(browser, audit.page.as_uri(), scheme)


def _ready(page: Page) -> None:
    page.wait_for_selector(".tlrules[data-ready]")


def _rows(page: Page, selector: str = ".tlr-body .tlr-row") -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.name)")


def _text(page: Page, selector: str) -> str:
    return page.inner_text(selector).strip()


def _expand(page: Page, path: str) -> None:
    page.click(f'.tlr-row[data-name="{path}"] .tlr-toggle')


@pytest.mark.parametrize("case", CASES)
def test_counts_shown_equal_the_json_report(
    case: str, audits: dict[str, Audit], browser: Browser, tmp_path: Path
) -> None:
    audit = audits[case]
    with _open(browser, audit) as page:
        _ready(page)
        for s, doc in enumerate(audit.stages):
            panel = f'.tlr-panel[data-stage="{s}"]'
            sm = doc["summary"]
            shown = {
                key: _text(page, f'{panel} dd[data-summary="{key}"]')
                for key in ("parameters", "trainable", "frozen")
            }
            assert shown == {
                "parameters": f"{sm['parameters']:,} ({sm['numel']:,} elements)",
                "trainable": f"{sm['trainable']:,} ({sm['trainable_numel']:,} elements)",
                "frozen": f"{sm['frozen']:,} ({sm['frozen_numel']:,} elements)",
            }
            for rule in doc["rules"]:
                counts = _text(page, f'{panel} .tlr-pick[data-rule="{rule["rule"]}"] .tlr-counts')
                assert counts == f"{rule['parameters']:,} parameters, {rule['numel']:,} elements"
            adam = sm["memory"]["adam"]
            assert f"Adam/AdamW {size(adam['trainable'])} / {size(adam['all'])}" in _text(
                page, f'{panel} dd[data-summary="memory"]'
            )
        top: dict[str, list[int]] = {}
        for p in audit.stages[0]["parameters"]:
            counted = top.setdefault(p["name"].split(".")[0], [0, 0])
            counted[0] += 1
            counted[1] += p["numel"]
        rows = page.eval_on_selector_all(
            ".tlr-body > .tlr-kids > .tlr-row",
            "rows => rows.map(r => [r.dataset.name, r.children[1].textContent, "
            "r.children[2].textContent])",
        )
        leaves = set(audit.names)  # a top-level parameter's row leaves "params" empty
        assert rows == [
            [name, "" if name in leaves else f"{n:,}", f"{e:,}"] for name, (n, e) in top.items()
        ]
        page.screenshot(path=tmp_path / f"{case}.png", full_page=True)


@pytest.mark.parametrize(
    ("case", "path", "children"),
    [
        ("resnet50", ["layer4"], ["layer4.0", "layer4.1", "layer4.2"]),
        ("vit_b_16", ["encoder"], ["encoder.pos_embedding", "encoder.layers", "encoder.ln"]),
        ("moe", ["model", "model.layers"], [f"model.layers.{k}" for k in range(61)]),
    ],
)
def test_expanding_a_node_shows_its_children(
    case: str, path: list[str], children: list[str], audits: dict[str, Audit], browser: Browser
) -> None:
    audit = audits[case]
    tops = list(dict.fromkeys(n.split(".")[0] for n in audit.names))
    with _open(browser, audit) as page:
        _ready(page)
        assert _rows(page) == tops  # collapsed: the rows below are not built yet
        for node in path:
            _expand(page, node)
        last = path[-1]
        shown = [n for n in _rows(page) if n.startswith(f"{last}.")]
        assert shown == children
        _expand(page, last)
        assert not [n for n in _rows(page) if n.startswith(f"{last}.")]


@pytest.mark.parametrize(
    ("case", "glob"),
    [
        ("resnet50", "layer4.0.*bn*"),
        ("vit_b_16", "encoder.layers.encoder_layer_{-2..-1}.ln_*"),
        ("moe", "*.experts.{254..}.down_proj"),
    ],
)
def test_search_narrows_rows_to_what_the_glob_matches(
    case: str, glob: str, audits: dict[str, Audit], browser: Browser, tmp_path: Path
) -> None:
    audit = audits[case]
    names = audit.names
    found = _python_glob(glob, names)
    assert 0 < len(found) <= 500
    with _open(browser, audit) as page:
        _ready(page)
        before = _rows(page)
        page.fill(".tlr-search", glob)
        page.press(".tlr-search", "Enter")
        assert _text(page, ".tlr-status") == f"{len(found):,} of {len(names):,} parameters match"
        assert _rows(page, ".tlr-body .tlr-row[data-leaf]") == [names[i] for i in found]
        assert set(_rows(page, ".tlr-body > .tlr-kids > .tlr-row")) < set(before)
        page.screenshot(path=tmp_path / f"{case}-search.png")
        page.fill(".tlr-search", "layer[4")
        page.press(".tlr-search", "Enter")
        assert _text(page, ".tlr-status") == (
            "not a glob: unclosed '['; close the class with ']' or write '\\['"
        )
        assert _rows(page) == before  # no filter, and what the search opened is closed
        page.fill(".tlr-search", "")
        page.press(".tlr-search", "Enter")
        assert _rows(page) == before
        assert _text(page, ".tlr-status") == ""


@pytest.mark.parametrize("case", ["resnet50", "vit_b_16", "moe", "stages"])
def test_clicking_a_rule_highlights_exactly_its_parameters(
    case: str, audits: dict[str, Audit], browser: Browser, tmp_path: Path
) -> None:
    audit = audits[case]
    tops = list(dict.fromkeys(n.split(".")[0] for n in audit.names))
    with _open(browser, audit) as page:
        _ready(page)
        for s, doc in enumerate(audit.stages):
            for rule in doc["rules"]:
                number = rule["rule"]
                decided = [p["name"] for p in doc["parameters"] if p["rule"] == number]
                assert len(decided) == rule["parameters"]
                button = f'.tlr-pick[data-stage="{s}"][data-rule="{number}"]'
                page.click(button)
                status = _text(page, ".tlr-status")
                assert status.endswith(f": {len(decided):,} parameters highlighted")
                if len(decided) <= 500:  # shown expanded: every row, and no other
                    assert _rows(page, ".tlr-row.tlr-hl") == decided
                assert page.get_attribute(button, "aria-pressed") == "true"
                if case == "resnet50" and number == 1:
                    page.screenshot(path=tmp_path / f"{case}-rule.png", full_page=True)
                page.click(button)  # a second click clears it, and closes what it opened
                assert _rows(page, ".tlr-row.tlr-hl") == []
                assert _rows(page) == tops


def test_stages_side_by_side_show_what_each_stage_changes(
    audits: dict[str, Audit], browser: Browser, tmp_path: Path
) -> None:
    with _open(browser, audits["stages"]) as page:
        _ready(page)
        assert page.eval_on_selector_all(".tlr-panel h2", "hs => hs.map(h => h.textContent)") == [
            "stage head",
            "stage finetune",
        ]
        assert _text(page, '.tlr-panel[data-stage="1"] dd[data-summary="changes"]') == (
            "159 parameters change action (outlined in the tree)"
        )
        changed = page.eval_on_selector_all(
            ".tlr-body > .tlr-kids > .tlr-row",
            "rows => rows.filter(r => r.children[4].classList.contains('tlr-changed'))"
            ".map(r => r.dataset.name)",
        )
        assert changed == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
        cells = page.eval_on_selector_all(
            '.tlr-row[data-name="layer3"] .tlr-cell[data-action]',
            "cells => cells.map(c => c.dataset.action)",
        )
        assert cells == ["freeze", "train"]
        page.screenshot(path=tmp_path / "stages.png", full_page=True)


GLOBS = [
    "layer4",
    "*bn1",
    "*bn?.weight",
    "layer{1,3}.?.conv[12].weight",
    "layer[!4]*",
    "layer4.{0..1}.*",
    "layer{2..}",
    "layer4.{-1..-1}",
    "layer4.{-2..}",
    "*.{0..0}.*",
    "*.{-1..}.*",
    "fc\\.weight",
    "[]a-z]*",
    "encoder.layers.encoder_layer_{-4..-1}",
    "encoder.layers.encoder_layer_{9..10}.mlp.{0,3}",
    "model.layers.{-4..-1}.mlp.experts.{250..}",
    "*.experts.{8..11}.*",
    "*.experts.{007..011}.up_proj",
    "model.layers.{58..62}",
    "*weight",
    "nothing.{-1..}",
]
BAD_GLOBS = ["layer[4", "{a}", "layer}", "a{1,{2}}", "{5..2}", "x\\"]


@pytest.mark.parametrize("case", ["resnet50", "vit_b_16", "moe"])
def test_the_page_glob_is_the_policy_glob(
    case: str, audits: dict[str, Audit], browser: Browser
) -> None:
    names = audits[case].names
    with _open(browser, audits[case]) as page:
        _ready(page)
        page_found = page.evaluate(
            "([globs, names]) => globs.map(g => tlrulesGlob(g, names))", [GLOBS, names]
        )
        assert dict(zip(GLOBS, page_found, strict=True)) == {
            g: _python_glob(g, names) for g in GLOBS
        }
        errors = page.evaluate(
            "globs => globs.map(g => { try { tlrulesGlob(g, []); return null; }"
            " catch (e) { return [e.message, e.pos]; } })",
            BAD_GLOBS,
        )
        expected = []
        for g in BAD_GLOBS:
            with pytest.raises(PatternSyntaxError) as err:
                Pattern.parse(g)
            expected.append([str(err.value), err.value.pos])
        assert errors == expected


def _python_glob(glob: str, names: list[str]) -> list[int]:
    """The indexes of ``names`` that ``glob`` matches as a policy rule, by tlrules' matcher."""
    firsts = compiled((Pattern.parse(glob),), names).first_all(names)
    return [k for k, first in enumerate(firsts) if first == 0]


def test_a_large_model_paints_within_its_budget(
    audits: dict[str, Audit], browser: Browser, tmp_path: Path
) -> None:
    """45,395 tensors: collapsed, only the two top-level rows exist at first paint.
    ``benchmarks/bench_html.py`` records the time; this only catches a regression by
    a large factor on a busy machine (the goal is under 2 s)."""
    with _open(browser, audits["moe"]) as page:
        _ready(page)
        paint = page.evaluate(
            "() => performance.getEntriesByName('first-contentful-paint')[0].startTime"
        )
        assert paint < 6000
        assert len(_rows(page)) == 2
        page.screenshot(path=tmp_path / "moe.png")


def test_light_and_dark_schemes_keep_actions_apart(
    audits: dict[str, Audit], browser: Browser, tmp_path: Path, update_golden: bool
) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        with _open(browser, audits["resnet50"], scheme) as page:
            _ready(page)
            _expand(page, "layer4")
            colours[scheme] = page.evaluate(
                """() => ['.tlrules', '.tlr-train .tlr-sym', '.tlr-freeze .tlr-sym'].map(
                    s => getComputedStyle(document.querySelector(s))[
                        s === '.tlrules' ? 'backgroundColor' : 'color'])"""
            )
            symbols = page.eval_on_selector_all(
                ".tlr-body > .tlr-kids > .tlr-row .tlr-cell", "cs => cs.map(c => c.innerText)"
            )
            assert symbols[0].startswith("\u25cb\nfreeze") or symbols[0].startswith("\u25cb freeze")
            page.screenshot(path=tmp_path / f"resnet50-{scheme}.png", full_page=True)
            if update_golden and scheme == "light":  # the README's picture: fc highlighted
                page.click('.tlr-pick[data-rule="2"]')
                page.locator(".tlrules").screenshot(path=ROOT / "docs" / "report.png")
    assert colours["light"][0] == "rgb(255, 255, 255)"
    assert colours["dark"][0] == "rgb(13, 17, 23)"
    for background, train, freeze in colours.values():
        assert len({background, train, freeze}) == 3


def test_hostile_names_stay_text(tmp_path: Path, browser: Browser) -> None:
    name = "x</script><script>document['title']='pwned'</script>"
    report = Report(
        table=(
            Decision(f"{name}.w", (2,), 2, "train", 1),
            Decision("b&amp;<i>.w", (), 1, "freeze", None),
        ),
        rules=(RuleUse(1, "x*", "train", "p.yaml:4", 1, 2),),
        default="freeze",
        policy_name="<b>policy</b>",
        model_source="<img src=x>",
    )
    page_file = tmp_path / "hostile.html"
    page_file.write_text(html_page(report))
    with opened(browser, page_file.as_uri()) as page:
        _ready(page)
        assert page.title() == "tlrules: <img src=x> under <b>policy</b>"
        assert _rows(page) == [name, "b&amp;<i>"]
        assert _text(page, ".tlr-title") == "<img src=x> under <b>policy</b>"


def test_notebook_view_is_the_page_fragment(tmp_path: Path, browser: Browser) -> None:
    """Two reports in one notebook page (two outputs) each mount their own view."""
    policy = tlrules.Policy.from_text('version: 1\nrules:\n  - "blocks": train\n  - "*": freeze\n')
    applied = policy.apply(Containers())
    report = applied.report
    one, two = report._repr_html_(), applied._repr_html_()
    ids = re.findall(r'id="(tlr-[0-9a-f]{8})"', one + two)
    assert len(set(ids)) == 2
    assert re.sub("tlr-[0-9a-f]{8}", "tlr-ID", one) == re.sub("tlr-[0-9a-f]{8}", "tlr-ID", two)
    assert one.startswith('<div class="tlrules"') and "<html" not in one
    page_file = tmp_path / "notebook.html"
    page_file.write_text(f"<!DOCTYPE html><meta charset='utf-8'><body>{one}<hr>{two}</body>")
    with opened(browser, page_file.as_uri()) as page:
        page.wait_for_selector(f"#{ids[1]}[data-ready]")
        assert page.eval_on_selector_all(".tlr-title", "ts => ts.length") == 2
        _expand(page, "blocks")
        assert len(_rows(page, ".tlr-row[data-name^='blocks.']")) > 0
    assert fragment([report]) != one  # a fresh id each time


def test_svg_strip_draws_one_band_per_layer_of_a_stack(tmp_path: Path, browser: Browser) -> None:
    svg = tmp_path / "strip.svg"
    assert (
        main(
            [
                "audit",
                "resnet50",
                str(ROOT / CASES["resnet50"][1]),
                "--format",
                "svg",
                "-o",
                str(svg),
            ]
        )
        == 0
    )
    with opened(browser, svg.as_uri()) as page:
        bands = page.eval_on_selector_all(
            "svg > g", "gs => gs.map(g => g.querySelector('title').textContent)"
        )
        blocks = {"layer1": (3, 75_008, 70_400), "layer2": (4, 379_392, 280_064),
                  "layer3": (6, 1_512_448, 1_117_184)}  # fmt: skip
        frozen = [  # one band per layer of a numbered stack (docs/pictures.md)
            f"{stack}.{k}: 0 of {first if k == 0 else rest:,} elements train"
            for stack, (count, first, rest) in blocks.items()
            for k in range(count)
        ]
        assert bands == [
            "conv1: 0 of 9,408 elements train",
            "bn1: 0 of 128 elements train",
            *frozen,
            "layer4.0: 6,039,552 of 6,039,552 elements train",
            "layer4.1: 4,462,592 of 4,462,592 elements train",
            "layer4.2: 4,462,592 of 4,462,592 elements train",
            "fc: 2,049,000 of 2,049,000 elements train",
        ]
        page.screenshot(path=tmp_path / "strip.png")


def test_dead_and_shadowed_rules_warnings_and_norm_layers_are_shown(
    tmp_path: Path, browser: Browser
) -> None:
    policy = tlrules.Policy.from_text(
        "version: 1\nname: flagged\nrules:\n  - blocks: train\n  - nowhere: train\n"
        '  - "blocks.{0..3}": freeze\n  - "*": freeze\n',
        "rules/flagged.yaml",
    )
    report = policy.audit(Containers(), source="Containers")
    page_file = tmp_path / "flagged.html"
    page_file.write_text(html_page(report))
    with opened(browser, page_file.as_uri()) as page:
        _ready(page)
        flags = page.eval_on_selector_all(
            ".tlr-rule",
            "items => items.map(i => [i.className, i.querySelector('.tlr-label')"
            ".textContent, i.querySelector('.tlr-flag')?.textContent ?? null])",
        )
        assert flags == [
            ["tlr-rule", "rule 1 'blocks'", None],
            ["tlr-rule tlr-dead", "rule 2 'nowhere'", "dead"],
            ["tlr-rule tlr-shadowed", "rule 3 'blocks.{0..3}'", "shadowed"],
            ["tlr-rule", "rule 4 '*'", None],
        ]
        warnings = page.eval_on_selector_all(".tlr-warnings li", "ls => ls.map(l => l.textContent)")
        assert warnings == [f"warning[{w.code}]: {w.message}" for w in report.warnings]
        stats = [n.stats for n in report.norm_layers]
        assert _text(page, ".tlr-norms summary") == (
            f"norm layers: {stats.count('frozen')} with frozen statistics, "
            f"{stats.count('update')} updating"
        )
        page.click(".tlr-norms summary")
        assert page.eval_on_selector_all(".tlr-norms li", "ls => ls.map(l => l.textContent)") == [
            f"{n.name}: {n.stats}" for n in report.norm_layers
        ]
