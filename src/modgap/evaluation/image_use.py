"""Does a model use its image? The same model with real images against shuffled ones (B3).

"Blind" (no visual tokens) changes the prompt itself: a model trained with visual tokens, or a frozen
base LLM, answers blind prompts in another format, so image − blind mixes image use with answer
format (a frozen-LLM run scored +0.17 over blind purely from format). A shuffled image keeps prompt,
format and visual-token statistics and takes away only the match between image and question, so
image − shuffled is the measure of image use reported here:
- POPE: accuracy difference (mean over negative strategies, as reported), exact McNemar test on the
  paired questions;
- multiple choice: circular accuracy difference, McNemar on the paired per-image circular outcomes;
- captions: category-mention recall and CIDEr-D differences with a paired percentile bootstrap
  interval over images (the Stage-1 gate uses these on the Stage-1 probe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import bootstrap

from modgap.evaluation.answers import mcnemar
from modgap.evaluation.text_metrics import cider_d, mentions

Record = Mapping[str, Any]


def paired_interval(
    a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Mean of a − b over their shared keys and its percentile bootstrap interval (keys resampled)."""
    keys = sorted(set(a) & set(b))
    diff = np.array([a[k] - b[k] for k in keys], dtype=np.float64)
    if diff.size == 0:
        return {"difference": None, "ci": None, "halfwidth": None, "n": 0}
    if diff.size < 2 or np.all(diff == diff[0]):  # no spread: the interval is the point
        return {"difference": float(diff.mean()), "ci": [float(diff[0])] * 2, "halfwidth": 0.0, "n": int(diff.size)}
    res = bootstrap(
        (diff,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile", random_state=seed
    )
    ci = res.confidence_interval
    low, high = float(ci.low), float(ci.high)
    return {"difference": float(diff.mean()), "ci": [low, high], "halfwidth": (high - low) / 2, "n": int(diff.size)}


def _by_uid(records: Sequence[Record], task: str) -> dict[str, Record]:
    return {r["uid"]: r for r in records if r["task"] == task}


def pope_use(image: Sequence[Record], shuffled: Sequence[Record]) -> dict[str, Any] | None:
    a, b = _by_uid(image, "pope"), _by_uid(shuffled, "pope")
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    return {
        "image": _pope_accuracy([a[k] for k in keys]),
        "shuffled": _pope_accuracy([b[k] for k in keys]),
        **mcnemar([a[k]["correct"] for k in keys], [b[k]["correct"] for k in keys]),
        "n": len(keys),
    }


def _pope_accuracy(records: Sequence[Record]) -> float:
    """Mean over negative strategies of each balanced set's accuracy (shared positives + that
    strategy's negatives), as the POPE task reports it."""
    positives = [bool(r["correct"]) for r in records if r["variant"] == "positive"]
    strategies = sorted({r["variant"] for r in records} - {"positive"})
    per_strategy = [np.mean(positives + [bool(r["correct"]) for r in records if r["variant"] == s]) for s in strategies]
    return float(np.mean(per_strategy))


def choice_use(image: Sequence[Record], shuffled: Sequence[Record]) -> dict[str, Any] | None:
    a, b = _circular(image), _circular(shuffled)
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    return {
        "image": float(np.mean([a[k] for k in keys])),
        "shuffled": float(np.mean([b[k] for k in keys])),
        **mcnemar([a[k] for k in keys], [b[k] for k in keys]),
        "n": len(keys),
    }


def _circular(records: Sequence[Record]) -> dict[str, bool]:
    """{image: every rotation right}."""
    groups: dict[str, list[bool]] = {}
    for r in records:
        if r["task"] == "choice":
            groups.setdefault(r["group"], []).append(bool(r["correct"]))
    return {g: all(v) for g, v in groups.items()}


def caption_use(
    image: Sequence[Record], shuffled: Sequence[Record], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any] | None:
    """Mention recall and CIDEr-D, real vs shuffled images, with paired intervals of the differences."""
    a, b = _by_uid(image, "caption"), _by_uid(shuffled, "caption")
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    out: dict[str, Any] = {"n": len(keys)}
    labelled = [k for k in keys if a[k]["labels"]]
    recall_a = {k: float(mentions(str(a[k]["output"]), a[k]["labels"])) for k in labelled}
    recall_b = {k: float(mentions(str(b[k]["output"]), b[k]["labels"])) for k in labelled}
    out["mention_recall"] = {
        "image": float(np.mean(list(recall_a.values()))) if labelled else None,
        "shuffled": float(np.mean(list(recall_b.values()))) if labelled else None,
        **paired_interval(recall_a, recall_b, resamples=resamples, seed=seed),
    }
    refs = {k: list(a[k]["references"]) for k in keys}
    cider_a, per_a = cider_d({k: str(a[k]["output"]) for k in keys}, refs)
    cider_b, per_b = cider_d({k: str(b[k]["output"]) for k in keys}, refs)
    out["cider_d"] = {
        "image": cider_a,
        "shuffled": cider_b,
        **paired_interval(per_a, per_b, resamples=resamples, seed=seed),
    }
    return out


def image_use(
    image: Sequence[Record], shuffled: Sequence[Record], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Every task's image − shuffled comparison that both record sets allow."""
    parts = {
        "pope": pope_use(image, shuffled),
        "choice": choice_use(image, shuffled),
        "caption": caption_use(image, shuffled, resamples=resamples, seed=seed),
    }
    return {k: v for k, v in parts.items() if v is not None}


def stage1_gate(caption: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Stage-1 gate: captions from real images name the image's category more often and match its
    references better (CIDEr-D) than captions from shuffled images, both with the 95 % interval of
    the paired difference above 0. ``passed`` is None when the comparison could not be made."""
    if not caption:
        return {"passed": None, "reason": "no shuffled-image probe"}
    lows = {m: (caption[m].get("ci") or [None])[0] for m in ("mention_recall", "cider_d")}
    if any(v is None for v in lows.values()):
        return {"passed": None, "reason": "no interval"}
    return {"passed": all(v > 0 for v in lows.values()), "ci_low": lows}
