"""``tlrules convert TOOL CONFIG``: the freezing options of another fine-tuning tool's
config, as a tlrules policy that reproduces that tool's own matching exactly.

One module per tool, each with ``convert(doc) -> Converted`` (``doc``: the config as read
by ``read_config``) and ``surprises(doc, names) -> list[Surprise]`` (``names``: a model's
parameter names, decided under the tool's reading and under the reading its text or
documentation suggests). ``TOOLS`` names them; a module is imported when first used.
"""

from __future__ import annotations

from .written import Converted, Rule, Stage, Surprise

TOOLS = {
    "axolotl": "axolotl",
    "llamafactory": "llamafactory",
    "swift": "swift",
    "peft": "peft_adapter",
    "fts": "fts",
}

__all__ = ["TOOLS", "Converted", "Rule", "Stage", "Surprise"]
