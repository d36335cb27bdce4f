"""``tlrules convert axolotl``: the converted policy decides every name as axolotl 0.18.0
does (``tests/convert/refs/axolotl.py``), what tlrules cannot express is refused, and
``--model`` names where axolotl's reading surprises."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.llm_names import all_llm_names, llm_names
from tlrules import convert
from tlrules.cli import main
from tlrules.convert.checked import loaded
from tlrules.errors import PolicyError
from tlrules.policy.reader import read

from .refs import axolotl as reference
from .refs import decided
from .refs.models import llama_spec

ADAPTER_FROZEN = (
    "with 'adapter: lora', axolotl applies unfrozen_parameters to the PEFT model and freezes "
    "every parameter no pattern matches, the adapter's own weights too, so this policy "
    "freezes them as axolotl does; to train the adapter as well, add the rule "
    "'- \"*.lora_{A,B,embedding_A,embedding_B,magnitude_vector}\": train' first (tlrules' "
    "names), and to the axolotl config a pattern for them such as '.+lora_' (axolotl "
    "escapes a '.' unless '+' follows it)"
)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    return llama_spec(tmp_path_factory.mktemp("llama"))


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "axolotl.yaml"
    path.write_text(text)
    return path


def _converted(tmp_path: Path, *patterns: str, head: str = "") -> str:
    body = "".join(f"  - {json.dumps(p)}\n" for p in patterns)
    return convert.convert(
        "axolotl", _config(tmp_path, f"{head}unfrozen_parameters:\n{body}")
    ).text()


def test_the_policy_names_each_entry_and_reproduces_the_dot_rewrite(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "base_model: meta-llama/Llama-3.1-8B\n"
        "unfrozen_parameters:\n"
        "  - ^lm_head.weight$\n"
        "  - model.layers.2[0-9]+.mlp\n"
        "  - lm_head.weight$[:]\n"
        "  - model.layers.+mlp\n",
    )
    assert convert.convert("axolotl", path).text() == (
        f"# converted by 'tlrules convert axolotl {path}'\n"
        "# read as axolotl 0.18.0 (src/axolotl/utils/freeze.py, freeze_layers_except): every "
        "'.' not followed by '+' is a literal dot, then re.match (anchored at the start "
        "only); a matching parameter trains, every other one freezes\n"
        "version: 1\n"
        "default: freeze\n"
        "rules:\n"
        f'  - "re:(?:^lm_head\\\\.weight$).*": train  # {path}:3 unfrozen_parameters[0]: '
        "'^lm_head.weight$'\n"
        f'  - "re:(?:model\\\\.layers\\\\.2[0-9]+\\\\.mlp).*": train  # {path}:4 '
        "unfrozen_parameters[1]: 'model.layers.2[0-9]+.mlp'\n"
        f'  - "re:(?:lm_head\\\\.weight$).*": train  # {path}:5 unfrozen_parameters[2]: '
        "'lm_head.weight$[:]'\n"
        f'  - "re:(?:model\\\\.layers.+mlp).*": train  # {path}:6 unfrozen_parameters[3]: '
        "'model.layers.+mlp'\n"
    )


@pytest.mark.parametrize(
    ("pattern", "name", "trains"),
    [
        # the three: an escaped dot becomes a backslash and any character
        (r"^model\.language_model\..*", "model.language_model.layers.0.mlp.up_proj.weight", False),
        # re.match anchors at the start although the docs say unanchored patterns match anywhere
        ("layers.2[0-9]+.mlp", "model.layers.20.mlp.up_proj.weight", False),
        ("model.layers.2[0-9]+.mlp", "model.layers.20.mlp.up_proj.weight", True),
        # '.' is a literal dot, so 'layers.1' never matches 'layers11', but '.+' stays a wildcard
        ("model.layers.1", "model.layers11.mlp.weight", False),
        ("model.+mlp", "model.layers.3.mlp.up_proj.weight", True),
        # '.*' becomes '\.*': zero or more dots
        ("model.*embed", "model.layers.0.embed.weight", False),
        ("model.*embed", "model.embed_tokens.weight", True),
        ("lm_head", "lm_head.weight", True),
    ],
)
def test_axolotl_semantics_on_names(tmp_path: Path, pattern: str, name: str, trains: bool) -> None:
    assert reference.trained([pattern], [name]) == {name: trains}
    assert decided(_converted(tmp_path, pattern), [name]) == {name: trains}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "embed_tokens[9:3]",
            "unfrozen_parameters[0]: 'embed_tokens[9:3]' has an empty row range '[9:3]', "
            "which axolotl refuses ('End of range must be greater than start'); fix the range",
        ),
        (
            "layers.(1",
            "unfrozen_parameters[0] (after axolotl's '.' rewrite): "
            "'layers\\\\.(1' is not a valid Python regex (missing ), unterminated subpattern at "
            "position 8), so the tool would fail on it too; fix the regex, or escape it with "
            "re.escape() to match it literally",
        ),
        (
            "[[a]",
            "unfrozen_parameters[0]: '[[a]' reads "
            "differently in Python's re and in tlrules' regex engine (Possible nested set at "
            "position 1); escape a '[' inside a set as '\\[' and a doubled '-', '&', '~' or "
            "'|' inside a set as '\\-' and so on",
        ),
        (
            "(?x) lm_head",
            "unfrozen_parameters[0]: '(?x) "
            "lm_head' sets verbose mode '(?x)', which tlrules does not convert; write the regex "
            "without spaces or comments and drop the '(?x)'",
        ),
    ],
)
def test_what_tlrules_cannot_reproduce_is_refused_at_the_entry(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = _config(tmp_path, f"unfrozen_parameters:\n  - {json.dumps(entry)}\n")
    with pytest.raises(PolicyError) as err:
        convert.convert("axolotl", path)
    assert str(err.value) == f"{path}:2:5: {message}"


def test_a_config_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, "unfrozen_parameters: lm_head\n")
    with pytest.raises(PolicyError) as err:
        convert.convert("axolotl", path)
    assert str(err.value) == (
        f"{path}:1:22: unfrozen_parameters must be a list of regexes (axolotl's schema: "
        "list[str]), not 'lm_head'; write it as a YAML list: 'unfrozen_parameters: "
        '["lm_head"]\''
    )
    path = _config(tmp_path, "unfrozen_parameters:\n  - 3\n")
    with pytest.raises(PolicyError) as err:
        convert.convert("axolotl", path)
    assert str(err.value) == (
        f"{path}:2:5: unfrozen_parameters[0]: '3' is not a string; axolotl's schema takes "
        "regexes only: quote it"
    )
    path = _config(tmp_path, "adapter: lora\nlora_r: 8\n")
    with pytest.raises(PolicyError) as err:
        convert.convert("axolotl", path)
    assert str(err.value) == (
        f"{path}:1:10: this config sets 'adapter: lora' and no unfrozen_parameters, so PEFT "
        "decides what trains; convert the adapter's adapter_config.json with 'tlrules "
        "convert peft'"
    )


def test_no_unfrozen_parameters_trains_everything(tmp_path: Path) -> None:
    text = convert.convert("axolotl", _config(tmp_path, "base_model: x\n")).text()
    names = llm_names("llama")
    assert set(decided(text, names).values()) == {True}
    assert text.endswith('  - "*": train  # no unfrozen_parameters: axolotl freezes nothing\n')


@pytest.mark.slow
def test_a_hostile_regex_fails_at_convert_time_with_its_source_line(tmp_path: Path) -> None:
    path = _config(tmp_path, 'unfrozen_parameters:\n  - lm_head\n  - "(?:a{1000}){1000}"\n')
    with pytest.raises(PolicyError) as err:
        convert.convert("axolotl", path)
    assert str(err.value) == (  # checked before re compiles it (docs/spec.md#convert)
        f"{path}:3:5: unfrozen_parameters[1]: '(?:a{{1000}}){{1000}}': its counted repeats "
        "expand it to at least 1,001,000 items (at '{1000}'); the limit is 100,000 "
        "(tlrules.limits.MAX_REGEX_REPEAT); use '+' or '*' instead of a large count"
    )


@pytest.mark.slow
def test_model_warnings_name_each_surprise(
    tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(
        tmp_path,
        "unfrozen_parameters:\n"
        "  - ^lm_head.weight$\n"
        "  - layers.2[0-9]+.mlp\n"
        "  - ^model\\.layers\\.1\\..*\n"
        "  - layers\\.3\\.mlp\n"
        "  - vision_tower\n",
    )
    assert main(["convert", "axolotl", str(path), "--model", llama]) == 0
    out, err = capsys.readouterr()
    assert out == convert.convert("axolotl", path).text()
    assert err.splitlines() == [
        f"warning[convert]: {path}:3: 'layers.2[0-9]+.mlp' matches nothing under axolotl, "
        "which anchors it at the start of the name (re.match); it matches inside 12 names: "
        "start it with '.+' to match anywhere (model.layers.20.mlp.gate_proj.weight, "
        "model.layers.20.mlp.up_proj.weight, model.layers.20.mlp.down_proj.weight, "
        "model.layers.21.mlp.gate_proj.weight, model.layers.21.mlp.up_proj.weight and 7 more)",
        f"warning[convert]: {path}:4: '^model\\\\.layers\\\\.1\\\\..*' matches nothing under "
        "axolotl: its '.' rewrite turns each '\\.' into '\\\\.' (a backslash, then any "
        "character), giving '^model\\\\\\\\.layers\\\\\\\\.1\\\\\\\\.\\\\.*'; written with plain "
        "dots it would match 9 parameters (model.layers.1.self_attn.q_proj.weight, "
        "model.layers.1.self_attn.k_proj.weight, model.layers.1.self_attn.v_proj.weight, "
        "model.layers.1.self_attn.o_proj.weight, model.layers.1.mlp.gate_proj.weight and 4 "
        "more)",
        f"warning[convert]: {path}:5: 'layers\\\\.3\\\\.mlp' matches nothing under axolotl "
        "(after its '.' rewrite: 'layers\\\\\\\\.3\\\\\\\\.mlp', anchored at the start); the "
        "documented reading, unanchored and unrewritten, would match 3 parameters "
        "(model.layers.3.mlp.gate_proj.weight, model.layers.3.mlp.up_proj.weight, "
        "model.layers.3.mlp.down_proj.weight)",
        f"warning[convert]: {path}:6: 'vision_tower' matches no parameter of this model",
    ]


@pytest.mark.slow
def test_under_an_adapter_model_patterns_match_nothing_and_everything_freezes(
    tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(
        tmp_path,
        "adapter: lora\nunfrozen_parameters:\n  - model.embed_tokens\n  - lm_head\n",
    )
    assert main(["convert", "axolotl", str(path), "--model", llama, "--strict"]) == 1
    out, err = capsys.readouterr()
    assert (
        "# adapter: lora: axolotl matches the PeftModel's names ('base_model.model....') and "
        "freezes the LoRA weights no pattern matches; this policy matches the bare names "
        "tlrules sees on the wrapped model\n"
    ) in out
    assert err.splitlines() == [
        f"warning[convert]: {path}:1: {ADAPTER_FROZEN}",
        f"warning[convert]: {path}:3: 'model.embed_tokens' matches nothing under axolotl: "
        "with 'adapter: lora' its names start with 'base_model.model.', and re.match anchors "
        "the pattern there; the converted policy matches the bare names and trains 1 "
        "parameter (model.embed_tokens.weight)",
        f"warning[convert]: {path}:4: 'lm_head' matches nothing under axolotl: with 'adapter: "
        "lora' its names start with 'base_model.model.', and re.match anchors the pattern "
        "there; the converted policy matches the bare names and trains 1 parameter "
        "(lm_head.weight)",
        f"warning[convert]: {path}:3: axolotl freezes every parameter (the LoRA weights too): "
        "none of the 2 unfrozen_parameters patterns matches a name of this model",
    ]


# -- the property: random configs over real LLM names ------------------------------------

NAMES = all_llm_names()
SEGMENTS = sorted({s for n in NAMES for s in n.split(".") if not s.isdigit()})
NUMBERS = ["[0-9]+", "\\d+", "\\d", "1[0-3]", "2[0-9]+", "[0-9]"]
JOINS = [".", ".", "\\.", ".+", ".*", "\\..*", "_"]


@st.composite
def patterns(draw: st.DrawFn) -> str:
    """A pattern as people write them, from a real name: a run of its segments, numbers
    kept or turned into classes, segments kept, widened into alternatives or wildcards,
    dots escaped or not, anchors and a leading flag."""
    segments = draw(st.sampled_from(NAMES)).split(".")
    first = draw(st.integers(0, len(segments) - 1))
    last = draw(st.integers(first + 1, len(segments)))
    parts = []
    for segment in segments[first:last]:
        if segment.isdigit():
            parts.append(draw(st.sampled_from([segment, segment, *NUMBERS])))
        else:
            other = draw(st.sampled_from(SEGMENTS))
            widened = [f"({segment}|{other})", f"{segment[:2]}.+", f"{segment}?", ".+"]
            parts.append(draw(st.sampled_from([segment, segment, segment, *widened])))
    body = parts[0]
    for part in parts[1:]:
        body += draw(st.sampled_from(JOINS)) + part
    start = draw(st.sampled_from(["", "", "^", ".*", "(?i)", "\\w+\\."]))
    end = draw(st.sampled_from(["", "", "$", ".*", "\\.weight$", "[a-z_]*"]))
    return start + body + end


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns(), max_size=5), st.booleans(), st.booleans())
def test_the_policy_decides_every_name_as_axolotl_does(
    entries: list[str], lora: bool, freeze_mm: bool
) -> None:
    for entry in entries:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                re.compile(re.sub(r"\.(?!\+)", "\\.", entry))  # axolotl would fail
            except (re.error, FutureWarning):
                assume(False)
    assume(entries or not lora)  # an adapter and no patterns: refused, tested above
    head = ("adapter: lora\n" if lora else "") + f"freeze_mm_modules: {str(freeze_mm).lower()}\n"
    body = "".join(f"  - {json.dumps(e)}\n" for e in entries)
    doc = read(f"{head}unfrozen_parameters:\n{body}" if entries else head, "axolotl.yaml")
    converted = convert.tool("axolotl").convert(doc)
    loaded(converted, {})
    assert decided(converted.text(), NAMES) == reference.trained(entries, NAMES, freeze_mm)
    seen = [f"base_model.model.{n}" for n in NAMES] if lora else NAMES
    first_line = 4 if lora else 3
    unmatched = {
        i + first_line
        for i, e in enumerate(entries)
        if not any(reference.trained([e], seen).values())
    }
    flagged = {
        int(s.where.rpartition(":")[2])
        for s in convert.tool("axolotl").surprises(doc, NAMES)
        if not s.message.startswith("axolotl freezes every parameter")
    }
    assert flagged == unmatched
