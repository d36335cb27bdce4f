"""The header path (docs/spec.md#header-path): a checkpoint decided from its safetensors
headers, without torch, gives the report the torch path gives on the same files, in
every rendering."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import tlrules
from tlrules import convert as converters
from tlrules.cli import loading, main
from tlrules.engine import audit
from tlrules.errors import DecisionError, ModelSpecError
from tlrules.models import build
from tlrules.models.header_model import header_source
from tlrules.render import FORMATS, PICTURES, render, stage_changes
from tlrules.review.starter import starter_policy


class _Net(nn.Module):
    """Own parameters beside children, BatchNorm statistics, ten numbered blocks (natural
    order differs from the file's), a complex and an integer tensor, a half head."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(11))
        self.norm = nn.LayerNorm(4)
        self.rot = nn.Parameter(torch.zeros(2, dtype=torch.complex64))
        self.register_buffer("ids", torch.arange(4))
        self.fc = nn.Linear(4, 2).to(torch.bfloat16)


def _state(prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.contiguous() for k, v in _Net().state_dict().items()}


def _policy(text: str) -> tlrules.Policy:
    return tlrules.Policy.from_text("version: 1\n" + text, "p.yaml")


POLICIES = {
    "plain": 'rules:\n  - "blocks.{8..10}": train\n  - fc: train\n  - "*": freeze\n',
    "dead-shadowed": (
        'rules:\n  - "blocks.*": freeze\n  - "blocks.1": train\n  - nothere: train\n'
        '  - "*.bias": train\ndefault: freeze\n'
    ),
    "head-frozen": 'rules:\n  - stem: train\n  - "*": freeze\n',
    "nothing-trains": 'rules:\n  - "*": freeze\n',
    "groups-expect": (
        "rules:\n  - {match: 'blocks.{-2..-1}', action: train, expect: {min: 4, max: 4}}\n"
        "  - {match: 'fc', action: train}\n  - '*': freeze\n"
        "param_groups:\n  - fc: {lr_scale: 10}\n  - '*.bias': {weight_decay: 0.0}\n"
    ),
    "regex": "syntax: regex\nrules:\n  - 'blocks\\.(1|2)\\..*': train\n  - '.*': freeze\n",
}


def _write(tmp_path: Path, layout: str, state: dict[str, torch.Tensor]) -> str:
    """``state`` saved as one file, a sharded index, or a Hugging Face folder."""
    if layout == "file":
        save_file(state, tmp_path / "m.safetensors")
        return str(tmp_path / "m.safetensors")
    names = sorted(state)
    shards = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    folder = tmp_path / "hf" if layout == "folder" else tmp_path
    folder.mkdir(exist_ok=True)
    for shard, part in shards.items():
        save_file({n: state[n] for n in part}, folder / shard)
    index = "model.safetensors.index.json" if layout == "folder" else "m.safetensors.index.json"
    weight_map = {n: s for s, part in shards.items() for n in part}
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if layout == "folder":
        (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
        return str(folder)
    return str(folder / index)


def _both(spec: str, policy: tlrules.Policy) -> tuple[tlrules.Report, tlrules.Report]:
    model = loading.load(spec, [policy])
    assert isinstance(model, loading.Named)  # read from the headers
    return loading.report(policy, model, spec), audit(policy, build(spec), source=spec)


def _drawn(text: str) -> str:
    """``text`` with the random id each HTML page draws itself under made one."""
    return re.sub(r"tlr-[0-9a-f]{8}", "tlr-ID", text)


def _same_everywhere(a: tlrules.Report, b: tlrules.Report) -> None:
    for fmt in (*FORMATS, *PICTURES):
        assert _drawn(render(a, fmt)) == _drawn(render(b, fmt)), fmt
    assert a.to_dict() == b.to_dict()
    assert [(w.code, w.message) for w in a.warnings] == [(w.code, w.message) for w in b.warnings]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["file", "index", "folder"])
def test_every_rendering_equals_the_torch_paths(tmp_path: Path, layout: str) -> None:
    spec = _write(tmp_path, layout, _state())
    for text in POLICIES.values():
        header, torch_path = _both(spec, _policy(text))
        _same_everywhere(header, torch_path)
    report = _both(spec, _policy(POLICIES["plain"]))[0]
    assert report.model_class == "Checkpoint"
    assert [d.name for d in report.decisions][:3] == ["rot", "scale", "blocks.0.bias"]
    assert "blocks.10.bias" in {d.name for d in report.decisions if d.action == "train"}
    assert not any(d.name.endswith(("running_mean", "ids")) for d in report.decisions)
    codes = {w.code for w in _both(spec, _policy(POLICIES["dead-shadowed"]))[0].warnings}
    assert {"dead-rule", "shadowed-rule"} <= codes


@pytest.mark.slow
def test_stages_and_names_read_as_a_wrapper_or_peft_model_equal_too(tmp_path: Path) -> None:
    staged = _policy(
        "stages:\n  - name: head\n    rules: [fc: train, '*': freeze]\n"
        "  - name: full\n    inherit: false\n    rules: ['*': train]\n"
    )
    spec = _write(tmp_path, "file", _state())
    model = loading.load(spec, staged.every_stage())
    built = build(spec)
    for fmt in (*FORMATS, *PICTURES):
        header = [loading.report(s, model, spec) for s in staged.every_stage()]
        torch_path = [audit(s, built, source=spec) for s in staged.every_stage()]
        assert _drawn(stage_changes(header, fmt)) == _drawn(stage_changes(torch_path, fmt)), fmt
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    spec = _write(ddp, "file", _state("module."))  # read with the wrapper's prefix removed
    header, torch_path = _both(spec, _policy(POLICIES["plain"]))
    _same_everywhere(header, torch_path)
    assert header.decisions[0].name == "rot"
    lora = {
        "base_model.model.q.base_layer.weight": torch.zeros(4, 4),
        "base_model.model.q.lora_A.default.weight": torch.zeros(2, 4),
        "base_model.model.q.lora_B.default.weight": torch.zeros(4, 2),
    }
    peft = tmp_path / "peft"
    peft.mkdir()
    spec = _write(peft, "file", lora)
    header, torch_path = _both(spec, _policy('rules:\n  - "*.lora_*": train\n  - "*": freeze\n'))
    _same_everywhere(header, torch_path)
    assert [d.name for d in header.decisions if d.action == "train"] == [
        "q.lora_A.default.weight",
        "q.lora_B.default.weight",
    ]
    assert header.decisions[0].name == "q.weight"  # base_model.model. and base_layer removed


@pytest.mark.slow
def test_bad_input_says_the_same_on_both_paths(tmp_path: Path) -> None:
    spec = _write(tmp_path, "file", _state())
    strict = _policy("rules:\n  - fc: train\ndefault: error\n")
    errors = []
    for decide in (lambda: _both(spec, strict)[0], lambda: audit(strict, build(spec))):
        with pytest.raises(DecisionError) as caught:
            decide()
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "parameters match no rule" in errors[0]
    clash = tmp_path / "clash.safetensors"
    save_file({"a": torch.zeros(1), "a.b": torch.zeros(1)}, clash)
    messages = []
    for read in (lambda: loading.load(str(clash), [strict]), lambda: build(str(clash))):
        with pytest.raises(ModelSpecError) as caught:
            read()
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "cannot be a module path" in messages[0]


@pytest.mark.slow
def test_a_module_selector_is_decided_with_torch(tmp_path: Path, capsys) -> None:
    spec = _write(tmp_path, "file", _state())
    selecting = _policy(
        "rules:\n  - {match: '*', module: 'Module', action: train}\ndefault: freeze\n"
    )
    assert isinstance(loading.load(spec, [selecting]), nn.Module)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - {match: '*', module: 'Module', action: train}\ndefault: freeze\n"
    )
    assert main(["audit", spec, str(policy), "-f", "json"]) == 0
    trained = json.loads(capsys.readouterr().out)["summary"]["trainable"]
    names = [d.name for d in _both(spec, _policy(POLICIES["plain"]))[0].decisions]
    assert trained == sum("." in n for n in names)  # not the root's: it is a Checkpoint


@pytest.mark.slow
def test_explain_diff_lock_and_verify_read_the_headers(tmp_path: Path, capsys) -> None:
    spec = _write(tmp_path, "index", _state())
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("version: 1\n" + POLICIES["plain"])
    b.write_text("version: 1\n" + POLICIES["head-frozen"])
    assert main(["explain", spec, str(a), "blocks.9.weight"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("blocks.9.weight (in a Module) trains: rule 1")
    assert main(["diff", spec, str(a), str(a)]) == 0
    assert capsys.readouterr().out == "0 parameters differ\n"
    assert main(["diff", spec, str(a), str(b)]) == 1
    assert "blocks.8.weight: train" in capsys.readouterr().out
    assert main(["lock", spec, str(a)]) == 0
    lock = tmp_path / "p.lock"
    lock.write_text(capsys.readouterr().out)
    assert main(["verify", spec, str(a), str(lock)]) == 0
    assert main(["verify", spec, str(b), str(lock)]) == 1


@pytest.mark.slow
def test_init_and_convert_read_the_headers_as_the_torch_path(tmp_path: Path, capsys) -> None:
    spec = _write(tmp_path, "index", _state())
    built = build(spec)
    for train in (None, 3):
        assert main(["init", spec, *(["--train", str(train)] if train else [])]) == 0
        assert capsys.readouterr().out == starter_policy(built, spec, train)
    config = tmp_path / "axolotl.yaml"
    config.write_text("base_model: x\nunfrozen_parameters:\n  - fc\n  - blocks.1$\n  - nothere\n")
    assert main(["convert", "axolotl", str(config), "--model", spec]) == 0
    out, err = capsys.readouterr()
    reading = converters.tool("axolotl")
    doc = converters.read_config(str(config))
    names = [n for n, _ in built.named_parameters()]
    assert out == reading.convert(doc, names).text()
    wanted = [f"warning[convert]: {s}" for s in reading.surprises(doc, names)]
    assert wanted and err.splitlines() == wanted


def test_which_specs_are_read_from_headers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    config_only = str(tmp_path)
    assert header_source(f"hf:{config_only}") is None  # built with transformers, as before
    assert header_source(config_only) is None
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert header_source(config_only) is None  # torch files: not a header path
    (tmp_path / "model.safetensors").write_bytes(b"")
    weights = tmp_path / "model.safetensors"
    assert header_source(config_only) == weights
    assert header_source(f"hf:{config_only}") == weights
    assert header_source(f"hf:{config_only}#LlamaForCausalLM") is None  # a class: built
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    assert header_source(config_only) == tmp_path / "model.safetensors.index.json"
    assert header_source("x/m.safetensors") == Path("x/m.safetensors")  # reading says why not
    assert header_source("x/m.SAFETENSORS.index.json") == Path("x/m.SAFETENSORS.index.json")
    for other in ("resnet50", "timm:resnet18", "m.pt", "pkg.mod:factory"):
        assert header_source(other) is None


def test_a_segment_torch_reserves_is_read_on_the_header_path_only(tmp_path: Path) -> None:
    spec = str(tmp_path / "attr.safetensors")
    save_file({"blk.train.weight": torch.zeros(2), "fc.weight": torch.zeros(2)}, spec)
    policy = _policy('rules:\n  - fc: train\n  - "*": freeze\n')
    report = loading.report(policy, loading.load(spec, [policy]), spec)
    assert [(d.name, d.action) for d in report.decisions] == [
        ("blk.train.weight", "freeze"),
        ("fc.weight", "train"),
    ]
    with pytest.raises(ModelSpecError, match="attribute 'train' already exists"):
        build(spec)  # docs/spec.md#header-path rule 3: the one difference
