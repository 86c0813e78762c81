"""The publication check every saved figure passes: labelled axes, legends off the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from modgap.output.figures import FigureError, colour_for, figure_problems, legend_outside, save_figure


def _line_figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    x = np.linspace(0, 1, 50)
    ax.plot(x, x, label="y = x")
    ax.set_xlabel("x (units)")
    ax.set_ylabel("y (units)")
    return fig, ax


def test_a_labelled_figure_with_its_legend_outside_passes():
    fig, ax = _line_figure()
    legend_outside(ax)
    assert figure_problems(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("drop", ["x", "y"])
def test_an_unlabelled_axis_is_named(drop):
    fig, ax = _line_figure()
    (ax.set_xlabel if drop == "x" else ax.set_ylabel)("")
    assert figure_problems(fig) == [f"axes #0: {drop}-axis has tick labels but no label"]
    plt.close(fig)


def test_a_legend_over_the_line_is_caught_and_one_in_an_empty_corner_is_not():
    fig, ax = _line_figure()
    ax.legend(loc="upper left")  # the diagonal runs through the upper-right corner, not this one
    assert figure_problems(fig) == []
    ax.legend(loc="center")  # the diagonal crosses the centre between two of its vertices
    assert figure_problems(fig) == ["legend of axes #0 overlaps the data of axes #0"]
    plt.close(fig)


def test_bars_and_scatter_under_a_legend_are_caught():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["a", "b"], [1.0, 1.0], label="bars")
    ax.set_xlabel("method")
    ax.set_ylabel("score")
    ax.legend(loc="center")
    assert "overlaps the data" in figure_problems(fig)[0]
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter([0.5], [0.5], label="point")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="center")
    assert "overlaps the data" in figure_problems(fig)[0]
    plt.close(fig)


def test_a_twin_axis_needs_its_own_label():
    fig, ax = _line_figure()
    twin = ax.twinx()
    twin.plot([0, 1], [5, 6])
    legend_outside(ax)
    assert figure_problems(fig) == ["axes #1: y-axis has tick labels but no label"]
    twin.set_ylabel("other (units)")
    assert figure_problems(fig) == []
    plt.close(fig)


def test_save_figure_refuses_a_bad_figure_and_writes_nothing(tmp_path):
    fig, ax = _line_figure()
    ax.set_ylabel("")
    with pytest.raises(FigureError, match="y-axis has tick labels but no label"):
        save_figure(fig, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []
    fig, _ = _line_figure()
    assert [p.rsplit(".", 1)[1] for p in save_figure(fig, tmp_path / "good")] == ["png", "pdf"]


def test_a_method_keeps_its_colour_whichever_subset_is_drawn():
    universe = ["identity", "c3", "realign", "anisoalign", "coral"]
    assert colour_for("realign", universe) == colour_for("realign", [*reversed(universe), "realign"])
    colours = {colour_for(m, universe) for m in universe}
    assert len(colours) == len(universe)
