"""Fixed U/V frame from unpaired covariances (spec alignment-methods 2.2, gap-theory 1.1).

Sigma = Sigma_t + Sigma_i + lambda*I; Q_U = top-r eigenvectors, Q_V = the rest. The ridge does not
change eigenvectors; it only enters an energy-threshold choice of r, which we compute *without* it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modgap.errors import ConfigError
from modgap.stats.spectral import rank_for_energy
from modgap.stats.symmat import eigh_desc


@dataclass(frozen=True)
class Frame:
    q_u: np.ndarray  # (d, r)
    q_v: np.ndarray  # (d, d - r)
    eig: np.ndarray  # (d,) eigenvalues of Sigma_t + Sigma_i (no ridge), descending
    ridge: float

    @property
    def rank(self) -> int:
        return int(self.q_u.shape[1])


def fixed_frame(
    cov_t: np.ndarray,
    cov_i: np.ndarray,
    *,
    rank: int | None = None,
    energy: float = 0.90,
    ridge_scale: float = 1e-6,
    even: bool = False,
) -> Frame:
    """Frame of ``cov_t + cov_i``; ``rank`` None = energy threshold; ``even`` rounds r up to even."""
    total = cov_t + cov_i
    d = total.shape[0]
    ridge = ridge_scale * float(np.trace(total)) / d
    eig, vecs = eigh_desc(total)
    r = rank_for_energy(eig, energy) if rank is None else int(rank)
    if even and r % 2:
        r = r + 1 if r + 1 < d else r - 1
    if not 1 <= r < d:
        raise ConfigError(f"frame rank r={r} must satisfy 1 <= r < d={d}")
    if even and r % 2:
        raise ConfigError(f"frame rank r={r} must be even (AnisoAlign blocks pair coordinates)")
    return Frame(q_u=vecs[:, :r], q_v=vecs[:, r:], eig=eig, ridge=ridge)
