"""The errors click raises about a command line, from the click that typer runs on:
``typer._click`` (private) since typer vendored click, the ``click`` package before. The
CLI turns them into one ``error:`` line (``cli.exits.usage_error``)."""

from __future__ import annotations

import importlib
from typing import Any

try:
    _exceptions: Any = importlib.import_module("typer._click.exceptions")
except ImportError:  # pragma: no cover - a typer that runs on the click package
    _exceptions = importlib.import_module("click.exceptions")

UsageError: type[Exception] = _exceptions.UsageError
"""A command line click cannot read: unknown command or option, bad or missing value."""
NoArgsIsHelpError: type[Exception] = _exceptions.NoArgsIsHelpError
"""No command given: click shows the help."""
