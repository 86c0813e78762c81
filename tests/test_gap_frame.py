"""Fixed-frame decomposition ([RA] §3): identities, planted PMB/POB, kappa_eff, coupling, vMF, leakage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import vonmises_fisher

from modgap.gap.frame import (
    ResidualBlocks,
    angle_gamma_v1,
    coupling_summary,
    decompose,
    fit_frame,
    leakage,
    mean_bias,
    pob_drift,
    spectral_locking,
    vmf_concentration,
    window_average,
)
from modgap.gap.paired import frame_summary, paired_moments
from modgap.gap.synthetic import planted_pairs
from modgap.stats.spectral import haar_subspace, kappa_eff, sin_theta


def _gaussian_pairs(n: int = 4000, d: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(2.0, 0.1, d)
    x = rng.standard_normal((n, d)) * scales + 1.0
    y = x + 0.3 * rng.standard_normal((n, d)) * scales[::-1] - 0.5
    return x, y


def test_decomposition_identity_and_orthogonality():
    x, y = _gaussian_pairs()
    frame = fit_frame(np.cov(x.T, bias=True), np.cov(y.T, bias=True), energy=0.9)
    parts = decompose(frame, x, y)
    recon = parts["beta"] + parts["gamma"] + parts["delta"] + parts["zeta"]
    assert np.abs(recon - parts["Delta"]).max() <= 1e-12
    assert np.abs(np.einsum("ij,ij->i", parts["delta"], parts["zeta"])).max() < 1e-12
    assert np.abs(parts["delta"].mean(0)).max() < 1e-12 and np.abs(parts["zeta"].mean(0)).max() < 1e-12
    # Prop B.4: E[(P_U Delta)(P_U Delta)^T] = beta beta^T + Cov(delta).
    pu_delta = frame.p_u(parts["Delta"])
    lhs = pu_delta.T @ pu_delta / len(x)
    rhs = np.outer(parts["beta"], parts["beta"]) + parts["delta"].T @ parts["delta"] / len(x)
    assert np.abs(lhs - rhs).max() < 1e-12


def test_planted_pmb_pob():
    # Planted: the mean gap c (e_x - e_y) is orthogonal to the shared frame -> beta = 0, gamma = m.
    planted = planted_pairs(20000, 48, seed=4)
    pm = paired_moments(planted.x, planted.y, frame_rank=4)
    summary, arrays = frame_summary(pm)
    truth = np.linalg.norm(planted.mu_x - planted.mu_y)
    assert summary["gamma_norm"] == pytest.approx(truth, abs=0.03)  # 4 s.e. of a mean
    assert summary["beta_norm"] < 0.02
    # U residual = the sign flips on the shared axes: trace 4 h^2 flip sum(p_shared).
    assert summary["tr_resid_U"] == pytest.approx(4 * 0.64 * 0.1 * 0.77, rel=0.05)
    assert summary["tr_resid_V"] == pytest.approx(2 * 0.64 * 0.23, rel=0.05)
    # Flips and residual axes are independent of each other: no U -> V coupling.
    assert summary["coupling_r2"] < 0.01 and summary["coupling_norm"] < 0.05
    # gamma is along e_x - e_y, orthogonal to every residual axis: angle ~ 90 degrees.
    assert summary["angle_gamma_v1"] > 85
    assert np.linalg.norm(arrays["beta"] + arrays["gamma"] - (pm.mu_x - pm.mu_y)) < 1e-12


def test_ridge_invariance_of_frame():
    x, y = _gaussian_pairs(seed=1)
    cx, cy = np.cov(x.T, bias=True), np.cov(y.T, bias=True)
    plain = fit_frame(cx, cy, rank=5)
    ridged = fit_frame(cx, cy, rank=5, ridge=0.7)
    assert sin_theta(plain.q_u, ridged.q_u) < 1e-10


def test_energy_rule_chooses_rank():
    eigs_cov = np.diag([5.0, 3.0, 1.0, 0.5, 0.3, 0.2])
    frame = fit_frame(eigs_cov, np.zeros((6, 6)), energy=0.8)  # 8/10 = 0.8 reached at k = 2
    assert frame.rank == 2


def test_kappa_eff_planted_and_isotropic():
    assert kappa_eff(np.ones(10)) == pytest.approx(1.0)
    # 99% of the trace of (100, 10, 1, 1e-6) is reached at k* = 2: kappa_eff = 100 / 10.
    assert kappa_eff(np.array([100.0, 10.0, 1.0, 1e-6])) == pytest.approx(10.0)
    assert kappa_eff(np.array([100.0, 10.0, 1.0, 1e-6]), energy=0.999) == pytest.approx(100.0)
    rng = np.random.default_rng(0)
    iso = rng.standard_normal((200_000, 8))
    from modgap.stats.spectral import eigh_desc

    eigs, _ = eigh_desc(iso.T @ iso / len(iso))
    assert kappa_eff(eigs) == pytest.approx(1.0, abs=0.05)


def test_coupling_recovers_planted_map():
    rng = np.random.default_rng(5)
    r, p, n = 4, 10, 40000
    lmap = 0.3 * rng.standard_normal((p, r))
    d = rng.standard_normal((n, r)) * np.array([2.0, 1.0, 0.5, 0.25])
    xi = 0.2 * rng.standard_normal((n, p))
    z = d @ lmap.T + xi
    blocks = ResidualBlocks.from_coords(np.hstack([d, z]), r)
    halves = (
        ResidualBlocks.from_coords(np.hstack([d, z])[::2], r),
        ResidualBlocks.from_coords(np.hstack([d, z])[1::2], r),
    )
    summary = coupling_summary(blocks, halves, ridge_scale=1e-6)
    signal = np.trace(lmap @ np.diag([4.0, 1.0, 0.25, 0.0625]) @ lmap.T)
    truth_r2 = signal / (signal + p * 0.04)
    assert summary["coupling_norm"] == pytest.approx(np.linalg.norm(lmap, 2), rel=0.03)
    assert summary["coupling_r2"] == pytest.approx(truth_r2, abs=0.01)
    assert summary["coupling_r2_heldout"] == pytest.approx(truth_r2, abs=0.01)


def test_vmf_concentration_recovered():
    p, kappa = 10, 50.0
    mu = np.zeros(p)
    mu[0] = 1.0
    samples = vonmises_fisher(mu, kappa).rvs(20000, random_state=np.random.default_rng(0))
    r_bar, k_hat = vmf_concentration(samples.sum(0), len(samples), p)
    assert k_hat == pytest.approx(kappa, rel=0.05)  # Banerjee's approximation is within ~1% here
    assert 0 < r_bar < 1


def test_angle_and_pob_drift():
    sigma_v = np.diag([3.0, 1.0, 0.5])
    assert angle_gamma_v1(np.array([0.0, 1.0, 0.0]), sigma_v) == pytest.approx(90.0)
    assert angle_gamma_v1(np.array([-2.0, 0.0, 0.0]), sigma_v) == pytest.approx(0.0, abs=1e-6)
    assert pob_drift(np.array([1.1, 0.0]), np.array([1.0, 0.0])) == pytest.approx(0.1)


def test_window_average_vs_pooled_lemma_b9():
    # Pooled covariance = mean of per-step covariances + covariance of the per-step means.
    rng = np.random.default_rng(7)
    steps = [rng.standard_normal((500, 5)) * (1 + s) + s for s in range(4)]
    covs = [np.cov(a.T, bias=True) for a in steps]
    means = np.array([a.mean(0) for a in steps])
    pooled = np.cov(np.vstack(steps).T, bias=True)
    assert np.abs(pooled - (window_average(covs) + np.cov(means.T, bias=True))).max() < 1e-12


def test_leakage_bounded_by_sin_theta_lemma_b7():
    rng = np.random.default_rng(8)
    d, r = 20, 5
    cov = np.diag(np.linspace(5, 0.1, d))
    frame = fit_frame(cov, cov, rank=r)
    for _ in range(5):
        q_t = np.linalg.qr(frame.q_u + 0.2 * haar_subspace(d, r, rng))[0]  # a rotated U_t
        grads = rng.standard_normal((64, r)) @ q_t.T  # gradients inside U_t
        leak = leakage(frame, [grads[:32], grads[32:]])
        assert leak["leak_ref"] <= sin_theta(frame.q_u, q_t) + 1e-12
        assert leak["leak_energy"] == pytest.approx(leak["leak_ref"] ** 2)


def test_spectral_locking_perfect():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((6, 6))
    sigma = a @ a.T
    out = spectral_locking(sigma, 3 * sigma)
    assert out["rho_eig"] == pytest.approx(1.0) and out["diag_corr"] == pytest.approx(1.0)
    beta, gamma = mean_bias(fit_frame(sigma, sigma, rank=2), np.ones(6))
    assert np.allclose(beta + gamma, np.ones(6))
