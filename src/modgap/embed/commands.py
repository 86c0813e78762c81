"""``modgap embed …``: embedding extraction (and, when installed, encoder training)."""

from __future__ import annotations

import argparse
import logging

from modgap.commandline import add_command

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    embed = add_command(
        subparsers,
        "embed",
        help="embedding extraction with an open_clip encoder",
        description="The embedding stage: L2-normalised image and text embeddings of one manifest split with an "
        "open_clip encoder (and, for the embedded tier, training that encoder's projection heads).",
    )
    embed_subparsers = embed.add_subparsers(
        dest="embed_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    extract = add_command(
        embed_subparsers,
        "extract",
        help="embed one manifest split into {image,text}.npy + ids + meta.json",
        description="Embed one split. Resumable: rerun after a kill to continue from finished shards. "
        "meta.json is written last and marks a complete output directory.",
    )
    extract.add_argument("--manifest", required=True, help="prepared manifest.parquet")
    extract.add_argument("--split", required=True, help="manifest split to embed: stats | diag | train | test")
    extract.add_argument(
        "--backend", default="open_clip", help="registered encoder backend (modgap.embed.backends) that loads --model"
    )
    extract.add_argument(
        "--model", required=True, help="model name for the backend (open_clip: built-in or registered)"
    )
    extract.add_argument(
        "--pretrained", default=None, help="weights: open_clip pretrained tag or local checkpoint path"
    )
    extract.add_argument(
        "--backend-options",
        default=None,
        help="backend-specific settings as a JSON object (llm2clip: revision, text_model, text_revision, ...)",
    )
    extract.add_argument("--out-dir", required=True, help="output directory for this split")
    extract.add_argument("--batch-size", type=int, default=64, help="images or captions per encoder forward pass")
    extract.add_argument("--device", default="auto", help="auto (cuda if available, else cpu) | cpu | cuda | cuda:N")
    extract.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="compute dtype: bf16/fp16 run under torch.autocast (weights stay fp32; fp16 needs CUDA)",
    )
    extract.add_argument(
        "--shard-rows", type=int, default=1024, help="rows per resumable shard (a rerun keeps finished shards)"
    )
    extract.add_argument("--num-workers", type=int, default=0, help="image decoding worker processes")
    extract.add_argument("--root", default=None, help="base for relative image paths (default: cwd)")
    extract.add_argument("--no-progress", action="store_true", help="no image/text encoding progress bars")
    extract.set_defaults(func=_extract)

    try:
        from modgap.embed.encoder_commands import register_encoder
    except ImportError as exc:  # encoder training is optional; say why it is absent
        log.debug("embed encoder-train unavailable: %s", exc)
    else:
        register_encoder(embed_subparsers)


def _extract(args: argparse.Namespace) -> int:
    from modgap.embed.backends import parse_backend_options
    from modgap.embed.extract import EncoderSpec, extract_split

    spec = EncoderSpec(
        args.model,
        args.pretrained,
        args.device,
        args.precision,
        args.num_workers,
        args.backend,
        parse_backend_options(args.backend_options),
    )
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
