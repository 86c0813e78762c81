"""Dataset config: load (JSON string, JSON or YAML file), validate against ``dataset_schema.yaml``,
fill defaults.

The schema is the single description of the keys; this module only adds defaults and the checks a
schema cannot express. Errors are :class:`~modgap.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.errors import ConfigError

SPLIT_NAMES = ("stats", "diag", "train", "test")
DEFAULT_SPLITS: dict[str, float] = {"stats": 0.3, "diag": 0.15, "train": 0.4, "test": 0.15}
DEFAULT_NAMES = {"embedded": "embedded", "coco": "coco", "folder": "folder"}


@functools.cache
def dataset_schema() -> dict[str, Any]:
    """The JSON schema of one dataset config (shipped as package data)."""
    text = importlib.resources.files("modgap.data").joinpath("dataset_schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_dataset_config(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse ``spec`` (a mapping, a JSON object string, or a path to a .json/.yaml file) and validate it."""
    if isinstance(spec, Mapping):
        raw: Any = copy.deepcopy(dict(spec))
        where = "dataset config"
    elif spec.lstrip().startswith("{"):
        where = "--dataset-config (JSON string)"
        try:
            raw = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON: {exc}") from exc
    else:
        path = Path(spec)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"--dataset-config: {path} is neither a JSON object nor an existing file")
        text = path.read_text(encoding="utf-8")
        try:
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{where}: cannot parse: {exc}") from exc
    return normalise_dataset_config(raw, where=where)


def normalise_dataset_config(raw: Any, *, where: str = "dataset config") -> dict[str, Any]:
    """Validate ``raw`` against the schema and return a copy with defaults filled in."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    validator = jsonschema.Draft202012Validator(dataset_schema())
    errors = list(validator.iter_errors(raw))
    if errors:
        errors.sort(key=jsonschema.exceptions.relevance, reverse=True)
        problems = [_describe(e) for e in errors[:3]]
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise ConfigError(f"{where}: {'; '.join(problems)}{more}")

    cfg = copy.deepcopy(raw)
    cfg.setdefault("name", DEFAULT_NAMES[cfg["format"]])
    cfg.setdefault("seed", 0)
    cfg.setdefault("max_items", None)
    cfg.setdefault("hash_images", True)
    cfg.setdefault("license", "unknown")
    cfg["splits"] = dict(cfg.get("splits") or DEFAULT_SPLITS)
    if "url" in cfg:
        # The single-file shorthand becomes a one-entry archives list so later code has one shape.
        keys = ("url", "sha256", "md5", "filename", "extract", "extract_to")
        entry = {k: cfg.pop(k) for k in keys if k in cfg}
        cfg["archives"] = [entry]
    for archive in cfg.get("archives", []):
        archive.setdefault("filename", archive["url"].rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0])
        archive.setdefault("extract", "auto")
        archive.setdefault("extract_to", ".")
        if not archive["filename"]:
            raise ConfigError(f"{where}: key 'archives': cannot derive a file name from {archive['url']}")
    _check_unique_filenames(cfg.get("archives", []), where)
    _check_splits(cfg["splits"], where)
    return cfg


def _check_unique_filenames(archives: list[dict[str, Any]], where: str) -> None:
    """Downloads are stored as downloads/<filename>: two archives with one name would overwrite each
    other (and be fetched again on every run)."""
    seen: dict[str, int] = {}
    for i, archive in enumerate(archives):
        name = archive["filename"]
        if name in seen:
            raise ConfigError(
                f"{where}: key 'archives.{i}.filename': {name!r} is also the file name of archives.{seen[name]} "
                f"({archives[seen[name]]['url']}); set a distinct filename"
            )
        seen[name] = i


def _describe(error: jsonschema.ValidationError) -> str:
    """Schema error text; "one of the keys ..." for anyOf/oneOf over required keys (the default
    message, "... is not valid under any of the given schemas", does not name them)."""
    key = ".".join(str(p) for p in error.absolute_path)
    prefix = f"key {key!r}: " if key else ""
    options = error.validator_value if error.validator in ("anyOf", "oneOf") else None
    if isinstance(options, list) and all(isinstance(o, dict) and set(o) == {"required"} for o in options):
        keys = " or ".join(repr(k) for o in options for k in o["required"])
        need = "needs exactly" if error.validator == "oneOf" else "needs at least"
        return f"{prefix}{need} one of the keys {keys}"
    return f"{prefix}{error.message}"


def _check_splits(splits: Mapping[str, float | int], where: str) -> None:
    values = list(splits.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return  # counts; compared with the number of images once it is known
    if any(v > 1 for v in values):
        raise ConfigError(
            f"{where}: key 'splits': mixes counts and fractions {dict(splits)}; use all integers (counts) "
            "or all numbers in [0, 1] (fractions)"
        )
    if sum(values) > 1 + 1e-9:
        raise ConfigError(f"{where}: key 'splits': fractions sum to {sum(values):.6g} > 1")
