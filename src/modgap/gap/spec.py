"""What the gap stage checks and declares for a config: its parameter blocks and its figures.

No torch at import: the Snakefile reads :func:`figure_files` while it parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError
from modgap.paramcheck import config_key


def check_config(config: Mapping[str, Any], base: Path) -> None:
    """gap.params and gap.dynamics.params by the stages' own defaults tables; dynamics datasets exist."""
    from modgap.gap.dynamics import merge_params as merge_dynamics_params
    from modgap.gap.stage import merge_params as merge_gap_params

    with config_key("gap.params"):
        merge_gap_params(config["gap"]["params"])
    with config_key("gap.dynamics.params"):
        merge_dynamics_params(config["gap"]["dynamics"]["params"])
    for i, name in enumerate(config["gap"]["dynamics"]["datasets"]):
        if name not in config["datasets"]:
            raise ConfigError(f"gap.dynamics.datasets.{i}: unknown dataset '{name}'")


def figure_files(runs: Iterable[tuple[str, str]], dynamics_datasets: Iterable[str]) -> list[str]:
    """AnisoAlign Figs. 1-3 per encoder x dataset and the ReAlign Fig. 1 analogue per dynamics run."""
    stems = [f"results/figures/gap_aa_fig{i}_{enc}_{ds}" for enc, ds in runs for i in (1, 2, 3)]
    stems += [f"results/figures/gap_ra_fig1_{ds}" for ds in dynamics_datasets]
    return [f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]
