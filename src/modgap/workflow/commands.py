"""`modgap workflow …` and `modgap config …`: helpers around the Snakemake DAG and its DVC ledger."""

from __future__ import annotations

import argparse
from typing import Any

from modgap.commandline import add_command

DEFAULT_CONFIG = "config/config.yaml"
DEFAULT_SCHEMA = "workflow/schemas/config.schema.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    workflow = add_command(
        subparsers,
        "workflow",
        help="restore results from DVC, check the DAG",
        description="Helpers around the Snakemake workflow and the DVC ledger of its results.",
    )
    workflow_sub = workflow.add_subparsers(
        dest="workflow_command", required=True, metavar="ACTION", help="what to do (see the list below)"
    )
    restore = add_command(
        workflow_sub,
        "restore",
        help="dvc checkout (or pull), then snakemake --touch; fails unless snakemake -n is empty",
        description="Put the results recorded in dvc.lock back into the workspace (dvc checkout, or dvc pull "
        "with --pull), mark them up to date with `snakemake --touch`, then fail unless `snakemake -n` has "
        "nothing left to do.",
    )
    restore.add_argument("--pull", action="store_true", help="dvc pull from the remote instead of checkout")
    restore.add_argument(
        "--remote", default=None, help="DVC remote name, with --pull only (default: the configured one)"
    )
    restore.add_argument(
        "snakemake_args",
        nargs=argparse.REMAINDER,
        help="extra Snakemake arguments after --, e.g. -- --configfile config/paper/x.yaml",
    )
    restore.set_defaults(func=_restore)
    verify = add_command(
        workflow_sub,
        "verify",
        help="compare this workspace's metrics and tables with a committed revision (exit 1 if any differs)",
        description="Key by key, with per-family tolerances: geometry 1e-9 relative; numbers downstream of "
        "MLLM training by the bootstrap interval recorded beside them. Prints identical / within tolerance / "
        "differs (key, old, new) per file.",
    )
    verify.add_argument("--rev", default="HEAD", help="git revision to compare with")
    verify.add_argument("--root", default=".", help="repository root (the workspace)")
    verify.set_defaults(func=_verify)

    config = add_command(
        subparsers,
        "config",
        help="validate a configuration file (a complete config, or an overlay such as config/paper/x.yaml)",
        description="Validate a workflow configuration as the Snakefile does: the JSON schema, then the checks a "
        "schema cannot express (unknown encoders or datasets, stage parameters, files that must exist), each "
        "error naming its dotted key. A PATH that lacks any top-level key the schema requires is an overlay: "
        "it is merged over --base (mappings recursively, everything else replaced, as `snakemake "
        "--configfile PATH` merges it over config/config.yaml), then each --overlay in order.",
    )
    config.add_argument(
        "path", nargs="?", default=DEFAULT_CONFIG, help="configuration file: a complete config or an overlay"
    )
    config.add_argument("--schema", default=DEFAULT_SCHEMA, help="JSON schema (YAML) of the workflow configuration")
    config.add_argument(
        "--base",
        default=DEFAULT_CONFIG,
        metavar="YAML",
        help="complete config an overlay PATH is merged over (not used when PATH is complete)",
    )
    config.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="YAML",
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


def missing_required_keys(config: dict[str, Any], schema_path: str) -> list[str]:
    """The top-level keys the schema requires that ``config`` lacks: none for a complete config."""
    from modgap.config import read_yaml_mapping

    required = read_yaml_mapping(schema_path).get("required", [])
    return [key for key in required if key not in config]


def _check_config(args: argparse.Namespace) -> int:
    from modgap.config import merge_overlay, read_yaml_mapping, validate_config

    config = read_yaml_mapping(args.path)
    files = [args.path]
    missing = missing_required_keys(config, args.schema)
    if missing:
        # An overlay (config/paper/*.yaml): Snakemake reads it over the Snakefile's config/config.yaml.
        print(f"{args.path} lacks the top-level key(s) {', '.join(missing)}: an overlay, merged over {args.base}")
        config = merge_overlay(read_yaml_mapping(args.base), config)
        files.insert(0, args.base)
    for overlay in args.overlay:
        config = merge_overlay(config, read_yaml_mapping(overlay))
        files.append(overlay)
    validate_config(config, args.schema)
    print(f"{' + '.join(files)}: valid")
    return 0
