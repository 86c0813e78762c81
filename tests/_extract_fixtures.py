"""Shared fixtures for the extraction tests: tiny images, a manifest and a tiny open_clip model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from modgap.embed.encoder import OpenClipEncoder, load_encoder
from modgap.embed.tiny import register_tiny_model, save_tiny_checkpoint
from modgap.io import sha256_file

# 12 items: stats has 4 image-role and 3 text-role rows, diag 3, train 2.
SPLITS = [("stats", "image")] * 4 + [("stats", "text")] * 3 + [("diag", None)] * 3 + [("train", None)] * 2
MODES = ["RGB", "RGBA", "L", "P"]


@dataclass
class TinyEnv:
    root: Path
    manifest: Path
    checkpoint: Path
    model: str
    encoder: OpenClipEncoder
    frame: pd.DataFrame


def make_image(path: Path, index: int) -> None:
    mode = MODES[index % len(MODES)]
    colour = ((37 * index) % 256, (91 * index) % 256, (53 * index) % 256)
    img = Image.new("RGB", (20 + index, 24), colour)
    for x in range(0, img.width, 3):  # some structure so images differ beyond colour
        img.putpixel((x, x % img.height), (255 - colour[0], 0, 255))
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(128)
    elif mode == "P":
        img = img.convert("P")
    elif mode == "L":
        img = img.convert("L")
    img.save(path, format="PNG" if mode in ("RGBA", "P") else "JPEG")


def build_manifest(root: Path) -> pd.DataFrame:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    # Ids are deliberately listed out of order: outputs must be sorted by id.
    for index, (split, role) in reversed(list(enumerate(SPLITS))):
        rel = f"images/img{index:02d}.{'png' if MODES[index % 4] in ('RGBA', 'P') else 'jpg'}"
        make_image(root / rel, index)
        rows.append(
            {
                "id": f"item{index:02d}",
                "image_path": rel,
                "caption": f"a picture number {index} of a coloured square",
                "labels": [f"label{index % 3}"],
                "split": split,
                "stats_role": role,
                "source": "test",
                "license": "CC0",
                "sha256": sha256_file(root / rel),
            }
        )
    return pd.DataFrame(rows)


def write_manifest(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core box run ~10x faster without intra-op thread contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_tiny_env(root: Path) -> TinyEnv:
    """Images + manifest + tiny checkpoint under ``root``, and the encoder loaded from it."""
    frame = build_manifest(root)
    manifest = write_manifest(frame, root / "manifest.parquet")
    model = register_tiny_model()
    checkpoint = save_tiny_checkpoint(root / "tiny.pt", seed=0)
    encoder = load_encoder(model, pretrained=str(checkpoint), device="cpu")
    return TinyEnv(root, manifest, checkpoint, model, encoder, frame)
