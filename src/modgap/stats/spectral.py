"""Spectral summaries and subspace geometry shared by gap statistics and alignment (float64).

Conventions (spec gap-theory 0.3): eigenvalues sorted descending and clamped at 0 (via
:func:`modgap.stats.symmat.eigh_desc`), eigenvector signs arbitrary so every comparison of
subspaces goes through projectors or |cos|. Functions taking ``eigs`` expect such a vector.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from modgap.stats.symmat import eigh_desc

__all__ = [
    "anisotropy_ratio",
    "complement_basis",
    "cumulative_energy",
    "eigh_desc",
    "entropy_effective_rank",
    "haar_subspace",
    "kappa_eff",
    "kappa_full",
    "log_spectral_correlation",
    "overlap_curve",
    "participation_ratio",
    "rank_for_energy",
    "sin_theta",
    "subspace_overlap",
    "top_eigvecs",
]


def top_eigvecs(matrix: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``r`` eigenvalues (descending, clamped) and eigenvectors (d, r) of a symmetric matrix."""
    d = matrix.shape[0]
    if not 1 <= r <= d:
        raise ValueError(f"rank {r} outside [1, {d}]")
    sym = (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T) / 2
    vals, vecs = scipy.linalg.eigh(sym, subset_by_index=[d - r, d - 1])
    return np.clip(vals[::-1], 0.0, None), vecs[:, ::-1]


def complement_basis(basis: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, d - r) of the orthogonal complement of the columns of ``basis``."""
    d, r = basis.shape
    q, _ = np.linalg.qr(basis, mode="complete")
    return q[:, r:] if r < d else np.zeros((d, 0))


def rank_for_energy(eigs: np.ndarray, threshold: float) -> int:
    """Smallest k with sum_{j<=k} eigs_j / sum(eigs) >= threshold (the [RA] energy rule)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"energy threshold must be in (0, 1], got {threshold}")
    frac = cumulative_energy(eigs)
    # A relative tolerance so that threshold=1 returns the numerical rank, not d.
    return int(min(np.searchsorted(frac, threshold - 1e-12) + 1, eigs.size))


def cumulative_energy(eigs: np.ndarray) -> np.ndarray:
    """E(K) = sum_{j<=K} eigs_j / sum(eigs) for K = 1..p ([AA] App. A.4)."""
    total = float(np.sum(eigs))
    if total <= 0:
        raise ValueError("spectrum has zero total energy")
    return np.cumsum(eigs) / total


def participation_ratio(eigs: np.ndarray) -> float:
    """d_eff = (sum eigs)^2 / sum eigs^2 ([AA] App. A.4), between 1 and the dimension."""
    return float(np.sum(eigs) ** 2 / np.sum(eigs**2))


def entropy_effective_rank(eigs: np.ndarray) -> float:
    """Roy-Vetterli effective rank exp(H(p)), p_j = eigs_j / sum(eigs) ([RA] App. G reading)."""
    p = np.asarray(eigs, dtype=np.float64) / np.sum(eigs)
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def anisotropy_ratio(eigs: np.ndarray, dim: int | None = None) -> float:
    """A = lambda_max / (tr / dim) ([AA] A_r); ``dim`` defaults to the length of ``eigs``."""
    dim = eigs.size if dim is None else dim
    return float(eigs[0] / (np.sum(eigs) / dim))


def kappa_eff(eigs: np.ndarray, energy: float = 0.99) -> float:
    """lambda_1 / lambda_{k*}, k* the smallest k holding ``energy`` of the trace (spec 1.7 choice)."""
    k_star = rank_for_energy(eigs, energy)
    return float(eigs[0] / eigs[k_star - 1])


def kappa_full(eigs: np.ndarray, floor: float = 1e-12) -> float:
    """lambda_1 / lambda_p with lambda_p floored at ``floor * lambda_1`` (spec 1.7, 4.3)."""
    return float(eigs[0] / max(eigs[-1], floor * eigs[0]))


def log_spectral_correlation(
    eigs_a: np.ndarray, eigs_b: np.ndarray, max_rank: int | None = None, floor: float = 1e-12
) -> tuple[float, int]:
    """C_lambda = Pearson(log eigs_a, log eigs_b) over ranks 1..max_rank ([AA] §3.1).

    Eigenvalues are floored at ``floor * lambda_1`` of their own spectrum so that null directions
    (n < d) do not produce -inf; returns the correlation and the number of ranks used.
    """
    k = min(eigs_a.size, eigs_b.size) if max_rank is None else min(max_rank, eigs_a.size, eigs_b.size)
    if k < 2:
        raise ValueError(f"log-spectral correlation needs at least 2 ranks, got {k}")
    la = np.log(np.maximum(eigs_a[:k], floor * eigs_a[0]))
    lb = np.log(np.maximum(eigs_b[:k], floor * eigs_b[0]))
    return float(np.corrcoef(la, lb)[0, 1]), k


def subspace_overlap(basis_a: np.ndarray, basis_b: np.ndarray) -> float:
    """O = ||A^T B||_F^2 / q = tr(P_A P_B) / q for orthonormal (d, q) bases ([AA] O_q)."""
    q = basis_a.shape[1]
    return float(np.sum((basis_a.T @ basis_b) ** 2) / q)


def overlap_curve(vecs_a: np.ndarray, vecs_b: np.ndarray, q_max: int | None = None) -> np.ndarray:
    """O_q for q = 1..q_max from full eigenvector matrices (columns sorted by eigenvalue).

    One (q_max x q_max) product and a 2-D cumulative sum give every q at once.
    """
    q_max = vecs_a.shape[1] if q_max is None else q_max
    cross2 = (vecs_a[:, :q_max].T @ vecs_b[:, :q_max]) ** 2
    leading = np.cumsum(np.cumsum(cross2, axis=0), axis=1)
    q = np.arange(1, q_max + 1)
    return np.diagonal(leading) / q


def sin_theta(basis_a: np.ndarray, basis_b: np.ndarray) -> float:
    """sin of the largest principal angle between two r-dim subspaces = ||P_{A-perp} P_B||_2.

    Computed from the projection residual, not sqrt(1 - sigma_min^2), which loses half the digits
    for small angles.
    """
    resid = basis_b - basis_a @ (basis_a.T @ basis_b)
    return float(min(1.0, np.linalg.norm(resid, 2))) if resid.size else 0.0


def haar_subspace(dim: int, q: int, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal basis of a Haar-uniform q-dim subspace of R^dim (QR of a Gaussian matrix)."""
    g = rng.standard_normal((dim, q))
    basis, upper = np.linalg.qr(g)
    return basis * np.sign(np.diag(upper))
