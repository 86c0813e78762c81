"""Shared streaming moments and spectral helpers: exactness across chunkings, merge, errors."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.errors import InvalidEmbeddingsError
from modgap.stats.moments import MomentAccumulator, moments_of
from modgap.stats.spectral import rank_for_energy, sin_theta, top_eigvecs


def _rows(n: int = 3000, d: int = 24, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) + 2.0).astype(np.float32)


def _reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xn = x.astype(np.float64)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    return xn.mean(0), np.cov(xn.T, bias=True)


@pytest.mark.parametrize("chunk", [1, 7, 256, 257, 3000])
def test_chunk_invariance(chunk):
    x = _rows()
    mean, cov = _reference(x)
    acc = moments_of(x, chunk_rows=chunk)
    mean_only = moments_of(x, chunk_rows=chunk, with_cov=False)
    assert np.abs(acc.mean - mean).max() < 1e-15
    assert np.abs(mean_only.mean - mean).max() < 1e-15
    assert np.abs(acc.cov - cov).max() < 1e-15


def test_merge_equals_single_stream():
    x = _rows()
    left = moments_of(x[:1111])
    left.merge(moments_of(x[1111:]))
    whole = moments_of(x)
    assert np.abs(left.cov - whole.cov).max() < 1e-15 and left.n == whole.n


def test_unnormalised_stream_allows_zero_rows():
    x = _rows(100).astype(np.float64)
    x[5] = 0.0
    acc = moments_of(x, normalise=False)
    assert np.abs(acc.mean - x.mean(0)).max() < 1e-14
    with pytest.raises(InvalidEmbeddingsError, match=r"zero vector.*row 5"):
        moments_of(x)
    with pytest.raises(InvalidEmbeddingsError, match=r"zero vector.*row 5"):
        moments_of(x, with_cov=False)


def test_errors_name_the_set_and_row():
    x = _rows(100)
    x[63, 0] = np.inf
    with pytest.raises(InvalidEmbeddingsError, match=r"texts: 1 row.*first at row 63"):
        MomentAccumulator(24, name="texts", with_cov=False).update_from(x, chunk_rows=10)
    with pytest.raises(InvalidEmbeddingsError, match="texts: expected dimension 24, got 23"):
        MomentAccumulator(24, name="texts").update(_rows(10, 23))
    with pytest.raises(InvalidEmbeddingsError, match="needs at least 2 rows, got 1"):
        _ = moments_of(_rows(1)).cov


def test_spectral_helpers():
    assert rank_for_energy(np.array([4.0, 3.0, 2.0, 1.0]), 0.7) == 2
    assert rank_for_energy(np.array([4.0, 3.0, 2.0, 1.0]), 1.0) == 4
    vals, vecs = top_eigvecs(np.diag([1.0, 5.0, 3.0]), 2)
    assert vals == pytest.approx([5.0, 3.0])
    assert sin_theta(vecs, np.eye(3)[:, [1, 2]]) < 1e-15
    angle = 1e-9  # small angles keep full relative precision
    rotated = np.array([[1.0, 0.0], [0.0, np.cos(angle)], [0.0, np.sin(angle)]])
    assert sin_theta(np.eye(3)[:, :2], rotated) == pytest.approx(np.sin(angle), rel=1e-6)
