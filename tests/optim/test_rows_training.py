"""Row rules under the user's own optimizer (docs/spec.md#rows): the frozen rows stay
bit-identical through AdamW with weight decay, the trained rows move, the checkpoint's
keys and shapes stay, tied embeddings follow, undo restores, verify knows rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.engine.test_rows_decide import NEW_TOKENS, TinyLM, policy
from tests.llm_names import tiny_llama
from tlrules import DecisionError

NEW = 900  # rows NEW: of a 1,024-row vocabulary train


def llama(tie: bool) -> nn.Module:
    model: nn.Module = tiny_llama(tie, vocab=1024, hidden=32, heads=4)
    return model


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bytes, so that ``torch.equal`` compares bit patterns (a NaN, -0.0)."""
    return t.detach().contiguous().view(torch.uint8)


def batch() -> torch.Tensor:
    ids = torch.randint(0, 1024, (2, 16), generator=torch.Generator().manual_seed(1))
    ids[:, :6] = torch.tensor([900, 950, 1000, 1023, 901, 999])  # new tokens in every row
    return ids


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    ids = batch()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss if hasattr(model, "config") else None
        (model(ids).square().mean() if loss is None else loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()


def check_rows(before: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Rows < NEW of the embedding and head bit-identical, every row >= NEW changed,
    every other tensor bit-identical; keys and shapes as before."""
    after = model.state_dict()
    assert [(k, v.shape) for k, v in after.items()] == [(k, v.shape) for k, v in before.items()]
    for name, was in before.items():
        now = after[name]
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(bits(now[:NEW]), bits(was[:NEW])), name
            assert (now[NEW:] != was[NEW:]).any(dim=1).all(), name  # each new row moved
        else:
            assert torch.equal(bits(now), bits(was)), name


@pytest.mark.slow  # builds a transformers model
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_new_token_rows_train_through_adamw_with_weight_decay(tie: bool) -> None:
    model = llama(tie)
    p = policy(NEW_TOKENS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    applied = p.apply(model, fingerprint=True)
    optimizer = torch.optim.AdamW(p.param_groups(model, lr=1e-2, weight_decay=0.1))
    train(model, optimizer)
    check_rows(before, model)
    if tie:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    assert applied.verify(model).ok
    applied.undo()
    assert all(q.requires_grad for q in model.parameters())


def test_an_optimizer_over_model_parameters_keeps_the_frozen_rows() -> None:
    """As the HF Trainer builds it: every parameter that requires grad, SGD with momentum
    and weight decay (momentum keeps moving a row whose gradient is only zeroed)."""
    model = TinyLM()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy(NEW_TOKENS).apply(model)
    trainable = [q for q in model.parameters() if q.requires_grad]
    assert len(trainable) == 2
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=0.1)
    train(model, optimizer, steps=4)
    check_rows(before, model)


def test_without_the_restore_weight_decay_moves_zero_gradient_rows() -> None:
    """The control: zeroing the gradient alone (axolotl's way) lets AdamW's decoupled
    weight decay move the frozen rows, which the tests above would catch."""
    model = TinyLM()
    weight = model.model.embed_tokens.weight
    was = weight.detach().clone()
    weight.register_hook(lambda g: torch.cat([torch.zeros_like(g[:NEW]), g[NEW:]]))
    optimizer = torch.optim.AdamW([weight], lr=1e-2, weight_decay=0.1)
    model.model.embed_tokens(batch()).sum().backward()
    optimizer.step()
    assert not torch.equal(weight[:NEW], was[:NEW])


def test_frozen_rows_get_a_zero_gradient_so_clipping_sees_them_frozen() -> None:
    model = TinyLM()
    policy(NEW_TOKENS).apply(model)
    ids = batch()
    model.lm_head(model.model.embed_tokens(ids)).sum().backward()
    for weight in (model.model.embed_tokens.weight, model.lm_head.weight):
        assert weight.grad is not None
        assert not weight.grad[:NEW].any()
        assert weight.grad[NEW:].abs().sum() > 0


@pytest.mark.parametrize(
    "make", [torch.optim.SGD, torch.optim.SparseAdam], ids=["sgd", "sparse_adam"]
)
def test_a_sparse_embedding_keeps_its_frozen_rows(make: type[torch.optim.Optimizer]) -> None:
    """``nn.Embedding(sparse=True)`` gives a sparse gradient: the hook keeps only its
    trained rows' entries (it raised NotImplementedError on slicing it)."""
    embedding = nn.Embedding(1024, 8, sparse=True)
    policy(f'  - {{match: weight, rows: "{NEW}:", action: train}}\n').apply(embedding)
    was = embedding.weight.detach().clone()
    optimizer = make([embedding.weight], lr=0.1)
    ids = batch()  # rows below NEW and from NEW on
    for _ in range(2):
        embedding(ids).square().sum().backward()
        grad = embedding.weight.grad
        assert grad is not None and grad.is_sparse
        assert bool((grad.coalesce().indices()[0] >= NEW).all())
        optimizer.step()
        optimizer.zero_grad()
    now = embedding.weight.detach()
    assert torch.equal(bits(now[:NEW]), bits(was[:NEW]))
    assert not torch.equal(now[NEW:], was[NEW:])


def test_undo_removes_the_hooks() -> None:
    model = TinyLM()
    applied = policy(NEW_TOKENS).apply(model)
    assert not model.model.norm.weight.requires_grad
    applied.undo()
    assert all(q.requires_grad for q in model.parameters())
    weight = model.model.embed_tokens.weight
    was = weight.detach().clone()
    optimizer = torch.optim.AdamW([weight], lr=1e-2, weight_decay=0.1)
    model.model.embed_tokens(batch()).sum().backward()
    assert weight.grad is not None and weight.grad[:NEW].any()  # no zeroing hook
    optimizer.step()
    assert not torch.equal(weight[:NEW], was[:NEW])  # no restore


def test_a_later_apply_takes_the_tensor_over_and_its_undo_gives_it_back() -> None:
    model = TinyLM()
    first = policy(NEW_TOKENS).apply(model)
    second = policy('  - "*": train\n').apply(model)
    weight = model.model.embed_tokens.weight
    was = weight.detach().clone()
    optimizer = torch.optim.AdamW([weight], lr=1e-2, weight_decay=0.1)
    model.model.embed_tokens(batch()).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    assert not torch.equal(weight[:NEW], was[:NEW])  # the whole tensor trains now
    second.undo()
    was = weight.detach().clone()
    model.model.embed_tokens(batch()).sum().backward()
    optimizer.step()
    assert torch.equal(weight[:NEW], was[:NEW])  # the first apply's rows again
    first.undo()


def test_verify_names_the_frozen_rows_nudged_by_one_ulp() -> None:
    model = TinyLM()
    p = policy(NEW_TOKENS)
    applied = p.apply(model, fingerprint=True)
    optimizer = torch.optim.AdamW(p.param_groups(model, lr=1e-2, weight_decay=0.1))
    train(model, optimizer)
    assert applied.verify(model).ok
    with torch.no_grad():
        row = model.model.embed_tokens.weight[17]
        row[0] = torch.nextafter(row[0], torch.tensor(float("inf")))
    result = applied.verify(model)
    assert not result.ok
    (violation,) = result.violations
    assert violation.name == "model.embed_tokens.weight"
    assert violation.why.startswith(
        "rows 900-1023 trained, the other 900 of 1,024 frozen by rule 1 'model.embed_tokens.weight'"
    )


def test_zero3_partitioned_tensors_are_refused() -> None:
    """ZeRO-3's mark on a parameter, set by hand as deepspeed 0.19.8 sets it
    (partition_parameters.py, ``_convert_to_deepspeed_param``)."""
    model = TinyLM()
    model.model.embed_tokens.weight.ds_id = 0
    refused = (
        r"p\.yaml:3:5: rule 1: 'model\.embed_tokens\.weight' trains in part \(rows 900-1023 "
        r"train \(124 of 1,024\)\), but its frozen rows cannot be kept exact here: DeepSpeed ZeRO-3"
    )
    with pytest.raises(DecisionError, match=refused):
        policy(NEW_TOKENS).apply(model)
    assert all(q.requires_grad for q in model.parameters())  # untouched


def step(model: nn.Module) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model(batch()).sum().backward()
    optimizer.step()


def test_a_tensor_replaced_after_apply_fails_loudly_at_the_next_step() -> None:
    model = TinyLM()
    policy(NEW_TOKENS).apply(model)
    model.model.embed_tokens.weight = nn.Parameter(model.model.embed_tokens.weight.detach())
    was = model.model.embed_tokens.weight.detach().clone()
    replaced = (
        r"'model\.embed_tokens\.weight' can no longer be kept exact: the module holds another"
    )
    with pytest.raises(RuntimeError, match=replaced):
        step(model)
    assert torch.equal(model.model.embed_tokens.weight, was)  # raised before the step
    policy(NEW_TOKENS).apply(model)  # decides the new tensor afresh
    step(model)
    assert torch.equal(model.model.embed_tokens.weight[:NEW], was[:NEW])


def test_an_initialized_zero12_engine_after_apply_fails_loudly_at_the_next_step() -> None:
    """``param_idx_in_group``: DeepSpeed ZeRO-1/2's mark on each parameter it flattened
    (stage_1_and_2.py, ``DeepSpeedZeroOptimizer.__init__``), set by hand; its engine's
    inner torch optimizer steps the flat copy, and that step runs the global hooks."""
    model = TinyLM()
    policy(NEW_TOKENS).apply(model)
    model.model.embed_tokens.weight.param_idx_in_group = 0
    with pytest.raises(RuntimeError, match=r"DeepSpeed ZeRO-1/2 engine steps its own flat"):
        step(model)


@pytest.mark.slow  # compiles
def test_rows_under_torch_compile() -> None:
    model = TinyLM()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = policy(NEW_TOKENS)
    compiled = torch.compile(model, backend="aot_eager")
    applied = p.apply(compiled)
    optimizer = torch.optim.AdamW(p.param_groups(compiled, lr=1e-2, weight_decay=0.1))
    ids = batch()
    for _ in range(3):
        compiled(ids).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    check_rows(before, model)
    applied.undo()


def test_a_checkpoint_loaded_between_steps_is_kept_not_reverted() -> None:
    """The frozen rows are copied before each step, not once at apply: a state dict
    loaded after apply (a resumed run) stays what was loaded."""
    model = TinyLM()
    p = policy(NEW_TOKENS)
    p.apply(model)
    optimizer = torch.optim.AdamW(p.param_groups(model, lr=1e-2, weight_decay=0.1))
    train(model, optimizer, steps=1)
    loaded = TinyLM(width=4).state_dict()
    model.load_state_dict(loaded)
    train(model, optimizer, steps=2)
    weight = model.model.embed_tokens.weight
    assert torch.equal(bits(weight[:NEW]), bits(loaded["model.embed_tokens.weight"][:NEW]))


@pytest.mark.slow  # a transformers Trainer
def test_the_hf_trainers_own_optimizer_keeps_the_frozen_rows(tmp_path: Path) -> None:
    """The Trainer builds AdamW itself, from every parameter that requires grad (its
    decay and no-decay groups, weight decay 0.1), behind accelerate's wrapper."""
    transformers = pytest.importorskip("transformers")
    model = llama(tie=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy(NEW_TOKENS).apply(model)
    ids = batch()
    data = [{"input_ids": row, "labels": row} for row in ids.repeat(3, 1)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2,
        learning_rate=1e-2, weight_decay=0.1, max_grad_norm=1.0, save_strategy="no",
        logging_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    assert trainer.state.global_step == 3
    check_rows(before, model)


def test_rows_of_an_integer_tensor_are_refused() -> None:
    model = TinyLM()
    model.codes = nn.Parameter(torch.zeros(10, 2, dtype=torch.int64), requires_grad=False)
    rules = '  - match: codes\n    rows: ":5"\n    action: freeze\n  - "*": freeze\n'
    with pytest.raises(DecisionError, match=r"p\.yaml:3:5: rule 1: 'codes' trains in part "
                       r"\(rows 5-9 train \(5 of 10\)\), but its dtype torch\.int64 cannot "
                       r"train; freeze it"):  # fmt: skip
        policy(rules).apply(model)
    assert not model.codes.requires_grad
