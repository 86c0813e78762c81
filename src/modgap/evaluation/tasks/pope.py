"""POPE-style yes/no object presence: per image one positive question and one negative per strategy.

Strategies: ``random``; ``popular`` (the most frequent training label the image lacks);
``adversarial`` (the absent label nearest the asked positive in the encoder's text space). Each
strategy's subset (the positives plus its negatives) is balanced 50/50 and scored on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from modgap.errors import ConfigError
from modgap.evaluation.answers import binary_metrics, bootstrap_ci, parse_yes_no
from modgap.evaluation.items import BenchItem, image_rng
from modgap.evaluation.tasks import register_task
from modgap.evaluation.tasks.base import Record, SuiteContext, Task
from modgap.mllm.instructions import PHRASINGS

NEGATIVE_STRATEGIES = ("random", "popular", "adversarial")
YES_NO = ("yes", "no")


@register_task
class Pope(Task):
    name = "pope"
    order = 20
    defaults: ClassVar[dict[str, Any]] = {"pope_items": 150, "pope_negatives": list(NEGATIVE_STRATEGIES)}
    max_new_tokens = 4
    rule_scored = True
    average_key = "accuracy"

    def check_params(self, params: Mapping[str, Any], has_similarity: bool) -> None:
        bad = sorted(set(params["pope_negatives"]) - set(NEGATIVE_STRATEGIES))
        if bad:
            raise ConfigError(f"eval.suite.pope_negatives: unknown strategy {bad}; known: {list(NEGATIVE_STRATEGIES)}")
        if "adversarial" in params["pope_negatives"] and not has_similarity:
            raise ConfigError("eval.suite.pope_negatives: 'adversarial' needs label embeddings (an encoder)")

    def build(self, ctx: SuiteContext) -> list[BenchItem]:
        items: list[BenchItem] = []
        for img in ctx.labelled[: ctx.params["pope_items"]]:
            items += self._image_items(img, ctx)
        return items

    def _image_items(self, img: Mapping[str, Any], ctx: SuiteContext) -> list[BenchItem]:
        rng = image_rng(ctx.params["seed"], f"pope\0{img['id']}")
        template = PHRASINGS["eval"]["yesno"][0]
        present = set(img["labels"])
        absent = [lab for lab in ctx.vocabulary if lab not in present]
        positive = img["labels"][int(rng.integers(len(img["labels"])))]
        random_negative = absent[int(rng.integers(len(absent)))] if absent else None

        def item(variant: str, label: str, answer: str) -> BenchItem:
            return BenchItem(
                f"pope/{variant}/{img['id']}",
                "pope",
                img["id"],
                template.format(label=label),
                answer,
                variant=variant,
                group=img["id"],
                labels=(label,),
            )

        out = [item("positive", positive, "Yes")]
        for strategy in ctx.params["pope_negatives"]:
            if not absent:
                break
            if strategy == "random":
                negative = random_negative
            elif strategy == "popular":
                negative = next(lab for lab in ctx.popular if lab not in present)
            else:
                assert ctx.similarity is not None
                negative = absent[int(np.argmax(ctx.similarity(positive, absent)))]
            out.append(item(strategy, str(negative), "No"))
        return out

    def parse(self, output: str, options: Sequence[str]) -> str | None:
        return parse_yes_no(output)

    def options(self, item_options: Sequence[str]) -> tuple[str, ...]:
        return YES_NO

    def summary_key(self, item: BenchItem) -> str:
        return f"pope/{item.variant}"

    def score(self, rows: Sequence[Record], resamples: int, seed: int) -> dict[str, Any]:
        positives = [r for r in rows if r["variant"] == "positive"]
        strategies = sorted({r["variant"] for r in rows} - {"positive"})
        out: dict[str, Any] = {}
        for strategy in strategies:
            subset = positives + [r for r in rows if r["variant"] == strategy]
            metrics = binary_metrics([r["parsed"] for r in subset], [r["answer"] for r in subset])
            metrics["accuracy_ci"] = bootstrap_ci([r["correct"] for r in subset], resamples=resamples, seed=seed)
            out[strategy] = metrics
        out["accuracy"] = float(np.mean([out[s]["accuracy"] for s in strategies])) if strategies else None
        out["f1"] = float(np.mean([out[s]["f1"] for s in strategies])) if strategies else None
        # Answer bias: the mean over strategies of each balanced set's yes share (0.5 when unbiased).
        out["yes_ratio"] = float(np.mean([out[s]["yes_ratio"] for s in strategies])) if strategies else None
        return out

    def summary(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        score = score or {}
        return {
            "pope_accuracy": score.get("accuracy"),
            "pope_f1": score.get("f1"),
            "pope_yes_ratio": score.get("yes_ratio"),
        }

    def detail(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        score = score or {}
        row = {}
        for strategy in NEGATIVE_STRATEGIES:
            row[f"pope_{strategy}_accuracy"] = (score.get(strategy) or {}).get("accuracy")
            row[f"pope_{strategy}_yes_ratio"] = (score.get(strategy) or {}).get("yes_ratio")
        return row

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "POPE rand": row.get("pope_random_accuracy"),
            "POPE pop": row.get("pope_popular_accuracy"),
            "POPE adv": row.get("pope_adversarial_accuracy"),
            "POPE F1": row.get("pope_f1"),
        }

    def units(self, records: Sequence[Record]) -> dict[str, dict[str, bool]]:
        """``pope_<strategy>``: the shared positives plus that strategy's negatives, by question uid."""
        pope = [r for r in records if r["task"] == "pope"]
        return {
            f"pope_{s}": {r["uid"]: bool(r["correct"]) for r in pope if r["variant"] in ("positive", s)}
            for s in sorted({r["variant"] for r in pope} - {"positive"})
        }

    def test_columns(self, mcnemar: Mapping[str, Any]) -> dict[str, Any]:
        return {"p vs No Align (POPE rand)": (mcnemar.get("pope_random") or {}).get("p_value")}

    def image_outcomes(self, records: Sequence[Record]) -> dict[str, Any]:
        """Per image: {strategy: [correct of its positive, of that strategy's negative]}."""
        by_uid = {r["uid"]: r for r in records}
        out: dict[str, dict[str, list[bool]]] = {}
        for unit, outcomes in self.units(records).items():
            for uid, correct in outcomes.items():
                out.setdefault(by_uid[uid]["image_id"], {}).setdefault(unit, []).append(correct)
        return out

    def average_of(self, outcomes: Sequence[Any]) -> float | None:
        """POPE accuracy over these images: the mean over strategies of each balanced set's accuracy."""
        strategies = sorted({s for o in outcomes for s in o})
        if not strategies:
            return None
        return float(np.mean([np.mean([c for o in outcomes for c in o.get(s, [])]) for s in strategies]))
