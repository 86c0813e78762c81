"""`modgap --help` is documentation: every command described, every option explained with its default;
`modgap --no-progress`; one parser per `align study-*`; `modgap config` on a paper overlay."""

from __future__ import annotations

import argparse
import json
import os
import shlex

import pytest
import yaml

from modgap.cli import build_parser, main

OVERLAY = "config/paper/coco2017-vitl14-336.yaml"


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("modgap",)):
    """(command path, parser) for the parser and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def test_walk_reaches_every_leaf_command():
    paths = {" ".join(p) for p, _ in walk(build_parser())}
    assert {
        "modgap data prepare",
        "modgap embed extract",
        "modgap align study-aniso",
        "modgap config",
        "modgap workflow verify",
        "modgap eval claims",
        "modgap mllm launch",
    } <= paths


def test_every_parser_has_a_description_and_every_action_a_help():
    problems = []
    for path, parser in walk(build_parser()):
        name = " ".join(path)
        if not (parser.description or "").strip():
            problems.append(f"{name}: no description")
        if not issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter):
            problems.append(f"{name}: formatter {parser.formatter_class.__name__}")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if not (action.help or "").strip():
                problems.append(f"{name}: {'/'.join(action.option_strings) or action.dest} has no help")
    assert problems == []


def test_every_subcommand_has_a_one_line_help():
    missing = []
    for path, parser in walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                missing += [f"{' '.join(path)} {name}" for name in action.choices if not helps.get(name)]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["embed", "extract"], "(default: 64)"),
        (["align", "study-n"], "(default: 5)"),
        (["config"], "(default: config/config.yaml)"),
    ],
)
def test_help_shows_defaults(capsys, command, shown):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert shown in " ".join(capsys.readouterr().out.split())


def _spy_on_progress(monkeypatch):
    """Replace `modgap config`'s handler by one that records what a tqdm bar sees while it runs."""
    import modgap.workflow.commands as workflow_commands

    seen = {}

    def fake(args):
        from tqdm import tqdm
        from tqdm.auto import tqdm as auto_tqdm

        seen["env"] = os.environ.get("TQDM_DISABLE")
        # an explicit disable=False, as the commands pass for progress=True, must not bring a bar back
        seen["disabled"] = (tqdm(range(3), disable=False).disable, auto_tqdm(total=3, disable=False).disable)
        return 0

    monkeypatch.setattr(workflow_commands, "_check_config", fake)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    return seen


def test_global_no_progress_disables_tqdm_for_the_command(monkeypatch):
    from tqdm import tqdm

    seen = _spy_on_progress(monkeypatch)
    assert main(["--no-progress", "config"]) == 0
    assert seen == {"env": "1", "disabled": (True, True)}
    assert "TQDM_DISABLE" not in os.environ  # restored after the command
    assert tqdm(range(3), disable=False).disable is False


def test_without_no_progress_bars_stay_on(monkeypatch):
    seen = _spy_on_progress(monkeypatch)
    assert main(["config"]) == 0
    assert seen == {"env": None, "disabled": (False, False)}


def test_per_command_no_progress_options_still_parse():
    parser = build_parser()
    prepare = ["data", "prepare", "--dataset-config", "{}", "--out", "m.parquet"]
    extract = ["embed", "extract", "--manifest", "m", "--split", "diag", "--model", "x", "--out-dir", "o"]
    for argv in (prepare, extract):
        args = parser.parse_args([*argv, "--no-progress"])
        assert args.no_progress is True and args.global_no_progress is False
        args = parser.parse_args(["--no-progress", *argv])
        assert args.no_progress is False and args.global_no_progress is True
        args = parser.parse_args(["--no-progress", *argv, "--no-progress"])
        assert args.no_progress is True and args.global_no_progress is True


STUDY_BASE = ["--stats-dir", "s", "--diag-dir", "d", "--out", "o.json"]


@pytest.mark.parametrize(
    ("study", "foreign"),
    [
        ("study-n", ["--n", "10"]),
        ("study-n", ["--ranks", "8"]),
        ("study-n", ["--params", "{}"]),
        ("study-precision", ["--sizes", "10"]),
        ("study-precision", ["--seeds", "2"]),
        ("study-precision", ["--ranks", "8"]),
        ("study-precision", ["--params", "{}"]),
        ("study-cost", ["--seeds", "2"]),
        ("study-cost", ["--n", "10"]),
        ("study-cost", ["--ranks", "8"]),
        ("study-aniso", ["--sizes", "10"]),
        ("study-aniso", ["--seeds", "2"]),
        ("study-aniso", ["--n", "10"]),
    ],
)
def test_study_rejects_options_of_other_studies(capsys, study, foreign):
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["align", study, *STUDY_BASE, *foreign])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("study", ["study-n", "study-aniso"])
def test_studies_on_held_out_pairs_require_diag_dir(study):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["align", study, "--stats-dir", "s", "--out", "o.json"])
    assert exc.value.code == 2


@pytest.mark.parametrize("paper", [False, True])
def test_study_options_of_the_configs_parse(project_root, paper):
    """What workflow/rules/common.smk's study_options builds from each config (default and paper)."""
    from modgap.config import merge_overlay, read_yaml_mapping

    config = read_yaml_mapping(project_root / "config/config.yaml")
    if paper:
        config = merge_overlay(config, read_yaml_mapping(project_root / OVERLAY))
    commands = {"sample_size": "study-n", "precision": "study-precision", "cost": "study-cost", "aniso": "study-aniso"}
    parser = build_parser()
    for study, block in config["align"]["studies"].items():
        options = []
        for key, value in block.items():
            if key == "params":
                value = json.dumps(value, sort_keys=True, separators=(",", ":"))
            values = value if isinstance(value, list) else [value]
            options += [f"--{key}", *(str(v) for v in values)]
        args = parser.parse_args(["align", commands[study], *STUDY_BASE, *options])
        assert args.study == commands[study]
        for key, value in block.items():
            if key != "params":
                assert getattr(args, key) == value


def test_config_validates_a_paper_overlay_over_the_default(monkeypatch, project_root, capsys):
    monkeypatch.chdir(project_root)
    assert main(["config", OVERLAY]) == 0
    out = capsys.readouterr().out
    assert f"config/config.yaml + {OVERLAY}: valid" in out
    assert "lacks the top-level key(s) seed" in out


def test_config_reports_the_dotted_key_of_a_bad_overlay_value(monkeypatch, project_root, tmp_path, capsys):
    overlay = yaml.safe_load((project_root / OVERLAY).read_text())
    assert "batch_size" in overlay["embed"]
    overlay["embed"]["batch_size"] = "many"
    path = tmp_path / "bad-overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    monkeypatch.chdir(project_root)
    assert main(["config", str(path)]) != 0
    err = capsys.readouterr().err
    assert "embed.batch_size" in err
    assert "required property" not in err  # merged over the default: the bad value is the only complaint


def test_config_does_not_merge_a_complete_file(monkeypatch, project_root, tmp_path, capsys):
    monkeypatch.chdir(project_root)
    complete = tmp_path / "complete.yaml"
    complete.write_text((project_root / "config/config.yaml").read_text())
    # a --base that is not a config at all proves it is not read for a complete PATH
    assert main(["config", str(complete), "--base", str(tmp_path / "absent.yaml")]) == 0
    assert capsys.readouterr().out.strip() == f"{complete}: valid"


def test_config_explicit_overlay_flag_still_works(monkeypatch, project_root, capsys):
    monkeypatch.chdir(project_root)
    assert main(shlex.split(f"config config/config.yaml --overlay {OVERLAY}")) == 0
    assert f"config/config.yaml + {OVERLAY}: valid" in capsys.readouterr().out
