"""Commands for reviewing policies: init, explain, diff, lock, verify.

Exit codes as for ``audit``: 0 done; 1 ``verify`` found changes; 2 unusable input.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ._exits import bad_input_exits

if TYPE_CHECKING:
    from torch import nn

    from .audit import Report
    from .policy import Policy

ModelArg = Annotated[str, typer.Argument(help="resnet50, torchvision:vit_b_16, ...")]
PolicyArg = Annotated[str, typer.Argument(help="A policy file or a library name.")]


def _load(model: str, policy: str) -> tuple[nn.Module, Policy]:
    from .models import build
    from .policy import load

    loaded = load(policy)
    return build(model), loaded


def _audit(model: str, policy: str) -> Report:
    built, loaded = _load(model, policy)
    return loaded.audit(built, source=model)


def init(
    model: ModelArg,
    train: Annotated[int | None, typer.Option("--train", help="Train the last N blocks.")] = None,
) -> None:
    """Print a starter policy for MODEL, with its module tree as comments."""
    from .models import build
    from .starter import starter

    with bad_input_exits():
        sys.stdout.write(starter(build(model), model, train))


def explain(model: ModelArg, policy: PolicyArg, name: Annotated[str, typer.Argument()]) -> None:
    """Show every rule of POLICY, in order, against the parameter NAME of MODEL."""
    from .apply import bare_name
    from .explain import explain as steps

    with bad_input_exits():
        built, loaded = _load(model, policy)
        names = [bare_name(n) for n, _ in built.named_parameters(remove_duplicate=False)]
        trace = steps(loaded, names, bare_name(name))
    print(bare_name(name))
    for step in trace:
        print(f"  {step}")
    if not any(s.decided for s in trace):
        print(f"  -> no rule matches: the default ({loaded.default}) decides")


def diff(model: ModelArg, policy_a: PolicyArg, policy_b: PolicyArg) -> None:
    """List the parameters of MODEL whose decision differs between two policies."""
    from .explain import diff as differences

    with bad_input_exits():
        pairs = differences(_audit(model, policy_a), _audit(model, policy_b))
    for a, b in pairs:
        print(
            f"{a.name}: {a.action} (rule {a.rule or 'default'}) -> {b.action} "
            f"(rule {b.rule or 'default'})"
        )
    print(f"{len(pairs)} parameter{'s' if len(pairs) != 1 else ''} differ")


def lock(model: ModelArg, policy: PolicyArg) -> None:
    """Print the decisions of POLICY on MODEL as a lock file (JSON)."""
    from .lock import dumps
    from .lock import lock as document

    with bad_input_exits():
        sys.stdout.write(dumps(document(_audit(model, policy))))


def verify(
    model: ModelArg,
    policy: PolicyArg,
    lockfile: Annotated[str, typer.Argument(help="Written by 'tlrules lock'.")],
) -> None:
    """Exit 1, listing the changes, when POLICY on MODEL no longer gives the locked decisions."""
    from .lock import read
    from .lock import verify as changes

    with bad_input_exits():
        found = changes(read(lockfile), _audit(model, policy))
    for change in found:
        print(change)
    if found:
        print(
            f"{lockfile}: {len(found)} change{'s' if len(found) > 1 else ''}; if intended, "
            f"regenerate it with 'tlrules lock {model} {policy} > {lockfile}'",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    print(f"ok: {lockfile} matches")


def register(app: typer.Typer) -> None:
    for command in (init, explain, diff, lock, verify):
        app.command()(command)
