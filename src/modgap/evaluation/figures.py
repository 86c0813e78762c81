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

from modgap.report.figures import save_figure


def eval_summary_figure(metrics: Mapping[str, Any], runs: Sequence[Mapping[str, str]],
                        regimes: Mapping[str, Any], prefix: str | os.PathLike[str]) -> list[str]:
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 4.2 * len(runs)), squeeze=False)
    for (ax_bar, ax_geo), run in zip(axes, runs, strict=True):
        summary = metrics[run["encoder"]][run["dataset"]]
        _bars(ax_bar, summary, f"{run['encoder']} / {run['dataset']}")
        _geometry(ax_geo, summary)
    fig.tight_layout()
    return save_figure(fig, prefix)


def _bars(ax: plt.Axes, summary: Mapping[str, Any], title: str) -> None:
    names = list(summary["regimes"])
    x = np.arange(len(names))
    image = [_nan(summary["regimes"][n].get("avg")) for n in names]
    blind = [_nan(summary["regimes"][n].get("blind_avg")) for n in names]
    ax.bar(x - 0.2, image, 0.4, label="with image")
    ax.bar(x + 0.2, blind, 0.4, label="blind (B2)", color="grey")
    base = summary.get("base_llm")
    if base and base.get("avg") is not None:
        ax.axhline(base["avg"], color="black", linestyle=":", label="base LLM blind (B1)")
    tallest = np.nanmax([*image, *blind, 0.0])
    ax.set_ylim(0, 1.4 * tallest if tallest > 0 else 1.0)  # headroom so the legend covers no bar
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("Avg of POPE and circular MC accuracy")
    ax.set_title(f"(a) benchmark average — {title}")
    ax.legend(loc="upper right", fontsize=8, ncol=3)


def _geometry(ax: plt.Axes, summary: Mapping[str, Any]) -> None:
    probes = summary["probes"]
    points = [(s, p["geometry"].get("delta_mu"), p["cider_d"]) for s, p in probes.items()]
    for source, gap, score in points:
        gx = 0.0 if source == "image" else gap  # real images: no substitute, no gap by definition
        if gx is None:
            continue
        ax.scatter(gx, score)
        ax.annotate(source, (gx, score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("held-out Δµ of the Stage-1 input (0 for real images)")
    ax.set_ylabel("Stage-1 probe CIDEr-D (real images)")
    ax.set_title("(b) embedding geometry vs Stage-1 transfer")


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
