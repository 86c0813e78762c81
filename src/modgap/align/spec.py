"""What the alignment stage checks and declares for a config: its methods' parameters, its studies and
the figures `modgap align report` draws.

The workflow (``workflow/rules/common.smk``) and the report (:func:`modgap.align.report.figures`)
both read :func:`figure_stems`, so a config without a study or a method declares no figure that
will never be written, and the conditions are written once. No matplotlib, no torch: the Snakefile
imports this while it parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError
from modgap.paramcheck import config_key

# Study name in the config -> its `modgap align` subcommand.
STUDY_COMMANDS = {
    "sample_size": "study-n",
    "precision": "study-precision",
    "cost": "study-cost",
    "aniso": "study-aniso",
}
# Methods whose spectra, cosine KDEs and PCA mixing [RA] Figs 4-5 compare (those present are drawn).
SPECTRUM_METHODS = ("identity", "c3", "realign")


def figure_stems(methods: Iterable[str], studies: Iterable[str]) -> list[str]:
    """File stems (no extension) of the alignment figures for these methods and study names."""
    methods, studies = set(methods), set(studies)
    stems = ["align_centroid_gap"]
    if methods & set(SPECTRUM_METHODS):
        stems += ["align_spectrum_kde", "align_mixing_pca"]
    if "sample_size" in studies:
        stems.append("align_sample_size")
    if studies & {"precision", "cost"}:
        stems.append("align_precision_cost")
    if {"blockwise", "realign"} <= methods:
        stems.append("align_bc_conditioning")
    return [*stems, "aniso_target_compat", "aniso_semantics"]


def check_config(config: Mapping[str, Any], base: Path) -> None:
    """Every configured method's parameters by the registry's types and ranges (built without data),
    the AnisoAlign study's base parameters, and the aligned splits."""
    from modgap.align.registry import make

    for name, overrides in config["align"]["methods"].items():
        with config_key(f"align.methods.{name}"):
            make(name, dict(overrides))
    aniso_study = config["align"]["studies"].get("aniso")
    if aniso_study is not None:
        with config_key("align.studies.aniso.params"):
            make("anisoalign", dict(aniso_study.get("params") or {}))
    for study in config["align"]["studies"]:
        if study not in STUDY_COMMANDS:
            raise ConfigError(f"align.studies.{study}: unknown study; known: {sorted(STUDY_COMMANDS)}")
    for i, split in enumerate(config["align"]["splits"]):
        if split not in config["embed"]["splits"]:
            raise ConfigError(f"align.splits.{i}: split '{split}' is not in embed.splits")
