"""Issue 11's examples of hostile input, one acceptance table: each runs the ``tlrules``
CLI in a sandboxed child (``tests.fuzz.runner``) and must end with exit 2 and exactly one
``error:`` line (one per bad file), no traceback, within 30 s and 4 GiB, writing no file.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import torch

from tests.fuzz.checkpoints import (
    code_in_zip,
    code_pickle,
    nested,
    safetensors_bytes,
    safetensors_of,
    self_referencing,
    sparse,
    torch_bytes,
)
from tests.fuzz.classes import BERT, DANGEROUS_SPECS, LLAMA
from tests.fuzz.runner import Case, Limits, Outcome, run
from tlrules import limits
from tlrules.convert import pyre
from tlrules.errors import PolicyError, Where

LIMITS = Limits(seconds=30.0)
FREEZE_ALL = b'version: 1\nrules:\n  - "*": freeze\n'
SECRET = "hunter2-secret-value"
MODEL = "tests.toys:Tied"


def policy(*rules: str) -> bytes:
    lines = "".join(f"  - {rule}\n" for rule in rules)
    return f'version: 1\nrules:\n{lines}  - "*": freeze\n'.encode()


def bad_policy(label: str, text: bytes, command: str = "validate") -> Case:
    argv = ("validate", "p.yaml") if command == "validate" else ("audit", MODEL, "p.yaml")
    return Case(f"{label} ({command})", argv, {"p.yaml": text}, expect=frozenset({2}))


def both(label: str, text: bytes) -> list[Case]:
    return [bad_policy(label, text), bad_policy(label, text, "audit")]


def laughs() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return ("version: 1\nx:\n" + "".join(f" {line}\n" for line in lines)).encode()


def fan_in() -> dict[str, bytes]:
    files = {}
    for i in range(25):
        nxt = f"f{i + 1:02d}.yaml"
        bases = f"extends: [{nxt}, ./{nxt}, .//{nxt}]\n" if i < 24 else ""
        files[f"f{i:02d}.yaml"] = f'version: 1\n{bases}rules: [{{"*": freeze}}]\n'.encode()
    return files


def extends(ref: str, **files: bytes) -> Case:
    text = f'version: 1\nextends: ["{ref}"]\nrules:\n  - "*": freeze\n'.encode()
    return Case(
        f"extends {ref!r}" if len(ref) < 40 else f"extends a {len(ref):,}-character {ref[-5:]!r}",
        ("validate", "p.yaml"),
        {"p.yaml": text, **files},
        expect=frozenset({2}),
    )


def escaping(ref: str) -> Case:
    secret = f"version: 1\nrules:\n  - {SECRET}\n".encode()
    case = extends(ref, **{"../outside/secret.yaml": secret})
    return Case(
        f"extends escaping {ref!r}", ("audit", MODEL, "p.yaml"), case.files, expect=frozenset({2})
    )


def checkpoint(
    label: str, name: str, data: bytes, *options: str, expect: tuple[int, ...] = (2,)
) -> Case:
    argv = ("audit", name, "p.yaml", *options)
    return Case(label, argv, {name: data, "p.yaml": FREEZE_ALL}, expect=frozenset(expect))


def hf(label: str, config: dict[str, object], expect: int = 2) -> Case:
    files = {"cfg/config.json": json.dumps(config).encode(), "p.yaml": FREEZE_ALL}
    return Case(label, ("audit", "hf:cfg", "p.yaml"), files, expect=frozenset({expect}))


def deep_header() -> bytes:
    return safetensors_bytes('{"w": ' + "[" * 100_000 + "]" * 100_000 + "}")


def truncated() -> bytes:
    good = torch_bytes({"fc.weight": torch.zeros(64, 64), "fc.bias": torch.zeros(64)})
    return good[: len(good) // 2]


NON_UTF8 = b"version: 1\nname: \xff\xfe\xfd\nrules:\n  - fc: train\n"
CASES = [
    *both("nested counted repeats", policy("'re:(?:(?:a{1000}){1000}){1000}': train")),
    *both("counted repeat 8,000,000", policy("'re:(?:a{1000}){8000}': train")),
    *both("3,000-digit range", policy(f"'layer{{0..{'9' * 3000}}}': train")),
    *both("1,500-digit range", policy(f"'layer{{1{'0' * 1499}..2{'0' * 1499}}}': train")),
    *both("reversed class", policy("'layer[z-a]': train")),
    *both("billion laughs", laughs()),
    bad_policy("recursive alias", b"version: 1\nrules: &a [*a]\n"),
    bad_policy("492 nested lists", b"version: 1\nrules: " + b"[" * 492 + b"]" * 492 + b"\n"),
    bad_policy("non-UTF-8 bytes", NON_UTF8),
    bad_policy("NUL byte", b'version: 1\nrules:\n  - fc\x00x: train\n  - "*": freeze\n'),
    bad_policy("control characters", b'version: 1\nrules:\n  - "fc\x1b[2J": train\n'),
    bad_policy("escaped NUL", b'version: 1\nrules:\n  - "fc\\0": train\n  - "*": freeze\n'),
    bad_policy("5,000-digit integer", b"version: " + b"1" * 5000 + b"\nrules: []\n"),
    bad_policy("code point beyond Unicode", b'version: 1\nname: "\\U00110000"\nrules: []\n'),
    bad_policy("compact key over 1,024 characters", policy("a" * 1100 + ": train")),
    # each base is read once, so the fan-in is 25 reads and the policy is fine
    Case("extends fan-in", ("validate", "f00.yaml"), fan_in(), expect=frozenset({0})),
    Case(
        "extends a symlink loop",
        ("validate", "p.yaml"),
        {"p.yaml": b'version: 1\nextends: ["a.yaml"]\nrules:\n  - "*": freeze\n'},
        links={"a.yaml": "b.yaml", "b.yaml": "a.yaml"},
        expect=frozenset({2}),
    ),
    extends("base\\0.yaml"),
    extends("a" * 5000),
    extends("a" * 5000 + ".yaml"),
    escaping("../outside/secret"),
    escaping("@ROOT@/outside/secret"),
    # the dict is walked once: its tensors are the model
    checkpoint("a dict containing itself", "model.pt", self_referencing(), expect=(0,)),
    checkpoint("a sparse tensor", "model.pt", sparse()),
    checkpoint("a nested tensor", "model.pt", nested()),
    checkpoint(
        "shape [2**62, 2**62]",
        "model.safetensors",
        safetensors_bytes({"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 0]}}),
    ),
    checkpoint("deeply nested header", "model.safetensors", deep_header()),
    checkpoint("random bytes .pt", "model.pt", bytes(range(256)) * 4),
    checkpoint("random bytes .safetensors", "model.safetensors", bytes(range(255, -1, -1)) * 4),
    checkpoint("a truncated checkpoint", "model.pt", truncated()),
    checkpoint("a pickle that would run code", "model.pt", code_pickle()),
    checkpoint("a zip whose pickle would run code", "model.pt", code_in_zip()),
    hf("bert with 100,000 layers", {**BERT, "num_hidden_layers": 100_000}),
    hf("llama with 100,000 layers", {**LLAMA, "num_hidden_layers": 100_000}),
    # found by the long fuzz run: a 5,000-digit number in config.json was exit 3
    Case(
        "a 5,000-digit number in config.json",
        ("audit", "hf:cfg", "p.yaml"),
        {
            "cfg/config.json": json.dumps(LLAMA)[:-1].encode() + b', "x": 1' + b"0" * 5000 + b"}",
            "p.yaml": FREEZE_ALL,
        },
        expect=frozenset({2}),
    ),
    checkpoint(
        "a 5,000-digit number in a safetensors header",
        "model.safetensors",
        safetensors_bytes(b'{"__metadata__": {"n": 1' + b"0" * 5000 + b"}}"),
    ),
    # found by the long fuzz run: torch's "zero-element tensors" warning reached stderr
    hf("llama with zero-sized layers builds quietly", {**LLAMA, "intermediate_size": 0}, 0),
    *(
        Case(spec, ("audit", spec, "p.yaml"), {"p.yaml": FREEZE_ALL}, expect=frozenset({2}))
        for spec in DANGEROUS_SPECS
    ),
    checkpoint(
        "2,000 segments, tree",
        "model.safetensors",
        safetensors_of({".".join(["a"] * 2000): ("F32", [1])}),
        "--format",
        "tree",
        expect=(0, 2),
    ),
    checkpoint(
        "a lone surrogate, tree",
        "model.safetensors",
        safetensors_of({"a.\ud800.w": ("F32", [1])}),
        "--format",
        "tree",
        expect=(0, 2),
    ),
]


LONG = "a" * 300  # a name longer than any file system takes (255 bytes): Errno 36
SAFETENSORS = safetensors_of({"w": ("F32", [2])})


def refused(label: str, *argv: str, files: dict[str, bytes] | None = None, **more: Any) -> Case:
    inputs = {"p.yaml": FREEZE_ALL, "m.safetensors": SAFETENSORS, **(files or {})}
    return Case(label, argv, inputs, expect=frozenset({2}), **more)


def index_naming(shard: str) -> bytes:
    return json.dumps({"weight_map": {"w": shard}}).encode()


# issue 29 items 3-5 and 9: each was exit 3 or a hang
PATH_CASES = [
    *(
        refused(f"a 300-byte name as {slot}", *argv)
        for slot, argv in [
            ("the policy of validate", ("validate", LONG)),
            ("the policy of audit", ("audit", MODEL, LONG)),
            ("a policy path", ("audit", MODEL, f"x/{LONG}/p.yaml")),
            ("the second policy of diff", ("diff", MODEL, "p.yaml", LONG)),
            ("a checkpoint model", ("audit", f"{LONG}.safetensors", "p.yaml")),
            ("a model name (header path)", ("audit", LONG, "p.yaml")),
            ("a folder of an index", ("audit", f"{LONG}/model.safetensors.index.json", "p.yaml")),
            ("the model of explain", ("explain", f"hf:{LONG}", "p.yaml", "w")),
            ("a torch checkpoint of init", ("init", f"{LONG}.pt")),
            ("an hf: folder", ("audit", f"hf:{LONG}", "p.yaml")),
            ("check's before", ("check", "p.yaml", f"{LONG}.safetensors", "m.safetensors")),
            ("check's after", ("check", "p.yaml", "m.safetensors", LONG)),
            ("check's policy", ("check", LONG, "m.safetensors", "m.safetensors")),
            ("-o of audit", ("audit", MODEL, "p.yaml", "-o", LONG)),
            ("-o of check", ("check", "p.yaml", "m.safetensors", "m.safetensors", "-o", LONG)),
            ("a folder of -o", ("audit", MODEL, "p.yaml", "-o", f"{LONG}/r.html")),
            ("the config of convert", ("convert", "fts", LONG)),
            ("the lock of verify", ("verify", MODEL, "p.yaml", LONG)),
        ]
    ),
    refused("a path of 5,000 bytes", "validate", "/".join(["a" * 200] * 25)),
    # found by the run of the 'paths' class: exit 3 each
    refused("a 255-byte library name (too long with .yaml)", "validate", "a" * 255),
    refused("a NUL in the lock of verify", "verify", MODEL, "p.yaml", "a\x00b.json"),
    refused("a NUL in the config of convert", "convert", "fts", "dir/\x00.yaml"),
    refused(
        "a NUL in a shard name",
        *("check", "p.yaml", "m.safetensors", "i.index.json"),
        files={"i.index.json": index_naming("x\x00y.safetensors")},
    ),
    refused(
        "a 300-byte shard name",
        *("check", "p.yaml", "i.index.json", "m.safetensors"),
        files={"i.index.json": index_naming(f"{LONG}.safetensors")},
    ),
    refused("-o on a FIFO (audit --format html)", "audit", MODEL, "p.yaml", "--format", "html",
            "-o", "fifo", fifos=("fifo",)),
    refused("-o on a FIFO (check)", "check", "p.yaml", "m.safetensors", "m.safetensors", "-o",
            "fifo", fifos=("fifo",)),
    refused("-o on a FIFO (convert)", "convert", "fts", "c.yaml", "-o", "fifo",
            files={"c.yaml": b"1: [fc.weight]\n"}, fifos=("fifo",)),
    refused("-o on /dev/null", "audit", MODEL, "p.yaml", "-o", "/dev/null"),
    # found by the merged code's run of the 'adapter' class: exit 3
    refused(
        "a 300-byte base model named by an adapter folder",
        *("audit", "hf:adapter", "p.yaml"),
        files={
            "adapter/adapter_config.json": json.dumps(
                {"peft_type": "LORA", "target_modules": "q_proj", "base_model_name_or_path": LONG}
            ).encode()
        },
    ),
    refused("-o on a dangling link", "audit", MODEL, "p.yaml", "-o", "out.html",
            links={"out.html": "../outside/created.html"}),
    refused("-o on a link to a link loop", "audit", MODEL, "p.yaml", "-o", "a",
            links={"a": "b", "b": "a"}),
]  # fmt: skip
CASES += PATH_CASES

# issue 29 item 1: 4,000 one-rule stages took 50 s and 2.3 GB in validate, a 20,000-phase
# schedule ran past 300 s in convert fts
ONE_RULE_STAGES = "version: 1\nstages:\n" + "".join(
    f'  - name: s{i}\n    rules:\n      - "layer{i}": train\n' for i in range(4_000)
)
PHASES = "".join(f"{i}:\n  params:\n  - model.layers.{i}.mlp.weight\n" for i in range(20_000))
CASES += [
    refused(
        "4,000 one-rule stages", "validate", "s.yaml", files={"s.yaml": ONE_RULE_STAGES.encode()}
    ),
    refused(
        "convert fts of 20,000 phases",
        "convert",
        "fts",
        "f.yaml",
        files={"f.yaml": PHASES.encode()},
    ),
    # issue 29 item 6: 100,000 copies of one base in 'extends' (each resolved)
    refused(
        "extends 100,000 copies of one base",
        *("validate", "x.yaml"),
        files={
            "x.yaml": ("version: 1\nextends: [" + ", ".join(["p.yaml"] * 100_000) + "]\n").encode()
        },
    ),
]


HUGE_COUNT = "a{4294967295}"  # OverflowError from re.compile (a count of 2**32 - 1)
DEEP_GROUPS = "(" * 330 + "a" + ")" * 330  # RecursionError from the regex module's parser


def converted(tool: str, name: str, text: str) -> Case:
    return Case(
        f"convert {tool}: {text[:16]}",
        ("convert", tool, name),
        {name: text.encode()},
        expect=frozenset({2}),
    )


# issue 29 item 6: each was exit 3 (OverflowError, RecursionError)
CONVERT_CASES = [
    case
    for regex in (HUGE_COUNT, DEEP_GROUPS)
    for case in (
        converted("fts", "f.yaml", f"0:\n  params:\n  - '{regex}'\n"),
        converted("axolotl", "a.yaml", f"unfrozen_parameters:\n  - '{regex}'\n"),
        converted("peft", "adapter_config.json",
                  json.dumps({"peft_type": "LORA", "target_modules": regex})),
        converted("swift", "s.yaml",
                  f"tuner_type: full\ntrainable_parameters_regex: '{regex}'\n"),
    )
]  # fmt: skip
CASES += CONVERT_CASES


@pytest.mark.parametrize("regex", [HUGE_COUNT, DEEP_GROUPS])
def test_a_converted_regex_past_the_limits_names_the_limit(regex: str) -> None:
    with pytest.raises(PolicyError, match=r"MAX_REGEX_REPEAT|MAX_REGEX_NESTING"):
        pyre.checked(regex, Where("c.yaml"), "params[0]")


@pytest.mark.parametrize("regex", [HUGE_COUNT, DEEP_GROUPS])
def test_python_s_own_limits_are_an_error_where_the_limits_are_raised(
    regex: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_REGEX_REPEAT", 2**40)
    monkeypatch.setattr(limits, "MAX_REGEX_NESTING", 10_000)
    with pytest.raises(PolicyError, match="is too large for Python's regex parsers"):
        pyre.checked(regex, Where("c.yaml"), "params[0]")


def test_o_dash_is_stdout_and_writes_no_file() -> None:
    """Issue 29 item 8: ``-o -`` wrote a file named ``-``."""
    case = Case("-o -", ("audit", MODEL, "p.yaml", "-o", "-"), {"p.yaml": FREEZE_ALL})
    out = run(case, LIMITS)
    assert (out.code, out.problems, out.changed_files) == (0, [], []), _report(case, out)
    assert out.stdout.startswith(b"tests.toys:Tied under p.yaml"), _report(case, out)


@pytest.mark.slow
def test_o_through_a_link_writes_the_file_it_points_to_and_keeps_the_link() -> None:
    """Issue 29 item 9: the link stays a link; the file it names gets the whole text (a
    temporary file beside it, renamed), and nothing else is written."""
    argv = ("audit", MODEL, "p.yaml", "--format", "json", "-o", "out.json")
    files = {"p.yaml": FREEZE_ALL, "real/out.json": b"old"}
    case = Case("-o link", argv, files, links={"out.json": "real/out.json"}, writes="out.json")
    out = run(case, LIMITS)
    assert (out.code, out.problems, out.changed_files) == (0, [], ["case/real/out.json"]), _report(
        case, out
    )


def _report(case: Case, out: Outcome) -> str:
    return (
        f"{case.label}: exit {out.code}, signal {out.signal}, hung {out.hung}, "
        f"{out.seconds:.1f} s, {out.max_rss / 2**20:.0f} MiB: {'; '.join(out.problems)}\n"
        f"stderr: {out.stderr[-1500:].decode('utf-8', 'replace')}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_hostile_input_is_refused_in_one_line(case: Case) -> None:
    out = run(case, LIMITS)
    assert not out.problems, _report(case, out)
    errors = out.stderr.decode("utf-8", "replace").splitlines()
    if out.code == 2:
        assert len(errors) == 1 and errors[0].startswith("error: "), _report(case, out)
    else:
        assert out.stdout, _report(case, out)  # exit 0 (allowed for the tree view): drawn


def test_three_bad_files_give_three_lines() -> None:
    files = {"a.yaml": NON_UTF8, "b.yaml": b"version: 1\nrules: &a [*a]\n", "c.yaml": laughs()}
    case = Case(
        "three bad files", ("validate", "a.yaml", "b.yaml", "c.yaml"), files, expect=frozenset({2})
    )
    out = run(case, LIMITS)
    assert not out.problems, _report(case, out)
    errors = out.stderr.decode().splitlines()
    assert [e.split(":")[1].strip() for e in errors] == ["a.yaml", "b.yaml", "c.yaml"], errors


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.label.startswith("extends escaping")], ids=lambda c: c.label
)
def test_extends_never_shows_a_file_outside_the_folder(case: Case) -> None:
    out = run(case, LIMITS)
    assert SECRET.encode() not in out.stdout + out.stderr, _report(case, out)
    assert out.code == 2, _report(case, out)


@pytest.mark.parametrize(
    "case", [c for c in CASES if "would run code" in c.label], ids=lambda c: c.label
)
def test_a_pickle_that_would_run_code_is_named_as_such(case: Case) -> None:
    out = run(case, LIMITS)
    assert out.code == 2, _report(case, out)
    assert b"not a pickle" not in out.stderr, _report(case, out)


# -- slow but within the limits: each under 10 s of CPU (docs/reliability.md) -------------
# The forked child has imported torch, torchvision and tlrules already, so ``cpu`` is what
# tlrules itself spends; an interpreter start with torch adds about 4 s to each.


def many_rules(count: int) -> bytes:
    """A policy of ``count`` rules (issue 29's had 60,000): names of layers resnet18 does
    not have."""
    rules = "".join(f'  - "layer{i % 4 + 1}.{i}.conv1.weight": train\n' for i in range(count))
    return f"version: 1\ndefault: freeze\nrules:\n{rules}".encode()


@pytest.mark.slow
def test_a_60000_rule_policy_is_refused_and_one_at_the_limit_audited() -> None:
    """Issue 29: a 60,000-rule audit cost 15-17 s of CPU once its matcher was built as
    names reach it (18.6 s before), all of it reading and checking the rules, about 0.1 ms
    each: ``MAX_RULES`` (25,000) refuses it before that cost, and the limit's own audit
    stays under 10 s of CPU (docs/reliability.md)."""
    argv = ("audit", "resnet18", "r.yaml")
    over = Case("60,000 rules", argv, {"r.yaml": many_rules(60_000)}, expect=frozenset({2}))
    out = run(over, Limits(seconds=120.0))
    assert not out.problems, _report(over, out)
    assert (
        b"the policy has 60,000 rules; the limit is 25,000 (tlrules.limits.MAX_RULES)" in out.stderr
    ), _report(over, out)
    print(f"60,000 rules, refused: {out.cpu:.2f} s of CPU, {out.max_rss / 2**20:.0f} MiB")
    at = limits.MAX_RULES
    case = Case(f"{at:,} rules", argv, {"r.yaml": many_rules(at)}, expect=frozenset({0}))
    out = run(case, Limits(seconds=120.0))
    assert not out.problems, _report(case, out)
    assert out.stdout.startswith(b"resnet18 under r.yaml"), _report(case, out)
    print(f"{at:,} rules: {out.cpu:.2f} s of CPU, {out.max_rss / 2**20:.0f} MiB")
    assert out.cpu < 10.0, _report(case, out)


def many_tensors(count: int) -> bytes:
    """A ``.pt`` state dict of ``count`` small tensors, two per block."""
    state = {f"blocks.{i // 2}.lin{i % 2}.weight": torch.zeros(2, 2) for i in range(count)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_50000_tensor_pt_is_read_without_torch_load() -> None:
    """Issue 29: torch's weights-only unpickler (Python, a storage per tensor) cost about
    10 s of CPU for 50,000 tensors; ``audit`` reads their names, shapes and dtypes from
    the pickle with the standard library's unpickler, closed to all but a state dict's
    three callables (``models/torch_file.py``)."""
    case = Case(
        "50,000 tensors",
        ("audit", "t.pt", "p.yaml"),
        {"t.pt": many_tensors(50_000), "p.yaml": FREEZE_ALL},
        expect=frozenset({0}),
    )
    out = run(case, Limits(seconds=120.0))
    assert not out.problems, _report(case, out)
    assert out.stdout.startswith(b"t.pt under p.yaml: 50000 parameters"), _report(case, out)
    print(f"50,000 tensors: {out.cpu:.2f} s of CPU, {out.max_rss / 2**20:.0f} MiB")
    # about 7 s of CPU in this child on a shared 2-core machine (about 14 s before), most
    # of it building a module per name; tests/models/test_hostile_models.py holds the
    # reading's own cost
    assert out.cpu < 11.0, _report(case, out)


def ranged_rules(count: int) -> bytes:
    """``count`` rules whose ranges all differ (``blocks.{0..N}.wK``): every one is alive
    while a block's number is read, so matching costs rules times distinct names."""
    rules = "".join(f'  - "blocks.{{0..{n}}}.w{n % 7}": train\n' for n in range(1, count + 1))
    return f"version: 1\ndefault: freeze\nrules:\n{rules}".encode()


@pytest.mark.slow
def test_rules_of_different_ranges_over_many_names_stop_at_the_step_limit() -> None:
    """The hostile shape issue 29 left unbounded: rules of different ranges, all alive
    while a block's number is read, cost rules times names (5,000 over 1,428 names: 10 s
    of CPU; over 7,000 names: 36 s). ``MAX_AUTOMATON_STEPS`` stops the matching once it
    has stepped that many nodes, with one error at the first pattern alive, before the
    model is changed: about 9 s of CPU here, reading the 5,000 rules included."""
    names = {f"blocks.{b}.w{j}": ("F32", [1]) for b in range(1_000) for j in range(7)}
    case = Case(
        "5,000 ranged rules",
        ("audit", "m.safetensors", "r.yaml"),
        {"m.safetensors": safetensors_of(names), "r.yaml": ranged_rules(5_000)},
        expect=frozenset({2}),
    )
    out = run(case, Limits(seconds=60.0))
    assert not out.problems, _report(case, out)
    assert b"(tlrules.limits.MAX_AUTOMATON_STEPS)" in out.stderr, _report(case, out)
    assert b"error: r.yaml:" in out.stderr and b": rule " in out.stderr, _report(case, out)
    print(f"5,000 ranged rules over 7,000 names, refused: {out.cpu:.2f} s of CPU")
    assert out.cpu < 15.0, _report(case, out)
