"""Document and scoring hooks of the local lmms-eval tasks (referenced from their YAML by module path).

lmms-eval resolves ``!function modgap.evaluation.lmms_tasks.utils.<name>`` by importing this module, so
the tasks need modgap installed in the evaluating environment, but nothing here imports lmms-eval.
Answers are parsed with the same rules as the in-house runner (:mod:`modgap.evaluation.answers`), so the
two harnesses differ only in how they drive the model, not in how they score it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from modgap.embed.encoder import load_rgb
from modgap.evaluation.answers import binary_metrics, parse_choice, parse_yes_no


def doc_to_visual(doc: Mapping[str, Any]) -> list[Image.Image]:
    # load_rgb composites transparency onto white exactly as the embedding stage did, so the plugin sees
    # the same pixels the encoder saw when the pipeline embedded this split.
    return [load_rgb(doc["image_path"])]


def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


# --- POPE-style yes/no ------------------------------------------------------------------------------


def pope_process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, Any]:
    pred = parse_yes_no(results[0])
    truth = str(doc["answer"]).lower()
    record = {"uid": doc["uid"], "variant": doc["variant"], "prediction": pred, "truth": truth}
    return {
        "pope_accuracy": float(pred == truth),
        "pope_f1": record,
        "pope_yes_ratio": record,
        "pope_unparsed": record,
        "pope_random_accuracy": record,
        "pope_popular_accuracy": record,
        "pope_adversarial_accuracy": record,
    }


def _binary(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return binary_metrics([r["prediction"] for r in records], [r["truth"] for r in records])


def pope_f1(records: Sequence[Mapping[str, Any]]) -> float:
    return _binary(records)["f1"]


def pope_yes_ratio(records: Sequence[Mapping[str, Any]]) -> float:
    return _binary(records)["yes_ratio"]


def pope_unparsed(records: Sequence[Mapping[str, Any]]) -> float:
    return _binary(records)["unparsed"]


def _subset_accuracy(records: Sequence[Mapping[str, Any]], strategy: str) -> float:
    # One negative strategy's subset is the positives plus that strategy's negatives: balanced 50/50,
    # as POPE reports its random/popular/adversarial splits. NaN when the strategy was not built.
    subset = [r for r in records if r["variant"] in ("positive", strategy)]
    if not any(r["variant"] == strategy for r in subset):
        return float("nan")
    return _binary(subset)["accuracy"]


def pope_random_accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    return _subset_accuracy(records, "random")


def pope_popular_accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    return _subset_accuracy(records, "popular")


def pope_adversarial_accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    return _subset_accuracy(records, "adversarial")


# --- MMBench-style multiple choice --------------------------------------------------------------------


def choice_process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, Any]:
    pred = parse_choice(results[0], list(doc["options"]))
    correct = pred == doc["answer"]
    record = {"uid": doc["uid"], "group": doc["group"], "prediction": pred, "correct": correct}
    return {"choice_accuracy": float(correct), "choice_circular_accuracy": record, "choice_unparsed": record}


def choice_circular_accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    """MMBench circular evaluation: an image counts only if every rotation of its options is right.
    With ``--limit`` an image may be cut short; its evaluated rotations are what count."""
    by_group: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_group[r["group"]].append(bool(r["correct"]))
    return sum(all(v) for v in by_group.values()) / len(by_group)


def choice_unparsed(records: Sequence[Mapping[str, Any]]) -> float:
    return sum(r["prediction"] is None for r in records) / len(records)
