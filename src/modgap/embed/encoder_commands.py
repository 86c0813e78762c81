"""``encoder-train``: train the embedded tier's LiT encoder and score it on the diagnostic split.

Usage (from the project root)::

    modgap embed encoder-train --manifest resources/datasets/{ds}/manifest.parquet \\
        --out-dir results/encoders/{enc} --params '{"epochs": 40}' \\
        --metrics-out results/metrics/encoder.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from modgap.commandline import add_command
from modgap.config import parse_json_params
from modgap.io import sha256_file, write_json_atomic

log = logging.getLogger(__name__)

NOTE = (
    "Embedded-tier encoder: EfficientNet-Lite0 (ImageNet) + all-MiniLM-L6-v2 towers, locked, with projection "
    "heads trained LiT-style on {n_train} pairs; a real two-tower contrastive model, but not a web-scale CLIP."
)


def register_encoder(subparsers: Any) -> None:
    """Add the ``encoder-train`` subcommand to ``subparsers``."""
    parser = add_command(
        subparsers,
        "encoder-train",
        help="train the LiT projection heads of the embedded encoder and score retrieval on a split",
        description="Train the embedded tier's LiT encoder (EfficientNet-Lite0 + all-MiniLM-L6-v2 towers, "
        "locked; projection heads trained contrastively on the manifest's train split), save it as an "
        "open_clip checkpoint in --out-dir, then reload that checkpoint and write its retrieval metrics on "
        "--eval-split to --metrics-out.",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="prepared dataset manifest.parquet")
    parser.add_argument(
        "--out-dir",
        type=Path,
        required=True,
        help="writes open_clip.pt and train.json here, e.g. results/encoders/{enc}",
    )
    parser.add_argument(
        "--params", default="{}", help="JSON object overriding hyper-parameters (modgap.embed.lit.DEFAULT_PARAMS)"
    )
    parser.add_argument("--metrics-out", type=Path, required=True, help="retrieval metrics JSON to write")
    parser.add_argument("--root", type=Path, default=Path("."), help="directory image paths are relative to")
    parser.add_argument("--eval-split", default="diag", help="manifest split scored after training")
    parser.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="optional .npz caching the locked towers' train features by input, so retraining with other head "
        "hyper-parameters skips them",
    )
    parser.set_defaults(func=run_encoder_train)


def parse_params(text: str) -> dict[str, Any]:
    from modgap.embed import lit  # torch: imported by the command, not by every `modgap` start-up

    return lit.resolve_params(parse_json_params(text))


def evaluate_checkpoint(
    checkpoint: str | Path, manifest: str | Path, split: str, root: str | Path = ".", batch_size: int = 64
) -> dict[str, Any]:
    """Embed ``split`` with the saved checkpoint (loaded the way every consumer loads it) and score retrieval."""
    from modgap.embed import lit, models
    from modgap.embed.retrieval import retrieval_metrics

    started = time.perf_counter()
    rows = lit.load_split(manifest, split, root)
    model, preprocess, tokenizer = models.load_trained_model(checkpoint)
    image = lit.encode_images(model, preprocess, list(rows["image_path"]), batch_size, desc=f"{split} images")
    text = lit.encode_texts(model, tokenizer, list(rows["caption"]))
    metrics: dict[str, Any] = retrieval_metrics(image, text, ks=(1, 5))
    metrics["split"] = split
    metrics["eval_seconds"] = round(time.perf_counter() - started, 3)
    return metrics


def run_encoder_train(args: argparse.Namespace) -> int:
    from modgap.embed import lit, models

    started = time.perf_counter()
    params = parse_params(args.params)
    record = lit.train_lit(args.manifest, args.out_dir, params, root=args.root, feature_cache=args.feature_cache)
    checkpoint = Path(record["checkpoint"])
    metrics = evaluate_checkpoint(checkpoint, args.manifest, args.eval_split, args.root, params["feature_batch_size"])
    metrics.update(
        {
            "encoder": models.MODEL_NAME,
            "checkpoint_sha256": sha256_file(checkpoint),
            "n_train": record["n_train"],
            "loss_final": record["loss_final"],
            "train_seconds": record["seconds"]["wall"],
            "total_seconds": round(time.perf_counter() - started, 3),
            "note": NOTE.format(n_train=record["n_train"]),
        }
    )
    write_json_atomic(args.metrics_out, metrics)
    log.info(
        "%s on %s (n=%d): i2t R@1 %.3f, t2i R@1 %.3f (chance %.3f), centroid gap %.3f",
        models.MODEL_NAME,
        args.eval_split,
        metrics["n"],
        metrics["i2t_R@1"],
        metrics["t2i_R@1"],
        metrics["chance_R@1"],
        metrics["centroid_gap"],
    )
    return 0
