"""Writing one table as markdown, CSV and LaTeX, atomically."""

from __future__ import annotations

import os

import pandas as pd

from modgap.io import write_text_atomic


def write_table(
    frame: pd.DataFrame, prefix: str | os.PathLike[str], *, caption: str = "", float_format: str = "{:.4g}"
) -> list[str]:
    """Write ``{prefix}.md``, ``{prefix}.csv`` and ``{prefix}.tex``; ``caption`` heads the markdown."""

    def cell(value: object) -> object:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "—"
        return float_format.format(value) if isinstance(value, float) else value

    # Cell by cell: columns mixing text and numbers (a paper-value column, say) are formatted too.
    formatted = frame.astype(object).map(cell)
    markdown = formatted.to_markdown(index=False)
    if caption:
        markdown = f"{caption}\n\n{markdown}"
    paths = [f"{prefix}.md", f"{prefix}.csv", f"{prefix}.tex"]
    write_text_atomic(paths[0], markdown + "\n")
    write_text_atomic(paths[1], frame.to_csv(index=False, lineterminator="\n"))
    write_text_atomic(paths[2], formatted.to_latex(index=False, caption=caption or None, escape=True))
    return paths
