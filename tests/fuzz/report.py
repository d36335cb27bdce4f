"""What a fuzz run found: counts per class, exit codes, the worst time and memory, and
every broken case saved so that it can be replayed (``python -m tests.fuzz --replay DIR``).

A saved case is a folder: ``case.json`` (label, argv, api model and seed, expected codes,
files as base64, links, what broke, the output tails) and ``inputs/``, a readable copy of
the files. The summary groups what broke by class and kind (the exception of an exit 3,
or the first problem, with numbers and quoted values left out). In the exit codes, ``2u``
is click's usage error (a malformed command line), ``hang`` a case killed at the time
limit, ``sigN`` one ended by signal N.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runner import GIB, Case, Outcome


@dataclass
class ClassStats:
    cases: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    broken: int = 0
    tracebacks: int = 0
    hangs: int = 0
    crashes: int = 0
    max_seconds: float = 0.0
    max_rss: int = 0

    def add(self, out: Outcome) -> None:
        self.cases += 1
        code = "hang" if out.hung else f"sig{out.signal}" if out.signal else str(out.code)
        self.codes[code + ("u" if out.usage_error() else "")] += 1
        self.broken += out.broken
        self.tracebacks += b"Traceback" in out.stderr
        self.hangs += out.hung
        self.crashes += out.signal is not None and not out.hung
        self.max_seconds = max(self.max_seconds, out.seconds)
        self.max_rss = max(self.max_rss, out.max_rss)

    def merge(self, other: ClassStats) -> None:
        for name in ("cases", "broken", "tracebacks", "hangs", "crashes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.codes.update(other.codes)
        self.max_seconds = max(self.max_seconds, other.max_seconds)
        self.max_rss = max(self.max_rss, other.max_rss)


@dataclass
class Summary:
    stats: dict[str, ClassStats] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # one line per broken case: where, what
    kinds: Counter[str] = field(default_factory=Counter)  # what broke, grouped
    first: dict[str, str] = field(default_factory=dict)  # kind -> the first case kept of it

    def add(self, case: Case, out: Outcome, keep: Path | None) -> None:
        self.stats.setdefault(case.label, ClassStats()).add(out)
        if out.broken:
            where = save(case, out, keep / f"case-{len(self.kept):04d}") if keep else "(not kept)"
            self.kept.append(f"{where}: {case.label} {_argv(case)}: {'; '.join(out.problems)}")
            kind = f"{case.label}: {_kind(out)}"
            self.kinds[kind] += 1
            self.first.setdefault(kind, where)

    def merge(self, other: Summary) -> None:
        for label, stats in other.stats.items():
            self.stats.setdefault(label, ClassStats()).merge(stats)
        self.kept += other.kept
        self.kinds.update(other.kinds)
        for kind, where in other.first.items():
            self.first.setdefault(kind, where)

    def to_json(self) -> dict[str, Any]:
        return {
            "stats": {k: {**vars(v), "codes": dict(v.codes)} for k, v in self.stats.items()},
            "kept": self.kept,
            "kinds": dict(self.kinds),
            "first": self.first,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        stats = {
            k: ClassStats(**{**v, "codes": Counter(v["codes"])}) for k, v in data["stats"].items()
        }
        return cls(stats, list(data["kept"]), Counter(data["kinds"]), dict(data["first"]))

    def __str__(self) -> str:
        header = f"{'class':<11}{'cases':>7}{'broken':>8}{'tracebk':>8}{'hangs':>7}{'crashes':>8}"
        lines = [header + f"{'max s':>8}{'max RSS':>10}  exit codes"]
        for label, s in sorted(self.stats.items()):
            codes = ", ".join(f"{c}: {n}" for c, n in sorted(s.codes.items()))
            lines.append(
                f"{label:<11}{s.cases:>7}{s.broken:>8}{s.tracebacks:>8}{s.hangs:>7}{s.crashes:>8}"
                f"{s.max_seconds:>8.2f}{s.max_rss / GIB:>8.2f}Gi  {codes}"
            )
        lines += [f"broken: {line}" for line in self.kept]
        if self.kinds:
            lines.append("what broke (cases, class: kind, first kept):")
        lines += [f"{n:>5}  {kind}  [{self.first[kind]}]" for kind, n in self.kinds.most_common()]
        return "\n".join(lines)


def _kind(out: Outcome) -> str:
    """What broke, with the numbers and quoted values of its message left out."""
    found = re.search(r"internal error \((\w+)\): (.*)", out.last_line())
    if out.code == 3 and found:
        return f"exit 3 {found.group(1)}: {_shape(found.group(2))}"
    return _shape(out.problems[0])


def _shape(text: str) -> str:
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"0x[0-9a-f]+|#x[0-9a-f]+", "0x…", text.split("; rerun with --debug")[0])
    return re.sub(r"\d+", "N", text)[:100]


def _argv(case: Case) -> str:
    shown = " ".join(repr(a) if not a or " " in a else a for a in case.argv)
    shown = shown if len(shown) < 200 else shown[:200] + "..."
    return f"[api {case.api}] {shown}" if case.api else f"tlrules {shown}"


def save(case: Case, out: Outcome, folder: Path) -> str:
    """Write ``case`` and what broke under ``folder``; return the folder."""
    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    for rel, data in case.files.items():
        path = inputs / rel.replace("../", "__/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    record = {
        "label": case.label,
        "argv": case.argv,
        "api": case.api,
        "seed": case.seed,
        "expect": sorted(case.expect),
        "files": {k: base64.b64encode(v).decode() for k, v in case.files.items()},
        "links": dict(case.links),
        "fifos": list(case.fifos),
        "stdin": base64.b64encode(case.stdin).decode(),
        "writes": case.writes,
        "problems": out.problems,
        "stdout": out.stdout[-4000:].decode("utf-8", "replace"),
        "stderr": out.stderr[-4000:].decode("utf-8", "replace"),
    }
    (folder / "case.json").write_text(json.dumps(record, indent=1, ensure_ascii=True))
    return str(folder)


def load(folder: Path) -> Case:
    """The case saved in ``folder``."""
    record = json.loads((folder / "case.json").read_text())
    return Case(
        label=record["label"],
        argv=tuple(record["argv"]),
        files={k: base64.b64decode(v) for k, v in record["files"].items()},
        links=record["links"],
        fifos=tuple(record.get("fifos", ())),
        api=record["api"],
        seed=record["seed"],
        expect=frozenset(record["expect"]),
        stdin=base64.b64decode(record.get("stdin", "")),
        writes=record.get("writes"),
    )
