"""Constrained choice: every POPE/MC answer is one of the options, so a model whose free text does not
parse scores at its choice's accuracy (chance for a constant choice), never below chance."""

from __future__ import annotations

import numpy as np
import pytest

import modgap.evaluation.constrained as constrained
from _eval_fixtures import FakeMLLM
from modgap.errors import ConfigError
from modgap.evaluation.runner import GENERATION_CHECK, run_items
from modgap.evaluation.score import score_records


@pytest.fixture(autouse=True)
def _fake(fake_generation):
    pass


def test_pick_takes_the_log_sum_exp_over_spellings():
    logprobs = np.log(np.array([0.30, 0.25, 0.25, 0.20]))
    # "yes" has two spellings (ids 1, 2: 0.5 together) and beats "no" (id 0: 0.3) although id 0 is the top token
    best, scores = constrained.pick(logprobs, [[1, 2], [0]])
    assert best == 0 and scores[0] == pytest.approx(np.log(0.5))
    assert constrained.pick(logprobs, [[3], [0]])[0] == 1


def test_options_per_task():
    from modgap.evaluation.tasks import get_task

    assert get_task("pope").options(()) == ("yes", "no")
    assert get_task("choice").options(("a", "b", "c", "d")) == ("A", "B", "C", "D")
    with pytest.raises(NotImplementedError, match="caption"):
        get_task("caption").options(())


def test_unparseable_rambling_is_scored_by_its_choice_not_as_wrong(items, monkeypatch):
    """Free text that never says yes/no scores 0 on POPE under the rule parser (below the 0.5 of a
    constant answer); constrained to the options, a model that always picks "no" scores 0.5."""
    rambler = FakeMLLM(lambda q, e: "I cannot see images.")
    free = score_records(run_items(rambler, items, None))
    assert free["pope"]["accuracy"] == 0.0 and free["parse_rate"] == 0.0

    def always_first_negative(mllm, embeddings, prompts, options, **_):
        return ["no" if "yes" in opts else opts[0] for opts in options]

    monkeypatch.setattr(constrained, "choose", always_first_negative)
    records = run_items(rambler, items, None, scoring="constrained")
    scores = score_records(records)
    assert scores["pope"]["accuracy"] == 0.5
    assert scores["choice"]["accuracy_all_rotations"] == 0.25  # letter A: chance
    assert scores["parse_rate"] == 1.0 and scores["free_parse_rate"] == 0.0
    # Free text is generated (and kept) for the generation check only: the first GENERATION_CHECK
    # items of each constrained task; captions are always generated.
    for task in ("pope", "choice"):
        rows = [r for r in records if r["task"] == task]
        checked = [r for r in rows if r["output"] is not None]
        assert len(checked) == min(GENERATION_CHECK, len(rows))
        assert all(r["output"] == "I cannot see images." and r["parsed_free"] is None for r in checked)
        assert all("parsed_free" not in r for r in rows if r["output"] is None)
    assert all(r["output"] == "I cannot see images." for r in records if r["task"] == "caption")


def test_unknown_scoring_is_refused(items):
    with pytest.raises(ConfigError, match="scoring"):
        run_items(FakeMLLM(lambda q, e: "yes"), items, None, scoring="loglik")


def test_circular_mc_is_not_identically_zero_above_chance(items):
    """A model that knows the answer for half the images (and answers "A" otherwise) scores above
    chance on plain MC and about half on circular MC: circular = 0 only follows from near-chance p."""
    from modgap.evaluation.suite import BenchItem

    truth = {i.uid: i for i in items if isinstance(i, BenchItem) and i.task == "choice"}
    known = sorted({i.image_id for i in truth.values()})[::2]

    def answer(question, _):
        item = next(i for i in truth.values() if i.question == question)
        if item.image_id in known:
            return item.answer
        return "A"

    choice = score_records(run_items(FakeMLLM(answer), [i for i in items if i.task == "choice"], None))["choice"]
    assert choice["accuracy_all_rotations"] > 0.5
    assert choice["circular_accuracy"] >= len(known) / (2 * len(known) + 1) > 0
    assert choice["circular_expected_if_independent"] < choice["circular_accuracy"]


def test_generation_check_counts_only_checked_items(items, monkeypatch):
    """The free-text parse rate and the free/constrained agreement are over the checked items: a model
    whose first two answers per task are parseable and agree, under a check of two, scores 1.0 on
    both, however the unchecked (never generated) items would have read."""
    monkeypatch.setattr(constrained, "choose", lambda m, e, p, options, **_: [o[0] for o in options])
    model = FakeMLLM(lambda q, e: "A" if "A." in q else "yes")
    records = run_items(model, items, None, scoring="constrained", generation_check=2)
    scores = score_records(records)
    for task in ("pope", "choice"):
        assert sum(r["output"] is not None for r in records if r["task"] == task) == 2
    assert scores["free_parse_rate"] == 1.0 and scores["free_agreement"] == 1.0
    nothing = run_items(model, items, None, scoring="constrained", generation_check=0)
    assert all(r["output"] is None for r in nothing if r["task"] != "caption")
    assert score_records(nothing)["free_agreement"] is None
    with pytest.raises(ConfigError, match="generation_check"):
        run_items(model, items, None, scoring="constrained", generation_check=-1)
