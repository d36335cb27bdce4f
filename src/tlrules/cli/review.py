"""Commands for reviewing policies: init, explain, diff, lock, verify.

Exit codes as for ``audit``: 0 done; 1 ``verify`` found changes; 2 unusable input.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..patterns import bare_name
from ..render import json_document
from .policies import load_policy, stdin_once

if TYPE_CHECKING:
    from torch import nn

    from ..report import Report

ModelArg = Annotated[str, typer.Argument(help="resnet50, torchvision:vit_b_16, ...")]
PolicyArg = Annotated[
    str, typer.Argument(help="A policy file, a library name, or - to read it from stdin.")
]


def _build(model: str) -> nn.Module:
    from ..models import build  # the review commands build models: torch from here on

    return build(model)


def _audit(model: str, policy: str) -> Report:
    from ..engine import audit

    loaded = load_policy(policy)
    return audit(loaded, _build(model), source=model)


def init(
    model: ModelArg,
    train: Annotated[int | None, typer.Option("--train", help="Train the last N blocks.")] = None,
) -> None:
    """Print a starter policy for MODEL, with its module tree as comments."""
    from ..review import starter_policy

    sys.stdout.write(starter_policy(_build(model), model, train))


def explain(model: ModelArg, policy: PolicyArg, name: Annotated[str, typer.Argument()]) -> None:
    """Show every rule of POLICY, in order, against the parameter NAME of MODEL."""
    from ..review import explain as steps

    loaded = load_policy(policy)
    built = _build(model)
    names = [bare_name(n) for n, _ in built.named_parameters(remove_duplicate=False)]
    trace = steps(loaded, names, bare_name(name))
    print(bare_name(name))
    for step in trace:
        print(f"  {step}")
    if not any(s.decided for s in trace):
        print(f"  -> no rule matches: the default ({loaded.default}) decides")


def diff(model: ModelArg, policy_a: PolicyArg, policy_b: PolicyArg) -> None:
    """List the parameters of MODEL whose decision differs between two policies."""
    from ..review import diff as differences

    stdin_once([policy_a, policy_b])
    pairs = differences(_audit(model, policy_a), _audit(model, policy_b))
    for a, b in pairs:
        print(
            f"{a.name}: {a.action} (rule {a.rule or 'default'}) -> {b.action} "
            f"(rule {b.rule or 'default'})"
        )
    print(f"{len(pairs)} parameter{'s' if len(pairs) != 1 else ''} differ")


def lock(model: ModelArg, policy: PolicyArg) -> None:
    """Print the decisions of POLICY on MODEL as a lock file (JSON)."""
    from ..review import lock as document

    sys.stdout.write(json_document(document(_audit(model, policy))))


def verify(
    model: ModelArg,
    policy: PolicyArg,
    lockfile: Annotated[str, typer.Argument(help="Written by 'tlrules lock'.")],
) -> None:
    """Exit 1, listing the changes, when POLICY on MODEL no longer gives the locked decisions."""
    from ..review import read
    from ..review import verify as changes

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
    """Add ``init``, ``explain``, ``diff``, ``lock`` and ``verify`` to the ``tlrules`` app."""
    for command in (init, explain, diff, lock, verify):
        app.command()(command)
