"""``modgap data paper-data``: fetch, verify and read one paper-tier LLaVA-format source, then print what
it holds. A researcher runs it before a GPU run, so that a missing image or a wrong checksum shows up in
minutes rather than hours into Stage 2. Not called by any rule."""

from __future__ import annotations

import argparse
import json
from typing import Any

from modgap.commandline import add_command


def register_paper_data(data_subparsers: Any) -> None:
    cmd = add_command(
        data_subparsers,
        "paper-data",
        help="fetch, verify and read a paper-tier LLaVA-format source (Bunny, InternVL SFT, Unicorn)",
        description="Download the source's named files from its Hub dataset at the pinned commit (or take them "
        "from the HF cache), check every sha256, read every record (resolving images under the image roots) "
        "and print a JSON summary. Any malformed record, duplicate id or missing image fails, named.",
    )
    cmd.add_argument(
        "--source",
        required=True,
        metavar="JSON_OR_FILE",
        help="the source config as a JSON object or a .json file: format, hub {repo_id, revision, files}, image_roots",
    )
    cmd.add_argument("--base", default=".", help="folder the image roots are relative to")
    cmd.add_argument("--cache-dir", default=None, help="HF cache folder (default: the HF_HOME cache)")
    cmd.add_argument("--offline", action="store_true", help="never contact the Hub: use the HF cache only")
    cmd.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from modgap.config import parse_json_params
    from modgap.data.paper_data import load_source, parse_source, summarize

    source = parse_source(parse_json_params(args.source, "--source"), "--source", base=args.base)
    records = load_source(source, cache_dir=args.cache_dir, local_files_only=args.offline)
    print(json.dumps(summarize(source, records), sort_keys=True))
    return 0
