"""The align stage for one (encoder, dataset, method): fit on the unpaired stats split, write state,
substitutes for every split and held-out diagnostics. Pairs never reach ``fit``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from modgap.align.base import AlignMethod
from modgap.align.diagnostics import all_metrics, centroid_gap
from modgap.align.registry import make
from modgap.align.source import EmbeddingSource, unit_rows
from modgap.errors import InvalidEmbeddingsError
from modgap.io import staged_dir, write_json_atomic

log = logging.getLogger(__name__)


def read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise InvalidEmbeddingsError(f"{path}: id file does not exist")
    try:
        return path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError as exc:
        raise InvalidEmbeddingsError(f"{path}: not a UTF-8 id list ({exc.reason})") from None


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


def _matrix(split_dir: Path, modality: str, dim: int | None) -> EmbeddingSource:
    """Open ``{modality}.npy`` (shape and dtype checked) and check its id file has one id per row."""
    src = EmbeddingSource(split_dir / f"{modality}.npy", f"{split_dir.name} {modality}", dim=dim)
    ids = read_ids(split_dir / f"{modality}_ids.txt")
    if len(ids) != src.n:
        raise InvalidEmbeddingsError(
            f"{split_dir / f'{modality}_ids.txt'}: {len(ids)} ids for {src.n} rows of {modality}.npy"
        )
    return src


def check_inputs(stats_dir: Path, splits_root: Path, splits: list[str], diag_dir: Path | None) -> int:
    """Every input the run will read, checked before anything is fitted or written; returns d.

    Shapes, dtypes, dimensions, id counts vs rows, diag pairing and the stats/diag separation.
    Row contents (NaN, Inf, zero rows) are checked as they stream, before any output exists.
    """
    check_unpaired(stats_dir, diag_dir)  # a leak is the most important problem to name
    dim = _matrix(stats_dir, "image", None).dim
    _matrix(stats_dir, "text", dim)
    if diag_dir is not None:
        x, y = _matrix(diag_dir, "image", dim), _matrix(diag_dir, "text", dim)
        if read_ids(diag_dir / "image_ids.txt") != read_ids(diag_dir / "text_ids.txt"):
            raise InvalidEmbeddingsError(
                f"{diag_dir}: image_ids.txt and text_ids.txt differ; the diagnostic split must be row-aligned pairs"
            )
        if x.n < 2:
            raise InvalidEmbeddingsError(f"{diag_dir}: the diagnostic split needs at least 2 pairs, got {x.n}")
        del y
    for split in splits:
        _matrix(splits_root / split, "text", dim)
    return dim


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
    """Fit, transform and diagnose into a temporary folder that replaces ``out_dir`` only on success."""
    model = make(method, params)  # parameter errors first: nothing is read yet
    check_inputs(stats_dir, splits_root, splits, diag_dir)
    with staged_dir(out_dir) as tmp:
        report, timing = _fit_and_write(model, stats_dir, splits_root, splits, diag_dir, tmp, seed, n_pairs)
    log.info("%s: wrote %s (fit %.2f s)", method, out_dir, timing["fit_seconds"])
    return report


def _fit_and_write(
    model: AlignMethod,
    stats_dir: Path,
    splits_root: Path,
    splits: list[str],
    diag_dir: Path | None,
    out: Path,
    seed: int,
    n_pairs: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    model.fit(stats_dir / "image.npy", stats_dir / "text.npy")
    timing: dict[str, Any] = {**model.timing_, "transform_seconds": {}}
    model.save(out)
    rows = {}
    for split in splits:
        t0 = time.perf_counter()
        src = splits_root / split / "text.npy"
        rows[split] = model.transform_to_file(src, out / "substitutes" / f"{split}.npy", stream=split)
        timing["transform_seconds"][split] = time.perf_counter() - t0
        log.info("%s: wrote %d substitutes for %s", model.name, rows[split], split)
    report: dict[str, Any] = {
        "method": model.name,
        "params": model.get_params(),
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
        x = unit_rows(np.load(diag_dir / "image.npy"), f"{diag_dir / 'image.npy'}")
        y = unit_rows(np.load(diag_dir / "text.npy"), f"{diag_dir / 'text.npy'}")
        z = model.transform(y, stream="diag")
        report["held_out"] = all_metrics(x, y, z, seed=seed, n_pairs=n_pairs)
        zt = model.transform(y, stream="diag", transductive=True)
        report["held_out_transductive"] = centroid_gap(x, zt, n_boot=0)
    write_json_atomic(out / "diagnostics.json", report)  # refuses NaN/Inf, naming the key
    # Wall-clock times vary between identical runs: kept out of state, diagnostics and metrics.
    write_json_atomic(out / "timing.json", timing)
    return report, timing


def _mean_unit(path: Path) -> np.ndarray:
    src = EmbeddingSource(path, "image statistics set")
    total = np.zeros(src.dim)
    for _, block in src.chunks():
        total += block.sum(0)
    return total / src.n
