"""Tiny synthetic datasets for the data-stage tests (never the real embedded data)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd


def make_embedded(root: Path, n: int = 6) -> Path:
    """A tiny fake embedded dataset (not the real one): images are arbitrary bytes."""
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        data = f"image {i}".encode()
        (root / "images" / f"img{i}.jpg").write_bytes(data)
        rows.append(
            {
                "id": f"e{i:02d}",
                "file": f"images/img{i}.jpg",
                "caption": f"a thing number {i}",
                "labels": "animal;red" if i % 2 else "",
                "source_package": "fakepkg",
                "source_version": "1.0",
                "license": "CC0-1.0",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def write_coco(root: Path, subset: str, image_ids: list[int], *, instances: bool = True) -> None:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (root / subset).mkdir(parents=True, exist_ok=True)
    images, captions, objects = [], [], []
    for k, image_id in enumerate(image_ids):
        name = f"{image_id:012d}.jpg"
        (root / subset / name).write_bytes(f"pixels {image_id}".encode())
        images.append({"id": image_id, "file_name": name, "license": 1 + k % 2, "width": 4, "height": 4})
        for j in range(5):
            captions.append({"id": image_id * 10 + j, "image_id": image_id, "caption": f" img {image_id} cap {j} "})
        objects.append({"id": image_id, "image_id": image_id, "category_id": 1 + k % 3, "bbox": [0, 0, 1, 1]})
        objects.append({"id": image_id + 1000, "image_id": image_id, "category_id": 1, "bbox": [0, 0, 1, 1]})
    licenses = [{"id": 1, "name": "Attribution License", "url": "u1"}, {"id": 2, "name": "NC License", "url": "u2"}]
    data = {"info": {}, "licenses": licenses, "images": images, "annotations": captions}
    (ann / f"captions_{subset}.json").write_text(json.dumps(data))
    if instances:
        cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "kite"}]
        inst = {"licenses": licenses, "images": images, "annotations": objects, "categories": cats}
        (ann / f"instances_{subset}.json").write_text(json.dumps(inst))
