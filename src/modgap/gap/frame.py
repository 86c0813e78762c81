"""ReAlign's fixed-frame decomposition ([RA] §3, App. B–C; spec gap-theory §1).

The frame U (top-r eigenspace of Sigma_x + Sigma_y) and V = U-perp split the gap Delta = x - y into
PMB beta = P_U m, POB gamma = P_V m and zero-mean residuals delta in U, zeta in V. Everything that
needs only second moments of the residuals is computed from covariance blocks in frame
coordinates (spec 0.3 item 5), so the same code serves a streamed 1M-pair set and an in-memory probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modgap.stats.spectral import (
    anisotropy_ratio,
    eigh_desc,
    kappa_eff,
    kappa_full,
    rank_for_energy,
)

DEFAULT_ENERGY = 0.90  # theta_E, spec 1.1 (unspecified in the paper; project choice)
DRIFT_EPS = 1e-12  # epsilon of the POB drift, spec 1.4
COUPLING_RIDGE = 1e-3  # lambda = COUPLING_RIDGE * tr(D D^T) / r, spec 1.11


@dataclass(frozen=True)
class Frame:
    """Orthonormal bases of U (d, r) and V (d, d - r) plus the spectrum of Sigma_x + Sigma_y."""

    q_u: np.ndarray
    q_v: np.ndarray
    eigs: np.ndarray
    energy: float | None = None

    @property
    def rank(self) -> int:
        return self.q_u.shape[1]

    @property
    def basis(self) -> np.ndarray:
        """Full rotation [Q_U | Q_V] (d, d): coordinates c = basis^T z split as c[:r], c[r:]."""
        return np.hstack([self.q_u, self.q_v])

    def p_u(self, z: np.ndarray) -> np.ndarray:
        """Ambient projection P_U z for a vector or rows."""
        return (z @ self.q_u) @ self.q_u.T

    def p_v(self, z: np.ndarray) -> np.ndarray:
        return z - self.p_u(z)


def fit_frame(
    cov_x: np.ndarray,
    cov_y: np.ndarray,
    *,
    rank: int | None = None,
    energy: float = DEFAULT_ENERGY,
    ridge: float = 0.0,
) -> Frame:
    """Frame from the summed covariances; r fixed or the smallest k holding ``energy`` of the trace.

    ``ridge`` (the [AA] lambda*I) shifts every eigenvalue equally, so with a fixed r it leaves Q_U
    unchanged; it only matters when r is chosen by an energy fraction that includes it.
    """
    total = np.asarray(cov_x, dtype=np.float64) + np.asarray(cov_y, dtype=np.float64)
    total = total + ridge * np.eye(total.shape[0])
    eigs, vecs = eigh_desc(total)
    r = rank_for_energy(eigs, energy) if rank is None else int(rank)
    if not 1 <= r < eigs.size:
        raise ValueError(f"frame rank must be in [1, {eigs.size - 1}], got {r}")
    return Frame(vecs[:, :r].copy(), vecs[:, r:].copy(), eigs, None if rank is not None else energy)


def mean_bias(frame: Frame, gap_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PMB beta = P_U m and POB gamma = P_V m of the mean gap m = mu_x - mu_y (Eq. 1)."""
    beta = frame.p_u(gap_mean)
    return beta, gap_mean - beta


def decompose(frame: Frame, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair decomposition Delta_i = beta + gamma + delta_i + zeta_i (ambient vectors, Lemma B.3)."""
    delta_all = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    m = delta_all.mean(axis=0)
    beta, gamma = mean_bias(frame, m)
    centred = delta_all - m
    delta = frame.p_u(centred)
    return {"Delta": delta_all, "m": m, "beta": beta, "gamma": gamma, "delta": delta, "zeta": centred - delta}


@dataclass(frozen=True)
class ResidualBlocks:
    """Second moments of the centred residual in frame coordinates (each a 1/n moment)."""

    uu: np.ndarray  # Sigma_U = Cov(Q_U^T delta)
    vu: np.ndarray  # E[(Q_V^T zeta)(Q_U^T delta)^T]
    vv: np.ndarray  # Sigma_V = Cov(Q_V^T zeta)

    @classmethod
    def from_cov(cls, frame: Frame, sigma_r: np.ndarray) -> ResidualBlocks:
        rot = frame.basis.T @ sigma_r @ frame.basis
        r = frame.rank
        return cls(rot[:r, :r], rot[r:, :r], rot[r:, r:])

    @classmethod
    def from_moment(cls, moment: np.ndarray, rank: int) -> ResidualBlocks:
        """From a (d, d) second moment of residual coordinates [Q_U | Q_V]^T r."""
        return cls(moment[:rank, :rank], moment[rank:, :rank], moment[rank:, rank:])

    @classmethod
    def from_coords(cls, coords: np.ndarray, rank: int) -> ResidualBlocks:
        """From centred residual coordinates (n, d) (second moment, 1/n)."""
        return cls.from_moment(coords.T @ coords / coords.shape[0], rank)


def spectrum_summary(eigs: np.ndarray, prefix: str) -> dict[str, float]:
    """Trace, kappa_eff, kappa_full and A_W of one residual block (spec 1.6-1.7)."""
    return {
        f"tr_resid_{prefix}": float(np.sum(eigs)),
        f"kappa_eff_{prefix}": kappa_eff(eigs),
        f"kappa_full_{prefix}": kappa_full(eigs),
        f"A_{prefix}": anisotropy_ratio(eigs),
    }


def angle_gamma_v1(gamma_coords_v: np.ndarray, sigma_v: np.ndarray) -> float:
    """arccos(|<gamma, v_1>| / ||gamma||) in degrees, v_1 the top eigenvector of Sigma_V (spec 1.9)."""
    _, vecs = eigh_desc(sigma_v)
    norm = np.linalg.norm(gamma_coords_v)
    if norm == 0:
        return float("nan")
    cos = abs(float(vecs[:, 0] @ gamma_coords_v)) / norm
    return float(np.degrees(np.arccos(min(1.0, cos))))


def vmf_concentration(direction_sum: np.ndarray, n: int, p: int) -> tuple[float, float]:
    """(R_bar, kappa_hat): Banerjee's approximation to the vMF MLE from a sum of n unit vectors in R^p."""
    r_bar = float(np.linalg.norm(direction_sum) / n)
    if r_bar >= 1.0:
        return r_bar, float("inf")
    return r_bar, float(r_bar * (p - r_bar**2) / (1 - r_bar**2))


def coupling(blocks: ResidualBlocks, ridge_scale: float = COUPLING_RIDGE) -> np.ndarray:
    """Ridge map L = Z D^T (D D^T + lambda I)^-1, lambda = ridge_scale * tr(D D^T) / r (spec 1.11).

    With D D^T = n Sigma_U and Z D^T = n C_VU the factors of n cancel.
    """
    r = blocks.uu.shape[0]
    lam = ridge_scale * np.trace(blocks.uu) / r
    gram = blocks.uu + lam * np.eye(r)
    # L gram = C_VU  <=>  gram L^T = C_VU^T (gram is symmetric positive definite).
    return np.linalg.solve(gram, blocks.vu.T).T


def coupling_r2(coupling_map: np.ndarray, blocks: ResidualBlocks) -> float:
    """R^2 = 1 - ||Z - L D||_F^2 / ||Z||_F^2, expanded in second moments of ``blocks``."""
    lu = coupling_map @ blocks.uu
    resid = np.trace(blocks.vv) - 2 * np.sum(coupling_map * blocks.vu) + np.sum(lu * coupling_map)
    return float(1.0 - resid / np.trace(blocks.vv))


def coupling_summary(
    blocks: ResidualBlocks,
    halves: tuple[ResidualBlocks, ResidualBlocks] | None = None,
    ridge_scale: float = COUPLING_RIDGE,
) -> dict[str, float]:
    """||L||_2, in-sample R^2 and (given two halves) R^2 of the map fitted on one, scored on the other."""
    lmap = coupling(blocks, ridge_scale)
    out = {
        "coupling_norm": float(np.linalg.norm(lmap, 2)) if lmap.size else 0.0,
        "coupling_r2": coupling_r2(lmap, blocks),
        "coupling_ridge_scale": ridge_scale,
    }
    if halves is not None:
        out["coupling_r2_heldout"] = coupling_r2(coupling(halves[0], ridge_scale), halves[1])
    return out


def pob_drift(gamma: np.ndarray, gamma_ref: np.ndarray, eps: float = DRIFT_EPS) -> float:
    """drift(t) = ||gamma(t) - gamma(t0)|| / max(||gamma(t0)||, eps) (spec 1.4)."""
    return float(np.linalg.norm(gamma - gamma_ref) / max(np.linalg.norm(gamma_ref), eps))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def window_average(covs: Sequence[np.ndarray]) -> np.ndarray:
    """Sigma-bar = mean of per-step covariances; never pool samples across steps (Lemma B.9)."""
    return np.mean(np.stack(covs), axis=0)


def spectral_locking(sigma_u: np.ndarray, grad_cov_u: np.ndarray) -> dict[str, float]:
    """rho_eig (Pearson of sorted spectra, raw and log) and the fixed-basis diagonal correlation (1.8)."""
    ev_s, _ = eigh_desc(sigma_u)
    ev_g, _ = eigh_desc(grad_cov_u)
    floor = 1e-300
    return {
        "rho_eig": _pearson(ev_s, ev_g),
        "rho_eig_log": _pearson(np.log(np.maximum(ev_s, floor)), np.log(np.maximum(ev_g, floor))),
        "diag_corr": _pearson(np.diag(sigma_u), np.diag(grad_cov_u)),
    }


def leakage(frame: Frame, grads: Sequence[np.ndarray]) -> dict[str, float]:
    """Norm and energy ratios of gradient mass in V (spec 1.5), pooled and per gradient set."""
    out: dict[str, Any] = {}
    tot_all = v_all = 0.0
    for name, g in zip(("img", "txt"), grads, strict=False):
        total = float(np.sum(g * g))
        in_v = float(np.sum(frame.p_v(g) ** 2))
        out[f"leak_{name}"] = float(np.sqrt(in_v / total)) if total > 0 else float("nan")
        tot_all += total
        v_all += in_v
    out["leak_ref"] = float(np.sqrt(v_all / tot_all)) if tot_all > 0 else float("nan")
    out["leak_energy"] = float(v_all / tot_all) if tot_all > 0 else float("nan")
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
