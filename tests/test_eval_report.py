"""The evaluation report: regime table, Stage-1 probe, paper tables with reference columns, metrics JSON."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import modgap.mllm.generate as generate_module
from _eval_fixtures import FakeMLLM, fake_generate, manifest, word_similarity
from modgap.cli import main
from modgap.evaluation.io import write_jsonl
from modgap.evaluation.runner import run_items
from modgap.evaluation.score import score_records
from modgap.evaluation.suite import build_suite
from modgap.evaluation.tables import paper_tables
from modgap.io import write_json_atomic

REGIMES = {
    "revision-identity": {"stage1": "identity", "stage2": "image"},
    "revision-realign": {"stage1": "realign", "stage2": "image"},
}


def _write_scores(root, model, condition, answer, tasks=("caption", "pope", "choice")):
    items = [
        i
        for i in build_suite(
            manifest(), params={"caption_items": 6, "pope_items": 8, "choice_items": 4}, similarity=word_similarity
        )
        if i.task in tasks
    ]
    records = run_items(FakeMLLM(answer), items, None)
    prefix = root / "enc" / "ds" / "llm" / model / condition
    write_jsonl(f"{prefix}.jsonl", records)
    write_json_atomic(f"{prefix}.json", {"meta": {}, "scores": score_records(records, resamples=200)})


@pytest.fixture
def eval_root(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_module, "generate", fake_generate)
    root = tmp_path / "eval"
    _write_scores(root, "revision-identity", "image", lambda q, e: "no")
    _write_scores(root, "revision-identity", "blind", lambda q, e: "no", ("pope", "choice"))
    _write_scores(root, "revision-realign", "image", lambda q, e: "yes")
    _write_scores(root, "revision-realign", "blind", lambda q, e: "B", ("pope", "choice"))
    _write_scores(root, "stage1-realign", "image", lambda q, e: "a picture of thing1", ("caption",))
    _write_scores(root, "base-llm", "blind", lambda q, e: "maybe", ("pope", "choice"))
    align = tmp_path / "align" / "enc"
    align.mkdir(parents=True)
    (align / "ds.json").write_text(json.dumps({"methods": {"realign": {"delta_mu": 0.05, "M_X": 0.3}}}))
    return tmp_path


def _report_args(eval_root):
    """`modgap eval report` over the fixture's scores, writing under ``eval_root``."""
    return [
        "eval",
        "report",
        "--runs",
        json.dumps([{"encoder": "enc", "dataset": "ds"}]),
        "--regimes",
        json.dumps(REGIMES),
        "--llm",
        "llm",
        "--eval-root",
        str(eval_root / "eval"),
        "--align-metrics-root",
        str(eval_root / "align"),
        "--metrics-out",
        str(eval_root / "eval.json"),
        "--tables-dir",
        str(eval_root / "tables"),
        "--figure-prefix",
        str(eval_root / "fig"),
    ]


def test_report_writes_regimes_probe_and_paper_tables(eval_root):
    args = _report_args(eval_root)
    assert main(args) == 0
    metrics = json.loads((eval_root / "eval.json").read_text())["enc"]["ds"]
    identity = metrics["regimes"]["revision-identity"]
    assert identity["pope_accuracy"] == 0.5 and identity["blind_gap"] == 0.0
    realign = metrics["regimes"]["revision-realign"]
    assert realign["mcnemar"]["reference"] == "revision-identity"
    # per POPE strategy: its balanced set (8 positives + 8 negatives), and one circular outcome per image
    assert realign["mcnemar"]["pope_random"]["a_only"] + realign["mcnemar"]["pope_random"]["b_only"] == 16
    assert set(realign["mcnemar"]) == {"reference", "pope_random", "pope_popular", "pope_adversarial", "choice"}
    assert realign["geometry"]["delta_mu"] == 0.05
    assert metrics["probes"]["realign"]["geometry"]["M_X"] == 0.3
    assert metrics["base_llm"]["pope_accuracy"] == 0.0  # "maybe" is unparseable: wrong, not chance
    # the parse rate of every model and condition is reported, so claims built on "maybe" are gated
    assert metrics["base_llm"]["parse_rate"] == 0.0
    # 32 POPE questions and 16 MC rotations: "yes" parses on POPE only, "B" on MC only
    assert realign["parse_rate"] == pytest.approx(2 / 3) and realign["blind_parse_rate"] == pytest.approx(1 / 3)
    # "yes" to everything: POPE 0.5 on every resample, circular MC 0 -> the average is exactly 0.25
    assert realign["avg_ci_low"] == realign["avg_ci_high"] == 0.25 and realign["avg_ci_halfwidth"] == 0.0
    assert "blind_avg_ci_halfwidth" in realign

    tables = eval_root / "tables" / "enc" / "ds"
    table1 = pd.read_csv(tables / "ra_table1.csv")
    assert list(table1["method"]) == ["Blind", "No Align", "C3 Align", "ReVision (ReAlign)"]
    assert table1.loc[3, "our model"] == "revision-realign" and table1.loc[3, "paper Avg"] == 50.16
    assert table1.loc[2, "our model"].startswith("not run")  # no C3 regime configured
    assert pd.isna(table1.loc[2, "Avg (ours, %)"])
    assert "second, larger Stage-1 caption set" in pd.read_csv(tables / "ra_table2.csv").loc[3, "our model"]
    for key in paper_tables()["tables"]:
        for ext in ("md", "csv", "tex"):
            assert (tables / f"{key}.{ext}").is_file()
    reference = pd.read_csv(eval_root / "tables" / "paper_reference.csv")
    assert reference.loc[reference["method"] == "ReVision-2M", "Avg"].item() == 49.75
    assert (eval_root / "fig.png").is_file() and (eval_root / "fig.pdf").is_file()


def test_paper_tables_have_full_rows():
    data = paper_tables()
    for table in data["tables"].values():
        for row in table["rows"]:
            assert len(row["paper"]) == len(data["columns"]), row["label"]
            assert ("match" in row) != ("missing" in row), row["label"]


def test_lmms_eval_results_become_a_table(eval_root):
    stage = eval_root / "eval" / "enc" / "ds" / "llm" / "revision-realign"
    (stage / "lmms_eval.json").write_text(
        json.dumps(
            {
                "harness": {"lmms_eval": "0.7.3"},
                "results": {"pope": {"alias": "pope", "pope_accuracy,none": 0.71, "pope_accuracy_stderr,none": 0.01}},
            }
        )
    )
    (stage / "lmms_eval_blind.json").write_text(json.dumps({"results": {"pope": {"pope_accuracy,none": 0.5}}}))
    args = _report_args(eval_root)
    assert main(args) == 0
    table = pd.read_csv(eval_root / "tables" / "enc" / "ds" / "lmms_eval.csv")
    assert set(zip(table["condition"], table["value"], strict=True)) == {("image", 0.71), ("blind", 0.5)}
    metrics = json.loads((eval_root / "eval.json").read_text())["enc"]["ds"]["lmms_eval"]
    assert metrics["revision-realign"]["image"]["pope"]["pope_accuracy"] == 0.71


def test_avg_interval_matches_the_score_and_counts_redrawn_images_twice(monkeypatch):
    from modgap.evaluation.tables import _average, _per_image, avg_interval

    monkeypatch.setattr(generate_module, "generate", fake_generate)
    items = build_suite(
        manifest(), params={"caption_items": 0, "pope_items": 8, "choice_items": 6}, similarity=word_similarity
    )
    choice = {i.question: i for i in items if i.task == "choice"}
    knows = sorted({i.image_id for i in choice.values()})[::2]  # right on every rotation for half the images

    def answer(question, embedding):
        item = choice.get(question)
        return "yes" if item is None else item.answer if item.image_id in knows else "Z"

    records = run_items(FakeMLLM(answer), items, None)
    images = _per_image(records)
    assert _average(list(images.values())) == pytest.approx(score_records(records)["avg"])
    # an image drawn twice weighs twice: duplicate one circular-MC image that is right
    right = next(img for img in images.values() if img.get("choice"))
    wrong = [img for img in images.values() if img.get("choice") is False]
    assert _average([right, right, *wrong]) > _average([right, *wrong])
    ci = avg_interval(records, resamples=300)
    assert ci["avg_ci_low"] <= score_records(records)["avg"] <= ci["avg_ci_high"]


def test_lmms_results_keep_numpy_scalars_numeric():
    import numpy as np

    from modgap.evaluation.lmms_run import _plain

    plain = _plain({"pope": {"acc,none": np.float32(0.5), "n": np.int64(3), "when": object}})
    assert plain["pope"]["acc,none"] == 0.5 and plain["pope"]["n"] == 3 and isinstance(plain["pope"]["when"], str)
