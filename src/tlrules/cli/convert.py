"""``tlrules convert TOOL CONFIG``: another fine-tuning tool's freezing options as a tlrules
policy that reproduces that tool's matching. Exit 0 done; 1 with ``--strict`` when there
are warnings; 2 bad input (the config, a refused option, the model spec, another tool's
config), and with ``--strict`` a config the tool itself would refuse.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .. import convert as converters
from ..convert.written import Converted, Surprise
from ..errors import DecisionError, PolicyError
from ..patterns import read_names
from ..policy import from_text
from . import loading, style
from .output import destination

if TYPE_CHECKING:
    from torch import nn

DESCRIPTIONS = {  # one line each in 'tlrules convert --help'; the keys are convert.TOOLS
    "axolotl": "an axolotl config's unfrozen_parameters (regexes, '.' rewritten, re.match)",
    "llamafactory": "a LLaMA-Factory config's finetuning_type: freeze options",
    "swift": "an ms-swift config's freeze_parameters / trainable_parameters options",
    "peft": "a PEFT adapter_config.json: what trains under that adapter",
    "fts": "a finetuning-scheduler schedule: its phases as stages with their lr",
}


def convert(
    tool: Annotated[
        str,
        typer.Argument(
            help="The tool the config is for (listed above).",
            autocompletion=lambda incomplete: [t for t in DESCRIPTIONS if t.startswith(incomplete)],
        ),
    ],
    config: Annotated[str, typer.Argument(help="The tool's config file (YAML or JSON).")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Write the policy to this file (only once it converted)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Also decide this model (resnet50, hf:DIR, ...) under the tool's reading and "
            "warn where the config surprises (imports torch)."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Exit 1 when there are warnings; 2 when the tool itself would refuse the config."
        ),
    ] = False,
) -> None:
    """Print a tlrules policy that decides what TOOL's CONFIG freezes, exactly as TOOL
    reads it, with a comment per rule naming the config line it came from.

    \b
    Tools:
    {tools}

    Warnings go to stderr as 'warning[convert]: FILE:LINE: ...'; exit 1 with --strict,
    2 where the tool itself would refuse the config.
    """
    write = destination(output)
    reading = converters.tool(tool)  # an unknown tool is refused before a model is built
    doc = converters.read_config(config)  # read once, for the policy and the surprises
    names, facts, built = None, None, None
    if model is not None:
        built = loading.load(model, [])  # a checkpoint's headers, or a model built with torch
        raw, peft_layers = loading.parameter_names(built, aliases=False)
        names, _ = read_names(raw, peft_layers)  # a PEFT model's: the base's
        facts = loading.facts(built, model)
    converted = converters.converted(tool, doc, names, facts)
    found = list(converted.warnings)
    if model is not None and names is not None and built is not None:
        found += reading.surprises(doc, names, facts)
        found += _rows_on(converted, built, model)
    refused = next((s for s in found if s.refused), None)
    if strict and refused is not None:  # bad input: its one error line, no warnings
        name = converters.tool_name(tool)
        raise PolicyError(f"{refused} (--strict: {name} itself refuses this config)")
    for surprise in found:
        line = f"warning[convert]: {surprise}"
        print(style.warnings(line, sys.stderr), file=sys.stderr)
    write(converted.text())
    if strict and found:
        raise typer.Exit(1)


def _rows_on(converted: Converted, built: loading.Named | nn.Module, spec: str) -> list[Surprise]:
    """The converted row rules read against the model's tensors: what ``apply`` would
    refuse (a row past a tensor's rows, docs/spec.md#rows) is a warning here, where the
    config can still change; a policy without row rules is not audited."""
    if converted.stages or all(r.rows is None for r in converted.rules):
        return []  # no row rules (no converter writes them into stages)
    policy = from_text(converted.text(), f"<converted from {converted.source}>")
    try:
        loading.report(policy, built, spec)
    except DecisionError as err:
        return [
            Surprise(f"the converted policy cannot apply to {spec}: {message}")
            for _, message in err.problems
        ]
    return []


convert.__doc__ = (convert.__doc__ or "").format(
    tools="\n    ".join(f"  {name:<14}{text}" for name, text in DESCRIPTIONS.items())
)


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the ``tlrules`` app."""
    app.command()(convert)
