"""Rule-based answer parsing and the statistics of rule-scored benchmarks ([spec] revision-mllm §11.4–11.5).

Unparseable answers count as wrong and their rate is reported separately: a model that refuses or
rambles must not be mistaken for one that guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

_YES_NO = re.compile(r"\b(yes|no)\b")


def parse_yes_no(output: str) -> str | None:
    """'yes'/'no': the first standalone yes or no in the lower-cased output; None if neither occurs."""
    match = _YES_NO.search(output.lower())
    return match.group(1) if match else None


def parse_choice(output: str, options: Sequence[str], letters: str = "ABCDEFGHIJ") -> str | None:
    """The first standalone option letter (A–D for four options), else an exact option-text match
    (case-insensitive, surrounding punctuation ignored); None if neither."""
    valid = letters[: len(options)]
    match = re.search(rf"(?<![A-Za-z])([{valid}])(?![A-Za-z])", output)
    if match:
        return match.group(1)
    text = output.strip().strip(".!?:;\"'").strip().lower()
    for letter, option in zip(valid, options, strict=True):
        if text == option.lower():
            return letter
    return None


def binary_metrics(predicted: Sequence[str | None], truth: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of 'yes' as the positive class, the yes-ratio and the
    unparsed rate. Unparsed answers are wrong and count as neither yes nor no."""
    if len(predicted) != len(truth) or not truth:
        raise ValueError("binary_metrics needs equally long, non-empty predictions and answers")
    pred = np.array([p or "" for p in predicted])
    gold = np.array([t.lower() for t in truth])
    tp = int(np.sum((pred == "yes") & (gold == "yes")))
    fp = int(np.sum((pred == "yes") & (gold == "no")))
    fn = int(np.sum((pred != "yes") & (gold == "yes")))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float(np.mean(pred == gold)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": float(np.mean(pred == "yes")),
        "unparsed": float(np.mean(pred == "")),
        "n": len(gold),
    }


def bootstrap_ci(correct: Sequence[float], *, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean over items."""
    values = np.asarray(correct, dtype=float)
    if values.size == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, float]:
    """Exact McNemar test on paired item outcomes: b = A right and B wrong, c = the reverse; the
    two-sided binomial p-value of b against Bin(b + c, 1/2) (1.0 when no item disagrees)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("mcnemar needs outcomes on the same items")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"a_only": only_a, "b_only": only_b, "p_value": float(p)}
