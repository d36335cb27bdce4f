"""The CI slice of the fuzzing harness (``tests/fuzz``): a fixed, seeded count of cases of
every class, each in a sandboxed child, none of which may break the promise of
docs/spec.md#bad-input. ``python -m tests.fuzz --minutes N`` runs the same classes for longer."""

from __future__ import annotations

import pytest

from tests import toys as fixtures
from tests.fuzz.apicase import MODELS as API_MODELS
from tests.fuzz.apicase import compare, snapshot
from tests.fuzz.classes import CLASSES, draw
from tests.fuzz.report import Summary
from tests.fuzz.runner import Case, Limits, run

PER_CLASS = 16
"""Cases of each class (12 classes; ``sizes``: ``FEWER``): a minute or two in all on a
busy 2-core machine when nothing hangs."""

FEWER = {"sizes": 6}
"""Classes whose cases cost seconds each (thousands of stages, headers of 100,000 entries)."""

SEED = 11


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(CLASSES))
def test_no_fuzz_case_breaks_the_promise(label: str) -> None:
    count = FEWER.get(label, PER_CLASS)
    cases = draw(label, count, SEED)
    assert len(cases) == count
    summary = Summary()
    for case in cases:
        summary.add(case, run(case, Limits(seconds=10.0)), keep=None)
    assert not summary.kept, "\n" + str(summary)


def test_the_same_seed_draws_the_same_cases() -> None:
    assert draw("mutation", 5, SEED) == draw("mutation", 5, SEED)
    assert draw("mutation", 5, SEED) != draw("mutation", 5, SEED + 1)


def factory_case(body: str) -> Case:
    """``tlrules init factory:model`` where ``model()`` in the case folder runs ``body``."""
    source = f"import os, sys, time\nimport torch\n\ndef model():\n    {body}\n"
    source += "    return torch.nn.Linear(1, 1)\n"
    return Case("self", ("init", "factory:model"), {"factory.py": source.encode()})


def test_a_file_written_is_caught() -> None:
    out = run(factory_case("os.write(os.open('x.txt', os.O_WRONLY | os.O_CREAT), b'x')"))
    assert out.changed_files == ["case/x.txt"]  # created, empty: RLIMIT_FSIZE lets no byte in
    assert "files written or changed: case/x.txt" in out.problems
    assert "File too large" in out.last_line()


@pytest.mark.slow
def test_stdin_and_an_output_file_named_by_the_case() -> None:
    """A policy read from stdin, drawn to the one file the case may write; the same
    command in a case that names no file may write none, and a write that fails leaves
    no file (``-o`` writes a temporary file and renames it)."""
    policy = b'version: 1\nrules:\n  - "*": freeze\n'
    argv = ("audit", "tests.toys:small_cnn", "-", "--format", "svg", "-o", "out.svg")
    out = run(Case("output", argv, stdin=policy, writes="out.svg"))
    assert (out.code, out.problems, out.changed_files) == (0, [], ["case/out.svg"])
    out = run(Case("output", argv, stdin=policy))  # RLIMIT_FSIZE 0: the write fails
    assert out.code == 2
    assert (out.problems, out.changed_files) == ([], [])  # its temporary file is removed
    out = run(Case("output", argv, stdin=b"version: 2\n", writes="out.svg"))
    assert (out.code, out.problems, out.changed_files) == (2, [], [])
    out = run(Case("output", ("validate", "-"), stdin=policy, writes="out.svg"))
    assert out.problems == ["exit 0 without writing 'out.svg'"]


def test_a_traceback_and_noise_are_caught() -> None:
    out = run(factory_case("print('Traceback (most recent call last):', file=sys.stderr)"))
    assert out.problems == [
        "a traceback on stderr",
        "noise on stderr of a successful run: 'Traceback (most recent call last):'",
    ]


@pytest.mark.slow
def test_a_hang_is_killed_and_reported() -> None:
    out = run(factory_case("time.sleep(60)"), Limits(seconds=1.0))
    assert (out.hung, out.problems) == (True, ["hang: still running after 1 s"])
    assert out.seconds < 3


def test_memory_beyond_the_limit_fails_in_the_child() -> None:
    out = run(factory_case("bytearray(8 * 2**30)"))  # over the 4 GiB the child may add
    assert (out.code, out.problems) == (2, [])
    assert out.last_line().startswith("error: ")
    assert "MemoryError" in out.last_line()


def test_a_crash_is_reported_with_its_signal() -> None:
    out = run(factory_case("os.abort()"))
    assert out.problems == ["crash: killed by SIGABRT"]


def test_compare_names_what_a_failed_apply_changed() -> None:
    model = fixtures.small_cnn()
    before = snapshot(model)
    model[0].weight.requires_grad_(False)
    model[1].eval()
    assert compare(before, snapshot(model)) == [
        "0.weight: requires_grad True -> False",
        "module 1: (True, 0, 0, 0, 0, False) -> (False, 0, 0, 0, 0, False)",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b"version: 1\nrules:\n  - fc: train\n", 2),  # default error: most parameters unmatched
        (b'version: 1\nrules:\n  - fc: train\n  - "*": freeze\n', 0),  # applied, then undone
    ],
)
def test_an_api_case_leaves_the_model_as_it_was(text: bytes, code: int) -> None:
    for model in sorted(API_MODELS):
        out = run(Case("api", ("p.yaml",), {"p.yaml": text}, api=model, seed=3))
        assert (out.code, out.problems) == (code, []), out.stderr  # else exit MODEL_CHANGED
