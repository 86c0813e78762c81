"""Stage I: target-modality periodic phase prior, trained on images only ([AA] §4.3; spec 2.5).

Denoising score matching on the torus: mu = wrap(phi - tau grad Psi(phi)), phi~ = wrap(mu + sqrt(2) sigma_t xi),
L_I = E[ lambda_t || s_phi(phi~, t, log rho) - grad log q(phi~ | mu, sigma_t) ||^2 ], lambda_t = 2 sigma_t^2.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import torch

from modgap.align.aniso.geometry import Potential, wrap, wrapped_gaussian_score
from modgap.align.aniso.nets import ScoreNet

log = logging.getLogger(__name__)


def sigma_of(t: torch.Tensor, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """sigma_t = sigma_min (sigma_max / sigma_min)^t (spec §6 schedule)."""
    return sigma_min * (sigma_max / sigma_min) ** t


def wrap_terms(p: dict[str, Any]) -> int:
    return int(p["wrap_terms"]) if p["wrap_terms"] is not None else (5 if p["sigma_max"] > 2 else 3)


def dsm_loss(
    net: ScoreNet,
    potential: Potential,
    phi: torch.Tensor,
    log_rho: torch.Tensor,
    p: dict[str, Any],
    gen: torch.Generator,
) -> torch.Tensor:
    """The weighted denoising-score-matching loss on a batch (shared by L_I and L_II)."""
    n = phi.shape[0]
    t = torch.rand(n, 1, generator=gen)
    sigma = sigma_of(t, p["sigma_min"], p["sigma_max"])
    var = 2 * sigma * sigma
    mu = wrap(phi - p["drift_step"] * potential.grad(phi))
    noisy = wrap(mu + torch.sqrt(var) * torch.randn(phi.shape, generator=gen))
    target = wrapped_gaussian_score(noisy, mu, var, wrap_terms(p))
    pred = net(noisy, torch.log(sigma), log_rho)
    return (var * (pred - target) ** 2).sum(-1).mean()


def train_score_net(
    theta: torch.Tensor, log_rho: torch.Tensor, potential: Potential, p: dict[str, Any], seed: int
) -> tuple[ScoreNet, dict[str, Any]]:
    """Train s_phi on image phases; returns the frozen EMA network and a small training log."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m = theta.shape[1]
    net = ScoreNet(m, int(p["score_width"]), int(p["score_depth"]))
    net.logrho_mean.copy_(log_rho.mean(0))
    net.logrho_std.copy_(log_rho.std(0).clamp_min(1e-6))
    ema = copy.deepcopy(net)
    opt = torch.optim.AdamW(net.parameters(), lr=float(p["stage1_lr"]))
    steps, batch, decay = int(p["stage1_steps"]), int(p["stage1_batch"]), float(p["stage1_ema"])
    losses = []
    for step in range(steps):
        idx = torch.randint(theta.shape[0], (min(batch, theta.shape[0]),), generator=gen)
        loss = dsm_loss(net, potential, theta[idx], log_rho[idx], p, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.mul_(decay).add_(pn, alpha=1 - decay)
        losses.append(float(loss.detach()))
        if step % max(1, steps // 10) == 0:
            log.info("stage I step %d/%d loss %.4f", step, steps, losses[-1])
    for q in ema.parameters():
        q.requires_grad_(False)
    ema.eval()
    tail = losses[-max(1, steps // 20) :] if losses else [math.nan]
    return ema, {"stage1_loss_first": losses[0] if losses else None, "stage1_loss_last": sum(tail) / len(tail)}
