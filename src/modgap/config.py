"""Loading and validating the workflow configuration.

JSON-schema checks the shape (every error names the dotted key path); a second pass checks the
cross-references a schema cannot express (a run naming an unknown encoder, an untrained encoder
without pretrained weights, ...).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.errors import ConfigError
from modgap.paramcheck import ParamError

DEFAULT_SCHEMA = Path("workflow/schemas/config.schema.yaml")
# The one project-built open_clip model (modgap.embed.models.MODEL_NAME; not imported: torch is slow).
LIT_MODEL = "modgap-lit-effnet-minilm"


def _key_path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<root>"


def validate_config(
    config: Mapping[str, Any],
    schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA,
    root: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`ConfigError` naming the offending dotted key, on one line (all schema errors).

    This is what the Snakefile runs on the merged config, so ``modgap config`` and a real run reject
    the same values: the schema, each dataset's own schema and split sizes, every stage's parameter
    types and ranges, presets and files that must exist (relative to ``root``, default the cwd).
    """
    validator = _validator(str(schema_path), os.stat(schema_path).st_mtime_ns)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_one_line([f"{_key_path(e.absolute_path)}: {e.message}" for e in errors]))
    base = Path(root) if root is not None else Path.cwd()
    _check_datasets(config, base)
    _check_references(config)
    _check_files(config, base)


@functools.lru_cache(maxsize=4)
def _validator(schema_path: str, mtime_ns: int) -> jsonschema.Draft202012Validator:
    """Parsing the schema YAML is most of a validation's cost; keyed by mtime so edits are seen."""
    with open(schema_path, encoding="utf-8") as fh:
        return jsonschema.Draft202012Validator(yaml.safe_load(fh))


def _one_line(problems: list[str]) -> str:
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


def _check_datasets(config: Mapping[str, Any], base: Path) -> None:
    from modgap.data.config import dataset_schema

    validator = jsonschema.Draft202012Validator(dataset_schema())
    lines = []
    for name, dataset in config["datasets"].items():
        for error in sorted(validator.iter_errors(dataset), key=lambda e: list(e.absolute_path)):
            lines.append(f"{_key_path(['datasets', name, *error.absolute_path])}: {error.message}")
    if lines:
        raise ConfigError(_one_line(lines))
    from modgap.data.config import normalise_dataset_config

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
    _check_multinode(config)
    report = config.get("report", {})
    if report.get("pca_split") and report["pca_split"] not in config["embed"]["splits"]:
        raise ConfigError(f"report.pca_split: split '{report['pca_split']}' is not in embed.splits")
    eval_split = config.get("eval", {}).get("suite", {}).get("split", "test")
    if eval_split not in config["embed"]["splits"]:
        raise ConfigError(f"eval.suite.split: split '{eval_split}' is not in embed.splits")
    if eval_split == "train":
        raise ConfigError("eval.suite.split: 'train' is what the MLLMs train on; evaluate on a held-out split")


# Only the MLLM training rules start one process group across nodes (modgap mllm launch); any other
# rule given several nodes would hold them idle.
MULTINODE_RULES = ("mllm_stage1", "mllm_stage2")


def _check_multinode(config: Mapping[str, Any]) -> None:
    resources = config.get("resources", {})
    if resources.get("default", {}).get("nodes", 1) > 1:
        raise ConfigError(
            "resources.default.nodes: several nodes only make sense for "
            f"{' and '.join(MULTINODE_RULES)}; set resources.rules.<rule>.nodes"
        )
    for rule, spec in resources.get("rules", {}).items():
        if spec.get("nodes", 1) <= 1:
            continue
        if rule not in MULTINODE_RULES:
            raise ConfigError(
                f"resources.rules.{rule}.nodes: only {' and '.join(MULTINODE_RULES)} run across several nodes"
            )
        if not config.get("mllm", {}).get("accelerate_config"):
            raise ConfigError(
                f"resources.rules.{rule}.nodes: several nodes need mllm.accelerate_config "
                "(e.g. config/accelerate/multinode-deepspeed.yaml)"
            )


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


def _check_method(key: str, name: str, overrides: Mapping[str, Any]) -> None:
    """Build the estimator (cheap: no data) so the registry's types and ranges apply."""
    from modgap.align.registry import make

    try:
        make(name, dict(overrides))
    except ParamError as exc:
        raise ConfigError(f"{key}.{exc.key}: {exc.reason}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def _check_files(config: Mapping[str, Any], base: Path) -> None:
    """Presets and files the run will open must exist now, not an hour into the DAG."""
    from modgap.mllm.config import PRESETS_DIR, preset_names

    preset = config["mllm"]["preset"]
    if not (PRESETS_DIR / f"{preset}.yaml").is_file() and not (base / preset).is_file():
        raise ConfigError(f"mllm.preset: {preset!r} is neither a preset ({', '.join(preset_names())}) nor a file")
    accelerate = config["mllm"].get("accelerate_config")
    if accelerate and not (base / accelerate).is_file():
        raise ConfigError(f"mllm.accelerate_config: file {accelerate!r} does not exist")
    for name, enc in config["encoders"].items():
        pretrained = enc.get("pretrained")
        if pretrained and _looks_like_path(pretrained) and not (base / pretrained).is_file():
            raise ConfigError(f"encoders.{name}.pretrained: checkpoint file {pretrained!r} does not exist")


def _looks_like_path(value: str) -> bool:
    """open_clip tags are bare words ('openai'); a checkpoint is named by a path."""
    named = "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))
    return named and not value.startswith("hf-hub:")


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
        except ParamError as exc:
            raise ConfigError(f"{key}.{exc.key}: {exc.reason}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    from modgap.evaluation.spec import check_config as check_eval

    check_eval(config)  # eval.suite and eval.max_new_tokens against the benchmark-task registry
    from modgap.embed.backends import backend_names

    for name, enc in config["encoders"].items():
        if enc.get("backend", "open_clip") not in backend_names():
            raise ConfigError(
                f"encoders.{name}.backend: {enc['backend']!r} is not a registered encoder backend "
                f"({', '.join(backend_names())})"
            )
    for name, overrides in config["align"]["methods"].items():
        _check_method(f"align.methods.{name}", name, overrides)
    aniso_study = config["align"]["studies"].get("aniso")
    if aniso_study is not None:
        _check_method("align.studies.aniso.params", "anisoalign", aniso_study.get("params") or {})
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
