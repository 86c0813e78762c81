"""Writing one table as markdown, CSV and LaTeX, atomically."""

from __future__ import annotations

import os

import pandas as pd

from modgap.io import write_text_atomic


def write_table(
    frame: pd.DataFrame, prefix: str | os.PathLike[str], *, caption: str = "", float_format: str = "{:.4g}"
) -> list[str]:
    """Write ``{prefix}.md``, ``{prefix}.csv`` and ``{prefix}.tex``; ``caption`` heads the markdown."""
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: "" if pd.isna(v) else float_format.format(v))
    markdown = formatted.to_markdown(index=False)
    if caption:
        markdown = f"{caption}\n\n{markdown}"
    paths = [f"{prefix}.md", f"{prefix}.csv", f"{prefix}.tex"]
    write_text_atomic(paths[0], markdown + "\n")
    write_text_atomic(paths[1], frame.to_csv(index=False, lineterminator="\n"))
    write_text_atomic(paths[2], formatted.to_latex(index=False, caption=caption or None, escape=True))
    return paths
