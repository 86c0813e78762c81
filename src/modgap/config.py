"""Loading and validating the workflow configuration.

JSON-schema checks the shape (every error names the dotted key path); a second pass checks the
cross-references a schema cannot express (a run naming an unknown encoder, an untrained encoder
without pretrained weights, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.errors import ConfigError

DEFAULT_SCHEMA = Path("workflow/schemas/config.schema.yaml")
# The one project-built open_clip model (modgap.embed.models.MODEL_NAME; not imported: torch is slow).
LIT_MODEL = "modgap-lit-effnet-minilm"


def _key_path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<root>"


def validate_config(config: Mapping[str, Any], schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA) -> None:
    """Raise :class:`ConfigError` naming the first offending key (all schema errors are listed)."""
    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_key_path(e.absolute_path)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_datasets(config)
    _check_references(config)


def _check_datasets(config: Mapping[str, Any]) -> None:
    from modgap.data.config import dataset_schema

    validator = jsonschema.Draft202012Validator(dataset_schema())
    lines = []
    for name, dataset in config["datasets"].items():
        for error in sorted(validator.iter_errors(dataset), key=lambda e: list(e.absolute_path)):
            lines.append(f"{_key_path(['datasets', name, *error.absolute_path])}: {error.message}")
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def _check_references(config: Mapping[str, Any]) -> None:
    datasets, encoders = config["datasets"], config["encoders"]
    for name, enc in encoders.items():
        train = enc.get("train")
        if train is None and not enc.get("pretrained"):
            raise ConfigError(f"encoders.{name}: needs either 'pretrained' or a 'train' section")
        if train is not None and enc.get("pretrained"):
            raise ConfigError(f"encoders.{name}: 'pretrained' and 'train' are mutually exclusive")
        if train is not None and enc["model"] != LIT_MODEL:
            raise ConfigError(f"encoders.{name}.model: only '{LIT_MODEL}' can be trained by the encoder rule")
        if train is not None and train["dataset"] not in datasets:
            raise ConfigError(f"encoders.{name}.train.dataset: unknown dataset '{train['dataset']}'")
    for i, run in enumerate(config["runs"]):
        if run["encoder"] not in encoders:
            raise ConfigError(f"runs.{i}.encoder: unknown encoder '{run['encoder']}'")
        if run["dataset"] not in datasets:
            raise ConfigError(f"runs.{i}.dataset: unknown dataset '{run['dataset']}'")
    for i, name in enumerate(config["gap"]["dynamics"]["datasets"]):
        if name not in datasets:
            raise ConfigError(f"gap.dynamics.datasets.{i}: unknown dataset '{name}'")
    _check_stage_params(config)
    report = config.get("report", {})
    if report.get("pca_split") and report["pca_split"] not in config["embed"]["splits"]:
        raise ConfigError(f"report.pca_split: split '{report['pca_split']}' is not in embed.splits")
    eval_split = config.get("eval", {}).get("suite", {}).get("split", "test")
    if eval_split not in config["embed"]["splits"]:
        raise ConfigError(f"eval.suite.split: split '{eval_split}' is not in embed.splits")
    if eval_split == "train":
        raise ConfigError("eval.suite.split: 'train' is what the MLLMs train on; evaluate on a held-out split")


def merge_with_defaults(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, label: str) -> dict:
    """``defaults`` updated by ``overrides``; an unknown key is a :class:`ConfigError` naming it."""
    params = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ConfigError(f"{label}: unknown key {key!r} (known: {', '.join(sorted(params))})")
        params[key] = value
    return params


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


def load_config(path: str | os.PathLike[str], schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    validate_config(config, schema_path)
    return config


def _check_stage_params(config: Mapping[str, Any]) -> None:
    """Stage parameter blocks are checked by the stages' own defaults tables, so typos fail early."""
    from modgap.gap.dynamics import merge_params as merge_dynamics_params
    from modgap.gap.stage import merge_params as merge_gap_params

    for key, merge in (("gap.params", merge_gap_params), ("gap.dynamics.params", merge_dynamics_params)):
        section = config
        for part in key.split("."):
            section = section[part]
        try:
            merge(section)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    from modgap.align.registry import make

    for name, overrides in config["align"]["methods"].items():
        try:
            make(name, overrides)
        except ConfigError as exc:
            raise ConfigError(f"align.methods.{name}: {exc}") from exc
    for name, regime in config["mllm"]["regimes"].items():
        for stage in ("stage1", "stage2"):
            source = regime[stage]
            if source not in (None, "image") and source not in config["align"]["methods"]:
                raise ConfigError(f"mllm.regimes.{name}.{stage}: '{source}' is neither 'image' nor an align method")
    if config["mllm"]["regimes"] and "train" not in config["align"]["splits"]:
        raise ConfigError("align.splits: must include 'train' (the MLLM stages train on its substitutes)")
    for i, split in enumerate(config["align"]["splits"]):
        if split not in config["embed"]["splits"]:
            raise ConfigError(f"align.splits.{i}: split '{split}' is not in embed.splits")
