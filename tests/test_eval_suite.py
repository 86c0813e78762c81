"""The benchmark suite: held-out only, balanced, circular, deterministic."""

from __future__ import annotations

from collections import Counter

import pytest

from _eval_fixtures import VOCAB, manifest, word_similarity
from modgap.errors import ConfigError
from modgap.evaluation.suite import SuiteLeakError, build_suite, suite_summary


def _suite(**params):
    return build_suite(
        manifest(),
        params={"caption_items": 10, "pope_items": 12, "choice_items": 8, **params},
        similarity=word_similarity,
    )


def test_suite_uses_only_held_out_images():
    frame = manifest()
    test_ids = set(frame.loc[frame.split == "test", "id"])
    items = _suite()
    assert {i.image_id for i in items} <= test_ids


def test_suite_refuses_an_image_that_is_also_a_training_image():
    frame = manifest()
    train_image = frame.loc[frame.split == "train", "image_path"].iloc[0]
    frame.loc[frame.index[frame.split == "test"][0], "image_path"] = train_image
    with pytest.raises(SuiteLeakError, match="training images"):
        build_suite(frame, params={"pope_negatives": ["random"]})


def test_pope_is_balanced_per_strategy_and_negatives_are_absent():
    items = _suite()
    pope = [i for i in items if i.task == "pope"]
    counts = Counter(i.variant for i in pope)
    assert counts == {"positive": 12, "random": 12, "popular": 12, "adversarial": 12}
    frame = manifest().set_index("id")
    for item in pope:
        present = {lab.split("/")[-1].replace("-", " ") for lab in frame.loc[item.image_id, "labels"]}
        asked = item.labels[0]
        assert (asked in present) == (item.answer == "Yes")


def test_adversarial_negative_is_the_most_similar_absent_label():
    items = _suite()
    frame = manifest().set_index("id")
    for image in {i.image_id for i in items if i.task == "pope"}:
        positive = next(i for i in items if i.uid == f"pope/positive/{image}").labels[0]
        adversarial = next(i for i in items if i.uid == f"pope/adversarial/{image}").labels[0]
        present = {lab.split("/")[-1] for lab in frame.loc[image, "labels"]}
        absent = [v.split("/")[-1] for v in VOCAB if v.split("/")[-1] not in present]
        scores = word_similarity(positive, absent)
        assert word_similarity(positive, [adversarial])[0] == scores.max()


def test_popular_negative_is_the_most_frequent_absent_training_label():
    frame = manifest()
    train = Counter(lab.split("/")[-1] for v in frame.loc[frame.split == "train", "labels"] for lab in v)
    items = _suite()
    for item in (i for i in items if i.variant == "popular"):
        present = {lab.split("/")[-1] for lab in frame.set_index("id").loc[item.image_id, "labels"]}
        best = max(train[v] for v in train if v not in present)
        assert train[item.labels[0]] == best


def test_choice_rotations_cycle_the_answer_through_every_letter():
    items = [i for i in _suite() if i.task == "choice"]
    by_image: dict[str, list] = {}
    for item in items:
        by_image.setdefault(item.image_id, []).append(item)
    assert len(by_image) == 8
    for group in by_image.values():
        assert sorted(i.answer for i in group) == ["A", "B", "C", "D"]
        assert len({tuple(sorted(i.options)) for i in group}) == 1  # same options, rotated


def test_suite_is_deterministic_and_stable_under_growth():
    assert _suite() == _suite()
    small = {i.uid: i for i in _suite(pope_items=5)}
    large = {i.uid: i for i in _suite(pope_items=12)}
    assert all(large[uid] == item for uid, item in small.items())


def test_bad_suite_config_names_the_key():
    with pytest.raises(ConfigError, match="unknown key"):
        build_suite(manifest(), params={"captions": 3})
    with pytest.raises(ConfigError, match="pope_negatives"):
        build_suite(manifest(), params={"pope_negatives": ["hard"]})
    with pytest.raises(ConfigError, match="label embeddings"):
        build_suite(manifest(), params={"pope_negatives": ["adversarial"]})


def test_summary_counts():
    summary = suite_summary(_suite())
    assert summary["by_task"]["caption"] == 10 and summary["by_task"]["choice"] == 32
