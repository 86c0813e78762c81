"""What the MLLM stages check in a config: regimes' sources, the preset, accelerate and multi-node use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError

# Only the MLLM training rules start one process group across nodes (modgap mllm launch); any other
# rule given several nodes would hold them idle.
MULTINODE_RULES = ("mllm_stage1", "mllm_stage2")


def check_config(config: Mapping[str, Any], base: Path) -> None:
    from modgap.mllm.config import PRESETS_DIR, preset_names

    for name, regime in config["mllm"]["regimes"].items():
        for stage in ("stage1", "stage2"):
            source = regime[stage]
            if source not in (None, "image") and source not in config["align"]["methods"]:
                raise ConfigError(f"mllm.regimes.{name}.{stage}: '{source}' is neither 'image' nor an align method")
    unknown = [r for r in config["mllm"].get("run_regimes", []) if r not in config["mllm"]["regimes"]]
    if unknown:
        raise ConfigError(f"mllm.run_regimes: {unknown} are not keys of mllm.regimes")
    if config["mllm"]["regimes"] and "train" not in config["align"]["splits"]:
        raise ConfigError("align.splits: must include 'train' (the MLLM stages train on its substitutes)")
    _check_multinode(config)
    preset = config["mllm"]["preset"]
    if not (PRESETS_DIR / f"{preset}.yaml").is_file() and not (base / preset).is_file():
        raise ConfigError(f"mllm.preset: {preset!r} is neither a preset ({', '.join(preset_names())}) nor a file")
    accelerate = config["mllm"].get("accelerate_config")
    if accelerate and not (base / accelerate).is_file():
        raise ConfigError(f"mllm.accelerate_config: file {accelerate!r} does not exist")


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
