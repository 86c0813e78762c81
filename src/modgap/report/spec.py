"""What the report stage checks in a config: the split its PCA figure shows exists."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError


def check_config(config: Mapping[str, Any], base: Path) -> None:
    report = config.get("report", {})
    if report.get("pca_split") and report["pca_split"] not in config["embed"]["splits"]:
        raise ConfigError(f"report.pca_split: split '{report['pca_split']}' is not in embed.splits")
