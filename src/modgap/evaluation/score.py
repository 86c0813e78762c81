"""Per-benchmark scores of one model × visual condition, from its per-sample records.

A record is a dict with the :class:`~modgap.evaluation.suite.BenchItem` fields plus ``output``
(the decoded text), ``parsed`` (the parsed answer or None) and ``correct``.

Average ("avg"): the unweighted mean of the per-benchmark accuracies, as the papers average their
benchmarks: POPE (mean over the negative strategies) and multiple choice (circular). Captioning is
reported beside it, not in it ([spec] §11.4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modgap.evaluation.answers import binary_metrics, bootstrap_ci, parse_choice, parse_yes_no
from modgap.evaluation.text_metrics import bleu, cider_d, mentions


def parse_record(task: str, output: str, options: Sequence[str]) -> str | None:
    if task == "pope":
        return parse_yes_no(output)
    if task == "choice":
        return parse_choice(output, options)
    return output.strip()


def is_correct(task: str, parsed: str | None, answer: str) -> bool:
    if task == "caption" or parsed is None:
        return False
    return parsed.lower() == answer.lower()


def score_records(records: Sequence[Mapping[str, Any]], *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_task[r["task"]].append(r)
    out: dict[str, Any] = {}
    if by_task["caption"]:
        out["caption"] = _caption(by_task["caption"], resamples, seed)
    if by_task["pope"]:
        out["pope"] = _pope(by_task["pope"], resamples, seed)
    if by_task["choice"]:
        out["choice"] = _choice(by_task["choice"], resamples, seed)
    accuracies = [out["pope"]["accuracy"]] if "pope" in out else []
    accuracies += [out["choice"]["circular_accuracy"]] if "choice" in out else []
    out["avg"] = float(np.mean(accuracies)) if accuracies else None
    out["parse_rate"] = parse_rate(by_task["pope"] + by_task["choice"])
    out["free_parse_rate"] = parse_rate(by_task["pope"] + by_task["choice"], key="parsed_free")
    return out


def parse_rate(records: Sequence[Mapping[str, Any]], key: str = "parsed") -> float | None:
    """Share of rule-scored answers (POPE, MC) that are readable: below ~0.9 an accuracy mostly counts
    unparsed answers as wrong, so a claim built on it is not measurable. ``key='parsed_free'``: the
    rule parse of the greedy text under constrained scoring (falls back to ``parsed``)."""
    if not records:
        return None
    return float(np.mean([r.get(key, r["parsed"]) is not None for r in records]))


def _caption(rows: Sequence[Mapping[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
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


def _pope(rows: Sequence[Mapping[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
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
    return out


def _choice(rows: Sequence[Mapping[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
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
        "n_items": len(groups),
        "rotations": rotations,
    }
