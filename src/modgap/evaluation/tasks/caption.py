"""Captioning: CIDEr-D and BLEU-4 against every human caption of the image, category-mention recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from modgap.evaluation.answers import bootstrap_ci
from modgap.evaluation.items import BenchItem
from modgap.evaluation.tasks import register_task
from modgap.evaluation.tasks.base import Record, SuiteContext, Task
from modgap.evaluation.text_metrics import bleu, cider_d, mentions
from modgap.mllm.instructions import PHRASINGS


@register_task
class Caption(Task):
    name = "caption"
    order = 10
    defaults: ClassVar[dict[str, Any]] = {"caption_items": 150}
    max_new_tokens = 24

    def build(self, ctx: SuiteContext) -> list[BenchItem]:
        question = PHRASINGS["eval"]["caption"][0]
        return [
            BenchItem(
                f"caption/{img['id']}",
                "caption",
                img["id"],
                question,
                img["references"][0],
                group=img["id"],
                references=tuple(img["references"]),
                labels=tuple(img["labels"]),
            )
            for img in ctx.images[: ctx.params["caption_items"]]
        ]

    def is_correct(self, parsed: str | None, answer: str) -> bool:
        return False  # scored by CIDEr-D / BLEU against every reference, not by one answer

    def score(self, rows: Sequence[Record], resamples: int, seed: int) -> dict[str, Any]:
        candidates = {r["uid"]: r["output"] for r in rows}
        references = {r["uid"]: list(r["references"]) for r in rows}
        cider, per_item = cider_d(candidates, references)
        mention = [mentions(r["output"], r["labels"]) for r in rows if r["labels"]]
        return {
            "cider_d": cider,
            "cider_d_ci": bootstrap_ci(list(per_item.values()), resamples=resamples, seed=seed),
            "bleu4": bleu(candidates, references),
            "mention_recall": float(np.mean(mention)) if mention else None,
            "empty": float(np.mean([not r["output"].strip() for r in rows])),
            "n": len(rows),
        }

    def summary(self, score: Mapping[str, Any] | None) -> dict[str, Any]:
        score = score or {}
        return {f"caption_{k}": score.get(k) for k in ("cider_d", "bleu4", "mention_recall")}

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"CIDEr-D": row.get("caption_cider_d"), "BLEU-4": row.get("caption_bleu4")}
