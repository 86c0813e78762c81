"""``modgap embed …``: embedding extraction (and, when installed, encoder training)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser("embed", help="embedding extraction with an open_clip encoder")
    embed_subparsers = embed.add_subparsers(dest="embed_command", required=True, metavar="SUBCOMMAND")

    extract = embed_subparsers.add_parser(
        "extract",
        help="embed one manifest split into {image,text}.npy + ids + meta.json",
        description="Embed one split. Resumable: rerun after a kill to continue from finished shards. "
        "meta.json is written last and marks a complete output directory.",
    )
    extract.add_argument("--manifest", required=True, help="prepared manifest.parquet")
    extract.add_argument("--split", required=True, help="stats | diag | train | test")
    extract.add_argument("--model", required=True, help="open_clip model name (built-in or registered)")
    extract.add_argument("--pretrained", default=None, help="open_clip pretrained tag or local checkpoint path")
    extract.add_argument("--out-dir", required=True, help="output directory for this split")
    extract.add_argument("--batch-size", type=int, default=64)
    extract.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    extract.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    extract.add_argument("--shard-rows", type=int, default=1024, help="rows per resumable shard")
    extract.add_argument("--num-workers", type=int, default=0, help="image decoding worker processes")
    extract.add_argument("--root", default=None, help="base for relative image paths (default: cwd)")
    extract.add_argument("--no-progress", action="store_true", help="disable progress bars")
    extract.set_defaults(func=_extract)

    try:
        from modgap.embed.encoder_commands import register_encoder
    except ImportError as exc:  # encoder training is optional; say why it is absent
        log.debug("embed encoder-train unavailable: %s", exc)
    else:
        register_encoder(embed_subparsers)


def _extract(args: argparse.Namespace) -> int:
    from modgap.embed.extract import EncoderSpec, extract_split

    spec = EncoderSpec(args.model, args.pretrained, args.device, args.precision, args.num_workers)
    meta = extract_split(
        args.manifest,
        args.split,
        spec,
        args.out_dir,
        batch_size=args.batch_size,
        shard_rows=args.shard_rows,
        root=args.root,
        progress=not args.no_progress,
    )
    log.info(
        "embedded split %s: %d images, %d texts, dim %d -> %s",
        args.split,
        meta["counts"]["image"],
        meta["counts"]["text"],
        meta["embed_dim"],
        args.out_dir,
    )
    return 0
