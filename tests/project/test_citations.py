"""Every document the repository cites is in the repository.

A file *cites* a document in three ways, each checked over every text file of the
repository (``git ls-files``: tracked files and new ones git does not ignore; outside a
git checkout, a walk of the tree without ``.git``, virtual environments and build output):

1. a Markdown link ``[text](target)`` in a ``.md`` file, whose target is not a URL
   (``https:``, ``mailto:``, ...) nor only ``#anchor``: the target must be a file or a
   folder of the repository, relative to the citing file's folder;
2. a mention of a Markdown file by name or path in any text file (``docs/spec.md``,
   ``spec.md``, ``README.md``), outside URLs: it must be a ``.md`` file of the repository
   relative to the repository root or to the citing file's folder, or, for a bare name
   without a folder, the name of one anywhere in it. A brief that lives outside the
   repository is such a mention, and fails. A name written as a command's output file
   (after ``-o``, ``--output`` or a shell ``>``) is a file to be made, not a citation;
3. an anchor after a Markdown file (``docs/spec.md#peft-names``, ``(#peft-lora)`` inside
   a page): the file must have a heading with that anchor, by GitHub's rule (lowercase;
   every character that is not a letter, digit, ``_``, ``-`` or space dropped; each space
   a ``-``; a repeated heading gets ``-1``, ``-2``, ...).

One failure lists every bad citation as ``file:line: ...``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]

# folders that are not the repository's own files, for a tree without git
_SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}

# A file that names a Markdown file it writes, rather than one it cites: (citing file,
# name) -> why. Keep each entry narrow, with its reason (a name is built from pieces
# here, so that this file does not mention it).
ALLOWED = {
    # a fuzz case's own output file ('-o' with a Markdown report), written in its sandbox
    ("tests/fuzz/checkcase.py", "report" + ".md"): "an output file the case writes",
}

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]\"'`]+")
_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_MENTION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]*\w\.md)(?:#([\w-]*))?(?![\w/])")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
# what comes right before a file a command writes: -o, --output (with ' ' or '='), or >
_OUTPUT = re.compile(r"(?:(?:^|\s)(?:-o|--output)[ =]|>) *[\"']?$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)[^`].*?\1")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def repository_files(root: Path = ROOT) -> list[str]:
    """The repository's files, as POSIX paths relative to ``root``."""
    if (root / ".git").exists():
        try:
            listed = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=root,
                capture_output=True,
                check=True,
            ).stdout.decode("utf-8", "surrogateescape")
        except (OSError, subprocess.CalledProcessError):
            pass
        else:
            found = {f for f in listed.split("\0") if f}
            return sorted(f for f in found if (root / f).is_file())
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            out.append(Path(folder, name).relative_to(root).as_posix())
    return sorted(out)


def _text(path: Path) -> str | None:
    """A file's text, or ``None`` for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = "".join(c for c in text if c.isalnum() or c in "_- ")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown text defines: its headings (outside fenced code), with
    GitHub's ``-1``, ``-2`` for repeats, and ``<a name|id="...">``."""
    out: set[str] = set(_HTML_ANCHOR.findall(text))
    counts: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            base = slug(m[2])
            n = counts.get(base, 0)
            counts[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


class _Repo:
    def __init__(self, root: Path):
        self.root = root
        self.files = repository_files(root)
        self.present = set(self.files)
        self.folders = {str(p) for f in self.files for p in PurePosixPath(f).parents}
        self.by_name: dict[str, list[str]] = {}
        for f in self.files:
            if f.endswith(".md"):
                self.by_name.setdefault(PurePosixPath(f).name, []).append(f)
        self._anchors: dict[str, set[str]] = {}

    def anchors_of(self, path: str) -> set[str]:
        if path not in self._anchors:
            self._anchors[path] = anchors(_text(self.root / path) or "")
        return self._anchors[path]

    def relative(self, citing: str, target: str) -> str | None:
        """``target`` relative to ``citing``'s folder, normalized; ``None`` when it leaves
        the repository."""
        parts: list[str] = []
        for part in (*PurePosixPath(citing).parent.parts, *PurePosixPath(target).parts):
            if part == "..":
                if not parts:
                    return None
                parts.pop()
            elif part not in (".", ""):
                parts.append(part)
        return "/".join(parts) or "."

    def check_anchor(self, candidates: list[str], anchor: str) -> str | None:
        """What is wrong with ``#anchor`` in the first of ``candidates`` (Markdown files
        of the repository); ``None`` when one of them has it."""
        if any(anchor in self.anchors_of(c) for c in candidates):
            return None
        return f"{candidates[0]} has no heading with the anchor '#{anchor}'"


def bad_citations(root: Path = ROOT) -> list[str]:
    """Every citation of a document that is not in the repository under ``root``, as
    ``file:line: what``."""
    repo = _Repo(root)
    found: dict[tuple[str, int, str], str] = {}
    for citing in repo.files:
        text = _text(root / citing)
        if text is None:
            continue
        for line, problem in _problems(repo, citing, text):
            found.setdefault((citing, line, problem), problem)
    return [f"{f}:{line}: {problem}" for (f, line, problem) in sorted(found)]


def _prose(markdown: str) -> str:
    """``markdown`` with fenced code blocks and inline code spans blanked (newlines
    kept): a link written inside code is not a link."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        fence = bool(_FENCE.match(line))
        if fenced or fence:
            line = " " * len(line)
        else:
            line = _CODE_SPAN.sub(lambda m: " " * len(m[0]), line)
        fenced = fenced != fence
        lines.append(line)
    return "\n".join(lines)


def _problems(repo: _Repo, citing: str, text: str) -> Iterator[tuple[int, str]]:
    """(line, what is wrong) for each bad citation in ``citing``'s ``text``."""
    blank = _URL.sub(lambda m: " " * len(m[0]), text)  # a URL cites nothing here

    def line_of(pos: int) -> int:
        return blank.count("\n", 0, pos) + 1

    if citing.endswith(".md"):
        for m in _LINK.finditer(_prose(blank)):
            target = m[1]
            if _SCHEME.match(target):
                continue  # mailto:, a URL the blanking left
            path, _, anchor = target.partition("#")
            if not path:
                if anchor and anchor not in repo.anchors_of(citing):
                    yield line_of(m.start()), f"link '#{anchor}': no heading with that anchor"
                continue
            resolved = repo.relative(citing, path)
            if resolved is None or (resolved not in repo.present and resolved not in repo.folders):
                yield line_of(m.start()), f"link '{target}': no such file in the repository"
            elif anchor and resolved.endswith(".md"):
                wrong = repo.check_anchor([resolved], anchor)
                if wrong:
                    yield line_of(m.start()), f"link '{target}': {wrong}"
    for m in _MENTION.finditer(blank):
        name, anchor = m[1], m[2]
        before = blank[blank.rfind("\n", 0, m.start()) + 1 : m.start()]
        if (citing, name) in ALLOWED or _OUTPUT.search(before):
            continue
        candidates = [
            c for c in (name, repo.relative(citing, name)) if c is not None and c in repo.present
        ]
        if not candidates and "/" not in name:
            candidates = repo.by_name.get(name, [])
        if not candidates:
            yield line_of(m.start()), f"'{name}' is not a file of the repository"
        elif anchor:
            wrong = repo.check_anchor(candidates, anchor)
            if wrong:
                yield line_of(m.start()), f"'{name}#{anchor}': {wrong}"


def test_every_cited_document_is_in_the_repository() -> None:
    bad = bad_citations()
    assert not bad, f"{len(bad)} citations of documents not in the repository:\n" + "\n".join(bad)


def test_every_allowance_is_still_needed() -> None:
    for (citing, name), why in ALLOWED.items():
        assert name in (ROOT / citing).read_text(), f"{citing} no longer names {name} ({why})"


def test_the_anchor_rule_is_githubs() -> None:
    assert slug("Lock and verify") == "lock-and-verify"
    assert slug("Normalization statistics (`norm_stats`)") == "normalization-statistics-norm_stats"
    assert slug("Stage switches and a trainer's own groups") == (
        "stage-switches-and-a-trainers-own-groups"
    )
    assert slug("`module:` selects by the class") == "module-selects-by-the-class"
    text = "# A\n## Exit codes\n```text\n# not a heading\n```\n## Exit codes\n"
    assert anchors(text) == {"a", "exit-codes", "exit-codes-1"}


def test_a_tree_without_git_is_walked_and_each_kind_of_bad_citation_is_found(
    tmp_path: Path,
) -> None:
    # the names this test cites wrongly are built from pieces, so that this file itself
    # cites nothing that is missing
    brief, gone, spec = "BRIEF" + ".md", "docs/gone" + ".md", "docs/spec.md"
    (tmp_path / "docs").mkdir()
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.py").write_text(f"see {brief}\n")  # not walked
    (tmp_path / spec).write_text("# Spec\n\n## Names\n\ntext\n")
    (tmp_path / "README.md").write_text(
        f"[spec]({spec}#names) [web](https://example.org/{brief}) [top](#spec)\n"
        f"[gone]({gone}) [bad]({spec}#nowhere)\n"
        f"written, not cited: `tlrules audit m p -f markdown -o review.md > out.md`\n"
        f"code, not links: `[a](gone.txt)`\n```python\nx = y[0](gone.txt)\n```\n"
    )
    (tmp_path / "code.py").write_text(
        f'"""Names ({spec}#names), {brief}, spec.md, {spec}#glob."""\n'
    )
    nowhere = f"{spec} has no heading with the anchor '#nowhere'"
    assert bad_citations(tmp_path) == [
        "README.md:1: link '#spec': no heading with that anchor",
        f"README.md:2: '{gone}' is not a file of the repository",
        f"README.md:2: '{spec}#nowhere': {nowhere}",
        f"README.md:2: link '{gone}': no such file in the repository",
        f"README.md:2: link '{spec}#nowhere': {nowhere}",
        f"code.py:1: '{brief}' is not a file of the repository",
        f"code.py:1: '{spec}#glob': {spec} has no heading with the anchor '#glob'",
    ]
