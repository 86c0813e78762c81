"""Image use (image − shuffled) and the Stage-1 gate on planted records: a model that reads its image
passes, the same records under both conditions (the null) do not."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.evaluation.image_use import caption_use, choice_use, image_use, paired_interval, pope_use, stage1_gate


def _records(items, correct_share: float, seed: int = 0, caption_shift: int = 0):
    """Rule-scored items right with probability ``correct_share`` (1.0: always); caption k says
    the reference of caption item k + ``caption_shift`` (0: its own image)."""
    rng = np.random.default_rng(seed)
    captions = [i for i in items if i.task == "caption"]
    out = []
    for item in items:
        record = {**item.to_json()}
        if item.task == "caption":
            k = captions.index(item)
            record.update(
                output=captions[(k + caption_shift) % len(captions)].references[0], parsed=None, correct=False
            )
        else:
            right = bool(rng.random() < correct_share)
            wrong = next(o for o in (("yes", "no") if item.task == "pope" else "ABCD") if o != item.answer)
            record.update(output=None, parsed=item.answer if right else wrong, correct=right)
        out.append(record)
    return out


def test_a_model_that_reads_its_image_shows_image_use(items):
    image, shuffled = _records(items, 1.0), _records(items, 0.5, caption_shift=3)
    use = image_use(image, shuffled, resamples=200)
    assert use["pope"]["image"] == 1.0 and use["pope"]["shuffled"] < 0.8
    assert use["pope"]["p_value"] < 0.01 and use["pope"]["b_only"] == 0
    assert use["choice"]["image"] == 1.0 and use["choice"]["shuffled"] < use["choice"]["image"]
    gate = stage1_gate(use["caption"])
    assert gate["passed"] is True and gate["ci_low"]["mention_recall"] > 0 and gate["ci_low"]["cider_d"] > 0


def test_the_null_same_answers_either_way_shows_none(items):
    """The same records under both conditions: difference 0, McNemar p = 1, the gate fails."""
    records = _records(items, 0.5)
    use = image_use(records, records, resamples=200)
    assert use["pope"]["image"] == use["pope"]["shuffled"] and use["pope"]["p_value"] == 1.0
    assert use["choice"]["p_value"] == 1.0
    assert use["caption"]["mention_recall"]["difference"] == 0.0
    assert stage1_gate(use["caption"])["passed"] is False


def test_gate_without_a_shuffled_probe_is_not_judged():
    assert stage1_gate(None)["passed"] is None


def test_paired_interval_covers_the_planted_difference():
    rng = np.random.default_rng(1)
    a = {str(k): float(v) for k, v in enumerate(rng.normal(0.3, 0.1, 400))}
    b = {str(k): 0.0 for k in range(400)}
    out = paired_interval(a, b, resamples=500, seed=0)
    assert out["ci"][0] < 0.3 < out["ci"][1] and out["ci"][1] - out["ci"][0] < 0.05
    assert paired_interval({}, {})["difference"] is None


def test_parts_need_both_conditions(items):
    only_captions = [r for r in _records(items, 1.0) if r["task"] == "caption"]
    assert pope_use(only_captions, only_captions) is None and choice_use(only_captions, only_captions) is None
    assert caption_use([], []) is None
    assert set(image_use(only_captions, only_captions)) == {"caption"}


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_pope_difference_has_the_sign_of_the_planted_effect(items, share):
    use = pope_use(_records(items, share, seed=2), _records(items, 0.5, seed=3))
    assert (use["image"] - use["shuffled"] > 0) == (share == 1.0)
