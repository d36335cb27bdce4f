"""``tlrules check`` of a safetensors pair without torch (``review.bytewise``): the same
result, output and exit code as the torch path (``review.weights.check_tensors``) on
the same pairs, torch never imported for a clean run, and the torch path taken wherever
names alone do not decide."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import tlrules
from tlrules.cli import main
from tlrules.errors import DecisionError, ModelSpecError
from tlrules.models.files import ChunkReader, safetensors_state
from tlrules.models.safetensors_header import FLOATING, TORCH_DTYPES
from tlrules.render import render_check
from tlrules.review import bytewise, proof
from tlrules.review.named import MODULE_ATTRIBUTES
from tlrules.review.weights import check_tensors

POLICY = 'version: 1\nname: p\nrules:\n  - layer4: train\n  - fc: train\n  - "*": freeze\n'
POLICIES = {
    "follow": POLICY,
    "update": POLICY.replace("rules:", "norm_stats: update\nrules:"),
    "frozen": "version: 1\nnorm_stats: frozen\ndefault: freeze\nrules:\n  - fc: train\n",
    "ranges": "version: 1\ndefault: train\nrules:\n  - layer{3..4}.{-1..-1}: train\n"
    '  - "re:.*\\\\.bn\\\\d+\\\\..*": freeze\n  - "*.bias": train\n  - conv1: freeze\n',
    "stages": "version: 1\nstages:\n  - name: head\n    rules:\n      - fc: train\n"
    '      - "*": freeze\n  - name: full\n    rules:\n      - "*": train\n',
}
Edit = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in POLICIES.items():
        Path(f"{name}.yaml").write_text(text)


def _nudge(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    w = s["layer2.0.conv1.weight"]
    w[3, 2, 1, 0] = torch.nextafter(w[3, 2, 1, 0], torch.tensor(float("inf")))
    s["fc.weight"] += 1
    return s


def _stats(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    s["layer3.1.bn2.running_var"][0] += 1
    s["bn1.num_batches_tracked"] += 1
    return s


def _renamed(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    s["classifier.weight"] = s.pop("fc.weight")
    del s["layer1.0.bn1.running_mean"]
    return s


def _dtypes(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    s["conv1.weight"] = s["conv1.weight"].to(torch.bfloat16)  # frozen: its numbers
    s["layer4.0.conv1.weight"] = s["layer4.0.conv1.weight"].half()  # trained
    s["bn1.weight"] = torch.zeros(3)  # frozen, another shape
    s["layer2.0.bn1.bias"][0] = float("nan")
    return s


def _ddp(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    s["layer1.1.conv2.weight"] *= 2
    return {f"module.{k}": v for k, v in s.items()}


EDITS: dict[str, Edit] = {
    "clean": lambda s: s,
    "nudge": _nudge,
    "stats": _stats,
    "renamed": _renamed,
    "dtypes": _dtypes,
    "ddp": _ddp,
}


def _pair(state: dict[str, torch.Tensor], edit: Edit, sharded: bool = False) -> tuple[str, str]:
    """BEFORE (one file, or three shards and an index in a folder) and AFTER."""
    if sharded:
        names = list(state)
        Path("before").mkdir()
        weight_map = {}
        for k, part in enumerate((names[:40], names[40:90], names[90:])):
            file = f"model-{k + 1:05d}-of-00003.safetensors"
            save_file({n: state[n] for n in part}, f"before/{file}")
            weight_map.update(dict.fromkeys(part, file))
        index = {"metadata": {}, "weight_map": weight_map}
        Path("before/model.safetensors.index.json").write_text(json.dumps(index))
        before = "before"
    else:
        before = "before.safetensors"
        save_file(state, before)
    save_file(edit({k: v.clone() for k, v in state.items()}), "after.safetensors")
    return before, "after.safetensors"


def _both(policy: str, before: str, after: str, stage: str | None = None) -> Any:
    """The result of each path; the torch-free one must not fall back."""
    loaded = tlrules.load(policy)
    part = loaded.stage(stage) if stage else loaded
    fast = bytewise.check_bytes(part, before, after, _no_numbers)
    numbers = proof.check(loaded, before, after, stage=stage)
    slow = check_tensors(part, before, after)
    return fast, numbers, slow


def _no_numbers(a: str, b: str, name: str, measure: bool) -> Any:
    raise AssertionError(f"{name} needed torch")


@pytest.mark.slow
@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("policy", ["follow", "update", "frozen", "ranges"])
def test_both_paths_find_the_same(edit: str, policy: str, state: dict[str, torch.Tensor]) -> None:
    before, after = _pair(state, EDITS[edit], sharded=edit == "stats")
    loaded = tlrules.load(f"{policy}.yaml")
    slow = check_tensors(loaded, before, after)
    fast = proof.check(loaded, before, after)
    assert fast == slow
    assert fast.to_dict() == slow.to_dict()
    for fmt in ("text", "json", "markdown", "html"):
        assert render_check(fast, fmt) == render_check(slow, fmt)
    needs = slow.violations or edit == "dtypes"
    if not needs:  # nothing to measure: torch is never asked
        assert bytewise.check_bytes(loaded, before, after, _no_numbers) == slow


@pytest.mark.slow
def test_the_summaries_the_cases_give(state: dict[str, torch.Tensor]) -> None:
    """The cases above are what they say (a guard against equal but empty results)."""
    found = {}
    for edit in ("clean", "nudge", "stats", "renamed", "dtypes", "ddp"):
        folder = Path(edit)
        folder.mkdir()
        with pytest.MonkeyPatch.context() as m:
            m.chdir(folder)
            Path("follow.yaml").write_text(POLICY)
            before, after = _pair(state, EDITS[edit])
            result = proof.check(tlrules.load("follow.yaml"), before, after)
        found[edit] = (result.summary.violations, [v.name for v in result.violations])
    assert found == {
        "clean": (0, []),
        "nudge": (1, ["layer2.0.conv1.weight"]),
        "stats": (2, ["bn1.num_batches_tracked", "layer3.1.bn2.running_var"]),
        "renamed": (1, ["layer1.0.bn1.running_mean"]),  # frozen statistics missing from AFTER
        "dtypes": (3, ["bn1.weight", "conv1.weight", "layer2.0.bn1.bias"]),
        "ddp": (1, ["layer1.1.conv2.weight"]),
    }


@pytest.mark.slow
def test_the_cli_gives_the_same_bytes_and_exit_codes(
    state: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before, after = _pair(state, _nudge)
    runs = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(proof, "check_bytes", lambda *a, **k: None)
        for argv in (
            ["follow.yaml", before, after],
            ["follow.yaml", before, after, "-f", "json"],
            ["follow.yaml", before, after, "-f", "markdown", "--atol", "1e-3"],
            ["update.yaml", before, before, "--strict"],
            ["stages.yaml", before, after, "--stage", "head"],
            ["stages.yaml", before, after],
        ):
            code = main(["check", *argv])
            runs.append((code, *capsys.readouterr()))
    assert runs[:6] == runs[6:]
    assert [r[0] for r in runs[:6]] == [1, 1, 0, 1, 1, 2]
    assert runs[5][2] == (
        "error: stages.yaml:2:1: the policy is in stages ('head', 'full'); pick one: "
        "policy.stage('head') in Python, '--stage head' on the command line\n"
    )


@pytest.mark.slow
def test_a_sharded_index_and_a_folder(state: dict[str, torch.Tensor]) -> None:
    before, after = _pair(state, _stats, sharded=True)
    for side in (before, f"{before}/model.safetensors.index.json"):
        fast, numbers, slow = _both("stages.yaml", side, after, stage="full")
        assert fast is not None and fast.violations == ()
        assert numbers == slow
    Path("hf").mkdir()
    Path(after).rename("hf/model.safetensors")
    policy = tlrules.load("follow.yaml")
    asked: list[str] = []
    with proof._Values(before, "hf", 0.0) as values:

        def numbers(a: str, b: str, name: str, measure: bool) -> Any:
            asked.append(name)
            return values(a, b, name, measure)

        fast = bytewise.check_bytes(policy, before, "hf", numbers)
    slow = check_tensors(policy, before, "hf")
    assert fast == slow and fast.after == "hf"
    assert asked == ["bn1.num_batches_tracked", "layer3.1.bn2.running_var"]  # only those
    assert [v.name for v in slow.violations] == [
        "bn1.num_batches_tracked",
        "layer3.1.bn2.running_var",
    ]


@pytest.mark.slow
def test_a_clean_run_never_imports_torch(state: dict[str, torch.Tensor]) -> None:
    before, after = _pair(state, lambda s: {**s, "fc.weight": s["fc.weight"] + 1})
    _pair_nudged = "nudged.safetensors"
    save_file(_nudge({k: v.clone() for k, v in state.items()}), _pair_nudged)
    src = str(Path(tlrules.__file__).parents[1])
    code = (
        "import sys; from tlrules.cli import main; code = main(sys.argv[1:]); "
        "print(code, 'torch' in sys.modules, file=sys.stderr)"
    )
    seen = []
    for argv in ([before, after], [before, _pair_nudged]):
        done = subprocess.run(
            [sys.executable, "-c", code, "check", "follow.yaml", *argv, "-f", "json"],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        seen.append(done.stderr.splitlines()[-1])
    assert seen == ["0 False", "1 True"]  # a violation's numbers need torch, only then


UNMATCHED = (
    "p.yaml:3:1: 60 parameters match no rule and the policy's default is 'error': 'bn1.bias', "
    "'bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.bn1.weight', 'layer1.0.bn2.bias', "
    "'layer1.0.bn2.weight', 'layer1.0.conv1.weight', 'layer1.0.conv2.weight' and 52 more; add "
    "a catch-all rule such as '- \"*\": freeze' at the end, or set 'default: freeze'"
)
NOT_A_PATH = (
    "checkpoint 'before.safetensors': tensor name {!r} cannot be a module path "
    '("attribute {!r} already exists")'
)
FALLBACKS = [
    ('version: 1\ndefault: freeze\nrules:\n  - {match: "*", module: Linear, action: train}\n',
     {}, None),
    ('version: 1\nrules:\n  - {match: fc, action: train, expect: {min: 1}}\n  - "*": freeze\n',
     {}, None),
    ("version: 1\ndefault: error\nrules:\n  - fc: train\n", {}, UNMATCHED),
    (POLICY, {"layer1.train": torch.zeros(2)}, NOT_A_PATH.format("layer1.train", "train")),
    (POLICY, {"fc.weight.x": torch.zeros(2)}, NOT_A_PATH.format("fc.weight.x", "weight")),
    (POLICY, {"fc._hidden": torch.zeros(2)}, None),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "names", "message"),
    FALLBACKS,
    ids=["module-selector", "expect", "default-error", "attribute", "leaf-and-module", "_"],
)
def test_what_names_alone_do_not_decide_goes_to_torch(
    text: str,
    names: dict[str, torch.Tensor],
    message: str | None,
    state: dict[str, torch.Tensor],
) -> None:
    save_file({**state, **names}, "before.safetensors")
    policy = tlrules.Policy.from_text(text, "p.yaml")
    pair = "before.safetensors", "before.safetensors"
    assert bytewise.check_bytes(policy, *pair, _no_numbers) is None
    try:
        slow: Any = check_tensors(policy, *pair)
    except (DecisionError, ModelSpecError) as err:
        slow = str(err)
    try:
        fast: Any = proof.check(policy, *pair)
    except (DecisionError, ModelSpecError) as err:
        fast = str(err)
    assert fast == slow
    assert (slow if isinstance(slow, str) else None) == message


@pytest.mark.slow
def test_a_segment_that_ends_in_module_is_decided_by_names(
    state: dict[str, torch.Tensor],
) -> None:
    """``submodule.x`` holds no wrapper segment: the engine decides it one name at a time
    (``bare_names`` gives a new list), to the same decisions."""
    save_file({**state, "submodule.x": torch.zeros(2)}, "before.safetensors")
    save_file({**state, "submodule.x": torch.ones(2)}, "after.safetensors")
    policy = tlrules.load("follow.yaml")
    pair = "before.safetensors", "after.safetensors"
    asked: list[str] = []
    with proof._Values(*pair, 0.0) as values:

        def numbers(a: str, b: str, name: str, measure: bool) -> Any:
            asked.append(name)
            return values(a, b, name, measure)

        fast = bytewise.check_bytes(policy, *pair, numbers)
    assert fast == check_tensors(policy, *pair)
    assert asked == ["submodule.x"]
    assert [v.to_dict() for v in fast.violations] == [
        {
            "name": "submodule.x",
            "rule": 3,
            "max_abs_diff": 1.0,
            "changed_fraction": 1.0,
            "code": "changed",
        }
    ]


@pytest.mark.slow
def test_a_torch_file_on_either_side_goes_to_torch(state: dict[str, torch.Tensor]) -> None:
    save_file(state, "before.safetensors")
    torch.save(state, "after.pt")
    policy = tlrules.load("follow.yaml")
    for pair in (("before.safetensors", "after.pt"), ("after.pt", "before.safetensors")):
        assert bytewise.check_bytes(policy, *pair, _no_numbers) is None
        assert proof.check(policy, *pair) == check_tensors(policy, *pair)
    assert bytewise.check_bytes(policy, state, "before.safetensors", _no_numbers) is None


@pytest.mark.slow
def test_module_attributes_are_those_of_the_installed_torch() -> None:
    # a fresh interpreter: transformers adds 'smart_apply' to nn.Module when it builds a model
    code = "import torch; print(*sorted(n for n in dir(torch.nn.Module()) if n[0] != '_'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) == MODULE_ATTRIBUTES


def test_dtypes_read_as_torch_reads_them() -> None:
    for name, torch_name in TORCH_DTYPES.items():
        dtype = getattr(torch, torch_name)
        assert (name in FLOATING) == (dtype.is_floating_point or dtype.is_complex), name
    assert set(TORCH_DTYPES) >= FLOATING


def test_chunks_across_their_boundaries_and_a_file_cut_short() -> None:
    a = torch.arange(1000, dtype=torch.float32)
    b = a.clone()
    b[999] += 1
    save_file({"x": a, "y": a.clone()}, "a.safetensors")
    save_file({"x": a, "y": b}, "b.safetensors")
    left = safetensors_state("a.safetensors", "a")
    right = safetensors_state("b.safetensors", "b")
    assert left is not None and right is not None
    with ChunkReader(chunk=7) as reader:
        assert reader.same(left["x"], right["x"], ("a", "b"))
        assert not reader.same(left["y"], right["y"], ("a", "b"))
    data = Path("b.safetensors").read_bytes()
    Path("b.safetensors").write_bytes(data[:-10])
    with ChunkReader(chunk=7) as reader, pytest.raises(ModelSpecError) as err:
        reader.same(left["y"], right["y"], ("a", "b"))
    assert str(err.value) == (
        "checkpoint 'b': the file changed while it was read (b.safetensors ends before the "
        "tensor data its header lists)"
    )
