"""The benchmark-task registry: one contract every task meets, and a task added from this file alone.

The ``Count`` task below is defined here, registered by a fixture and removed after: it flows through
the suite, the runner (free and constrained scoring), the scorer and average, the regime table and
the config check without any other module naming it, which is the point of the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from _eval_fixtures import FakeMLLM, manifest, word_similarity
from modgap.config import load_config, merge_overlay, validate_config
from modgap.errors import ConfigError
from modgap.evaluation.items import BenchItem
from modgap.evaluation.runner import max_new_tokens_defaults, run_items
from modgap.evaluation.score import score_records
from modgap.evaluation.spec import check_config, tasks_for
from modgap.evaluation.suite import COMMON_DEFAULTS, build_suite, suite_defaults, suite_summary
from modgap.evaluation.tables import _regime_frame, regime_summary
from modgap.evaluation.tasks import get_task, register_task, registered_tasks, task_names, unregister_task
from modgap.evaluation.tasks.base import SuiteContext, Task

PARAMS = {"caption_items": 5, "pope_items": 6, "choice_items": 4}


class Count(Task):
    """How many labels does the image carry, 1 or 2? (A rule-scored two-option task.)"""

    name = "count"
    order = 40
    defaults: ClassVar[dict[str, Any]] = {"count_items": 5}
    max_new_tokens = 2
    rule_scored = True
    average_key = "accuracy"

    def build(self, ctx: SuiteContext) -> list[BenchItem]:
        return [
            BenchItem(
                f"count/{img['id']}",
                "count",
                img["id"],
                f"How many objects are in {img['id']}? Answer 1 or 2.",
                str(min(len(img["labels"]), 2)),
                group=img["id"],
                options=("1", "2"),
            )
            for img in ctx.labelled[: ctx.params["count_items"]]
        ]

    def parse(self, output: str, options: Sequence[str]) -> str | None:
        return next((o for o in options if o in output), None)

    def options(self, item_options: Sequence[str]) -> tuple[str, ...]:
        return tuple(item_options)

    def score(self, rows, resamples, seed) -> dict[str, Any]:
        return {"accuracy": float(np.mean([r["correct"] for r in rows])), "n": len(rows)}

    def summary(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"count_accuracy": (score or {}).get("accuracy")}

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"Count acc": row.get("count_accuracy")}

    def units(self, records):
        return {"count": {r["uid"]: bool(r["correct"]) for r in records if r["task"] == "count"}}

    def image_outcomes(self, records):
        return {r["image_id"]: bool(r["correct"]) for r in records if r["task"] == "count"}

    def average_of(self, outcomes):
        return float(np.mean(outcomes)) if outcomes else None


@pytest.fixture
def count_task():
    register_task(Count)
    yield get_task("count")
    unregister_task("count")


def _suite(**extra):
    return build_suite(manifest(), params={**PARAMS, **extra}, similarity=word_similarity)


@pytest.mark.parametrize("task", registered_tasks(), ids=lambda t: t.name)
def test_every_registered_task_meets_the_contract(task):
    items = [i for i in _suite() if i.task == task.name]
    assert items, f"{task.name}: builds no item at the test sizes"
    assert all(i.task == task.name for i in items)
    others = [k for t in registered_tasks() if t is not task for k in t.defaults]
    assert set(task.defaults) <= set(suite_defaults()) and not set(task.defaults) & {*others, *COMMON_DEFAULTS}
    assert max_new_tokens_defaults()[task.name] == task.max_new_tokens >= 1
    records = [{**i.to_json(), "output": i.answer, "parsed": task.parse(i.answer, i.options)} for i in items]
    for r in records:
        r["correct"] = task.is_correct(r["parsed"], r["answer"])
    score = task.score(records, 50, 0)
    if task.rule_scored:  # the right answer, as text, parses to itself, is correct, and is a choosable option
        assert task.average_key in score and score[task.average_key] == 1.0
        assert all(r["correct"] for r in records)
        assert all(r["parsed"].lower() in {o.lower() for o in task.options(r["options"])} for r in records)
        assert task.average_of(list(task.image_outcomes(records).values())) == 1.0
        assert all(all(v.values()) for v in task.units(records).values())
    else:
        assert not task.average_key and not any(r["correct"] for r in records)
    assert set(task.table_columns(regime_summary({"image": {task.name: score}}))) <= set(
        _regime_frame(
            {
                "regimes": {
                    "r": {
                        "stage1": None,
                        "stage2": "image",
                        "geometry": {},
                        **regime_summary({"image": {task.name: score}}),
                    }
                }
            },
            {},
        ).columns
    )


def test_a_task_defined_in_a_test_runs_end_to_end(count_task, fake_generation):
    assert task_names() == ["caption", "pope", "choice", "count"]
    items = _suite(count_items=4)
    assert [i.task for i in items][-4:] == ["count"] * 4
    assert suite_summary(items)["by_task"]["count"] == 4
    assert "count_items" in suite_defaults()
    # the workflow's --tasks: every task with images, the rule-scored ones under controls and for the base LLM
    assert tasks_for("mllm_image") == "caption,pope,choice,count"
    assert tasks_for("mllm_control") == tasks_for("base") == "pope,choice,count"
    assert tasks_for("probe") == "caption"

    right = {i.question: i.answer for i in items if i.task == "count"}
    mllm = FakeMLLM(lambda q, e: right.get(q, "yes"))
    records = run_items(mllm, items, None)
    scores = score_records(records, resamples=50)
    assert scores["count"] == {"accuracy": 1.0, "n": 4}
    # the average now has three parts: POPE, circular MC and Count
    parts = [scores["pope"]["accuracy"], scores["choice"]["circular_accuracy"], 1.0]
    assert scores["avg"] == pytest.approx(np.mean(parts))
    row = regime_summary({"image": scores})
    assert row["count_accuracy"] == 1.0
    frame = _regime_frame({"regimes": {"r": {"stage1": None, "stage2": "image", "geometry": {}, **row}}}, {})
    assert frame["Count acc"].tolist() == [1.0]
    assert frame.columns.get_loc("Count acc") < frame.columns.get_loc("Avg")


def test_constrained_scoring_picks_among_a_new_tasks_options(count_task, fake_generation, monkeypatch):
    import modgap.evaluation.constrained as constrained

    seen = []

    def choose(mllm, embeddings, questions, options, **_):
        seen.append(options[0])
        return [o[-1] for o in options]

    monkeypatch.setattr(constrained, "choose", choose)
    items = [i for i in _suite(count_items=3) if i.task in ("count", "pope")]
    records = run_items(FakeMLLM(lambda q, e: "?"), items, None, scoring="constrained")
    assert ("1", "2") in seen and ("yes", "no") in seen
    assert {r["parsed"] for r in records if r["task"] == "count"} == {"2"}


def test_the_config_check_reads_the_registry(count_task):
    base = load_config("config/config.yaml")
    with_task = merge_overlay(base, {"eval": {"suite": {"count_items": 7}, "max_new_tokens": {"count": 3}}})
    validate_config(with_task)  # the task's own keys are accepted ...
    with pytest.raises(ConfigError, match=r"eval\.suite\.count_items: expected int"):
        check_config(merge_overlay(base, {"eval": {"suite": {"count_items": "many"}}}))
    unregister_task("count")  # ... and rejected, naming the key, once no task owns them
    with pytest.raises(ConfigError, match=r"eval\.suite\.count_items: unknown key"):
        validate_config(with_task)
    with pytest.raises(ConfigError, match=r"eval\.max_new_tokens\.count: not a benchmark task"):
        check_config(merge_overlay(base, {"eval": {"max_new_tokens": {"count": 3}}}))
    register_task(Count)


def test_a_task_name_can_be_registered_once(count_task):
    with pytest.raises(ConfigError, match="already registered"):
        register_task(Count)
