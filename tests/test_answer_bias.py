"""Questions that text alone can answer: with uniform negatives and distractors, "yes if the label is
frequent" and "pick the most frequent option" beat chance without the image; sampled by training
frequency, they do not. Planted on a Zipf-distributed label set, the shape of the real data's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _eval_fixtures import word_similarity
from modgap.errors import ConfigError
from modgap.evaluation.suite import build_suite
from modgap.evaluation.tasks.choice import position_bias
from modgap.mllm.instructions import LETTERS, build_instructions, label_frequencies

VOCAB = [f"thing{k}" for k in range(60)]


def _zipf_manifest(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(VOCAB) + 1)
    weights /= weights.sum()
    rows = []
    for split, count in (("train", n), ("test", n // 3)):
        for i in range(count):
            labels = [VOCAB[j] for j in rng.choice(len(VOCAB), size=2, replace=False, p=weights)]
            rows.append({"id": f"{split}-{i}", "caption": f"a {labels[0]}", "labels": labels, "split": split})
    return pd.DataFrame(rows)


def _frequent_yes_rule(negatives: str) -> float:
    """Accuracy of "answer yes iff the label's train count is above the median label count"."""
    manifest = _zipf_manifest()
    freq = label_frequencies(list(manifest[manifest["split"] == "train"]["labels"]))
    cut = np.median([freq[v] for v in VOCAB])
    yesno = [
        i
        for i in build_instructions(manifest, split="train", tasks=["yesno"], negatives=negatives, label_style="raw")
        if i.task == "yesno"
    ]
    return float(np.mean([(freq[i.label] > cut) == (i.answer == "Yes") for i in yesno]))


def _most_frequent_option_rule(negatives: str) -> float:
    manifest = _zipf_manifest()
    freq = label_frequencies(list(manifest[manifest["split"] == "train"]["labels"]))
    choice = [
        i
        for i in build_instructions(manifest, split="train", tasks=["choice"], negatives=negatives, label_style="raw")
        if i.task == "choice"
    ]
    picks = [LETTERS[int(np.argmax([freq[o] for o in i.options]))] for i in choice]
    return float(np.mean([p == i.answer for p, i in zip(picks, choice, strict=True)]))


def test_frequency_negatives_defeat_the_text_only_yes_rule():
    assert _frequent_yes_rule("uniform") > 0.65  # 0.69 here
    assert abs(_frequent_yes_rule("frequency") - 0.5) < 0.06  # 0.51 here


def test_frequency_distractors_defeat_the_most_frequent_option_rule():
    assert _most_frequent_option_rule("uniform") > 0.5  # 0.60 here
    assert _most_frequent_option_rule("frequency") < 0.4  # 0.31 here; chance 0.25


def test_suite_distractors_follow_training_frequency():
    manifest = _zipf_manifest()
    suite = build_suite(
        manifest,
        params={"caption_items": 0, "pope_items": 0, "choice_items": 150, "label_style": "raw"},
        similarity=word_similarity,
    )
    freq = label_frequencies(list(manifest[manifest["split"] == "train"]["labels"]))
    first = [i for i in suite if i.task == "choice" and i.variant == "0"]
    rule = np.mean([LETTERS[int(np.argmax([freq[o] for o in i.options]))] == i.answer for i in first])
    assert rule < 0.45


def test_unknown_negatives_mode_is_refused():
    with pytest.raises(ConfigError, match="negatives"):
        build_instructions(_zipf_manifest(n=10), negatives="popular")


def test_position_bias_of_a_constant_letter_and_of_a_balanced_model():
    rows = [{"options": ("a", "b", "c", "d"), "parsed": "D", "answer": LETTERS[k % 4]} for k in range(40)]
    always_d = position_bias(rows)
    assert always_d["position_bias"] == pytest.approx(0.75) and always_d["chosen_share"]["D"] == 1.0
    assert all(v == pytest.approx(0.25) for v in always_d["truth_share"].values())
    oracle = position_bias([{**r, "parsed": r["answer"]} for r in rows])
    assert oracle["position_bias"] == pytest.approx(0.0)
