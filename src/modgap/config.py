"""Loading and validating the workflow configuration.

JSON-schema checks the shape (every error names the dotted key path); a second pass checks the
cross-references a schema cannot express (a run naming an unknown encoder, an untrained encoder
without pretrained weights, ...).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.errors import ConfigError

DEFAULT_SCHEMA = Path("workflow/schemas/config.schema.yaml")
# Each stage checks its own part of the config (`check_config(config, base)` in its spec module), in
# pipeline order; this module knows them only by name, so it imports no stage.
STAGE_SPECS = (
    "modgap.data.spec",
    "modgap.embed.spec",
    "modgap.gap.spec",
    "modgap.align.spec",
    "modgap.mllm.spec",
    "modgap.evaluation.spec",
    "modgap.report.spec",
)


def key_path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<root>"


def validate_config(
    config: Mapping[str, Any],
    schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA,
    root: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`ConfigError` naming the offending dotted key, on one line (all schema errors).

    This is what the Snakefile runs on the merged config, so ``modgap config`` and a real run reject
    the same values: the schema, then each stage's own checks (:data:`STAGE_SPECS`): each dataset's
    schema and split sizes, every stage's parameter types and ranges, the registries, presets and files
    that must exist (relative to ``root``, default the cwd).
    """
    validator = _validator(str(schema_path), os.stat(schema_path).st_mtime_ns)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(one_line([f"{key_path(e.absolute_path)}: {e.message}" for e in errors]))
    base = Path(root) if root is not None else Path.cwd()
    _check_runs(config)
    for name in STAGE_SPECS:
        importlib.import_module(name).check_config(config, base)


def _check_runs(config: Mapping[str, Any]) -> None:
    """Each run names a configured encoder and dataset."""
    for i, run in enumerate(config["runs"]):
        if run["encoder"] not in config["encoders"]:
            raise ConfigError(f"runs.{i}.encoder: unknown encoder '{run['encoder']}'")
        if run["dataset"] not in config["datasets"]:
            raise ConfigError(f"runs.{i}.dataset: unknown dataset '{run['dataset']}'")


@functools.lru_cache(maxsize=4)
def _validator(schema_path: str, mtime_ns: int) -> jsonschema.Draft202012Validator:
    """Parsing the schema YAML is most of a validation's cost; keyed by mtime so edits are seen."""
    with open(schema_path, encoding="utf-8") as fh:
        return jsonschema.Draft202012Validator(yaml.safe_load(fh))


def one_line(problems: list[str]) -> str:
    """'invalid configuration: a; b; and N more' (a CLI error is one line)."""
    shown = "; ".join(p.replace("\n", " ") for p in problems[:5])
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"invalid configuration: {shown}{more}"


def merge_overlay(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged into ``base`` as Snakemake merges ``--configfile``: mappings recursively,
    everything else (lists included) replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overlay(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_json_params(text: str | None, option: str = "--params") -> dict[str, Any]:
    """A stage's parameter overrides from the command line: a JSON object, or a file holding one."""
    if not text:
        return {}
    source = Path(text).read_text(encoding="utf-8") if Path(text).is_file() else text
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict:
    """A YAML file whose top level is a mapping, or a one-line :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return config


def load_config(
    path: str | os.PathLike[str],
    schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA,
    overlays: Iterable[str | os.PathLike[str]] = (),
    root: str | os.PathLike[str] | None = None,
) -> dict:
    """Read ``path``, merge each overlay over it (Snakemake ``--configfile`` order), validate the result."""
    config = read_yaml_mapping(path)
    for overlay in overlays:
        config = merge_overlay(config, read_yaml_mapping(overlay))
    validate_config(config, schema_path, root)
    return config
