"""``tlrules`` command line. ``main(argv)`` is a plain function that returns the exit code.

Exit codes: 0 done; 1 the audit has warnings and ``--strict`` was given (``verify``: the
decisions changed); 2 the input is unusable (policy, model spec, file), with one clear
message on stderr; 3 a bug in tlrules (one line; the traceback with ``--debug``).
Torch is imported only by the commands that build a model.
"""

from __future__ import annotations

import dataclasses
import sys
from enum import Enum
from typing import Annotated

import typer

from .. import __version__
from ..compat.cli_errors import NoArgsIsHelpError, UsageError
from ..errors import TLRulesError
from ..render import render, stage_changes
from . import check, convert, library, loading, review, style
from .args import ModelArg, PolicyArg, complete_policy
from .exits import (
    BAD_INPUT,
    capped_warnings,
    debugging,
    guarded,
    print_error,
    tolerant_output,
    usage_error,
)
from .output import destination
from .policies import STDIN, STDIN_NAME, load_policy, stdin_once

app = typer.Typer(
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"tlrules {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version of tlrules and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an internal error (exit code 3); also "
            "TLRULES_DEBUG=1. Accepted anywhere on the command line.",
        ),
    ] = False,
) -> None:
    """Declarative freezing rules for PyTorch transfer learning."""


class Format(str, Enum):
    tree = "tree"
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"
    svg = "svg"


@app.command()
def audit(
    model: ModelArg,
    policy: PolicyArg,
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
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Write to this file instead of stdout (e.g. report.html)."
        ),
    ] = None,
) -> None:
    """Show, for every parameter of MODEL, what POLICY decides and which rule decided it.

    Warnings (dead or shadowed rules, nothing trains, the last layer frozen, norm layers
    split by name) go to stderr as 'warning[CODE]: FILE:LINE: ...'; exit 1 with --strict.
    """
    write = destination(output)
    loaded = load_policy(policy)
    parts = loaded.every_stage() if stage == "all" else [loaded.stage(stage) if stage else loaded]
    built = loading.load(model, parts)  # a checkpoint's headers, or a model built with torch
    text = fmt in (Format.tree, Format.table)  # the text views leave the warnings to stderr
    if stage == "all":
        reports = [loading.report(s, built, model) for s in parts]
        shown = [dataclasses.replace(r, warnings=()) for r in reports] if text else reports
        write(_coloured(stage_changes(shown, fmt.value), fmt, output))
        warned = [(f" (stage {r.stage})", w) for r in reports for w in r.warnings]
    else:
        reports = [loading.report(parts[0], built, model)]
        shown_one = dataclasses.replace(reports[0], warnings=()) if text else reports[0]
        write(_coloured(render(shown_one, fmt.value), fmt, output))
        warned = [("", w) for w in reports[0].warnings]
    lines = [(w.code, f"warning[{w.code}]{where}: {w.message}") for where, w in warned]
    for line in capped_warnings(lines):
        print(style.warnings(line, sys.stderr), file=sys.stderr)
    if strict and any(r.warnings for r in reports):
        raise typer.Exit(1)


@app.command()
def validate(
    policies: Annotated[
        list[str],
        typer.Argument(
            metavar="POLICY...",
            help="Policy files, library names, or - to read one from stdin.",
            autocompletion=complete_policy,
        ),
    ],
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
    stdin_once(policies)
    failed = warned = False
    for path in policies:
        try:
            loaded = load_policy(path)
            size = f"{len(loaded.stages)} stages" if loaded.stages else f"{len(loaded.rules)} rules"
            shown = STDIN_NAME if path == STDIN else path
            print(f"{style.paint('ok:', 'green', sys.stdout)} {shown} ({size})")
            found = list(loaded.lint)
            if models:
                from ..review import shadowed_everywhere  # builds the models: imports torch

                found += shadowed_everywhere(loaded)
        except TLRulesError as err:
            print_error(err)
            failed = True
            continue
        lines = [(w.code, f"warning[{w.code}]: {w.message}") for w in found]
        for line in capped_warnings(lines):
            print(style.warnings(line, sys.stderr), file=sys.stderr)
        warned = warned or bool(found)
    if failed:
        raise typer.Exit(2)
    if strict and warned:
        raise typer.Exit(1)


def _coloured(text: str, fmt: Format, output: str | None) -> str:
    """The drawn audit, a tree or table in colour when it goes to a terminal."""
    if output is None and fmt in (Format.tree, Format.table):
        return style.audit(text, sys.stdout)
    return text


library.register(app)
review.register(app)
check.register(app)
convert.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Nothing a command raises leaves it: bad input (a ``TLRulesError``) prints one
    ``error:`` line per problem and returns 2; any other exception is a bug in tlrules,
    printed as one ``tlrules: internal error`` line, and returns 3.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    tolerant_output()
    debug = debugging(args)
    if "--debug" in args:  # accepted anywhere: click takes it before the command only
        args = ["--debug", *(a for a in args if a != "--debug")]
    return guarded(lambda: _click(args), debug=debug)


def _click(args: list[str]) -> int:
    try:
        code = app(args=args, prog_name="tlrules", standalone_mode=False)
    except NoArgsIsHelpError as shown:  # no command: the help, as click shows it
        shown.show()  # type: ignore[attr-defined]  # a click.UsageError
        return BAD_INPUT
    except UsageError as err:  # click's own errors: one line, as tlrules' are
        print(usage_error(err), file=sys.stderr)
        return BAD_INPUT
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    except SystemExit as done:  # shell completion ends this way
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    return code if isinstance(code, int) else 0


def run() -> None:  # console-script entry point
    sys.exit(main())
