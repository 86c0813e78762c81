"""What the data stage checks in a config before anything runs: every dataset block.

Called by :func:`modgap.config.validate_config` (one of the stage specs it iterates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from modgap.config import key_path, one_line
from modgap.data.config import dataset_schema, normalise_dataset_config
from modgap.errors import ConfigError


def check_config(config: Mapping[str, Any], base: Path) -> None:
    """Each dataset against the data stage's own schema, its folder, split sizes and normalised form."""

    validator = jsonschema.Draft202012Validator(dataset_schema())
    lines = []
    for name, dataset in config["datasets"].items():
        for error in sorted(validator.iter_errors(dataset), key=lambda e: list(e.absolute_path)):
            lines.append(f"{key_path(['datasets', name, *error.absolute_path])}: {error.message}")
    if lines:
        raise ConfigError(one_line(lines))
    for name, dataset in config["datasets"].items():
        _check_dataset_files(name, dataset, base)
        _check_split_sizes(name, dataset, base)
        try:
            normalise_dataset_config(dataset, where=f"datasets.{name}")  # what `modgap data prepare` checks
        except ConfigError as exc:
            # "datasets.x: key 'a.b': ..." -> "datasets.x.a.b: ...", the dotted form every other error uses
            raise ConfigError(re.sub(r"^(datasets\.[^:]+): key '([^']+)': ", r"\1.\2: ", str(exc))) from None


def _check_dataset_files(name: str, dataset: Mapping[str, Any], base: Path) -> None:
    """embedded/folder datasets are read in place: their folder must exist (http/hf download into it)."""
    if dataset["source"] in ("embedded", "folder") and not (base / dataset["path"]).is_dir():
        raise ConfigError(f"datasets.{name}.path: folder {dataset['path']!r} does not exist")


def _check_split_sizes(name: str, dataset: Mapping[str, Any], base: Path) -> None:
    """Fractions sum to <= 1; counts fit the number of images when it is known before fetching."""
    splits = dataset.get("splits")
    if not splits:
        return
    values = list(splits.values())
    key = f"datasets.{name}.splits"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        available = _known_items(dataset, base)
        if dataset.get("max_items"):
            available = min(available or dataset["max_items"], dataset["max_items"])
        if available is not None and sum(values) > available:
            raise ConfigError(f"{key}: split counts sum to {sum(values)} but the dataset has {available} images")
        return
    if any(v > 1 for v in values):
        raise ConfigError(f"{key}: mixes counts and fractions {dict(splits)}; use all counts or all fractions")
    if sum(values) > 1 + 1e-9:
        raise ConfigError(f"{key}: fractions sum to {sum(values):.6g} > 1")


def _known_items(dataset: Mapping[str, Any], base: Path) -> int | None:
    """Images in a local dataset (embedded manifest or folder captions file); None if not known yet."""
    import csv

    root = base / dataset.get("path", "")
    if dataset["source"] == "embedded":
        table = root / dataset.get("embedded", {}).get("manifest", "manifest.csv")
    elif dataset["source"] == "folder":
        table = root / dataset.get("folder", {}).get("captions_file", "captions.csv")
    else:
        return None  # http/hf: the count is only known once downloaded (the data stage checks it)
    if table.suffix != ".csv" or not table.is_file():
        return None
    with open(table, encoding="utf-8", newline="") as fh:
        return len({row.get("file") for row in csv.DictReader(fh)})
