"""The ``modgap`` command line: one subcommand per pipeline stage.

Each stage package exposes ``commands.register(subparsers)``; this module only assembles them and
turns :class:`~modgap.errors.ModgapError` into a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from modgap import __version__
from modgap.errors import ModgapError

# Stage packages whose ``commands`` module registers subcommands; a package without one is skipped.
STAGE_PACKAGES = ("data", "embed", "gap", "align", "mllm", "evaluation", "report", "workflow")
# Commands that run torch: they ask torch for deterministic algorithms (modgap.determinism).
TORCH_COMMANDS = {"embed", "gap", "align", "mllm", "eval"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modgap", description="Reproduce the modality-gap papers: one subcommand per pipeline stage."
    )
    parser.add_argument("--version", action="version", version=f"modgap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGE_PACKAGES:
        try:
            module = importlib.import_module(f"modgap.{stage}.commands")
        except ModuleNotFoundError as exc:
            if exc.name != f"modgap.{stage}.commands":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command in TORCH_COMMANDS:
        from modgap import determinism

        determinism.enable()
    try:
        return int(args.func(args) or 0)
    except ModgapError as exc:
        print(f"modgap {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
