"""`results/report.html`: one page with the claims, every figure and every CSV table of a run.

The page links the figures by relative path (it lives beside them under ``results/``, so the
committed file stays small and diffs stay readable) and embeds nothing that changes between
identical runs. A short script marks, once the page has loaded, each figure that failed to load
and each table that did not render, visibly for a reader and as ``data-`` attributes that the
headless-browser test reads.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from modgap.errors import ModgapError
from modgap.io import read_json, write_text_atomic

# Figure and table sections, by where the stage writes them (first match wins).
SECTIONS = (
    ("Encoder", ("embedding_pca", "encoder")),
    ("Gap theory", ("gap_",)),
    ("Alignment", ("/align/", "align_", "aniso_")),
    ("MLLM evaluation", ("eval",)),
)
VERDICT_CLASS = {
    "holds": "holds",
    "does not hold": "fails",
    "uninformative at this tier": "uninformative",
    "not measurable at this tier": "unmeasurable",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 12px; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } figure { margin: 1em 0 2em; } figure img { max-width: 100%; }
figcaption { font-size: 13px; color: #444; } .broken { color: #b00; font-weight: 600; }
.holds { background: #e3f4e3; } .fails { background: #f8e0e0; }
.uninformative { background: #fff4d6; } .unmeasurable { background: #eeeeee; }
.scroll { overflow-x: auto; }
"""
# Runs once the page (images included) has loaded: mark what did not render, for a reader and a test.
_CHECK = """
window.addEventListener("load", function () {
  var broken = 0;
  document.querySelectorAll("img").forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    img.dataset.loaded = ok ? "yes" : "no";
    if (!ok) {
      broken += 1;
      var note = document.createElement("p");
      note.className = "broken";
      note.textContent = "figure missing: " + img.getAttribute("src");
      img.insertAdjacentElement("afterend", note);
    }
  });
  document.querySelectorAll("table").forEach(function (table) {
    table.dataset.rendered = (table.offsetHeight > 0 && table.rows.length > 1) ? "yes" : "no";
  });
  document.body.dataset.checked = "yes";
  document.body.dataset.broken = String(broken);
});
"""


class ReportError(ModgapError):
    """An input of the HTML report is missing or unreadable."""


def section_of(path: str) -> str:
    for name, needles in SECTIONS:
        if any(n in path for n in needles):
            return name
    return "Other"


def expand_tables(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """CSV files, a directory standing for the CSVs under it (sorted), each checked to exist."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(path.rglob("*.csv"))
        elif path.is_file():
            found.append(path)
        else:
            raise ReportError(f"{path}: table does not exist")
    return found


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def _claims_section(claims: Mapping[str, Any]) -> list[str]:
    out = ["<h2 id='claims'>Claims</h2>", f"<p>{_esc(claims.get('tally', {}).get('line', ''))}</p>"]
    for run, rows in claims.get("runs", {}).items():
        out.append(f"<h3>{_esc(run)}</h3><div class='scroll'><table class='claims'>")
        out.append(
            "<tr><th>id</th><th>claim</th><th>source</th><th>test</th><th>ours</th><th>paper</th>"
            "<th>null (value; 99th pct)</th><th>interval</th><th>verdict</th><th>why</th></tr>"
        )
        for row in rows:
            null = row.get("null") or {}
            shown = [null.get("value"), null.get("q99")]
            null_text = "; ".join(map(_number, shown)) if any(v is not None for v in shown) else "—"
            interval = row.get("interval")
            interval_text = (
                f"[{_number(interval[0])}, {_number(interval[1])}]"
                if isinstance(interval, Sequence) and len(interval) == 2
                else _number(interval)
            )
            verdict = row.get("verdict", "")
            out.append(
                f"<tr class='{VERDICT_CLASS.get(verdict, '')}'><td>{_esc(row.get('id'))}</td>"
                f"<td>{_esc(row.get('statement'))}</td><td>{_esc(row.get('source'))}</td>"
                f"<td>{_esc(row.get('test'))}</td><td>{_number(row.get('measured'))}</td>"
                f"<td>{_number(row.get('paper_value'))}</td><td>{null_text}</td><td>{interval_text}</td>"
                f"<td>{_esc(verdict)}</td><td>{_esc(row.get('reason'))}</td></tr>"
            )
        out.append("</table></div>")
    return out


def _figure(path: Path, base: Path) -> str:
    rel = os.path.relpath(path, base)
    pdf = path.with_suffix(".pdf")
    link = f" · <a href='{_esc(os.path.relpath(pdf, base))}'>PDF</a>" if pdf.is_file() else ""
    return f"<figure><img src='{_esc(rel)}' alt='{_esc(path.stem)}'><figcaption>{_esc(rel)}{link}</figcaption></figure>"


def _table(path: Path, base: Path) -> str:
    frame = pd.read_csv(path)
    body = frame.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    return f"<h3>{_esc(os.path.relpath(path, base))}</h3><div class='scroll'>{body}</div>"


def _environment(metrics: Sequence[Path]) -> list[str]:
    """The environments recorded by the runs that wrote the metrics (each distinct one once)."""
    seen: list[dict] = []
    for path in metrics:
        env = read_json(path).get("environment")
        if env and env not in seen:
            seen.append(env)
    out = ["<h2 id='environment'>Environment</h2>"]
    for env in seen:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(env.get("versions", {}).items()))
        out.append(
            f"<p>lock sha256 <code>{_esc(env.get('lock_sha256'))}</code> · {_esc(env.get('platform', ''))}"
            f" · {_esc(versions)}</p>"
        )
    return out


def build_html(
    *,
    title: str,
    figures: Sequence[Path],
    tables: Sequence[Path],
    claims: Path | None,
    metrics: Sequence[Path],
    base: Path,
) -> str:
    """The report's HTML; ``base`` is the folder the page is written to (links are relative to it)."""
    for path in [*figures, *metrics, *([claims] if claims else [])]:
        if not Path(path).is_file():
            raise ReportError(f"{path}: report input does not exist")
    sections = [name for name, _ in SECTIONS] + ["Other"]
    toc = ["<a href='#environment'>Environment</a>"] + (["<a href='#claims'>Claims</a>"] if claims else [])
    toc += [
        f"<a href='#{n.lower().replace(' ', '-')}'>{n}</a>"
        for n in sections
        if any(section_of(str(p)) == n for p in [*figures, *tables])
    ]
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<nav>" + " · ".join(toc) + "</nav>",
    ]
    parts += _environment(metrics)
    if claims:
        parts += _claims_section(read_json(claims))
    for name in sections:
        figs = [p for p in figures if section_of(str(p)) == name]
        tabs = [p for p in tables if section_of(str(p)) == name]
        if not figs and not tabs:
            continue
        parts.append(f"<h2 id='{name.lower().replace(' ', '-')}'>{name}</h2>")
        parts += [_figure(Path(p), base) for p in figs]
        parts += [_table(Path(p), base) for p in tabs]
    parts += [f"<script>{_CHECK}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write_html_report(out: str | os.PathLike[str], **kwargs: Any) -> Path:
    out = Path(out)
    text = build_html(base=out.parent, **kwargs)
    write_text_atomic(out, text)
    return out
