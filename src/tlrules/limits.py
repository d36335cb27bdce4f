"""What one input may cost before tlrules refuses it (docs/spec.md#bad-input).

Every file a user hands tlrules (a policy, the bases it extends, a model spec, a
checkpoint, a config folder) may be hostile. Each limit below is checked *before* the
step it protects is paid for, and is generous for real inputs: a 10,000-rule policy for a
45,000-tensor model passes every one. ``docs/reliability.md`` lists them with the message
a user sees; a test checks that table against this module.

The values are module constants so that a caller with unusual needs can raise one
(``tlrules.limits.MAX_RULES = 200_000``) before loading; the code reads them at call time.
"""

from __future__ import annotations

__all__ = [
    "MAX_AUTOMATON_STEPS",
    "MAX_CHECKPOINT_ELEMENTS",
    "MAX_CHECKPOINT_HEADER_BYTES",
    "MAX_CHECKPOINT_INDEX_BYTES",
    "MAX_CHECKPOINT_TENSORS",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_REPEATS",
    "MAX_EXTENDS_BASES",
    "MAX_HELD_RULES",
    "MAX_INFLATION",
    "MAX_MODULES",
    "MAX_NAME_CHARS",
    "MAX_NESTING",
    "MAX_PATTERN_CHARS",
    "MAX_PICKLE_BYTES",
    "MAX_POLICY_BYTES",
    "MAX_RANGE_DIGITS",
    "MAX_REGEX_NESTING",
    "MAX_REGEX_REPEAT",
    "MAX_RULES",
    "MAX_TENSOR_NAME_CHARS",
    "MAX_YAML_NODES",
]

# -- policy text ------------------------------------------------------------------------
MAX_POLICY_BYTES = 8 * 1024 * 1024
"""Size of one policy file (or text), before it is decoded."""

MAX_YAML_NODES = 500_000
"""YAML nodes in one policy file, counting every alias as the nodes it stands for."""

MAX_NESTING = 64
"""Depth of nested YAML collections in a policy file."""

MAX_RULES = 25_000
"""Rules written in one policy, over all stages and bases: an ``audit`` of this many
costs about 10 s of CPU, or 20 s when every rule holds a range of its own (each range's
fragment is built before a name is matched; docs/reliability.md)."""

MAX_HELD_RULES = 100_000
"""Rules the stages of one policy hold together, each stage counting the rules it
inherits (N one-rule stages hold N(N+1)/2): what ``convert fts`` may produce too."""

MAX_PATTERN_CHARS = 4_096
"""Characters in one pattern (after its ``re:`` prefix)."""

MAX_RANGE_DIGITS = 18
"""Digits in one bound of a glob range ``{A..B}`` (up to 10**18 - 1)."""

MAX_REGEX_REPEAT = 100_000
"""Expanded size of a regex's counted repeats: ``(?:a{1000}){1000}`` is 1,000,000."""

MAX_REGEX_NESTING = 32
"""Depth of nested groups in one regex (the parsers recurse once per level)."""

# -- matching --------------------------------------------------------------------------
MAX_AUTOMATON_STEPS = 12_000_000
"""Automaton nodes stepped while one call matches names (the nodes each new step leaves
and reaches, and each new state's): the cost of many patterns alive at once, such as
5,000 rules with different ranges (``blocks.{0..N}.wK``), times the model's distinct
names. Real policies take far less: 233,000 for a 200-rule policy on a 45,000-tensor
MoE, 7.6 million (6 s) for 10,000 rules of different ranges on it."""

# -- extends ---------------------------------------------------------------------------
MAX_EXTENDS_BASES = 64
"""Distinct bases one policy extends, directly and through its bases (each loaded once)."""

MAX_NAME_CHARS = 255
"""Characters in a library name or an ``extends`` entry."""

# -- models and checkpoints -----------------------------------------------------------
MAX_MODULES = 250_000
"""Modules registered while building one model (on the meta device); the largest real
models build fewer than 100,000 (Qwen3-Next, one module per expert: about 98,000)."""

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""Size of a Hugging Face ``config.json`` (``hf:DIR``); real ones are under a megabyte."""

MAX_CONFIG_REPEATS = 2_048
"""A count of layers or experts in a Hugging Face ``config.json`` (an integer under a key
that names layers, experts or depth), checked before building. Real ones are in the
hundreds (126 layers, 512 experts); building is superlinear in some (BERT: 2,000 layers
take 10 s, 10,000 take 100 s)."""

MAX_CHECKPOINT_HEADER_BYTES = 100 * 1024 * 1024
"""Size of a safetensors header (the JSON before the tensor data). Reading one holds at
most about four times its bytes until its entries, counted first, are parsed."""

MAX_PICKLE_BYTES = 256 * 1024 * 1024
"""Size of the pickle inside a ``.pt``/``.pth``/``.bin``/``.ckpt`` file (tensor data apart)."""

MAX_INFLATION = 100
"""Ratio of a compressed archive member's size to its size on disk."""

MAX_CHECKPOINT_TENSORS = 250_000
"""Tensors listed in one checkpoint: as many as ``MAX_MODULES`` (a checkpoint is drawn as
one module per tensor name); the largest real ones list under 150,000 (Kimi K2, FP8 with
its scales). A safetensors header is counted before its entries are parsed."""

MAX_TENSOR_NAME_CHARS = 1_024
"""Characters in one checkpoint tensor name (real ones are under 200): it bounds the
depth of the module tree and the width of every line drawn for it."""

MAX_CHECKPOINT_ELEMENTS = 2**48
"""Elements in one checkpoint tensor (its shape's product); a bigger one is not real."""

MAX_CHECKPOINT_INDEX_BYTES = 100 * 1024 * 1024
"""Size of a sharded checkpoint's index (``model.safetensors.index.json``), read by
``tlrules check``; real ones are a few megabytes."""
