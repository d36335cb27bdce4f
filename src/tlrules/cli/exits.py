"""The one place where an exception becomes an exit code.

Bad input raises a ``TLRulesError`` anywhere inside tlrules: it ends the command with one
``error:`` line per problem on stderr and exit code 2. Any other exception is a bug in
tlrules: one ``tlrules: internal error`` line and exit code 3; the traceback only with
``--debug`` or ``TLRULES_DEBUG=1``.
"""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from ..errors import TLRulesError

BAD_INPUT = 2
INTERNAL_ERROR = 3


def print_error(err: TLRulesError) -> None:
    """Each problem of ``err`` on its own ``error:`` line on stderr."""
    print(f"error: {err}".replace("\n", "\nerror: "), file=sys.stderr)


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
    try:
        return command()
    except TLRulesError as err:
        if debug:
            traceback.print_exc()
        print_error(err)
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
