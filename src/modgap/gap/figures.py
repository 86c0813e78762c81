"""Figures: analogues of AnisoAlign Figs. 1–3 and ReAlign Fig. 1 (PNG + PDF, deterministic bytes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from modgap.output.figures import PAPER_STYLE, legend_outside
from modgap.output.figures import save_figure as save_figure_files

PAPER_BARS = {"G_mu": 0.392, "G_Sigma": 0.066, "D_center": 1.264, "R_dist": 0.89}
PAPER_LABEL = "paper: LLM2CLIP-L/14-336, 1M pairs"


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` through the project's one figure writer (stable bytes)."""
    return [Path(p) for p in save_figure_files(fig, stem)]


def _title(fig: plt.Figure, text: str, label: str) -> None:
    fig.suptitle(f"{text}\n{label}", fontsize=10)


def aa_fig1(stats: Mapping[str, Any], arrays: Mapping[str, np.ndarray], label: str, stem: Path) -> list[Path]:
    """[AA] Fig 1: (a) normalised spectra with a j^-1 reference; (b) O_q against the random q/d."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4))
    marg = stats["marginal"]
    ranks = marg["C_lambda_ranks"]
    for key, name in (("eig_image", "image"), ("eig_text", "text")):
        eigs = arrays[key][:ranks]
        ax_a.loglog(np.arange(1, eigs.size + 1), eigs / eigs.sum(), label=name)
    j = np.arange(1, ranks + 1)
    first = arrays["eig_image"][0] / arrays["eig_image"][:ranks].sum()
    ax_a.loglog(j, first / j, "k--", lw=1, label=r"$j^{-1}$ reference")
    ax_a.set_xlabel("rank j")
    ax_a.set_ylabel(r"$\lambda_j / \mathrm{tr}\,\Sigma$")
    ax_a.set_title(f"(a) spectra: $C_\\lambda$ = {marg['C_lambda']:.3f} (paper 0.845)")
    legend_outside(ax_a)
    curve = arrays["overlap_q"]
    q = np.arange(1, curve.size + 1)
    d = marg["dim"]
    ax_b.semilogx(q, curve, label=r"$O_q$ (ours)")
    ax_b.semilogx(q, q / d, "k--", lw=1, label="random baseline q/d")
    ax_b.set_xlabel("subspace dimension q")
    ax_b.set_ylabel(r"$O_q$")
    ax_b.set_ylim(0, 1.05)
    ax_b.set_title("(b) overlap (paper: $O_{128}$ = 0.441, q/d = 0.100)")
    legend_outside(ax_b)
    _title(fig, "AnisoAlign Fig. 1 analogue: shared dominant geometry", label)
    fig.tight_layout()
    return save_figure(fig, stem)


def aa_fig2(stats: Mapping[str, Any], arrays: Mapping[str, np.ndarray], label: str, stem: Path) -> list[Path]:
    """[AA] Fig 2: (a) gap magnitudes vs paper; (b) normalised residual spectrum; (c) E(K) vs K/d."""
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(18, 4))
    marg, paired = stats["marginal"], stats["paired"]
    ours = {
        "G_mu": marg["G_mu"],
        "G_Sigma": marg["G_Sigma"],
        "D_center": paired["D_center"],
        "R_dist": paired["R_dist"],
    }
    pos = np.arange(len(ours))
    ax_a.bar(pos - 0.2, list(ours.values()), 0.4, color="C0", label="ours (embedded tier)")
    ax_a.bar(pos + 0.2, [PAPER_BARS[k] for k in ours], 0.4, label=f"{PAPER_LABEL} ([AA] Fig 2a)", **PAPER_STYLE)
    ax_a.set_xticks(pos, [r"$G_\mu$", r"$G_\Sigma$", r"$D_{center}$", r"$R_{res}$"])
    ax_a.set_xlabel("gap statistic")
    ax_a.set_ylabel("value (unit-norm embeddings)")
    ax_a.set_title("(a) centroid vs residual magnitude")
    legend_outside(ax_a)
    eigs = arrays["eig_resid"]
    d = eigs.size
    j = np.arange(1, d + 1)
    ax_b.semilogy(j, np.maximum(eigs / eigs.sum(), 1e-16), label=r"$\lambda_j(\Sigma_r)/\mathrm{tr}$")
    ax_b.axhline(1 / d, color="k", ls="--", lw=1, label="isotropic 1/d")
    ax_b.set_xlabel("rank j")
    ax_b.set_ylabel("normalised eigenvalue")
    ax_b.set_title(f"(b) residual spectrum, $A_r$ = {paired['A_r']:.1f} (paper 28.6)")
    legend_outside(ax_b)
    ax_c.plot(j, arrays["E_K"], label="E(K) (ours)")
    ax_c.plot(j, j / d, "k--", lw=1, label="isotropic K/d")
    ax_c.set_xlabel("K")
    ax_c.set_ylabel("cumulative residual energy E(K)")
    ax_c.set_title(f"(c) $d_{{eff}}/d$ = {paired['d_eff_over_d']:.3f} (paper 0.284)")
    legend_outside(ax_c)
    _title(fig, "AnisoAlign Fig. 2 analogue: the gap is an anisotropic residual", label)
    fig.tight_layout()
    return save_figure(fig, stem)


def aa_fig3(stats: Mapping[str, Any], arrays: Mapping[str, np.ndarray], label: str, stem: Path) -> list[Path]:
    """[AA] Fig 3: (a) Phi vs M^Q_k on the oracle path; (b) relative metrics; (c) residual spectra."""
    tr = stats["transforms"]
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(18, 4))
    path = tr["oracle_path"]
    ax_a.plot([p["M_Q"] for p in path], [p["Phi"] for p in path], "o-", ms=3, label=rf"$T_\alpha$ (K={tr['oracle_k']})")
    for p in (path[0], path[-1]):
        ax_a.annotate(f"α={p['alpha']:g}", (p["M_Q"], p["Phi"]), fontsize=7)
    for name, marker in (("identity", "s"), ("centroid", "^"), ("moment", "D"), ("perm", "x")):
        ax_a.plot(tr[name]["M_Q"], tr[name]["Phi"], marker, label=name)
    ax_a.set_xlabel(rf"target mixing $M^Q_{{{tr['knn_k']}}}$ (1 = random-label null)")
    ax_a.set_ylabel(r"instance consistency $\Phi$")
    ax_a.set_title("(a) oracle path")
    legend_outside(ax_a)
    names = ["identity", "centroid", "moment", "perm"]
    rel = tr["relative_to_identity"]
    pos = np.arange(len(names))
    for i, key in enumerate(("delta_mu", "delta_Sigma", "Phi")):
        ax_b.bar(
            pos + (i - 1) * 0.27,
            [rel[n][key] for n in names],
            0.27,
            label={"delta_mu": r"$\Delta\mu$", "delta_Sigma": r"$\Delta\Sigma$", "Phi": r"$\Phi$"}[key],
        )
    ax_b.set_xticks(pos, ["Id", r"$T_\mu$", r"$T_\Sigma$", "Perm"])
    ax_b.set_xlabel("diagnostic transform")
    ax_b.set_ylabel("relative to identity")
    ax_b.set_title("(b) global match vs semantics")
    legend_outside(ax_b)
    for key, name in (("identity", "Identity"), ("centroid", "Centroid"), ("moment", "Moment"), ("oracle", "Oracle")):
        eigs = arrays[f"resid_eig_{key}"]
        ax_c.semilogy(np.arange(1, eigs.size + 1), np.maximum(eigs / eigs.sum(), 1e-16), label=name)
    ax_c.axhline(1 / arrays["resid_eig_identity"].size, color="k", ls="--", lw=1, label="isotropic 1/d")
    ax_c.set_xlabel("rank j")
    ax_c.set_ylabel(r"$\lambda_j / \mathrm{tr}$ of residual $x - z$")
    ax_c.set_title("(c) residual eigen-spectra")
    legend_outside(ax_c)
    _title(fig, "AnisoAlign Fig. 3 analogue: diagnostic transforms (held-out pairs)", label)
    fig.tight_layout()
    return save_figure(fig, stem)


def _panel_legend(ax: plt.Axes, twin: plt.Axes | None = None) -> None:
    """One legend per panel, outside it, listing the twin axis's series too."""
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    legend_outside(twin or ax, handles, labels, bbox_to_anchor=(1.18 if twin is not None else 1.01, 1.0))


def ra_fig1(table: Any, label: str, stem: Path) -> list[Path]:
    """[RA] Fig 1 analogue from the dynamics log (a pandas DataFrame, one row per logging step)."""
    fig, axes = plt.subplots(2, 2, figsize=(15, 7))
    step = table["step"]
    ax = axes[0, 0]
    ax.plot(step, table["leak_ref"], label="gradient leakage into V")
    ax.plot(step, table["sin_theta"], "k--", lw=1, label=r"$\sin\theta(U_t, U)$ baseline")
    ax.set_ylabel("ratio")
    ax.set_title("(a) leakage vs subspace rotation")
    ax = axes[0, 1]
    ax.plot(step, table["pob_stability"], label=r"cos$(\gamma_t, \gamma_{t-1})$")
    ax.plot(step, table["pob_drift"], label=r"drift $d(t)$")
    ax.set_ylabel("cosine / drift")
    ax.set_title("(b) POB stability and drift")
    ax = axes[1, 0]
    ax.semilogy(step, table["kappa_eff_U"], label=r"$\kappa_{eff}(\Sigma_U)$")
    ax2 = ax.twinx()
    ax2.plot(step, table["rho_eig"], "C1", label=r"$\rho_{eig}$")
    ax2.plot(step, table["diag_corr"], "C2", label="diag. corr.")
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_ylabel("correlation")
    ax.set_ylabel(r"$\kappa_{eff}$ (log)")
    ax.set_title("(c) U-side spectral locking")
    twins = {"c": ax2}
    ax = axes[1, 1]
    ax.semilogy(step, table["kappa_eff_V"], label=r"$\kappa_{eff}(\Sigma_V)$")
    ax.semilogy(step, np.maximum(table["vmf_kappa"], 1e-3), label="vMF concentration")
    ax2 = ax.twinx()
    ax2.plot(step, table["angle_gamma_v1"], "C3", label=r"angle$(\gamma, v_1^V)$ [deg]")
    ax2.set_ylim(0, 90)
    ax2.set_ylabel("degrees")
    ax.set_ylabel("concentration (log)")
    ax.set_title("(d) V-side decoupling")
    twins["d"] = ax2
    frozen = table.loc[table["frame_frozen"].astype(bool), "step"]
    for ax in axes.flat:
        if len(frozen):
            ax.axvline(frozen.iloc[0], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("training step")
        _panel_legend(ax, twins.get(ax.get_title()[1]))
    _title(fig, "ReAlign Fig. 1 analogue: gap dynamics (dotted: frame frozen)", label)
    fig.tight_layout()
    return save_figure(fig, stem)
