"""Retrieval recall and centroid gap on hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.embed.retrieval import centroid_gap, rank_counts, recall_at_k, retrieval_metrics
from modgap.errors import InvalidEmbeddingsError


def test_perfect_pairs_recall_one() -> None:
    eye = np.eye(6)
    out = recall_at_k(eye, 3.0 * eye, ks=(1, 5))  # scale must not matter: rows are normalised
    assert out == {"i2t_R@1": 1.0, "t2i_R@1": 1.0, "i2t_R@5": 1.0, "t2i_R@5": 1.0}


def test_hand_case_asymmetric_ranks() -> None:
    # image 0 is closer to text 1 than to its own text 0: i2t misses at k=1 for query 0 only.
    image = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    text = np.array([[0.6, 0.0, 0.8], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    better, tied = rank_counts(image, text / np.linalg.norm(text, axis=1, keepdims=True))
    assert better.tolist() == [1, 0, 0] and tied.tolist() == [0, 0, 0]
    out = recall_at_k(image, text, ks=(1, 2))
    assert out["i2t_R@1"] == pytest.approx(2 / 3)
    assert out["i2t_R@2"] == 1.0
    # text 0 -> best image 2 (0.8) then image 0 (0.6): rank 2; text 1 -> image 0 (0.99) beats image 1: rank 2.
    assert out["t2i_R@1"] == pytest.approx(1 / 3)
    assert out["t2i_R@2"] == 1.0


def test_collapsed_embedding_scores_chance() -> None:
    same = np.ones((4, 3))
    out = retrieval_metrics(same, same, ks=(1,))
    assert out["i2t_R@1"] == pytest.approx(0.25) and out["t2i_R@1"] == pytest.approx(0.25)
    assert out["chance_R@1"] == 0.25
    assert out["centroid_gap"] == pytest.approx(0.0)
    assert out["n"] == 4


def test_duplicate_captions_share_the_hit() -> None:
    # Texts 0 and 1 are the same caption: image 0 finds "its" text first with probability 1/2.
    image = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    text = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = recall_at_k(image, text, ks=(1, 2))
    assert out["i2t_R@1"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert out["i2t_R@2"] == 1.0
    # t2i: text 0 -> image 0 is best (rank 1); text 1 -> image 0 beats image 1 (rank 2); text 2 -> rank 1.
    assert out["t2i_R@1"] == pytest.approx(2 / 3)


def test_centroid_gap_hand_case() -> None:
    image = np.array([[2.0, 0.0], [0.0, 5.0]])  # normalised mean (0.5, 0.5)
    text = np.array([[-1.0, 0.0], [-3.0, 0.0]])  # normalised mean (-1, 0)
    assert centroid_gap(image, text) == pytest.approx(np.hypot(1.5, 0.5))


def test_chance_level_caps_at_one() -> None:
    out = retrieval_metrics(np.eye(3), np.eye(3), ks=(1, 5))
    assert out["chance_R@5"] == 1.0 and out["chance_R@1"] == pytest.approx(1 / 3)


def test_rejects_bad_inputs() -> None:
    with pytest.raises(InvalidEmbeddingsError, match="equal row counts"):
        recall_at_k(np.eye(3), np.ones((4, 3)))
    with pytest.raises(InvalidEmbeddingsError, match="dimension"):
        recall_at_k(np.eye(3), np.eye(4)[:3])
    bad = np.eye(3)
    bad[1, 1] = np.nan
    with pytest.raises(InvalidEmbeddingsError, match="NaN"):
        centroid_gap(bad, np.eye(3))


def test_chunking_matches_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    whole = recall_at_k(image, text, ks=(1, 5))
    monkeypatch.setattr("modgap.embed.retrieval._CHUNK_ROWS", 7)
    assert recall_at_k(image, text, ks=(1, 5)) == whole
