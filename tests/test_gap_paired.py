"""Paired-residual diagnostics: planted residual rank/energy, identities, eta_U, chunking, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.errors import InvalidEmbeddingsError
from modgap.gap.frame import fit_frame
from modgap.gap.paired import aniso_summary, coverage, paired_moments, residual_arrays
from modgap.gap.synthetic import planted_pairs
from modgap.stats.spectral import anisotropy_ratio, eigh_desc, participation_ratio


@pytest.fixture(scope="module")
def planted():
    return planted_pairs(30000, 48, seed=2)


@pytest.fixture(scope="module")
def moments(planted):
    return paired_moments(planted.x, planted.y, frame_rank=4, chunk_rows=5000)


def test_residual_covariance_recovered(planted, moments):
    # Entry-wise 1/sqrt(n) noise on O(0.1) variances: 0.01 absolute is ~5 s.e.
    assert np.abs(moments.sigma_r - planted.sigma_r).max() < 0.01
    eigs = residual_arrays(moments)["eig_resid"]
    planted_eigs, _ = eigh_desc(planted.sigma_r)
    # Planted rank 8 (4 shared-axis flips + 4 residual axes): the 9th eigenvalue is round-off.
    assert eigs[8] < 1e-10
    assert eigs[:8] == pytest.approx(planted_eigs[:8], rel=0.1)


def test_planted_energy_statistics(planted, moments):
    summary = aniso_summary(moments, ks=(1, 4, 8))
    truth_eigs, _ = eigh_desc(planted.sigma_r)
    d = planted.x.shape[1]
    assert summary["tr_Sigma_r"] == pytest.approx(np.trace(planted.sigma_r), rel=0.03)
    assert summary["A_r"] == pytest.approx(anisotropy_ratio(truth_eigs, d), rel=0.08)
    assert summary["d_eff_pr"] == pytest.approx(participation_ratio(truth_eigs), rel=0.05)
    assert summary["E_K"]["8"] == pytest.approx(1.0, abs=1e-9)  # all energy in the planted rank 8
    g2 = np.linalg.norm(planted.mu_x - planted.mu_y) ** 2
    assert summary["R_energy"] == pytest.approx(np.trace(planted.sigma_r) / (g2 + np.trace(planted.sigma_r)), rel=0.03)


def test_known_identities(planted, moments):
    summary = aniso_summary(moments, ks=(1,))
    # gain(1) = A_r; E||x-y||^2 = G_mu^2 + tr(Sigma_r); A_r >= 1; 1 <= d_eff <= d; E(d) = 1.
    assert summary["gain_K"]["1"] == pytest.approx(summary["A_r"], rel=1e-12)
    assert summary["energy_identity_error"] < 1e-12
    assert summary["A_r"] >= 1 and 1 <= summary["d_eff_pr"] <= 48
    assert residual_arrays(moments)["E_K"][-1] == pytest.approx(1.0, abs=1e-12)
    # Sigma_r = Sigma_x + Sigma_y - Sigma_xy - Sigma_yx from the cross-covariance.
    x = planted.x.astype(np.float64)
    y = planted.y.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxy = xc.T @ yc / len(x)
    via_cross = moments.cov_x + moments.cov_y - sxy - sxy.T
    assert np.abs(via_cross - moments.sigma_r).max() < 1e-13
    # D_center = E||r||, E||x - y||, R_dist as defined.
    assert moments.d_center == pytest.approx(np.linalg.norm(xc - yc, axis=1).mean(), rel=1e-12)
    assert moments.mean_dist == pytest.approx(np.linalg.norm(x - y, axis=1).mean(), rel=1e-12)


def test_random_projector_check(moments):
    summary = aniso_summary(moments, ks=(4, 16), random_draws=60)
    for rec in summary["random_projector"].values():
        assert abs(rec["mean"] - rec["K_over_d"]) < 4 * rec["se"]


def test_eta_u_coverage(planted, moments):
    # Unpaired frame = shared subspace (rank 4): it covers exactly the flip part of the residual.
    frame = fit_frame(planted.cov_x, planted.cov_y, rank=4)
    flip_energy = 4 * 0.64 * 0.1 * np.sum([0.30, 0.22, 0.15, 0.10])
    truth = flip_energy / np.trace(planted.sigma_r)
    assert coverage(moments.sigma_r, frame.q_u) == pytest.approx(truth, rel=0.05)
    summary = aniso_summary(moments, eta_bases={4: frame.q_u}, ks=(4,))
    rec = summary["eta_U"]["4"]
    assert rec["eta_U"] <= rec["oracle_E_r"] + 1e-12  # Ky Fan: the oracle subspace is optimal
    assert rec["random"] == pytest.approx(4 / 48)


def test_isotropic_null():
    # Independent uniform directions: Sigma_r = 2I/d, so A_r -> 1 and d_eff/d -> 1 as n grows.
    rng = np.random.default_rng(0)
    d, n = 16, 100_000
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d))
    summary = aniso_summary(paired_moments(x, y, frame_rank=4), ks=(1,))
    assert summary["A_r"] == pytest.approx(1.0, abs=0.05)
    assert summary["d_eff_over_d"] == pytest.approx(1.0, abs=0.01)


def test_chunked_equals_one_shot(planted, tmp_path):
    np.save(tmp_path / "x.npy", planted.x[:4000])
    np.save(tmp_path / "y.npy", planted.y[:4000])
    # A fixed frame: a refitted one may rotate within the degenerate (zero-variance) part of V.
    frame = fit_frame(planted.cov_x, planted.cov_y, rank=4)
    one = paired_moments(planted.x[:4000], planted.y[:4000], frame=frame, chunk_rows=10**6)
    many = paired_moments(tmp_path / "x.npy", tmp_path / "y.npy", frame=frame, chunk_rows=333)
    assert np.abs(one.sigma_r - many.sigma_r).max() < 1e-15
    assert one.d_center == pytest.approx(many.d_center, rel=1e-13)
    for a, b in zip(one.halves, many.halves, strict=True):
        assert np.abs(a.uu - b.uu).max() < 1e-14 and np.abs(a.vv - b.vv).max() < 1e-14
    assert np.abs(one.v_dir_sum - many.v_dir_sum).max() < 1e-10


def test_bad_paired_input(planted):
    x, y = planted.x[:100].copy(), planted.y[:100].copy()
    with pytest.raises(InvalidEmbeddingsError, match=r"paired sets differ in length.*100 rows.*99"):
        paired_moments(x, y[:99])
    y[42, 3] = np.nan
    with pytest.raises(InvalidEmbeddingsError, match=r"paired text set: .*NaN or Inf, first at row 42"):
        paired_moments(x, y, chunk_rows=16)
    x[77] = 0
    with pytest.raises(InvalidEmbeddingsError, match=r"paired image set: .*zero vector.*row 77"):
        paired_moments(x, planted.y[:100], chunk_rows=16)
    with pytest.raises(InvalidEmbeddingsError, match="at least 3 rows, got 2"):
        paired_moments(x[:2], y[:2])
