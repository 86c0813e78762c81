"""``modgap align …``: run a method, build the report, run the studies, list methods."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from modgap.config import parse_json_params
from modgap.errors import ConfigError
from modgap.io import write_json_atomic, write_text_atomic


def cmd_run(args: argparse.Namespace) -> int:
    from modgap.align.run import run_method

    run_method(
        args.method,
        parse_json_params(args.params),
        Path(args.stats_dir),
        Path(args.splits_root),
        args.splits,
        Path(args.diag_dir) if args.diag_dir else None,
        Path(args.out_dir),
        seed=args.seed,
        n_pairs=args.pairs,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from modgap.align.report import build_report

    build_report(
        Path(args.inputs),
        Path(args.tables_dir),
        Path(args.figures_dir),
        Path(args.metrics),
        Path(args.studies_dir) if args.studies_dir else Path(args.inputs) / "_studies",
    )
    return 0


def _load_split(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    from modgap.align.source import unit_rows

    return unit_rows(np.load(directory / "image.npy")), unit_rows(np.load(directory / "text.npy"))


def cmd_study(args: argparse.Namespace) -> int:
    from modgap.align import studies

    if args.study in ("study-n", "study-aniso") and not args.diag_dir:
        raise ConfigError(f"align {args.study}: --diag-dir is required")
    sx, sy = _load_split(Path(args.stats_dir))
    out: dict[str, Any] = {"study": args.study, "stats_dir": args.stats_dir}
    if args.study == "study-n":
        dx, dy = _load_split(Path(args.diag_dir))
        out["rows"] = studies.sample_size(
            sx, sy, dx, dy, args.sizes or [100, 500, 1000, 5000, 10_000, 50_000, 100_000, 500_000], seeds=args.seeds
        )
    elif args.study == "study-precision":
        n = args.n or 500_000
        rng = np.random.default_rng(0)
        out.update(N=n, **studies.running_mean_errors(sy[rng.choice(sy.shape[0], n, replace=n > sy.shape[0])]))
        out["note"] = "rows resampled from the stats texts; exact reference = math.fsum per coordinate"
    elif args.study == "study-cost":
        out["rows"] = studies.cost(sx, sy, args.sizes or [1000, 10_000, 100_000])
    elif args.study == "study-aniso":
        dx, dy = _load_split(Path(args.diag_dir))
        base = parse_json_params(args.params)
        out["rows"] = studies.aniso_sensitivity(
            sx, sy, dx, dy, base, args.ranks or [8, 16, 32, 64], [(0.1, 0.1), (0.25, 0.2), (0.5, 0.4)]
        )
        out["base_params"] = base
    write_json_atomic(Path(args.out), out)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from modgap.align.registry import params_table

    if args.out:
        write_text_atomic(Path(args.out), params_table())
    else:
        print(params_table(), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("align", help="alignment methods (ReAlign, AnisoAlign, baselines)")
    sub = parser.add_subparsers(dest="align_command", required=True, metavar="SUBCOMMAND")

    run = sub.add_parser("run", help="fit on the unpaired stats split, write state, substitutes, diagnostics")
    run.add_argument("--method", required=True, help="registry name (see `modgap align methods`)")
    run.add_argument("--params", default="{}", help="JSON object of hyper-parameters")
    run.add_argument("--stats-dir", required=True, help="…/embeddings/{enc}/{ds}/stats (unpaired halves)")
    run.add_argument("--splits-root", required=True, help="…/embeddings/{enc}/{ds}")
    run.add_argument("--splits", nargs="*", default=["train", "test", "diag"])
    run.add_argument("--diag-dir", help="held-out paired split for diagnostics (never used to fit)")
    run.add_argument("--out-dir", required=True, help="results/align/{enc}/{ds}/{m}")
    run.add_argument("--seed", type=int, default=0, help="seed of metric sampling (pairs, permutations)")
    run.add_argument("--pairs", type=int, default=200_000, help="random pairs for Ψ and the JS KDEs")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="tables, figures and results/metrics/align.json")
    rep.add_argument("--inputs", required=True, help="results/align/{enc}/{ds} (one folder per method)")
    rep.add_argument("--tables-dir", default="results/tables")
    rep.add_argument("--figures-dir", default="results/figures")
    rep.add_argument("--metrics", default="results/metrics/align.json")
    rep.add_argument("--studies-dir", help="study JSONs (default: INPUTS/_studies)")
    rep.set_defaults(func=cmd_report)

    for name, text in (
        ("study-n", "held-out gap vs number of unpaired samples N (5 seeds)"),
        ("study-precision", "float32 vs float64 mean accumulation error"),
        ("study-cost", "time and peak memory vs N"),
        ("study-aniso", "AnisoAlign sensitivity to rank r and bounds α"),
    ):
        st = sub.add_parser(name, help=text)
        st.add_argument("--stats-dir", required=True)
        st.add_argument("--diag-dir")
        st.add_argument("--out", required=True, help="…/_studies/{sample_size,precision,cost,aniso}.json")
        st.add_argument("--sizes", type=int, nargs="*")
        st.add_argument("--seeds", type=int, default=5)
        st.add_argument("--n", type=int)
        st.add_argument("--ranks", type=int, nargs="*")
        st.add_argument("--params", default="{}", help="AnisoAlign base params (study-aniso)")
        st.set_defaults(func=cmd_study, study=name)

    met = sub.add_parser("methods", help="print the registry and every hyper-parameter with its default")
    met.add_argument("--out", help="write the markdown table here instead of stdout")
    met.set_defaults(func=cmd_methods)
