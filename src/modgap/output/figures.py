"""Saving figures as PNG + PDF with stable bytes (no timestamps), atomically, after a publication check.

Every figure the pipeline writes goes through :func:`save_figure`, which refuses a figure with an
unlabelled axis or a legend drawn over data (:func:`figure_problems`), so the check covers every
figure of every run, not a sample. The helpers below give each figure the same conventions: one
colour per method across figures, the papers' values drawn as hatched outlines, legends outside.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.legend import Legend
from matplotlib.transforms import Bbox

from modgap.errors import ModgapError
from modgap.io import atomic_path

# Without these, matplotlib embeds the creation date and version, so identical figures differ.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}

# The papers' reported values: hatched outlines beside our filled bars, one legend entry explaining them.
PAPER_STYLE = {"facecolor": "none", "edgecolor": "0.25", "hatch": "////", "linewidth": 0.8}
_PALETTE = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]


class FigureError(ModgapError):
    """A figure is not fit to publish: an unlabelled axis or a legend over the data."""


def colour_for(name: str, universe: Iterable[str]) -> tuple[float, float, float]:
    """The colour of ``name`` given every name that can appear (e.g. all registered methods).

    Indexed by the sorted universe, so a method keeps its colour whichever subset a figure shows.
    """
    ordered = sorted(set(universe) | {name})
    if len(ordered) <= len(_PALETTE):
        return _PALETTE[ordered.index(name)]
    return _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def legend_outside(
    ax: plt.Axes, handles: Sequence | None = None, labels: Sequence[str] | None = None, **kwargs
) -> Legend:
    """A legend to the right of ``ax``, outside the data area (``save_figure`` crops tightly)."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": 7}
    options.update(kwargs)
    if handles is None:
        return ax.legend(**options)
    return ax.legend(handles, labels, **options)


def legend_below(fig: plt.Figure, axes: Sequence[plt.Axes], ncol: int = 4, **kwargs) -> Legend | None:
    """One legend for several panels, under the figure: each label once, in first-seen order."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if not seen:
        return None
    options = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "ncol": ncol, "fontsize": 7, "frameon": False}
    options.update(kwargs)
    return fig.legend(list(seen.values()), list(seen), **options)


def figure_problems(fig: plt.Figure) -> list[str]:
    """What keeps ``fig`` from a paper: unlabelled visible axes, legends overlapping plotted data."""
    fig.canvas.draw()  # tick labels and legend extents exist only after a draw
    renderer = fig.canvas.get_renderer()
    problems: list[str] = []
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    for ax in data_axes:
        name = _axes_name(ax)
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if axis.get_visible() and _shows_ticks(axis) and not label.strip():
                problems.append(f"{name}: {axis.axis_name}-axis has tick labels but no label")
    legends = [(leg, f"legend of {_axes_name(ax)}") for ax in fig.axes if (leg := ax.get_legend())]
    legends += [(leg, "figure legend") for leg in fig.legends]
    for legend, where in legends:
        box = legend.get_window_extent(renderer)
        for ax in data_axes:
            if _covers_data(ax, box, renderer):
                problems.append(f"{where} overlaps the data of {_axes_name(ax)}")
    return problems


def _axes_name(ax: plt.Axes) -> str:
    return f"axes {ax.get_title()!r}" if ax.get_title() else f"axes #{ax.figure.axes.index(ax)}"


def _shows_ticks(axis: matplotlib.axis.Axis) -> bool:
    return any(t.get_visible() and t.get_text().strip() for t in axis.get_ticklabels())


def _covers_data(ax: plt.Axes, box: Bbox, renderer) -> bool:
    """Whether any plotted point, segment, bar or polygon of ``ax`` falls inside ``box`` (pixels)."""
    inner = box.shrunk(0.98, 0.98).anchored("C", box)  # a shared border pixel is not an overlap
    # Data is clipped to the axes, so only the part of the legend over the axes can hide any.
    inner = Bbox.intersection(inner, ax.bbox)
    if inner is None:
        return False
    for line in ax.lines:
        if line.get_visible() and _any_inside(_densify(line.get_transform().transform(line.get_xydata())), inner):
            return True
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        offsets = collection.get_offsets()
        if len(offsets) and _any_inside(collection.get_offset_transform().transform(offsets), inner):
            return True
        for path in collection.get_paths():
            vertices = collection.get_transform().transform(path.vertices)
            if _any_inside(_densify(vertices), inner):
                return True
    return any(p.get_visible() and p.get_window_extent(renderer).overlaps(inner) for p in ax.patches)


def _densify(points: np.ndarray, per_segment: int = 16) -> np.ndarray:
    """Points along each segment, so a line crossing the legend counts, not only its vertices."""
    points = np.asarray(points, dtype=float)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[None, :, None]
    segments = points[:-1, None, :] + t * (points[1:, None, :] - points[:-1, None, :])
    return np.concatenate([segments.reshape(-1, 2), points[-1:]])


def _any_inside(points: np.ndarray, box: Bbox) -> bool:
    if len(points) == 0:
        return False
    x, y = points[:, 0], points[:, 1]
    return bool(np.any((x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)))


def save_figure(
    fig: plt.Figure, prefix: str | os.PathLike[str], formats: tuple[str, ...] = ("png", "pdf")
) -> list[str]:
    """Check ``fig``, write ``{prefix}.png`` and ``{prefix}.pdf``; returns the paths and closes ``fig``.

    Raises :class:`FigureError` naming each problem (and writes nothing) when the check fails.
    """
    problems = figure_problems(fig)
    if problems:
        plt.close(fig)
        raise FigureError(f"{prefix}: " + "; ".join(problems))
    written = []
    for fmt in formats:
        path = f"{prefix}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=_METADATA.get(fmt))
        written.append(path)
    plt.close(fig)
    return written
