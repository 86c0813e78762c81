"""``build-embedded``: regenerate the committed embedded dataset from unpacked source packages.

Registered by the data stage's CLI (``modgap data build-embedded``). The sources are unpacked by
``scripts/build_embedded_dataset.sh``; nothing here downloads anything.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from modgap.commandline import add_command
from modgap.errors import ModgapError

log = logging.getLogger(__name__)


def register_build(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = add_command(
        subparsers,
        "build-embedded",
        help="build data/embedded (JPEGs + manifest) from unpacked tuxpaint/openclipart/emoji packages",
        description="Regenerate the committed embedded dataset: collect candidate images and captions from "
        "every source root given, drop unusable captions, render the images to JPEG and write "
        "manifest.csv and the licence files into --out. The sources are unpacked by "
        "scripts/build_embedded_dataset.sh; nothing here downloads anything.",
    )
    roots = parser.add_argument_group(
        "source roots (each a folder the package was unpacked into; a source left out is skipped, "
        "at least one is needed)"
    )
    roots.add_argument("--tuxpaint-root", type=Path, help="tuxpaint-stamps-default: `dpkg-deb -x` + `-e`")
    roots.add_argument("--openclipart-root", type=Path, help="openclipart-svg: `dpkg-deb -x` + `-e`")
    roots.add_argument("--emoji-root", type=Path, help="the `package/` folder of npm emoji-datasource-google")
    roots.add_argument("--openmoji-root", type=Path, help="the `package/` folder of npm openmoji")
    parser.add_argument(
        "--wordlist",
        type=Path,
        help="English word list (Debian wamerican's american-english) for the clip-art title filter; "
        "without it titles are not checked against English words",
    )
    parser.add_argument(
        "--common-licenses",
        type=Path,
        default=Path("/usr/share/common-licenses"),
        help="folder with full licence texts (GPL-2, Apache-2.0) copied into LICENSES/ (skipped if it is not a folder)",
    )
    parser.add_argument("--out", type=Path, default=Path("data/embedded"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of caption-template choice and OpenMoji sampling")
    parser.set_defaults(func=run_build)
    return parser


def run_build(args: argparse.Namespace) -> int:
    from modgap.data import embedded_builder as eb  # pandas + PIL: only this command needs them

    items = eb.discover_all(
        tuxpaint_root=args.tuxpaint_root,
        openclipart_root=args.openclipart_root,
        emoji_root=args.emoji_root,
        openmoji_root=args.openmoji_root,
        seed=args.seed,
    )
    kept, rejected = eb.select_captions(items, args.seed, eb.load_vocabulary(args.wordlist))
    log.info("%d candidates, %d kept; rejected: %s", len(items), len(kept), dict(rejected.most_common()))
    common = args.common_licenses if args.common_licenses.is_dir() else None
    manifest = eb.build_dataset(
        kept, args.out, common_licenses_dir=common, progress=lambda it: tqdm(it, desc="images", unit="img")
    )
    counts = Counter(manifest["source_package"])
    log.info("wrote %s: %d pairs %s", args.out / "manifest.csv", len(manifest), dict(sorted(counts.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m modgap.data.build_commands build-embedded ...``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m modgap.data.build_commands")
    register_build(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ModgapError as exc:
        print(f"build-embedded: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
