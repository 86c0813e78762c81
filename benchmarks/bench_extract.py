"""Throughput of the embedding backend: images/s and texts/s, printed as one JSON line.

Usage (from the project root)::

    python benchmarks/bench_extract.py                      # project model if available, else tiny model
    python benchmarks/bench_extract.py --model tiny --n 256
    python benchmarks/bench_extract.py --model ViT-B-32 --pretrained path/to/ckpt.pt --device cuda

Throughput does not depend on the weights, so the project model is measured with its untrained heads
when no trained checkpoint is given. Images come from ``data/embedded/manifest.csv`` when present,
otherwise synthetic 256x256 JPEGs are written to a temporary folder; decoding and preprocessing are
included in the image rate, as in a real extraction.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modgap.embed.encoder import OpenClipEncoder, load_encoder
from modgap.embed.tiny import register_tiny_model, save_tiny_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_MANIFEST = PROJECT_ROOT / "data" / "embedded" / "manifest.csv"


def _project_model() -> str | None:
    try:
        from modgap.embed.models import MODEL_NAME, register_project_models

        register_project_models()
    except Exception as exc:  # missing module or packages: fall back to the tiny model
        logging.warning("project model unavailable (%s); using the tiny model", exc)
        return None
    return MODEL_NAME


def _encoder(args: argparse.Namespace, workdir: Path) -> OpenClipEncoder:
    model = args.model
    if model == "auto":
        model = _project_model() or "tiny"
    if model == "tiny":
        name = register_tiny_model()
        ckpt = args.pretrained or str(save_tiny_checkpoint(workdir / "tiny.pt"))
        return load_encoder(name, ckpt, args.device, args.precision, args.num_workers)
    return load_encoder(model, args.pretrained, args.device, args.precision, args.num_workers)


def _inputs(n: int, workdir: Path) -> tuple[list[Path], list[str]]:
    if EMBEDDED_MANIFEST.is_file():
        import pandas as pd

        frame = pd.read_csv(EMBEDDED_MANIFEST).head(n)
        paths = [EMBEDDED_MANIFEST.parent / f for f in frame["file"]]
        captions = [str(c) for c in frame["caption"]]
        if len(paths) == n:
            return paths, captions
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = workdir / f"img{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    captions = [f"a photo of object number {i} on a plain background, seen from the side" for i in range(n)]
    return paths, captions


def _rate(fn, items: list, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    fn(items[:batch_size], batch_size, progress=False)  # warm-up (allocator, oneDNN kernel selection)
    start = time.perf_counter()
    fn(items, batch_size, progress=False)
    return len(items) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="auto", help="auto | tiny | any open_clip model name")
    parser.add_argument("--pretrained", default=None, help="open_clip tag or local checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n", type=int, default=256, help="number of images and of captions")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="modgap-bench-") as tmp:
        workdir = Path(tmp)
        encoder = _encoder(args, workdir)
        paths, captions = _inputs(args.n, workdir)
        images_per_s = _rate(encoder.encode_images, paths, args.batch_size)
        texts_per_s = _rate(encoder.encode_texts, captions, args.batch_size)
    result = {
        "benchmark": "embed.extract",
        "model": encoder.model_name,
        "pretrained": encoder.pretrained,
        "embed_dim": encoder.embed_dim,
        "device": str(encoder.device),
        "precision": encoder.precision,
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "n": args.n,
        "images_source": "data/embedded" if EMBEDDED_MANIFEST.is_file() else "synthetic 256x256 jpeg",
        "images_per_s": round(images_per_s, 2),
        "texts_per_s": round(texts_per_s, 2),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
