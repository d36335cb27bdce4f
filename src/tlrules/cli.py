"""``tlrules`` command line. ``main(argv)`` is a plain function that returns the exit code.

Exit codes: 0 done; 1 the audit has warnings and ``--strict`` was given; 2 the input is
unusable (policy, model spec, file), with one clear message on stderr.
Torch is imported only by the commands that build a model.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from . import cli_library, cli_review
from ._exits import bad_input_exits, print_error
from .errors import TLRulesError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Declarative freezing rules for PyTorch transfer learning.",
)


class Format(str, Enum):
    tree = "tree"
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def audit(
    model: Annotated[str, typer.Argument(help="resnet50, torchvision:vit_b_16, ...")],
    policy: Annotated[str, typer.Argument(help="A policy file or a library name.")],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="How to draw the audit.")
    ] = Format.tree,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the audit has warnings.")] = False,
    stage: Annotated[
        str | None,
        typer.Option(
            help="One stage of a policy in stages, or 'all': how each parameter changes "
            "across them."
        ),
    ] = None,
) -> None:
    """Show, for every parameter of MODEL, what POLICY decides and which rule decided it."""
    from .policy import load

    with bad_input_exits():
        loaded = load(policy)
        from .models import build
        from .render import render, stage_changes
        from .stages import every_stage

        built = build(model)
        if stage == "all":
            reports = [s.audit(built, source=model) for s in every_stage(loaded)]
        else:
            reports = [(loaded.stage(stage) if stage else loaded).audit(built, source=model)]
    if stage == "all":
        sys.stdout.write(stage_changes(reports, fmt.value))
    else:
        sys.stdout.write(render(reports[0], fmt.value))
    if strict and any(r.warnings for r in reports):
        raise typer.Exit(1)


@app.command()
def validate(
    policies: Annotated[list[str], typer.Argument(help="Policy files or library names.")],
    strict: Annotated[bool, typer.Option(help="Exit 1 when lint finds anything.")] = False,
    models: Annotated[
        bool,
        typer.Option(
            "--models",
            help="Also build each model the policy names ('models:') and warn "
            "about rules shadowed on all of them (imports torch).",
        ),
    ] = False,
) -> None:
    """Check policy files without building a model (never imports torch without --models)."""
    from .lint import lint, shadowed_everywhere
    from .policy import load

    failed = warned = False
    for path in policies:
        try:
            loaded = load(path)
        except TLRulesError as err:
            print_error(err)
            failed = True
            continue
        size = f"{len(loaded.stages)} stages" if loaded.stages else f"{len(loaded.rules)} rules"
        print(f"ok: {path} ({size})")
        try:
            found = lint(loaded) + (shadowed_everywhere(loaded) if models else [])
        except TLRulesError as err:
            print_error(err)
            failed = True
            continue
        for warning in found:
            print(f"warning[{warning.code}]: {warning.message}")
            warned = True
    if failed:
        raise typer.Exit(2)
    if strict and warned:
        raise typer.Exit(1)


cli_library.register(app)
cli_review.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        app(args=argv, prog_name="tlrules")
    except SystemExit as done:  # click's standalone mode ends every run this way
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return 0


def run() -> None:  # console-script entry point
    sys.exit(main())
