"""Captioning metrics and answer statistics against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modgap.evaluation.answers import binary_metrics, bootstrap_ci, mcnemar, parse_choice, parse_yes_no
from modgap.evaluation.text_metrics import bleu, cider_d, mentions, tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("An Emoji: thumbs-up, isn't it?") == ["an", "emoji", "thumbs", "up", "isn't", "it"]


def test_bleu4_hand_computed():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2; brevity penalty exp(1 - 6/5)
    expected = math.exp(-0.2) * (0.8 * 0.75 * (2 / 3) * 0.5) ** 0.25
    # rel 1e-8: the toolkit adds tiny = 1e-9 to every matched count and 1e-15 to the lengths
    assert bleu({"x": "a b c d e"}, {"x": ["a b c d f g"]}) == pytest.approx(expected, rel=1e-8)


def test_bleu_identity_is_one_and_clipping_applies():
    assert bleu({"x": "the cat sat on the mat"}, {"x": ["the cat sat on the mat"]}) == pytest.approx(1.0)
    # "the the the the": clipped unigram precision 2/4 against a reference with two "the", no bigram match
    assert bleu({"x": "the the the the"}, {"x": ["the cat on the mat"]}, max_n=1) == pytest.approx(
        0.5 * math.exp(1 - 5 / 4)
    )


def test_cider_d_hand_computed():
    refs = {"1": ["a b"], "2": ["c d"]}
    perfect, _ = cider_d({"1": "a b", "2": "c d"}, refs)
    assert perfect == pytest.approx(5.0)  # n=1,2 cosine 1; n=3,4 empty -> mean 0.5, x10
    _, per_item = cider_d({"1": "a b x", "2": "c d"}, refs)
    expected = (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72) * 10
    assert per_item["1"] == pytest.approx(expected, rel=1e-12)
    assert per_item["2"] == pytest.approx(5.0)


def test_cider_d_clips_repeated_ngrams():
    refs = {"1": ["red ball"], "2": ["blue car"], "3": ["green tree"]}
    once, _ = cider_d({"1": "red ball", "2": "x", "3": "y"}, refs)
    repeated, _ = cider_d({"1": "red red red ball", "2": "x", "3": "y"}, refs)
    assert repeated < once


def test_toolkit_scores_tokenized_text():
    """The COCO toolkit compares space-separated tokens: case and punctuation must not change a score."""
    refs = {"1": ["A red ball."], "2": ["Blue car!"], "3": ["green tree"]}
    plain = {"1": "a red ball", "2": "blue car", "3": "green"}
    noisy = {"1": "A, RED ball!", "2": "Blue-car", "3": "Green."}
    assert cider_d(noisy, refs) == cider_d(plain, refs)
    assert bleu(noisy, refs) == bleu(plain, refs)
    assert bleu({"1": "", "2": "", "3": ""}, refs) == 0.0


def test_mentions_needs_whole_words_in_order():
    assert mentions("an emoji of a red apple", ["red apple"])
    assert not mentions("an emoji of a redapple", ["red apple"])
    assert not mentions("apple red", ["red apple"])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="same items"):
        bleu({"a": "x"}, {"b": ["x"]})
    with pytest.raises(ValueError, match="at least one reference"):
        cider_d({"a": "x"}, {"a": []})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("no.", "no"),
        ("I think yes, there is", "yes"),
        ("Nope", None),
        ("yesterday no", "no"),
        ("", None),
    ],
)
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("B. dog", "B"),
        ("The answer is C", "C"),
        ("cat", "A"),
        ("Dog.", "B"),
        ("E", None),
        ("Absolutely", None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text, ["cat", "dog", "car", "tree"]) == expected


def test_binary_metrics_hand_computed():
    m = binary_metrics(["yes", "yes", "no", None], ["Yes", "No", "No", "Yes"])
    assert m["accuracy"] == 0.5
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["yes_ratio"] == 0.5 and m["unparsed"] == 0.25


def test_mcnemar_exact():
    a = [True] * 10 + [False] * 2
    b = [False] * 10 + [True] * 2
    result = mcnemar(a, b)
    assert (result["a_only"], result["b_only"]) == (10, 2)
    assert result["p_value"] == pytest.approx(2 * sum(math.comb(12, k) for k in range(3)) / 2**12)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_bootstrap_ci_brackets_the_mean():
    values = np.r_[np.ones(60), np.zeros(40)]
    low, high = bootstrap_ci(values, resamples=2000)
    assert low < 0.6 < high and high - low < 0.25
