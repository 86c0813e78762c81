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
from modgap.io import atomic_path, sha256_file, write_json_atomic

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
) -> dict[str, Any]:
    """Run the data stage; write ``out`` (parquet) and its summary; return the summary dict.

    ``seed`` overrides the config's ``seed``. http/hf sources without ``path`` download into
    ``raw/`` beside ``out``.
    """
    cfg = load_dataset_config(dataset_config)
    seed = cfg["seed"] if seed is None else seed
    out = Path(out)
    summary_path = Path(summary_path) if summary_path else out.with_name("summary.json")

    root = fetch(cfg, out.parent / "raw", progress=progress)
    table = build_table(root, cfg, seed=seed, progress=progress)
    n_available = len(table)
    table = subsample(table, cfg["max_items"], seed)
    table = assign_splits(table, cfg["splits"], seed)
    write_manifest(table, out)

    summary = {
        "dataset": cfg["name"],
        "manifest": out.as_posix(),
        "manifest_sha256": sha256_file(out),
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
    write_json_atomic(summary_path, summary)
    log.info("wrote %s (%d items: %s)", out, len(table), ", ".join(f"{k}={v}" for k, v in summary["splits"].items()))
    return summary


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
