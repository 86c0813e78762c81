"""`modgap workflow …` and `modgap config …`: helpers around the Snakemake DAG and its DVC ledger."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    workflow = subparsers.add_parser("workflow", help="restore results from DVC, check the DAG")
    workflow_sub = workflow.add_subparsers(dest="workflow_command", required=True, metavar="ACTION")
    restore = workflow_sub.add_parser(
        "restore", help="dvc checkout (or pull), then snakemake --touch; fails unless snakemake -n is empty"
    )
    restore.add_argument("--pull", action="store_true", help="dvc pull from the remote instead of checkout")
    restore.add_argument("--remote", default=None, help="DVC remote name (default: the configured one)")
    restore.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                         help="extra Snakemake arguments after --, e.g. -- --configfile config/paper/x.yaml")
    restore.set_defaults(func=_restore)
    verify = workflow_sub.add_parser(
        "verify",
        help="compare this workspace's metrics and tables with a committed revision (exit 1 if any differs)",
        description="Key by key, with per-family tolerances: geometry 1e-9 relative; numbers downstream of "
        "MLLM training by the bootstrap interval recorded beside them. Prints identical / within tolerance / "
        "differs (key, old, new) per file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    verify.add_argument("--rev", default="HEAD", help="git revision to compare with")
    verify.add_argument("--root", default=".", help="repository root (the workspace)")
    verify.set_defaults(func=_verify)

    config = subparsers.add_parser("config", help="validate a configuration file")
    config.add_argument("path", nargs="?", default="config/config.yaml")
    config.add_argument("--schema", default="workflow/schemas/config.schema.yaml")
    config.add_argument(
        "--overlay", action="append", default=[], metavar="YAML",
        help="merged over PATH as `snakemake --configfile PATH YAML` merges it (repeatable), e.g. config/paper/x.yaml",
    )
    config.set_defaults(func=_check_config)


def _restore(args: argparse.Namespace) -> int:
    from modgap.workflow.restore import restore

    extra = [a for a in args.snakemake_args if a != "--"]
    restore(pull=args.pull, remote=args.remote, snakemake_args=extra)
    print("restored; snakemake -n has nothing to do")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modgap.workflow.verify import summarise, verify

    results = verify(Path(args.root), args.rev)
    for line in summarise(results):
        print(line)
    return 1 if any(r.failed for r in results) else 0


def _check_config(args: argparse.Namespace) -> int:
    from modgap.config import load_config

    load_config(args.path, args.schema, overlays=args.overlay)
    print(f"{' + '.join([args.path, *args.overlay])}: valid")
    return 0
