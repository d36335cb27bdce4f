"""Commands for reviewing policies: init, explain, diff, lock, verify.

Exit codes as for ``audit``: 0 done; 1 ``diff`` found decisions that differ, or
``verify`` found changes; 2 unusable input.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..patterns import policy_name, read_names
from ..render import json_document
from ..render.text import rule_label
from . import loading
from .args import ModelArg, PolicyArg
from .policies import load_policy, stdin_once

if TYPE_CHECKING:
    from ..report import Report


_VERB = {"train": "trains", "freeze": "is frozen"}


def _audit(model: str, policy: str) -> Report:
    loaded = load_policy(policy)
    return loading.report(loaded, loading.load(model, [loaded]), model)  # headers or torch


def init(
    model: ModelArg,
    train: Annotated[int | None, typer.Option("--train", help="Train the last N blocks.")] = None,
) -> None:
    """Print a starter policy for MODEL, with its module tree as comments."""
    from ..review.starter import starter_policy, starter_text

    built = loading.load(model, [])  # a checkpoint's headers, or a model built with torch
    if isinstance(built, loading.Named):
        names, peft = read_names(built.tree.names, False)  # no classes: no adapter layers
        numels = [math.prod(t.shape) for t in built.listed()]
        text = starter_text(list(zip(names, numels, strict=True)), "Checkpoint", model, train, peft)
    else:
        text = starter_policy(built, model, train)
    sys.stdout.write(text)


def explain(model: ModelArg, policy: PolicyArg, name: Annotated[str, typer.Argument()]) -> None:
    """Show every rule of POLICY, in order, against the parameter NAME of MODEL."""
    from ..review import explain as steps

    loaded = load_policy(policy)
    built = loading.load(model, [loaded])  # a checkpoint's headers, or a model built with torch
    raw_names, peft_layers = loading.parameter_names(built)
    names, peft = read_names(raw_names, peft_layers)
    raw = dict(zip(names, raw_names, strict=True))
    name = policy_name(name, peft)  # a PEFT model's raw name, or the one reports show
    holder = raw.get(name, "").rpartition(".")[0]
    owner = loading.owner_class(built, holder)
    trace = steps(loaded, list(raw), name, owner)
    decider = next((s for s in trace if s.decided), None)
    if decider is not None:
        verdict = f"{_VERB[decider.action]}: rule {decider.rule} {decider.pattern!r} decides it"
    elif loaded.default in _VERB:
        verdict = f"{_VERB[loaded.default]}: no rule matches it, so the default decides"
    else:
        verdict = "matches no rule, and the default is 'error'"
    print(name + (f" (in a {owner})" if owner else "") + f" {verdict}")
    for step in trace:
        print(f"  {step}")
    if decider is None:
        print(f"  -> no rule matches: the default ({loaded.default}) decides")


def diff(model: ModelArg, policy_a: PolicyArg, policy_b: PolicyArg) -> None:
    """List the parameters of MODEL whose decision differs between two policies, each with
    the rule that decides it under either (pattern, selector, file:line).

    Exit codes: 0 the decisions are the same; 1 some differ; 2 unusable input.
    """
    from ..review import diff as differences

    stdin_once([policy_a, policy_b])
    a, b = _audit(model, policy_a), _audit(model, policy_b)
    pairs = differences(a, b)
    for x, y in pairs:
        print(f"{x.name}: {x.action} ({_by(a, x.rule)}) -> {y.action} ({_by(b, y.rule)})")
    print(f"{len(pairs)} parameter{'s' if len(pairs) != 1 else ''} differ")
    if pairs:
        raise typer.Exit(1)


def _by(report: Report, rule: int | None) -> str:
    """``rule 1 'layer4' at resnet-layer4-fc.yaml:9``, or ``the default at p.yaml``."""
    if rule is None:
        return f"the default at {report.policy_path or 'the policy'}"
    return rule_label(report, rule, where=True)


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

    found = changes(read(lockfile), _audit(model, policy), collapsed=True)
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
