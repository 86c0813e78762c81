"""`modgap report …`: tables, figures and metrics that summarise a stage."""

from __future__ import annotations

import argparse
import json

from modgap.commandline import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    report = add_command(
        subparsers,
        "report",
        help="tables, figures and metrics",
        description="Reports that summarise a stage across every run (the other stages write their own with "
        "`modgap gap report`, `modgap align report` and `modgap eval report`).",
    )
    report_sub = report.add_subparsers(
        dest="report_command", required=True, metavar="REPORT", help="which report (see the list below)"
    )
    enc = add_command(
        report_sub,
        "encoder",
        help="retrieval + centroid gap table, PCA figure",
        description="For each run: image-to-text and text-to-image retrieval (R@1, R@5, chance) and the centroid "
        "gap on the held-out diag split, written as a metrics JSON and a table (.md, .csv, .tex); a 2-D PCA "
        "figure of image and text embeddings of --pca-split (.png, .pdf). Prints one JSON row per run.",
    )
    enc.add_argument("--runs", required=True, help='JSON list of {"encoder":..., "dataset":...}')
    enc.add_argument(
        "--embeddings-root", default="results/embeddings", help="embeddings under ROOT/{encoder}/{dataset}/{split}"
    )
    enc.add_argument("--pca-split", default="diag", help="split whose embeddings the PCA figure shows")
    enc.add_argument("--seed", type=int, default=0, help="random_state of the PCA")
    enc.add_argument("--metrics-out", required=True, help="metrics JSON to write (results/metrics/encoder.json)")
    enc.add_argument("--tables-prefix", required=True, help="table written as PREFIX.md, PREFIX.csv and PREFIX.tex")
    enc.add_argument("--figure-prefix", required=True, help="PCA figure written as PREFIX.png and PREFIX.pdf")
    enc.set_defaults(func=_encoder)
    page = add_command(
        report_sub,
        "html",
        help="results/report.html: claims, every figure and every table on one page",
        description="One HTML page with the runs' environment (lock hash, library versions), the claims table "
        "coloured by verdict, every figure (linked by a path relative to the page, with its PDF) and every CSV "
        "table, grouped by stage. Every input must exist; nothing in the page changes between identical runs.",
    )
    page.add_argument("--title", default="modgap report", help="page title")
    page.add_argument("--figures", nargs="+", required=True, help="PNG figures, in the order shown")
    page.add_argument("--tables", nargs="*", default=[], help="CSV tables, or folders standing for the CSVs in them")
    page.add_argument("--metrics", nargs="*", default=[], help="metrics JSONs whose recorded environment is shown")
    page.add_argument("--claims", help="claims JSON (modgap eval claims --metrics-out); omitted: no claims section")
    page.add_argument("--out", required=True, help="the page to write (its folder is the base of every link)")
    page.set_defaults(func=_html)


def _encoder(args: argparse.Namespace) -> int:
    from modgap.report.encoder import write_encoder_report

    rows = write_encoder_report(
        json.loads(args.runs),
        args.embeddings_root,
        pca_split=args.pca_split,
        seed=args.seed,
        metrics_out=args.metrics_out,
        tables_prefix=args.tables_prefix,
        figure_prefix=args.figure_prefix,
    )
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0


def _html(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modgap.report.html import expand_tables, write_html_report

    out = write_html_report(
        args.out,
        title=args.title,
        figures=[Path(p) for p in args.figures],
        tables=expand_tables(args.tables),
        claims=Path(args.claims) if args.claims else None,
        metrics=[Path(p) for p in args.metrics],
    )
    print(out)
    return 0
