"""ReAlign robustness/efficiency studies ([RA] App. E; spec 4.6) and AnisoAlign sensitivity."""

from __future__ import annotations

import math
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from modgap.align.diagnostics import all_metrics, centroid_gap
from modgap.align.registry import make
from modgap.align.source import unit_rows


def running_mean_errors(y: np.ndarray, chunk_rows: int = 10_000) -> dict[str, float]:
    """||mu_err|| of float32 and float64 running means of unit rows vs an exact (math.fsum) reference."""
    u = unit_rows(y)
    exact = np.array([math.fsum(u[:, j]) for j in range(u.shape[1])]) / u.shape[0]
    out = {}
    for dtype in (np.float32, np.float64):
        acc = np.zeros(u.shape[1], dtype=dtype)
        for s in range(0, u.shape[0], chunk_rows):
            acc += u[s : s + chunk_rows].astype(dtype).sum(0, dtype=dtype)
        out[np.dtype(dtype).name] = float(np.linalg.norm(acc.astype(np.float64) / u.shape[0] - exact))
    return out


def _resample(a: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return a[rng.choice(a.shape[0], n, replace=n > a.shape[0])]


def sample_size(stats_x, stats_y, diag_x, diag_y, sizes: list[int], seeds: int = 5, method: str = "realign"):
    """Held-out centroid gap when fitting on N unpaired samples (N capped by the stats split)."""
    rows = []
    for n in sizes:
        n_eff = min(n, stats_x.shape[0], stats_y.shape[0])
        gaps = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            model = make(method).fit(_resample(stats_x, n_eff, rng), _resample(stats_y, n_eff, rng))
            gaps.append(centroid_gap(diag_x, model.transform(diag_y), n_boot=0)["delta_mu"])
        rows.append(
            {
                "N": n,
                "N_effective": n_eff,
                "gap_mean": float(np.mean(gaps)),
                "gap_std": float(np.std(gaps)),
                "gaps": gaps,
            }
        )
    return rows


def cost(stats_x, stats_y, sizes: list[int], method: str = "realign") -> list[dict[str, Any]]:
    """Fit + transform time and peak traced memory vs N (rows resampled into memory-mapped .npy files)."""
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            xp, yp = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            np.save(xp, _resample(stats_x, n, rng).astype(np.float32))
            np.save(yp, _resample(stats_y, n, rng).astype(np.float32))
            tracemalloc.start()
            t0 = time.perf_counter()
            model = make(method).fit(xp, yp)
            t_fit = time.perf_counter() - t0
            model.transform_to_file(yp, Path(tmp) / "z.npy")
            total = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append(
                {
                    "N": n,
                    "fit_s": t_fit,
                    "fit_transform_s": total,
                    "peak_traced_mb": peak / 2**20,
                    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            )
    return rows


def aniso_sensitivity(
    stats_x, stats_y, diag_x, diag_y, base: dict[str, Any], ranks: list[int], bounds: list[tuple[float, float]]
) -> list[dict[str, Any]]:
    """Held-out metrics of AnisoAlign over the frame rank r and the (alpha_theta, alpha_rho) bounds."""
    grid = [{"rank": r} for r in ranks] + [{"bound_theta": a, "bound_rho": b} for a, b in bounds]
    rows = []
    for change in grid:
        t0 = time.perf_counter()
        model = make("anisoalign", {**base, **change}).fit(stats_x, stats_y)
        fit_s = time.perf_counter() - t0
        m = all_metrics(diag_x, diag_y, model.transform(diag_y), n_pairs=20_000, n_perm=5)
        rows.append(
            {
                "params": change,
                "fit_s": fit_s,
                "delta_mu": m["centroid"]["delta_mu"],
                "Phi": m["Phi"],
                "Psi": m["Psi"],
                "Omega_20": m["Omega_20"],
                "M_Z": m["mixing"]["M_Z"],
                "M_X": m["mixing"]["M_X"],
                "A_r": m["residual"]["uncentred"]["A_r"],
                "perturbation": model.meta_["aniso"]["perturbation"],
            }
        )
    return rows
