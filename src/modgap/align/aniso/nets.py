"""The two AnisoAlign networks (architectures are our choice; [AA] does not report them, spec §6).

s_phi: phase score on the torus conditioned on log-radii and the noise level;
g_eta: instance-conditioned bounded-refinement head with a zero-initialised output layer, so
training starts exactly at the deterministic global initialisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

N_FOURIER = 8  # Fourier features of log sigma_t


def mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.SiLU()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


class ScoreNet(nn.Module):
    """s_phi(phi~, sigma_t, log rho) -> R^m; inputs [sin phi~, cos phi~, standardised log rho, Fourier(log sigma)]."""

    def __init__(self, m: int, width: int, depth: int):
        super().__init__()
        self.net = mlp(3 * m + 2 * N_FOURIER, width, depth, m)
        self.register_buffer("freqs", torch.arange(1, N_FOURIER + 1, dtype=torch.float32) * math.pi / 4)
        self.register_buffer("logrho_mean", torch.zeros(m))
        self.register_buffer("logrho_std", torch.ones(m))

    def forward(self, phi: torch.Tensor, log_sigma: torch.Tensor, log_rho: torch.Tensor) -> torch.Tensor:
        z = (log_rho - self.logrho_mean) / self.logrho_std
        f = log_sigma.reshape(-1, 1) * self.freqs
        return self.net(torch.cat([torch.sin(phi), torch.cos(phi), z, torch.sin(f), torch.cos(f)], dim=-1))


class Refiner(nn.Module):
    """g_eta([sin th0, cos th0, log rho0, v0]) -> (d_theta, d_rho[, d_v]); last layer zero-initialised.

    The d_v head exists only when alpha_v > 0: as written no loss depends on v^, so with alpha_v = 0
    (the default) it would be dead weight (spec 2.7 observation 1).
    """

    def __init__(self, m: int, d: int, width: int, depth: int, with_v: bool):
        super().__init__()
        self.m, self.d, self.with_v = m, d, with_v
        self.net = mlp(3 * m + d, width, depth, 2 * m + (d if with_v else 0))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, theta0: torch.Tensor, log_rho0: torch.Tensor, v0: torch.Tensor):
        return self.split(self.net(torch.cat([torch.sin(theta0), torch.cos(theta0), log_rho0, v0], dim=-1)))

    def split(self, out: torch.Tensor):
        """(d_theta, d_rho, d_v or None) from the last layer's output (inference runs the layers itself)."""
        m = self.m
        return out[:, :m], out[:, m : 2 * m], (out[:, 2 * m :] if self.with_v else None)
