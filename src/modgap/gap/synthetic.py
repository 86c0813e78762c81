"""Paired unit-norm embeddings with planted, analytically known gap structure (tests, benchmarks).

Each pair picks one axis j with probability p_j and a sign s = +-1:
    x = c e_x + h s w_j,     y = c e_y + h s' w'_j,
with e_x, e_y, all w_j and w'_j orthonormal and c^2 + h^2 = 1, so every row has norm exactly 1
and the planted values survive the projection onto the sphere. Axes come in two kinds:
- *shared* (w'_j = w_j): the text sign is flipped with probability ``flip``; the residual
  x - y then lies in the shared subspace (variance 4 h^2 p_j flip along w_j);
- *residual* (w'_j a separate axis): the residual is h s (w_j - w'_j), variance 2 h^2 p_j along
  (w_j - w'_j)/sqrt 2, orthogonal to the shared subspace.
Population truths (means, covariances, Sigma_r, the shared basis) are returned with the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modgap.stats.spectral import haar_subspace


@dataclass
class Planted:
    x: np.ndarray
    y: np.ndarray
    mu_x: np.ndarray
    mu_y: np.ndarray
    cov_x: np.ndarray
    cov_y: np.ndarray
    sigma_r: np.ndarray
    shared_basis: np.ndarray  # (d, n_shared), ordered by decreasing p
    resid_basis: np.ndarray  # (d, n_resid) directions (w_j - w'_j)/sqrt 2


def planted_pairs(
    n: int,
    dim: int = 48,
    *,
    centre: float = 0.6,
    p_shared: tuple[float, ...] = (0.30, 0.22, 0.15, 0.10),
    p_resid: tuple[float, ...] = (0.09, 0.07, 0.045, 0.025),
    flip: float = 0.1,
    seed: int = 0,
    dtype: type = np.float32,
) -> Planted:
    k_s, k_r = len(p_shared), len(p_resid)
    if 2 + k_s + 2 * k_r > dim:
        raise ValueError(f"dimension {dim} too small for {k_s} shared and {k_r} residual axes")
    p = np.array(p_shared + p_resid, dtype=np.float64)
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    axes = haar_subspace(dim, 2 + k_s + 2 * k_r, rng).T  # orthonormal rows
    e_x, e_y = axes[0], axes[1]
    w = axes[2 : 2 + k_s + k_r]  # x-side axes (shared then residual)
    w_text = np.vstack([w[:k_s], axes[2 + k_s + k_r :]])  # y-side axes
    h = np.sqrt(1 - centre**2)
    j = rng.choice(k_s + k_r, size=n, p=p)
    s = rng.choice([-1.0, 1.0], size=n)
    s_text = np.where((j < k_s) & (rng.random(n) < flip), -s, s)
    x = centre * e_x + h * s[:, None] * w[j]
    y = centre * e_y + h * s_text[:, None] * w_text[j]

    cov_x = h**2 * (w.T * p) @ w
    cov_y = h**2 * (w_text.T * p) @ w_text
    ps, pr = p[:k_s], p[k_s:]
    resid_dirs = (w[k_s:] - w_text[k_s:]) / np.sqrt(2)
    sigma_r = 4 * h**2 * (w[:k_s].T * (ps * flip)) @ w[:k_s] + 2 * h**2 * (resid_dirs.T * pr) @ resid_dirs
    return Planted(
        x.astype(dtype),
        y.astype(dtype),
        centre * e_x,
        centre * e_y,
        cov_x,
        cov_y,
        sigma_r,
        w[:k_s].T.copy(),
        resid_dirs.T.copy(),
    )
