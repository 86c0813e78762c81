"""Sorted, clamped eigendecompositions and matrix powers of symmetric PSD matrices (float64).

Shared helper (spec gap-theory 0.3 item 4): eigenvalues in descending order, round-off negatives
clamped to 0. Used by alignment (frames, CORAL, blockwise whitening) and available to gap statistics.
"""

from __future__ import annotations

import numpy as np


def eigh_desc(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clamped at 0) and matching eigenvector columns of a symmetric matrix."""
    sym = (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T) / 2
    vals, vecs = np.linalg.eigh(sym)
    order = np.argsort(vals)[::-1]
    return np.clip(vals[order], 0.0, None), vecs[:, order]


def sym_power(matrix: np.ndarray, power: float, ridge: float = 0.0) -> np.ndarray:
    """(M + ridge*I)^power via the eigendecomposition; negative powers need ridge > 0 or M > 0."""
    vals, vecs = eigh_desc(matrix)
    vals = vals + ridge
    if power < 0 and np.any(vals <= 0):
        raise ValueError("negative matrix power of a singular matrix: add a ridge")
    return (vecs * vals**power) @ vecs.T


def relative_ridge(matrix: np.ndarray, scale: float) -> float:
    """``scale * tr(M) / dim``: a ridge that is relative to the average eigenvalue (spec 3.7, 3.9)."""
    return float(scale * np.trace(matrix) / matrix.shape[0])
