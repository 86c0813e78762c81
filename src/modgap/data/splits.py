"""Seeded, disjoint splits of the items (images) into ``stats``, ``diag``, ``train``, ``test``.

Algorithm (stable across pandas/numpy versions for a given seed): sort the ids with Python's
``sorted``, draw one permutation with ``numpy.random.default_rng(seed).permutation``, and cut it into
consecutive blocks in the order stats, diag, train, test. Inside ``stats`` the first ceil(n/2) items of
the permutation get ``stats_role = image`` and the rest ``text``: the unpaired statistics set's image
half and text half come from different pairs. Items beyond the requested sizes are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from modgap.data.config import SPLIT_NAMES
from modgap.errors import ConfigError


def split_sizes(spec: Mapping[str, float | int], n_items: int) -> dict[str, int]:
    """Number of items per split from all-counts or all-fractions ``spec`` (see dataset_schema.yaml).

    Fractions are turned into counts with the largest-remainder rule, so fractions summing to 1 use
    every item exactly once.
    """
    unknown = set(spec) - set(SPLIT_NAMES)
    missing = set(SPLIT_NAMES) - set(spec)
    if unknown or missing:
        raise ConfigError(f"key 'splits': expected exactly {list(SPLIT_NAMES)}, got {sorted(spec)}")
    values = [spec[name] for name in SPLIT_NAMES]
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in values):
        raise ConfigError(f"key 'splits': sizes must be non-negative numbers, got {dict(spec)}")
    if all(isinstance(v, int) for v in values):
        if sum(values) > n_items:
            raise ConfigError(f"key 'splits': counts {dict(spec)} need {sum(values)} items, the dataset has {n_items}")
        return dict(zip(SPLIT_NAMES, (int(v) for v in values), strict=True))
    if any(v > 1 for v in values) or sum(values) > 1 + 1e-9:
        raise ConfigError(f"key 'splits': fractions must lie in [0, 1] and sum to at most 1, got {dict(spec)}")
    exact = [v * n_items for v in values]
    total = min(n_items, round(sum(exact)))
    sizes = [math.floor(x) for x in exact]
    # Hand out the remaining items by largest fractional part; ties go to the earlier split.
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: max(0, total - sum(sizes))]:
        sizes[i] += 1
    return dict(zip(SPLIT_NAMES, sizes, strict=True))


def assign_splits(table: pd.DataFrame, spec: Mapping[str, float | int], seed: int) -> pd.DataFrame:
    """Return ``table`` (rows in the assigned splits only, sorted by id) with ``split`` and ``stats_role``."""
    ids = sorted(table["id"].astype(str))
    if len(set(ids)) != len(ids):
        raise ConfigError("item ids are not unique; cannot split")
    sizes = split_sizes(spec, len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    split_of: dict[str, str] = {}
    role_of: dict[str, str] = {}
    start = 0
    for name in SPLIT_NAMES:
        block = [ids[i] for i in order[start : start + sizes[name]]]
        start += sizes[name]
        split_of.update(dict.fromkeys(block, name))
        if name == "stats":
            n_image = (len(block) + 1) // 2
            role_of.update({item: "image" if k < n_image else "text" for k, item in enumerate(block)})
    out = table[table["id"].isin(split_of)].copy()
    out["split"] = out["id"].map(split_of)
    out["stats_role"] = out["id"].map(role_of).astype(object)
    out.loc[out["stats_role"].isna(), "stats_role"] = None
    return out.sort_values("id", kind="stable").reset_index(drop=True)


def subsample(table: pd.DataFrame, max_items: int | None, seed: int) -> pd.DataFrame:
    """A seeded subset of ``max_items`` rows (all rows if None or larger than the table)."""
    if max_items is None or max_items >= len(table):
        return table
    ids = sorted(table["id"].astype(str))
    # A separate stream (seed, 1) so the subset does not correlate with the split permutation.
    keep = {ids[i] for i in np.random.default_rng([seed, 1]).choice(len(ids), size=max_items, replace=False)}
    return table[table["id"].isin(keep)].sort_values("id", kind="stable").reset_index(drop=True)
