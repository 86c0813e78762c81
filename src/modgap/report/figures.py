"""Saving figures as PNG + PDF with stable bytes (no timestamps), atomically."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from modgap.io import atomic_path

# Without these, matplotlib embeds the creation date and version, so identical figures differ.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def save_figure(
    fig: plt.Figure, prefix: str | os.PathLike[str], formats: tuple[str, ...] = ("png", "pdf")
) -> list[str]:
    """Write ``{prefix}.png`` and ``{prefix}.pdf``; returns the paths written and closes ``fig``."""
    written = []
    for fmt in formats:
        path = f"{prefix}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=_METADATA.get(fmt))
        written.append(path)
    plt.close(fig)
    return written
