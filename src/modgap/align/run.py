"""The align stage for one (encoder, dataset, method): fit on the unpaired stats split, write state,
substitutes for every split and held-out diagnostics. Pairs never reach ``fit``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from modgap.align.diagnostics import all_metrics, centroid_gap
from modgap.align.registry import make
from modgap.align.source import EmbeddingSource, unit_rows
from modgap.errors import InvalidEmbeddingsError
from modgap.io import write_json_atomic

log = logging.getLogger(__name__)


def read_ids(path: Path) -> list[str]:
    if not path.exists():
        raise InvalidEmbeddingsError(f"{path}: id file does not exist")
    return path.read_text(encoding="utf-8").split()


def check_unpaired(stats_dir: Path, diag_dir: Path | None) -> None:
    """The stats split's image and text halves come from different pairs, and share nothing with diag."""
    img, txt = set(read_ids(stats_dir / "image_ids.txt")), set(read_ids(stats_dir / "text_ids.txt"))
    if img & txt:
        raise InvalidEmbeddingsError(
            f"{stats_dir}: {len(img & txt)} id(s) occur in both image_ids.txt and text_ids.txt; the statistics "
            f"split must be unpaired (e.g. {sorted(img & txt)[0]})"
        )
    if diag_dir is not None:
        diag = set(read_ids(diag_dir / "image_ids.txt")) | set(read_ids(diag_dir / "text_ids.txt"))
        leak = (img | txt) & diag
        if leak:
            raise InvalidEmbeddingsError(
                f"{stats_dir} and {diag_dir} share {len(leak)} id(s) (e.g. {sorted(leak)[0]}): diagnostic pairs "
                "must be held out from fitting"
            )


def run_method(
    method: str,
    params: dict[str, Any],
    stats_dir: Path,
    splits_root: Path,
    splits: list[str],
    diag_dir: Path | None,
    out_dir: Path,
    *,
    seed: int = 0,
    n_pairs: int = 200_000,
) -> dict[str, Any]:
    check_unpaired(stats_dir, diag_dir)
    model = make(method, params)
    t0 = time.perf_counter()
    model.fit(stats_dir / "image.npy", stats_dir / "text.npy")
    fit_s = time.perf_counter() - t0
    model.save(out_dir)
    rows = {}
    for split in splits:
        src = splits_root / split / "text.npy"
        rows[split] = model.transform_to_file(src, out_dir / "substitutes" / f"{split}.npy", stream=split)
        log.info("%s: wrote %d substitutes for %s", method, rows[split], split)
    report: dict[str, Any] = {
        "method": model.name,
        "params": model.get_params(),
        "fit_seconds": fit_s,
        "substitute_rows": rows,
        "n_x": model.meta_["n_x"],
        "n_y": model.meta_["n_y"],
        "mode": "inductive",
    }
    # In-sample ([RA] RQ1 style): statistics and gap on the same stats texts (vs the stats images' mean).
    stats_z = model.transform(stats_dir / "text.npy", stream="stats")
    mu_x = _mean_unit(stats_dir / "image.npy")
    report["in_sample"] = {
        "delta_mu": float(np.linalg.norm(stats_z.astype(np.float64).mean(0) - mu_x)),
        "label": "stats text transformed with statistics fitted on it (in-sample)",
    }
    if diag_dir is not None:
        x = unit_rows(np.load(diag_dir / "image.npy"))
        y = unit_rows(np.load(diag_dir / "text.npy"))
        z = model.transform(y, stream="diag")
        report["held_out"] = all_metrics(x, y, z, seed=seed, n_pairs=n_pairs)
        zt = model.transform(y, stream="diag", transductive=True)
        report["held_out_transductive"] = centroid_gap(x, zt, n_boot=0)
    write_json_atomic(out_dir / "diagnostics.json", report)
    return report


def _mean_unit(path: Path) -> np.ndarray:
    src = EmbeddingSource(path, "image statistics set")
    total = np.zeros(src.dim)
    for _, block in src.chunks():
        total += block.sum(0)
    return total / src.n
