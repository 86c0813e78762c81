"""`modgap eval suite` + `modgap eval run` end to end on a tiny random-init MLLM (real decoding path,
trained for one step so the stage folder is complete), including the base-LLM blind baseline (B1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modgap.cli import main
from modgap.evaluation.io import read_jsonl
from modgap.mllm.config import load_config
from modgap.mllm.testing import make_fake_inputs, make_tiny_llm, tiny_config
from modgap.mllm.train import train_stage

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stage2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-cli")
    llm = make_tiny_llm(root / "llm")
    paths = make_fake_inputs(root / "data", n_train=16, n_test=12)
    cfg = load_config(tiny_config(llm, max_steps=1))
    out = root / "stage2"
    train_stage(
        cfg,
        2,
        out_dir=out,
        manifest=paths["manifest"],
        embeddings_root=paths["embeddings_root"],
        substitutes=paths["substitutes"],
    )
    return {"stage": out, **paths}


@pytest.fixture(scope="module")
def suite(stage2: dict[str, Path]) -> Path:
    out = stage2["stage"].parent / "suite.jsonl"
    params = json.dumps(
        {"caption_items": 4, "pope_items": 4, "choice_items": 2, "pope_negatives": ["random", "popular"]}
    )
    assert main(["eval", "suite", "--manifest", str(stage2["manifest"]), "--params", params, "--out", str(out)]) == 0
    return out


def test_run_writes_per_sample_log_and_scores(stage2, suite, tmp_path):
    prefix = tmp_path / "image"
    args = [
        "eval",
        "run",
        "--model-dir",
        str(stage2["stage"]),
        "--suite",
        str(suite),
        "--condition",
        "image",
        "--embeddings-root",
        str(stage2["embeddings_root"]),
        "--out-prefix",
        str(prefix),
        "--bootstrap",
        "100",
        "--max-new-tokens",
        json.dumps({"caption": 3, "pope": 2, "choice": 2}),
    ]
    assert main(args) == 0
    records = read_jsonl(f"{prefix}.jsonl")
    assert len(records) == 4 + 4 * 3 + 2 * 4
    assert all({"uid", "output", "parsed", "correct", "question", "answer"} <= set(r) for r in records)
    scores = json.loads(Path(f"{prefix}.json").read_text())
    assert scores["meta"]["condition"] == "image" and scores["meta"]["decoding"] == "greedy"
    assert set(scores["scores"]) == {
        "caption",
        "pope",
        "choice",
        "avg",
        "parse_rate",
        "free_parse_rate",
        "free_agreement",
    }
    assert 0.0 <= scores["scores"]["avg"] <= 1.0
    # constrained scoring (the default) through the real model: every POPE/MC answer is an option
    assert scores["meta"]["scoring"] == "constrained" and scores["scores"]["parse_rate"] == 1.0
    rule_scored = [r for r in records if r["task"] in ("pope", "choice")]
    assert all(r["parsed"] in ("yes", "no", "A", "B", "C", "D") for r in rule_scored)


def test_base_llm_blind_baseline(stage2, suite, tmp_path):
    prefix = tmp_path / "base"
    args = [
        "eval",
        "run",
        "--model-dir",
        str(stage2["stage"]),
        "--kind",
        "base-llm",
        "--suite",
        str(suite),
        "--tasks",
        "pope,choice",
        "--condition",
        "blind",
        "--out-prefix",
        str(prefix),
        "--bootstrap",
        "100",
        "--max-new-tokens",
        json.dumps({"pope": 2, "choice": 2}),
    ]
    assert main(args) == 0
    assert json.loads(Path(f"{prefix}.json").read_text())["meta"]["kind"] == "base-llm"


def test_run_errors_are_one_line(stage2, suite, tmp_path, capsys):
    args = [
        "eval",
        "run",
        "--model-dir",
        str(stage2["stage"]),
        "--kind",
        "base-llm",
        "--suite",
        str(suite),
        "--condition",
        "image",
        "--embeddings-root",
        str(stage2["embeddings_root"]),
        "--out-prefix",
        str(tmp_path / "x"),
    ]
    assert main(args) == 2
    assert "only --condition blind" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "run",
                "--model-dir",
                str(tmp_path),
                "--suite",
                str(suite),
                "--condition",
                "blind",
                "--out-prefix",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "DONE.json" in capsys.readouterr().err
    assert not list(tmp_path.glob("y*"))  # nothing half-written
