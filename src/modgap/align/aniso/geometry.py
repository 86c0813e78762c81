"""AnisoAlign geometry: blockwise polar form, phase wrapping, the periodic phase potential, the
wrapped-Gaussian target score and the Lemma A.4 perturbation bound ([AA] §4.2-4.4, App. A.7;
spec alignment-methods 2.4, 2.5, 2.9). Functions take torch tensors unless named ``*_np``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

TWO_PI = 2 * math.pi


def wrap(theta: torch.Tensor) -> torch.Tensor:
    """Map angles to [-pi, pi)."""
    return torch.remainder(theta + math.pi, TWO_PI) - math.pi


def wrap_np(theta: np.ndarray) -> np.ndarray:
    return np.remainder(theta + np.pi, 2 * np.pi) - np.pi


def to_polar(c: torch.Tensor | np.ndarray, eps: float) -> tuple:
    """Blocks (a_k, b_k) = (c_{2k-1}, c_{2k}) -> rho_k = sqrt(a^2 + b^2 + eps), theta_k = atan2(b, a)."""
    a, b = c[..., 0::2], c[..., 1::2]
    if isinstance(c, np.ndarray):
        return np.sqrt(a * a + b * b + eps), np.arctan2(b, a)
    return torch.sqrt(a * a + b * b + eps), torch.atan2(b, a)


def from_polar(rho: torch.Tensor | np.ndarray, theta: torch.Tensor | np.ndarray):
    """Inverse of ``to_polar`` (up to the eps inside the radius): interleave rho cos, rho sin."""
    if isinstance(rho, np.ndarray):
        return np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=-1).reshape(*rho.shape[:-1], -1)
    return torch.stack([rho * torch.cos(theta), rho * torch.sin(theta)], dim=-1).reshape(*rho.shape[:-1], -1)


@dataclass(frozen=True)
class PhaseStats:
    """Stage I image phase statistics: anchors psi_bar, block weights alpha, graph E with A, eta."""

    anchor: np.ndarray  # (m,) psi_bar_k
    block_weight: np.ndarray  # (m,) alpha_k
    edges: np.ndarray  # (|E|, 2) int, k < l, each undirected edge once
    edge_amp: np.ndarray  # (|E|,) A_kl = |M_kl|
    edge_offset: np.ndarray  # (|E|,) eta_kl = arg M_kl


def phase_stats_np(rho: np.ndarray, theta: np.ndarray, degree: int, eps: float = 1e-12) -> PhaseStats:
    """M_kl = E[e^{i(theta_k - theta_l)}], anchors, block weights and the top-``degree`` graph (spec 2.5)."""
    m = theta.shape[1]
    u = np.exp(1j * theta)
    moment = (u.T @ u.conj()) / theta.shape[0]  # M_kl = E[u_k conj(u_l)]
    anchor = np.angle(u.mean(axis=0))
    energy = (rho**2).mean(axis=0)
    block_weight = energy / (energy.sum() + eps)
    amp = np.abs(moment)
    np.fill_diagonal(amp, -np.inf)
    keep = set()
    p = min(degree, m - 1)
    for k in range(m):
        # Top-p by |M_kl|; ties broken by index for determinism.
        for ell in np.argsort(-amp[k], kind="stable")[:p]:
            keep.add((min(k, int(ell)), max(k, int(ell))))
    edges = np.array(sorted(keep), dtype=np.int64).reshape(-1, 2)
    vals = moment[edges[:, 0], edges[:, 1]] if edges.size else np.zeros(0, complex)
    return PhaseStats(anchor, block_weight, edges, np.abs(vals), np.angle(vals))


class Potential:
    """Psi(phi) = sum_k alpha_k [1 - cos(phi_k - psi_k)] + sum_E A_kl [1 - cos(phi_k - phi_l - eta_kl)]."""

    def __init__(self, stats: PhaseStats):
        self.anchor = torch.as_tensor(stats.anchor, dtype=torch.float32)
        self.weight = torch.as_tensor(stats.block_weight, dtype=torch.float32)
        self.k = torch.as_tensor(stats.edges[:, 0], dtype=torch.long)
        self.ell = torch.as_tensor(stats.edges[:, 1], dtype=torch.long)
        self.amp = torch.as_tensor(stats.edge_amp, dtype=torch.float32)
        self.offset = torch.as_tensor(stats.edge_offset, dtype=torch.float32)

    def value(self, phi: torch.Tensor) -> torch.Tensor:
        diff = phi[..., self.k] - phi[..., self.ell] - self.offset
        return (self.weight * (1 - torch.cos(phi - self.anchor))).sum(-1) + (self.amp * (1 - torch.cos(diff))).sum(-1)

    def grad(self, phi: torch.Tensor) -> torch.Tensor:
        """Analytic gradient; M_lk = conj(M_kl) makes the per-k formula exact for both edge ends."""
        g = self.weight * torch.sin(phi - self.anchor)
        term = self.amp * torch.sin(phi[..., self.k] - phi[..., self.ell] - self.offset)
        g = g.index_add(-1, self.k, term)
        return g.index_add(-1, self.ell, -term)


def wrapped_gaussian_score(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, n_wrap: int = 3) -> torch.Tensor:
    """d/dx log q(x | mean, var) of the wrapped normal, truncated to |n| <= n_wrap (spec 2.5).

    score = sum_n w_n (-u_n / var), u_n = x - mean + 2 pi n, w_n proportional to exp(-u_n^2/(2 var)).
    """
    shifts = TWO_PI * torch.arange(-n_wrap, n_wrap + 1, dtype=x.dtype)
    u = wrap(x - mean).unsqueeze(-1) + shifts  # wrapping first keeps the central term the largest
    var = torch.as_tensor(var, dtype=x.dtype)
    var = var.unsqueeze(-1) if var.dim() > 0 else var
    logw = -(u * u) / (2 * var)
    w = torch.softmax(logw, dim=-1)
    return (w * (-u / var)).sum(-1)


def kappa_bound(bound_theta: float, bound_rho: float) -> float:
    """kappa(a_theta, a_rho) = sqrt((e^a_rho - 1)^2 + 4 e^a_rho sin^2(a_theta/2)) ([AA] App. A.7)."""
    e = math.exp(bound_rho)
    return math.sqrt((e - 1) ** 2 + 4 * e * math.sin(bound_theta / 2) ** 2)
