"""Per-benchmark scores of one model × visual condition, from its per-sample records.

A record is a dict with the :class:`~modgap.evaluation.items.BenchItem` fields plus ``output``
(the decoded text), ``parsed`` (the parsed answer or None) and ``correct``. Each registered task
(:mod:`modgap.evaluation.tasks`) parses and scores its own records.

Average ("avg"): the unweighted mean of the rule-scored tasks' accuracies, as the papers average their
benchmarks: POPE (mean over the negative strategies) and multiple choice (circular). Captioning is
reported beside it, not in it ([spec] §11.4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modgap.evaluation.tasks import get_task, registered_tasks, rule_scored_tasks


def parse_record(task: str, output: str, options: Sequence[str]) -> str | None:
    return get_task(task).parse(output, options)


def is_correct(task: str, parsed: str | None, answer: str) -> bool:
    return get_task(task).is_correct(parsed, answer)


def score_records(records: Sequence[Mapping[str, Any]], *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_task[r["task"]].append(r)
    out: dict[str, Any] = {}
    for task in registered_tasks():
        if by_task[task.name]:
            out[task.name] = task.score(by_task[task.name], resamples, seed)
    accuracies = [out[t.name][t.average_key] for t in rule_scored_tasks() if t.name in out]
    out["avg"] = float(np.mean(accuracies)) if accuracies else None
    scored = rule_scored_records(records)
    out["parse_rate"] = parse_rate(scored)
    out["free_parse_rate"] = parse_rate(scored, key="parsed_free")
    out["free_agreement"] = free_agreement(scored)
    return out


def rule_scored_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of rule-scored tasks (those a parse rate and the average are about), task by task."""
    names = [t.name for t in rule_scored_tasks()]
    return [r for name in names for r in records if r.get("task") == name]


def parse_rate(records: Sequence[Mapping[str, Any]], key: str = "parsed") -> float | None:
    """Share of rule-scored answers (POPE, MC) that are readable: below ~0.9 an accuracy mostly counts
    unparsed answers as wrong, so a claim built on it is not measurable. ``key='parsed_free'``: the
    rule parse of the greedy text under constrained scoring, over the items whose text was generated
    (the generation check); where no record has it (free scoring) it is the rate of ``parsed``."""
    if key != "parsed" and any(key in r for r in records):
        records = [r for r in records if key in r]
    if not records:
        return None
    return float(np.mean([r.get(key, r["parsed"]) is not None for r in records]))


def free_agreement(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Under constrained scoring: the share of generation-checked answers whose free-text parse is the
    option the log-likelihoods chose (None without checked records)."""
    checked = [r for r in records if "parsed_free" in r]
    if not checked:
        return None
    return float(np.mean([r["parsed_free"] == r["parsed"] for r in checked]))
