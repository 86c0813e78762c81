"""The data stage: fetch/verify a dataset, build the canonical table, split it, write the manifest.

Output (see docs/CONTRACTS.md): ``manifest.parquet`` with columns id, image_path, caption,
labels (list<str>), split, stats_role, source, license, sha256, and ``summary.json`` beside it
(counts per split / stats role / label / source, the resolved config and seed, provenance).
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modgap import __version__
from modgap.data.adapters import build_table, label_counts
from modgap.data.config import SPLIT_NAMES, load_dataset_config
from modgap.data.sources import fetch
from modgap.data.splits import assign_splits, subsample
from modgap.io import atomic_path, check_json_finite, clean_stale_temps, folder_lock, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image_path", pa.string()),
        ("caption", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("split", pa.string()),
        ("stats_role", pa.string()),
        ("source", pa.string()),
        ("license", pa.string()),
        ("sha256", pa.string()),
    ]
)


def prepare_dataset(
    dataset_config: str | Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    seed: int | None = None,
    summary_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    refetch: bool = False,
) -> dict[str, Any]:
    """Run the data stage; write ``out`` (parquet) and its summary; return the summary dict.

    ``seed`` overrides the config's ``seed``. http/hf sources without ``path`` download into
    ``raw/`` beside ``out``.
    """
    cfg = load_dataset_config(dataset_config)
    seed = cfg["seed"] if seed is None else seed
    out = Path(out)
    summary_path = Path(summary_path) if summary_path else out.with_name("summary.json")

    # One run per manifest at a time; under its lock, temporary files of killed runs are removed.
    with folder_lock(out.with_name(f".{out.name}.lock")):
        clean_stale_temps(out.parent)
        return _prepare(cfg, out, summary_path, seed, progress=progress, refetch=refetch)


def _prepare(
    cfg: dict[str, Any], out: Path, summary_path: Path, seed: int, *, progress: bool, refetch: bool
) -> dict[str, Any]:
    root = fetch(cfg, out.parent / "raw", progress=progress, refetch=refetch)
    table = build_table(root, cfg, seed=seed, progress=progress)
    n_available = len(table)
    table = subsample(table, cfg["max_items"], seed)
    table = assign_splits(table, cfg["splits"], seed)
    # The summary is built and checked from the staged manifest, so a failure writes neither file.
    with atomic_path(out) as staged:
        write_manifest(table, staged)
        summary = _summary(cfg, table, out, sha256_file(staged), seed, n_available)
        check_json_finite(summary, str(summary_path))
    write_json_atomic(summary_path, summary)
    log.info("wrote %s (%d items: %s)", out, len(table), ", ".join(f"{k}={v}" for k, v in summary["splits"].items()))
    return summary


def _summary(
    cfg: Mapping[str, Any], table: pd.DataFrame, out: Path, manifest_sha256: str, seed: int, n_available: int
) -> dict[str, Any]:
    return {
        "dataset": cfg["name"],
        "manifest": out.as_posix(),
        "manifest_sha256": manifest_sha256,
        "seed": seed,
        "n_available": n_available,
        "n_items": len(table),
        "n_unused": n_available - len(table),
        "splits": {name: int((table["split"] == name).sum()) for name in SPLIT_NAMES},
        "stats_roles": {role: int((table["stats_role"] == role).sum()) for role in ("image", "text")},
        "labels": label_counts(table["labels"]),
        "labels_by_split": {name: label_counts(table.loc[table["split"] == name, "labels"]) for name in SPLIT_NAMES},
        "sources": {str(k): int(v) for k, v in table["source"].value_counts().sort_index().items()},
        "dataset_config": cfg,
        "provenance": {
            "modgap": __version__,
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
        },
    }


def write_manifest(table: pd.DataFrame, out: str | os.PathLike[str]) -> None:
    """Write the manifest with the fixed Arrow schema (types never depend on pandas inference)."""
    columns = {name: table[name].tolist() for name in MANIFEST_SCHEMA.names}
    columns["labels"] = [list(v) for v in columns["labels"]]
    columns["stats_role"] = [v if isinstance(v, str) else None for v in columns["stats_role"]]
    columns["sha256"] = [v if isinstance(v, str) else None for v in columns["sha256"]]
    arrow = pa.table(columns, schema=MANIFEST_SCHEMA)
    with atomic_path(out) as tmp:
        pq.write_table(arrow, tmp)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a prepared manifest (labels as Python lists)."""
    table = pq.read_table(path, schema=MANIFEST_SCHEMA).to_pandas()
    table["labels"] = table["labels"].map(list)
    return table
