"""Phantom drift ([RA] Thm B.13–B.14, Cor B.15): worked example, isotropic case, formula vs Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.gap.phantom import (
    phantom_drift_2nd,
    phantom_drift_empirical,
    phantom_drift_mc,
    phantom_summary,
    tangential,
)


@pytest.mark.parametrize("a", [0.1, 0.5])
def test_worked_example_thm_b13(a):
    # mu = (1, 0), eps = (0, +-a): the spherical centroid is (1/sqrt(1 + a^2), 0). n = 1e6, tol 1e-3.
    mu = np.array([1.0, 0.0])
    drift = phantom_drift_mc(mu, np.diag([0.0, a * a]), 10**6, noise="rademacher")
    assert drift == pytest.approx([1 / np.sqrt(1 + a * a) - 1, 0.0], abs=1e-3)


def test_isotropic_has_no_tangential_drift_cor_b15():
    mu = np.array([0.8, 0.3, -0.2, 0.1])
    sigma = 0.01 * np.eye(4)
    assert np.linalg.norm(tangential(phantom_drift_2nd(mu, sigma), mu)) < 1e-15
    mc = phantom_drift_mc(mu, sigma, 200_000, seed=3)
    assert np.linalg.norm(tangential(mc, mu)) < 2e-4  # MC noise level; the radial part is ~5e-3
    assert np.linalg.norm(mc) > 4e-3


def test_anisotropy_off_the_anchor_gives_tangential_drift():
    mu = np.array([1.0, 0.0, 0.0])
    sigma = np.array([[0.02, 0.01, 0.0], [0.01, 0.02, 0.0], [0.0, 0.0, 0.01]])
    tang = tangential(phantom_drift_2nd(mu, sigma), mu)
    assert tang == pytest.approx([0.0, -0.01, 0.0], abs=1e-15)  # -(I - aa^T) Sigma a / r^2


def test_formula_converges_to_monte_carlo():
    # The error of the second-order formula shrinks at least like ||Sigma||^{3/2} (x8 per /4).
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    base = a @ a.T / 5
    mu = np.array([1.0, 0.5, 0.0, 0.0, 0.0])
    errors = []
    for t in (0.04, 0.01):
        mc = phantom_drift_mc(mu, t * base, 400_000, seed=1)
        errors.append(np.linalg.norm(phantom_drift_2nd(mu, t * base) - mc))
        rel = errors[-1] / np.linalg.norm(mc)
    assert errors[0] / errors[1] > 8
    assert rel < 0.05


def test_empirical_drift_and_summary():
    rng = np.random.default_rng(2)
    mu = np.array([0.9, 0.1, 0.0])
    sigma = np.diag([0.01, 0.03, 0.002])
    points = mu + rng.standard_normal((200_000, 3)) @ np.sqrt(sigma)
    emp = phantom_drift_empirical(points)
    assert emp == pytest.approx(phantom_drift_mc(mu, sigma, 200_000, seed=5), abs=2e-3)
    summary = phantom_summary(mu, sigma, points, n_mc=50_000)
    assert summary["phantom_rel_error_2nd_vs_mc"] < 0.1
    assert summary["phantom_tangential_2nd"] > 0
