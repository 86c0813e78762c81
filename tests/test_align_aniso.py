"""AnisoAlign: polar round trip, phase wrap-around, Lemma A.4 bound, Stage I target score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modgap.align import make
from modgap.align.aniso.geometry import (
    Potential,
    from_polar,
    kappa_bound,
    phase_stats_np,
    to_polar,
    wrap,
    wrapped_gaussian_score,
)
from test_align_data import gapped

X = gapped(800, d=16, seed=1, modality="image")
Y = gapped(700, d=16, seed=2)
FAST = {"rank": 6, "stage1_steps": 30, "stage1_batch": 128, "stage2_epochs": 3, "stage2_batch": 128}


def test_polar_round_trip():
    c = np.random.default_rng(0).standard_normal((50, 8))
    rho, theta = to_polar(c, eps=0.0)
    assert np.allclose(from_polar(rho, theta), c, atol=1e-12)
    rho_t, theta_t = to_polar(torch.as_tensor(c), eps=0.0)
    assert torch.allclose(from_polar(rho_t, theta_t), torch.as_tensor(c), atol=1e-12)
    assert np.all(theta >= -math.pi) and np.all(theta <= math.pi)


def test_phase_wrap_around():
    theta = torch.tensor([-math.pi, math.pi - 1e-6, 3.5, -3.5, 7 * math.pi, 0.1])
    wrapped = wrap(theta)
    assert torch.all(wrapped >= -math.pi) and torch.all(wrapped < math.pi)
    assert torch.allclose(torch.cos(wrapped), torch.cos(theta), atol=1e-5)
    assert torch.allclose(torch.sin(wrapped), torch.sin(theta), atol=1e-5)
    # the target score is 2*pi periodic in the noisy phase and continuous across +-pi
    x = torch.tensor([math.pi - 1e-4, -math.pi + 1e-4])
    mu = torch.tensor([3.0, 3.0])
    s = wrapped_gaussian_score(x, mu, torch.tensor(0.3))
    assert abs(float(s[0] - s[1])) < 1e-2
    s2 = wrapped_gaussian_score(x + 2 * math.pi, mu, torch.tensor(0.3))
    assert torch.allclose(s, s2, atol=1e-4)


def test_target_score_equals_analytic_wrapped_gaussian():
    """Compare with d/dx log of the Fourier (theta-function) form of the wrapped normal density."""
    x = torch.linspace(-math.pi, math.pi, 101, dtype=torch.float64)
    mu = torch.tensor(0.7, dtype=torch.float64)
    for var in (0.3, 0.5, 2.0):  # the Fourier form loses precision in far tails for small var
        n = torch.arange(1, 200, dtype=torch.float64)[:, None]
        coef = torch.exp(-(n**2) * var / 2)
        dens = 1 + 2 * (coef * torch.cos(n * (x - mu))).sum(0)
        ddens = -2 * (coef * n * torch.sin(n * (x - mu))).sum(0)
        analytic = ddens / dens
        ours = wrapped_gaussian_score(x, mu.expand_as(x), torch.tensor(var, dtype=torch.float64), n_wrap=5)
        assert torch.allclose(ours, analytic, atol=1e-6), var
    # small var: the wrapped score is the plain Gaussian score -(x - mu)/var near the mean
    near = torch.linspace(0.2, 1.2, 11, dtype=torch.float64)
    small = wrapped_gaussian_score(near, mu.expand_as(near), torch.tensor(0.01, dtype=torch.float64))
    assert torch.allclose(small, -(near - mu) / 0.01, atol=1e-9)
    # and the truncation |n| <= 3 is exact to float32 precision for var = 2 sigma_max^2 = 2
    coarse = wrapped_gaussian_score(x, mu.expand_as(x), torch.tensor(2.0, dtype=torch.float64), n_wrap=3)
    fine = wrapped_gaussian_score(x, mu.expand_as(x), torch.tensor(2.0, dtype=torch.float64), n_wrap=8)
    assert torch.allclose(coarse, fine, atol=1e-6)


def test_potential_gradient_is_exact():
    rng = np.random.default_rng(0)
    theta = rng.uniform(-math.pi, math.pi, (300, 5))
    stats = phase_stats_np(np.abs(rng.standard_normal((300, 5))) + 0.1, theta, degree=2)
    pot = Potential(stats)
    phi = torch.tensor(rng.uniform(-3, 3, (4, 5)), dtype=torch.float32, requires_grad=True)
    pot.value(phi).sum().backward()
    assert torch.allclose(phi.grad, pot.grad(phi.detach()), atol=1e-5)


def test_kappa_small_angle_form():
    assert kappa_bound(0.25, 0.2) == pytest.approx(0.354, abs=2e-3)
    assert kappa_bound(0.01, 0.01) == pytest.approx(math.hypot(0.01, 0.01), rel=2e-2)


def test_measured_perturbation_never_exceeds_lemma_bound():
    # A large LR and a V bound so the refinement really moves (the zero-initialised head starts at 0).
    params = {**FAST, "stage2_lr": 3e-2, "bound_v": 0.01, "check_rows": 700}
    model = make("anisoalign", params).fit(X, Y)
    pert = model.meta_["aniso"]["perturbation"]
    assert pert["eps_measured_max"] > 1e-3  # the refinement did something
    assert pert["eps_bound_violations"] == 0
    assert pert["eps_measured_max"] <= pert["eps_eff"]
    assert pert["normalised_shift_max"] <= pert["normalised_shift_bound"]
    assert pert["gram_change_max"] <= pert["gram_change_bound"]


def test_global_init_quantile_map_and_v_side():
    model = make("aniso_global_init", {"rank": 6}).fit(X, Y)
    init = model._init
    from modgap.align.source import unit_rows

    _, rho0, v0 = init(unit_rows(Y))
    # radial quantile matching: text radii now follow the image radii distribution per block
    rho_x, _ = to_polar(unit_rows(X) @ init.basis, 1e-8)
    for k in range(rho0.shape[1]):
        assert np.quantile(rho0[:, k], 0.5) == pytest.approx(np.quantile(rho_x[:, k], 0.5), rel=0.05)
    # v0 lies in V (orthogonal to U)
    assert np.abs(v0 @ model.state_["q_u"]).max() < 1e-10
    out = model.transform(Y).astype(np.float64)
    h = np.linalg.norm(model.state_["mu_x"] - model.state_["mu_hat"])
    assert np.linalg.norm(out.mean(0) - model.state_["mu_x"]) <= h  # in-sample calibration (cf. B.19)


def test_deterministic_fit():
    a = make("anisoalign", FAST).fit(X, Y).transform(Y[:50])
    b = make("anisoalign", FAST).fit(X, Y).transform(Y[:50])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("v_basis", ["eigen", "ambient"])
def test_float32_fast_path_matches_float64_operator(v_basis):
    model = make("anisoalign", {**FAST, "stage2_lr": 3e-2, "v_basis": v_basis}).fit(X, Y)
    from modgap.align.aniso.geometry import from_polar as fp
    from modgap.align.source import unit_rows

    y = unit_rows(Y[:200])
    theta0, rho0, v0 = model._init(y)
    th, rh, vv, _ = model._refine(theta0, rho0, v0)
    e = fp(rh, th) @ model._init.basis.T + vv
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    st = model.state_
    ref = e - st["mu_hat"] + st["mu_x"]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(model.transform(Y[:200]) - ref).max() < 1e-4
