"""``modgap gap {stats,report,dynamics}``: the gap-theory stage's command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from modgap.config import parse_json_params


def _stats(args: argparse.Namespace) -> int:
    from modgap.gap.stage import run_stats

    run_stats(
        args.stats_dir,
        args.diag_dir,
        args.out_dir,
        parse_json_params(args.params),
        encoder=args.encoder,
        dataset=args.dataset,
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from modgap.gap.report import write_report

    write_report(args.runs, args.figures_dir, args.tables_dir, args.metrics, args.dynamics or ())
    return 0


def _dynamics(args: argparse.Namespace) -> int:
    from modgap.gap.dynamics import run_dynamics

    run_dynamics(args.manifest, args.out_dir, parse_json_params(args.params), dataset=args.dataset)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    gap = subparsers.add_parser("gap", help="modality-gap statistics, diagnostics, dynamics and figures")
    sub = gap.add_subparsers(dest="gap_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("stats", help="marginal + paired gap statistics of one encoder x dataset")
    p.add_argument("--stats-dir", type=Path, required=True, help="unpaired statistics split (image.npy, text.npy)")
    p.add_argument("--diag-dir", type=Path, required=True, help="held-out paired diagnostic split")
    p.add_argument("--out-dir", type=Path, required=True, help="writes stats.json and spectra.npz here")
    p.add_argument("--params", help="JSON object (or a file holding one) overriding the defaults")
    p.add_argument("--encoder", help="label (default: the out-dir's parent name)")
    p.add_argument("--dataset", help="label (default: the out-dir's name)")
    p.set_defaults(func=_stats)

    p = sub.add_parser("report", help="figures, tables and results/metrics/gap.json")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="results/gap/{enc}/{ds} directories")
    p.add_argument("--dynamics", type=Path, nargs="*", help="results/gap/dynamics/{ds} directories")
    p.add_argument("--figures-dir", type=Path, default=Path("results/figures"))
    p.add_argument("--tables-dir", type=Path, default=Path("results/tables"))
    p.add_argument("--metrics", type=Path, default=Path("results/metrics/gap.json"))
    p.set_defaults(func=_report)

    p = sub.add_parser("dynamics", help="train a small dual encoder from scratch and log gap dynamics")
    p.add_argument("--manifest", type=Path, required=True, help="resources/datasets/{ds}/manifest.parquet")
    p.add_argument("--out-dir", type=Path, required=True, help="writes log.csv, arrays.npz, summary.json")
    p.add_argument("--params", help="JSON object (or a file holding one) overriding the defaults")
    p.add_argument("--dataset", help="label (default: the manifest's parent directory name)")
    p.set_defaults(func=_dynamics)
