"""Configuration validation: errors name the offending key."""

from __future__ import annotations

import copy

import pytest
import yaml

from modgap.config import load_config, validate_config
from modgap.errors import ConfigError


@pytest.fixture
def config(project_root):
    with open(project_root / "config/config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def schema(project_root):
    return project_root / "workflow/schemas/config.schema.yaml"


def test_default_config_is_valid(config, schema):
    validate_config(config, schema)


@pytest.mark.parametrize(
    ("mutate", "expected_key"),
    [
        (lambda c: c["encoders"]["lit-effnet-minilm"]["train"].update(lr=-1.0), "encoders.lit-effnet-minilm.train.lr"),
        (lambda c: c["embed"].update(precision="fp8"), "embed.precision"),
        (lambda c: c["embed"].update(batch_size="many"), "embed.batch_size"),
        (lambda c: c["datasets"]["embedded"].update(source="ftp"), "datasets.embedded.source"),
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c["runs"][0].update(encoder="nope"), "runs.0.encoder"),
        (
            lambda c: c["encoders"]["lit-effnet-minilm"]["train"].update(dataset="nope"),
            "encoders.lit-effnet-minilm.train.dataset",
        ),
        (lambda c: c["eval"]["suite"].update(captions=3), "eval.suite"),
        (lambda c: c["eval"]["suite"].update(pope_negatives=["hard"]), "eval.suite.pope_negatives.0"),
        (lambda c: c["eval"].update(conditions=["noise"]), "eval.conditions.0"),
        (lambda c: c["eval"]["suite"].update(split="train"), "eval.suite.split"),
        (lambda c: c["report"].update(tier="gpu"), "report.tier"),
    ],
)
def test_bad_config_names_the_key(config, schema, mutate, expected_key):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError, match=expected_key.replace(".", r"\.")):
        validate_config(bad, schema)


def test_missing_and_malformed_files(tmp_path, schema):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml", schema)
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, schema)


def test_cli_reports_config_error_on_one_line(tmp_path, project_root, capsys, config):
    from modgap.cli import main

    bad = copy.deepcopy(config)
    bad["embed"]["shard_rows"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    status = main(["config", str(path), "--schema", str(project_root / "workflow/schemas/config.schema.yaml")])
    assert status == 2
    assert "embed.shard_rows" in capsys.readouterr().err


def test_stage_params_from_inline_json_or_file(tmp_path):
    from modgap.config import parse_json_params

    assert parse_json_params(None) == {}
    assert parse_json_params('{"epochs": 3}') == {"epochs": 3}
    path = tmp_path / "p.json"
    path.write_text('{"lr": 0.1}')
    assert parse_json_params(str(path)) == {"lr": 0.1}
    with pytest.raises(ConfigError, match="--params: not valid JSON"):
        parse_json_params("{epochs: 3}")
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        parse_json_params("[1, 2]")
