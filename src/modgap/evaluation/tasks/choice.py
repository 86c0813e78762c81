"""MMBench-style multiple choice: the true label among distractors, asked once per cyclic rotation.

Circular evaluation counts an image right only if every rotation of its options is answered right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from modgap.evaluation.answers import bootstrap_ci, parse_choice
from modgap.evaluation.items import BenchItem, image_rng
from modgap.evaluation.tasks import register_task
from modgap.evaluation.tasks.base import Record, SuiteContext, Task
from modgap.mllm.instructions import LETTERS, PHRASINGS, frequency_weights


@register_task
class Choice(Task):
    name = "choice"
    order = 30
    defaults: ClassVar[dict[str, Any]] = {"choice_items": 100, "choices": 4, "circular": True}
    max_new_tokens = 4
    rule_scored = True
    average_key = "circular_accuracy"

    def build(self, ctx: SuiteContext) -> list[BenchItem]:
        p = ctx.params
        vocabulary = set(ctx.vocabulary)
        eligible = [img for img in ctx.labelled if len(vocabulary - set(img["labels"])) >= p["choices"] - 1]
        items: list[BenchItem] = []
        for img in eligible[: p["choice_items"]]:
            items += self._image_items(img, ctx)
        return items

    def _image_items(self, img: Mapping[str, Any], ctx: SuiteContext) -> list[BenchItem]:
        p = ctx.params
        rng = image_rng(p["seed"], f"choice\0{img['id']}")
        template = PHRASINGS["eval"]["choice"][0]
        present = set(img["labels"])
        absent = [lab for lab in ctx.vocabulary if lab not in present]
        truth = img["labels"][int(rng.integers(len(img["labels"])))]
        weights = frequency_weights(absent, ctx.frequencies)
        # Distractors as frequent as true labels (sampled by training frequency): with uniform ones
        # "pick the most frequent option" scored 0.817 without looking at the image.
        distractors = [absent[i] for i in rng.choice(len(absent), size=p["choices"] - 1, replace=False, p=weights)]
        options = [truth, *distractors]
        options = [options[i] for i in rng.permutation(len(options))]
        rotations = range(len(options)) if p["circular"] else range(1)
        out = []
        for r in rotations:
            rotated = options[r:] + options[:r]
            lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(rotated))
            out.append(
                BenchItem(
                    f"choice/{r}/{img['id']}",
                    "choice",
                    img["id"],
                    template.format(options=lines),
                    LETTERS[rotated.index(truth)],
                    variant=str(r),
                    group=img["id"],
                    options=tuple(rotated),
                    labels=(truth,),
                )
            )
        return out

    def parse(self, output: str, options: Sequence[str]) -> str | None:
        return parse_choice(output, options)

    def options(self, item_options: Sequence[str]) -> tuple[str, ...]:
        return tuple(LETTERS[: len(item_options)])

    def score(self, rows: Sequence[Record], resamples: int, seed: int) -> dict[str, Any]:
        groups: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            groups[r["group"]].append(bool(r["correct"]))
        first = [bool(r["correct"]) for r in rows if r["variant"] == "0"]
        circular = [all(v) for v in groups.values()]
        rotations = max(len(v) for v in groups.values())
        return {
            "accuracy": float(np.mean(first)),
            "accuracy_all_rotations": float(np.mean([r["correct"] for r in rows])),
            "circular_accuracy": float(np.mean(circular)),
            "circular_accuracy_ci": bootstrap_ci(circular, resamples=resamples, seed=seed),
            "chance": 1.0 / len(rows[0]["options"]),
            "chance_circular": (1.0 / len(rows[0]["options"])) ** rotations,
            # Circular MC needs every rotation right: a model at plain accuracy p with rotation-independent
            # errors expects p^rotations (0.32^4 = 0.01), so 0/n circular at near-chance p is expected,
            # not a scoring bug; a model that knows an image's answer gets all its rotations right.
            "circular_expected_if_independent": float(np.mean([r["correct"] for r in rows])) ** rotations,
            "unparsed": float(np.mean([r["parsed"] is None for r in rows])),
            **position_bias(rows),
            "n_items": len(groups),
            "rotations": rotations,
        }

    def summary(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        score = score or {}
        return {
            "choice_accuracy": score.get("accuracy"),
            "choice_circular_accuracy": score.get("circular_accuracy"),
            "choice_position_bias": score.get("position_bias"),
        }

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"MC acc": row.get("choice_accuracy"), "MC circular": row.get("choice_circular_accuracy")}

    def units(self, records: Sequence[Record]) -> dict[str, dict[str, bool]]:
        """``choice``: one circular outcome per image (every rotation right)."""
        groups: dict[str, bool] = {}
        for r in records:
            if r["task"] == "choice":
                groups[r["group"]] = groups.get(r["group"], True) and bool(r["correct"])
        return {"choice": groups} if groups else {}

    def test_columns(self, mcnemar: Mapping[str, Any]) -> dict[str, Any]:
        return {"p vs No Align (MC circ.)": (mcnemar.get("choice") or {}).get("p_value")}

    def image_outcomes(self, records: Sequence[Record]) -> dict[str, Any]:
        return dict(self.units(records).get("choice", {}))

    def average_of(self, outcomes: Sequence[Any]) -> float | None:
        return float(np.mean(outcomes)) if len(outcomes) else None


def position_bias(rows: Sequence[Record]) -> dict[str, Any]:
    """How often each letter is chosen and is right: a model that always answers "D" has
    ``position_bias`` 1 - 1/k; a balanced suite has every ``truth_share`` near 1/k."""
    letters = LETTERS[: len(rows[0]["options"])]
    chosen = {x: float(np.mean([r["parsed"] == x for r in rows])) for x in letters}
    truth = {x: float(np.mean([r["answer"] == x for r in rows])) for x in letters}
    return {
        "chosen_share": chosen,
        "truth_share": truth,
        "position_bias": float(max(abs(v - 1.0 / len(letters)) for v in chosen.values())),
    }
