"""``tlrules check ... --format html -o PAGE`` in a real browser (headless Chromium, as in
``test_html.py``): a real resnet18 state before, and after with one frozen weight nudged
and one trained bias left as it was. The counts the page shows are the
``tlrules-check/1`` document's, the violation row names the tensor and the rule, and no
request leaves the page; screenshots of both colour schemes go to the test's tmp folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from playwright.sync_api import Browser, sync_playwright
from safetensors.torch import save_file

from tests.render.test_html import CHROMIUM, opened
from tests.render.test_render import CHECKED, HOSTILE
from tlrules.cli import main
from tlrules.render import render_check

pytestmark = [
    pytest.mark.slow,  # a real browser: its start alone takes seconds
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH: install Debian's 'chromium' package (.ci/run installs it)",
    ),
]
VERDICT = (
    "FAILED: 1 frozen tensor changed; proven: 89 frozen tensors, 2,713,551 elements, bit-identical"
)
POLICY = """\
version: 1
name: resnet-layer4-fc
rules:
  - layer4: train
  - fc: train
  - "*": freeze
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def test_the_check_page_shows_what_the_json_document_holds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    browser: Browser,
) -> None:
    """The page and the JSON document drawn from one pair of files, through the CLI."""
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text(POLICY)
    torch.manual_seed(0)
    before = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    after = {k: v.clone() for k, v in before.items()}
    for name in after:  # training moved every trained tensor but fc.bias
        if name.startswith(("layer4.", "fc.weight")) and after[name].is_floating_point():
            after[name] += 0.01
    after["layer2.0.conv1.weight"][3, 2, 1, 0] += 0.5  # and one frozen weight
    save_file(before, "before.safetensors")
    save_file(after, "after.safetensors")
    files = ["check", "policy.yaml", "before.safetensors", "after.safetensors"]
    assert main([*files, "--format", "html", "-o", "check.html"]) == 1
    assert main([*files, "--format", "json"]) == 1
    html = Path("check.html").read_text()
    assert not re.search(r"(?i)https?:|src=|<link|@import|url\(|<script", html)  # self-contained
    document = json.loads(capsys.readouterr().out)
    (violation,) = document["violations"]
    assert violation["name"] == "layer2.0.conv1.weight"
    assert [w["code"] for w in document["warnings"]] == ["unchanged-trainable"]
    colours = {}
    for scheme in ("light", "dark"):
        with opened(browser, Path("check.html").resolve().as_uri(), scheme) as page:
            assert page.title() == f"tlrules check: {VERDICT}"
            shown = page.eval_on_selector_all(
                "dd[data-summary]", "ds => ds.map(d => [d.dataset.summary, d.textContent])"
            )
            assert shown == [[k, f"{n:,}"] for k, n in document["summary"].items()]
            rows = page.eval_on_selector_all(
                ".tlr-violations tbody tr",
                "rs => rs.map(r => [...r.children].map(c => c.innerText.trim()))",
            )
            assert rows == [
                [
                    "\u2717 layer2.0.conv1.weight",
                    "rule 3",
                    f"{violation['max_abs_diff']:.3g}",
                    f"{100 * violation['changed_fraction']:.3g}%",
                    "frozen by rule 3 '*' (policy.yaml:6)",
                ]
            ]
            warnings = page.eval_on_selector_all(
                ".tlr-warnings .tlr-text", "ls => ls.map(l => l.textContent)"
            )
            assert warnings == [
                f"warning[{w['code']}]: {w['message']}" for w in document["warnings"]
            ]
            assert page.inner_text(".tlr-verdict") == (f"\u2717 {VERDICT}")
            colours[scheme] = page.evaluate(
                """() => ['.tlrules', '.tlr-verdict', 'dt', 'body'].map(s => getComputedStyle(
                    document.querySelector(s))[s === 'dt' || s.startsWith('.tlr-') ? 'color'
                    : 'backgroundColor'])"""
            )
            page.screenshot(path=tmp_path / f"check-{scheme}.png", full_page=True)
    assert colours["light"][0] == "rgb(255, 255, 255)"
    assert colours["dark"][0] == "rgb(13, 17, 23)"
    for background, failed, muted, body in colours.values():
        assert len({background, failed, muted}) == 3
        assert body == background  # the page's whole height, below the content too


def test_hostile_names_on_the_check_page_stay_text(tmp_path: Path, browser: Browser) -> None:
    page_file = tmp_path / "hostile.html"
    page_file.write_text(render_check(CHECKED, "html"))
    with opened(browser, page_file.as_uri()) as page:
        assert page.eval_on_selector_all("script", "ss => ss.length") == 0
        names = page.eval_on_selector_all("tbody tr", "rs => rs.map(r => r.dataset.name)")
        assert names == [v.name for v in CHECKED.violations]
        assert HOSTILE in page.inner_text(".tlr-violations")
        assert "<b>fixture</b>" in page.inner_text(".tlr-headline")
