"""Stage II: deterministic global initialisation and bounded refinement ([AA] §4.4; spec 2.6-2.8).

Init: y_bar = y - mu_t + mu_i; (rho, theta) = polar(B^T y_bar); theta0 = theta; rho0_k = F_x,k^-1(F_y,k(rho_k))
(1024-knot quantile tables, linear, clamped); v0 = P_V mu_i + D_V (y_V - P_V mu_t).
Refine: theta^ = wrap(theta0 + a_th tanh dth), rho^ = rho0 exp(a_rho tanh drho), v^ = v0 + a_v tanh(dv_V).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modgap.align.aniso.geometry import PhaseStats, Potential, from_polar, to_polar, wrap
from modgap.align.aniso.nets import Refiner, ScoreNet
from modgap.align.aniso.stage1 import dsm_loss

log = logging.getLogger(__name__)


@dataclass
class GlobalInit:
    """Everything the deterministic initialisation needs (all float64 numpy)."""

    basis: np.ndarray  # B = Q_U R, (d, r)
    mu_t: np.ndarray
    mu_i: np.ndarray
    knots_y: np.ndarray  # (m, K) text radius quantiles (re-centred text)
    knots_x: np.ndarray  # (m, K) image radius quantiles (raw images)
    v_matrix: np.ndarray  # (d, d): v0 = v_offset + (y - mu_t) @ v_matrix.T
    v_offset: np.ndarray  # P_V mu_i
    eps: float

    def __call__(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rho, theta = to_polar((y - self.mu_t + self.mu_i) @ self.basis, self.eps)
        rho0 = np.empty_like(rho)
        for k in range(rho.shape[1]):
            rho0[:, k] = np.interp(rho[:, k], self.knots_y[k], self.knots_x[k])  # clamps outside the range
        v0 = self.v_offset + (y - self.mu_t) @ self.v_matrix.T
        return theta, rho0, v0


def quantile_knots(radii: np.ndarray, n_knots: int) -> np.ndarray:
    """(m, K) per-block quantiles at K evenly spaced probabilities."""
    return np.quantile(radii, np.linspace(0, 1, n_knots), axis=0).T.copy()


def v_side_matrix(q_u: np.ndarray, q_v: np.ndarray, cov_x: np.ndarray, cov_y: np.ndarray, basis: str, eps: float):
    """D_V as a (d, d) matrix: 'eigen' = Q_V diag(sd_x/(sd_y+eps)) Q_V^T; 'ambient' = diag(s) P_V.

    Also returns the ambient scale vector s (None for 'eigen'), which allows an O(d r) apply.
    """
    if basis == "eigen":
        sd_x = np.sqrt(np.clip(np.einsum("ji,jk,ki->i", q_v, cov_x, q_v), 0, None))
        sd_y = np.sqrt(np.clip(np.einsum("ji,jk,ki->i", q_v, cov_y, q_v), 0, None))
        return (q_v * (sd_x / (sd_y + eps))) @ q_v.T, None
    p_v = np.eye(q_u.shape[0]) - q_u @ q_u.T
    sd_x = np.sqrt(np.clip(np.diag(p_v @ cov_x @ p_v), 0, None))
    sd_y = np.sqrt(np.clip(np.diag(p_v @ cov_y @ p_v), 0, None))
    scale = sd_x / (sd_y + eps)
    return scale[:, None] * p_v, scale


class Bounded:
    """Applies g_eta and the tanh bounds; ``q_u`` (float32 tensor) removes the U part of dv."""

    def __init__(self, refiner: Refiner | None, q_u: torch.Tensor, p: dict[str, Any]):
        self.refiner, self.q_u = refiner, q_u
        self.a_th, self.a_rho, self.a_v = float(p["bound_theta"]), float(p["bound_rho"]), float(p["bound_v"])
        self.reproject = bool(p["v_reproject"])

    def __call__(self, theta0: torch.Tensor, rho0: torch.Tensor, v0: torch.Tensor):
        if self.refiner is None:
            return theta0, rho0, v0, None
        return self.update(theta0, rho0, v0, *self.refiner(theta0, torch.log(rho0), v0))

    def update(self, theta0, rho0, v0, dth: torch.Tensor, drho: torch.Tensor, dv: torch.Tensor | None):
        """The bounded step from the raw refiner outputs (shared with the fused inference path)."""
        theta = wrap(theta0 + self.a_th * torch.tanh(dth))
        rho = rho0 * torch.exp(self.a_rho * torch.tanh(drho))
        leak = None
        if dv is not None and self.a_v > 0:
            dv_v = dv - (dv @ self.q_u) @ self.q_u.T
            step = self.a_v * torch.tanh(dv_v)
            leak = (step @ self.q_u).norm(dim=1)  # U-leakage of the bounded V update (spec 2.7 obs. 2)
            if self.reproject:
                step = step - (step @ self.q_u) @ self.q_u.T
            v0 = v0 + step
        return theta, rho, v0, leak


def phase_deformation(theta: torch.Tensor, theta0: torch.Tensor, rho0: torch.Tensor, edges: torch.Tensor):
    """L_Phi = (1/|E|) sum_E w_kl [1 - cos((th_k - th_l) - (th0_k - th0_l))], w from rho0 (no grad)."""
    k, ell = edges[:, 0], edges[:, 1]
    w = rho0[:, k] * rho0[:, ell]
    w = (w / (w.sum(1, keepdim=True) + 1e-12)).detach()
    dev = (theta[:, k] - theta[:, ell]) - (theta0[:, k] - theta0[:, ell])
    return (w * (1 - torch.cos(dev))).sum(1).mean() / max(1, edges.shape[0])


def mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Biased MMD^2 with an RBF kernel, bandwidth = median pooled pairwise distance (detached)."""
    pooled = torch.cat([a, b])
    dist2 = torch.cdist(pooled, pooled).pow(2)
    h2 = dist2.detach().median().clamp_min(1e-12)
    kern = torch.exp(-dist2 / h2)
    n = a.shape[0]
    return kern[:n, :n].mean() + kern[n:, n:].mean() - 2 * kern[:n, n:].mean()


def loss_terms(variant: str, with_base: bool) -> tuple[bool, bool, bool]:
    """(use L_base, use L_II, use L_Phi) per [AA] Table 4 variant (spec 2.11)."""
    return {
        "refine": (True, False, False),
        "refine_lii": (True, True, False),
        "refine_lphi": (True, False, True),
        "full": (with_base, True, True),
    }[variant]


def train_refiner(
    init: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    image_coords: torch.Tensor,
    bounded: Bounded,
    score_net: ScoreNet | None,
    potential: Potential,
    stats: PhaseStats,
    p: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Train g_eta (in ``bounded``) on the text statistics set's initial states."""
    theta0, rho0, v0 = init
    use_base, use_lii, use_lphi = loss_terms(p["variant"], bool(p["full_with_base"]))
    lam_phi = float(p["lambda_phi"]) if p["lambda_phi"] is not None else float(max(1, len(stats.edges)))
    edges = torch.as_tensor(stats.edges, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(bounded.refiner.parameters(), lr=float(p["stage2_lr"]))
    n, batch = theta0.shape[0], min(int(p["stage2_batch"]), theta0.shape[0])
    steps = 0
    history: list[dict[str, float]] = []
    for epoch in range(int(p["stage2_epochs"])):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1, batch):  # drop the ragged last batch (MMD needs full batches)
            idx = perm[i : i + batch]
            th, rh, _, _ = bounded(theta0[idx], rho0[idx], v0[idx])
            terms: dict[str, torch.Tensor] = {}
            if use_base:
                img = image_coords[torch.randint(image_coords.shape[0], (batch,), generator=gen)]
                terms["base"] = mmd2(from_polar(rh, th), img)
            if use_lii:
                terms["lii"] = dsm_loss(score_net, potential, th, torch.log(rh), p, gen)
            if use_lphi:
                terms["lphi"] = lam_phi * phase_deformation(th, theta0[idx], rho0[idx], edges)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        history.append({k: float(v.detach()) for k, v in terms.items()})
        if epoch % max(1, int(p["stage2_epochs"]) // 10) == 0:
            log.info("stage II epoch %d %s", epoch, history[-1])
    return {
        "stage2_steps": steps,
        "stage2_last_terms": history[-1] if history else {},
        "lambda_phi": lam_phi,
        "n_edges": len(stats.edges),
    }


def perturbation_check(
    y0: np.ndarray, z: np.ndarray, leak: np.ndarray | None, kappa: float, bound_v: float, d: int
) -> dict[str, float]:
    """Measured perturbation vs the Lemma A.4 bounds ([AA] App. A.7), relative to the global init.

    y0 = B c0 + v0 and z = B c^ + v^ (unnormalised); eps_i = ||z_i - y0_i|| / ||y0_i||.
    """
    norm0 = np.linalg.norm(y0, axis=1)
    eps_i = np.linalg.norm(z - y0, axis=1) / norm0
    eps_eff_i = kappa + bound_v * math.sqrt(d) / norm0
    eps_eff = float(eps_eff_i.max())
    yn, zn = y0 / norm0[:, None], z / np.linalg.norm(z, axis=1, keepdims=True)
    gram = np.abs(zn @ zn.T - yn @ yn.T).max()
    out = {
        "kappa": kappa,
        "eps_eff": eps_eff,
        "eps_measured_max": float(eps_i.max()),
        "eps_bound_violations": int(np.sum(eps_i > eps_eff_i + 1e-6)),
        "normalised_shift_max": float(np.linalg.norm(zn - yn, axis=1).max()),
        "gram_change_max": float(gram),
    }
    if eps_eff < 1:
        out["normalised_shift_bound"] = 2 * eps_eff / (1 - eps_eff)
        out["gram_change_bound"] = 4 * eps_eff / (1 - eps_eff)
    if leak is not None:
        out["v_update_u_leakage_max"] = float(leak.max())
    return out
