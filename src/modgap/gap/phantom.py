"""Phantom drift of spherical centroids ([RA] Thm B.13–B.14, Cor B.15; spec gap-theory 1.10).

For Z = mu + eps with E[eps] = 0 and Cov(eps) = Sigma, E[Z/||Z||] differs from mu/||mu||:
Delta_pi = E[Z/||Z||] - mu/||mu||. The second-order formula is checked against Monte Carlo.
"""

from __future__ import annotations

import numpy as np

from modgap.stats.symmat import sym_power


def phantom_drift_2nd(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Thm B.14: -(1/r^2) Sigma a - (1/(2r^2)) a tr(Sigma) + (3/(2r^2)) a (a^T Sigma a), a = mu/r."""
    r = float(np.linalg.norm(mu))
    a = mu / r
    sa = sigma @ a
    return (-sa - 0.5 * a * np.trace(sigma) + 1.5 * a * float(a @ sa)) / r**2


def tangential(drift: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """(I - a a^T) drift: the part of the drift that rotates the centroid direction."""
    a = mu / np.linalg.norm(mu)
    return drift - a * float(a @ drift)


def phantom_drift_mc(
    mu: np.ndarray,
    sigma: np.ndarray,
    n: int,
    *,
    seed: int = 0,
    noise: str = "gaussian",
    batch: int = 65536,
) -> np.ndarray:
    """Monte-Carlo estimate of E[Z/||Z||] - mu/||mu||, eps = Sigma^{1/2} s.

    ``noise`` is the law of s: "gaussian" (standard normal) or "rademacher" (independent +-1, which
    reproduces the two-point worked example of Thm B.13 exactly). Samples come in antithetic
    pairs (s, -s), which cancels the first-order Monte-Carlo noise without biasing the estimate.
    Batched: memory O(batch * d).
    """
    if noise not in ("gaussian", "rademacher"):
        raise ValueError(f"noise must be 'gaussian' or 'rademacher', got {noise!r}")
    rng = np.random.default_rng(seed)
    root = sym_power(sigma, 0.5)
    d = mu.size
    total = np.zeros(d)
    done = 0
    while done < n:
        m = max(1, min(batch, n - done) // 2)
        s = rng.standard_normal((m, d)) if noise == "gaussian" else rng.choice([-1.0, 1.0], size=(m, d))
        eps = s @ root
        for z in (mu + eps, mu - eps):
            total += (z / np.linalg.norm(z, axis=1, keepdims=True)).sum(axis=0)
        done += 2 * m
    return total / done - mu / np.linalg.norm(mu)


def phantom_drift_empirical(points: np.ndarray) -> np.ndarray:
    """Drift of a finite set: mean of the normalised rows minus the normalised mean of the rows."""
    mean = points.mean(axis=0)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).mean(axis=0) - mean / np.linalg.norm(mean)


def phantom_summary(
    mu: np.ndarray, sigma: np.ndarray, points: np.ndarray | None = None, n_mc: int = 20000, seed: int = 0
) -> dict[str, float]:
    """Norms of the formula, Monte-Carlo and (given ``points``) empirical drifts, and the formula's error."""
    formula = phantom_drift_2nd(mu, sigma)
    mc = phantom_drift_mc(mu, sigma, n_mc, seed=seed)
    out = {
        "phantom_norm_2nd": float(np.linalg.norm(formula)),
        "phantom_norm_mc": float(np.linalg.norm(mc)),
        "phantom_tangential_2nd": float(np.linalg.norm(tangential(formula, mu))),
        "phantom_tangential_mc": float(np.linalg.norm(tangential(mc, mu))),
        "phantom_rel_error_2nd_vs_mc": float(np.linalg.norm(formula - mc) / max(np.linalg.norm(mc), 1e-300)),
        "phantom_mc_samples": n_mc,
    }
    if points is not None:
        emp = phantom_drift_empirical(points)
        out["phantom_norm_empirical"] = float(np.linalg.norm(emp))
        out["phantom_tangential_empirical"] = float(np.linalg.norm(tangential(emp, points.mean(axis=0))))
    return out
