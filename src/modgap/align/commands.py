"""``modgap align …``: run a method, build the report, run the studies, list methods."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from modgap.commandline import add_command
from modgap.config import parse_json_params
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


# Defaults of the studies when the command line gives none (an empty --sizes/--ranks included).
SAMPLE_SIZES = [100, 500, 1000, 5000, 10_000, 50_000, 100_000, 500_000]
PRECISION_N = 500_000
COST_SIZES = [1000, 10_000, 100_000]
ANISO_RANKS = [8, 16, 32, 64]
ANISO_BOUNDS = [(0.1, 0.1), (0.25, 0.2), (0.5, 0.4)]


def _write_study(args: argparse.Namespace, result: dict[str, Any]) -> int:
    write_json_atomic(Path(args.out), {"study": args.study, "stats_dir": args.stats_dir, **result})
    return 0


def cmd_study_n(args: argparse.Namespace) -> int:
    from modgap.align import studies

    sx, sy = _load_split(Path(args.stats_dir))
    dx, dy = _load_split(Path(args.diag_dir))
    rows = studies.sample_size(sx, sy, dx, dy, args.sizes or SAMPLE_SIZES, seeds=args.seeds)
    return _write_study(args, {"rows": rows})


def cmd_study_precision(args: argparse.Namespace) -> int:
    from modgap.align import studies

    _, sy = _load_split(Path(args.stats_dir))
    n = args.n or PRECISION_N
    rng = np.random.default_rng(0)
    errors = studies.running_mean_errors(sy[rng.choice(sy.shape[0], n, replace=n > sy.shape[0])])
    note = "rows resampled from the stats texts; exact reference = math.fsum per coordinate"
    return _write_study(args, {"N": n, **errors, "note": note})


def cmd_study_cost(args: argparse.Namespace) -> int:
    from modgap.align import studies

    sx, sy = _load_split(Path(args.stats_dir))
    return _write_study(args, {"rows": studies.cost(sx, sy, args.sizes or COST_SIZES)})


def cmd_study_aniso(args: argparse.Namespace) -> int:
    from modgap.align import studies

    sx, sy = _load_split(Path(args.stats_dir))
    dx, dy = _load_split(Path(args.diag_dir))
    base = parse_json_params(args.params)
    rows = studies.aniso_sensitivity(sx, sy, dx, dy, base, args.ranks or ANISO_RANKS, ANISO_BOUNDS)
    return _write_study(args, {"rows": rows, "base_params": base})


def cmd_methods(args: argparse.Namespace) -> int:
    from modgap.align.registry import params_table

    if args.out:
        write_text_atomic(Path(args.out), params_table())
    else:
        print(params_table(), end="")
    return 0


def _study_parser(sub: Any, name: str, help: str, description: str, func: Any) -> argparse.ArgumentParser:
    """A study's parser with the options every study takes: the unpaired stats split and the output file."""
    st = add_command(sub, name, help=help, description=description)
    st.add_argument(
        "--stats-dir", required=True, help="unpaired stats split (image.npy, text.npy), …/embeddings/{enc}/{ds}/stats"
    )
    st.add_argument(
        "--out", required=True, help="study JSON to write, e.g. …/_studies/{sample_size,precision,cost,aniso}.json"
    )
    st.set_defaults(func=func, study=name)
    return st


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "align",
        help="alignment methods (ReAlign, AnisoAlign, baselines)",
        description="The alignment stage: fit a method on the unpaired stats split only, turn texts into image-like "
        "substitutes, diagnose it on the held-out paired diag split; the robustness/cost studies; the report.",
    )
    sub = parser.add_subparsers(
        dest="align_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    run = add_command(
        sub,
        "run",
        help="fit on the unpaired stats split, write state, substitutes, diagnostics",
        description="Fit one registry method on the unpaired stats split, save its state, write the substitutes "
        "(transformed text embeddings) of each --splits split, and the in-sample and held-out diagnostics "
        "(--diag-dir, never used to fit) to diagnostics.json. Output goes to a temporary folder that "
        "replaces --out-dir only on success.",
    )
    run.add_argument("--method", required=True, help="registry name (see `modgap align methods`)")
    run.add_argument(
        "--params", default="{}", help="JSON object (or a file holding one) of hyper-parameters overriding the method's"
    )
    run.add_argument("--stats-dir", required=True, help="…/embeddings/{enc}/{ds}/stats (unpaired halves)")
    run.add_argument("--splits-root", required=True, help="…/embeddings/{enc}/{ds}: parent of the --splits folders")
    run.add_argument(
        "--splits",
        nargs="*",
        default=["train", "test", "diag"],
        help="splits under --splits-root whose text.npy is transformed into substitutes/{split}.npy",
    )
    run.add_argument(
        "--diag-dir", help="held-out paired split for diagnostics (never used to fit); without it no held-out metrics"
    )
    run.add_argument("--out-dir", required=True, help="results/align/{enc}/{ds}/{m}")
    run.add_argument("--seed", type=int, default=0, help="seed of metric sampling (pairs, permutations)")
    run.add_argument("--pairs", type=int, default=200_000, help="random pairs for Ψ and the JS KDEs")
    run.set_defaults(func=cmd_run)

    rep = add_command(
        sub,
        "report",
        help="tables, figures and results/metrics/align.json",
        description="Collect every method's diagnostics.json under --inputs and the study JSONs, and write the "
        "align_metrics/align_gap/align_params tables, the figures and the metrics JSON (study timings and "
        "memory stay in the study files).",
    )
    rep.add_argument("--inputs", required=True, help="results/align/{enc}/{ds} (one folder per method)")
    rep.add_argument("--tables-dir", default="results/tables", help="folder of the markdown and CSV tables")
    rep.add_argument("--figures-dir", default="results/figures", help="folder of the figures")
    rep.add_argument("--metrics", default="results/metrics/align.json", help="metrics JSON to write")
    rep.add_argument("--studies-dir", help="study JSONs (default: INPUTS/_studies; a missing folder means no studies)")
    rep.set_defaults(func=cmd_report)

    st = _study_parser(
        sub,
        "study-n",
        "held-out gap vs number of unpaired samples N (--seeds seeds)",
        "ReAlign fitted on N rows drawn without replacement from the stats split (N capped by its size), for "
        "each N in --sizes and seeds 0..SEEDS-1; records the held-out centroid gap on --diag-dir.",
        cmd_study_n,
    )
    st.add_argument("--diag-dir", required=True, help="held-out paired split the gap is measured on")
    st.add_argument("--sizes", type=int, nargs="*", default=SAMPLE_SIZES, help="values of N")
    st.add_argument("--seeds", type=int, default=5, help="resampling seeds per N (0..SEEDS-1)")

    st = _study_parser(
        sub,
        "study-precision",
        "float32 vs float64 mean accumulation error",
        "Error of float32 and float64 running means of N unit text rows (resampled from the stats split, seed 0) "
        "against an exact math.fsum mean per coordinate.",
        cmd_study_precision,
    )
    st.add_argument(
        "--n",
        type=int,
        default=PRECISION_N,
        help="rows N averaged (resampled with replacement if N exceeds the stats texts)",
    )
    st.add_argument("--diag-dir", help="not used by this study; accepted because the workflow passes it to every study")

    st = _study_parser(
        sub,
        "study-cost",
        "time and peak memory vs N",
        "ReAlign fit + transform wall time and peak traced memory for N rows resampled from the stats split "
        "into memory-mapped .npy files, for each N in --sizes.",
        cmd_study_cost,
    )
    st.add_argument("--sizes", type=int, nargs="*", default=COST_SIZES, help="values of N")
    st.add_argument("--diag-dir", help="not used by this study; accepted because the workflow passes it to every study")

    st = _study_parser(
        sub,
        "study-aniso",
        "AnisoAlign sensitivity to rank r and bounds α",
        "AnisoAlign fitted on the stats split with each frame rank in --ranks and each (bound_theta, bound_rho) "
        f"in {ANISO_BOUNDS}, all starting from --params; records fit time and the held-out metrics on "
        "--diag-dir.",
        cmd_study_aniso,
    )
    st.add_argument("--diag-dir", required=True, help="held-out paired split the metrics are measured on")
    st.add_argument("--ranks", type=int, nargs="*", default=ANISO_RANKS, help="frame ranks r")
    st.add_argument(
        "--params", default="{}", help="JSON object (or a file holding one) of AnisoAlign base hyper-parameters"
    )

    met = add_command(
        sub,
        "methods",
        help="print the registry and every hyper-parameter with its default",
        description="Markdown tables: each method class's hyper-parameters with default and reason, then every "
        "registry name with its class, preset and description.",
    )
    met.add_argument("--out", help="write the markdown table here instead of stdout")
    met.set_defaults(func=cmd_methods)
