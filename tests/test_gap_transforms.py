"""AnisoAlign diagnostic transforms (spec gap-theory §3) and the local-mixing metric."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.gap.transforms import (
    PairStats,
    diagnostic_transforms,
    residual_spectrum,
    t_alpha,
    t_mu,
    t_sigma,
)
from modgap.stats.mixing import binary_entropy, modality_mixing
from modgap.stats.spectral import eigh_desc


def _gapped_pairs(n: int = 600, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d)) * np.linspace(1.0, 0.2, d)
    offset = np.zeros(d)
    offset[0] = 0.8
    aniso = np.zeros(d)
    aniso[1] = 1.0
    x = shared + offset + 0.05 * rng.standard_normal((n, d))
    y = shared - offset + rng.standard_normal((n, 1)) * aniso + 0.05 * rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return x, y


def test_centroid_and_moment_transforms_match_statistics():
    x, y = _gapped_pairs()
    stats = PairStats.fit(x, y, k=4)
    assert np.abs(t_mu(y, stats).mean(0) - x.mean(0)).max() < 1e-12
    z = t_sigma(y, stats)
    # CORAL matches the mean exactly and the covariance up to the relative ridge (1e-6 tr/d).
    assert np.abs(z.mean(0) - x.mean(0)).max() < 1e-12
    assert np.abs(np.cov(z.T, bias=True) - stats.cov_x).max() < 1e-5


def test_oracle_removes_top_k_residual_directions():
    x, y = _gapped_pairs()
    k = 3
    stats = PairStats.fit(x, y, k=k)
    before = residual_spectrum(x, t_mu(y, stats))
    after = x - t_alpha(x, y, stats, 1.0)
    eig_after, _ = eigh_desc(after.T @ after / len(x))
    # At alpha = 1 the residual is (I - P_K) r: its spectrum is the old one without the top K.
    assert eig_after[: 16 - k] == pytest.approx(before[k:], rel=1e-8, abs=1e-14)
    assert np.abs(t_alpha(x, y, stats, 0.0) - t_mu(y, stats)).max() < 1e-15


def test_diagnostic_transforms_qualitative_pattern():
    x, y = _gapped_pairs(n=400)
    res, arrays = diagnostic_transforms(x, y, oracle_k=2, alphas=(0.0, 0.5, 1.0), shuffles=5)
    assert res["identity"]["Phi"] == pytest.approx(1.0)
    assert res["centroid"]["delta_mu"] < 0.5 * res["identity"]["delta_mu"]
    assert res["perm"]["delta_mu"] < 1e-12 and res["perm"]["delta_Sigma"] < 1e-12
    assert abs(res["perm"]["Phi"]) < res["centroid"]["Phi"]  # perm destroys instance semantics
    assert res["perm"]["M_Q"] > 0.8  # exact target distribution: near the random-mixing null
    assert res["identity"]["M_Q"] < res["centroid"]["M_Q"]  # removing the offset improves mixing
    phi = [p["Phi"] for p in res["oracle_path"]]
    assert phi[0] > phi[-1]  # moving toward the images trades source fidelity
    assert arrays["resid_eig_oracle"].shape == (16,)
    assert res["relative_to_identity"]["identity"]["Phi"] == pytest.approx(1.0)


def test_mixing_metric_extremes():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 8))
    b = rng.standard_normal((300, 8))
    same = modality_mixing(a, b, k=10, shuffles=5)
    assert same["M_Q"] == pytest.approx(1.0, abs=0.1)
    far = modality_mixing(a + 50 * np.eye(8)[0], b - 50 * np.eye(8)[0], k=10, shuffles=5)
    assert far["M_Q"] == pytest.approx(0.0, abs=1e-12)
    assert binary_entropy(np.array([0.0, 0.5, 1.0])) == pytest.approx([0.0, 1.0, 0.0])
