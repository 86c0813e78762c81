"""Paired-residual diagnostics on the held-out paired split ([AA] §3.2, App. A.3–A.5; [RA] §3).

Two streaming float64 passes over the pairs (memory O(d^2), independent of n):
1. marginal moments of x and y and the covariance of Delta = x - y, which *is* Sigma_r
   (r_i = Delta_i - m, spec 2.4-2.6; the means come from the same paired set, so r is zero-mean);
2. with m known: E||r|| (D_center) and, given a frame, the residual second moments of two halves
   (even/odd rows, for the held-out coupling R^2) and the sum of V-directions (vMF, spec 1.9).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modgap.gap.frame import (
    DEFAULT_ENERGY,
    Frame,
    ResidualBlocks,
    angle_gamma_v1,
    coupling_summary,
    fit_frame,
    mean_bias,
    spectrum_summary,
    vmf_concentration,
)
from modgap.gap.inputs import Source, open_two
from modgap.stats.moments import DEFAULT_CHUNK_ROWS, MomentAccumulator
from modgap.stats.spectral import (
    anisotropy_ratio,
    cumulative_energy,
    eigh_desc,
    entropy_effective_rank,
    haar_subspace,
    participation_ratio,
    rank_for_energy,
)
from modgap.validate import check_embeddings, l2_normalise

REPORT_K = (1, 8, 32, 128)
ENERGY_SWEEP = (0.80, 0.90, 0.95, 0.99)
RIDGE_SWEEP = (1e-4, 1e-3, 1e-2)


@dataclass
class PairedMoments:
    """Everything the paired diagnostics need, accumulated in one or two streaming passes."""

    n: int
    mu_x: np.ndarray
    mu_y: np.ndarray
    cov_x: np.ndarray
    cov_y: np.ndarray
    sigma_r: np.ndarray
    mean_dist: float  # E||x - y||
    mean_sq_dist: float  # E||x - y||^2
    d_center: float  # E||r||
    frame: Frame | None = None
    halves: tuple[ResidualBlocks, ResidualBlocks] | None = None
    v_dir_sum: np.ndarray | None = None
    v_dir_n: int = 0

    @property
    def dim(self) -> int:
        return self.mu_x.size

    @property
    def gap_mean(self) -> np.ndarray:
        return self.mu_x - self.mu_y


def _normalised_pairs(
    x: np.ndarray, y: np.ndarray, names: tuple[str, str], chunk_rows: int
) -> Iterable[tuple[int, np.ndarray, np.ndarray]]:
    for start in range(0, x.shape[0], chunk_rows):
        xs = np.asarray(x[start : start + chunk_rows])
        ys = np.asarray(y[start : start + chunk_rows])
        check_embeddings(xs, names[0], start_row=start)
        check_embeddings(ys, names[1], start_row=start)
        yield start, l2_normalise(xs), l2_normalise(ys)


def paired_moments(
    image: Source,
    text: Source,
    *,
    frame: Frame | None = None,
    fit_frame_from_pairs: bool = True,
    frame_rank: int | None = None,
    frame_energy: float = DEFAULT_ENERGY,
    image_name: str = "paired image set",
    text_name: str = "paired text set",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> PairedMoments:
    """Stream the pairs twice; without ``frame``, fit the [RA] frame on this set's marginals."""
    x, y = open_two(image, text, image_name, text_name, paired=True, min_rows=3)
    names = (image_name, text_name)
    d = x.shape[1]
    acc_x = MomentAccumulator(d, name=image_name, normalise=False)
    acc_y = MomentAccumulator(d, name=text_name, normalise=False)
    acc_d = MomentAccumulator(d, name="paired differences", normalise=False)
    dist_sum = sq_sum = 0.0
    for start, xs, ys in _normalised_pairs(x, y, names, chunk_rows):
        diff = xs - ys
        acc_x.update(xs, start)
        acc_y.update(ys, start)
        acc_d.update(diff, start)
        sq = np.einsum("ij,ij->i", diff, diff)
        sq_sum += float(sq.sum())
        dist_sum += float(np.sqrt(sq).sum())
    n = acc_x.n
    m = acc_x.mean - acc_y.mean
    if frame is None and fit_frame_from_pairs:
        frame = fit_frame(acc_x.cov, acc_y.cov, rank=frame_rank, energy=frame_energy)

    # Pass 2: quantities that need the mean gap m (and the frame) first.
    resid_norm_sum = 0.0
    moments = [np.zeros((d, d)), np.zeros((d, d))]
    counts = [0, 0]
    v_sum = np.zeros(d - frame.rank) if frame is not None else None
    v_n = 0
    basis = frame.basis if frame is not None else None
    for start, xs, ys in _normalised_pairs(x, y, names, chunk_rows):
        diff = xs - ys
        resid = diff - m
        resid_norm_sum += float(np.sqrt(np.einsum("ij,ij->i", resid, resid)).sum())
        if frame is None:
            continue
        coords = resid @ basis
        # Halves by global row parity, so the split does not depend on the chunk size.
        for half in (0, 1):
            part = coords[(start + half) % 2 :: 2]
            moments[half] += part.T @ part
            counts[half] += part.shape[0]
        v_part = diff @ frame.q_v  # the V-part of the gap including gamma (spec 1.9)
        v_norm = np.linalg.norm(v_part, axis=1)
        keep = v_norm > 0
        v_sum += (v_part[keep] / v_norm[keep, None]).sum(axis=0)
        v_n += int(keep.sum())
    halves = None
    if frame is not None and min(counts) > 0:
        halves = (
            ResidualBlocks.from_moment(moments[0] / counts[0], frame.rank),
            ResidualBlocks.from_moment(moments[1] / counts[1], frame.rank),
        )
    return PairedMoments(
        n=n,
        mu_x=acc_x.mean,
        mu_y=acc_y.mean,
        cov_x=acc_x.cov,
        cov_y=acc_y.cov,
        sigma_r=acc_d.cov,
        mean_dist=dist_sum / n,
        mean_sq_dist=sq_sum / n,
        d_center=resid_norm_sum / n,
        frame=frame,
        halves=halves,
        v_dir_sum=v_sum,
        v_dir_n=v_n,
    )


def random_projector_energy(
    sigma_r: np.ndarray, ks: Sequence[int], draws: int = 20, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Empirical residual energy removed by Haar rank-K projectors (expected K/d, spec 2.11)."""
    rng = np.random.default_rng(seed)
    d = sigma_r.shape[0]
    total = float(np.trace(sigma_r))
    out = {}
    for k in ks:
        fr = []
        for _ in range(draws):
            q = haar_subspace(d, k, rng)
            fr.append(float(np.sum((sigma_r @ q) * q)) / total)
        out[str(k)] = {
            "mean": float(np.mean(fr)),
            "se": float(np.std(fr, ddof=1) / np.sqrt(draws)),
            "K_over_d": k / d,
        }
    return out


def coverage(sigma_r: np.ndarray, q_u: np.ndarray) -> float:
    """eta_U = tr(P_U Sigma_r) / tr(Sigma_r) (spec 2.12)."""
    return float(np.sum((sigma_r @ q_u) * q_u) / np.trace(sigma_r))


def residual_arrays(pm: PairedMoments) -> dict[str, np.ndarray]:
    eigs, _ = eigh_desc(pm.sigma_r)
    e_k = cumulative_energy(eigs)
    k = np.arange(1, eigs.size + 1)
    return {"eig_resid": eigs, "E_K": e_k, "gain_K": e_k / (k / eigs.size)}


def aniso_summary(
    pm: PairedMoments,
    eta_bases: dict[int, np.ndarray] | None = None,
    ks: Sequence[int] = REPORT_K,
    random_draws: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """[AA] §3.2 / App. A.4–A.5 statistics; ``eta_bases`` maps r -> Q_U of the unpaired [AA] frame."""
    arr = residual_arrays(pm)
    eigs, e_k = arr["eig_resid"], arr["E_K"]
    d = pm.dim
    tr_r = float(np.sum(eigs))
    g_mu = float(np.linalg.norm(pm.gap_mean))
    ks = [k for k in ks if k <= d]
    out: dict[str, Any] = {
        "n_pairs": pm.n,
        "G_mu_paired": g_mu,
        "mean_dist": pm.mean_dist,
        "D_center": pm.d_center,
        "R_dist": pm.d_center / pm.mean_dist,
        "R_energy": tr_r / (g_mu**2 + tr_r),
        "tr_Sigma_r": tr_r,
        "A_r": anisotropy_ratio(eigs, d),
        "d_eff_pr": participation_ratio(eigs),
        "d_eff_over_d": participation_ratio(eigs) / d,
        "erank_entropy_resid": entropy_effective_rank(eigs),
        # spec 2.4 identity E||x-y||^2 = G_mu^2 + tr(Sigma_r): logged as a self-check.
        "energy_identity_error": abs(pm.mean_sq_dist - (g_mu**2 + tr_r)),
        "E_K": {str(k): float(e_k[k - 1]) for k in ks},
        "gain_K": {str(k): float(arr["gain_K"][k - 1]) for k in ks},
    }
    if random_draws > 1:
        out["random_projector"] = random_projector_energy(pm.sigma_r, ks, random_draws, seed)
    if eta_bases:
        out["eta_U"] = {
            str(r): {"eta_U": coverage(pm.sigma_r, q), "oracle_E_r": float(e_k[r - 1]), "random": r / d}
            for r, q in sorted(eta_bases.items())
        }
    return out


def frame_summary(pm: PairedMoments) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """[RA] §3 static diagnostics of the fixed frame on the paired set: scalars and arrays."""
    frame = pm.frame
    if frame is None:
        raise ValueError("paired moments were accumulated without a frame")
    beta, gamma = mean_bias(frame, pm.gap_mean)
    blocks = ResidualBlocks.from_cov(frame, pm.sigma_r)
    eig_u, _ = eigh_desc(blocks.uu)
    eig_v, _ = eigh_desc(blocks.vv)
    gamma_v = frame.q_v.T @ gamma
    r_bar, kappa = vmf_concentration(pm.v_dir_sum, max(pm.v_dir_n, 1), frame.q_v.shape[1])
    out: dict[str, Any] = {
        "rank_u": frame.rank,
        "frame_energy": frame.energy,
        "mu_gap_norm": float(np.linalg.norm(pm.gap_mean)),
        "beta_norm": float(np.linalg.norm(beta)),
        "gamma_norm": float(np.linalg.norm(gamma)),
        **spectrum_summary(eig_u, "U"),
        **spectrum_summary(eig_v, "V"),
        "angle_gamma_v1": angle_gamma_v1(gamma_v, blocks.vv),
        "vmf_Rbar": r_bar,
        "vmf_kappa": kappa,
        **coupling_summary(blocks, pm.halves),
        # Sensitivity to the choices the paper leaves open (spec 1.1 theta_E, 1.11 ridge sweep).
        "rank_by_energy": {f"{e:g}": rank_for_energy(frame.eigs, e) for e in ENERGY_SWEEP},
        "coupling_ridge_sweep": {f"{s:g}": coupling_summary(blocks, pm.halves, ridge_scale=s) for s in RIDGE_SWEEP},
    }
    arrays = {
        "beta": beta,
        "gamma": gamma,
        "eig_resid_U": eig_u,
        "eig_resid_V": eig_v,
        "frame_eigs": frame.eigs,
    }
    return out, arrays
