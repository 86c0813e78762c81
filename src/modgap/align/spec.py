"""What the alignment stage declares for a config: the figures `modgap align report` draws.

The workflow (``workflow/rules/common.smk``) and the report (:func:`modgap.align.report.figures`)
both read :func:`figure_stems`, so a config without a study or a method declares no figure that
will never be written, and the conditions are written once. No matplotlib, no torch: the Snakefile
imports this while it parses.
"""

from __future__ import annotations

from collections.abc import Iterable

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
