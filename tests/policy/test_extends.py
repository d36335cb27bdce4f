"""``extends``: order, overrides, where each rule came from, and every bad reference."""

from __future__ import annotations

from pathlib import Path

import pytest

import tlrules
from tests.toys import Containers
from tlrules import PolicyError
from tlrules.errors import shown


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def team(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "base/heads.yaml",
        (
            "version: 1\nname: heads\ndefault: freeze\nnorm_stats: frozen\n"
            "rules:\n  - heads.cls: train\n  - heads: freeze\n"
        ),
    )
    write(
        tmp_path,
        "base/blocks.yaml",
        (
            "version: 1\nname: blocks\ndefault: train\n"
            "rules:\n  - 'blocks.{-2..-1}': train\n  - '*': freeze\n"
        ),
    )
    return tmp_path


def test_own_rules_first_then_bases_in_order(team: Path) -> None:
    path = write(
        team,
        "mine.yaml",
        (
            "version: 1\nname: mine\nextends: [base/heads.yaml, base/blocks.yaml]\n"
            "rules:\n  - heads.cls.bias: freeze\n"
        ),
    )
    policy = tlrules.load(path)
    assert [(r.number, r.pattern.text, r.location) for r in policy.rules] == [
        (1, "heads.cls.bias", "mine.yaml:5"),
        (2, "heads.cls", "heads.yaml:6"),
        (3, "heads", "heads.yaml:7"),
        (4, "blocks.{-2..-1}", "blocks.yaml:5"),
        (5, "*", "blocks.yaml:6"),
    ]
    # own scalars win; otherwise the first base that sets one
    assert (policy.name, policy.default, policy.norm_stats) == ("mine", "freeze", "frozen")
    report = policy.audit(Containers())
    trained = [d.name for d in report.decisions if d.action == "train"]
    assert trained == [
        "blocks.10.weight",
        "blocks.10.bias",
        "blocks.11.weight",
        "blocks.11.bias",
        "heads.cls.weight",
    ]
    assert report.rules[1].where == "heads.yaml:6"


def test_a_policy_may_only_extend(team: Path) -> None:
    path = write(team, "only.yaml", "version: 1\ndefault: error\nextends: [base/blocks.yaml]\n")
    policy = tlrules.load(path)
    assert [r.number for r in policy.rules] == [1, 2]
    assert policy.default == "error"


def test_extends_a_library_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        ("version: 1\nextends: [torchvision/resnet-layer4-fc]\nrules:\n  - layer4.0: freeze\n"),
    )
    policy = tlrules.load(path)
    assert [r.pattern.text for r in policy.rules] == ["layer4.0", "layer4", "fc", "*"]
    assert policy.rules[1].location == "resnet-layer4-fc.yaml:9"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "a.yaml": "version: 1\nextends: [b.yaml]\nrules:\n  - x: train\n",
                "b.yaml": "version: 1\nextends:\n  - a.yaml\nrules:\n  - y: train\n",
            },
            "b.yaml:3:5: extends 'a.yaml' makes a cycle: a.yaml -> b.yaml -> a.yaml; "
            "remove one link",
        ),
        (
            {"a.yaml": "version: 1\nextends: [a.yaml]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'a.yaml' makes a cycle: a.yaml -> a.yaml; remove one link",
        ),
        (
            {"a.yaml": "version: 1\nextends: [missing.yaml]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'missing.yaml': no such file in {dir}",
        ),
        (
            {
                "a.yaml": "version: 1\nextends: [../outside.yaml]\nrules:\n  - x: train\n",
                "../outside.yaml": "version: 1\nrules:\n  - x: train\n",
            },
            "a.yaml:2:11: extends '../outside.yaml' leaves the folder of the extending file "
            "({dir}): a base given as a path ends in '.yaml' and, with symlinks resolved, lies "
            "in the extending file's folder or below it; or name a library policy",
        ),
        (
            {"a.yaml": "version: 1\nextends: [torchvision/resnet-layer4]\nrules:\n  - x: train\n"},
            "a.yaml:2:11: extends 'torchvision/resnet-layer4': no library policy "
            "'torchvision/resnet-layer4'; did you mean",
        ),
        (
            {
                "a.yaml": "version: 1\nextends: [b.yaml]\nrules:\n  - x: train\n",
                "b.yaml": "version: 1\nrules:\n  - x: trian\n",
            },
            "b.yaml:3:8: rule 1: action 'trian' is not one of 'train', 'freeze'; "
            "did you mean 'train'?",
        ),
    ],
)
def test_bad_bases_are_clear_errors(
    files: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "team"
    for name, text in files.items():
        write(folder, name, text)
    monkeypatch.chdir(folder)
    with pytest.raises(PolicyError) as err:
        tlrules.load("a.yaml")
    assert str(err.value).startswith(message.format(dir=folder))


def test_fan_in_reads_each_base_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """25 files, each extending the next three times: 3**25 loads before, 25 now."""
    for k in range(25):
        bases = f"extends: [p{k + 1}.yaml, p{k + 1}.yaml, p{k + 1}.yaml]\n" if k < 24 else ""
        write(tmp_path, f"p{k}.yaml", f"version: 1\n{bases}rules:\n  - r{k}: train\n")
    read: list[str] = []
    real = tlrules.policy.reader.read_file
    monkeypatch.setattr(
        tlrules.policy.compiler, "read_file", lambda p, s: read.append(s) or real(p, s)
    )
    policy = tlrules.load(tmp_path / "p0.yaml")
    assert [r.pattern.text for r in policy.rules] == [f"r{k}" for k in range(25)]
    assert len(read) == 25


def test_the_number_of_bases_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tlrules.limits, "MAX_EXTENDS_BASES", 3)
    for k in range(6):
        bases = f"extends: [p{k + 1}.yaml]\n" if k < 5 else ""
        write(tmp_path, f"p{k}.yaml", f"version: 1\n{bases}rules:\n  - r{k}: train\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as err:
        tlrules.load("p0.yaml")
    assert str(err.value) == (
        "p3.yaml:2:11: extends 'p4.yaml': the policy already has 3 bases, directly and through "
        "its bases; the limit is 3 (tlrules.limits.MAX_EXTENDS_BASES)"
    )


def bad(tmp_path: Path, entry: str) -> str:
    path = write(tmp_path / "team", "a.yaml", f"version: 1\nextends: [{entry}]\n")
    with pytest.raises(PolicyError) as err:
        tlrules.load(path)
    return str(err.value)


def test_a_name_without_yaml_is_a_library_name_never_a_path(tmp_path: Path) -> None:
    write(tmp_path, "secret.yaml", "version: 'hunter2-secret-value'\n")
    rule = (
        "a library name is segments of lowercase letters, digits, '.', '_' and '-' separated "
        "by '/', without '..' (e.g. 'torchvision/resnet-layer4-fc')"
    )
    for entry in ("../secret", f"'{tmp_path}/secret'", "./secret", "Secret"):
        message = bad(tmp_path, entry)
        assert "hunter2" not in message
        text = shown(entry.strip("'"))
        where = f"{tmp_path}/team/a.yaml:2:11"
        assert message == f"{where}: extends {text}: no library policy {text}; {rule}"


def test_a_path_stays_in_the_folder_tree(tmp_path: Path) -> None:
    write(tmp_path, "secret.yaml", "version: 'hunter2-secret-value'\n")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    folder = tmp_path / "team"
    for entry in ("../secret.yaml", "link.yaml", f"'{tmp_path}/secret.yaml'"):
        message = bad(tmp_path, entry)
        assert "hunter2" not in message
        assert message == (
            f"{folder}/a.yaml:2:11: extends {shown(entry.strip(chr(39)))} leaves the folder of the "
            f"extending file ({folder}): a base given as a path ends in '.yaml' and, with "
            "symlinks resolved, lies in the extending file's folder or below it; or name a "
            "library policy"
        )


def test_hostile_entries_are_clear_errors(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "loop.yaml").symlink_to(folder / "loop.yaml")
    assert bad(tmp_path, "loop.yaml").startswith(
        f"{folder}/a.yaml:2:11: extends 'loop.yaml' cannot be resolved ("
    )
    assert bad(tmp_path, '"a\\0b.yaml"') == (
        f"{folder}/a.yaml:2:11: extends 'a\\x00b.yaml' holds a control character; a base given "
        "as a path ends in '.yaml' and, with symlinks resolved, lies in the extending file's "
        "folder or below it"
    )
    assert bad(tmp_path, "x" * 5000 + ".yaml") == (
        f"{folder}/a.yaml:2:11: extends '" + "x" * 60 + "'... (5,005 characters) is 5,005 "
        "characters long; the limit is 255 (tlrules.limits.MAX_NAME_CHARS)"
    )
    assert bad(tmp_path, "x" * 300) == (
        f"{folder}/a.yaml:2:11: extends '" + "x" * 60 + "'... (300 characters) is 300 "
        "characters long; the limit is 255 (tlrules.limits.MAX_NAME_CHARS)"
    )


def test_library_names_on_the_command_line_are_names(tmp_path: Path) -> None:
    write(tmp_path, "secret.yaml", "version: 'hunter2-secret-value'\n")
    with pytest.raises(PolicyError) as err:
        tlrules.load(f"{tmp_path}/secret")
    assert str(err.value) == (
        f"{tmp_path}/secret: no such policy file or library policy "
        f"{shown(f'{tmp_path}/secret')}; a library name is segments of lowercase letters, "
        "digits, '.', '_' and '-' separated by '/', without '..' "
        "(e.g. 'torchvision/resnet-layer4-fc')"
    )
    with pytest.raises(PolicyError, match=r"no such policy file or library policy '\.\./rules/"):
        tlrules.load("../rules/torchvision/resnet-layer4-fc")


FIRST_BASE = (
    "version: 1\nname: team\nrules:\n  - fc: train\n"
    "  - match: '*bn*'\n    action: freeze\n    first: true\n  - '*': freeze\n"
)


def test_first_rules_of_a_base_come_before_the_extending_policy(tmp_path: Path) -> None:
    write(tmp_path, "team.yaml", FIRST_BASE)
    write(
        tmp_path,
        "mid.yaml",
        "version: 1\nextends: [team.yaml]\nrules:\n  - match: head\n    action: train\n"
        "    first: true\n  - layer4: freeze\n",
    )
    mine = write(
        tmp_path, "mine.yaml", "version: 1\nextends: [mid.yaml]\nrules:\n  - layer4: train\n"
    )
    team = tlrules.load(tmp_path / "team.yaml")  # nothing extends it here: it stays in place
    assert [r.pattern.text for r in team.rules] == ["fc", "*bn*", "*"]
    policy = tlrules.load(mine)
    assert [(r.number, r.pattern.text, r.location) for r in policy.rules] == [
        (1, "*bn*", "team.yaml:5"),  # the deepest base's first rules come first
        (2, "head", "mid.yaml:4"),
        (3, "layer4", "mine.yaml:4"),
        (4, "layer4", "mid.yaml:7"),
        (5, "fc", "team.yaml:4"),
        (6, "*", "team.yaml:8"),
    ]


def test_first_rules_show_in_the_audit_with_their_place(tmp_path: Path) -> None:
    write(tmp_path, "team.yaml", FIRST_BASE)
    mine = write(
        tmp_path, "mine.yaml", "version: 1\nextends: [team.yaml]\nrules:\n  - '*': train\n"
    )
    report = tlrules.load(mine).audit(Containers())
    assert report.rules[0].where == "team.yaml:5"
    assert report.rules[0].pattern == "*bn*"


def test_rules_with_bases_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "base.yaml", "version: 1\nrules:\n  - a: train\n  - b: train\n")
    path = write(tmp_path, "p.yaml", "version: 1\nextends: [base.yaml]\nrules:\n  - c: train\n")
    monkeypatch.setattr(tlrules.limits, "MAX_RULES", 2)
    with pytest.raises(PolicyError) as err:
        tlrules.load(path)
    assert str(err.value) == (
        f"{path}:2:1: the policy has 3 rules with its bases; the limit is 2 "
        "(tlrules.limits.MAX_RULES); use wider patterns, such as 'blocks.{0..11}' or '*'"
    )
