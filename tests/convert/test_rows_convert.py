"""Row ranges converted (docs/spec.md#rows): axolotl's ``[start:end]`` suffixes
(``LayerNamePattern._parse_pattern``, merged as ``freeze_layers_except`` merges them) and
PEFT's ``trainable_token_indices`` (a list for the input embedding, or a mapping of module
names) become ``rows:`` rules; what cannot be stated stays a refusal naming the file,
the key and why; and on a tiny Llama the two conversions of one intent (rows 900: of
``embed_tokens`` and ``lm_head``) decide every parameter as the hand-written policy does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tlrules
from tests.llm_names import NEW_TOKENS_POLICY, tiny_llama
from tlrules import Policy, convert
from tlrules.cli import main
from tlrules.errors import PolicyError

from .refs import axolotl as reference

WEIGHT_DECAY_NOTE = (
    "# rows: axolotl trains a range of rows by zeroing the other rows' gradients, so "
    "AdamW's weight decay still moves those rows; tlrules' rows keep them bit-identical "
    "(docs/spec.md#rows)"
)

HAND_WRITTEN = NEW_TOKENS_POLICY


def _axolotl(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "axolotl.yaml"
    body = "".join(f"  - {json.dumps(e)}\n" for e in entries)
    path.write_text(f"base_model: meta-llama/Llama-3.1-8B\nunfrozen_parameters:\n{body}")
    return path


def _peft(tmp_path: Path, tokens: Any, **more: Any) -> Path:
    path = tmp_path / "adapter_config.json"
    config = {"peft_type": "LORA", "target_modules": ["q_proj"], **more}
    config["trainable_token_indices"] = tokens
    path.write_text(json.dumps(config, indent=2))
    return path


def _rules(text: str) -> list[str]:
    """The rule lines of a converted policy, comments dropped."""
    lines = text.split("rules:\n", 1)[1].splitlines()
    return [line.split("  #", 1)[0] for line in lines]


def test_axolotl_new_token_rows_become_rows_rules(tmp_path: Path) -> None:
    path = _axolotl(tmp_path, "^model.embed_tokens.weight$[32000:]", "^lm_head.weight$[32000:]")
    text = convert.convert("axolotl", path).text()
    assert WEIGHT_DECAY_NOTE in text.splitlines()
    assert text.split("version: 1\n", 1)[1] == (
        "default: freeze\n"
        "rules:\n"
        '  - match: "re:(?:^model\\\\.embed_tokens\\\\.weight$).*"\n'
        '    rows: "32000:"\n'
        f"    action: train  # {path}:3 unfrozen_parameters[0]: "
        "'^model.embed_tokens.weight$[32000:]'\n"
        '  - match: "re:(?:^lm_head\\\\.weight$).*"\n'
        '    rows: "32000:"\n'
        f"    action: train  # {path}:4 unfrozen_parameters[1]: '^lm_head.weight$[32000:]'\n"
    )


@pytest.mark.parametrize(
    ("entries", "rows"),
    [
        (["^lm_head.weight$[:128]"], '"0:128"'),  # half-open: rows 0-127
        (["^lm_head.weight$[5]"], "5"),  # one row
        (["^lm_head.weight$[5:9]"], '"5:9"'),
        # several ranges of one tensor: merged where they overlap or touch, sorted
        (["^lm_head.weight$[32000:]", "^lm_head.weight$[:128]"], '["0:128", "32000:"]'),
        (["^lm_head.weight$[10:20]", "^lm_head.weight$[15:30]", "^lm_head.weight$[30]"],
         '"10:31"'),
        (["^lm_head.weight$[3]", "^lm_head.weight$[7]"], "[3, 7]"),
    ],
)  # fmt: skip
def test_axolotl_ranges_half_open_and_merged(tmp_path: Path, entries: list[str], rows: str) -> None:
    rules = _rules(convert.convert("axolotl", _axolotl(tmp_path, *entries)).text())
    assert rules[:3] == [
        '  - match: "re:(?:^lm_head\\\\.weight$).*"',
        f"    rows: {rows}",
        "    action: train",
    ]
    assert len(rules) == 3  # one rule for the tensor


@pytest.mark.parametrize("whole", ["[]", "[:]", "[0:]"])
def test_axolotl_every_row_is_the_whole_tensor(tmp_path: Path, whole: str) -> None:
    for entries in ([f"^lm_head.weight${whole}"], ["^lm_head.weight$[5:]", f"lm_head{whole}"]):
        text = convert.convert("axolotl", _axolotl(tmp_path, *entries)).text()
        assert "rows:" not in text
        assert WEIGHT_DECAY_NOTE not in text


def test_axolotl_a_pattern_naming_one_tensor_takes_the_rows_of_every_match(
    tmp_path: Path,
) -> None:
    """A tensor two ranged patterns match trains the rows of both (``_merge_ranges``);
    a pattern without a range adds none, and the ranged rules come first."""
    path = _axolotl(
        tmp_path,
        "model.layers.1[0-9].mlp",
        "^model.embed_tokens.weight$[:128]",
        ".+embed_tokens.weight$[900:]",
        "model.embed",
    )
    rules = _rules(convert.convert("axolotl", path).text())
    assert rules == [
        '  - match: "re:(?:^model\\\\.embed_tokens\\\\.weight$).*"',
        '    rows: ["0:128", "900:"]',
        "    action: train",
        '  - match: "re:(?:.+embed_tokens\\\\.weight$).*"',
        '    rows: "900:"',
        "    action: train",
        '  - "re:(?:model\\\\.layers\\\\.1[0-9]\\\\.mlp).*": train',
        '  - "re:(?:model\\\\.embed).*": train',
    ]
    names = ["model.embed_tokens.weight", "model.layers.12.mlp.up_proj.weight", "lm_head.weight"]
    decided = Policy.from_text(convert.convert("axolotl", path).text()).matcher(names)
    assert [x is not None for x in decided.first_all(names)] == [True, True, False]
    assert reference.trained(
        ["model.layers.1[0-9].mlp", "^model.embed_tokens.weight$[:128]"], names
    ) == {names[0]: True, names[1]: True, names[2]: False}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            ["embed_tokens[9:3]"],
            ":3:5: unfrozen_parameters[0]: 'embed_tokens[9:3]' has an empty row range '[9:3]', "
            "which axolotl refuses ('End of range must be greater than start'); fix the range",
        ),
        (
            [".+embed_tokens[900:]", ".+lm_head[:5]"],
            ":4:5: unfrozen_parameters[1]: '.+lm_head[:5]' and unfrozen_parameters[0] "
            "'.+embed_tokens[900:]' both train rows of the tensors they match; on a tensor both "
            "match, axolotl trains the rows of both, which depends on the model's names: write "
            "one entry per tensor, its whole name anchored "
            "('^model.embed_tokens.weight$[32000:]')",
        ),
    ],
)
def test_axolotl_what_rows_cannot_state_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entries: list[str], message: str
) -> None:
    path = _axolotl(tmp_path, *entries)
    with pytest.raises(PolicyError):
        convert.convert("axolotl", path)
    assert main(["convert", "axolotl", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}{message}\n"


def test_peft_token_indices_become_merged_rows(tmp_path: Path) -> None:
    path = _peft(tmp_path, {"embed_tokens": [905, 7, 900, 901, 902, 901], "lm_head": [5]})
    text = convert.convert("peft", path).text()
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "embed_tokens" in t)
    assert _rules(text)[:6] == [
        '  - match: "re:.*embed_tokens\\\\.weight"',
        '    rows: [7, "900:903", 905]',
        "    action: train",
        '  - match: "re:.*lm_head\\\\.weight"',
        "    rows: 5",
        "    action: train",
    ]
    assert f"# {path}:{line} trainable_token_indices['embed_tokens']: 5 tokens" in text
    assert "trainable_token_indices: PEFT trains those rows through a separate tensor" in text


def test_peft_a_list_is_for_the_input_embedding(tmp_path: Path) -> None:
    path = _peft(tmp_path, list(range(900, 1000)))
    text = convert.convert("peft", path).text()
    assert _rules(text)[:3] == [
        '  - match: "re:.*embed_tokens\\\\.weight"',
        '    rows: "900:1000"',
        "    action: train",
    ]
    assert "the input embedding, taken as 'embed_tokens'" in text


@pytest.mark.parametrize(
    ("tokens", "more", "message"),
    [
        ([], {}, "trainable_token_indices: an empty list trains no row; remove it"),
        ([3, -1], {}, "trainable_token_indices: index -1 is negative, which PEFT's index_copy "
         "refuses (tuners/trainable_tokens/layer.py); give rows counted from 0"),
        (["a"], {}, 'trainable_token_indices: "[\'a\']" is not a list of token indices (integers)'),
        ({"": [1]}, {}, "trainable_token_indices: an empty module name ends every module's "
         "name, so PEFT would wrap them all; name the embedding module (such as "
         "'embed_tokens')"),
        ({"embed_tokens": [1]}, {"modules_to_save": ["embed_tokens"]},
         "trainable_token_indices: 'embed_tokens' is in modules_to_save too, which PEFT "
         "refuses ('The embedding layer is already marked to be trained fully'); keep it in "
         "one of them"),
        ([1], {"modules_to_save": ["embed_tokens"]},
         "trainable_token_indices: the input embedding (taken as 'embed_tokens') is in "
         "modules_to_save too, which trains it whole; keep it in one of them"),
        (7, {}, "trainable_token_indices must be a list of token indices or a mapping of "
         "module names to such lists, not '7'"),
    ],
)  # fmt: skip
def test_peft_token_indices_it_cannot_state_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tokens: Any,
    more: dict[str, Any],
    message: str,
) -> None:
    path = _peft(tmp_path, tokens, **more)
    assert main(["convert", "peft", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:")
    assert err.rstrip("\n").endswith(message)
    assert err.count("\n") == 1


# --- one intent, three policies, one set of decisions on a tiny Llama ---------------------


def _decisions(text: str, model: Any) -> list[tuple[str, str, Any]]:
    """Each parameter's name, action and rows, as the audit JSON gives them."""
    document = Policy.from_text(text).audit(model).to_dict()
    return [(p["name"], p["action"], p.get("rows")) for p in document["parameters"]]


@pytest.mark.slow
@pytest.mark.parametrize("tied", [False, True])
def test_axolotl_peft_and_hand_written_policies_decide_alike(tmp_path: Path, tied: bool) -> None:
    model = tiny_llama(tied)
    axolotl = convert.convert(
        "axolotl", _axolotl(tmp_path, "^model.embed_tokens.weight$[900:]", "^lm_head.weight$[900:]")
    ).text()
    rows = list(range(900, 1000))
    peft = convert.convert("peft", _peft(tmp_path, {"embed_tokens": rows, "lm_head": rows})).text()
    hand = _decisions(HAND_WRITTEN, model)
    assert _decisions(axolotl, model) == hand
    assert _decisions(peft, model) == hand
    rows_900 = {"train": [[900, 1000]], "of": 1000}  # tied: the alias carries the same rows
    assert {n: r for n, a, r in hand if a == "train"} == {
        "model.embed_tokens.weight": rows_900,
        "lm_head.weight": rows_900,
    }
    assert len(hand) == len(list(model.named_parameters(remove_duplicate=False)))


@pytest.mark.slow
def test_peft_tied_embeddings_the_list_form_trains_the_alias_rows_too(tmp_path: Path) -> None:
    """A list is for the input embedding; with tied embeddings PEFT ties the output
    layer's rows to it, and the policy's alias (decided by the default) follows. A
    mapping giving the tied pair different rows cannot be one tensor's: refused at audit."""
    model = tiny_llama(True)
    listed = convert.convert("peft", _peft(tmp_path, [900, 901, 950])).text()
    rows = {"train": [[900, 902], [950, 951]], "of": 1000}
    assert [(n, r) for n, a, r in _decisions(listed, model) if a == "train"] == [
        ("model.embed_tokens.weight", rows),
        ("lm_head.weight", rows),
    ]
    apart = convert.convert("peft", _peft(tmp_path, {"embed_tokens": [900], "lm_head": [5]}))
    with pytest.raises(tlrules.DecisionError, match="are one tied tensor, but rule 1"):
        Policy.from_text(apart.text()).audit(model)


@pytest.mark.slow
def test_peft_with_the_model_a_token_module_it_lacks_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tests.toys:Tied`` names its embedding ``embed``: the list form's ``embed_tokens``
    is missing (a warning); a mapping key no module ends with is one PEFT stops on
    (``strict_module_check``), so ``--strict`` exits 2."""
    listed = _peft(tmp_path, [1, 2], target_modules=["body"])
    assert main(["convert", "peft", str(listed), "--model", "tests.toys:Tied"]) == 0
    err = capsys.readouterr().err
    assert (
        "trainable_token_indices is a list, which PEFT applies to the model's input "
        "embedding; the policy takes it to be named 'embed_tokens' and no module of this "
        "model is: give the mapping form with the embedding's name ({'wte': [...]})"
    ) in err
    named = _peft(tmp_path, {"embed": [1, 2], "wte": [3]}, target_modules=["body"])
    assert main(["convert", "peft", str(named), "--model", "tests.toys:Tied"]) == 0
    assert capsys.readouterr().err.count("warning[convert]") == 1
    assert main(["convert", "peft", str(named), "--model", "tests.toys:Tied", "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert (
        "trainable_token_indices: no module's name ends with 'wte', and PEFT stops ('Target "
        "modules ... not found in the base model')"
    ) in err


@pytest.mark.slow
def test_with_the_model_rows_past_a_tensor_are_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tests.toys:Tied``'s embedding has 10 rows: token 20 is past it, which ``apply``
    refuses; ``convert --model`` says so while the config can still change."""
    config = _peft(tmp_path, {"embed": [5, 20]}, target_modules=["body"])
    assert main(["convert", "peft", str(config), "--model", "tests.toys:Tied"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning[convert]") == 1
    assert (
        "warning[convert]: the converted policy cannot apply to tests.toys:Tied: pattern "
        "'re:.*embed\\\\.weight': parameter 'embed.weight' (shape [10, 4]): rows '20': 20 is "
        "outside a tensor of 10 rows"
    ) in err
    assert main(["convert", "peft", str(config), "--model", "tests.toys:Tied", "--strict"]) == 1
    inside = _peft(tmp_path, {"embed": [5, 9]}, target_modules=["body"])
    assert main(["convert", "peft", str(inside), "--model", "tests.toys:Tied", "--strict"]) == 0
