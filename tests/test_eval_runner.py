"""Decoding and scoring end to end with a fake decoder: an oracle scores 100 %, constants score chance."""

from __future__ import annotations

import re

import numpy as np
import pytest

import modgap.mllm.generate as generate_module
from _eval_fixtures import FakeMLLM
from modgap.errors import ConfigError
from modgap.evaluation.runner import run_items, visual_inputs
from modgap.evaluation.score import score_records
from modgap.mllm.data import EmbeddingTable


@pytest.fixture(autouse=True)
def _fake(fake_generation):
    pass


def _table(items):
    ids = sorted({i.image_id for i in items})
    rng = np.random.default_rng(0)
    array = rng.normal(size=(len(ids), 8)).astype(np.float32)
    return EmbeddingTable(array / np.linalg.norm(array, axis=1, keepdims=True), ids, "x.npy")


def test_oracle_scores_one_hundred_percent(items):
    truth = {i.question + i.image_id: i for i in items}
    table = _table(items)
    row_of = {tuple(np.round(table.rows([i])[0], 6)): i for i in table.ids}

    def oracle(question, embedding):
        item = truth[question + row_of[tuple(np.round(embedding, 6))]]
        return item.references[0] if item.task == "caption" else item.answer

    records = run_items(FakeMLLM(oracle), items, visual_inputs(items, "image", table))
    scores = score_records(records)
    assert scores["pope"]["accuracy"] == 1.0 and scores["pope"]["f1"] == 1.0
    assert scores["choice"]["circular_accuracy"] == 1.0
    assert scores["avg"] == 1.0
    assert scores["caption"]["bleu4"] == pytest.approx(1.0)


def test_constant_answers_score_chance(items):
    scores = score_records(run_items(FakeMLLM(lambda q, e: "Yes"), items, None))
    for strategy in ("random", "popular", "adversarial"):
        assert scores["pope"][strategy]["accuracy"] == 0.5
        assert scores["pope"][strategy]["yes_ratio"] == 1.0
    letter_a = score_records(run_items(FakeMLLM(lambda q, e: "A"), items, None))["choice"]
    assert letter_a["accuracy_all_rotations"] == 0.25  # every letter is the answer once per image
    assert letter_a["circular_accuracy"] == 0.0


def test_refusals_are_wrong_and_counted(items):
    scores = score_records(run_items(FakeMLLM(lambda q, e: "I cannot see images."), items, None))
    assert scores["pope"]["random"]["unparsed"] == 1.0 and scores["pope"]["accuracy"] == 0.0
    assert scores["choice"]["unparsed"] == 1.0


def test_blind_condition_sends_no_visual_tokens(items):
    mllm = FakeMLLM(lambda q, e: "no")
    run_items(mllm, items, visual_inputs(items, "blind", None))
    assert mllm.calls and not any(with_image for _, with_image in mllm.calls)


def test_controls_replace_the_image(items):
    table = _table(items)
    mean = visual_inputs(items, "mean", table)
    assert np.allclose(mean, table.array.mean(axis=0))
    shuffled = visual_inputs(items, "shuffled", table)
    own = visual_inputs(items, "image", table)
    assert not np.any(np.all(np.isclose(shuffled, own), axis=1))  # nobody gets their own image


def test_unknown_condition_is_refused(items):
    with pytest.raises(ConfigError, match="condition"):
        visual_inputs(items, "noise", None)


def test_task_specific_token_limits(items, monkeypatch):
    seen = {}

    def spy(mllm, embeddings, prompts, *, max_new_tokens, **_):
        seen[re.sub(r"\W.*", "", prompts[0])] = max_new_tokens
        return ["no"] * len(prompts)

    monkeypatch.setattr(generate_module, "generate", spy)
    run_items(FakeMLLM(lambda q, e: ""), items, None, max_new_tokens={"caption": 7})
    assert seen["Provide"] == 7 and seen["Can"] == 4
