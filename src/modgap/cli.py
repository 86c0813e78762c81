"""The ``modgap`` command line: one subcommand per pipeline stage.

Each stage package exposes ``commands.register(subparsers)``; this module only assembles them and
turns :class:`~modgap.errors.ModgapError` into a one-line message and exit status 2. Every parser is
made with :func:`modgap.commandline.add_command`, so ``--help`` shows each option's default.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from modgap import __version__
from modgap.commandline import HelpFormatter
from modgap.errors import ModgapError

# Stage packages whose ``commands`` module registers subcommands; a package without one is skipped.
STAGE_PACKAGES = ("data", "embed", "gap", "align", "mllm", "evaluation", "report", "workflow")
# Commands that run torch: they ask torch for deterministic algorithms (modgap.determinism).
TORCH_COMMANDS = {"embed", "gap", "align", "mllm", "eval"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modgap",
        description="Reproduce the modality-gap papers (ReAlign, AnisoAlign, ReVision): one subcommand per "
        "pipeline stage. The Snakemake workflow (workflow/rules/*.smk) calls these commands; "
        "`modgap COMMAND --help` describes each one.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"modgap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--no-progress",
        dest="global_no_progress",
        action="store_true",
        help="no tqdm progress bars in any command (give it before COMMAND); also sets TQDM_DISABLE=1 for the "
        "processes the command starts",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="pipeline stage or helper (see the list below)"
    )
    for stage in STAGE_PACKAGES:
        try:
            module = importlib.import_module(f"modgap.{stage}.commands")
        except ModuleNotFoundError as exc:
            if exc.name != f"modgap.{stage}.commands":
                raise
            continue
        module.register(subparsers)
    return parser


@contextlib.contextmanager
def progress_disabled() -> Iterator[None]:
    """No tqdm progress bar while the block runs.

    ``TQDM_DISABLE=1`` reaches child processes (accelerate launch, lmms-eval) and a tqdm imported
    later, but tqdm reads it once, at import, and a call's explicit ``disable=False`` overrides it; so
    bars of this process are also forced off by patching ``tqdm.std.tqdm.__init__`` (every tqdm
    class, ``tqdm.auto`` included, derives from it). Both are undone on exit.
    """
    import tqdm.std

    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    cls = tqdm.std.tqdm
    saved = cls.__dict__["__init__"]
    init = cls.__init__

    def disabled_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    cls.__init__ = disabled_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.__init__ = saved  # type: ignore[method-assign]
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


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
    progress = progress_disabled() if args.global_no_progress else contextlib.nullcontext()
    try:
        with progress:
            return int(args.func(args) or 0)
    except ModgapError as exc:
        print(f"modgap {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
