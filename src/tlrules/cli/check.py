"""``tlrules check POLICY BEFORE AFTER``: proof after training that the tensors a policy
freezes did not move. Exit 0 every one compared and held; 1 a frozen tensor changed or
was not compared (missing from AFTER, or AFTER an adapter file without
``--adapter-only``), or with ``--strict`` a warning (a trained tensor that did not
change, a name on one side only); 2 bad input.
A safetensors pair that the policy decides by names alone is compared without importing
torch (``review.proof``)."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Annotated

import typer

from ..render import render_check
from ..review.proof import check as compare
from .output import destination
from .policies import load_policy


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"


def check(
    policy: Annotated[
        str, typer.Argument(help="A policy file, a library name, or - to read it from stdin.")
    ],
    before: Annotated[
        str,
        typer.Argument(
            help="The weights training started from: a .safetensors, .pt/.pth/.bin/.ckpt or "
            "*.index.json file, or a save_pretrained folder."
        ),
    ],
    after: Annotated[str, typer.Argument(help="The weights after training, the same kinds.")],
    stage: Annotated[
        str | None, typer.Option(help="The stage of a policy in stages that trained.")
    ] = None,
    fmt: Annotated[
        CheckFormat, typer.Option("--format", "-f", help="How to draw the result.")
    ] = CheckFormat.text,
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
    adapter_only: Annotated[
        bool,
        typer.Option(
            "--adapter-only",
            help="AFTER is a PEFT adapter file: accept the proof of the adapter alone (its "
            "tensors are ones the policy trains, the base tensors it carries held); the base "
            "model is not in the file and is not compared.",
        ),
    ] = False,
    atol: Annotated[
        float,
        typer.Option(
            min=0.0, help="Largest absolute change a frozen tensor may show (0: bit-identical)."
        ),
    ] = 0.0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Write to this file instead of stdout (e.g. check.html)."
        ),
    ] = None,
) -> None:
    """Check that every tensor POLICY freezes is the same in AFTER as in BEFORE."""
    write = destination(output)
    loaded = load_policy(policy)
    result = compare(loaded, before, after, stage=stage, atol=atol, adapter_only=adapter_only)
    result = replace(result, strict=strict)  # the verdict drawn is the exit code's
    write(render_check(result, fmt.value))
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``tlrules`` app."""
    app.command()(check)
