"""Each baseline against a small hand-computed example (d = 2 or 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modgap.align import make
from test_align_data import gapped, unit

# Images point along e1, texts along e2 (unit rows), so mu_x = (a, b), mu_y = (b, a) by hand.
S = 1 / math.sqrt(2)
X2 = np.array([[1, 0], [S, S]], dtype=np.float32)  # mu_x = ((1+S)/2, S/2)
Y2 = np.array([[0, 1], [S, S]], dtype=np.float32)  # mu_y = (S/2, (1+S)/2)
MU_X = np.array([(1 + S) / 2, S / 2])
MU_Y = np.array([S / 2, (1 + S) / 2])
Q = np.array([[0.6, 0.8]], dtype=np.float32)


def n(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_identity_normalises():
    out = make("identity").fit(X2, Y2).transform(np.array([[3, 4]], dtype=np.float32))
    assert np.allclose(out, [[0.6, 0.8]], atol=1e-7)


def test_unicorn_subtracts_text_mean_without_renormalising():
    out = make("unicorn").fit(X2, Y2).transform(Q)
    assert np.allclose(out[0], Q[0] - MU_Y, atol=1e-7)
    trans = make("unicorn").fit(X2, Y2).transform(Y2, transductive=True)
    assert np.allclose(trans.mean(0), 0, atol=1e-7)


def test_liang_default_equals_mean_shift_and_lambda():
    out = make("liang").fit(X2, Y2).transform(Q)
    assert np.allclose(out[0], n(Q[0] - MU_Y + MU_X), atol=1e-7)
    delta = MU_X - MU_Y
    out = make("liang", {"shift_lambda": 0.5}).fit(X2, Y2).transform(Q)
    assert np.allclose(out[0], n(Q[0] + 0.5 * delta / np.linalg.norm(delta)), atol=1e-7)


def test_c3_zero_noise_is_mean_shift_and_noise_is_seeded():
    out = make("c3", {"sigma": 0.0}).fit(X2, Y2).transform(Q)
    assert np.allclose(out[0], n(Q[0] - MU_Y + MU_X), atol=1e-7)
    official = make("c3", {"sigma": 0.0, "variant": "official"}).fit(X2, Y2).transform(Q)
    assert np.allclose(official[0], n(Q[0] - MU_Y), atol=1e-7)
    y = gapped(3000, seed=4)
    a = make("c3", {"chunk_rows": 1000}).fit(y, y).transform(y)
    b = make("c3", {"chunk_rows": 777}).fit(y, y).transform(y)
    assert np.array_equal(a, b)  # noise is fixed per row, not per chunk
    c = make("c3", {"seed": 1}).fit(y, y).transform(y)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, make("c3").fit(y, y).transform(y, stream="test"))
    same_sigma = make("c3", {"sigma": float(np.sqrt(0.016))}).fit(y, y).transform(y)
    assert np.allclose(make("capdec_offset").fit(y, y).transform(y), same_sigma)  # shared operator


@pytest.mark.parametrize("d", [16, 256])
def test_c3_noise_norm_is_scaled_with_d(d):
    """By default sigma = noise_norm / sqrt(d): the noise norm is the same at every dimension."""
    model = make("c3", {"noise_norm": 0.3})
    assert model.noise_std(d) * np.sqrt(d) == pytest.approx(0.3)
    draw = model._draw(0, 2000, d, "")
    assert np.mean(np.linalg.norm(draw, axis=1)) == pytest.approx(0.3, rel=0.05)
    assert make("c3", {"sigma": 0.1}).noise_std(d) == 0.1  # an explicit sigma overrides


def test_capdec_noise_statistics_and_ball():
    y = np.tile(np.array([[1.0] + [0.0] * 49], dtype=np.float32), (4000, 1))
    model = make("capdec", {"sigma": 0.01}).fit(y, y)
    noise = model._draw(0, 4000, 50, "")
    assert np.std(noise) == pytest.approx(0.01, rel=0.03)
    ball = make("capdec", {"sigma": 0.2, "noise": "uniform_ball"}).fit(y, y)._draw(0, 4000, 50, "")
    assert np.linalg.norm(ball, axis=1).max() <= 0.2 + 1e-12
    out = make("capdec", {"sigma": 0.0}).fit(X2, Y2).transform(Q)
    assert np.allclose(out, Q, atol=1e-7)


def test_decap_softmax_projection_by_hand():
    tau = 0.5
    out = make("decap", {"tau": tau}).fit(X2, Y2).transform(Q)
    mem = unit(X2.astype(np.float64))
    w = np.exp(mem @ Q[0] / tau)
    w /= w.sum()
    assert np.allclose(out[0], n(w @ mem), atol=1e-7)
    capped = make("decap", {"memory_size": 1}).fit(X2, Y2)
    assert capped.state_["memory"].shape == (1, 2)


def test_standardise_by_hand():
    x = np.array([[1, 0.2], [1, -0.2]], dtype=np.float32)
    y = np.array([[0.1, 1], [-0.1, 1]], dtype=np.float32)
    xu, yu = unit(x.astype(np.float64)), unit(y.astype(np.float64))
    ratio = xu.std(0) / (yu.std(0) + 1e-12)
    out = make("standardise").fit(x, y).transform(Q)
    assert np.allclose(out[0], n(xu.mean(0) + ratio * (Q[0] - yu.mean(0))), atol=1e-6)


def test_coral_matches_covariance():
    x, y = gapped(4000, d=3, seed=5, modality="image"), gapped(4000, d=3, seed=6)
    model = make("coral", {"ridge_scale": 0.0}).fit(x, y)
    st = model.state_
    moved = st["mu_x"] + (unit(y.astype(np.float64)) - st["mu_y"]) @ st["matrix"].T  # before renormalising
    assert np.allclose(np.cov(moved.T, bias=True), np.cov(unit(x.astype(np.float64)).T, bias=True), atol=1e-10)


def test_blockwise_whitens_each_block_and_recalibrates():
    x, y = gapped(3000, d=6, seed=7, modality="image"), gapped(3000, d=6, seed=8)
    model = make("blockwise", {"rank": 2, "ridge_scale": 0.0}).fit(x, y)
    st = model.state_
    e = unit(unit(y.astype(np.float64)) - st["mu_y"] + st["mu_x"])
    moved = e @ st["matrix"].T
    q = st["q_u"]
    cov_x = np.cov(unit(x.astype(np.float64)).T, bias=True)
    assert np.allclose(q.T @ np.cov(moved.T, bias=True) @ q, q.T @ cov_x @ q, atol=1e-10)
    out = model.transform(y).astype(np.float64)
    assert np.linalg.norm(out.mean(0) - st["mu_x"]) < np.linalg.norm(unit(moved).mean(0) - st["mu_x"])
