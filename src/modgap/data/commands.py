"""``modgap data …`` subcommands: ``prepare``, ``paper-data`` (+ ``build-embedded`` when its module is present)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from modgap.commandline import add_command

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "data",
        help="fetch, verify and split datasets",
        description="The data stage: turn a dataset config into a manifest of image/caption rows with seeded, "
        "disjoint stats/diag/train/test splits (and rebuild the committed embedded dataset).",
    )
    data_subparsers = parser.add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    prep = add_command(
        data_subparsers,
        "prepare",
        help="fetch/verify a dataset, split it and write its manifest.parquet + summary.json",
        description="Fetch or verify the dataset described by --dataset-config, build one row per image, "
        "assign seeded stats/diag/train/test splits and write the manifest atomically.",
    )
    prep.add_argument(
        "--dataset-config",
        required=True,
        metavar="JSON_OR_FILE",
        help="dataset config as a JSON object string or a .json/.yaml file (schema: modgap/data/dataset_schema.yaml)",
    )
    prep.add_argument(
        "--out", required=True, metavar="PARQUET", help="output manifest, e.g. resources/datasets/{ds}/manifest.parquet"
    )
    prep.add_argument("--seed", type=int, default=None, help="overrides the config's seed (default 0)")
    prep.add_argument(
        "--summary", default=None, metavar="JSON", help="summary output (default: summary.json beside --out)"
    )
    prep.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars while downloading, verifying checksums and hashing images",
    )
    prep.add_argument(
        "--refetch",
        action="store_true",
        help="delete downloads that exist but fail their checksum and fetch them again (default: keep and fail)",
    )
    prep.set_defaults(func=_run_prepare)

    # Optional: the embedded-data builder lives in its own module, written separately.
    try:
        from modgap.data.build_commands import register_build
    except ImportError as exc:
        if getattr(exc, "name", None) != "modgap.data.build_commands":
            log.warning("modgap data build-embedded unavailable: %s", exc)
    else:
        register_build(data_subparsers)

    from modgap.data.paper_commands import register_paper_data

    register_paper_data(data_subparsers)


def _run_prepare(args: argparse.Namespace) -> int:
    from modgap.data.prepare import prepare_dataset  # heavy imports only when the command runs

    prepare_dataset(
        args.dataset_config,
        args.out,
        seed=args.seed,
        summary_path=args.summary,
        progress=not args.no_progress,
        refetch=args.refetch,
    )
    return 0
