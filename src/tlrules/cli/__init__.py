"""The ``tlrules`` command: ``main(argv)`` returns the exit code; ``run`` is the console
script. Nothing else in tlrules imports this package."""

from .commands import app, main, run

__all__ = ["app", "main", "run"]
