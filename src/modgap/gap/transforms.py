"""AnisoAlign's diagnostic transforms and the quantities of its Fig. 3 ([AA] §3.3; spec gap-theory §3).

All transforms act on the source (text) rows y of the paired diagnostic set, with statistics from
that same set. Project choices (the paper leaves them open): T_Sigma is CORAL with a relative ridge
1e-6 tr/d; T_perm replaces each text by a uniformly permuted diagnostic image; T_alpha moves the
centroid-corrected text a fraction alpha along the top-K eigenvectors of the paired Sigma_r toward
its image; outputs are re-normalised before any metric (the un-normalised residual spectrum is
kept as well).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modgap.stats.mixing import modality_mixing
from modgap.stats.spectral import anisotropy_ratio, eigh_desc, top_eigvecs
from modgap.stats.symmat import relative_ridge, sym_power
from modgap.validate import l2_normalise

ALPHA_GRID = tuple(round(0.1 * i, 1) for i in range(11))
CORAL_RIDGE = 1e-6


@dataclass(frozen=True)
class PairStats:
    """Means, covariances and the top-K residual basis of a paired (x, y) set."""

    mu_x: np.ndarray
    mu_y: np.ndarray
    cov_x: np.ndarray
    cov_y: np.ndarray
    resid_basis: np.ndarray  # (d, K) top eigenvectors of Sigma_r

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, k: int) -> PairStats:
        mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mu_x, y - mu_y
        r = xc - yc
        n = x.shape[0]
        _, basis = top_eigvecs(r.T @ r / n, min(k, x.shape[1]))
        return cls(mu_x, mu_y, xc.T @ xc / n, yc.T @ yc / n, basis)


def t_id(y: np.ndarray, stats: PairStats) -> np.ndarray:
    return y.copy()


def t_mu(y: np.ndarray, stats: PairStats) -> np.ndarray:
    return y - stats.mu_y + stats.mu_x


def t_sigma(y: np.ndarray, stats: PairStats) -> np.ndarray:
    """CORAL: mu_x + C_x^{1/2} C_y^{-1/2} (y - mu_y), C = Sigma + lambda I."""
    cx = sym_power(stats.cov_x, 0.5, relative_ridge(stats.cov_x, CORAL_RIDGE))
    cy = sym_power(stats.cov_y, -0.5, relative_ridge(stats.cov_y, CORAL_RIDGE))
    return stats.mu_x + (y - stats.mu_y) @ (cx @ cy).T


def t_perm(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Negative control: a uniformly random permutation of the diagnostic images."""
    return x[np.random.default_rng(seed).permutation(x.shape[0])].copy()


def t_alpha(x: np.ndarray, y: np.ndarray, stats: PairStats, alpha: float) -> np.ndarray:
    """Oracle path: y^x + alpha P_K (x - y^x), y^x = T_mu(y) (needs the pairs)."""
    yx = t_mu(y, stats)
    q = stats.resid_basis
    return yx + alpha * ((x - yx) @ q) @ q.T


def residual_spectrum(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Sorted eigenvalues of the uncentred second moment of x - z (alignment-methods §4.3)."""
    r = x - z
    eigs, _ = eigh_desc(r.T @ r / r.shape[0])
    return eigs


def transform_metrics(
    x: np.ndarray, y: np.ndarray, z_raw: np.ndarray, k: int, shuffles: int, seed: int
) -> tuple[dict[str, float], np.ndarray]:
    """Phi, Delta mu, Delta Sigma, mixing, A_r of one transform; plus its residual spectrum."""
    z = l2_normalise(z_raw)
    mu_x, mu_z = x.mean(axis=0), z.mean(axis=0)
    cov_x = np.cov(x.T, bias=True)
    cov_z = np.cov(z.T, bias=True)
    spec = residual_spectrum(x, z)
    out: dict[str, float] = {
        "Phi": float(np.mean(np.einsum("ij,ij->i", y, z))),
        "delta_mu": float(np.linalg.norm(mu_z - mu_x)),
        "delta_Sigma": float(np.linalg.norm(cov_z - cov_x) / np.linalg.norm(cov_x)),
        "A_r": anisotropy_ratio(spec, x.shape[1]),
        **modality_mixing(x, z, k=k, shuffles=shuffles, seed=seed),
    }
    return out, spec


def diagnostic_transforms(
    x: np.ndarray,
    y: np.ndarray,
    *,
    oracle_k: int = 32,
    alphas: Sequence[float] = ALPHA_GRID,
    knn_k: int = 20,
    shuffles: int = 20,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of T_id, T_mu, T_Sigma, T_perm and the T_alpha path on normalised paired rows."""
    x = l2_normalise(x)
    y = l2_normalise(y)
    stats = PairStats.fit(x, y, oracle_k)
    named = {
        "identity": t_id(y, stats),
        "centroid": t_mu(y, stats),
        "moment": t_sigma(y, stats),
        "perm": t_perm(x, seed),
    }
    results: dict[str, Any] = {"oracle_k": stats.resid_basis.shape[1], "knn_k": knn_k, "n_pairs": x.shape[0]}
    arrays: dict[str, np.ndarray] = {}
    for name, z in named.items():
        results[name], arrays[f"resid_eig_{name}"] = transform_metrics(x, y, z, knn_k, shuffles, seed)
        arrays[f"resid_eig_{name}_unnormalised"] = residual_spectrum(x, z)
    path = []
    for alpha in alphas:
        metrics, spec = transform_metrics(x, y, t_alpha(x, y, stats, alpha), knn_k, shuffles, seed)
        path.append({"alpha": float(alpha), **metrics})
        if np.isclose(alpha, 1.0):
            arrays["resid_eig_oracle"] = spec
    results["oracle_path"] = path
    base = results["identity"]
    results["relative_to_identity"] = {
        name: {key: _ratio(results[name][key], base[key]) for key in ("delta_mu", "delta_Sigma", "Phi")}
        for name in named
    }
    return results, arrays


def _ratio(value: float, base: float) -> float:
    return float(value / base) if base != 0 else float("nan")
