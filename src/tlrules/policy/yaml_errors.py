"""PyYAML's errors told in a policy author's words: where, what, and the fixed line for
the mistakes a new user makes first (an unquoted ``*``, a tab, a missing ``-``, a compact
key past YAML's 1,024 characters, a control character, a bad escape)."""

from __future__ import annotations

import yaml

from ..errors import PolicyError, Where

_KEY_LIMIT = 1024  # YAML's limit on an implicit (compact) key


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def marked(err: yaml.MarkedYAMLError, text: str, path: str | None) -> PolicyError:
    """The ``PolicyError`` for a YAML syntax error, at its line and column."""
    mark = err.problem_mark or err.context_mark
    line, col = _pos(mark) if mark else (None, None)
    what = _explained(err, text.splitlines())
    if what is None:
        what = err.problem or "unreadable"
        if err.context and err.context_mark:
            cline, ccol = _pos(err.context_mark)
            what += f" ({err.context} at line {cline}, column {ccol})"
        if "escape" in what:
            what += (
                "; write a character as '\\xXX', '\\uXXXX' or '\\UXXXXXXXX' (at most "
                "'\\U0010FFFF'), or the character itself"
            )
    elif err.context == "while scanning an alias" and err.context_mark:
        line, col = _pos(err.context_mark)
    return PolicyError(f"invalid YAML: {what}", Where(path, line, col))


def _explained(err: yaml.MarkedYAMLError, lines: list[str]) -> str | None:
    """The message for a mistake we recognise, else ``None``."""
    problem, context = err.problem or "", err.context or ""
    mark = err.problem_mark
    if context == "while scanning an alias" and err.context_mark:
        return _alias(lines, err.context_mark)
    if problem.startswith("found undefined alias") and mark:
        return _alias(lines, mark)
    if mark is None or mark.line >= len(lines):
        return None
    line = lines[mark.line]
    if "'\\t'" in problem:
        if line[: mark.column].strip():
            return "a tab separates values here; YAML separates them with spaces: write " + (
                f"{line.replace(chr(9), ' ')!r}"
            )
        return (
            f"line {mark.line + 1} is indented with a tab; YAML indents with spaces only: "
            f"write it as {line.expandtabs(2)!r}"
        )
    if context == "while parsing a block collection" and problem.endswith("found '?'"):
        start = err.context_mark.column if err.context_mark else 0
        fixed = " " * start + "- " + line.strip()
        return (
            f"{line.strip()!r} is not a list item: each rule is its own item, starting with "
            f"'-' (is a '-' missing?); write it as {fixed!r}"
        )
    if problem == "mapping values are not allowed here":
        return _long_key(line, mark.column)
    return None


def _alias(lines: list[str], mark: yaml.Mark) -> str:
    """An unquoted pattern that starts with ``*``, which YAML reads as an alias."""
    line = lines[mark.line] if mark.line < len(lines) else ""
    col = mark.column
    rest = line[col:]
    end = next((k for k in range(len(rest)) if rest.startswith((": ", ":\t"), k)), None)
    if end is None:
        end = len(rest) - 1 if rest.endswith(":") else len(rest)
    pattern = rest[:end].rstrip()
    quoted = '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
    fixed = (line[:col] + quoted + rest[end:]).strip()
    return (
        f"a pattern that starts with '*' must be quoted ('*' starts a YAML alias): write {fixed!r}"
    )


def _long_key(line: str, col: int) -> str | None:
    """A compact key past YAML's 1,024 characters: PyYAML only says that a mapping value
    is not allowed where its ':' is."""
    head = line[:col].lstrip()
    dash = head.startswith("- ")
    key = head[2:].strip() if dash else head.strip()
    if len(key) <= _KEY_LIMIT:
        return None
    if key[:1] in "'\"" and key[-1:] == key[:1]:
        key = key[1:-1]
    action = line[col + 1 :].strip() or "..."
    return (
        f"a compact key ('PATTERN: ACTION') is limited to 1,024 characters by YAML, and "
        f"this one has {len(key):,}; write the rule in full form: "
        f"'- match: \"{key[:20]}...\"' with 'action: {action}' on the next line, under "
        "'match'"
    )


def unreadable_character(err: yaml.reader.ReaderError, text: str, path: str | None) -> PolicyError:
    """The ``PolicyError`` for a character YAML does not allow (a control character)."""
    at = min(max(err.position, 0), max(len(text) - 1, 0))
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    code = ord(text[at]) if text else 0
    return PolicyError(
        f"character U+{code:04X} (a control character) is not allowed in YAML text; remove "
        f"it, or write it as the escape '\\x{code:02x}' inside double quotes"
        if code < 0x100
        else f"character U+{code:04X} is not allowed in YAML text; remove it, or write it "
        f"as the escape '\\u{code:04x}' inside double quotes",
        Where(path, line, col),
    )
