"""How a command ends on bad input: one ``error:`` line per problem on stderr, exit 2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from .errors import TLRulesError


def print_error(err: TLRulesError) -> None:
    """Each problem of ``err`` on its own ``error:`` line on stderr."""
    print(f"error: {err}".replace("\n", "\nerror: "), file=sys.stderr)


@contextmanager
def bad_input_exits() -> Iterator[None]:
    """A ``TLRulesError`` inside becomes its message on stderr and exit code 2."""
    try:
        yield
    except TLRulesError as err:
        print_error(err)
        raise typer.Exit(2) from None
