"""The one place where an exception becomes an exit code.

Bad input raises a ``TLRulesError`` anywhere inside tlrules: it ends the command with one
``error:`` line per problem on stderr (the first ``SHOWN``, then ``... and N more``; every
one with ``--debug``) and exit code 2. Any other exception is a bug in
tlrules: one ``tlrules: internal error`` line and exit code 3; the traceback only with
``--debug`` or ``TLRULES_DEBUG=1``.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import sys
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from ..errors import TLRulesError

BAD_INPUT = 2
INTERNAL_ERROR = 3
SHOWN = 10  # problems, or warnings of one code, printed before "... and N more"
_EVERY = "--debug lists every one"
_NOT_ONE_OF = re.compile(r"'([^']*)' is not one of (.*)")
_every: ContextVar[bool] = ContextVar("every_line", default=False)


def print_error(err: TLRulesError, *, every: bool | None = None) -> None:
    """Each problem of ``err`` on its own ``error:`` line on stderr: the first ``SHOWN``
    and how many more, unless ``every`` (default: ``--debug`` is on)."""
    lines = str(err).split("\n")
    if not (every if every is not None else every_line()) and len(lines) > SHOWN:
        more = len(lines) - SHOWN
        lines = [*lines[:SHOWN], f"... and {more} more problem{'s' if more > 1 else ''} ({_EVERY})"]
    print("\n".join(f"error: {line}" for line in lines), file=sys.stderr)


def capped_warnings(warned: Sequence[tuple[str, str]]) -> list[str]:
    """``(code, line)`` pairs as the lines to print: the first ``SHOWN`` of each code, then
    one ``warning[CODE]: ... and N more`` line in place of the rest of that code, unless
    ``--debug`` is on. A document (``--format json``) keeps every warning."""
    if every_line():
        return [line for _, line in warned]
    seen: defaultdict[str, int] = defaultdict(int)
    out: list[str] = []
    for code, line in warned:
        seen[code] += 1
        if seen[code] <= SHOWN:
            out.append(line)
    for code, n in seen.items():
        if n > SHOWN:
            out.append(f"warning[{code}]: ... and {n - SHOWN} more like these ({_EVERY})")
    return out


def every_line() -> bool:
    """Whether ``--debug`` (or ``TLRULES_DEBUG``) asks for every problem and warning: set
    by ``guarded`` for the command it runs."""
    return _every.get()


def usage_error(err: Any) -> str:
    """click's error about a command line as one ``error:`` line: what is wrong, a
    did-you-mean for a value outside its choices, and where the help is."""
    message = str(err.format_message()).replace("Value error, ", "")  # typer's wording
    message = message[:1].lower() + message[1:]
    choice = _NOT_ONE_OF.search(message)
    if choice and "did you mean" not in message:
        allowed = re.findall(r"'([^']*)'", choice[2])
        close = difflib.get_close_matches(choice[1], allowed, n=1)
        message = message.rstrip(".") + (f"; did you mean {close[0]!r}?" if close else "")
    message = message.replace(". Did you mean", "; did you mean").rstrip(".")
    path = err.ctx.command_path if getattr(err, "ctx", None) is not None else "tlrules"
    return f"error: {message} ('{path} -h' shows the usage)"


def tolerant_output() -> None:
    """Let stdout and stderr write any text: a name read from a file may hold a lone
    surrogate, or characters the terminal's encoding lacks; they come out as backslash
    escapes instead of ending the command with a ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def debugging(args: Sequence[str]) -> bool:
    """Whether ``--debug`` is on the command line or ``TLRULES_DEBUG`` is set (not 0)."""
    return "--debug" in args or os.environ.get("TLRULES_DEBUG", "0") not in ("", "0")


def guarded(command: Callable[[], int], *, debug: bool) -> int:
    """Run ``command`` and return its exit code, or the code of what it raised."""
    token = _every.set(debug)
    try:
        return command()
    except TLRulesError as err:
        if debug:
            traceback.print_exc()
        print_error(err, every=debug)
        return BAD_INPUT
    except Exception as err:  # the boundary: anything else is a bug in tlrules
        if debug:
            traceback.print_exc()
        message = " ".join(str(err).split()) or "(no message)"
        hint = "" if debug else "; rerun with --debug for the traceback"
        print(
            f"tlrules: internal error ({type(err).__name__}): {message}{hint}",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
    finally:
        _every.reset(token)
