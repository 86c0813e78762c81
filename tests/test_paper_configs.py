"""Every config/paper/*.yaml merges over config/config.yaml and validates; the four paper-table configs
train exactly their table's rows with the paper's encoder, templates and benchmarks.
(`snakemake -n` of each is scripts/paper_dry_runs.sh.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modgap.config import load_config, merge_overlay, validate_config
from modgap.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((PROJECT_ROOT / "config/paper").glob("*.yaml"))
TABLES = {
    "ra-table1": {"identity": "image", "c3": "image", "realign": "image"},
    "ra-table2": {"image": "image", "unicorn": "image", "realign": "image"},
    "aa-table1": {m: m for m in ("identity", "unicorn", "c3", "realign", "anisoalign")},
    "aa-table2": {"identity": "image", "c3": "image", "realign": "image", "anisoalign": "image"},
}
SUITE = {"mme", "mmstar", "scienceqa_img", "realworldqa", "mmmu_val", "mmmu_pro_standard", "visulogic"}
SUITE |= {"logicvista_reasoning", "crpe_relation", "pope"}


def merged(path):
    return merge_overlay(load_config(PROJECT_ROOT / "config/config.yaml"), yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_every_paper_config_validates(path, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    validate_config(merged(path))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_table_config_trains_its_rows_with_the_paper_stack(table, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    config = merged(PROJECT_ROOT / f"config/paper/{table}.yaml")
    rows = {
        config["mllm"]["regimes"][r]["stage1"]: config["mllm"]["regimes"][r]["stage2"]
        for r in config["mllm"]["run_regimes"]
    }
    assert rows == TABLES[table]
    (run,) = config["runs"]
    encoder = config["encoders"][run["encoder"]]
    assert encoder["backend"] == "llm2clip" and encoder["hf"]["embed_dim"] == 1280
    assert encoder["hf"]["text_max_length"] == 512 and len(encoder["pretrained"]) == 40
    assert config["mllm"]["preset"] == "paper-8gpu-bunny"
    assert config["mllm"]["accelerate_config"] == "config/accelerate/8gpu-deepspeed.yaml"
    assert set(config["eval"]["lmms_eval"]["tasks"]) == SUITE
    assert config["resources"]["rules"]["mllm_stage1"]["gpu"] == 8


def test_run_regimes_must_name_regimes(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    config = merged(PROJECT_ROOT / "config/paper/ra-table1.yaml")
    config["mllm"]["run_regimes"] = ["revision-realign", "revision-nope"]
    with pytest.raises(ConfigError, match=r"mllm\.run_regimes: \['revision-nope'\] are not keys of mllm\.regimes"):
        validate_config(config)


def test_the_extraction_rule_gets_the_hf_section_as_one_json_argument():
    import json
    import shlex

    from modgap.embed.spec import backend_options_arg

    encoder = yaml.safe_load((PROJECT_ROOT / "config/paper/aa-table1.yaml").read_text())["encoders"]
    (spec,) = encoder.values()
    flag, value = shlex.split(backend_options_arg(spec))
    assert flag == "--backend-options" and json.loads(value) == spec["hf"]
    assert backend_options_arg({"model": "ViT-L-14-336", "pretrained": "openai"}) == ""
