"""Tables (markdown + CSV, with the papers' values beside ours), metrics JSON and figures of the gap stage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modgap.errors import MissingInputError
from modgap.gap import figures
from modgap.io import read_json, write_json_atomic
from modgap.output.tables import write_table
from modgap.provenance import environment

log = logging.getLogger(__name__)

_LLM2CLIP = "LLM2CLIP-Openai-L-14-336"
#: (label, path into stats.json, paper value or None, paper source with encoder and data)
STAT_ROWS: list[tuple[str, tuple[str, ...], float | None, str]] = [
    ("C_lambda", ("marginal", "C_lambda"), 0.845, f"[AA] Fig 1a; {_LLM2CLIP}, 1M pairs"),
    ("O_128", ("marginal", "O_q", "128"), 0.441, f"[AA] Fig 1b; {_LLM2CLIP}, 1M pairs"),
    ("O_128 random q/d", ("marginal", "O_q_random", "128"), 0.100, "[AA] Fig 1b (q/d, d=1280)"),
    ("G_mu", ("marginal", "G_mu"), 0.392, f"[AA] Fig 2a; {_LLM2CLIP}, 1M pairs"),
    ("G_Sigma", ("marginal", "G_Sigma"), 0.066, f"[AA] Fig 2a; {_LLM2CLIP}, 1M pairs"),
    ("D_center", ("paired", "D_center"), 1.264, f"[AA] Fig 2a; {_LLM2CLIP}, 1M pairs"),
    ("R_res (distance form)", ("paired", "R_dist"), 0.89, f"[AA] Fig 2a; {_LLM2CLIP}, 1M pairs"),
    ("R_energy", ("paired", "R_energy"), None, "[AA] App. A.3.3 (not reported)"),
    ("E||x-y|| (uncorrected)", ("paired", "mean_dist"), None, "[AA] not printed (1.264/0.89 = 1.42 derived)"),
    ("A_r", ("paired", "A_r"), 28.6, f"[AA] §3.2; {_LLM2CLIP}, 1M pairs"),
    ("d_eff/d", ("paired", "d_eff_over_d"), 0.284, f"[AA] §3.2; {_LLM2CLIP}, 1M pairs"),
    ("G_mu (paired diag set)", ("paired", "G_mu_paired"), 0.393, f"[AA] Fig 6 Δµ; {_LLM2CLIP}, 10K held-out pairs"),
    ("erank image", ("marginal", "image", "erank_entropy"), 57.5, f"[RA] App. G; {_LLM2CLIP}, Bunny images"),
    ("erank text", ("marginal", "text", "erank_entropy"), 52.9, f"[RA] App. G; {_LLM2CLIP}, long captions"),
    ("kappa(Sigma_text)", ("marginal", "text", "kappa_full"), 1.10e3, f"[RA] App. F.4; {_LLM2CLIP}"),
    ("frame rank r", ("frame", "rank_u"), None, "[RA] §3 (energy threshold, not given)"),
    ("||beta|| (PMB)", ("frame", "beta_norm"), None, "[RA] §3 (no number)"),
    ("||gamma|| (POB)", ("frame", "gamma_norm"), None, "[RA] §3 (no number)"),
    ("kappa_eff(Sigma_U)", ("frame", "kappa_eff_U"), None, "[RA] Fig 1c, TinyCLIP: 1e1–1e4 axis, no number"),
    ("kappa_eff(Sigma_V)", ("frame", "kappa_eff_V"), None, "[RA] Fig 1d, TinyCLIP: no number"),
    ("angle(gamma, v1_V) [deg]", ("frame", "angle_gamma_v1"), None, "[RA] Fig 1d: 'nearly orthogonal'"),
    ("||L_lambda||_2", ("frame", "coupling_norm"), None, "[RA] App. C (no number)"),
    ("R^2 zeta<-delta (held-out)", ("frame", "coupling_r2_heldout"), None, "[RA] App. C (no number)"),
    ("phantom tangential (MC)", ("phantom", "phantom_tangential_mc"), None, "[RA] Thm B.14 (no number)"),
    ("phantom formula rel. error", ("phantom", "phantom_rel_error_2nd_vs_mc"), None, "[RA] Thm B.14"),
]

TRANSFORM_KEYS = ("Phi", "delta_mu", "delta_Sigma", "M_Q", "M_X", "M_Z", "A_r")


def _get(obj: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _write_table(stem: Path, header: list[str], rows: list[list[Any]], note: str) -> None:
    frame = pd.DataFrame(rows, columns=header)
    write_table(frame, stem, caption=note)


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    """Scalars of a nested dict/list as dotted keys (lists of records by index)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}{i}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj if np.isfinite(obj) else None
    return out


def load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    stats_path = run_dir / "stats.json"
    if not stats_path.exists():
        raise MissingInputError(f"{stats_path}: gap statistics missing (run `modgap gap stats` first)")
    with np.load(run_dir / "spectra.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return read_json(stats_path), arrays


def write_report(
    run_dirs: Sequence[Path],
    figures_dir: Path,
    tables_dir: Path,
    metrics_path: Path,
    dynamics_dirs: Sequence[Path] = (),
) -> list[Path]:
    """Figures, `gap_stats` and `gap_transforms` tables, and `gap.json` metrics for every run."""
    written: list[Path] = []
    runs = []
    for run_dir in run_dirs:
        stats, arrays = load_run(Path(run_dir))
        enc, ds = stats["meta"]["encoder"], stats["meta"]["dataset"]
        runs.append((enc, ds, stats))
        marg = stats["marginal"]
        label = (
            f"ours: {enc} on {ds} (n_stat={marg['image']['n']}+{marg['text']['n']}, "
            f"n_pairs={stats['paired']['n_pairs']}, d={marg['dim']}); not a web-scale CLIP"
        )
        for name, fn in (("aa_fig1", figures.aa_fig1), ("aa_fig2", figures.aa_fig2), ("aa_fig3", figures.aa_fig3)):
            written += fn(stats, arrays, label, figures_dir / f"gap_{name}_{enc}_{ds}")

    header = ["statistic", *[f"ours: {e} / {d}" for e, d, _ in runs], "paper", "paper source (encoder, data)"]
    rows = [[lab, *[_get(s, path) for _, _, s in runs], paper, src] for lab, path, paper, src in STAT_ROWS]
    note = (
        "Gap statistics: ours (embedded-tier encoders are small LiT models, not web-scale CLIP) "
        "beside the values the papers report for their encoder and data."
    )
    _write_table(tables_dir / "gap_stats", header, rows, note)
    written += [tables_dir / f"gap_stats.{ext}" for ext in ("csv", "md", "tex")]

    t_rows = []
    for enc, ds, stats in runs:
        tr = stats["transforms"]
        for name in ("identity", "centroid", "moment", "perm"):
            t_rows.append([enc, ds, name, *[tr[name][k] for k in TRANSFORM_KEYS]])
        for p in tr["oracle_path"]:
            t_rows.append([enc, ds, f"oracle α={p['alpha']:g} K={tr['oracle_k']}", *[p[k] for k in TRANSFORM_KEYS]])
    _write_table(
        tables_dir / "gap_transforms",
        ["encoder", "dataset", "transform", *TRANSFORM_KEYS],
        t_rows,
        "AnisoAlign Fig. 3 quantities on the held-out pairs. The paper prints no numbers for these "
        "(qualitative: T_mu keeps semantics with little mixing gain, T_Sigma lowers Δµ/ΔΣ but hurts "
        "semantics, Perm matches the target but Φ collapses, T_α trades Φ against mixing).",
    )
    written += [tables_dir / f"gap_transforms.{ext}" for ext in ("csv", "md", "tex")]

    metrics: dict[str, Any] = {}
    for enc, ds, stats in runs:
        scalars = {k: v for k, v in flatten({k: v for k, v in stats.items() if k != "meta"}).items()}
        metrics.setdefault(enc, {})[ds] = scalars
    for dyn_dir in dynamics_dirs:
        written += _dynamics_outputs(Path(dyn_dir), figures_dir, metrics)
    metrics["environment"] = environment()  # lock hash and library versions (modgap.provenance)
    write_json_atomic(metrics_path, metrics)
    written.append(metrics_path)
    return written


def _dynamics_outputs(dyn_dir: Path, figures_dir: Path, metrics: dict[str, Any]) -> list[Path]:

    summary_path = dyn_dir / "summary.json"
    if not summary_path.exists():
        raise MissingInputError(f"{summary_path}: dynamics summary missing (run `modgap gap dynamics`)")
    summary = read_json(summary_path)
    table = pd.read_csv(dyn_dir / "log.csv")
    label = (
        f"ours: {summary['model']} trained from scratch on {summary['dataset']} "
        f"({summary['steps']} steps, d={summary['embed_dim']}); paper: TinyCLIP on 2M LAION pairs"
    )
    written = figures.ra_fig1(table, label, figures_dir / f"gap_ra_fig1_{summary['dataset']}")
    metrics.setdefault("dynamics", {})[summary["dataset"]] = flatten(summary.get("final", {}))
    return written
