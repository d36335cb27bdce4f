"""Model specs: every source builds on the meta device, checkpoints are read without
running code, and every bad spec is one ``ModelSpecError`` (exit 2 from the CLI)."""

from __future__ import annotations

import builtins
import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from tests.toys import Tied
from tlrules.cli import main
from tlrules.models import build

LAYER4 = "torchvision/resnet-layer4-fc"


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters(remove_duplicate=False)}


def on_meta(model: nn.Module) -> bool:
    return all(p.device.type == "meta" for p in model.parameters())


def audit_json(capsys: pytest.CaptureFixture[str], spec: str, policy: str) -> dict[str, Any]:
    assert main(["audit", spec, policy, "--format", "json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def refused(capsys: pytest.CaptureFixture[str], spec: str) -> str:
    """The CLI's one-line message for a bad model spec (exit 2, no traceback)."""
    assert main(["audit", spec, LAYER4]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model ") and "Traceback" not in err
    assert err.count("\n") == 1
    return err.strip()


# -- torchvision -----------------------------------------------------------------------


def test_torchvision_names_build_on_meta() -> None:
    model = build("torchvision:vit_b_16")
    assert type(model).__name__ == "VisionTransformer" and on_meta(model)
    assert type(build("resnet50")).__name__ == "ResNet"


def test_regnet_y_128gf_builds_through_the_fallback() -> None:
    # its constructor calls .tolist() on a tensor, which the meta device cannot do
    with pytest.raises(NotImplementedError), torch.device("meta"):
        torchvision.models.regnet_y_128gf()
    model = build("regnet_y_128gf")
    assert on_meta(model)
    assert sum(p.numel() for p in model.parameters()) == 644_812_894


def test_unknown_torchvision_name_suggests_close_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, "resnt50") == (
        "error: model 'resnt50': torchvision has no such architecture; did you mean "
        "'resnet50', 'resnet152', 'resnet101'?"
    )


def test_unknown_source_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, "my/models:resnet50") == (
        "error: model 'my/models:resnet50': unknown model source 'my/models'; use a torchvision "
        "name ('resnet50'), 'timm:NAME', 'hf:DIR', 'package.module:factory' or a checkpoint "
        "file (.safetensors, .pt, .pth, .bin, .ckpt)"
    )
    # 'tim:' and 'nosuch:' could be factories in top-level modules, which do not exist
    assert refused(capsys, "tim:resnet50") == (
        "error: model 'tim:resnet50': unknown model source 'tim', and no module of that name "
        "holds a factory; did you mean 'timm:'?"
    )
    assert refused(capsys, "nosuch:thing") == (
        "error: model 'nosuch:thing': unknown model source 'nosuch', and no module of that name "
        "holds a factory; use a torchvision name ('resnet50'), 'timm:NAME', 'hf:DIR', "
        "'package.module:factory' or a checkpoint file (.safetensors, .pt, .pth, .bin, .ckpt)"
    )


# -- checkpoints -----------------------------------------------------------------------


class WritesAFile:
    """Unpickling this writes ``target``: code a checkpoint must never run."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (builtins.exec, (f"with open({str(self.target)!r}, 'w') as f: f.write('pwned')",))


def test_checkpoint_that_would_run_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "written-by-the-pickle"
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "hook": WritesAFile(target)}, path)

    assert refused(capsys, str(path)) == (
        f"error: model '{path}': refused to load: it calls 'exec', which could run code; "
        "tlrules reads checkpoints with torch.load(weights_only=True) and never runs code from "
        "them; if you trust the file, load it yourself and save just the state dict "
        "(torch.save(model.state_dict(), PATH)) or convert it to .safetensors"
    )
    assert not target.exists()
    # the payload is real: an unrestricted load runs it
    torch.load(path, weights_only=False)
    assert target.exists()


def test_state_dict_checkpoint_is_audited_with_its_names_and_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pt"
    torch.save(model.state_dict(), path)

    built = build(str(path))
    assert type(built).__name__ == "Checkpoint" and on_meta(built)
    assert shapes(built) == shapes(model)  # in model order; BN statistics are not parameters
    doc = audit_json(capsys, str(path), LAYER4)
    assert [(p["name"], tuple(p["shape"])) for p in doc["parameters"]] == list(
        shapes(model).items()
    )
    layer4_fc = sum(p.numel() for p in [*model.layer4.parameters(), *model.fc.parameters()])
    assert doc["summary"]["trainable_numel"] == layer4_fc
    assert doc["model"] == {"source": str(path), "class": "Checkpoint"}


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_state_dicts_are_unwrapped(tmp_path: Path, key: str) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    path = tmp_path / "run.ckpt"
    torch.save({key: model.state_dict(), "epoch": 3, "optimizer": {"state": {}}}, path)
    assert shapes(build(str(path))) == shapes(model)


def test_tied_weights_stay_one_parameter(tmp_path: Path) -> None:
    path = tmp_path / "tied.pth"
    torch.save(Tied().state_dict(), path)
    built = build(str(path))
    assert built.get_parameter("embed.weight") is built.get_parameter("head.weight")
    assert list(shapes(built)) == ["embed.weight", "body.weight", "body.bias", "head.weight"]


def test_safetensors_checkpoint_is_audited_with_its_names_and_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_file = pytest.importorskip("safetensors.torch").save_file
    model = torchvision.models.resnet18()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))

    built = build(str(path))
    assert on_meta(built) and shapes(built) == shapes(model)
    assert [n for n, _ in built.named_parameters()][:4] == [
        "bn1.bias", "bn1.weight", "conv1.weight", "fc.bias",
    ]  # fmt: skip  # a header has no model order: a natural sort, layer10 after layer9
    doc = audit_json(capsys, str(path), LAYER4)
    assert doc["summary"]["parameters"] == len(shapes(model))
    assert doc["summary"]["trainable_numel"] == sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(("layer4.", "fc."))
    )


def safetensors_file(path: Path, header: bytes, data: int = 0) -> str:
    """A safetensors file of ``header`` followed by ``data`` zero bytes of tensor data."""
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(data))
    return str(path)


def test_safetensors_header_is_all_that_is_read(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "blocks.10.w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
        "blocks.9.w": {"dtype": "F32", "shape": [4], "data_offsets": [12, 28]},
        "blocks.9.ids": {"dtype": "I64", "shape": [4], "data_offsets": [28, 60]},
    }
    # the tensor data is never read: zeros stand in for it
    built = build(safetensors_file(tmp_path / "x.safetensors", json.dumps(header).encode(), 60))
    assert shapes(built) == {"blocks.9.w": (4,), "blocks.10.w": (2, 3)}
    assert built.get_parameter("blocks.10.w").dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x01\x02", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12), "header length 1000000000000 is larger than the file allows"),
        (struct.pack("<Q", 4) + b"nope", "the header is not JSON: Expecting value: line 1 "
         "column 1 (char 0)"),
        (struct.pack("<Q", 2) + b"[]", "the header is not a JSON object"),
        (struct.pack("<Q", 22) + b'{"w": {"shape": [-1]}}',
         "tensor 'w' has no valid 'dtype' and 'shape'"),
    ],
)  # fmt: skip
def test_bad_safetensors_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, why: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    assert refused(capsys, str(path)) == f"error: model '{path}': not a safetensors file ({why})"


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        (torch.zeros(3), "the checkpoint holds a Tensor, not a state dict; save one with "
         "torch.save(model.state_dict(), PATH)"),
        ({"epoch": 3, "lr": 0.1}, "found no state dict (a mapping of names to tensors) in the "
         "checkpoint; its keys are 'epoch', 'lr'; save one with torch.save(model.state_dict(), "
         "PATH)"),
        ({"steps": torch.zeros(2, dtype=torch.long)},
         "the checkpoint holds no floating-point tensor"),
    ],
)  # fmt: skip
def test_torch_files_without_a_state_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], saved: object, message: str
) -> None:
    path = tmp_path / "x.pt"
    torch.save(saved, path)
    assert refused(capsys, str(path)) == f"error: model '{path}': {message}"


def test_missing_and_unreadable_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.bin"
    assert refused(capsys, str(missing)) == f"error: model '{missing}': no such checkpoint file"
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle at all")
    assert refused(capsys, str(garbage)) == (
        f"error: model '{garbage}': not a torch checkpoint (Unsupported operand 110)"
    )


# -- package.module:factory ------------------------------------------------------------

FACTORIES = """
from torch import nn

def small():
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))

def broken():
    raise ValueError("no such size")

def not_a_model():
    return 42

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module ``my_factories`` in the working directory, not on sys.path."""
    (tmp_path / "my_factories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    yield "my_factories"
    sys.modules.pop("my_factories", None)


def test_factory_is_imported_from_the_working_directory_and_called_on_meta(
    factories: str,
) -> None:
    before = list(sys.path)
    model = build(f"{factories}:small")
    assert shapes(model) == {"0.weight": (4, 3), "0.bias": (4,), "1.weight": (2, 4), "1.bias": (2,)}
    assert on_meta(model) and sys.path == before
    assert type(build(f"{factories}:Net")).__name__ == "Net"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my_factories:smal", "'my_factories' has no 'smal'; did you mean 'small'?"),
        ("my_factories:broken", "broken() failed: ValueError: no such size"),
        ("my_factories:not_a_model", "not_a_model() returned int, not a torch.nn.Module"),
        ("no_such_pkg.models:build", "cannot import 'no_such_pkg.models' (ModuleNotFoundError: "
         "No module named 'no_such_pkg'); run from the folder that holds it, or install its "
         "package"),
    ],
)  # fmt: skip
def test_bad_factories(
    factories: str, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    assert refused(capsys, spec) == f"error: model '{spec}': {message}"


# -- extras: timm and transformers -----------------------------------------------------


def test_missing_extras_name_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert refused(capsys, "timm:resnet50") == (
        "error: model 'timm:resnet50': timm is not installed; pip install 'tlrules[timm]'"
    )
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert refused(capsys, f"hf:{tmp_path}") == (
        f"error: model 'hf:{tmp_path}': transformers is not installed; "
        "pip install 'tlrules[transformers]'"
    )


def test_timm_models_build_on_meta(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    model = build("timm:vit_small_patch16_224")
    assert type(model).__name__ == "VisionTransformer" and on_meta(model)
    assert refused(capsys, "timm:vit_smal_patch16_224").startswith(
        "error: model 'timm:vit_smal_patch16_224': timm has no such architecture; did you mean "
        "'vit_small_patch16_224'"
    )


@pytest.fixture
def bert_dir(tmp_path: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        vocab_size=100,
    )  # fmt: skip
    config.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_hf_config_folder_builds_on_meta(bert_dir: Path) -> None:
    base = build(f"hf:{bert_dir}")
    assert type(base).__name__ == "BertModel" and on_meta(base)
    head = build(f"hf:{bert_dir}#AutoModelForSequenceClassification")
    assert type(head).__name__ == "BertForSequenceClassification" and on_meta(head)
    assert shapes(build(f"hf:{bert_dir}#BertForSequenceClassification")) == shapes(head)
    assert type(build(f"hf:{bert_dir}#BertModel")).__name__ == "BertModel"
    assert {n.removeprefix("bert.") for n in shapes(head)} - set(shapes(base)) == {
        "classifier.weight", "classifier.bias",
    }  # fmt: skip


@pytest.mark.slow
def test_bad_hf_specs(bert_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert refused(capsys, f"hf:{bert_dir}#AutoModelForCasualLM").startswith(
        f"error: model 'hf:{bert_dir}#AutoModelForCasualLM': 'AutoModelForCasualLM' is not a "
        "transformers AutoModel class or model class; did you mean 'AutoModelForCausalLM'"
    )
    assert refused(capsys, f"hf:{bert_dir}#BertForSequencClassification").startswith(
        f"error: model 'hf:{bert_dir}#BertForSequencClassification': "
        "'BertForSequencClassification' is not a transformers AutoModel class or model class; "
        "did you mean 'BertForSequenceClassification'"
    )
    # only classes transformers exports, by name: never a path, never a non-model name
    assert refused(capsys, f"hf:{bert_dir}#pipeline").endswith(
        "'pipeline' is not a transformers AutoModel class or model class"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refused(capsys, f"hf:{empty}") == (
        f"error: model 'hf:{empty}': the folder has no config.json; 'hf:' takes a local folder "
        "holding a Hugging Face config.json (nothing is downloaded: fetch it first, e.g. "
        "'hf download REPO config.json --local-dir DIR')"
    )
    assert refused(capsys, str(bert_dir)) == (
        f"error: model '{bert_dir}': torchvision has no such architecture; for a Hugging Face "
        f"config folder write 'hf:{bert_dir}'"
    )


@pytest.mark.slow
def test_hf_folder_with_custom_code_is_refused_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    marker = tmp_path / "ran"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "my-own", "auto_map": {"AutoConfig": "configuration_mine.MineConfig"},
    }))  # fmt: skip
    (tmp_path / "configuration_mine.py").write_text(f"open({str(marker)!r}, 'w')\n")
    assert refused(capsys, f"hf:{tmp_path}") == (
        f"error: model 'hf:{tmp_path}': transformers cannot build it: its config.json names "
        "custom code (auto_map), and tlrules never runs code from a model folder; write a "
        "'package.module:factory' that builds the model"
    )
    assert not marker.exists()


def test_factory_module_with_a_missing_dependency_says_so(
    factories: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "needs_dep.py").write_text("import not_installed_dep\n")
    assert refused(capsys, "needs_dep:build") == (
        "error: model 'needs_dep:build': cannot import 'needs_dep' (ModuleNotFoundError: No "
        "module named 'not_installed_dep'); run from the folder that holds it, or install "
        "its package"
    )
