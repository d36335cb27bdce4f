"""Hostile patterns: each limit is checked on the pattern's text before anything compiles
it, and ``validate`` (reading the policy) refuses every pattern that matching would."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tlrules
from tlrules import DecisionError, PolicyError, limits
from tlrules.errors import PatternTimeout, TLRulesError
from tlrules.patterns import Matcher, Pattern, PatternSyntaxError
from tlrules.policy import from_text


def message(pattern: str) -> str:
    text = f"version: 1\nrules:\n  - match: {pattern!r}\n    action: train\n"
    with pytest.raises(PolicyError) as err:
        from_text(text, "p.yaml")
    return str(err.value)


def test_nested_counted_repeats_are_refused_before_compiling() -> None:
    assert message("re:(?:(?:a{1000}){1000}){1000}") == (
        "p.yaml:3:30: rule 1: pattern 're:(?:(?:a{1000}){1000}){1000}': its counted repeats "
        "expand it to at least 1,001,001 items (at '{1000}'); the limit is 100,000 "
        "(tlrules.limits.MAX_REGEX_REPEAT); use '+' or '*' instead of a large count"
    )
    assert "at least 8,008,000 items" in message("re:(?:a{1000}){8000}")


def test_an_empty_group_repeated_counts_too() -> None:
    assert "at least 4,294,967,294 items" in message("re:(?:){4294967294}")


def test_a_raised_repeat_limit_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    Pattern.parse("re:(?:a{99}){1000}")  # 100,000: the most the limit allows
    monkeypatch.setattr(limits, "MAX_REGEX_REPEAT", 1_000)
    with pytest.raises(PatternSyntaxError, match="the limit is 1,000 "):
        Pattern.parse("re:(?:a{100}){100}")


def test_regex_module_syntax_is_counted_too() -> None:
    with pytest.raises(PatternSyntaxError, match="at least 1,001,001 items"):
        Pattern.parse(r"re:\p{L}(?:(?:a{1000}){1000})")
    Pattern.parse(r"re:\p{L}{3}\.(?:a{10}){10}")


def test_deeply_nested_groups() -> None:
    assert message("re:" + "(" * 40 + ")" * 40) == (
        "p.yaml:3:48: rule 1: pattern 're:" + "(" * 40 + ")" * 17 + "'... (83 characters): "
        "the regex nests groups more than 32 deep "
        "(tlrules.limits.MAX_REGEX_NESTING); flatten the groups"
    )


def test_long_range_bounds_are_refused_when_read() -> None:
    assert message("layer{0.." + "9" * 3000 + "}") == (
        "p.yaml:3:22: rule 1: pattern 'layer{0.." + "9" * 51 + "'... (3,010 characters): a "
        "range bound of 3,000 digits is longer than the limit of 18 "
        "(tlrules.limits.MAX_RANGE_DIGITS); leave the end open, as in '{N..}', for every "
        "number from N on"
    )
    assert "a range bound of 1,500 digits" in message("layer{" + "1" * 1500 + "..}")
    assert "a range bound of 30 digits" in message("layer{-" + "9" * 30 + "..-1}")


def test_the_largest_range_allowed_works() -> None:
    top = "9" * limits.MAX_RANGE_DIGITS
    matcher = Matcher([Pattern.parse(f"layer{{0..{top}}}")])
    assert matcher.first_all([f"layer{top}.w", f"layer1{top}.w"]) == [0, None]


def test_bad_character_range_in_a_glob_class() -> None:
    assert message("layer[z-a]") == (
        "p.yaml:3:18: rule 1: pattern 'layer[z-a]': invalid class '[z-a]': bad character range"
    )


def test_pattern_length() -> None:
    assert message("x" * 5000) == (
        "p.yaml:3:13: rule 1: pattern '" + "x" * 60 + "'... (5,000 characters): the pattern "
        "is 5,000 characters long; the limit is 4,096 (tlrules.limits.MAX_PATTERN_CHARS); "
        "shorten it, e.g. with '*' or a class"
    )
    Pattern.parse("re:" + "x" * limits.MAX_PATTERN_CHARS)


PIECES = [
    *"*?[]!{}.,-\\|()+^$az09",
    "re:",
    "..",
    "{-1..}",
    "{0..3}",
    "[!",
    "(?:",
    "(?=",
    "(?<!",
    "{2}",
    "{2,}",
    "\\d",
    "\\1",
    "(?i)",
]
NAMES = ["a.0.w", "a.10.b", "z9.x", "layer1.0.w", "a", "0", "a.b.c.d"]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@example(["[", "[!", "]"], "regex")  # re's parser warns 'Possible nested set': no error
@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=8), st.sampled_from(["glob", "regex"])
)
def test_what_reading_accepts_matching_accepts(pieces: list[str], syntax: str) -> None:
    """If compiling or matching a pattern for an audit would fail, reading the policy
    (``validate``) has refused it already."""
    try:
        pattern = Pattern.parse("".join(pieces), syntax)
    except PatternSyntaxError:
        return
    try:
        matcher = Matcher([pattern], NAMES)
        matcher.first_all(NAMES)
        for name in NAMES:
            matcher.matches(0, name)
            if pattern.syntax == "glob":
                matcher.names_module(0, name)
    except TLRulesError:  # a time limit: the input's own cost, told as such
        pass


def test_a_module_glob_is_bounded_too() -> None:
    text = "version: 1\nrules:\n  - match: x\n    module: '" + "N" * 5000 + "'\n    action: train\n"
    with pytest.raises(PolicyError) as err:
        from_text(text, "p.yaml")
    assert str(err.value) == (
        "p.yaml:4:13: rule 1: module '" + "N" * 60 + "'... (5,000 characters): the pattern is "
        "5,000 characters long; the limit is 4,096 (tlrules.limits.MAX_PATTERN_CHARS); shorten it"
    )


def test_the_last_index_scan_name_by_name_has_the_time_limit() -> None:
    """An empty name sends the search for a negative range's last index name by name;
    that search runs with the time limit too, and names the pattern."""
    glob = "*a" * 12 + "{-1..}"
    names = ["", "a" * 3000 + "b0.w"]
    with pytest.raises(PatternTimeout) as err:
        Matcher([Pattern.parse("x"), Pattern.parse(glob)], names)
    assert err.value.rules == [1]
    assert str(err.value).startswith(f"pattern {glob!r} did not finish within the time limit")


def test_a_control_character_in_a_pattern_is_refused() -> None:
    text = 'version: 1\nrules:\n  - "fc\\0": train\n  - "*": freeze\n'
    with pytest.raises(PolicyError) as err:
        from_text(text)
    assert str(err.value) == (
        "<policy>:3:8: rule 1: pattern 'fc\\x00': the pattern holds the control character "
        "U+0000, which no parameter name holds; remove it (in a regex, write it as an escape "
        "such as '\\x00' if you mean it)"
    )


def ranged(count: int) -> str:
    rules = "".join(f'  - "blocks.{{0..{n}}}.w{n % 3}": train\n' for n in range(1, count + 1))
    return f"version: 1\ndefault: freeze\nrules:\n{rules}"


def blocks(count: int) -> torch.nn.Module:
    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList(torch.nn.Module() for _ in range(count))
    for block in model.blocks:
        for j in range(3):
            block.register_parameter(f"w{j}", torch.nn.Parameter(torch.zeros(1)))
    return model


def test_matching_past_the_step_limit_is_an_error_at_a_rule_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rules of different ranges are all alive while a block's number is read: the work
    grows with rules times names, and ``MAX_AUTOMATON_STEPS`` bounds it (read at call
    time, counted per call)."""
    policy = tlrules.Policy.from_text(ranged(60), "r.yaml")
    model = blocks(60)
    assert policy.audit(model).summary.trainable > 0  # under the limit as shipped
    tlrules.clear_caches()
    monkeypatch.setattr(limits, "MAX_AUTOMATON_STEPS", 2_000)
    was = [p.requires_grad for p in model.parameters()]
    with pytest.raises(DecisionError) as err:
        policy.apply(model)
    (line,) = str(err.value).splitlines()
    assert line.startswith("r.yaml:")
    assert ": rule " in line and "other patterns are alive at once" in line
    assert "more than 2,000 automaton steps (tlrules.limits.MAX_AUTOMATON_STEPS)" in line
    assert [p.requires_grad for p in model.parameters()] == was
    monkeypatch.setattr(limits, "MAX_AUTOMATON_STEPS", 10**9)
    assert policy.apply(model).report.summary.trainable > 0  # the half-grown automaton goes on


def test_the_step_limit_is_counted_per_call_not_over_a_matchers_life(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kept matcher grows with each new model it meets; each call is bounded alone."""
    matcher = Matcher([Pattern.parse(f"blocks.{{0..{n}}}.w") for n in range(1, 30)])
    names = [f"blocks.{b}.w" for b in range(40)]
    matcher.first_all(names)
    spent = matcher.dfa.spent
    monkeypatch.setattr(limits, "MAX_AUTOMATON_STEPS", spent)
    matcher.first_all([f"blocks.{b}.w" for b in range(40, 80)])  # as much again: passes
    assert 0 < matcher.dfa.spent <= spent


@pytest.mark.slow  # builds a 45,000-tensor model on the meta device
def test_real_policies_stay_far_under_the_step_limit() -> None:
    """The benchmark's 200-rule policy on the DeepSeek-V3-sized MoE steps a few hundred
    thousand nodes; the limit (12 million) is more than 20 times that."""
    from benchmarks.models import build
    from benchmarks.policies import policy_text

    model = build("deepseek_v3")
    policy = tlrules.Policy.from_text(policy_text("deepseek_v3", 200))
    tlrules.clear_caches()  # a new matcher, its automaton empty
    names = [n for n, _ in model.named_parameters()]
    matcher = policy.matcher(names)
    matcher.first_all(names)  # the whole automaton this model needs, grown in one call
    assert 0 < matcher.dfa.spent * 20 < limits.MAX_AUTOMATON_STEPS
