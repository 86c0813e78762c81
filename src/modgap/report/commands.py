"""`modgap report …`: tables, figures and metrics that summarise a stage."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="tables, figures and metrics")
    report_sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    enc = report_sub.add_parser("encoder", help="retrieval + centroid gap table, PCA figure")
    enc.add_argument("--runs", required=True, help='JSON list of {"encoder":..., "dataset":...}')
    enc.add_argument("--embeddings-root", default="results/embeddings")
    enc.add_argument("--pca-split", default="diag")
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--metrics-out", required=True)
    enc.add_argument("--tables-prefix", required=True)
    enc.add_argument("--figure-prefix", required=True)
    enc.set_defaults(func=_encoder)


def _encoder(args: argparse.Namespace) -> int:
    from modgap.report.encoder import write_encoder_report

    rows = write_encoder_report(
        json.loads(args.runs), args.embeddings_root, pca_split=args.pca_split, seed=args.seed,
        metrics_out=args.metrics_out, tables_prefix=args.tables_prefix, figure_prefix=args.figure_prefix,
    )
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0
