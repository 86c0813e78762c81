"""Local modality mixing of a pooled set Q = X u Z (spec alignment-methods §4.2, [AA] M_k).

For each u in Q, p_k(u) is the fraction of its k nearest neighbours (cosine, self excluded) that are
target points X; the binary entropy H2(p_k) is averaged over Z, X or Q and divided by the same
average under random relabelling of the origins with the k-NN graph kept fixed (20 shuffles).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from modgap.validate import l2_normalise


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H2(p) in bits with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    inner = (p > 0) & (p < 1)
    q = p[inner]
    out[inner] = -q * np.log2(q) - (1 - q) * np.log2(1 - q)
    return out


def knn_graph(points: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest neighbours by cosine, the row itself excluded."""
    unit = l2_normalise(points)
    # On unit vectors Euclidean order equals cosine order; kneighbors() without X skips the query index.
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(unit)
    return nn.kneighbors(return_distance=False)


def modality_mixing(
    target: np.ndarray, source: np.ndarray, k: int = 20, shuffles: int = 20, seed: int = 0
) -> dict[str, float]:
    """Raw and null-normalised mean H2 over Q, X (target) and Z (source)."""
    pooled = np.vstack([target, source])
    is_x = np.zeros(pooled.shape[0], dtype=bool)
    is_x[: target.shape[0]] = True
    graph = knn_graph(pooled, k)

    def averages(labels: np.ndarray) -> np.ndarray:
        h = binary_entropy(labels[graph].mean(axis=1))
        return np.array([h.mean(), h[labels].mean(), h[~labels].mean()])

    observed = averages(is_x)
    rng = np.random.default_rng(seed)
    null = np.mean([averages(rng.permutation(is_x)) for _ in range(shuffles)], axis=0)
    names = ("Q", "X", "Z")
    out = {f"M_{n}_raw": float(v) for n, v in zip(names, observed, strict=True)}
    out.update({f"M_{n}": float(v / nv) for n, v, nv in zip(names, observed, null, strict=True)})
    out["k"] = k
    return out
