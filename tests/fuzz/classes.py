"""The classes of fuzz cases, each a maker of ``Case`` from a seeded ``Random`` (and, for
the classes over policies, files drawn from a Hypothesis strategy), and ``draw``, which
takes a seeded, counted sample of one, outside of pytest as inside it."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .adapters import adapter_folder
from .apicase import MODELS as API_MODELS
from .checkcase import check_case, output_case
from .checkpoints import random_checkpoint
from .convertcase import convert_llm
from .mutators import mutate_bytes
from .round3 import paths, sizes, undo
from .runner import REPO, Case
from .strategies import policy_files

SHIPPED = {
    str(p.relative_to(REPO / "rules")): p.read_bytes()
    for p in sorted((REPO / "rules").rglob("*.yaml"))
}
"""Every shipped policy, by its path under rules/."""

FAMILIES = {
    "resnet": "resnet18", "vit": "vit_b_16", "swin": "swin_t", "convnext": "convnext_tiny",
    "densenet": "densenet121", "efficientnet": "efficientnet_b0",
    "mobilenet": "mobilenet_v3_small", "regnet": "regnet_y_400mf",
}  # fmt: skip
MODELS = (
    "resnet18",
    "tests.toys:small_cnn",
    "tests.toys:Tied",
    "tests.toys:Containers",
)
FREEZE_ALL = b'version: 1\nrules:\n  - "*": freeze\n'
FORMATS = ("tree", "table", "json", "markdown")

DANGEROUS_SPECS = ("os:abort", "signal:pause", "builtins:exit", "sys:exit", "code:interact")
SPECS = (
    *DANGEROUS_SPECS, "os:getpid", "builtins:input", "builtins:breakpoint", "time:sleep",
    "collections:OrderedDict", "torch.nn:Identity", "torch.nn:Linear", "json:loads",
    "tests.toys:Empty", "tests.toys:Tied", "a..b:c", ":x", "x:", "os.path:sep", "x" * 5000,
    "resnet5O", "torchvision:", "torchvision:resnet18\x00", "timm:", "timm:resnet18 ",
    "timm:../x", "hf:", "hf:nowhere", "hf:.", "hf:cfg#AutoModelForNothing", "model.txt",
    "../model.pt", "/dev/zero", "/dev/stdin.pt", "\udcff", "-", "--",
)  # fmt: skip

BERT = {
    "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37, "vocab_size": 99, "max_position_embeddings": 64,
}  # fmt: skip
LLAMA = {
    "model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 2, "intermediate_size": 37, "vocab_size": 99,
}  # fmt: skip

_T = TypeVar("_T")


def _family_model(path: str) -> str:
    stem = Path(path).name
    return next((m for f, m in FAMILIES.items() if stem.startswith(f)), "resnet18")


def _policy_argv(rnd: random.Random, policy: str, model: str) -> tuple[str, ...]:
    command = rnd.randrange(6)
    if command == 0:
        return ("validate", policy)
    if command == 1:
        return ("explain", model, policy, rnd.choice(["fc.weight", "layer4.0.conv1.weight", ""]))
    if command == 2:
        return ("lock", model, policy)
    stage = rnd.choice([(), (), ("--stage", "all"), ("--stage", "s0"), ("--stage", "head")])
    return ("audit", model, policy, "--format", rnd.choice(FORMATS), *stage)


def structured(rnd: random.Random, files: dict[str, bytes]) -> Case:
    argv = _policy_argv(rnd, "policy.yaml", rnd.choice(MODELS))
    return Case("policy", argv, files)


def mutated(rnd: random.Random) -> Case:
    path = rnd.choice(sorted(SHIPPED))
    data = mutate_bytes(SHIPPED[path], rnd, tuple(SHIPPED.values()))
    argv = _policy_argv(rnd, "policy.yaml", _family_model(path))
    return Case("mutation", argv, {"policy.yaml": data})


def checkpoint(rnd: random.Random) -> Case:
    name, data = random_checkpoint(rnd)
    command = rnd.randrange(4)
    if command == 0:
        argv: tuple[str, ...] = ("init", name)
    elif command == 1:
        argv = ("explain", name, "policy.yaml", "fc.weight")
    else:
        argv = ("audit", name, "policy.yaml", "--format", rnd.choice(FORMATS))
    return Case("checkpoint", argv, {name: data, "policy.yaml": FREEZE_ALL})


def hf_config(rnd: random.Random) -> bytes:
    config = dict(rnd.choice([BERT, LLAMA]))
    for _ in range(rnd.randint(0, 3)):
        key = rnd.choice(
            [*config, "auto_map", "torch_dtype", "architectures", "tie_word_embeddings"]
        )
        config[key] = rnd.choice(
            [0, -1, 10**6, 100_000, 10**30, "x", None, [], {"AutoModel": "m.M"}, 1.5, True]
        )
    text = json.dumps(config).encode()
    return mutate_bytes(text, rnd) if rnd.random() < 0.3 else text


def spec(rnd: random.Random) -> Case:
    files = {"policy.yaml": FREEZE_ALL}
    if rnd.random() < 0.4:
        files["cfg/config.json"] = hf_config(rnd)
        model = rnd.choice(["hf:cfg", "hf:cfg#AutoModelForCausalLM", "hf:cfg#AutoModelForMaskedLM"])
    else:
        model = rnd.choice(SPECS)
    command = rnd.randrange(3)
    argv = ("init", model) if command == 0 else ("audit", model, "policy.yaml")
    return Case("spec", argv, files)


def _odd_locks(rnd: random.Random) -> list[bytes]:
    """Lock documents of the right format with a hand-edited body."""
    entry = {"name": "fc.weight", "shape": [10, 512], "action": "train", "rule": 1}
    key = rnd.choice([*entry, "none"])
    odd = {**entry, key: rnd.choice([None, 7, "x", [], {}, True])}
    rules = rnd.choice([None, 3, [], [{"rule": 1}], [{"rule": [1], "pattern": 2}], ["x"]])
    body = {"format": "tlrules-lock/1", "fingerprint": rnd.choice(["sha256:0", 1, None])}
    return [
        json.dumps({**body, "parameters": [odd], "rules": rules}).encode(),
        json.dumps({**body, "parameters": rnd.choice([7, None, [[]], [entry]])}).encode(),
    ]


def argv_case(rnd: random.Random, files: dict[str, bytes]) -> Case:
    """Any command over a pool of inputs, with odd options and arguments thrown in."""
    ckpt_name, ckpt = random_checkpoint(rnd)
    locks = [b"{}", b"[", b'{"a": 1}', b"", *_odd_locks(rnd)]
    pool = {**files, ckpt_name: ckpt, "lock.json": rnd.choice(locks)}
    policies = ["policy.yaml", "torchvision/resnet-full", "torchvision/nothing", "../x", "", "-"]
    models = [*MODELS, ckpt_name, rnd.choice(SPECS)]
    pick = rnd.choice
    commands: list[tuple[str, ...]] = [
        ("audit", pick(models), pick(policies), "--format", pick([*FORMATS, "html", ""])),
        ("audit", pick(models), pick(policies), "--strict", "--stage", pick(["all", "", "x"])),
        ("validate", *rnd.sample(policies, rnd.randint(1, 3)), *pick([(), ("--strict",)])),
        ("validate", "--models", pick(policies)),
        ("explain", pick(models), pick(policies), pick(["fc.weight", "", "*", "\x00"])),
        ("diff", pick(models), pick(policies), pick(policies)),
        ("lock", pick(models), pick(policies)),
        (
            "verify",
            pick(models),
            pick(policies),
            pick(["lock.json", "missing.json", "policy.yaml"]),
        ),
        ("verify", pick(MODELS), "torchvision/resnet-full", "lock.json"),  # the lock is read
        ("rules", "show", pick(["torchvision/resnet-full", "../../etc/passwd", "x" * 300, ""])),
        ("rules", pick(["list", "schema", "nothing"])),
        ("init", pick(models), "--train", pick(["1", "-1", "0", "10000000000", "x"])),
        (pick(["", "-x", "--help", "audit --format"]),),
    ]
    argv = pick(commands)
    if rnd.random() < 0.1:
        argv = (*argv, pick(["extra", "--", "--format=tree", "-h"]))
    return Case("argv", argv, pool)


CONVERT_EXAMPLES = {
    tool: (REPO / "examples" / "convert" / name).read_bytes()
    for tool, name in [("axolotl", "axolotl.yaml"), ("llamafactory", "llamafactory.yaml"),
                       ("swift", "swift.yaml"), ("fts", "fts.yaml"),
                       ("peft", "adapter_config.json")]
}  # fmt: skip
"""The README's example config of each ``tlrules convert`` tool, mutated by ``convert``."""


def convert(rnd: random.Random) -> Case:
    """``tlrules convert`` on a damaged config of one tool (read as another one at times),
    with or without a model and an output file."""
    tool = rnd.choice(sorted(CONVERT_EXAMPLES))
    data = mutate_bytes(CONVERT_EXAMPLES[tool], rnd, tuple(CONVERT_EXAMPLES.values()))
    reader = tool if rnd.random() < 0.8 else rnd.choice([*CONVERT_EXAMPLES, "axolot"])
    model = ("--model", rnd.choice(["tests.toys:Tied", "resnet18"])) if rnd.random() < 0.3 else ()
    out = ("-o", "policy.yaml") if rnd.random() < 0.3 else ()
    argv = ("convert", reader, "config", *model, *out, *(("--strict",) * rnd.randrange(2)))
    return Case("convert", argv, {"config": data}, writes="policy.yaml" if out else None)


def api(rnd: random.Random, files: dict[str, bytes]) -> Case:
    if rnd.random() < 0.5:
        path = rnd.choice(sorted(SHIPPED))
        files = {"policy.yaml": mutate_bytes(SHIPPED[path], rnd, tuple(SHIPPED.values()))}
    return Case(
        "api", ("policy.yaml",), files, api=rnd.choice(sorted(API_MODELS)), seed=rnd.randrange(1000)
    )


CLASSES: dict[str, Callable[[random.Random, dict[str, bytes]], Case]] = {
    "policy": structured,
    "mutation": lambda rnd, _: mutated(rnd),
    "checkpoint": lambda rnd, _: checkpoint(rnd),
    "spec": lambda rnd, _: spec(rnd),
    "argv": argv_case,
    "api": api,
    "check": check_case,
    "output": output_case,
    "convert": lambda rnd, _: convert(rnd),
    "convertllm": lambda rnd, _: convert_llm(rnd),
    "adapter": adapter_folder,
    "sizes": lambda rnd, _: sizes(rnd),
    "paths": lambda rnd, _: paths(rnd),
    "undo": lambda rnd, _: undo(rnd),
}
"""Every class of case, by name: a maker from a seeded ``Random`` and drawn policy files."""


def draw(label: str, count: int, seed: int) -> list[Case]:
    """``count`` cases of class ``label``, the same for the same seed.

    Policy files come from the Hypothesis strategy ``policy_files`` (generated only, never
    shrunk, never stored in an example database); every other choice from a ``Random``
    seeded by the class, the seed and the case's index.
    """
    drawn = (
        _policy_files(count, seed)
        if label in ("policy", "argv", "api", "check", "output")
        else ({},)
    )
    return [
        CLASSES[label](random.Random(f"{label}/{seed}/{i}"), drawn[i % len(drawn)])
        for i in range(count)
    ]


@functools.lru_cache(maxsize=4)
def _policy_files(count: int, seed: int) -> tuple[dict[str, bytes], ...]:
    return tuple(_hypothesis_sample(policy_files(), count, seed))


def _hypothesis_sample(strategy: st.SearchStrategy[_T], count: int, seed: int) -> list[_T]:
    found: list[_T] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: _T) -> None:
        found.append(value)

    collect()
    return found


def each_class(count: int, seed: int, labels: list[str] | None = None) -> list[Case]:
    """``count`` cases of every class (or of ``labels``), interleaved."""
    per = [draw(label, count, seed) for label in (labels or list(CLASSES))]
    return [case for row in zip(*per, strict=True) for case in row]
