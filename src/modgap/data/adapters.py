"""Turn a fetched dataset folder into the canonical item table.

Canonical columns: ``id, image_path, caption, labels, source, license, sha256`` — one row per
*image* (images define items). When an image has several captions (COCO has ~5), one is kept by a
seeded, per-image choice: captions are put in a fixed order (COCO: by annotation id; folder: file
order), and index ``int(sha256(f"{seed}:{id}")[:16 hex]) % n_captions`` is kept. Hashing the id
(instead of drawing from one RNG stream) makes each image's choice independent of which other images
are present, so subsampling or adding images never changes the caption of an image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from modgap.data.sources import read_embedded_manifest
from modgap.errors import ModgapError
from modgap.io import sha256_file

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = ("id", "image_path", "caption", "labels", "source", "license", "sha256")


class DatasetFormatError(ModgapError):
    """A dataset file is missing or malformed; the message names the file (and row/key)."""


def choose_caption_index(item_id: str, n_captions: int, seed: int) -> int:
    """Seeded per-item choice among ``n_captions`` captions (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()
    return int(digest[:16], 16) % n_captions


def display_path(path: str | os.PathLike[str]) -> str:
    """Path relative to the working directory (project root) when inside it, else absolute.

    Uses ``abspath`` rather than ``resolve`` so symlinked files (e.g. a Hugging Face cache) keep the
    path the user configured.
    """
    absolute = Path(os.path.abspath(path))
    cwd = Path(os.path.abspath(os.getcwd()))
    return absolute.relative_to(cwd).as_posix() if absolute.is_relative_to(cwd) else absolute.as_posix()


def parse_labels(value: Any) -> list[str]:
    """Labels from a list, a ';'-joined string, or nothing; stripped, empty ones dropped."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    items = value.split(";") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def hash_images(paths: Sequence[Path], *, progress: bool = True, workers: int = 4) -> list[str]:
    """sha256 of each image (threads: hashlib releases the GIL, so large datasets hash faster)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetFormatError(f"{len(missing)} image file(s) missing, first: {missing[0]}")
    workers = max(1, min(workers, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(sha256_file, paths)
        return list(tqdm(results, total=len(paths), desc="hash images", unit="img", disable=not progress, leave=False))


def _finish(rows: list[dict[str, Any]], paths: list[Path], *, compute_sha: bool, progress: bool) -> pd.DataFrame:
    """Attach image paths and hashes; check ids are unique; return the canonical table sorted by id."""
    if not rows:
        raise DatasetFormatError("the dataset has no items")
    if compute_sha:
        for row, digest in zip(rows, hash_images(paths, progress=progress), strict=True):
            row["sha256"] = digest
    else:
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise DatasetFormatError(f"image file {missing} is missing")
    for row, path in zip(rows, paths, strict=True):
        row["image_path"] = display_path(path)
        row.setdefault("sha256", None)
    table = pd.DataFrame(rows, columns=list(CANONICAL_COLUMNS))
    dup = table["id"][table["id"].duplicated()]
    if not dup.empty:
        raise DatasetFormatError(f"duplicate item id {dup.iloc[0]!r} ({dup.size} duplicate(s))")
    return table.sort_values("id", kind="stable").reset_index(drop=True)


# --- embedded ---------------------------------------------------------------------------------------


def adapt_embedded(root: Path, cfg: Mapping[str, Any], *, seed: int, progress: bool = True) -> pd.DataFrame:
    """The committed embedded copy (already verified by the source); hashes come from its manifest."""
    manifest = root / cfg.get("embedded", {}).get("manifest", "manifest.csv")
    table = read_embedded_manifest(manifest)
    rows = [
        {
            "id": r.id,
            "caption": r.caption,
            "labels": parse_labels(r.labels),
            "source": r.source_package,
            "license": r.license or cfg["license"],
            "sha256": r.sha256,
        }
        for r in table.itertuples(index=False)
    ]
    paths = [manifest.parent / f for f in table["file"]]
    return _finish(rows, paths, compute_sha=False, progress=progress)


# --- COCO captions ----------------------------------------------------------------------------------


def _load_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetFormatError(f"{what} {path} is missing")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{what} {path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{what} {path}: expected a JSON object")
    return data


def _require(data: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        raise DatasetFormatError(f"{path}: missing key '{key}'")
    return data[key]


def adapt_coco(root: Path, cfg: Mapping[str, Any], *, seed: int, progress: bool = True) -> pd.DataFrame:
    """COCO captions (2014/2017 layout): ``annotations/captions_{subset}.json`` + ``{subset}/`` images.

    With ``coco.instances: true`` the category names of ``instances_{subset}.json`` are the labels.
    Ids are ``coco-<image id, 12 digits>`` (COCO image ids are unique across subsets).
    """
    opts = cfg.get("coco", {})
    ann_dir = root / opts.get("annotations_dir", "annotations")
    rows: list[dict[str, Any]] = []
    paths: list[Path] = []
    for subset in opts.get("subsets", ["train2017", "val2017"]):
        cap_path = ann_dir / f"captions_{subset}.json"
        data = _load_json(cap_path, "COCO captions file")
        licenses = {lic["id"]: lic.get("name", str(lic["id"])) for lic in data.get("licenses", [])}
        captions: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for ann in _require(data, "annotations", cap_path):
            captions[ann["image_id"]].append((ann.get("id", 0), str(ann["caption"]).strip()))
        labels = _coco_labels(ann_dir / f"instances_{subset}.json") if opts.get("instances") else {}
        image_dir = root / opts.get("images_dir", "{subset}").format(subset=subset)
        n_without = 0
        for image in sorted(_require(data, "images", cap_path), key=lambda im: im["id"]):
            caps = sorted(captions.get(image["id"], []))
            if not caps:
                n_without += 1
                continue
            item_id = f"coco-{image['id']:012d}"
            rows.append(
                {
                    "id": item_id,
                    "caption": caps[choose_caption_index(item_id, len(caps), seed)][1],
                    "labels": labels.get(image["id"], []),
                    "source": cfg["name"],
                    "license": licenses.get(image.get("license"), cfg["license"]),
                }
            )
            paths.append(image_dir / image["file_name"])
        if n_without:
            log.warning("%s: %d image(s) without captions skipped", cap_path, n_without)
    return _finish(rows, paths, compute_sha=cfg["hash_images"], progress=progress)


def _coco_labels(path: Path) -> dict[int, list[str]]:
    """image id -> sorted unique category names from a COCO instances file."""
    data = _load_json(path, "COCO instances file")
    names = {c["id"]: c["name"] for c in _require(data, "categories", path)}
    per_image: dict[int, set[str]] = defaultdict(set)
    for ann in _require(data, "annotations", path):
        per_image[ann["image_id"]].add(names[ann["category_id"]])
    return {k: sorted(v) for k, v in per_image.items()}


# --- generic folder ---------------------------------------------------------------------------------


def _read_caption_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetFormatError(f"{path}:{lineno}: invalid JSON: {exc}") from exc
        return rows
    if path.suffix in (".csv", ".tsv"):
        sep = "\t" if path.suffix == ".tsv" else ","
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep)
        return table.to_dict("records")
    raise DatasetFormatError(f"{path}: captions file must be .csv, .tsv or .jsonl")


def adapt_folder(root: Path, cfg: Mapping[str, Any], *, seed: int, progress: bool = True) -> pd.DataFrame:
    """Images plus a captions file with ``file,caption[,labels][,id][,license]`` (labels ';'-joined
    in CSV, a list or ';'-joined string in JSONL). Several rows for one file = several captions."""
    opts = cfg.get("folder", {})
    if "captions_file" in opts:
        cap_path = root / opts["captions_file"]
    else:
        candidates = [root / n for n in ("captions.csv", "captions.jsonl")]
        cap_path = next((p for p in candidates if p.is_file()), candidates[0])
    if not cap_path.is_file():
        raise DatasetFormatError(f"captions file {cap_path} is missing")
    image_dir = root / opts.get("images_dir", ".")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lineno, rec in enumerate(_read_caption_rows(cap_path), 1):
        for key in ("file", "caption"):
            if not str(rec.get(key) or "").strip():
                raise DatasetFormatError(f"{cap_path}: row {lineno}: missing '{key}'")
        grouped[str(rec["file"])].append(rec)
    rows, paths = [], []
    for file in sorted(grouped):
        recs = grouped[file]
        item_id = str(recs[0].get("id") or file)
        chosen = recs[choose_caption_index(item_id, len(recs), seed)]
        # Labels describe the image, so the union over its rows is kept whichever caption is chosen.
        labels = sorted({lab for rec in recs for lab in parse_labels(rec.get("labels"))})
        rows.append(
            {
                "id": item_id,
                "caption": str(chosen["caption"]).strip(),
                "labels": labels,
                "source": cfg["name"],
                "license": str(chosen.get("license") or cfg["license"]),
            }
        )
        paths.append(image_dir / file)
    return _finish(rows, paths, compute_sha=cfg["hash_images"], progress=progress)


ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "embedded": adapt_embedded,
    "coco": adapt_coco,
    "folder": adapt_folder,
}


def build_table(root: Path, cfg: Mapping[str, Any], *, seed: int, progress: bool = True) -> pd.DataFrame:
    """Dispatch on ``cfg['format']``."""
    return ADAPTERS[cfg["format"]](root, cfg, seed=seed, progress=progress)


def label_counts(labels: Iterable[list[str]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for labs in labels:
        for lab in labs:
            counts[lab] += 1
    return dict(sorted(counts.items()))
