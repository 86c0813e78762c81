"""The gap-statistics stage: embeddings of one encoder x dataset -> stats.json + spectra.npz.

Inputs are the unpaired statistics split (marginal statistics, the [AA] frame for eta_U, phantom
drift) and the held-out paired diagnostic split (residual diagnostics, the [RA] fixed frame,
diagnostic transforms). Every parameter the papers leave open is in :data:`DEFAULT_PARAMS` and is
written next to the numbers it produced.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from modgap import __version__
from modgap.errors import InvalidEmbeddingsError
from modgap.gap.frame import DEFAULT_ENERGY
from modgap.gap.marginal import marginal_stats
from modgap.gap.paired import REPORT_K, aniso_summary, frame_summary, paired_moments, residual_arrays
from modgap.gap.phantom import phantom_summary
from modgap.gap.transforms import ALPHA_GRID, diagnostic_transforms
from modgap.io import save_npz_atomic, sha256_file, staged_dir, write_json_atomic
from modgap.paramcheck import COUNT, FRACTION, NON_NEGATIVE, SEED, Int, Rule, check_params, merge_with_defaults
from modgap.provenance import environment
from modgap.stats.moments import DEFAULT_CHUNK_ROWS, open_embeddings
from modgap.stats.spectral import top_eigvecs
from modgap.validate import check_id_file, open_matrix, scan_rows

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "frame_energy": DEFAULT_ENERGY,  # theta_E of the [RA] frame (spec 1.1)
    "frame_rank": None,  # fixed r instead of theta_E
    "aa_frame_ridge": 1e-6,  # [AA] Sigma_x + Sigma_y + lambda I; does not move eigenvectors
    "eta_ranks": [8, 32, 128],  # r values of the [AA] frame for eta_U (spec 2.12)
    "report_k": list(REPORT_K),
    "random_draws": 20,  # Haar projectors for the dominant-vs-random check (spec 2.11)
    "oracle_k": 32,  # K of T_alpha (spec 3)
    "alphas": list(ALPHA_GRID),
    "knn_k": 20,
    "mixing_shuffles": 20,
    "transform_max_pairs": 5000,  # k-NN cost is quadratic: a seeded subsample beyond this
    "phantom_mc": 20000,
    "phantom_max_rows": 20000,
    "chunk_rows": DEFAULT_CHUNK_ROWS,
    "seed": 0,
    "hash_inputs": True,
}


# Types and ranges of DEFAULT_PARAMS (keys not listed take their default's type).
PARAM_RULES: dict[str, Rule] = {
    "frame_energy": FRACTION,
    "frame_rank": Int(1, nullable=True),
    "aa_frame_ridge": NON_NEGATIVE,
    "eta_ranks": Rule("int_list", lo=1),
    "report_k": Rule("int_list", lo=1),
    "alphas": Rule("number_list", lo=0, hi=1),
    **dict.fromkeys(
        (
            "random_draws",
            "oracle_k",
            "knn_k",
            "mixing_shuffles",
            "transform_max_pairs",
            "phantom_mc",
            "phantom_max_rows",
            "chunk_rows",
        ),
        COUNT,
    ),
    "seed": SEED,
}


def merge_params(overrides: dict[str, Any] | None) -> dict[str, Any]:
    params = merge_with_defaults(DEFAULT_PARAMS, overrides, "gap params")
    check_params(params, DEFAULT_PARAMS, PARAM_RULES, "gap params")
    return params


def _split_files(split_dir: Path, paired: bool, dim: int | None = None) -> tuple[Path, Path]:
    """The split's two matrices, checked before any statistic is computed: readable ``.npy`` headers,
    one shared dimension, one id per row, and (paired) the same ids in the same order."""
    image, text = split_dir / "image.npy", split_dir / "text.npy"
    # Two rows per matrix at least: a covariance (and every spectrum below) of one row is zero.
    x = open_matrix(image, dim=dim, min_rows=2)
    y = open_matrix(text, dim=x.shape[1], min_rows=2)
    image_ids = check_id_file(split_dir / "image_ids.txt", x.shape[0])
    text_ids = check_id_file(split_dir / "text_ids.txt", y.shape[0])
    if paired and x.shape[0] != y.shape[0]:
        raise InvalidEmbeddingsError(f"{split_dir}: {x.shape[0]} image rows but {y.shape[0]} text rows (paired split)")
    if paired and image_ids is not None and text_ids is not None and image_ids != text_ids:
        raise InvalidEmbeddingsError(f"{split_dir}: image_ids.txt and text_ids.txt differ: not a paired split")
    scan_rows(x, str(image))
    scan_rows(y, str(text))
    return image, text


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def compute_gap_stats(
    stats_dir: Path, diag_dir: Path, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All static gap statistics of one encoder x dataset; returns (JSON-able dict, arrays)."""
    chunk = int(params["chunk_rows"])
    s_img, s_txt = _split_files(stats_dir, paired=False)
    d_img, d_txt = _split_files(diag_dir, paired=True, dim=open_matrix(s_img).shape[1])

    log.info("marginal statistics on %s", stats_dir)
    marg = marginal_stats(s_img, s_txt, image_name=str(s_img), text_name=str(s_txt), chunk_rows=chunk)
    d = marg.dim
    # [AA] frame on the unpaired statistics set (ridge shifts eigenvalues only; spec 1.1 note).
    eta_ranks = [int(r) for r in params["eta_ranks"] if 1 <= int(r) < d]
    joint = marg.image.cov + marg.text.cov + params["aa_frame_ridge"] * np.trace(marg.image.cov) / d * np.eye(d)
    eta_bases = {r: top_eigvecs(joint, r)[1] for r in eta_ranks}

    log.info("paired diagnostics on %s", diag_dir)
    pm = paired_moments(
        d_img,
        d_txt,
        frame_rank=params["frame_rank"],
        frame_energy=float(params["frame_energy"]),
        image_name=str(d_img),
        text_name=str(d_txt),
        chunk_rows=chunk,
    )
    aniso = aniso_summary(
        pm, eta_bases, ks=params["report_k"], random_draws=int(params["random_draws"]), seed=params["seed"]
    )
    frame_stats, frame_arrays = frame_summary(pm)

    # Phantom drift of the centroid-shifted text set, T_mu(y) = y - mu_y + mu_x (ReAlign's step 3).
    txt_rows = open_embeddings(s_txt)
    idx = _subsample(txt_rows.shape[0], int(params["phantom_max_rows"]), params["seed"])
    y = np.asarray(txt_rows[idx], dtype=np.float64)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    phantom = phantom_summary(
        marg.image.mean,
        marg.text.cov,
        y - marg.text.mean + marg.image.mean,
        n_mc=int(params["phantom_mc"]),
        seed=params["seed"],
    )

    log.info("diagnostic transforms")
    x_all, y_all = open_embeddings(d_img), open_embeddings(d_txt)
    idx = _subsample(x_all.shape[0], int(params["transform_max_pairs"]), params["seed"])
    transforms, t_arrays = diagnostic_transforms(
        np.asarray(x_all[idx]),
        np.asarray(y_all[idx]),
        oracle_k=min(int(params["oracle_k"]), d),
        alphas=params["alphas"],
        knn_k=int(params["knn_k"]),
        shuffles=int(params["mixing_shuffles"]),
        seed=params["seed"],
    )

    out: dict[str, Any] = {
        "marginal": marg.summary(),
        "paired": aniso,
        "frame": frame_stats,
        "phantom": phantom,
        "transforms": transforms,
    }
    arrays = {
        **marg.arrays(),
        **residual_arrays(pm),
        **frame_arrays,
        **t_arrays,
        "frame_q_u": pm.frame.q_u,
    }
    for r, q in eta_bases.items():
        arrays[f"aa_frame_q_u_{r}"] = q
    return out, arrays


def run_stats(
    stats_dir: str | Path,
    diag_dir: str | Path,
    out_dir: str | Path,
    params: dict[str, Any] | None = None,
    *,
    encoder: str | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Compute and write ``out_dir/stats.json`` and ``out_dir/spectra.npz`` atomically."""
    stats_dir, diag_dir, out_dir = Path(stats_dir), Path(diag_dir), Path(out_dir)
    params = merge_params(params)
    result, arrays = compute_gap_stats(stats_dir, diag_dir, params)
    inputs = {}
    for split_dir in (stats_dir, diag_dir):
        for name in ("image.npy", "text.npy"):
            path = split_dir / name
            inputs[str(path)] = sha256_file(path) if params["hash_inputs"] else None
    result["meta"] = {
        "encoder": encoder or out_dir.parent.name,
        "dataset": dataset or out_dir.name,
        "params": params,
        "inputs_sha256": inputs,
        "environment": environment(),
        "versions": {
            "modgap": __version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "choices": {
            "covariance": "population 1/n, float64, rows re-normalised",
            "ra_frame": "top-r eigenspace of Sigma_x + Sigma_y of the paired diagnostic set (probe role)",
            "aa_frame": "top-r eigenspace of Sigma_x + Sigma_y + lambda I of the unpaired statistics set",
            "residual_means": "means of the paired diagnostic set itself (residuals exactly zero-mean)",
            "coupling_heldout": "fit on even rows, scored on odd rows",
            "phantom": "Z = T_mu(y) on the statistics set; formula/MC with mu = mu_x, Sigma = Sigma_y",
        },
    }
    # Both files or neither: written into a staged folder that replaces out_dir at the end, after the
    # finiteness checks (a NaN anywhere fails naming its key or array, and nothing is written).
    with staged_dir(out_dir) as tmp:
        save_npz_atomic(tmp / "spectra.npz", arrays)
        write_json_atomic(tmp / "stats.json", result)
    return result
