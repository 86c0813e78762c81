"""``modgap gap {stats,report,dynamics}``: the gap-theory stage's command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from modgap.commandline import add_command
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
    gap = add_command(
        subparsers,
        "gap",
        help="modality-gap statistics, diagnostics, dynamics and figures",
        description="The gap-theory stage: marginal and paired modality-gap statistics of each encoder x dataset, "
        "the gap dynamics of a dual encoder trained from scratch, and their figures, tables and metrics.",
    )
    sub = gap.add_subparsers(
        dest="gap_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    p = add_command(
        sub,
        "stats",
        help="marginal + paired gap statistics of one encoder x dataset",
        description="Marginal statistics, the [AA] frame and phantom drift from the unpaired stats split; residual "
        "diagnostics, the [RA] fixed frame and the diagnostic transforms from the held-out paired diag split. "
        "Writes stats.json (with the parameters used) and spectra.npz to --out-dir atomically.",
    )
    p.add_argument("--stats-dir", type=Path, required=True, help="unpaired statistics split (image.npy, text.npy)")
    p.add_argument("--diag-dir", type=Path, required=True, help="held-out paired diagnostic split")
    p.add_argument("--out-dir", type=Path, required=True, help="writes stats.json and spectra.npz here")
    p.add_argument(
        "--params",
        help="JSON object (or a file holding one) overriding modgap.gap.stage.DEFAULT_PARAMS; unknown keys fail",
    )
    p.add_argument("--encoder", help="encoder label in stats.json (default: the out-dir's parent name)")
    p.add_argument("--dataset", help="dataset label in stats.json (default: the out-dir's name)")
    p.set_defaults(func=_stats)

    p = add_command(
        sub,
        "report",
        help="figures, tables and results/metrics/gap.json",
        description="Read every run's stats.json + spectra.npz (and each dynamics folder's outputs) and write the "
        "AnisoAlign Figs. 1-3 per run, the ReAlign Fig. 1 analogue per dynamics run, the gap_stats and "
        "gap_transforms tables (.md, .csv, .tex) and the gap metrics JSON.",
    )
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="results/gap/{enc}/{ds} directories")
    p.add_argument("--dynamics", type=Path, nargs="*", help="results/gap/dynamics/{ds} directories (none: no dynamics)")
    p.add_argument("--figures-dir", type=Path, default=Path("results/figures"), help="folder of the PNG + PDF figures")
    p.add_argument(
        "--tables-dir", type=Path, default=Path("results/tables"), help="folder of the gap_stats/gap_transforms tables"
    )
    p.add_argument("--metrics", type=Path, default=Path("results/metrics/gap.json"), help="metrics JSON to write")
    p.set_defaults(func=_report)

    p = add_command(
        sub,
        "dynamics",
        help="train a small dual encoder from scratch and log gap dynamics",
        description="Train a tiny open_clip dual encoder (small ViT + small text Transformer) from scratch with "
        "symmetric InfoNCE on the manifest's train split; every log_every steps measure the fixed-frame gap "
        "statistics on a held-out probe set (stats + diag + test splits). Writes log.csv, arrays.npz, "
        "frame.npz and summary.json to --out-dir.",
    )
    p.add_argument("--manifest", type=Path, required=True, help="resources/datasets/{ds}/manifest.parquet")
    p.add_argument(
        "--out-dir", type=Path, required=True, help="writes log.csv, arrays.npz, frame.npz and summary.json here"
    )
    p.add_argument(
        "--params",
        help="JSON object (or a file holding one) overriding modgap.gap.dynamics.DEFAULT_PARAMS; unknown keys fail",
    )
    p.add_argument("--dataset", help="dataset label in summary.json (default: the manifest's parent directory name)")
    p.set_defaults(func=_dynamics)
