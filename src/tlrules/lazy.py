"""Names a package exports but imports on first use, so that importing the package stays
cheap (``import tlrules`` imports no torch, ``tlrules.convert`` no converter it does not
run).

A package lists such names in its ``__all__`` and, for type checkers, imports them under
``if TYPE_CHECKING:``; at run time it takes the module ``__getattr__`` and ``__dir__``
that ``lazy_exports`` makes. Needs nothing but the standard library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the package named ``package``.

    ``names`` maps each exported name to the submodule that defines it (``{"build":
    "sources"}``: ``package.build`` is ``package.sources.build``); each of ``submodules``
    is exported as the submodule itself. A name is imported the first time it is read and
    then kept in the package, so later reads do not come back here. Any other name raises
    ``AttributeError``, as for a module without ``__getattr__``.
    """
    table = dict(names)
    modules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table, *modules})

    return __getattr__, __dir__
