"""Fake image-caption data for the encoder tests: coloured shapes rendered with PIL."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 210, 20)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {"white": (250, 250, 250), "black": (10, 10, 10)}


def _draw(shape: str, colour: tuple[int, int, int], background: tuple[int, int, int], size: int, jitter: int):
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    lo, hi = size // 5 + jitter, size - size // 5 - jitter
    if shape == "circle":
        draw.ellipse([lo, lo, hi, hi], fill=colour)
    elif shape == "square":
        draw.rectangle([lo, lo, hi, hi], fill=colour)
    else:
        draw.polygon([(size // 2, lo), (lo, hi), (hi, hi)], fill=colour)
    return img


def make_shapes_manifest(root: Path, n_train: int = 24, n_diag: int = 24, size: int = 96, replicate: int = 1) -> Path:
    """Render shape images under ``root/images`` and write ``root/manifest.parquet`` (paths relative to root).

    There are 24 distinct (colour, shape, background) combinations; rows cycle through them with a small size
    jitter. ``replicate`` > 1 repeats the same files to reach a realistic row count cheaply.
    """
    combos = list(itertools.product(COLOURS, SHAPES, BACKGROUNDS))
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, count in (("train", n_train), ("diag", n_diag)):
        for i in range(count):
            colour, shape, background = combos[i % len(combos)]
            rel = f"images/{split}_{i:05d}.jpg"
            img = _draw(shape, COLOURS[colour], BACKGROUNDS[background], size, jitter=(i // len(combos)) % 5)
            img.save(root / rel, quality=90)
            for r in range(replicate if split == "train" else 1):
                rows.append(
                    {
                        "id": f"{split}-{i:05d}-{r}",
                        "image_path": rel,
                        "caption": f"a {colour} {shape} on a {background} background",
                        "labels": [colour, shape],
                        "split": split,
                        "stats_role": None,
                        "source": "test-fake",
                        "license": "CC0-1.0",
                        "sha256": "",
                    }
                )
    path = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path
