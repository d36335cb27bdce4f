"""The freeze strip: one SVG band per top-level module, its width by elements, the
elements that train solid blue and the frozen ones hatched orange, in model order. Small
and deterministic, for a README or a pull-request comment.

A stack of numbered layers (``model.layers.0``, ``layer4.2``: the first all-digit segment
of a name, with at least two numbers under one path) is drawn one band per layer, each
at least ``MIN_LAYER`` wide, with the stack's range under them (``model.layers.{0..7}``);
what trains inside a band is at least ``MIN_RUN`` wide. So which layers of a Llama
train, and its trained norms, show at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from ..report import Report

WIDTH = 720
PAD = 8
GAP = 2  # between bands
BAND = 22  # band height
MIN_BAND = 3  # the narrowest band, so that a small module still shows
MIN_LAYER = 6  # the narrowest band of one layer of a stack
MIN_RUN = 1.5  # the narrowest run of one action inside a band
CHAR = 5.6  # about the width of one character of a 10px label

STYLE = """\
<style>
  .bg { fill: #ffffff; } text { fill: #1b1f24; font: 11px system-ui, sans-serif; }
  .title { font-size: 13px; font-weight: 600; } .muted, .label { fill: #59636e; }
  .label { font-size: 10px; }
  .train { fill: #0072b2; } .frame { fill: none; stroke: #59636e; stroke-width: 0.5; }
  @media (prefers-color-scheme: dark) {
    .bg { fill: #0d1117; } text { fill: #e6edf3; } .muted, .label { fill: #9198a1; }
    .train { fill: #56b4e9; }
  }
</style>
<defs>
  <pattern id="tlr-frozen" patternUnits="userSpaceOnUse" width="5" height="5"
           patternTransform="rotate(45)">
    <rect width="5" height="5" fill="#fbe3c4"/>
    <line x1="1" y1="0" x2="1" y2="5" stroke="#b35900" stroke-width="2"/>
  </pattern>
</defs>
"""


@dataclass
class _Band:
    name: str
    numel: int = 0
    runs: list[tuple[str, int]] = field(default_factory=list)  # (action, elements) in order
    stack: str | None = None  # the stack this band is one layer of; ``name`` is its number

    def add(self, action: str, numel: int) -> None:
        self.numel += numel
        if self.runs and self.runs[-1][0] == action:
            self.runs[-1] = (action, self.runs[-1][1] + numel)
        else:
            self.runs.append((action, numel))


def _layer(name: str) -> tuple[str, str] | None:
    """``("model.layers", "3")`` for ``model.layers.3.mlp.weight``: the path before the
    first all-digit segment, and that segment; ``None`` for a name without one."""
    parts = name.split(".")
    for k in range(1, len(parts) - 1):
        if parts[k].isdigit():
            return ".".join(parts[:k]), parts[k]
    return None


def _bands(report: Report) -> list[_Band]:
    """Top-level modules in model order, each layer of a stack its own band (a run of
    consecutive names per band); a tied alias is counted once, under its first name."""
    kept = [d for d in report.decisions if d.tied_to is None]
    layers = [_layer(d.name) for d in kept]
    numbers: dict[str, set[str]] = {}
    for found in layers:
        if found:
            numbers.setdefault(found[0], set()).add(found[1])
    bands: list[_Band] = []
    for d, found in zip(kept, layers, strict=True):
        if found and len(numbers[found[0]]) > 1:
            key, stack = found[1], found[0]
        else:
            key, stack = d.name.split(".", 1)[0], None
        if not bands or (bands[-1].name, bands[-1].stack) != (key, stack):
            bands.append(_Band(key, stack=stack))
        bands[-1].add(d.action, d.numel)
    return bands


def _least(band: _Band) -> float:
    return MIN_LAYER if band.stack is not None else MIN_BAND


def _widths(bands: list[_Band], room: float) -> list[float]:
    """Each band's width: proportional to its elements, none narrower than its least
    (``MIN_LAYER`` for a layer of a stack, else ``MIN_BAND``)."""
    total = sum(b.numel for b in bands)
    if not total:
        return [room / len(bands)] * len(bands)
    small = [b.numel / total * room < _least(b) for b in bands]
    rest = room - sum(_least(b) for b, s in zip(bands, small, strict=True) if s)
    big = sum(b.numel for b, s in zip(bands, small, strict=True) if not s) or 1
    return [
        _least(b) if s else max(rest, 0) * b.numel / big for b, s in zip(bands, small, strict=True)
    ]


def _parts(band: _Band, width: float) -> list[float]:
    """The width of each run of ``band``: by elements, none narrower than ``MIN_RUN``
    where the band has room for that."""
    runs = band.runs
    if not band.numel:
        return [width / len(runs)] * len(runs)
    least = min(MIN_RUN, width / len(runs))
    small = [n / band.numel * width < least for _, n in runs]
    rest = width - least * sum(small)
    big = sum(n for (_, n), s in zip(runs, small, strict=True) if not s) or 1
    return [least if s else rest * n / big for (_, n), s in zip(runs, small, strict=True)]


def _strip(report: Report, y: float, label: str) -> tuple[list[str], float]:
    """The SVG elements of one report's strip, from ``y`` down; and the height used."""
    s = report.summary
    share = 100 * s.trainable_numel / s.numel if s.numel else 0.0
    out = [
        f'<text x="{PAD}" y="{y + 12}">{escape(label)}train {s.trainable} of {s.parameters} '
        f"tensors: {s.trainable_numel:,} of {s.numel:,} elements ({share:.1f}%)</text>"
    ]
    bands = _bands(report)
    top = y + 18
    if not bands:
        return out, 22
    x = float(PAD)
    room = WIDTH - 2 * PAD - GAP * (len(bands) - 1)
    stacks: dict[str, tuple[float, float, list[int]]] = {}  # stack -> start, end, numbers
    for band, width in zip(bands, _widths(bands, room), strict=True):
        trained = sum(n for a, n in band.runs if a == "train")
        where = band.name if band.stack is None else f"{band.stack}.{band.name}"
        tip = f"{where}: {trained:,} of {band.numel:,} elements train"
        out.append(f"<g><title>{escape(tip)}</title>")
        cursor = x
        for (action, _), part in zip(band.runs, _parts(band, width), strict=True):
            fill = 'class="train"' if action == "train" else 'fill="url(#tlr-frozen)"'
            out.append(
                f'<rect x="{cursor:.2f}" y="{top}" width="{part:.2f}" height="{BAND}" {fill}/>'
            )
            cursor += part
        out.append(
            f'<rect x="{x:.2f}" y="{top}" width="{width:.2f}" height="{BAND}" class="frame"/></g>'
        )
        if band.stack is not None:
            start, _, numbers = stacks.get(band.stack, (x, 0.0, []))
            stacks[band.stack] = (start, x + width, [*numbers, int(band.name)])
        elif len(band.name) * CHAR <= width:
            out.append(_label(x + width / 2, top + BAND + 12, band.name))
        x += width + GAP
    for stack, (start, end, numbers) in stacks.items():
        label = f"{stack}.{{{min(numbers)}..{max(numbers)}}}"  # the range a rule would write
        if len(label) * CHAR > end - start:
            label = stack
        if len(label) * CHAR <= end - start:
            out.append(_label((start + end) / 2, top + BAND + 12, label))
    return out, 18 + BAND + 16


def _label(x: float, y: float, text: str) -> str:
    return f'<text x="{x:.2f}" y="{y}" text-anchor="middle" class="label">{escape(text)}</text>'


def strip(report: Report) -> str:
    """The freeze strip of one report."""
    return strips([report])


def strips(reports: Sequence[Report]) -> str:
    """One strip per report (the stages of one policy, one under the other)."""
    first = reports[0]
    who = first.model_source or first.model_class or "model"
    title = f"{who} under {first.policy_name or first.policy_path or 'policy'}"
    body = [f'<text x="{PAD}" y="{PAD + 13}" class="title">{escape(title)}</text>']
    y = PAD + 22.0
    for report in reports:
        label = f"stage {report.stage}: " if len(reports) > 1 else ""
        parts, used = _strip(report, y, label)
        body += parts
        y += used + 4
    key = y + 4
    body += [
        f'<rect x="{PAD}" y="{key}" width="14" height="10" class="train"/>',
        f'<text x="{PAD + 18}" y="{key + 9}">train</text>',
        f'<rect x="{PAD + 60}" y="{key}" width="14" height="10" fill="url(#tlr-frozen)"/>',
        f'<text x="{PAD + 78}" y="{key + 9}">freeze</text>',
        f'<text x="{WIDTH - PAD}" y="{key + 9}" text-anchor="end" class="muted">'
        "band width: elements per top-level module or layer (tlrules)</text>",
    ]
    height = key + 10 + PAD
    label = escape(title, {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label="{label}">\n'
        f"<title>{escape(title)}</title>\n{STYLE}"
        f'<rect width="{WIDTH}" height="{height:.0f}" class="bg"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )
