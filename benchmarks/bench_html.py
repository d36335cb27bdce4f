"""The HTML report in headless Chromium: how long until the page is drawn, and how long a
click or a search takes, for resnet50 and the 45,395-tensor DeepSeek-V3-sized MoE.

``python -m benchmarks --only html`` (needs ``playwright`` and Debian's ``chromium``; not
in the default set, which runs without a browser). Each of 5 rounds (2 with ``--quick``)
opens the page in a fresh browser context. Figures, per model (every round's, in ms):

- ``render``: the Python side, ``render(report, "html")`` for an audit already made;
- ``first paint``: ``first-contentful-paint`` of the page from a ``file:`` URL (the data
  parsed, the tree built, the collapsed rows drawn);
- ``ready``: when the page's script finished its first draw (``data-ready``);
- ``expand``, ``search``, ``highlight``: the time for one expand click, one search (a
  glob over every name) and one click on a rule, each until the rows are redrawn;
- ``heap``: the page's JavaScript heap after the first draw.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

import tlrules
from tlrules.render import render

from .models import build
from .policies import policy_text

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # model -> (policy text, a node to expand, a search glob)
    "resnet50": (
        (ROOT / "rules/torchvision/resnet-layer4-fc.yaml").read_text(),
        "layer4",
        "layer{3..4}.*bn*",
    ),
    "deepseek_v3": (policy_text("deepseek_v3", 30), "model", "*.experts.{250..}.*"),
}
TIMED = """async ([what, arg]) => {
    const t = performance.now();
    if (what === 'search') {
        const box = document.querySelector('.tlr-search');
        box.value = arg;
        box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
    } else {
        document.querySelector(arg).click();
    }
    await new Promise(requestAnimationFrame);
    return performance.now() - t;
}"""


def _round(browser: Browser, page_file: Path, node: str, glob: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(page_file.as_uri())
    page.wait_for_selector(".tlrules[data-ready]")
    figures = page.evaluate(
        """() => ({
            paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,
            ready: Number(document.querySelector('.tlrules').dataset.ready),
            heap: performance.memory.usedJSHeapSize / 2 ** 20,
        })"""
    )
    figures["expand"] = page.evaluate(TIMED, ["click", f'.tlr-row[data-name="{node}"] .tlr-toggle'])
    figures["search"] = page.evaluate(TIMED, ["search", glob])
    figures["highlight"] = page.evaluate(TIMED, ["click", '.tlr-pick[data-rule="1"]'])
    context.close()
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        for name, (text, node, glob) in CASES.items():
            report = tlrules.Policy.from_text(text, f"{name}.yaml").audit(build(name), source=name)
            renders = []
            for _ in range(rounds):
                start = time.perf_counter()
                page = render(report, "html")
                renders.append((time.perf_counter() - start) * 1e3)
            page_file = Path(tmp) / f"{name}.html"
            page_file.write_text(page, encoding="utf-8")
            runs = [_round(browser, page_file, node, glob) for _ in range(rounds)]
            runs_by = {k: [r[k] for r in runs] for k in runs[0]}
            out[name] = {
                "tensors": len(report.decisions),
                "page_bytes": len(page.encode()),
                "render_ms": renders,
                **{f"{k}_ms" if k != "heap" else "heap_mib": v for k, v in runs_by.items()},
            }
            print(f"{name}: {len(report.decisions):,} tensors, page {len(page.encode()):,} bytes")
            for key, values in [("render", renders), *runs_by.items()]:
                unit = "MiB" if key == "heap" else "ms"
                print(
                    f"  {key:10} {statistics.median(values):8.1f} {unit} "
                    f"({min(values):.1f}-{max(values):.1f})"
                )
        browser.close()
    return out
