"""The evaluation summary figure: (a) each regime's benchmark Avg with real images beside its
blind (B2) score and the base LLM (B1); (b) the Stage-1 probe's captioning score against the
held-out centroid gap Δµ of the substitutes that Stage 1 was trained on (does geometry predict
transfer?)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from modgap.output.figures import legend_outside, save_figure


def eval_summary_figure(
    metrics: Mapping[str, Any],
    runs: Sequence[Mapping[str, str]],
    regimes: Mapping[str, Any],
    prefix: str | os.PathLike[str],
) -> list[str]:
    fig, axes = plt.subplots(len(runs), 2, figsize=(14, 4.2 * len(runs)), squeeze=False)
    for (ax_bar, ax_geo), run in zip(axes, runs, strict=True):
        summary = metrics[run["encoder"]][run["dataset"]]
        _bars(ax_bar, summary, f"{run['encoder']} / {run['dataset']}")
        _geometry(ax_geo, summary)
    fig.tight_layout()
    return save_figure(fig, prefix)


def _bars(ax: plt.Axes, summary: Mapping[str, Any], title: str) -> None:
    names = list(summary["regimes"])
    x = np.arange(len(names))
    regimes = summary["regimes"]
    # Every evaluated condition side by side: image − shuffled is the measure of image use.
    bars = [
        (key, label, colour)
        for key, label, colour in (
            ("avg", "with image", "C0"),
            ("shuffled_avg", "shuffled images (B3)", "C1"),
            ("mean_avg", "mean image (B3)", "C2"),
            ("blind_avg", "blind (B2)", "0.6"),
        )
        if any(regimes[n].get(key) is not None for n in names)
    ]
    width = 0.8 / max(len(bars), 1)
    for k, (key, label, colour) in enumerate(bars):
        values = np.array([_nan(regimes[n].get(key)) for n in names])
        ax.bar(
            x + (k - (len(bars) - 1) / 2) * width,
            values,
            width,
            color=colour,
            label=label,
            yerr=_interval([regimes[n] for n in names], key, values),
            capsize=2,
            error_kw={"lw": 0.8},
        )
    base = summary.get("base_llm")
    if base and base.get("avg") is not None:
        ax.axhline(base["avg"], color="black", linestyle=":", label="base LLM blind (B1)")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_xlabel("MLLM regime")
    ax.set_ylabel("Avg of POPE and circular MC accuracy")
    ax.set_title(f"(a) benchmark average — {title}")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", lw=0.8, marker="_"))
    legend_outside(ax, handles, [*labels, "95% paired-bootstrap interval"])


def _interval(rows: Sequence[Mapping[str, Any]], key: str, values: np.ndarray) -> np.ndarray:
    """Asymmetric error bars from the recorded ``{key}_ci_low`` / ``{key}_ci_high`` (0 where absent)."""
    low = np.array([_nan(r.get(f"{key}_ci_low")) for r in rows])
    high = np.array([_nan(r.get(f"{key}_ci_high")) for r in rows])
    return np.nan_to_num(np.maximum(np.array([values - low, high - values]), 0.0))


def _geometry(ax: plt.Axes, summary: Mapping[str, Any]) -> None:
    probes = summary["probes"]
    for source, probe in probes.items():
        gx = 0.0 if source == "image" else probe["geometry"].get("delta_mu")  # real images: no gap by definition
        if gx is None:
            continue
        score = probe["cider_d"]
        ci = probe.get("cider_d_ci")
        yerr = [[max(score - ci[0], 0.0)], [max(ci[1] - score, 0.0)]] if ci else None
        ax.errorbar([gx], [score], yerr=yerr, fmt="o", capsize=2, lw=0.8)
        ax.annotate(source, (gx, score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("held-out Δµ of the Stage-1 input (0 for real images)")
    ax.set_ylabel("Stage-1 probe CIDEr-D (real images)")
    ax.set_title("(b) embedding geometry vs Stage-1 transfer (bars: 95% bootstrap interval)")


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
