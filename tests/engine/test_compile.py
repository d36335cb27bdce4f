"""torch.compile: a policy applies by bare names, the audit shows bare names, and a
compiled model that already ran warns when its trainable set changes.

The backend is ``aot_eager``: it traces forward and backward through AOTAutograd, the
path where ``requires_grad`` shapes the graph, like inductor, but without inductor's C++
compilation (tens of seconds on a cold cache, too slow for CI on two cores).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import tlrules
from tlrules.preflight import CompileWarning

BACKEND = "aot_eager"
POLICY = """
version: 1
rules:
  - head: train
  - "*": freeze
"""
WIDER = """
version: 1
rules:
  - head: train
  - body.2: train
  - "*": freeze
"""


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Net(nn.Module):
    """A model class of the user's own (Dynamo caches code for its ``forward``)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # type: ignore[no-any-return]


def _net(kind: str = "custom") -> nn.Module:
    torch.manual_seed(0)
    if kind == "custom":
        return Net()
    net = nn.Sequential()  # a torch.nn class: Dynamo inlines its call
    net.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
    net.head = nn.Linear(8, 2)
    return net


def _backward(model: nn.Module) -> set[str]:
    """Names (as ``model`` gives them) of the parameters one backward pass reaches."""
    model(torch.randn(3, 4)).sum().backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_policy_applies_to_a_compiled_model_by_bare_names() -> None:
    net = _net()
    compiled = torch.compile(net, backend=BACKEND)
    assert next(n for n, _ in compiled.named_parameters()).startswith("_orig_mod.")
    policy = tlrules.Policy.from_text(POLICY)

    report = policy.apply(compiled).to_dict()

    assert report == policy.audit(_net()).to_dict()  # bare names, the user's class
    assert report["model"]["class"] == "Net"
    assert {p["name"] for p in report["parameters"] if p["action"] == "train"} == {
        "head.weight",
        "head.bias",
    }
    assert _backward(compiled) == {"_orig_mod.head.weight", "_orig_mod.head.bias"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["custom", "sequential"])
def test_changing_the_trainable_set_of_a_compiled_model_that_ran_warns(kind: str) -> None:
    net = _net(kind)
    compiled = torch.compile(net, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before the first call: nothing to warn about
        tlrules.Policy.from_text(POLICY).apply(compiled)
    _backward(compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same trainable set again: nothing either
        tlrules.Policy.from_text(POLICY).apply(compiled)

    with pytest.warns(CompileWarning, match=r"already ran.*'body\.2\.weight'.*recompile_limit"):
        tlrules.Policy.from_text(WIDER).apply(compiled)

    net.zero_grad(set_to_none=True)
    # Dynamo's guards recompile for the new trainable set: the unfrozen layer gets gradients
    assert _backward(compiled) == {
        "_orig_mod.head.weight",
        "_orig_mod.head.bias",
        "_orig_mod.body.2.weight",
        "_orig_mod.body.2.bias",
    }


def test_module_compile_in_place_is_checked_too() -> None:
    net = _net()
    net.compile(backend=BACKEND)  # names stay bare; the module itself is compiled
    tlrules.Policy.from_text(POLICY).apply(net)
    _backward(net)
    with pytest.warns(CompileWarning, match="already ran"):
        tlrules.Policy.from_text(WIDER).apply(net)
